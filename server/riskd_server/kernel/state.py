"""The groups of state arrays the kernels take, so a kernel's signature says what it touches.

Each group is a NamedTuple naming its arrays in order; the engine builds each group once (and again
after an array grows) and passes it to the kernels as a plain tuple in that order (``tuple(...)``):
a NamedTuple instance costs numba about twice a plain tuple to unbox (it types the class in Python
on every call), which the one-order path would pay per order. Plain tuples still cost a little more
than separate arrays: the check kernel's five groups (16 arrays) took 2.9-3.3 us to dispatch to an
empty kernel against 2.4 us as 17 separate arguments (2026-11-28, a slow day on this host).
Kernels unpack their groups at the top and hand plain arrays to their inlined helpers (see
``checks``' module doc on numba's reference counting). Columns are named in ``layout``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Accounts(NamedTuple):
    acct: np.ndarray  # float64[accounts, A_FIELDS]: exposure sums, counts, trading state, levels
    ctr: np.ndarray  # int64[C_FIELDS]: counters (books, free slots, ring, open orders, firm state)


class Symbols(NamedTuple):
    sym: np.ndarray  # float64[symbols, S_FIELDS]: marks
    sym_books: np.ndarray  # int64[symbols]: the symbol's first book (layout.BP_NEXT)


class Books(NamedTuple):
    book_ht: np.ndarray  # (account, symbol) key -> book row
    book: np.ndarray  # float64[books, B_FIELDS]: position, open quantities, cached levels
    book_pair: np.ndarray  # int64[books, BP_FIELDS]: account, symbol, next book of the symbol


class Orders(NamedTuple):
    ord_ht: np.ndarray  # client_order_id key -> slot (open) or closed value
    ordf: np.ndarray  # float64 view of the order slots
    ordi: np.ndarray  # int64 view of the same slots
    free: np.ndarray  # free slot stack
    ring: np.ndarray  # retained closed ids, oldest first


class LimitTables(NamedTuple):
    exact: np.ndarray  # (account, symbol, kind) key -> limit index
    table: np.ndarray  # int64[1 + accounts + symbols, KINDS]: limit index per level and kind
    values: np.ndarray  # float64[limits, 2]: threshold, warn fraction
    version: int


class VarState(NamedTuple):
    vsym: np.ndarray  # float64[symbols, k + VS_EXTRA]: loadings, specific, total variance (layout.VS_*)
    vacct: np.ndarray  # float64[accounts, VA_F + 2k]: cached variance, specific sum, f = Bᵀw
    vctl: np.ndarray  # float64[VC_FIELDS_VAR]: on, scale, k, default variance, version
