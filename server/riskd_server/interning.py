"""Dense integer ids for account and symbol names, bounded."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np

from .kernel._hashtable import ht_grow, ht_new
from .kernel.wire import SEED, insert_names, lookup_names
from .limits import MAX_NAME_LEN


class CapacityError(RuntimeError):
    """An interner is full: the name cannot get an id."""


class Interner:
    """Maps names to ids 0..n-1 in arrival order; never forgets (ids index state arrays).

    Bounded by ``capacity``: past it new names get -1 and the orders carrying them are
    rejected as invalid, so a client sending random names cannot grow memory without limit.
    """

    __slots__ = ("_arena", "_arena_off", "_ids", "_indexed", "_names", "_table", "capacity", "kind")

    def __init__(self, kind: str, capacity: int) -> None:
        self.kind = kind
        self.capacity = capacity
        self._ids: dict[str, int] = {}
        self._names = np.empty(64, dtype=object)  # id -> name, grows by doubling
        # The byte index beside the dict (see lookup_spans): key of a name's UTF-8 bytes -> id, and
        # every indexed name's bytes (id v is arena[arena_off[v]:arena_off[v + 1]]).
        self._table = ht_new(64)
        self._arena = np.empty(1024, dtype=np.uint8)
        self._arena_off = np.zeros(65, dtype=np.int64)
        self._indexed = 0  # ids below this are in the byte index

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, name: str) -> int:
        """Id of a known name, or -1."""
        return self._ids.get(name, -1)

    def intern(self, name: str) -> int:
        """Id of name, assigning the next one if new; -1 if invalid or the interner is full."""
        found = self._ids.get(name)
        if found is not None:
            return found
        if not name or len(name) > MAX_NAME_LEN or len(self._ids) >= self.capacity:
            return -1
        new_id = len(self._ids)
        if new_id >= self._names.shape[0]:
            grown = np.empty(2 * self._names.shape[0], dtype=object)
            grown[:new_id] = self._names
            self._names = grown
        self._ids[name] = new_id
        self._names[new_id] = name
        return new_id

    def lookup_many(self, names: Sequence[str]) -> np.ndarray:
        """Ids of names (-1 for unknown) without a Python-level loop: map runs in C."""
        n = len(names)
        return np.fromiter(map(self._ids.get, names, repeat(-1, n)), dtype=np.int64, count=n)

    def intern_many(self, names: Sequence[str], ids: np.ndarray | None = None) -> np.ndarray:
        """Ids of names, interning new ones; only the unknown names take the slow path."""
        if ids is None:
            ids = self.lookup_many(names)
        missing = np.flatnonzero(ids < 0)
        for i in missing.tolist():
            ids[i] = self.intern(names[i])
        return ids

    def lookup_spans(
        self, buf: np.ndarray, off: np.ndarray, length: np.ndarray, n: int
    ) -> tuple[np.ndarray, int]:
        """Ids of the UTF-8 names at buf[off[i]:off[i]+length[i]] (-1 unknown), and the -1 count.

        Runs in numba on the byte index; names interned since the last call are indexed first.
        """
        self._index_new()
        ids = np.empty(n, dtype=np.int64)
        misses = lookup_names(buf, off, length, n, self._table, self._arena, self._arena_off, SEED, ids)
        return ids, int(misses)

    def name_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The byte index (table, arena, arena offsets) with every name interned so far, for
        numba lookups (kernel.single.find_name). Arrays are replaced as the index grows: a copy
        held since then misses the newer names, never maps a name to a wrong id."""
        self._index_new()
        return self._table, self._arena, self._arena_off

    def _index_new(self) -> None:
        """Add the names interned since the last call to the byte index (in one kernel call)."""
        first, last = self._indexed, len(self._ids)
        if first == last:
            return
        enc = [s.encode("utf-8", "surrogatepass") for s in self._names[first:last].tolist()]
        lengths = np.fromiter(map(len, enc), dtype=np.int64, count=len(enc))
        if self._arena_off.shape[0] < last + 1:
            grown = np.zeros(max(2 * self._arena_off.shape[0], last + 1), dtype=np.int64)
            grown[: first + 1] = self._arena_off[: first + 1]
            self._arena_off = grown
        start = int(self._arena_off[first])
        np.cumsum(lengths, out=self._arena_off[first + 1 : last + 1])
        self._arena_off[first + 1 : last + 1] += start
        end = int(self._arena_off[last])
        if self._arena.shape[0] < end:
            grown_arena = np.empty(max(2 * self._arena.shape[0], end), dtype=np.uint8)
            grown_arena[:start] = self._arena[:start]
            self._arena = grown_arena
        self._arena[start:end] = np.frombuffer(b"".join(enc), dtype=np.uint8)
        self._table = ht_grow(self._table, last)
        insert_names(self._table, self._arena, self._arena_off, first, last, SEED)
        self._indexed = last

    def names_of(self, ids: np.ndarray) -> np.ndarray:
        """Names of ids as an object array (vectorised id -> name)."""
        return self._names[ids]

    def name(self, id_: int) -> str:
        return self._names[id_]
