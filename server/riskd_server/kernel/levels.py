"""Which limit applies to an order, and the per-kind report levels check_batch caches for it.

check_batch (kernel.checks) compares every kind's observed value with the *report level* cached in
the book row (per-pair kinds) or account row (account-level kinds): the lowest observed value that
may breach or warn, +inf without a limit, -inf for a restricted symbol (see checks' module doc).
Here: the limit lookup (most specific enabled limit of a kind), the levels' resolution into those
rows, and the slow path of a flagged order (``report_limits``) that emits its exact violations.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .layout import (
    A_LIM_TAG,
    A_LVL_GROSS,
    A_LVL_NET,
    A_LVL_OPEN,
    A_LVL_RATE,
    A_LVL_VAR,
    A_RATE,
    B_LIM_TAG,
    B_LVL_COLLAR,
    B_LVL_NOTIONAL,
    B_LVL_POSITION,
    B_LVL_QTY,
    KEY_TAG,
    L_THRESHOLD,
    L_WARN,
    LIMIT_CAPACITY,
    LT_ACCOUNTS,
    SYMBOL_BITS,
    V_CHECK,
    V_LIMIT,
    V_ORDER,
    V_WARNING,
)
from .limittables import exact_find

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
_VAR = 10
_INVALID = 20
_DUPLICATE = 21
_HALTED = 22
_REDUCE_ONLY = 23
_NO_REF = 24


@njit(cache=True, nogil=True, inline="always")
def exact_limit_key(account: np.int64, symbol: np.int64, kind: np.int64) -> np.int64:
    return KEY_TAG | (((np.int64(account) << SYMBOL_BITS) | np.int64(symbol)) << 4) | np.int64(kind)


@njit(cache=True, nogil=True)
def find_limit(
    kind: np.int64, a: np.int64, s: np.int64, lim_exact: np.ndarray, lim_tab: np.ndarray
) -> np.int64:
    """Index of the most specific enabled limit of kind for (a, s), or -1.

    lim_exact is the arena of per-account exact tables (kernel.limittables), found through column 0
    of the account's row of lim_tab.
    """
    n_acct = lim_tab[0, LT_ACCOUNTS]
    if a < n_acct:
        off = lim_tab[1 + a, 0]
        if off >= 0:
            found = exact_find(lim_exact, off, s, kind)
            if found >= 0:
                return found
        v = lim_tab[1 + a, kind]
        if v >= 0:
            return v
    r = 1 + n_acct + s
    if r < lim_tab.shape[0]:
        v = lim_tab[r, kind]
        if v >= 0:
            return v
    return lim_tab[0, kind]


@njit(cache=True, nogil=True, inline="always")
def report_level(kind: np.int64, li: np.int64, lim_f: np.ndarray) -> float:
    """Lowest observed value at which limit li (of kind, -1 none) may breach or warn (see module doc)."""
    if li < 0:
        return math.inf
    if kind == _RESTRICTED:
        return -math.inf  # any order on a restricted symbol rejects
    t = lim_f[li, L_THRESHOLD]
    warn = lim_f[li, L_WARN]
    return min(t, warn * t) if warn > 0.0 else t


@njit(cache=True, nogil=True)
def resolve_book_limits(
    row: np.int64,
    a: np.int64,
    s: np.int64,
    tag: float,
    book: np.ndarray,
    lim_exact: np.ndarray,
    lim_tab: np.ndarray,
    lim_f: np.ndarray,
) -> None:
    """Cache in book[row] the report levels of the per-pair limits of (a, s) under the limit book tag."""
    level_qty = report_level(_QTY, find_limit(_QTY, a, s, lim_exact, lim_tab), lim_f)
    if find_limit(_RESTRICTED, a, s, lim_exact, lim_tab) >= 0:
        level_qty = -math.inf  # any order on a restricted symbol takes the exact path and rejects
    book[row, B_LVL_QTY] = level_qty
    book[row, B_LVL_NOTIONAL] = report_level(
        _NOTIONAL, find_limit(_NOTIONAL, a, s, lim_exact, lim_tab), lim_f
    )
    book[row, B_LVL_POSITION] = report_level(
        _POSITION, find_limit(_POSITION, a, s, lim_exact, lim_tab), lim_f
    )
    book[row, B_LVL_COLLAR] = report_level(_COLLAR, find_limit(_COLLAR, a, s, lim_exact, lim_tab), lim_f)
    book[row, B_LIM_TAG] = tag


@njit(cache=True, nogil=True)
def resolve_account_limits(
    a: np.int64,
    s: np.int64,
    tag: float,
    acct: np.ndarray,
    lim_exact: np.ndarray,
    lim_tab: np.ndarray,
    lim_f: np.ndarray,
) -> None:
    """Cache in acct[a] the report levels of the account-level limits under the limit book tag.

    These kinds take no symbol (LimitBook refuses one), so what find_limit resolves for them
    depends on the account alone, whichever symbol s is passed.
    """
    acct[a, A_LVL_GROSS] = report_level(_GROSS, find_limit(_GROSS, a, s, lim_exact, lim_tab), lim_f)
    acct[a, A_LVL_NET] = report_level(_NET, find_limit(_NET, a, s, lim_exact, lim_tab), lim_f)
    acct[a, A_LVL_OPEN] = report_level(
        _OPEN_ORDERS, find_limit(_OPEN_ORDERS, a, s, lim_exact, lim_tab), lim_f
    )
    li = find_limit(_RATE, a, s, lim_exact, lim_tab)
    acct[a, A_LVL_RATE] = report_level(_RATE, li, lim_f)
    acct[a, A_RATE] = lim_f[li, L_THRESHOLD] if li >= 0 else -1.0
    acct[a, A_LVL_VAR] = report_level(_VAR, find_limit(_VAR, a, s, lim_exact, lim_tab), lim_f)
    acct[a, A_LIM_TAG] = tag


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
def report_limits(
    vi: np.ndarray,
    vf: np.ndarray,
    nv: np.int64,
    order: np.int64,
    a: np.int64,
    s: np.int64,
    book_row: np.ndarray,
    acct_row: np.ndarray,
    lim_exact: np.ndarray,
    lim_tab: np.ndarray,
    lim_f: np.ndarray,
    qty: float,
    notional: float,
    position: float,
    gross: float,
    net: float,
    net_after: float,
    collar: float,
    rate: float,
    rate_breach: bool,
    open_count: float,
    full: bool,
    open_total: np.int64,
    var_after: float,
    var_before: float,
) -> tuple[np.int64, np.uint32]:
    """The slow path of a flagged order: its limit violations, kind 1..10 in order; (nv, mask).

    Only the kinds the cached report levels (book_row, acct_row) flag are resolved exactly: an
    observed value at or below its kind's level neither breaches nor warns. A NaN observed value
    (an unevaluable kind) compares false, so it is skipped too.
    """
    mask = np.uint32(0)
    # A restricted symbol's level is folded into the quantity level as -inf (see layout).
    restricted_level = -math.inf if book_row[B_LVL_QTY] == -math.inf else math.inf
    for kind in range(1, 11):
        if kind == _OPEN_ORDERS and full:  # the server's capacity, just before the configured limit
            mask |= np.uint32(1) << np.uint32(_OPEN_ORDERS)
            nv = _emit(vi, vf, nv, order, _OPEN_ORDERS, LIMIT_CAPACITY, float(open_total + 1), 0.0, False)
        if kind == _QTY:
            observed, level = qty, book_row[B_LVL_QTY]
        elif kind == _NOTIONAL:
            observed, level = notional, book_row[B_LVL_NOTIONAL]
        elif kind == _POSITION:
            observed, level = position, book_row[B_LVL_POSITION]
        elif kind == _GROSS:
            observed, level = gross, acct_row[A_LVL_GROSS]
        elif kind == _NET:
            observed, level = net_after, acct_row[A_LVL_NET]
        elif kind == _COLLAR:
            observed, level = collar, book_row[B_LVL_COLLAR]
        elif kind == _RATE:
            observed, level = rate, acct_row[A_LVL_RATE]
        elif kind == _OPEN_ORDERS:
            observed, level = open_count, acct_row[A_LVL_OPEN]
        elif kind == _VAR:
            observed, level = var_after, acct_row[A_LVL_VAR]
        else:
            observed, level = 1.0, restricted_level
        if not (observed > level or (kind == _RATE and rate_breach)):
            continue
        li = find_limit(kind, a, s, lim_exact, lim_tab)
        if li < 0:
            continue
        t = lim_f[li, L_THRESHOLD]
        if kind == _RESTRICTED:  # any matching enabled limit rejects
            mask |= np.uint32(1) << np.uint32(_RESTRICTED)
            nv = _emit(vi, vf, nv, order, _RESTRICTED, li, 1.0, t, False)
            continue
        if kind == _RATE:
            breach = rate_breach
        elif kind == _NET:
            breach = observed > t and observed > abs(net)  # a reducing order never breaches
        elif kind == _VAR:
            breach = observed > t and observed > var_before  # an order that lowers VaR passes
        else:
            breach = observed > t
        nv, mask = _judge(vi, vf, nv, mask, order, kind, li, observed, breach, t, lim_f[li, L_WARN])
    return nv, mask
