"""Per-account book lists over the engine's state: which books an account holds, without a pass
over every book (a derived index the engine keeps; the state arrays stay the engine's own).

Books are never removed and never change account, so the lists only grow: each read first links
the books opened since the previous one (kernel.snapshot.link_books, O(new books)), then walks the
account's list (kernel.snapshot.gather_books, O(its books)). Memory: one int64 per account (head,
tail, count) and one per book (next), bounded by the state's own bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernel import layout as L
from ..kernel.snapshot import gather_books, link_books
from .state import State


@dataclass(frozen=True, slots=True)
class AccountBooks:
    """One account's books as columns (private copies): symbol ids, position, open buy and open
    sell quantities, and the symbol's mark (last UpdatePrices price, else last fill price, else NaN),
    the reference price the checks use for an order without a price (kernel.checks.mark_of)."""

    symbol: np.ndarray  # int64
    position: np.ndarray
    open_buy: np.ndarray
    open_sell: np.ndarray
    mark: np.ndarray

    @property
    def net_quantity(self) -> np.ndarray:
        """position + open buys - open sells: the quantity the account would hold if all filled."""
        return self.position + self.open_buy - self.open_sell


class BookLists:
    """The per-account book lists (see module doc); refreshed lazily by each read."""

    __slots__ = ("_count", "_head", "_linked", "_next", "_tail")

    def __init__(self) -> None:
        self._head = np.full(0, -1, dtype=np.int64)  # account -> oldest book, -1 none
        self._tail = np.full(0, -1, dtype=np.int64)  # account -> newest book
        self._count = np.zeros(0, dtype=np.int64)  # account -> books
        self._next = np.full(0, -1, dtype=np.int64)  # book -> next book of its account
        self._linked = 0  # books linked so far

    def books_of(self, s: State, a: int) -> AccountBooks:
        """Account a's books (a a known account id, or -1: none)."""
        self._link(s)
        if a < 0 or a >= self._count.shape[0]:
            empty = np.empty(0, dtype=np.float64)
            return AccountBooks(np.empty(0, dtype=np.int64), empty, empty, empty, empty)
        _, sym, pos, buy, sell = self.columns(s, np.array([a], dtype=np.int64))
        return AccountBooks(sym, pos, buy, sell, marks_of(s, sym))

    def columns(self, s: State, ids: np.ndarray) -> tuple[np.ndarray, ...]:
        """The books of accounts ``ids`` as columns: owner (the index in ids of the book's account,
        non-decreasing), symbol id, position, open buy, open sell; ids are known account ids."""
        self._link(s)
        total = int(self._count[ids].sum())
        owner = np.empty(total, dtype=np.int64)
        sym = np.empty(total, dtype=np.int64)
        pos = np.empty(total, dtype=np.float64)
        buy = np.empty(total, dtype=np.float64)
        sell = np.empty(total, dtype=np.float64)
        gather_books(ids, self._head, self._next, s.book, s.book_pair, owner, sym, pos, buy, sell)
        return owner, sym, pos, buy, sell

    def _link(self, s: State) -> None:
        n_books = int(s.ctr[L.C_BOOKS])
        n_acct = s.acct.shape[0]
        if self._head.shape[0] < n_acct:
            self._head = _grown(self._head, n_acct, -1)
            self._tail = _grown(self._tail, n_acct, -1)
            self._count = _grown(self._count, n_acct, 0)
        if self._linked < n_books:
            if self._next.shape[0] < n_books:
                self._next = _grown(self._next, max(n_books, 2 * self._next.shape[0]), -1)
            link_books(s.book_pair, self._linked, n_books, self._head, self._tail, self._next, self._count)
            self._linked = n_books


def marks_of(s: State, sids: np.ndarray) -> np.ndarray:
    """Marks of symbol ids (kernel.checks.mark_of, vectorised); NaN for -1 or no mark."""
    known = (sids >= 0) & (sids < s.sym.shape[0])
    rows = s.sym[np.where(known, sids, 0)]
    mark = np.where(np.isnan(rows[:, L.S_PRICE]), rows[:, L.S_FILL], rows[:, L.S_PRICE])
    return np.where(known, mark, np.nan)


def _grown(arr: np.ndarray, size: int, fill: int) -> np.ndarray:
    out = np.full(size, fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out
