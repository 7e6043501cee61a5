"""One parsed order to verdict in one numba call: the single-order (stream) path.

A one-order ``CheckOrders`` or stream message once went from its parse to the check through Python
glue: a latin-1 decode and three slices, two dict lookups, seven numpy scalar stores and the
capacity checks. In the running server, with grpc's work evicting the caches between messages,
that glue cost about as much as the check (~8 of ~20 µs a message, bench/kernel_bench.py's
server-time breakdown has the warm figures). The wire layer parses the order to scalars and spans
(wire.parse_one); here the name lookups in the interners' byte indexes and the check kernel run in
one call. Anything unusual (a name not in the index yet, state arrays that must grow) returns
NEEDS_PYTHON and the engine takes its general path, which gives the same answer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..wire._hash import hash_span
from ._hashtable import ht_find
from .checks import check_batch
from .layout import C_BOOKS, C_FREE_TOP, C_SLOTS
from .rows import put_order

OK = 0
NEEDS_PYTHON = 3  # a name the index does not hold yet, or arrays to grow: take the general path


@njit(cache=True, nogil=True)
def find_name(
    buf, off: np.int64, length: np.int64, table, arena, offsets, count, seed: np.uint64
) -> np.int64:
    """Id of the name at buf[off:off+length] in an interner's byte index (interning.NameIndex:
    table, arena, offsets, count), or -1; the bytes are compared, so a key collision only misses.
    An id >= count is a name indexed after this snapshot was taken (its bytes may lie past these
    arrays): a miss too."""
    v = ht_find(table, hash_span(buf, off, length, seed))
    if v < 0 or v >= count:
        return -1
    start = offsets[v]
    if offsets[v + 1] - start != length:
        return -1
    for j in range(length):
        if arena[start + j] != buf[off + j]:
            return -1
    return v


@njit(cache=True, nogil=True)
def check_one_order(
    buf,
    fields,
    seed,
    acct_table,
    acct_arena,
    acct_off,
    acct_count,
    sym_table,
    sym_arena,
    sym_off,
    sym_count,
    max_len,
    now,
    oi,
    of,
    mask,
    vi,
    vf,
    accounts,
    symbols,
    books,
    orders,
    limits,
    var,
    max_notional,
):
    """Look up a parsed order's names and check it (checks.check_batch on the one-row oi, of).

    buf is the request (bytes) and fields wire.parse_one's tuple for it (status, id key, id,
    account and symbol spans, side, quantity, price). The names are looked up in the interners'
    NameIndex snapshots (table, arena, offsets, count each: acct_*, sym_*), passed as separate
    arguments because numba types a NamedTuple argument in Python on every call (~2.5 us).

    Returns (status, violations written, account id, symbol id); status OK (checked) or
    NEEDS_PYTHON (nothing checked, nothing changed).
    """
    _, key, _, id_len, ao, al, so, sl, side, qty, px = fields
    acct, ctr = accounts
    sym = symbols[0]
    book_ht, book = books[0], books[1]
    ordi = orders[2]
    a = find_name(buf, ao, al, acct_table, acct_arena, acct_off, acct_count, seed)
    s = find_name(buf, so, sl, sym_table, sym_arena, sym_off, sym_count, seed)
    need = ctr[C_BOOKS] + 2  # a new book plus check_batch's spare row (engine._fit_books)
    slots_ok = ctr[C_FREE_TOP] >= 1 or ctr[C_SLOTS] >= ordi.shape[0]  # at the bound: capacity reject
    if (
        a < 0
        or s < 0
        or a >= acct.shape[0]
        or s >= sym.shape[0]
        or need > book.shape[0]
        or 2 * need > book_ht.shape[0]
        or not slots_ok
    ):
        return NEEDS_PYTHON, 0, a, s
    valid_id = 0 < id_len <= max_len  # an empty or over-long id makes the order invalid
    put_order(oi, of, 0, a if valid_id else -1, s, side, key, qty, px)
    nv = check_batch(oi, of, now, mask, vi, vf, accounts, symbols, books, orders, limits, var, max_notional)
    return OK, nv, a, s
