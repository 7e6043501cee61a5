"""Dense integer ids for account and symbol names, bounded."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np

from .limits import MAX_NAME_LEN


class CapacityError(RuntimeError):
    """An interner is full: the name cannot get an id."""


class Interner:
    """Maps names to ids 0..n-1 in arrival order; never forgets (ids index state arrays).

    Bounded by ``capacity``: past it new names get -1 and the orders carrying them are
    rejected as invalid, so a client sending random names cannot grow memory without limit.
    """

    __slots__ = ("_ids", "_names", "capacity", "kind")

    def __init__(self, kind: str, capacity: int) -> None:
        self.kind = kind
        self.capacity = capacity
        self._ids: dict[str, int] = {}
        self._names = np.empty(64, dtype=object)  # id -> name, grows by doubling

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

    def names_of(self, ids: np.ndarray) -> np.ndarray:
        """Names of ids as an object array (vectorised id -> name)."""
        return self._names[ids]

    def name(self, id_: int) -> str:
        return self._names[id_]
