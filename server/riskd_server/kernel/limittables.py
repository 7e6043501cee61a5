"""Build and patch the limit tables (limitbook) in numba: O(limits) loops a full compile of a million
limits cannot afford in Python, and the per-account exact tables an incremental upsert copies.

The exact (account, symbol, kind) limits live in an *arena*: int64[rows, 2], one small open-addressing
table per account (kernel._hashtable's layout) behind a header row (capacity, count). Column 0 of an
account's row in ``lim_tab`` (kind 0 is no kind) holds where that header is, -1 for none. An upsert
copies only its accounts' tables to the arena's free end (copy on write): a version never sees a row
written after it was published, because it reads only the tables its own ``lim_tab`` points at.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._hashtable import EMPTY, ht_bucket, ht_delete, ht_put
from .layout import KEY_TAG, LT_ACCOUNTS

NO_TABLE = -1  # lim_tab[1 + a, 0] of an account without exact limits
MIN_CAP = 4


@njit(cache=True, nogil=True, inline="always")
def pair_key(s: np.int64, kind: np.int64) -> np.int64:
    """Key of (symbol, kind) in an account's exact table (never 0: KEY_TAG)."""
    return KEY_TAG | (np.int64(s) << 4) | np.int64(kind)


@njit(cache=True, nogil=True)
def exact_find(arena: np.ndarray, off: np.int64, s: np.int64, kind: np.int64) -> np.int64:
    """Limit index of (symbol, kind) in the account table at off, or -1."""
    cap = arena[off, 0]
    mask = cap - 1
    key = pair_key(s, kind)
    i = ht_bucket(key, mask)
    while True:
        k = arena[off + 1 + i, 0]
        if k == key:
            return arena[off + 1 + i, 1]
        if k == EMPTY:
            return -1
        i = (i + 1) & mask


def table_cap(count: int) -> int:
    """Buckets for count keys at load at most one half (a power of two, at least MIN_CAP)."""
    cap = MIN_CAP
    while cap < 2 * count:
        cap *= 2
    return cap


@njit(cache=True, nogil=True)
def build_tables(
    a: np.ndarray,
    s: np.ndarray,
    kind: np.ndarray,
    rows: np.ndarray,
    n_acct: np.int64,
    table: np.ndarray,
    arena: np.ndarray,
    conflicts: np.ndarray,
) -> np.int64:
    """Fill table (all -1) and arena (room for every account table) with the limits at indexes
    rows[i] = (a[i], s[i], kind[i]); returns the arena rows used.

    The first limit claiming a slot keeps it; every later claimant goes to conflicts
    (int64[len(a) + 1, 2]) as (its row, the holder's row) from conflicts[1], their count in
    conflicts[0, 0]. The caller settles them by limit_id (two enabled limits of one kind at one
    account/symbol: rare).
    """
    n = a.shape[0]
    table[0, LT_ACCOUNTS] = n_acct
    # Count each account's exact limits, lay the account tables out one after another.
    count = np.zeros(n_acct, dtype=np.int64)
    for i in range(n):
        if a[i] >= 0 and s[i] >= 0:
            count[a[i]] += 1
    used = np.int64(0)
    for acc in range(n_acct):
        if count[acc] > 0:
            cap = MIN_CAP
            while cap < 2 * count[acc]:
                cap *= 2
            table[1 + acc, 0] = used
            arena[used, 0] = cap
            arena[used, 1] = 0
            for j in range(cap):
                arena[used + 1 + j, 0] = EMPTY
                arena[used + 1 + j, 1] = 0
            used += 1 + cap
        else:
            table[1 + acc, 0] = -1
    nc = np.int64(0)
    for i in range(n):
        ai, si, k, r = a[i], s[i], kind[i], rows[i]
        if ai >= 0 and si >= 0:
            off = table[1 + ai, 0]
            cap = arena[off, 0]
            sub = arena[off + 1 : off + 1 + cap]
            key = pair_key(si, k)
            mask = cap - 1
            j = ht_bucket(key, mask)
            while sub[j, 0] != key and sub[j, 0] != EMPTY:
                j = (j + 1) & mask
            if sub[j, 0] == key:
                nc += 1
                conflicts[nc, 0] = r
                conflicts[nc, 1] = sub[j, 1]
                continue
            sub[j, 0] = key
            sub[j, 1] = r
            arena[off, 1] += 1
        else:
            if ai >= 0:
                t = 1 + ai
            elif si >= 0:
                t = 1 + n_acct + si
            else:
                t = 0
            if table[t, k] >= 0:
                nc += 1
                conflicts[nc, 0] = r
                conflicts[nc, 1] = table[t, k]
            else:
                table[t, k] = r
    conflicts[0, 0] = nc
    return used


@njit(cache=True, nogil=True)
def copy_account_table(arena: np.ndarray, off: np.int64, dest: np.int64, cap: np.int64) -> None:
    """Copy the account table at off (or none: off < 0) into an empty one of cap buckets at dest."""
    arena[dest, 0] = cap
    arena[dest, 1] = 0
    for j in range(cap):
        arena[dest + 1 + j, 0] = EMPTY
        arena[dest + 1 + j, 1] = 0
    if off < 0:
        return
    sub = arena[dest + 1 : dest + 1 + cap]
    old_cap = arena[off, 0]
    for j in range(old_cap):
        k = arena[off + 1 + j, 0]
        if k != EMPTY:
            ht_put(sub, k, arena[off + 1 + j, 1])
    arena[dest, 1] = arena[off, 1]


@njit(cache=True, nogil=True)
def set_exact(arena: np.ndarray, off: np.int64, s: np.int64, kind: np.int64, li: np.int64) -> None:
    """In the (new, unpublished) account table at off: (s, kind) -> li, or remove it for li < 0."""
    cap = arena[off, 0]
    sub = arena[off + 1 : off + 1 + cap]
    key = pair_key(s, kind)
    if li >= 0:
        mask = cap - 1
        j = ht_bucket(key, mask)
        while sub[j, 0] != key and sub[j, 0] != EMPTY:
            j = (j + 1) & mask
        if sub[j, 0] == EMPTY:
            arena[off, 1] += 1
        sub[j, 0] = key
        sub[j, 1] = li
    elif ht_delete(sub, key):
        arena[off, 1] -= 1


@njit(cache=True, nogil=True)
def exact_entries(arena: np.ndarray, table: np.ndarray, out: np.ndarray) -> np.int64:
    """Every exact limit the tables point at, as rows (account, symbol, kind, index) of out; count."""
    n_acct = table[0, LT_ACCOUNTS]
    n = np.int64(0)
    for acc in range(n_acct):
        off = table[1 + acc, 0]
        if off < 0:
            continue
        for j in range(arena[off, 0]):
            k = arena[off + 1 + j, 0]
            if k != EMPTY:
                body = k & ~KEY_TAG
                out[n, 0] = acc
                out[n, 1] = body >> 4
                out[n, 2] = body & 0xF
                out[n, 3] = arena[off + 1 + j, 1]
                n += 1
    return n
