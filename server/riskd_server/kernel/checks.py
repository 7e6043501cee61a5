"""The pre-trade check kernel: every limit for a whole batch in one numba pass.

Pure: it reads and writes only the arrays it is given (see ``layout``), knows nothing of gRPC,
asyncio or PostgreSQL, and writes reject codes, never messages. The engine guarantees capacity
(free order slots, book rows plus one spare, hash-table room) before calling it.

Why it is shaped this way (see bench/kernel_bench.py for the figures):

* Orders go through a software pipeline (``check_batch``): the hash buckets, book rows and order
  slots an order's check will touch are prefetched a few orders ahead, so their cache misses
  overlap instead of costing one DRAM round trip (~200 ns here) each; the checks run on cached rows.
* The limit that applies to an (account, symbol) for each kind is resolved once per limit-book
  version and cached: the per-pair kinds (QTY, NOTIONAL, POSITION, COLLAR, RESTRICTED) in the book
  row beside the position, the account-level kinds (GROSS, NET, ORDER_RATE, OPEN_ORDERS) in the
  account row (``B_LIM_TAG``, ``A_LIM_TAG``). A book row is then exactly one cache line, and so is
  an order slot: at 128-byte book rows and split order rows the kernel ran 12.3 M orders/s, at one
  line each 15.2 M/s (bench/kernel_bench.py's kernel row, same run).
* The rows cache each kind's *report level* rather than the limit: the lowest observed value that
  may breach or warn, i.e. min(threshold, warn_fraction * threshold), +inf when no limit of the
  kind applies, -inf for a restricted symbol. Almost every order breaches and warns on nothing, so
  the common path computes every kind's observed value unconditionally and ORs ``observed > level``
  into one flag: no limit index to convert, no table to load through it, no data-dependent branch
  per kind (each cost ~10 ns an order in mispredictions and dependent loads). Unevaluable kinds
  need no branch either: without a reference price p is NaN, so NOTIONAL/GROSS/NET observe NaN,
  which compares false, as does the collar's NaN when there is no mark or the order has no price.
  Only a flagged order takes ``levels.report_limits``, which re-resolves the limits of the kinds its
  levels flag and emits the violations in kind order with the exact thresholds and warn fractions
  of the limit table.
* The duplicate-id test and the accepted order's insert share one probe of the order table
  (``ht_slot``): that table is the one structure too large for any cache, so its line is the
  costliest the kernel touches.
* Helpers inlined into the order loop (``inline="always"``) that take arrays are straight-line:
  numba reference-counts an inlined helper's array arguments and prunes the counts only when the
  helper has no branches; left in, they are atomic (full memory barriers) and cost more than the
  checks themselves once stores miss the cache (the accept path once spent a third of its time
  there). Branchy work goes in plain ``njit`` calls (``open_book``, ``levels.report_limits``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._hashtable import ht_bucket, ht_find, ht_put, ht_slot
from ._prefetch import prefetch
from .exposure import add_open_term, dd_value
from .layout import (
    A_BUCKET_SET,
    A_LAST_TS,
    A_LIM_TAG,
    A_LVL_GROSS,
    A_LVL_NET,
    A_LVL_OPEN,
    A_LVL_RATE,
    A_LVL_VAR,
    A_OPEN_COUNT,
    A_OPEN_GROSS,
    A_OPEN_GROSS_LO,
    A_OPEN_NET,
    A_OPEN_NET_LO,
    A_POS_GROSS,
    A_POS_GROSS_LO,
    A_POS_NET,
    A_POS_NET_LO,
    A_RATE,
    A_TOKENS,
    A_TRADING,
    B_LIM_TAG,
    B_LVL_COLLAR,
    B_LVL_NOTIONAL,
    B_LVL_POSITION,
    B_LVL_QTY,
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POS,
    BP_ACCOUNT,
    BP_NEXT,
    BP_SYMBOL,
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
    LIMIT_BUILTIN,
    OF_OPEN,
    OF_PRICE,
    OF_QTY,
    OF_TERM,
    OI_ACCOUNT,
    OI_BOOK,
    OI_SIDE,
    S_FILL,
    S_PRICE,
    SYMBOL_BITS,
    VA_F,
    VA_SPEC,
    VA_SPEC_LO,
    VA_V,
    VC_DEFAULT,
    VC_K,
    VC_ON,
    VC_SCALE,
    VS_SPEC,
    VS_TOTAL,
)
from .levels import (
    _DUPLICATE,
    _HALTED,
    _INVALID,
    _NO_REF,
    _REDUCE_ONLY,
    _emit,
    report_limits,
    resolve_account_limits,
    resolve_book_limits,
)
from .state import Accounts, Books, LimitTables, Orders, Symbols, VarState
from .var import book_w, dd_replace

_BUY = 1
_SELL = 2
_HALTED_STATE = 3
_REDUCING_STATE = 2
_AHEAD = 16  # pipeline distance in orders (see check_batch); 8, 24 and 32 measured no better


@njit(cache=True, nogil=True, inline="always")
def book_key(account: np.int64, symbol: np.int64) -> np.int64:
    return KEY_TAG | (np.int64(account) << SYMBOL_BITS) | np.int64(symbol)


@njit(cache=True, nogil=True, inline="always")
def mark_of(sym: np.ndarray, s: np.int64) -> float:
    """Last UpdatePrices price, else last fill price, else NaN."""
    px = sym[s, S_PRICE]
    if px == px:
        return px
    return sym[s, S_FILL]


@njit(cache=True, nogil=True, inline="always")
def _prefetch_buckets(oi: np.ndarray, i: np.int64, book_ht: np.ndarray, ord_ht: np.ndarray) -> None:
    """Pipeline stage 1 of order i: start loading its book and order hash buckets.

    Straight-line (an invalid order's ids give a harmless prefetch): a branch in a helper inlined
    in the loop would leave numba's reference counting of its array arguments in the loop. (The
    account and symbol rows are small tables that stay cached: prefetching them measured slower.)
    """
    prefetch(book_ht, ht_bucket(book_key(oi[i, IN_ACCOUNT], oi[i, IN_SYMBOL]), book_ht.shape[0] - 1), 0)
    prefetch(ord_ht, ht_bucket(oi[i, IN_KEY], ord_ht.shape[0] - 1), 0)


@njit(cache=True, nogil=True, inline="always")
def _find_book(oi: np.ndarray, i: np.int64, book_ht: np.ndarray, book: np.ndarray) -> None:
    """Pipeline stage 2 of order i: look up its book (bucket now cached) into IN_BOOK, load the row.

    An invalid order's key never matches (a real key is positive), so it finds no book (-1).
    """
    b = ht_find(book_ht, book_key(oi[i, IN_ACCOUNT], oi[i, IN_SYMBOL]))
    prefetch(book, b, 0)  # one line: the engine aligns the 64-byte rows (engine.state.aligned_rows)
    oi[i, IN_BOOK] = b


@njit(cache=True, nogil=True, inline="always")
def _prefetch_var(oi: np.ndarray, i: np.int64, vsym: np.ndarray, vacct: np.ndarray) -> None:
    """Start loading order i's VaR rows: its symbol's loadings and its account's terms (three lines
    each; an invalid order's -1 ids prefetch harmlessly, as in _prefetch_buckets)."""
    s = oi[i, IN_SYMBOL]
    a = oi[i, IN_ACCOUNT]
    prefetch(vsym, s, 0)
    prefetch(vsym, s, 8)
    prefetch(vsym, s, 16)
    prefetch(vacct, a, 0)
    prefetch(vacct, a, 8)
    prefetch(vacct, a, 16)


@njit(cache=True, nogil=True, inline="always")
def _prefetch_slot(ordi: np.ndarray, free: np.ndarray, ctr: np.ndarray) -> None:
    """Start loading the order slot _AHEAD accepts from now (slots come off the free stack's top)."""
    slot = free[max(ctr[C_FREE_TOP] - 1 - _AHEAD, 0)]
    prefetch(ordi, slot, 0)  # one aligned 64-byte line, shared by the ordf and ordi views


@njit(cache=True, nogil=True)
def check_batch(
    oi: np.ndarray,
    of: np.ndarray,
    now: float,
    mask_out: np.ndarray,
    vi: np.ndarray,
    vf: np.ndarray,
    accounts: Accounts,
    symbols: Symbols,
    books: Books,
    orders: Orders,
    limits: LimitTables,
    var: VarState,
    max_notional: float,
) -> np.int64:
    """Check orders in sequence, open the accepted ones; returns the number of violations written.

    An order whose reference notional (qty * p) is not finite or exceeds max_notional is invalid:
    the bound keeps every exposure term finite (kernel.exposure).

    MAX_VAR (kernel.var): only an account whose cached level (A_LVL_VAR) is finite prices its
    order, in O(k); with a model installed every accepted order moves its account's VaR terms.

    A three-stage software pipeline: step k prefetches the hash buckets of order k, looks up the
    book of order k - _AHEAD (its bucket has arrived) and prefetches its row, and checks order
    k - 2 * _AHEAD on cached data. Only the check stage changes state, in order.
    """
    acct, ctr = accounts
    sym, sym_books = symbols
    book_ht, book, book_pair = books
    vsym, vacct, vctl = var
    var_on = vctl[VC_ON] != 0.0
    vk = np.int64(vctl[VC_K])
    v_rows = vsym.shape[0]
    v_default = vctl[VC_DEFAULT]
    v_scale = vctl[VC_SCALE]
    ord_ht, ordf, ordi, free, _ = orders
    lim_exact, lim_tab, lim_f, lim_version = limits
    nv = np.int64(0)
    n = oi.shape[0]
    tag = float(lim_version + 1)
    firm_state = ctr[C_FIRM_TRADING]
    for k in range(n + 2 * _AHEAD):
        if k < n:
            _prefetch_buckets(oi, k, book_ht, ord_ht)
        if _AHEAD <= k < n + _AHEAD:
            _find_book(oi, k - _AHEAD, book_ht, book)
            if var_on:  # the VaR rows the check will read (first lines: loadings, f)
                _prefetch_var(oi, k - _AHEAD, vsym, vacct)
        i = k - 2 * _AHEAD
        if i < 0:
            continue
        _prefetch_slot(ordi, free, ctr)

        # Check order i.
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

        mark = mark_of(sym, s)
        p = px if px > 0.0 else mark  # the reference price: NaN when there is none
        has_p = p == p
        notional = qty * p
        if has_p and not notional <= max_notional:  # inf, or past the server's bound
            mask_out[i] = np.uint32(1) << np.uint32(_INVALID)
            nv = _emit(vi, vf, nv, i, _INVALID, LIMIT_BUILTIN, notional, max_notional, False)
            continue
        bidx = oi[i, IN_BOOK]
        if bidx < 0:  # looked up before an earlier order of this batch opened the book?
            bidx = ht_find(book_ht, book_key(a, s))
        if bidx >= 0:
            row = bidx
            pos = book[row, B_POS]
            open_buy = book[row, B_OPEN_BUY]
            open_sell = book[row, B_OPEN_SELL]
            if book[row, B_LIM_TAG] != tag:
                resolve_book_limits(row, a, s, tag, book, lim_exact, lim_tab, lim_f)
        else:
            # No book yet: resolve into the next free book row, which becomes the book if accepted.
            row = ctr[C_BOOKS]
            pos = 0.0
            open_buy = 0.0
            open_sell = 0.0
            resolve_book_limits(row, a, s, tag, book, lim_exact, lim_tab, lim_f)
        if acct[a, A_LIM_TAG] != tag:
            resolve_account_limits(a, s, tag, acct, lim_exact, lim_tab, lim_f)
        signed = qty if side == _BUY else -qty

        # Every kind's observed value, unconditionally (NaN where the kind cannot be evaluated).
        position = pos + open_buy + qty if side == _BUY else -(pos - open_sell - qty)
        gross = (
            dd_value(acct, a, A_POS_GROSS, A_POS_GROSS_LO)
            + dd_value(acct, a, A_OPEN_GROSS, A_OPEN_GROSS_LO)
            + notional
        )
        net = dd_value(acct, a, A_POS_NET, A_POS_NET_LO) + dd_value(acct, a, A_OPEN_NET, A_OPEN_NET_LO)
        net_after = abs(net + signed * p)
        collar = abs(px - mark) / mark if px > 0.0 else math.nan
        open_count = acct[a, A_OPEN_COUNT] + 1.0
        rate, rate_breach = math.nan, False
        rate_t = acct[a, A_RATE]
        if rate_t >= 0.0:  # the bucket only runs under a rate limit (per account: predictable)
            rate, rate_breach = _take_token(acct, a, rate_t, now)
        full = ctr[C_FREE_TOP] <= 0  # server capacity: no free order slot
        m0 = mark if mark == mark else 0.0  # the VaR's valuation (kernel.var.mark0)
        var_after, var_before = math.nan, math.nan  # VaR after and before; squared, then (reported) not
        var_level = acct[a, A_LVL_VAR]
        if var_level < math.inf:  # a MAX_VAR limit applies (per account: predictable)
            # VaR' from the cached terms in O(k) (kernel.var's module doc), written out here
            # rather than called: a call took ~120 ns an order, most of it the call itself.
            d = signed * p
            if not var_on:  # no model: cannot be priced, fail closed (a NaN d breaches nothing)
                var_after, var_before = (math.inf if has_p else math.nan), 0.0
            elif has_p:
                w = (pos + open_buy - open_sell) * m0  # kernel.var.book_w
                v = vacct[a, VA_V]
                if s < v_rows:
                    g = vsym[s, vk + VS_SPEC] * w  # (Sigma w)_s = B_s . f + spec_s w_s
                    g2 = 0.0  # two chains: the adds overlap instead of waiting on each other
                    for j in range(0, vk - 1, 2):
                        g += vsym[s, j] * vacct[a, VA_F + j]
                        g2 += vsym[s, j + 1] * vacct[a, VA_F + j + 1]
                    if vk & 1:
                        g += vsym[s, vk - 1] * vacct[a, VA_F + vk - 1]
                    g += g2
                    total = vsym[s, vk + VS_TOTAL]
                else:  # a symbol the tables do not cover: default variance, no correlation
                    g = v_default * w
                    total = v_default
                # Squared VaRs (no square root on the common path): compared with the squared
                # level below, rooted only for an order that reports.
                var_after = v_scale * v_scale * max(v + d * (2.0 * g + d * total), 0.0)
                var_before = v_scale * v_scale * max(v, 0.0)
                var_level = var_level * abs(var_level)  # level² (a level is >= 0 but for -inf)
        # Non-short-circuit | : one flag, no branch per kind.
        report = (
            (qty > book[row, B_LVL_QTY])  # -inf on a restricted symbol
            | (notional > book[row, B_LVL_NOTIONAL])
            | (position > book[row, B_LVL_POSITION])
            | (gross > acct[a, A_LVL_GROSS])
            | (net_after > acct[a, A_LVL_NET])
            | (collar > book[row, B_LVL_COLLAR])
            | rate_breach
            | (rate > acct[a, A_LVL_RATE])
            | (open_count > acct[a, A_LVL_OPEN])
            | (var_after > var_level)
            | full
        )
        mask = np.uint32(0)
        if report:
            if var_on:
                var_after, var_before = math.sqrt(var_after), math.sqrt(var_before)
            nv, mask = report_limits(
                vi, vf, nv, i, a, s, book[row], acct[a], lim_exact, lim_tab, lim_f, qty, notional,
                position, gross, net, net_after, collar, rate, rate_breach, open_count, full, ctr[C_OPEN],
                var_after, var_before,
            )  # fmt: skip

        bucket = ht_slot(ord_ht, key)  # the id's bucket, or the empty one it would take
        if ord_ht[bucket, 0] == key:
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
            if bidx < 0:
                bidx = open_book(a, s, book_ht, book, book_pair, sym_books, ctr)
            _open_order(a, side, key, bucket, qty, p, bidx, acct, book, ord_ht, ordf, ordi, free, ctr)
            if var_on:  # kernel.var.var_move, written out (see the pricing above)
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
    return nv


@njit(cache=True, nogil=True)
def open_book(
    a: np.int64,
    s: np.int64,
    book_ht: np.ndarray,
    book: np.ndarray,
    book_pair: np.ndarray,
    sym_books: np.ndarray,
    ctr: np.ndarray,
) -> np.int64:
    """Create the book of (a, s) in the next free row; its limit cache (B_LIM_TAG..) is left as is,
    because check_batch resolves an order's limits into that spare row before accepting it.

    The book joins its symbol's list at once (not when it first holds a position): a mark change
    revalues open orders' exposure too in the VaR terms (kernel.var.var_remark)."""
    bidx = ctr[C_BOOKS]
    ctr[C_BOOKS] = bidx + 1
    ht_put(book_ht, book_key(a, s), bidx)
    book[bidx, B_POS] = 0.0
    book[bidx, B_OPEN_BUY] = 0.0
    book[bidx, B_OPEN_SELL] = 0.0
    book_pair[bidx, BP_ACCOUNT] = a
    book_pair[bidx, BP_SYMBOL] = s
    book_pair[bidx, BP_NEXT] = sym_books[s]
    sym_books[s] = bidx
    return bidx


@njit(cache=True, nogil=True, inline="always")
def _open_order(
    a: np.int64,
    side: np.int64,
    key: np.int64,
    bucket: np.int64,
    qty: float,
    p: float,
    bidx: np.int64,
    acct: np.ndarray,
    book: np.ndarray,
    ord_ht: np.ndarray,
    ordf: np.ndarray,
    ordi: np.ndarray,
    free: np.ndarray,
    ctr: np.ndarray,
) -> None:
    """Open an accepted order in its (existing) book: its slot, the book's and account's totals.

    Straight-line on purpose: a branch here would keep numba's reference counting of the array
    arguments (atomic, so a full memory barrier) on every accepted order.
    """
    book[bidx, B_OPEN_BUY if side == _BUY else B_OPEN_SELL] += qty
    add_open_term(acct, a, side == _BUY, qty * p)
    acct[a, A_OPEN_COUNT] += 1.0
    ctr[C_OPEN] += 1
    slot = take_slot(free, ctr)
    ord_ht[bucket, 0] = key  # the empty bucket ht_slot found: no insert since
    ord_ht[bucket, 1] = slot
    fill_slot(ordf, ordi, slot, qty, qty, p, side, bidx, a)


@njit(cache=True, nogil=True, inline="always")
def take_slot(free: np.ndarray, ctr: np.ndarray) -> np.int64:
    """Pop a free order slot (the engine guarantees one)."""
    top = ctr[C_FREE_TOP] - 1
    ctr[C_FREE_TOP] = top
    return free[top]


@njit(cache=True, nogil=True, inline="always")
def fill_slot(
    ordf: np.ndarray,
    ordi: np.ndarray,
    slot: np.int64,
    qty: float,
    open_qty: float,
    price: float,
    side: np.int64,
    bidx: np.int64,
    a: np.int64,
) -> None:
    """Write an open order's row (straight-line, see _open_order); its exposure term is open_qty * price."""
    ordf[slot, OF_QTY] = qty
    ordf[slot, OF_OPEN] = open_qty
    ordf[slot, OF_PRICE] = price
    ordf[slot, OF_TERM] = open_qty * price
    ordi[slot, OI_SIDE] = side
    ordi[slot, OI_BOOK] = bidx
    ordi[slot, OI_ACCOUNT] = a


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
