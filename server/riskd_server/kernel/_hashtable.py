"""Open-addressing int64 hash tables for numba kernels.

A table is an ``int64[cap, 2]`` array (column 0 key, column 1 value) with a power-of-two ``cap``,
``EMPTY`` (0) keys for free buckets, linear probing and backward-shift deletion (no tombstones, so
a long-lived table never degrades). Callers keep the load at or below one half and never use the
key 0. A new table is written in full (``np.full``, not ``np.zeros``): a lazily mapped table takes
a page fault on the first write to each page inside the check kernel's timed loop, which measured
2-3x slower rounds while the order table filled (see engine._resident).
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY = np.int64(0)
_MIX = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, inline="always")
def ht_bucket(key: np.int64, mask: np.int64) -> np.int64:
    """Home bucket of key (Fibonacci hashing: client ids' str hashes and packed pairs both spread)."""
    h = np.uint64(key) * _MIX
    return np.int64(h >> np.uint64(17)) & mask


@njit(cache=True, nogil=True)
def ht_find(table: np.ndarray, key: np.int64) -> np.int64:
    """Value stored for key, or -1."""
    mask = table.shape[0] - 1
    i = ht_bucket(key, mask)
    while True:
        k = table[i, 0]
        if k == key:
            return table[i, 1]
        if k == EMPTY:
            return -1
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def ht_slot(table: np.ndarray, key: np.int64) -> np.int64:
    """The bucket holding key, or the empty bucket where ht_put would insert it.

    Lets a caller test for a key and insert it later with one probe, provided nothing is inserted
    into the table in between.
    """
    mask = table.shape[0] - 1
    i = ht_bucket(key, mask)
    while True:
        k = table[i, 0]
        if k == key or k == EMPTY:
            return i
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def ht_put(table: np.ndarray, key: np.int64, value: np.int64) -> None:
    """Insert or overwrite key."""
    mask = table.shape[0] - 1
    i = ht_bucket(key, mask)
    while True:
        k = table[i, 0]
        if k == key or k == EMPTY:
            table[i, 0] = key
            table[i, 1] = value
            return
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def ht_delete(table: np.ndarray, key: np.int64) -> bool:
    """Remove key, shifting later entries of its probe run back so lookups stay correct."""
    mask = table.shape[0] - 1
    i = ht_bucket(key, mask)
    while True:
        k = table[i, 0]
        if k == EMPTY:
            return False
        if k == key:
            break
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        kj = table[j, 0]
        if kj == EMPTY:
            break
        home = ht_bucket(kj, mask)
        # Move j back to i when its home bucket is not cyclically within (i, j].
        if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
            table[i, 0] = kj
            table[i, 1] = table[j, 1]
            i = j
    table[i, 0] = EMPTY
    table[i, 1] = 0
    return True


@njit(cache=True, nogil=True)
def ht_rehash(old: np.ndarray, new: np.ndarray) -> None:
    """Copy every entry of old into the empty table new."""
    for i in range(old.shape[0]):
        if old[i, 0] != EMPTY:
            ht_put(new, old[i, 0], old[i, 1])


def ht_new(capacity: int) -> np.ndarray:
    """An empty table with room for at least capacity keys at load one half."""
    cap = 16
    while cap < 2 * capacity:
        cap *= 2
    return np.full((cap, 2), EMPTY, dtype=np.int64)


def ht_grow(table: np.ndarray, capacity: int) -> np.ndarray:
    """The same entries in a table with room for capacity keys (returns table if it has room)."""
    if table.shape[0] >= 2 * capacity:
        return table
    new = ht_new(capacity)
    ht_rehash(table, new)
    return new
