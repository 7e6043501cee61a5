"""The distinct values of a column of byte spans, found in one numba pass.

Recovery maps millions of account and symbol names to interner ids, but holds only as many
distinct names as there are accounts and symbols: grouping the rows by their bytes first means
each distinct name is looked up (and, when new, decoded and interned) once, not once a row.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..wire._hash import hash_span
from ._hashtable import EMPTY, ht_bucket

_FIRST_TABLE = 1024  # buckets of the first table; doubled at load one half


@njit(cache=True, nogil=True)
def _place(table: np.ndarray, key: np.int64, value: np.int64) -> None:
    """Put (key, value) in the first free bucket of key's probe run (keys may repeat: collisions)."""
    mask = table.shape[0] - 1
    b = ht_bucket(key, mask)
    while table[b, 0] != EMPTY:
        b = (b + 1) & mask
    table[b, 0] = key
    table[b, 1] = value


@njit(cache=True, nogil=True)
def distinct_spans(
    buf: np.ndarray, off: np.ndarray, length: np.ndarray, seed: np.uint64
) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse): first[d] is the first row holding the d-th distinct byte string (in
    order of first appearance), inverse[i] the distinct index of row i's bytes.

    Rows are keyed by wire.hash_span and compared byte for byte, so two different strings never
    merge, whatever their keys. The caller guarantees every span lies inside buf.
    """
    n = off.shape[0]
    table = np.full((_FIRST_TABLE, 2), EMPTY, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    d = 0
    for i in range(n):
        o = off[i]
        ln = length[i]
        key = hash_span(buf, o, ln, seed)
        mask = table.shape[0] - 1
        b = ht_bucket(key, mask)
        found = -1
        while table[b, 0] != EMPTY:
            if table[b, 0] == key:
                v = table[b, 1]
                r = first[v]
                if length[r] == ln:
                    same = True
                    o2 = off[r]
                    for k in range(ln):
                        if buf[o2 + k] != buf[o + k]:
                            same = False
                            break
                    if same:
                        found = v
                        break
            b = (b + 1) & mask
        if found < 0:
            found = d
            first[d] = i
            d += 1
            table[b, 0] = key
            table[b, 1] = found
            if 2 * d > table.shape[0]:
                grown = np.full((2 * table.shape[0], 2), EMPTY, dtype=np.int64)
                for k in range(table.shape[0]):
                    if table[k, 0] != EMPTY:
                        _place(grown, table[k, 0], table[k, 1])
                table = grown
        inverse[i] = found
    return first[:d].copy(), inverse
