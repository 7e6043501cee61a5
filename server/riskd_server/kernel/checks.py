"""The pre-trade check kernel: every limit for a whole batch in one numba pass.

Pure: it reads and writes only the arrays it is given (see ``layout``), knows nothing of gRPC,
asyncio or PostgreSQL, and writes reject codes, never messages. The engine guarantees capacity
(free order slots, book rows, hash-table room) before calling it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._hashtable import ht_find, ht_put
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
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POS,
    B_SYMBOL,
    C_BOOKS,
    C_FIRM_TRADING,
    C_FREE_TOP,
    C_OPEN,
    IN_ACCOUNT,
    IN_KEY,
    IN_PRICE,
    IN_QTY,
    IN_SIDE,
    IN_SYMBOL,
    L_THRESHOLD,
    L_WARN,
    LIMIT_BUILTIN,
    LIMIT_CAPACITY,
    OF_OPEN,
    OF_PRICE,
    OF_QTY,
    OI_ACCOUNT,
    OI_BOOK,
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


@njit(cache=True, nogil=True, inline="always")
def book_key(account: np.int64, symbol: np.int64) -> np.int64:
    return (np.int64(account) << SYMBOL_BITS) | np.int64(symbol)


@njit(cache=True, nogil=True, inline="always")
def exact_limit_key(account: np.int64, symbol: np.int64, kind: np.int64) -> np.int64:
    return (((np.int64(account) << SYMBOL_BITS) | np.int64(symbol)) << 4) | np.int64(kind)


@njit(cache=True, nogil=True, inline="always")
def mark_of(sym: np.ndarray, s: np.int64) -> float:
    """Last UpdatePrices price, else last fill price, else NaN."""
    px = sym[s, S_PRICE]
    if px == px:
        return px
    return sym[s, S_FILL]


@njit(cache=True, nogil=True)
def find_limit(
    kind: np.int64,
    a: np.int64,
    s: np.int64,
    lim_exact: np.ndarray,
    lim_acct: np.ndarray,
    lim_sym: np.ndarray,
    lim_any: np.ndarray,
) -> np.int64:
    """Index of the most specific enabled limit of kind for (a, s), or -1."""
    found = ht_find(lim_exact, exact_limit_key(a, s, kind))
    if found >= 0:
        return found
    if a < lim_acct.shape[0]:
        v = lim_acct[a, kind]
        if v >= 0:
            return v
    if s < lim_sym.shape[0]:
        v = lim_sym[s, kind]
        if v >= 0:
            return v
    return lim_any[kind]


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


@njit(cache=True, nogil=True)
def check_batch(
    oi: np.ndarray,
    of: np.ndarray,
    now: float,
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
    lim_acct: np.ndarray,
    lim_sym: np.ndarray,
    lim_any: np.ndarray,
    lim_f: np.ndarray,
    mask_out: np.ndarray,
    vi: np.ndarray,
    vf: np.ndarray,
) -> np.int64:
    """Check orders in sequence, open the accepted ones; returns the number of violations written."""
    nv = np.int64(0)
    firm_state = ctr[C_FIRM_TRADING]
    for i in range(oi.shape[0]):
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
        bidx = ht_find(book_ht, book_key(a, s))
        if bidx >= 0:
            pos = book[bidx, B_POS]
            open_buy = book[bidx, B_OPEN_BUY]
            open_sell = book[bidx, B_OPEN_SELL]
        else:
            pos = 0.0
            open_buy = 0.0
            open_sell = 0.0
        signed = qty if side == _BUY else -qty

        for kind in range(1, 10):
            if kind == _OPEN_ORDERS and ctr[C_FREE_TOP] <= 0:
                # Server capacity: no free order slot (the engine grows slots up to the configured bound).
                mask |= np.uint32(1) << np.uint32(_OPEN_ORDERS)
                nv = _emit(vi, vf, nv, i, _OPEN_ORDERS, LIMIT_CAPACITY, float(ctr[C_OPEN] + 1), 0.0, False)
            li = find_limit(kind, a, s, lim_exact, lim_acct, lim_sym, lim_any)
            if li < 0:
                continue
            t = lim_f[li, L_THRESHOLD]
            wf = lim_f[li, L_WARN]
            observed = 0.0
            breach = False
            evaluated = True
            if kind == _QTY:
                observed = qty
                breach = observed > t
            elif kind == _NOTIONAL:
                if has_p:
                    observed = qty * p
                    breach = observed > t
                else:
                    evaluated = False
            elif kind == _POSITION:
                if side == _BUY:
                    observed = pos + open_buy + qty
                else:
                    observed = -(pos - open_sell - qty)
                breach = observed > t
            elif kind == _GROSS:
                if has_p:
                    observed = acct[a, A_POS_GROSS] + acct[a, A_OPEN_GROSS] + qty * p
                    breach = observed > t
                else:
                    evaluated = False
            elif kind == _NET:
                if has_p:
                    net = acct[a, A_POS_NET] + acct[a, A_OPEN_NET]
                    observed = abs(net + signed * p)
                    breach = observed > t and observed > abs(net)
                else:
                    evaluated = False
            elif kind == _COLLAR:
                if px > 0.0 and has_mark:
                    observed = abs(px - mark) / mark
                    breach = observed > t
                else:
                    evaluated = False
            elif kind == _RATE:
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
                    tokens -= 1.0
                    observed = t - tokens
                else:
                    observed = t - tokens + 1.0
                    breach = True
                acct[a, A_TOKENS] = tokens
            elif kind == _OPEN_ORDERS:
                observed = acct[a, A_OPEN_COUNT] + 1.0
                breach = observed > t
            else:  # _RESTRICTED: any matching enabled limit rejects
                nv = _emit(vi, vf, nv, i, kind, li, 1.0, t, False)
                mask |= np.uint32(1) << np.uint32(kind)
                continue
            if not evaluated:
                continue
            if breach:
                mask |= np.uint32(1) << np.uint32(kind)
                nv = _emit(vi, vf, nv, i, kind, li, observed, t, False)
            elif wf > 0.0 and observed > wf * t:
                nv = _emit(vi, vf, nv, i, kind, li, observed, t, True)

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
        if mask != 0:
            continue

        # Accepted: open the order.
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
        else:
            book[bidx, B_OPEN_SELL] += qty
        acct[a, A_OPEN_GROSS] += qty * p
        acct[a, A_OPEN_NET] += signed * p
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
    return nv
