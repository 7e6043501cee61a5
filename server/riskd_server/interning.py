"""Dense integer ids for account and symbol names, bounded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import NamedTuple

import numpy as np

from .kernel._hashtable import ht_grow, ht_new
from .limits import MAX_NAME_LEN
from .names import has_control
from .wire._hash import SEED
from .wire.names import insert_names, lookup_names


class CapacityError(RuntimeError):
    """An interner is full: the name cannot get an id."""


class NameIndex(NamedTuple):
    """An interner's byte index as of ``size`` names, for numba lookups (wire.lookup_names,
    single.find_name): ``table`` maps the key of a name's UTF-8 bytes (wire.hash_span) to its id,
    and id v's bytes are ``arena[offsets[v]:offsets[v + 1]]``.

    Published whole and never changed within what it covers: the interner appends later names past
    ``size`` (ids >= size, offsets past size, arena bytes past offsets[size]) and allocates new
    arrays when one must grow, so a snapshot held across any number of additions still answers
    exactly as when it was taken. Readers treat an id >= size as a miss: the table is shared with
    later snapshots until it is rehashed, so it may hold their ids, whose offsets this snapshot's
    arrays may not reach. (Copying the arrays at every addition would keep even the table
    untouched, at ~50 MB copied per new name at 1 M symbols.)
    """

    table: np.ndarray  # int64[cap, 2]
    arena: np.ndarray  # uint8
    offsets: np.ndarray  # int64, at least size + 1
    size: int  # names indexed (ids below it)


class Interner:
    """Maps names to ids 0..n-1 in arrival order; never forgets (ids index state arrays).

    Bounded by ``capacity``: past it new names get -1 and the orders carrying them are
    rejected as invalid, so a client sending random names cannot grow memory without limit.
    """

    __slots__ = ("_ids", "_index", "_names", "capacity", "kind")

    def __init__(self, kind: str, capacity: int) -> None:
        self.kind = kind
        self.capacity = capacity
        self._ids: dict[str, int] = {}
        self._names = np.empty(64, dtype=object)  # id -> name, grows by doubling
        # The byte index beside the dict (see lookup_spans), of the ids below its count.
        self._index = NameIndex(ht_new(64), np.empty(1024, dtype=np.uint8), np.zeros(65, dtype=np.int64), 0)

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, name: str) -> int:
        """Id of a known name, or -1."""
        return self._ids.get(name, -1)

    @property
    def by_name(self) -> Mapping[str, int]:
        """name -> id of every name interned (live, read only: for vectorised lookups)."""
        return self._ids

    def intern(self, name: str) -> int:
        """Id of name, assigning the next one if new; -1 if invalid (empty, longer than
        MAX_NAME_LEN, holding a control character) or the interner is full."""
        found = self._ids.get(name)
        if found is not None:
            return found
        if not name or len(name) > MAX_NAME_LEN or len(self._ids) >= self.capacity or has_control(name):
            return -1
        new_id = len(self._ids)
        if new_id >= self._names.shape[0]:
            grown = np.empty(2 * self._names.shape[0], dtype=object)
            grown[:new_id] = self._names
            self._names = grown
        self._ids[name] = new_id
        self._names[new_id] = name
        return new_id

    def lookup_many(self, names: Sequence[str] | np.ndarray) -> np.ndarray:
        """Ids of names (-1 for unknown) without a Python-level loop: map runs in C."""
        n = len(names)
        return np.fromiter(map(self._ids.get, names, repeat(-1, n)), dtype=np.int64, count=n)

    def intern_many(self, names: Sequence[str] | np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
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
        index = self.name_index()
        ids = np.empty(n, dtype=np.int64)
        misses = lookup_names(buf, off, length, n, *index, SEED, ids)
        return ids, int(misses)

    def name_index(self) -> NameIndex:
        """The byte index of every name interned so far (names interned since the last call are
        indexed first, in one kernel call); a snapshot, valid for good (see NameIndex)."""
        index = self._index
        first, last = index.size, len(self._ids)
        if first == last:
            return index
        enc = [s.encode("utf-8", "surrogatepass") for s in self._names[first:last].tolist()]
        lengths = np.fromiter(map(len, enc), dtype=np.int64, count=len(enc))
        offsets, arena = index.offsets, index.arena
        if offsets.shape[0] < last + 1:
            offsets = np.zeros(max(2 * offsets.shape[0], last + 1), dtype=np.int64)
            offsets[: first + 1] = index.offsets[: first + 1]
        start = int(offsets[first])
        np.cumsum(lengths, out=offsets[first + 1 : last + 1])  # past the published count only
        offsets[first + 1 : last + 1] += start
        end = int(offsets[last])
        if arena.shape[0] < end:
            arena = np.empty(max(2 * arena.shape[0], end), dtype=np.uint8)
            arena[:start] = index.arena[:start]
        arena[start:end] = np.frombuffer(b"".join(enc), dtype=np.uint8)
        table = ht_grow(index.table, last)
        insert_names(table, arena, offsets, first, last, SEED)
        self._index = index = NameIndex(table, arena, offsets, last)
        return index

    def names_prefix(self) -> np.ndarray:
        """The names of ids 0..n-1 as an object array view, O(1): a name never changes once given an
        id and growth replaces the array, so the view keeps answering as now (checkpoints)."""
        return self._names[: len(self._ids)]

    def load(self, names: list[str]) -> None:
        """Give names the ids 0..len(names)-1 (an empty interner only: checkpoint load). The names
        were valid when first interned; duplicates or too many for the capacity raise ValueError."""
        if self._ids:
            raise ValueError(f"{self.kind} interner is not empty")
        ids = dict(zip(names, range(len(names)), strict=True))
        if len(ids) != len(names) or len(ids) > self.capacity:
            raise ValueError(f"{len(names)} {self.kind} names: duplicates or past capacity {self.capacity}")
        size = 64
        while size < len(names):
            size *= 2
        self._names = np.empty(size, dtype=object)
        self._names[: len(names)] = names
        self._ids = ids

    def names_of(self, ids: np.ndarray) -> np.ndarray:
        """Names of ids as an object array (vectorised id -> name)."""
        return self._names[ids]

    def name(self, id_: int) -> str:
        return self._names[id_]
