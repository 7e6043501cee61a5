"""The engine's state arrays (kernel.layout's columns), how they are allocated and how they grow.

Growth replaces an array (doubling) and drops the cached kernel arguments; it never happens inside
a kernel call: the engine makes room before each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..kernel import layout as L
from ..kernel._hashtable import ht_grow, ht_new
from ..kernel.state import Accounts, Books, Orders, Symbols, VarState

if TYPE_CHECKING:
    from .config import EngineConfig

# Free slots put on the free stack at a time (bounded so topping up never stalls the event loop).
SLOT_STEP = 65_536


def resident(shape: int | tuple[int, ...], dtype: type) -> np.ndarray:
    """A zeroed array whose every page is written now, not on first use (np.full, not np.zeros).

    np.zeros of a large array gets lazily mapped pages, so the first orders to use a never-used
    order slot or order-table bucket pay for the page in the kernel's timed loop. Measured with
    bench/kernel_bench.py (kernel rounds of 100k orders on a 2-vCPU KVM guest): while rounds handed
    out never-used slots they ran 3-5 M orders/s, ~10 M/s once slots were recycled; with the arrays
    written up front every round ran ~10 M/s (median 4.2 -> 10.4 M/s). The guest counted only ~10
    page faults a round (numpy asks for transparent huge pages, MADV_HUGEPAGE, for allocations of
    4 MB and up, so a fault maps 2 MB), so most of the cost is not the guest's fault handler but
    first touch of memory the VM had not used (host-side). The price is paid at start-up instead:
    at the default bounds (2 M slots) the order arrays are ~210 MB resident from construction,
    written in 30-470 ms (varies with how much of that memory the VM had touched before).
    """
    return np.full(shape, 0, dtype=dtype)


def aligned_rows(rows: int, dtype: type = np.float64) -> np.ndarray:
    """A zeroed, resident [rows, 8] table of 8-byte values whose rows start on 64-byte boundaries.

    A row is then exactly one cache line; numpy's allocation is only 16-byte aligned, so a row
    would straddle two. The check kernel's cost is its cache misses (it runs out of outstanding-miss
    slots, not bandwidth): aligning 128-byte book rows measured 10.4 -> 12.5 M orders/s on
    bench/kernel_bench.py's kernel row, and one-line book rows and order slots (instead of two or
    three lines each) see the README's benchmark figures.
    """
    line = 64 // np.dtype(dtype).itemsize
    buf = resident(rows * line + line, dtype)
    skip = (-buf.ctypes.data % 64) // buf.itemsize
    return buf[skip : skip + rows * line].reshape(rows, line)


def book_rows(rows: int) -> np.ndarray:
    """A zeroed float64[rows, B_FIELDS] book table, one aligned cache line per row."""
    assert L.B_FIELDS == 8
    return aligned_rows(rows)


def order_slots(slots: int) -> tuple[np.ndarray, np.ndarray]:
    """(ordf, ordi): float64 and int64 views of one zeroed [slots, O_FIELDS] buffer, a line per slot.

    One slot is one cache line to load and dirty per accepted order, instead of a float row and an
    int row in two arrays.
    """
    assert L.O_FIELDS == 8
    ordi = aligned_rows(slots, np.int64)
    return ordi.view(np.float64), ordi


def grow_rows(arr: np.ndarray, rows: int, fill: float | int) -> np.ndarray:
    grown = np.full((rows, *arr.shape[1:]), fill, dtype=arr.dtype)
    grown[: arr.shape[0]] = arr
    return grown


@dataclass(slots=True)
class State:
    """The mutable state arrays (see kernel.layout for the columns).

    The order arrays (ordf, ordi, ord_ht, free, ring) are allocated once at the configured bound,
    so the event loop never stops to copy or rehash them, and written in full at construction
    (``resident``) so every page is mapped before the first order. Book rows and order slots are
    one 64-byte-aligned cache line each (``aligned_rows``; ordf and ordi are two views of one
    buffer, ``order_slots``). ``free`` is topped up from ``ctr[C_SLOTS]`` (slots handed out so
    far) as the engine needs them. Only open orders hold slots (max_open_orders of them); the
    order table also keeps the retained closed ids (kernel.layout.ORDER_CLOSED_BASE).
    """

    acct: np.ndarray
    sym: np.ndarray
    book_ht: np.ndarray
    book: np.ndarray
    book_pair: np.ndarray
    sym_books: np.ndarray
    ord_ht: np.ndarray
    ordf: np.ndarray
    ordi: np.ndarray
    free: np.ndarray
    ring: np.ndarray
    max_slots: int  # the order arrays' bound
    ctr: np.ndarray = field(default_factory=lambda: np.zeros(L.C_FIELDS, dtype=np.int64))
    # The VaR tables (kernel.var; layout.VS_*, VA_*, VC_*): empty with vctl[VC_ON] = 0 until a
    # risk model is installed (engine.core.set_risk_model); then vsym spans the symbol rows and
    # vacct the account rows, and grow with them.
    vsym: np.ndarray = field(default_factory=lambda: np.zeros((0, L.VS_EXTRA), dtype=np.float64))
    vacct: np.ndarray = field(default_factory=lambda: np.zeros((0, L.VA_F), dtype=np.float64))
    vctl: np.ndarray = field(default_factory=lambda: np.zeros(L.VC_FIELDS_VAR, dtype=np.float64))

    # The check kernel's state and limit arguments, cached by the engine; growth resets it.
    kernel_args: tuple | None = None

    def groups(self) -> tuple[tuple, tuple, tuple, tuple]:
        """(accounts, symbols, books, orders): the kernels' groups of these arrays, as plain tuples
        in their NamedTuple's order (kernel.state; build again after an array is replaced)."""
        return (
            tuple(Accounts(acct=self.acct, ctr=self.ctr)),
            tuple(Symbols(sym=self.sym, sym_books=self.sym_books)),
            tuple(Books(book_ht=self.book_ht, book=self.book, book_pair=self.book_pair)),
            tuple(Orders(ord_ht=self.ord_ht, ordf=self.ordf, ordi=self.ordi, free=self.free, ring=self.ring)),
        )

    def var_group(self) -> tuple:
        """The kernels' VarState group, as a plain tuple (kernel.state)."""
        return tuple(VarState(vsym=self.vsym, vacct=self.vacct, vctl=self.vctl))

    @classmethod
    def allocate(cls, cfg: EngineConfig) -> State:
        """The state arrays at cfg's initial sizes; the order arrays at their bound (see above)."""
        max_slots = cfg.max_open_orders  # a closed order holds no slot (layout)
        ordf, ordi = order_slots(max_slots)
        s = cls(
            acct=np.zeros((cfg.initial_accounts, L.A_FIELDS), dtype=np.float64),
            sym=np.full((cfg.initial_symbols, L.S_FIELDS), np.nan, dtype=np.float64),
            book_ht=ht_new(cfg.initial_books + 1),
            book=book_rows(cfg.initial_books + 1),
            book_pair=np.zeros((cfg.initial_books + 1, L.BP_FIELDS), dtype=np.int64),
            sym_books=np.full(cfg.initial_symbols, -1, dtype=np.int64),
            ord_ht=ht_new(max_slots + cfg.closed_order_retention),
            ordf=ordf,
            ordi=ordi,
            free=resident(max_slots, np.int64),
            ring=resident(cfg.closed_order_retention + cfg.max_batch, np.int64),
            max_slots=max_slots,
        )
        s.ctr[L.C_RING_KEEP] = cfg.closed_order_retention
        s.fit_slots(min(cfg.initial_order_slots, max_slots))
        return s

    def fit_accounts(self, accounts: int) -> None:
        """Rows for this many accounts (doubling)."""
        if accounts > self.acct.shape[0]:
            self.acct = grow_rows(self.acct, max(2 * self.acct.shape[0], accounts), 0.0)
            self.kernel_args = None
        if self.vctl[L.VC_ON] and self.vacct.shape[0] < self.acct.shape[0]:
            self.vacct = grow_rows(self.vacct, self.acct.shape[0], 0.0)  # new accounts hold nothing
            self.kernel_args = None

    def fit_symbols(self, symbols: int) -> None:
        """Rows for this many symbols (doubling)."""
        if symbols > self.sym.shape[0]:
            rows = max(2 * self.sym.shape[0], symbols)
            self.sym = grow_rows(self.sym, rows, np.nan)
            self.sym_books = grow_rows(self.sym_books, rows, -1)
            self.kernel_args = None
        if self.vctl[L.VC_ON] and self.vsym.shape[0] < self.sym.shape[0]:
            k = int(self.vctl[L.VC_K])
            grown = np.zeros((self.sym.shape[0], k + L.VS_EXTRA), dtype=np.float64)
            grown[:, k + L.VS_SPEC] = self.vctl[L.VC_DEFAULT]  # the engine fills named rows
            grown[:, k + L.VS_TOTAL] = self.vctl[L.VC_DEFAULT]
            grown[: self.vsym.shape[0]] = self.vsym
            self.vsym = grown
            self.kernel_args = None

    def fit_books(self, extra: int) -> None:
        """Room for extra new books plus the spare row check_batch resolves a new book's limits in."""
        need = int(self.ctr[L.C_BOOKS]) + extra + 1
        if need <= self.book.shape[0] and 2 * need <= self.book_ht.shape[0]:
            return
        if need > self.book.shape[0]:
            rows = max(2 * self.book.shape[0], need)
            book = book_rows(rows)
            book[: self.book.shape[0]] = self.book
            self.book = book
            self.book_pair = grow_rows(self.book_pair, rows, 0)
        self.book_ht = ht_grow(self.book_ht, need)
        self.kernel_args = None

    def fit_slots(self, n: int) -> None:
        """Make n free order slots if the bound allows (past it the kernel rejects on capacity).

        The arrays already span the bound; this only pushes never-used slots on the free stack,
        at most max(n, SLOT_STEP) at a time, so it costs microseconds, never a copy or rehash.
        """
        free_now = int(self.ctr[L.C_FREE_TOP])
        cap = int(self.ctr[L.C_SLOTS])
        if free_now >= n or cap >= self.max_slots:
            return
        added = min(self.max_slots - cap, max(n - free_now, min(max(cap, 1), SLOT_STEP)))
        # Lowest new slot on top, so slots are first used in order.
        self.free[free_now : free_now + added] = np.arange(cap + added - 1, cap - 1, -1, dtype=np.int64)
        self.ctr[L.C_FREE_TOP] = free_now + added
        self.ctr[L.C_SLOTS] = cap + added

    def raise_slot_bound(self, max_slots: int, retention: int) -> None:
        """Enlarge the order arrays to max_slots (start-up only: recovery found more open orders)."""
        used = int(self.ctr[L.C_SLOTS])
        ordf, ordi = order_slots(max_slots)
        free = resident(max_slots, np.int64)
        ordi[:used] = self.ordi[:used]  # both views: one buffer
        top = int(self.ctr[L.C_FREE_TOP])
        free[:top] = self.free[:top]
        self.ordf, self.ordi, self.free = ordf, ordi, free
        self.ord_ht = ht_grow(self.ord_ht, max_slots + retention)
        self.max_slots = max_slots
        self.kernel_args = None
