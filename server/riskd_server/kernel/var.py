"""The MAX_VAR check's incremental terms: price an order against its account's VaR in O(k).

VaR(w) = scale * sqrt(wᵀ Sigma w), scale = z * sqrt(horizon_days), w_s the account's exposure in
symbol s: (position + open buy - open sell) x mark (the symbol's mark as the other checks read it,
``checks.mark_of``; an unmarked symbol's exposure counts 0 until it has a mark). Every model is
held in factor form, Sigma = B Bᵀ + diag(spec) (a sample covariance is factored once when
installed, risk.var_tables), so per account it suffices to keep

- f = Bᵀw (k numbers) and the specific sum Σ spec_s w_s², and V = |f|² + specific sum;

and an order adding d to w_s gives V' = V + 2d (B_s·f + spec_s w_s) + d² Sigma_ss: O(k) per
order, no matter how many symbols the account holds. (The sample model's n-vector Σw per account
is what this avoids: at 5,000 symbols 40 kB an account; f is 8k bytes.)

Exactness. The terms are sums of each book's *current* contribution, never of increments: a
change of w_s from w_old to w_new adds B_s w_new and takes out B_s w_old, both products computed
from the same values as when they went in, into double-double sums (``exposure.dd_add``), so the
cached terms equal a fresh recomputation (``var_recompute``) to ~2**-105 of the largest partial
sum whatever the history, like the exposure sums. V is recomputed from f after each change.

Called only when a model is installed (``vctl[VC_ON]``). The check kernel (checks.check_batch)
writes out the pricing and ``var_move``'s update of an accepted order in its own loop (as calls
they cost ~120 ns an order each, more than the arithmetic); executions, marks and position loads
call ``var_move`` and ``var_remark``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .exposure import dd_add
from .layout import (
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POS,
    BP_ACCOUNT,
    BP_NEXT,
    BP_SYMBOL,
    C_BOOKS,
    S_FILL,
    S_PRICE,
    VA_F,
    VA_SPEC,
    VA_SPEC_LO,
    VA_V,
    VC_DEFAULT,
    VC_K,
    VC_ON,
    VS_SPEC,
)
from .state import Accounts, Books, Symbols, VarState


@njit(cache=True, nogil=True, inline="always")
def mark0(sym: np.ndarray, s: np.int64) -> float:
    """The mark w is valued at: last UpdatePrices price, else last fill price, else 0 (unvalued)."""
    px = sym[s, S_PRICE]
    if px != px:
        px = sym[s, S_FILL]
    return px if px == px else 0.0


@njit(cache=True, nogil=True, inline="always")
def book_w(book: np.ndarray, b: np.int64, m: float) -> float:
    """Book b's exposure w at mark m (every caller computes it this one way: see the module doc)."""
    return (book[b, B_POS] + book[b, B_OPEN_BUY] - book[b, B_OPEN_SELL]) * m


@njit(cache=True, nogil=True)
def var_move(
    a: np.int64,
    s: np.int64,
    w_old: float,
    w_new: float,
    vsym: np.ndarray,
    vacct: np.ndarray,
    vctl: np.ndarray,
) -> None:
    """Account a's exposure in s went from w_old to w_new: replace its terms, recompute V."""
    if w_old == w_new or vctl[VC_ON] == 0.0:
        return
    k = np.int64(vctl[VC_K])
    if s < vsym.shape[0]:
        for j in range(k):
            bj = vsym[s, j]
            if bj != 0.0:
                dd_replace(vacct, a, VA_F + j, VA_F + k + j, bj * w_new, bj * w_old)
        spec = vsym[s, k + VS_SPEC]
    else:
        spec = vctl[VC_DEFAULT]
    dd_replace(vacct, a, VA_SPEC, VA_SPEC_LO, spec * (w_new * w_new), spec * (w_old * w_old))
    var_refresh(a, vacct, k)


@njit(cache=True, nogil=True, inline="always")
def dd_replace(arr: np.ndarray, a: np.int64, hi: np.int64, lo: np.int64, t_new: float, t_old: float) -> None:
    """arr[a, hi] + arr[a, lo] += t_new - t_old, the difference taken exactly (TwoSum: d + e) and
    added once (as exposure._revalue): half the work of adding t_new and then -t_old."""
    d = t_new - t_old
    bb = d - t_new
    e = (t_new - (d - bb)) + (-t_old - bb)
    dd_add(arr, a, hi, lo, d)
    arr[a, lo] += e


@njit(cache=True, nogil=True, inline="always")
def var_refresh(a: np.int64, vacct: np.ndarray, k: np.int64) -> None:
    """V = |f|² + specific sum from the double-double terms."""
    v = vacct[a, VA_SPEC] + vacct[a, VA_SPEC_LO]
    for j in range(k):
        fj = vacct[a, VA_F + j] + vacct[a, VA_F + k + j]
        v += fj * fj
    vacct[a, VA_V] = v


@njit(cache=True, nogil=True)
def var_remark(
    s: np.int64,
    old: float,
    new: float,
    skip: np.int64,
    book: np.ndarray,
    book_pair: np.ndarray,
    sym_books: np.ndarray,
    vsym: np.ndarray,
    vacct: np.ndarray,
    vctl: np.ndarray,
) -> None:
    """Symbol s's mark went from old to new (0.0 = unmarked): revalue every book of s in the VaR
    terms except book skip (-1: none). The list holds every book ever opened (checks.open_book)."""
    if old == new or vctl[VC_ON] == 0.0:
        return
    b = sym_books[s]
    while b >= 0:
        if b != skip:
            var_move(
                book_pair[b, BP_ACCOUNT], s, book_w(book, b, old), book_w(book, b, new), vsym, vacct, vctl
            )
        b = book_pair[b, BP_NEXT]


@njit(cache=True, nogil=True)
def var_recompute(accounts: Accounts, symbols: Symbols, books: Books, var: VarState) -> None:
    """Rebuild every account's VaR terms from the books (model install, recovery; the tests' oracle
    for the incremental terms): O(books x k)."""
    ctr = accounts[1]
    sym = symbols[0]
    book, book_pair = books[1], books[2]
    vsym, vacct, vctl = var
    vacct[:, :] = 0.0
    if vctl[VC_ON] == 0.0:
        return
    for b in range(ctr[C_BOOKS]):
        s = book_pair[b, BP_SYMBOL]
        w = book_w(book, b, mark0(sym, s))
        if w != 0.0:
            var_move(book_pair[b, BP_ACCOUNT], s, 0.0, w, vsym, vacct, vctl)


@njit(cache=True, nogil=True)
def var_remarks(
    symbol_ids: np.ndarray, old: np.ndarray, symbols: Symbols, books: Books, var: VarState
) -> None:
    """After exposure.set_prices: move the VaR terms of symbol_ids[i]'s books from mark old[i]
    (0.0 = unmarked) to the symbol's mark now. Distinct symbols; the engine calls it only with a
    model installed, so a server without one pays nothing for it."""
    sym, sym_books = symbols
    book, book_pair = books[1], books[2]
    vsym, vacct, vctl = var
    for i in range(symbol_ids.shape[0]):
        s = symbol_ids[i]
        var_remark(s, old[i], mark0(sym, s), -1, book, book_pair, sym_books, vsym, vacct, vctl)


@njit(cache=True, nogil=True)
def marks0(symbol_ids: np.ndarray, sym: np.ndarray) -> np.ndarray:
    """The marks the VaR values symbol_ids at now (mark0 of each)."""
    out = np.empty(symbol_ids.shape[0], dtype=np.float64)
    for i in range(symbol_ids.shape[0]):
        out[i] = mark0(sym, symbol_ids[i])
    return out
