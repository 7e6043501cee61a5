"""A checked batch applied again with its recorded outcome forced: the replay of a CHECK record.

The journal holds each check's reply (engine.replay); replaying it must not check again, because
what decided it (the limits and dynamic thresholds, the risk model, the clock in force then) is not
reproducible. ``open_recorded`` does to the state exactly what check_batch did for that outcome:

* every order the check looked at (all but the INVALID ones, which stop before the bucket) takes a
  token from its account's order-rate bucket at the record's ``now`` when a rate limit applies;
* every accepted order is opened (its book created if new, its slot, the book's and account's
  totals) and, with a risk model installed, moves its account's VaR terms;

with check_batch's own helpers (open_book, _open_order, _take_token) and its VaR update written
out the same way, so the arrays end bit for bit where the check left them. A separate kernel, not a
flag on check_batch: the check's loop stays as it is measured.

An accepted order the state cannot take (its id already in the order table, no free slot, an
account or symbol the replica does not know: the replica diverged from the original) is skipped
and counted, never half applied; the engine logs the count.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._hashtable import ht_find, ht_slot
from .checks import _open_order, _take_token, book_key, mark_of, open_book
from .layout import (
    A_LIM_TAG,
    A_RATE,
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POS,
    C_FREE_TOP,
    IN_ACCOUNT,
    IN_KEY,
    IN_PRICE,
    IN_QTY,
    IN_SIDE,
    IN_SYMBOL,
    VA_F,
    VA_SPEC,
    VA_SPEC_LO,
    VA_V,
    VC_CHECKS,
    VC_DEFAULT,
    VC_K,
    VC_ON,
    VC_REJECTED,
    VS_SPEC,
)
from .levels import _INVALID, resolve_account_limits, resolve_book_limits
from .state import Accounts, Books, LimitTables, Orders, Symbols, VarState
from .var import book_w, dd_replace

_INVALID_BIT = np.uint32(1) << np.uint32(_INVALID)


@njit(cache=True, nogil=True)
def open_recorded(
    oi: np.ndarray,
    of: np.ndarray,
    mask: np.ndarray,
    now: float,
    accounts: Accounts,
    symbols: Symbols,
    books: Books,
    orders: Orders,
    limits: LimitTables,
    var: VarState,
) -> np.int64:
    """Apply a check's recorded outcome (``mask``: its reject_mask, 0 = accepted) to the state;
    returns the accepted orders that could not be opened (0 unless the state diverged).

    oi, of are the batch's input rows as the check built them (layout.IN_*). The engine guarantees
    room as for check_batch (book rows plus one, free slots).
    """
    acct, ctr = accounts
    sym, sym_books = symbols
    book_ht, book, book_pair = books
    vsym, vacct, vctl = var
    var_on = vctl[VC_ON] != 0.0
    vk = np.int64(vctl[VC_K])
    v_rows = vsym.shape[0]
    v_default = vctl[VC_DEFAULT]
    ord_ht, ordf, ordi, free, _ = orders
    lim_exact, lim_tab, lim_f, lim_version = limits
    tag = float(lim_version + 1)
    n_acct = acct.shape[0]
    n_sym = sym.shape[0]
    skipped = np.int64(0)
    for i in range(oi.shape[0]):
        m = mask[i]
        if m & _INVALID_BIT:  # the check stopped before the bucket
            continue
        a = oi[i, IN_ACCOUNT]
        s = oi[i, IN_SYMBOL]
        if a < 0 or s < 0 or a >= n_acct or s >= n_sym:
            skipped += 1 if m == 0 else 0
            continue
        if acct[a, A_LIM_TAG] != tag:
            resolve_account_limits(a, s, tag, acct, lim_exact, lim_tab, lim_f)
        rate_t = acct[a, A_RATE]
        if rate_t >= 0.0:
            _take_token(acct, a, rate_t, now)
        if m != 0:
            continue
        side = oi[i, IN_SIDE]
        key = oi[i, IN_KEY]
        qty = of[i, IN_QTY]
        px = of[i, IN_PRICE]
        bucket = ht_slot(ord_ht, key)
        if ord_ht[bucket, 0] == key or ctr[C_FREE_TOP] <= 0:
            skipped += 1
            continue
        mark = mark_of(sym, s)
        p = px if px > 0.0 else mark
        bidx = ht_find(book_ht, book_key(a, s))
        if bidx >= 0:
            pos = book[bidx, B_POS]
            open_buy = book[bidx, B_OPEN_BUY]
            open_sell = book[bidx, B_OPEN_SELL]
        else:
            pos = 0.0
            open_buy = 0.0
            open_sell = 0.0
            bidx = open_book(a, s, book_ht, book, book_pair, sym_books, ctr)
            # check_batch resolved the new book's levels into this row before accepting: a row
            # tagged with the current version must hold that version's levels.
            resolve_book_limits(bidx, a, s, tag, book, lim_exact, lim_tab, lim_f)
        _open_order(a, side, key, bucket, qty, p, bidx, acct, book, ord_ht, ordf, ordi, free, ctr)
        if var_on:  # check_batch's VaR move, written out the same way (bit for bit the same terms)
            m0 = mark if mark == mark else 0.0
            w_old = (pos + open_buy - open_sell) * m0
            w_new = book_w(book, bidx, m0)
            if s < v_rows:
                for j in range(vk):
                    bj = vsym[s, j]
                    dd_replace(vacct, a, VA_F + j, VA_F + vk + j, bj * w_new, bj * w_old)
                spec = vsym[s, vk + VS_SPEC]
            else:
                spec = v_default
            dd_replace(vacct, a, VA_SPEC, VA_SPEC_LO, spec * (w_new * w_new), spec * (w_old * w_old))
            v = vacct[a, VA_SPEC] + vacct[a, VA_SPEC_LO]
            for j in range(vk):
                fj = vacct[a, VA_F + j] + vacct[a, VA_F + vk + j]
                v += fj * fj
            vacct[a, VA_V] = v
    return skipped


@njit(cache=True, nogil=True)
def count_recorded(check: np.ndarray, warning: np.ndarray, mask: np.ndarray, counts: np.ndarray) -> None:
    """Count recorded violations (check, warning columns) and rejected orders (mask != 0: every
    reject writes a violation that is not a warning) into the engine's check counters, as
    kernel.rows.violation_columns counts the check's own (layout.VC_*)."""
    for k in range(check.shape[0]):
        c = check[k]
        if 0 <= c < VC_CHECKS:
            counts[c + c + (1 if warning[k] else 0)] += 1
    rejected = 0
    for i in range(mask.shape[0]):
        if mask[i] != 0:
            rejected += 1
    counts[VC_REJECTED] += rejected
