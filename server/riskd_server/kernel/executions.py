"""Kernels that apply execution reports, marks and position loads to the state arrays.

Pure and batch-at-a-time like ``checks``; outcomes are status codes (``layout.X_*``) the engine
turns into messages.

``apply_executions`` is software-pipelined like ``checks.check_batch``: a report's order hash
bucket, order slot row and book row, and the bucket of the id the retention ring will evict, are
prefetched a few reports ahead so their cache misses overlap (one at a time, each report paid ~5
dependent DRAM round trips). Only prefetches run ahead: every report is still looked up and
applied strictly in order, so a lookup made stale by an earlier report (the same id twice, a slot
freed and reused) costs at most a wasted prefetch.

A closed order gives its slot back at once and keeps only its id in the order table, with its
book and side as the value (``closed_value``; see ``layout.ORDER_CLOSED_BASE``): enough for the
duplicate test and for a late fill. The retention ring holds the ids alone; a batch's closes are
appended and the ids past the retention are deleted from the order table after the batch, in one
prefetched loop (``trim_ring``), with no load of any order's slot.

The helpers a cancel runs (``_release``, ``_close``, ``_retire``) are inlined: called, each one
took and dropped a numba reference on every array argument, atomic operations that wait for the
pending cache-missing stores; inlined into the loop the counts are pruned. Measured with
bench/kernel_bench.py's apply_executions row (cancels, retention ring full): ~155 ns a cancel
with an eviction inside every close, ~100 ns once it no longer loaded the evicted slot and the
helpers were inlined, ~75 ns with the evictions moved to trim_ring.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._hashtable import ht_bucket, ht_delete, ht_find, ht_put, ht_slot
from ._prefetch import prefetch
from .checks import book_key, fill_slot, mark_of, open_book, take_slot
from .exposure import move_position, remark, reset_open_if_flat, reterm_open
from .layout import (
    A_OPEN_COUNT,
    B_LIM_TAG,
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POS,
    BP_ACCOUNT,
    BP_SYMBOL,
    C_BOOKS,
    C_FREE_TOP,
    C_OPEN,
    C_RING_COUNT,
    C_RING_HEAD,
    C_RING_KEEP,
    OF_OPEN,
    OI_ACCOUNT,
    OI_BOOK,
    OI_SIDE,
    ORDER_CLOSED_BASE,
    S_FILL,
    VC_ON,
    X_APPLIED,
    X_BAD_FILL,
    X_BAD_TYPE,
    X_CLOSED,
    X_LATE_FILL,
    X_OVERFILL,
    X_UNKNOWN,
    X_UNKNOWN_FILLED,
)
from .state import Accounts, Books, Orders, Symbols, VarState
from .var import book_w, mark0, var_move, var_remark

_FILL = 1
_EXPIRED = 4
_BUY = 1
_AHEAD = 8  # pipeline distance in reports between stages (see apply_executions)
_TRIM_AHEAD = 16  # prefetch distance in evictions (trim_ring)


@njit(cache=True, nogil=True, inline="always")
def _wrap(i: np.int64, cap: np.int64) -> np.int64:
    """i % cap for 0 <= i < 2 * cap, without a 64-bit division."""
    return i - cap if i >= cap else i


@njit(cache=True, nogil=True, inline="always")
def closed_value(book: np.int64, side: np.int64) -> np.int64:
    """The order-table value of a closed order: its book and side, no slot (see layout.ORDER_CLOSED_BASE)."""
    return ORDER_CLOSED_BASE - (2 * np.int64(book) + (np.int64(side) - _BUY))


@njit(cache=True, nogil=True, inline="always")
def closed_book_side(value: np.int64) -> tuple[np.int64, bool]:
    """(book, is a buy) of a closed order's order-table value (the inverse of closed_value)."""
    c = ORDER_CLOSED_BASE - value
    return c >> 1, (c & 1) == 0


@njit(cache=True, nogil=True, inline="always")
def _retire(key: np.int64, ring: np.ndarray, ctr: np.ndarray) -> None:
    """Append a closed order's id to the retention ring (trim_ring evicts past the bound later).

    The caller makes room first: the ring holds C_RING_KEEP ids plus a batch's closes (the engine
    sizes it for max_batch), and apply_executions evicts on the spot should it be full anyway.
    Straight-line: see the module doc on inlined helpers.
    """
    ring[_wrap(ctr[C_RING_HEAD] + ctr[C_RING_COUNT], ring.shape[0])] = key
    ctr[C_RING_COUNT] += 1


@njit(cache=True, nogil=True)
def _evict_oldest(ord_ht: np.ndarray, ring: np.ndarray, ctr: np.ndarray) -> None:
    """Forget the oldest retained id now (a ring without room for another close)."""
    head = ctr[C_RING_HEAD]
    ht_delete(ord_ht, ring[head])
    ctr[C_RING_HEAD] = _wrap(head + 1, ring.shape[0])
    ctr[C_RING_COUNT] -= 1


@njit(cache=True, nogil=True)
def trim_ring(ord_ht: np.ndarray, ring: np.ndarray, ctr: np.ndarray) -> None:
    """Forget the oldest closed ids beyond ctr[C_RING_KEEP]: delete them from the order table.

    Runs once after a batch rather than once per close: a tight loop whose only work is the
    deletes, each bucket prefetched _TRIM_AHEAD evictions ahead, overlaps their cache misses
    better than one delete wedged into every report (see the module doc for the figures).
    """
    cap = ring.shape[0]
    excess = ctr[C_RING_COUNT] - ctr[C_RING_KEEP]
    if excess <= 0:
        return
    head = ctr[C_RING_HEAD]
    mask = ord_ht.shape[0] - 1
    for k in range(excess + _TRIM_AHEAD):  # head + excess < 2 * cap: _wrap, not a division
        if k < excess:
            prefetch(ord_ht, ht_bucket(ring[_wrap(head + k, cap)], mask), 0)
        i = k - _TRIM_AHEAD
        if i >= 0:
            ht_delete(ord_ht, ring[_wrap(head + i, cap)])
    ctr[C_RING_HEAD] = _wrap(head + excess, cap)
    ctr[C_RING_COUNT] -= excess


@njit(cache=True, nogil=True, inline="always")
def _prefetch_slot(keys, i, ord_ht, ordi, slot_out) -> None:
    """Stage 2 of report i: look up its slot (bucket cached) into slot_out, load its rows.

    Straight-line, as checks' inlined helpers (a branch would keep numba's atomic reference counting
    of the array arguments in the loop); an unknown or closed id (a negative value) prefetches
    slot 0, harmlessly.
    """
    slot = max(ht_find(ord_ht, keys[i]), 0)
    slot_out[i] = slot
    prefetch(ordi, slot, 0)  # one aligned 64-byte line, shared by the ordf and ordi views


@njit(cache=True, nogil=True, inline="always")
def _prefetch_book(i, types, ordi, book, book_pair, slot_out, last) -> None:
    """Stage 3 of report i: load the book row of its looked-up slot, and for a fill the book's pair.

    A cancel needs no pair: its prefetch goes to row 0 (a select, not a branch; see _prefetch_slot).
    """
    b = ordi[min(max(slot_out[i], 0), last), OI_BOOK]
    prefetch(book, b, B_POS)
    prefetch(book_pair, b if types[i] == _FILL else 0, BP_SYMBOL)


@njit(cache=True, nogil=True, inline="always")
def _release(slot, amount, ordf, ordi, book, acct) -> None:
    """Take amount off an order's open quantity and its book's; its term in the account's open
    sums becomes the new open qty * p (kernel.exposure)."""
    b = ordi[slot, OI_BOOK]
    ordf[slot, OF_OPEN] -= amount
    book[b, B_OPEN_BUY if ordi[slot, OI_SIDE] == _BUY else B_OPEN_SELL] -= amount
    reterm_open(ordf, ordi, slot, acct)


@njit(cache=True, nogil=True)
def apply_executions(
    keys: np.ndarray,
    types: np.ndarray,
    xf: np.ndarray,
    origin: np.ndarray,
    accounts: Accounts,
    symbols: Symbols,
    books: Books,
    orders: Orders,
    var: VarState,
    max_notional: float,
    status_out: np.ndarray,
    book_out: np.ndarray,
    open_out: np.ndarray,
) -> None:
    """Apply reports in order.

    A fill moves its book's position and sets its symbol's last fill price; when that price is the
    symbol's mark (no UpdatePrices price) every position in the symbol is revalued
    (kernel.exposure.remark). A fill whose quantity * price is not finite or exceeds max_notional
    is refused (X_BAD_FILL): no single order may be that large, and it would overflow the sums.

    Per report: status_out (layout.X_*), book_out the order's book (-1 when not applied), open_out
    its open quantity afterwards (-1.0 once closed or when not applied).

    origin int64[n, 3] (or [0, 3] when no report names one): the (account id, symbol id, side) a
    report names, account -1 for none (the engine interned the names and made room for a book
    each). A valid fill of an id the
    order table does not hold moves the named book's position exactly like a late fill
    (X_UNKNOWN_FILLED); any other report of an unknown id is X_UNKNOWN.

    A software pipeline (prefetches only; see the module doc): step k prefetches the hash bucket of
    report k, looks up report k - _AHEAD (bucket now cached) and prefetches its slot row, reads the
    book of report k - 2 * _AHEAD's slot and prefetches the book row, and applies report
    k - 3 * _AHEAD with an authoritative lookup. book_out holds the look-ahead slots until the
    apply stage overwrites them.

    With a risk model installed every change of a book's exposure moves its account's VaR terms
    (kernel.var): the book's from before the report to after it, and on a fill that moves the
    symbol's mark every other book of the symbol (var_remark).
    """
    acct, ctr = accounts
    sym, sym_books = symbols
    book_ht, book, book_pair = books
    ord_ht, ordf, ordi, free, ring = orders
    vsym, vacct, vctl = var
    var_on = vctl[VC_ON] != 0.0
    n = keys.shape[0]
    omask = ord_ht.shape[0] - 1
    last = ordi.shape[0] - 1
    for k in range(n + 3 * _AHEAD):
        if k < n:
            prefetch(ord_ht, ht_bucket(keys[k], omask), 0)
        if _AHEAD <= k < n + _AHEAD:
            _prefetch_slot(keys, k - _AHEAD, ord_ht, ordi, book_out)
        if 2 * _AHEAD <= k < n + 2 * _AHEAD:
            _prefetch_book(k - 2 * _AHEAD, types, ordi, book, book_pair, book_out, last)
        i = k - 3 * _AHEAD
        if i < 0:
            continue
        if ctr[C_RING_COUNT] == ring.shape[0]:  # no room for a close: never with n <= max_batch
            _evict_oldest(ord_ht, ring, ctr)  # before the lookup: it may move buckets
        book_out[i] = -1
        open_out[i] = -1.0
        key = keys[i]
        bucket = ht_slot(ord_ht, key)
        known = ord_ht[bucket, 0] == key
        kind = types[i]
        if not known and (kind != _FILL or i >= origin.shape[0] or origin[i, 0] < 0):
            status_out[i] = X_UNKNOWN
            continue
        if kind < _FILL or kind > _EXPIRED:
            status_out[i] = X_BAD_TYPE
            continue
        slot = ord_ht[bucket, 1]
        is_open = known and slot >= 0
        if is_open:
            b = ordi[slot, OI_BOOK]
            buy = ordi[slot, OI_SIDE] == _BUY
        elif known:  # closed: the value holds the book and side (closed_value)
            b, buy = closed_book_side(slot)
        else:  # unknown, a fill naming its account, symbol and side: the book once the fill is valid
            b = np.int64(-1)
            buy = origin[i, 2] == _BUY
        if kind != _FILL:
            if not is_open:
                status_out[i] = X_CLOSED
                continue
            m = mark0(sym, book_pair[b, BP_SYMBOL]) if var_on else 0.0
            w_old = book_w(book, b, m)
            _release(slot, ordf[slot, OF_OPEN], ordf, ordi, book, acct)
            if var_on:
                var_move(
                    ordi[slot, OI_ACCOUNT],
                    book_pair[b, BP_SYMBOL],
                    w_old,
                    book_w(book, b, m),
                    vsym,
                    vacct,
                    vctl,
                )
            _close(slot, bucket, ordi, ord_ht, free, ring, acct, ctr)
            status_out[i] = X_APPLIED
            book_out[i] = b
            continue
        f = xf[i, 0]
        x = xf[i, 1]
        if not (math.isfinite(f) and f > 0.0 and math.isfinite(x) and x > 0.0 and f * x <= max_notional):
            status_out[i] = X_BAD_FILL
            continue
        if not known:
            b = find_or_open_book(origin[i, 0], origin[i, 1], book_ht, book, book_pair, sym_books, ctr)
        w_old = book_w(book, b, mark0(sym, book_pair[b, BP_SYMBOL]))
        open_qty = 0.0
        if is_open:
            open_qty = ordf[slot, OF_OPEN]
            released = min(f, open_qty)
            if released > 0.0:
                _release(slot, released, ordf, ordi, book, acct)
        s = book_pair[b, BP_SYMBOL]
        old_pos = book[b, B_POS]
        old_mark = mark_of(sym, s)
        sym[s, S_FILL] = x
        new_mark = mark_of(sym, s)
        # Revalue the other holders (only when the fill price is the mark), then book b at the new mark.
        remark(s, old_mark, new_mark, b, acct, book, book_pair, sym_books)
        new_pos = old_pos + f if buy else old_pos - f
        move_position(b, new_pos, old_mark, new_mark, acct, book, book_pair, sym_books)
        if var_on:
            old0 = old_mark if old_mark == old_mark else 0.0
            new0 = new_mark if new_mark == new_mark else 0.0
            var_remark(s, old0, new0, b, book, book_pair, sym_books, vsym, vacct, vctl)
            var_move(book_pair[b, BP_ACCOUNT], s, w_old, book_w(book, b, new0), vsym, vacct, vctl)
        book_out[i] = b
        if not is_open:
            status_out[i] = X_LATE_FILL if known else X_UNKNOWN_FILLED
            continue
        if ordf[slot, OF_OPEN] <= 0.0:
            ordf[slot, OF_OPEN] = 0.0
            _close(slot, bucket, ordi, ord_ht, free, ring, acct, ctr)
        else:
            open_out[i] = ordf[slot, OF_OPEN]
        status_out[i] = X_OVERFILL if f > open_qty else X_APPLIED
    trim_ring(ord_ht, ring, ctr)


@njit(cache=True, nogil=True, inline="always")
def _close(slot, bucket, ordi, ord_ht, free, ring, acct, ctr) -> None:
    """Close the open order in slot (its id in ord_ht[bucket]): the id keeps its book and side in
    the order table, the slot goes straight back to the free stack, the id to the retention ring."""
    a = ordi[slot, OI_ACCOUNT]
    acct[a, A_OPEN_COUNT] -= 1.0
    reset_open_if_flat(acct, a)
    ctr[C_OPEN] -= 1
    ord_ht[bucket, 1] = closed_value(ordi[slot, OI_BOOK], ordi[slot, OI_SIDE])
    free[ctr[C_FREE_TOP]] = slot
    ctr[C_FREE_TOP] += 1
    _retire(ord_ht[bucket, 0], ring, ctr)


@njit(cache=True, nogil=True)
def find_or_open_book(
    a: np.int64,
    s: np.int64,
    book_ht: np.ndarray,
    book: np.ndarray,
    book_pair: np.ndarray,
    sym_books: np.ndarray,
    ctr: np.ndarray,
) -> np.int64:
    """The book of (a, s), opened with an unresolved limit cache if new (the engine guarantees room).

    Unlike check_batch, which resolves an order's limits into the spare row before opening a book
    there, callers outside the check kernel find another pair's levels in that row: B_LIM_TAG = 0
    makes the next check resolve them.
    """
    b = ht_find(book_ht, book_key(a, s))
    if b < 0:
        b = open_book(a, s, book_ht, book, book_pair, sym_books, ctr)
        book[b, B_LIM_TAG] = 0.0
    return b


@njit(cache=True, nogil=True)
def load_positions(
    account_ids: np.ndarray,
    symbol_ids: np.ndarray,
    qty: np.ndarray,
    accounts: Accounts,
    symbols: Symbols,
    books: Books,
    var: VarState,
    book_out: np.ndarray,
) -> None:
    """Replace positions, creating books as needed (the engine guarantees room)."""
    acct, ctr = accounts
    sym, sym_books = symbols
    book_ht, book, book_pair = books
    vsym, vacct, vctl = var
    var_on = vctl[VC_ON] != 0.0
    for i in range(account_ids.shape[0]):
        s = symbol_ids[i]
        b = find_or_open_book(account_ids[i], s, book_ht, book, book_pair, sym_books, ctr)
        mark = mark_of(sym, s)
        m = mark if mark == mark else 0.0
        w_old = book_w(book, b, m)
        move_position(b, qty[i], mark, mark, acct, book, book_pair, sym_books)
        if var_on:
            var_move(account_ids[i], s, w_old, book_w(book, b, m), vsym, vacct, vctl)
        book_out[i] = b


_RESTORE_AHEAD = 16  # prefetch distance in rows (restore_orders)


@njit(cache=True, nogil=True)
def restore_orders(
    keys: np.ndarray,
    account_ids: np.ndarray,
    symbol_ids: np.ndarray,
    sides: np.ndarray,
    open_qty: np.ndarray,
    prices: np.ndarray,
    closed: np.int64,
    start: np.int64,
    accounts: Accounts,
    symbols: Symbols,
    books: Books,
    orders: Orders,
) -> np.int64:
    """Re-remember recovered closed orders (rows < closed, oldest first) and re-open the open ones,
    from row start on; returns the row it stopped at (all rows: keys.shape[0]).

    Start-up only. It stops early when the book table has no room for another new book: the
    engine grows it and calls again from there. The engine guarantees a free slot per open row.
    The exposure sums (and VaR terms) are left to exposure.recompute_exposure (var.var_recompute),
    run once after.
    The order-table and book-table buckets are prefetched _RESTORE_AHEAD rows ahead.
    """
    acct, ctr = accounts
    sym_books = symbols[1]
    book_ht, book, book_pair = books
    ord_ht, ordf, ordi, free, ring = orders
    n = keys.shape[0]
    omask = ord_ht.shape[0] - 1
    bmask = book_ht.shape[0] - 1
    for i in range(start, n):
        j = i + _RESTORE_AHEAD
        if j < n:
            prefetch(ord_ht, ht_bucket(keys[j], omask), 0)
            prefetch(book_ht, ht_bucket(book_key(account_ids[j], symbol_ids[j]), bmask), 0)
        need = ctr[C_BOOKS] + 2  # a new book plus check_batch's spare row (Engine._fit_books)
        if need > book.shape[0] or 2 * need > book_ht.shape[0]:
            return i
        a = account_ids[i]
        side = sides[i]
        b = find_or_open_book(a, symbol_ids[i], book_ht, book, book_pair, sym_books, ctr)
        if i < closed:
            if ctr[C_RING_COUNT] == ring.shape[0]:
                trim_ring(ord_ht, ring, ctr)
            ht_put(ord_ht, keys[i], closed_value(b, side))
            _retire(keys[i], ring, ctr)
            continue
        q = open_qty[i]
        slot = take_slot(free, ctr)
        ht_put(ord_ht, keys[i], slot)
        fill_slot(ordf, ordi, slot, q, q, prices[i], side, b, a)
        if side == _BUY:
            book[b, B_OPEN_BUY] += q
        else:
            book[b, B_OPEN_SELL] += q
        acct[a, A_OPEN_COUNT] += 1.0
        ctr[C_OPEN] += 1
    trim_ring(ord_ht, ring, ctr)
    return n


@njit(cache=True, nogil=True)
def unknown_ids(keys: np.ndarray, rows: np.ndarray, ord_ht: np.ndarray) -> np.ndarray:
    """Whether the order table lacks each of keys[rows]: the fills whose account and symbol the
    engine interns before apply_executions (a known order's own book wins over what a report names)."""
    out = np.empty(rows.shape[0], dtype=np.bool_)
    for j in range(rows.shape[0]):
        out[j] = ht_find(ord_ht, keys[rows[j]]) == -1
    return out
