"""The pre-trade check kernel: every limit for a whole batch in one numba pass.

Pure: it reads and writes only the arrays it is given (see ``layout``), knows nothing of gRPC,
asyncio or PostgreSQL, and writes reject codes, never messages. The engine guarantees capacity
(free order slots, book rows plus one spare, hash-table room) before calling it.

Why it is shaped this way (see bench/kernel_bench.py for the figures):

* Orders go in chunks: a gather pass prefetches every hash bucket and row the chunk's checks will
  touch (order table, book table, book rows, the free slots it will take), so their cache misses
  overlap instead of costing one DRAM round trip each; the checks then run on cached rows.
* The limit that applies to an (account, symbol) for each kind is resolved once per book and
  limit-book version and cached in the book row (``B_LIM_TAG``): a check reads one row instead of
  probing four tables per kind.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._hashtable import ht_bucket, ht_find, ht_put
from ._prefetch import prefetch
from .layout import (
    A_BUCKET_SET,
    A_LAST_TS,
    A_OPEN_COUNT,
    A_OPEN_GROSS,
    A_OPEN_NET,
    A_POS_GROSS,
    A_POS_NET,
    A_TOKENS,
    A_TRADING,
    B_ACCOUNT,
    B_FIELDS,
    B_LIM_TAG,
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POS,
    B_SYMBOL,
    C_BOOKS,
    C_FIRM_TRADING,
    C_FREE_TOP,
    C_OPEN,
    IN_ACCOUNT,
    IN_BOOK,
    IN_KEY,
    IN_PRICE,
    IN_QTY,
    IN_SIDE,
    IN_SYMBOL,
    KEY_TAG,
    L_THRESHOLD,
    L_WARN,
    LIMIT_BUILTIN,
    LIMIT_CAPACITY,
    LT_ACCOUNTS,
    OF_FIELDS,
    OF_OPEN,
    OF_PRICE,
    OF_QTY,
    OI_ACCOUNT,
    OI_BOOK,
    OI_FIELDS,
    OI_KEY,
    OI_SIDE,
    OI_STATE,
    ORDER_OPEN,
    S_FILL,
    S_PRICE,
    SYMBOL_BITS,
    V_CHECK,
    V_LIMIT,
    V_ORDER,
    V_WARNING,
)

# RiskCheck values
_QTY = 1
_NOTIONAL = 2
_POSITION = 3
_GROSS = 4
_NET = 5
_COLLAR = 6
_RATE = 7
_OPEN_ORDERS = 8
_RESTRICTED = 9
_INVALID = 20
_DUPLICATE = 21
_HALTED = 22
_REDUCE_ONLY = 23
_NO_REF = 24

_BUY = 1
_SELL = 2
_HALTED_STATE = 3
_REDUCING_STATE = 2
_CHUNK = 128  # orders gathered ahead of their checks: their rows (~1 KB each) stay in L1/L2


@njit(cache=True, nogil=True, inline="always")
def book_key(account: np.int64, symbol: np.int64) -> np.int64:
    return KEY_TAG | (np.int64(account) << SYMBOL_BITS) | np.int64(symbol)


@njit(cache=True, nogil=True, inline="always")
def exact_limit_key(account: np.int64, symbol: np.int64, kind: np.int64) -> np.int64:
    return KEY_TAG | (((np.int64(account) << SYMBOL_BITS) | np.int64(symbol)) << 4) | np.int64(kind)


@njit(cache=True, nogil=True, inline="always")
def mark_of(sym: np.ndarray, s: np.int64) -> float:
    """Last UpdatePrices price, else last fill price, else NaN."""
    px = sym[s, S_PRICE]
    if px == px:
        return px
    return sym[s, S_FILL]


@njit(cache=True, nogil=True)
def find_limit(
    kind: np.int64, a: np.int64, s: np.int64, lim_exact: np.ndarray, lim_tab: np.ndarray
) -> np.int64:
    """Index of the most specific enabled limit of kind for (a, s), or -1."""
    found = ht_find(lim_exact, exact_limit_key(a, s, kind))
    if found >= 0:
        return found
    n_acct = lim_tab[0, LT_ACCOUNTS]
    if a < n_acct:
        v = lim_tab[1 + a, kind]
        if v >= 0:
            return v
    r = 1 + n_acct + s
    if r < lim_tab.shape[0]:
        v = lim_tab[r, kind]
        if v >= 0:
            return v
    return lim_tab[0, kind]


@njit(cache=True, nogil=True)
def resolve_book_limits(
    row: np.int64, a: np.int64, s: np.int64, tag: float, book: np.ndarray, lim_exact: np.ndarray, lim_tab
) -> None:
    """Cache in book[row] the limit of every kind that applies to (a, s) under the limit book tag."""
    for kind in range(1, 10):
        book[row, B_LIM_TAG + kind] = find_limit(kind, a, s, lim_exact, lim_tab)
    book[row, B_LIM_TAG] = tag


@njit(cache=True, nogil=True, inline="always")
def _emit(
    vi: np.ndarray,
    vf: np.ndarray,
    nv: np.int64,
    order: np.int64,
    check: np.int64,
    limit: np.int64,
    observed: float,
    threshold: float,
    warning: bool,
) -> np.int64:
    vi[nv, V_ORDER] = order
    vi[nv, V_CHECK] = check
    vi[nv, V_LIMIT] = limit
    vi[nv, V_WARNING] = 1 if warning else 0
    vf[nv, 0] = observed
    vf[nv, 1] = threshold
    return nv + 1


@njit(cache=True, nogil=True, inline="always")
def _judge(vi, vf, nv, mask, order, kind, li, observed, breach, threshold, warn):
    """Record an evaluated limit: a reject on breach, else a warning past warn * threshold."""
    if breach:
        mask |= np.uint32(1) << np.uint32(kind)
        nv = _emit(vi, vf, nv, order, kind, li, observed, threshold, False)
    elif warn > 0.0 and observed > warn * threshold:
        nv = _emit(vi, vf, nv, order, kind, li, observed, threshold, True)
    return nv, mask


@njit(cache=True, nogil=True)
def _gather(
    oi: np.ndarray,
    lo: np.int64,
    hi: np.int64,
    book_ht: np.ndarray,
    book: np.ndarray,
    ord_ht: np.ndarray,
    ordf: np.ndarray,
    ordi: np.ndarray,
    free: np.ndarray,
    ctr: np.ndarray,
) -> None:
    """Prefetch what orders lo..hi will touch and store each one's book index (IN_BOOK, -1 if none)."""
    bmask = book_ht.shape[0] - 1
    omask = ord_ht.shape[0] - 1
    for i in range(lo, hi):
        a = oi[i, IN_ACCOUNT]
        s = oi[i, IN_SYMBOL]
        if a >= 0 and s >= 0:
            prefetch(book_ht, ht_bucket(book_key(a, s), bmask), 0)
        prefetch(ord_ht, ht_bucket(oi[i, IN_KEY], omask), 0)
    top = ctr[C_FREE_TOP]
    for j in range(min(hi - lo, top)):
        slot = free[top - 1 - j]
        prefetch(ordi, slot, 0)
        prefetch(ordi, slot, OI_FIELDS - 1)
        prefetch(ordf, slot, 0)
        prefetch(ordf, slot, OF_FIELDS - 1)
    for i in range(lo, hi):
        a = oi[i, IN_ACCOUNT]
        s = oi[i, IN_SYMBOL]
        b = np.int64(-1)
        if a >= 0 and s >= 0:
            b = ht_find(book_ht, book_key(a, s))
            if b >= 0:
                prefetch(book, b, 0)
                prefetch(book, b, B_LIM_TAG)
                prefetch(book, b, B_FIELDS - 1)
        oi[i, IN_BOOK] = b


@njit(cache=True, nogil=True)
def check_batch(
    oi: np.ndarray,
    of: np.ndarray,
    now: float,
    mask_out: np.ndarray,
    vi: np.ndarray,
    vf: np.ndarray,
    acct: np.ndarray,
    sym: np.ndarray,
    book_ht: np.ndarray,
    book: np.ndarray,
    ord_ht: np.ndarray,
    ordf: np.ndarray,
    ordi: np.ndarray,
    free: np.ndarray,
    ctr: np.ndarray,
    lim_exact: np.ndarray,
    lim_tab: np.ndarray,
    lim_f: np.ndarray,
    lim_version: np.int64,
) -> np.int64:
    """Check orders in sequence, open the accepted ones; returns the number of violations written."""
    nv = np.int64(0)
    n = oi.shape[0]
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        _gather(oi, lo, hi, book_ht, book, ord_ht, ordf, ordi, free, ctr)
        nv = _check_chunk(
            oi, of, lo, hi, nv, now, mask_out, vi, vf, acct, sym, book_ht, book, ord_ht, ordf, ordi, free,
            ctr, lim_exact, lim_tab, lim_f, float(lim_version + 1),
        )  # fmt: skip
    return nv


@njit(cache=True, nogil=True, inline="always")
def _check_chunk(
    oi: np.ndarray,
    of: np.ndarray,
    lo: np.int64,
    hi: np.int64,
    nv: np.int64,
    now: float,
    mask_out: np.ndarray,
    vi: np.ndarray,
    vf: np.ndarray,
    acct: np.ndarray,
    sym: np.ndarray,
    book_ht: np.ndarray,
    book: np.ndarray,
    ord_ht: np.ndarray,
    ordf: np.ndarray,
    ordi: np.ndarray,
    free: np.ndarray,
    ctr: np.ndarray,
    lim_exact: np.ndarray,
    lim_tab: np.ndarray,
    lim_f: np.ndarray,
    tag: float,
) -> np.int64:
    """check_batch's loop over orders lo..hi (gathered); returns the new violation count."""
    firm_state = ctr[C_FIRM_TRADING]
    for i in range(lo, hi):
        a = oi[i, IN_ACCOUNT]
        s = oi[i, IN_SYMBOL]
        side = oi[i, IN_SIDE]
        key = oi[i, IN_KEY]
        qty = of[i, IN_QTY]
        px = of[i, IN_PRICE]
        if (
            a < 0
            or s < 0
            or (side != _BUY and side != _SELL)
            or not math.isfinite(qty)
            or qty <= 0.0
            or not math.isfinite(px)
            or px < 0.0
        ):
            mask_out[i] = np.uint32(1) << np.uint32(_INVALID)
            nv = _emit(vi, vf, nv, i, _INVALID, LIMIT_BUILTIN, 0.0, 0.0, False)
            continue

        mask = np.uint32(0)
        mark = mark_of(sym, s)
        has_mark = mark == mark
        if px > 0.0:
            p = px
            has_p = True
        else:
            p = mark
            has_p = has_mark
        bidx = oi[i, IN_BOOK]
        if bidx < 0:  # gathered before an earlier order of this batch opened the book?
            bidx = ht_find(book_ht, book_key(a, s))
        if bidx >= 0:
            row = bidx
            pos = book[row, B_POS]
            open_buy = book[row, B_OPEN_BUY]
            open_sell = book[row, B_OPEN_SELL]
            if book[row, B_LIM_TAG] != tag:
                resolve_book_limits(row, a, s, tag, book, lim_exact, lim_tab)
        else:
            # No book yet: resolve into the next free book row, which becomes the book if accepted.
            row = ctr[C_BOOKS]
            pos = 0.0
            open_buy = 0.0
            open_sell = 0.0
            resolve_book_limits(row, a, s, tag, book, lim_exact, lim_tab)
        signed = qty if side == _BUY else -qty

        # Limits, kind 1..9 in order (the Violation order); an unevaluable limit is skipped.
        li = np.int64(book[row, B_LIM_TAG + _QTY])
        if li >= 0:
            t = lim_f[li, L_THRESHOLD]
            nv, mask = _judge(vi, vf, nv, mask, i, _QTY, li, qty, qty > t, t, lim_f[li, L_WARN])
        li = np.int64(book[row, B_LIM_TAG + _NOTIONAL])
        if li >= 0 and has_p:
            t = lim_f[li, L_THRESHOLD]
            observed = qty * p
            nv, mask = _judge(
                vi, vf, nv, mask, i, _NOTIONAL, li, observed, observed > t, t, lim_f[li, L_WARN]
            )
        li = np.int64(book[row, B_LIM_TAG + _POSITION])
        if li >= 0:
            t = lim_f[li, L_THRESHOLD]
            observed = pos + open_buy + qty if side == _BUY else -(pos - open_sell - qty)
            nv, mask = _judge(
                vi, vf, nv, mask, i, _POSITION, li, observed, observed > t, t, lim_f[li, L_WARN]
            )
        li = np.int64(book[row, B_LIM_TAG + _GROSS])
        if li >= 0 and has_p:
            t = lim_f[li, L_THRESHOLD]
            observed = acct[a, A_POS_GROSS] + acct[a, A_OPEN_GROSS] + qty * p
            nv, mask = _judge(vi, vf, nv, mask, i, _GROSS, li, observed, observed > t, t, lim_f[li, L_WARN])
        li = np.int64(book[row, B_LIM_TAG + _NET])
        if li >= 0 and has_p:
            t = lim_f[li, L_THRESHOLD]
            net = acct[a, A_POS_NET] + acct[a, A_OPEN_NET]
            observed = abs(net + signed * p)
            breach = observed > t and observed > abs(net)
            nv, mask = _judge(vi, vf, nv, mask, i, _NET, li, observed, breach, t, lim_f[li, L_WARN])
        li = np.int64(book[row, B_LIM_TAG + _COLLAR])
        if li >= 0 and px > 0.0 and has_mark:
            t = lim_f[li, L_THRESHOLD]
            observed = abs(px - mark) / mark
            nv, mask = _judge(vi, vf, nv, mask, i, _COLLAR, li, observed, observed > t, t, lim_f[li, L_WARN])
        li = np.int64(book[row, B_LIM_TAG + _RATE])
        if li >= 0:
            t = lim_f[li, L_THRESHOLD]
            observed, breach = _take_token(acct, a, t, now)
            nv, mask = _judge(vi, vf, nv, mask, i, _RATE, li, observed, breach, t, lim_f[li, L_WARN])
        if ctr[C_FREE_TOP] <= 0:
            # Server capacity: no free order slot (the engine grows slots up to the configured bound).
            mask |= np.uint32(1) << np.uint32(_OPEN_ORDERS)
            nv = _emit(vi, vf, nv, i, _OPEN_ORDERS, LIMIT_CAPACITY, float(ctr[C_OPEN] + 1), 0.0, False)
        li = np.int64(book[row, B_LIM_TAG + _OPEN_ORDERS])
        if li >= 0:
            t = lim_f[li, L_THRESHOLD]
            observed = acct[a, A_OPEN_COUNT] + 1.0
            nv, mask = _judge(
                vi, vf, nv, mask, i, _OPEN_ORDERS, li, observed, observed > t, t, lim_f[li, L_WARN]
            )
        li = np.int64(book[row, B_LIM_TAG + _RESTRICTED])
        if li >= 0:  # any matching enabled limit rejects
            mask |= np.uint32(1) << np.uint32(_RESTRICTED)
            nv = _emit(vi, vf, nv, i, _RESTRICTED, li, 1.0, lim_f[li, L_THRESHOLD], False)

        if ht_find(ord_ht, key) >= 0:
            mask |= np.uint32(1) << np.uint32(_DUPLICATE)
            nv = _emit(vi, vf, nv, i, _DUPLICATE, LIMIT_BUILTIN, 0.0, 0.0, False)

        state = max(firm_state, np.int64(acct[a, A_TRADING]))
        if state == _HALTED_STATE:
            mask |= np.uint32(1) << np.uint32(_HALTED)
            nv = _emit(vi, vf, nv, i, _HALTED, LIMIT_BUILTIN, 0.0, 0.0, False)
        elif state == _REDUCING_STATE:
            if side == _BUY:
                reduces = pos < 0.0 and pos + open_buy + qty <= 0.0
            else:
                reduces = pos > 0.0 and pos - open_sell - qty >= 0.0
            if not reduces:
                mask |= np.uint32(1) << np.uint32(_REDUCE_ONLY)
                nv = _emit(vi, vf, nv, i, _REDUCE_ONLY, LIMIT_BUILTIN, 0.0, 0.0, False)

        if not has_p:
            mask |= np.uint32(1) << np.uint32(_NO_REF)
            nv = _emit(vi, vf, nv, i, _NO_REF, LIMIT_BUILTIN, 0.0, 0.0, False)

        mask_out[i] = mask
        if mask == 0:
            _open_order(a, s, side, key, qty, p, bidx, acct, book_ht, book, ord_ht, ordf, ordi, free, ctr)
    return nv


@njit(cache=True, nogil=True, inline="always")
def _open_order(
    a: np.int64,
    s: np.int64,
    side: np.int64,
    key: np.int64,
    qty: float,
    p: float,
    bidx: np.int64,
    acct: np.ndarray,
    book_ht: np.ndarray,
    book: np.ndarray,
    ord_ht: np.ndarray,
    ordf: np.ndarray,
    ordi: np.ndarray,
    free: np.ndarray,
    ctr: np.ndarray,
) -> None:
    """Open an accepted order: its book (created in the row its limits were resolved into), slot, totals."""
    if bidx < 0:
        bidx = ctr[C_BOOKS]
        ctr[C_BOOKS] = bidx + 1
        ht_put(book_ht, book_key(a, s), bidx)
        book[bidx, B_POS] = 0.0
        book[bidx, B_OPEN_BUY] = 0.0
        book[bidx, B_OPEN_SELL] = 0.0
        book[bidx, B_ACCOUNT] = a
        book[bidx, B_SYMBOL] = s
    if side == _BUY:
        book[bidx, B_OPEN_BUY] += qty
        acct[a, A_OPEN_NET] += qty * p
    else:
        book[bidx, B_OPEN_SELL] += qty
        acct[a, A_OPEN_NET] += -qty * p
    acct[a, A_OPEN_GROSS] += qty * p
    acct[a, A_OPEN_COUNT] += 1.0
    ctr[C_OPEN] += 1
    top = ctr[C_FREE_TOP] - 1
    ctr[C_FREE_TOP] = top
    slot = free[top]
    ht_put(ord_ht, key, slot)
    ordf[slot, OF_QTY] = qty
    ordf[slot, OF_OPEN] = qty
    ordf[slot, OF_PRICE] = p
    ordi[slot, OI_STATE] = ORDER_OPEN
    ordi[slot, OI_SIDE] = side
    ordi[slot, OI_BOOK] = bidx
    ordi[slot, OI_ACCOUNT] = a
    ordi[slot, OI_KEY] = key


@njit(cache=True, nogil=True, inline="always")
def _take_token(acct: np.ndarray, a: np.int64, t: float, now: float) -> tuple[float, bool]:
    """Refill account a's bucket (rate t per second, capacity t) and take one token; (observed, breach)."""
    tokens = acct[a, A_TOKENS]
    if acct[a, A_BUCKET_SET] == 0.0:
        tokens = t
        acct[a, A_BUCKET_SET] = 1.0
    else:
        elapsed = now - acct[a, A_LAST_TS]
        if elapsed < 0.0:
            elapsed = 0.0
        tokens = min(t, tokens + elapsed * t)
    acct[a, A_LAST_TS] = now
    if tokens >= 1.0:
        acct[a, A_TOKENS] = tokens - 1.0
        return t - (tokens - 1.0), False
    acct[a, A_TOKENS] = tokens
    return t - tokens + 1.0, True
