"""Account exposure sums that stay exact whatever the history, and marks that move in O(holders).

Why compensated sums. The account rows hold four running sums (open gross/net, position
gross/net). Plain float increments lose what they absorb: a 1e20 order opened and cancelled wiped
another order's 1,000.5 to 0, and an ``inf`` term left ``NaN`` behind, switching the exposure limits
off for good. Each sum is now a double-double (``hi`` + ``lo``, ``dd_add``): Knuth's TwoSum keeps
the rounding error of every add in ``lo``, so adding a term and later taking the same term out
leaves the rest exactly as it was (to ~2**-105 of the largest partial sum, far below a cent).
Terms are the current values, never increments: an open order's term is ``open qty * p``
recomputed whenever its open quantity changes (``layout.OF_TERM``), a book's is ``|pos| * mark``
and ``pos * mark``, so the sums equal a fresh recomputation from the open orders and positions
(``recompute_exposure``) up to that residue. Each sum is reset to exactly 0 when the account's last
open order closes (last position goes flat), so an account with nothing open has exactly 0. The
inputs are bounded so no term is infinite (``max_order_notional``; see README).

Fixed point was the other candidate: exact and order-independent, but int64 cannot span the
terms riskd accepts (1e-12 to 1e15 a term, sums to 1e21) at a useful resolution, and 128-bit
integers cost more in the check kernel than two extra adds of a row already in cache.

Why a per-symbol list of books. A mark change revalues the positions in that symbol only: the
symbol's books are linked through ``book_pair[:, BP_NEXT]`` from ``sym_books[symbol]`` (books are
never removed, so a link is made once, when the book is opened: checks.open_book; a book with open
orders only has no position terms here, but its VaR terms move with the mark, kernel.var).
``set_prices`` walks several symbols' lists at once, prefetching each list's next node so the
cache misses of a batch overlap instead of being paid one after another.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._prefetch import prefetch
from .layout import (
    A_OPEN_COUNT,
    A_OPEN_GROSS,
    A_OPEN_GROSS_LO,
    A_OPEN_NET,
    A_OPEN_NET_LO,
    A_POS_COUNT,
    A_POS_GROSS,
    A_POS_GROSS_LO,
    A_POS_NET,
    A_POS_NET_LO,
    B_POS,
    BP_ACCOUNT,
    BP_NEXT,
    BP_SYMBOL,
    BP_UNLINKED,
    C_BOOKS,
    OF_OPEN,
    OF_PRICE,
    OF_TERM,
    OI_ACCOUNT,
    OI_SIDE,
    S_FILL,
    S_PRICE,
)
from .state import Accounts, Books, Orders, Symbols

_BUY = 1
_LANES = 16  # symbols' lists walked at once by set_prices


@njit(cache=True, nogil=True, inline="always")
def dd_add(acct: np.ndarray, a: np.int64, hi_col: np.int64, lo_col: np.int64, x: float) -> None:
    """acct[a, hi_col] + acct[a, lo_col] += x, keeping the rounding error (TwoSum, then renormalise).

    Straight-line (inlined into the kernels' loops; see checks' module doc on inlined helpers).
    """
    hi = acct[a, hi_col]
    s = hi + x
    bb = s - hi
    err = (hi - (s - bb)) + (x - bb)
    lo = acct[a, lo_col] + err
    h = s + lo
    acct[a, hi_col] = h
    acct[a, lo_col] = lo - (h - s)


@njit(cache=True, nogil=True, inline="always")
def dd_value(acct: np.ndarray, a: np.int64, hi_col: np.int64, lo_col: np.int64) -> float:
    return acct[a, hi_col] + acct[a, lo_col]


@njit(cache=True, nogil=True, inline="always")
def add_open_term(acct: np.ndarray, a: np.int64, buy: bool, term: float) -> None:
    """Add an open order's term (open qty * p, >= 0) to the account's open gross and net sums."""
    dd_add(acct, a, A_OPEN_GROSS, A_OPEN_GROSS_LO, term)
    dd_add(acct, a, A_OPEN_NET, A_OPEN_NET_LO, term if buy else -term)


@njit(cache=True, nogil=True, inline="always")
def reterm_open(ordf: np.ndarray, ordi: np.ndarray, slot: np.int64, acct: np.ndarray) -> None:
    """After the slot's open quantity changed: replace its old term in the sums by the new one."""
    a = ordi[slot, OI_ACCOUNT]
    buy = ordi[slot, OI_SIDE] == _BUY
    old = ordf[slot, OF_TERM]
    new = ordf[slot, OF_OPEN] * ordf[slot, OF_PRICE]
    ordf[slot, OF_TERM] = new
    add_open_term(acct, a, buy, new)
    add_open_term(acct, a, buy, -old)


@njit(cache=True, nogil=True, inline="always")
def reset_open_if_flat(acct: np.ndarray, a: np.int64) -> None:
    """No open order left: the open sums are exactly 0, whatever rounding residue they carried."""
    keep = np.float64(acct[a, A_OPEN_COUNT] > 0.0)
    acct[a, A_OPEN_GROSS] *= keep
    acct[a, A_OPEN_GROSS_LO] *= keep
    acct[a, A_OPEN_NET] *= keep
    acct[a, A_OPEN_NET_LO] *= keep


@njit(cache=True, nogil=True, inline="always")
def _add_position_terms(acct: np.ndarray, a: np.int64, pos: float, mark: float, sign: float) -> None:
    dd_add(acct, a, A_POS_GROSS, A_POS_GROSS_LO, sign * (abs(pos) * mark))
    dd_add(acct, a, A_POS_NET, A_POS_NET_LO, sign * (pos * mark))


@njit(cache=True, nogil=True)
def move_position(
    b: np.int64,
    new_pos: float,
    old_mark: float,
    new_mark: float,
    acct: np.ndarray,
    book: np.ndarray,
    book_pair: np.ndarray,
    sym_books: np.ndarray,
) -> None:
    """Set book b's position to new_pos: its terms valued at old_mark leave its account's position
    sums, the new ones valued at new_mark enter (NaN: unvalued); the account's non-zero-position
    count and the symbol's list of books follow."""
    old = book[b, B_POS]
    a = book_pair[b, BP_ACCOUNT]
    if old != 0.0 and old_mark == old_mark:
        _add_position_terms(acct, a, old, old_mark, -1.0)
    if new_pos != 0.0 and new_mark == new_mark:
        _add_position_terms(acct, a, new_pos, new_mark, 1.0)
    book[b, B_POS] = new_pos
    change = np.float64(new_pos != 0.0) - np.float64(old != 0.0)
    if change != 0.0:
        count = acct[a, A_POS_COUNT] + change
        acct[a, A_POS_COUNT] = count
        if count <= 0.0:
            acct[a, A_POS_GROSS] = 0.0
            acct[a, A_POS_GROSS_LO] = 0.0
            acct[a, A_POS_NET] = 0.0
            acct[a, A_POS_NET_LO] = 0.0
    if new_pos != 0.0 and book_pair[b, BP_NEXT] == BP_UNLINKED:
        s = book_pair[b, BP_SYMBOL]
        book_pair[b, BP_NEXT] = sym_books[s]
        sym_books[s] = b


@njit(cache=True, nogil=True, inline="always")
def _revalue(b: np.int64, old: float, new: float, acct, book, book_pair) -> np.int64:
    """Move book b's position terms from mark old to mark new (0.0 for no mark: callers map NaN to
    0.0); returns the next book of its symbol.

    The terms' difference is taken exactly (TwoSum: d + e == new term - old term) and added to
    the sums once, the gross and net terms sharing it (|pos| * m and pos * m differ only in sign).
    Straight-line (a flat position adds exact zeros): inlined into set_prices' lane loop, a branch
    would keep numba's atomic reference counting of the array arguments on every book.
    """
    pos = book[b, B_POS]
    a = book_pair[b, BP_ACCOUNT]
    size = abs(pos)
    t_old = size * old
    t_new = size * new
    d = t_new - t_old
    bb = d - t_new
    e = (t_new - (d - bb)) + (-t_old - bb)
    sign = math.copysign(1.0, pos)
    dd_add(acct, a, A_POS_GROSS, A_POS_GROSS_LO, d)
    acct[a, A_POS_GROSS_LO] += e
    dd_add(acct, a, A_POS_NET, A_POS_NET_LO, sign * d)
    acct[a, A_POS_NET_LO] += sign * e
    return book_pair[b, BP_NEXT]


@njit(cache=True, nogil=True, inline="always")
def _or_zero(mark: float) -> float:
    return mark if mark == mark else 0.0


@njit(cache=True, nogil=True)
def remark(
    s: np.int64,
    old: float,
    new: float,
    skip: np.int64,
    acct: np.ndarray,
    book: np.ndarray,
    book_pair: np.ndarray,
    sym_books: np.ndarray,
) -> None:
    """Revalue every position in symbol s from mark old to mark new, except book skip (-1: none)."""
    if old == new or (old != old and new != new):
        return
    old0, new0 = _or_zero(old), _or_zero(new)
    b = sym_books[s]
    while b >= 0:
        if b == skip:
            b = book_pair[b, BP_NEXT]
        else:
            b = _revalue(b, old0, new0, acct, book, book_pair)


UNKNOWN_SYMBOL = -2  # set_prices: a symbol id is -1 (not interned yet); nothing was changed


@njit(cache=True, nogil=True)
def first_bad_price(prices: np.ndarray, bound: float) -> np.int64:
    """Index of the first price that is not in (0, bound] (NaN and inf included), or -1."""
    for i in range(prices.shape[0]):
        if not (prices[i] > 0.0 and prices[i] <= bound):
            return i
    return -1


@njit(cache=True, nogil=True)
def set_prices(
    symbol_ids: np.ndarray,
    prices: np.ndarray,
    bound: float,
    accounts: Accounts,
    symbols: Symbols,
    books: Books,
) -> np.int64:
    """Set marks and revalue the positions held in those symbols: O(books holding them).

    All-or-nothing: returns the index of the first price not in (0, bound], or UNKNOWN_SYMBOL when
    a symbol id is negative, having changed nothing; -1 when every price was set.

    Up to _LANES symbols' lists are walked round-robin, each step prefetching the lane's next book,
    so a batch's cache misses overlap. Within one batch each symbol is revalued from its mark
    before its update to its mark after it; a symbol named twice takes both steps (the sums do
    not depend on the order of their terms beyond the double-double residue).
    """
    acct = accounts[0]
    sym, sym_books = symbols
    book, book_pair = books[1], books[2]
    n = symbol_ids.shape[0]
    for i in range(n):
        if symbol_ids[i] < 0:
            return UNKNOWN_SYMBOL
    bad = first_bad_price(prices, bound)
    if bad >= 0:
        return bad
    old = np.empty(n, dtype=np.float64)
    for i in range(n):
        s = symbol_ids[i]
        px = sym[s, S_PRICE]
        old[i] = _or_zero(px if px == px else sym[s, S_FILL])  # no mark before: its terms were 0
        sym[s, S_PRICE] = prices[i]
    lane_book = np.full(_LANES, -1, dtype=np.int64)
    lane_item = np.zeros(_LANES, dtype=np.int64)
    nxt = 0  # next batch item to put in a free lane
    busy = 0
    while True:
        for j in range(_LANES):
            if lane_book[j] < 0:
                while nxt < n:  # refill the lane with the next symbol whose mark moved
                    i = nxt
                    nxt += 1
                    if old[i] != prices[i] and sym_books[symbol_ids[i]] >= 0:
                        lane_book[j] = sym_books[symbol_ids[i]]
                        lane_item[j] = i
                        prefetch(book_pair, lane_book[j], 0)
                        prefetch(book, lane_book[j], 0)
                        busy += 1
                        break
                continue
            i = lane_item[j]
            b = _revalue(lane_book[j], old[i], prices[i], acct, book, book_pair)  # old: NaN -> 0.0
            lane_book[j] = b
            if b >= 0:
                prefetch(book_pair, b, 0)
                prefetch(book, b, 0)
            else:
                busy -= 1
        if busy == 0 and nxt >= n:
            return -1


@njit(cache=True, nogil=True)
def recompute_exposure(accounts: Accounts, symbols: Symbols, books: Books, orders: Orders) -> None:
    """Rebuild every account's four sums and position count from the books and open orders.

    Recovery's rebuild, and the oracle the tests compare the incremental sums with. Open orders are
    the order table's non-negative values (slots); their terms are recomputed as open qty * p.
    """
    acct, ctr = accounts
    sym = symbols[0]
    book, book_pair = books[1], books[2]
    ord_ht, ordf, ordi = orders[0], orders[1], orders[2]
    for col in (
        A_OPEN_GROSS, A_OPEN_GROSS_LO, A_OPEN_NET, A_OPEN_NET_LO,
        A_POS_GROSS, A_POS_GROSS_LO, A_POS_NET, A_POS_NET_LO, A_POS_COUNT,
    ):  # fmt: skip
        acct[:, col] = 0.0
    for b in range(ctr[C_BOOKS]):
        pos = book[b, B_POS]
        if pos == 0.0:
            continue
        a = book_pair[b, BP_ACCOUNT]
        acct[a, A_POS_COUNT] += 1.0
        s = book_pair[b, BP_SYMBOL]
        px = sym[s, S_PRICE]
        mark = px if px == px else sym[s, S_FILL]
        if mark == mark:
            _add_position_terms(acct, a, pos, mark, 1.0)
    for k in range(ord_ht.shape[0]):
        slot = ord_ht[k, 1]
        if ord_ht[k, 0] == 0 or slot < 0:
            continue
        term = ordf[slot, OF_OPEN] * ordf[slot, OF_PRICE]
        ordf[slot, OF_TERM] = term
        add_open_term(acct, ordi[slot, OI_ACCOUNT], ordi[slot, OI_SIDE] == _BUY, term)
