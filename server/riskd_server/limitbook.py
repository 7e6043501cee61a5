"""Compile limits into the immutable lookup tables the check kernel reads.

A ``LimitBook`` is built off the hot path and swapped in by reference: the kernel of a batch sees
one version from start to end, never a half-applied change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .kernel._hashtable import ht_find, ht_new, ht_put
from .kernel.layout import KINDS, L_THRESHOLD, L_WARN, LIMIT_BUILTIN, LIMIT_CAPACITY, LT_ACCOUNTS
from .kernel.levels import exact_limit_key
from .kernel.state import LimitTables
from .limits import Limit

CAPACITY_LIMIT_ID = "server:max-open-orders"


@dataclass(frozen=True, slots=True)
class LimitBook:
    """One version of the limit set and its lookup tables (all arrays read-only)."""

    version: int
    limits: Mapping[str, Limit]  # by limit_id, every limit incl. disabled ones
    exact: np.ndarray  # hash table (account, symbol, kind) -> limit index
    table: np.ndarray  # int64[1 + accounts + symbols, KINDS]: any/account/symbol rows (layout.LT_*)
    values: np.ndarray  # float64[n, 2]: threshold, warn_fraction
    ids: np.ndarray  # object[n + 2]: limit_id by index; [-2] capacity id, [-1] "" for built-ins

    @property
    def tables(self) -> tuple:
        """The kernels' LimitTables group, as a plain tuple (see kernel.state)."""
        return tuple(LimitTables(self.exact, self.table, self.values, self.version))

    @property
    def any(self) -> np.ndarray:
        """int64[KINDS]: (any, any) limit index or -1 (column 0 is the table's account-row count)."""
        return self.table[0]

    @property
    def by_account(self) -> np.ndarray:
        """int64[accounts, KINDS]: (account, any) limit index or -1."""
        return self.table[1 : 1 + self.table[0, LT_ACCOUNTS]]

    @property
    def by_symbol(self) -> np.ndarray:
        """int64[symbols, KINDS]: (any, symbol) limit index or -1."""
        return self.table[1 + self.table[0, LT_ACCOUNTS] :]

    def limit_ids(self, index: np.ndarray) -> np.ndarray:
        """limit_id for kernel limit indexes (LIMIT_BUILTIN -> "", LIMIT_CAPACITY -> capacity id)."""
        return self.ids[index]


def compile_limits(
    limits: Mapping[str, Limit],
    account_id: Callable[[str], int],
    symbol_id: Callable[[str], int],
    version: int,
) -> LimitBook:
    """Build the tables; account_id/symbol_id return dense ids of names (interning them)."""
    enabled = sorted((lim for lim in limits.values() if not lim.disabled), key=lambda lim: lim.limit_id)
    rows = [
        (lim, account_id(lim.account) if lim.account else -1, symbol_id(lim.symbol) if lim.symbol else -1)
        for lim in enabled
    ]
    max_a = max((a for _, a, _ in rows), default=-1) + 1
    max_s = max((s for _, _, s in rows), default=-1) + 1
    exact = ht_new(sum(1 for _, a, s in rows if a >= 0 and s >= 0))
    table = np.full((1 + max_a + max_s, KINDS), -1, dtype=np.int64)
    table[0, LT_ACCOUNTS] = max_a
    any_, by_account, by_symbol = table[0], table[1 : 1 + max_a], table[1 + max_a :]  # views
    values = np.zeros((max(len(rows), 1), 2), dtype=np.float64)
    for index, (lim, a, s) in enumerate(rows):
        values[index, L_THRESHOLD] = lim.threshold
        values[index, L_WARN] = lim.warn_fraction
        # Two limits of one kind at one specificity: the lowest limit_id wins (sorted, first kept).
        if a >= 0 and s >= 0:
            key = exact_limit_key(a, s, lim.kind)
            if ht_find(exact, key) < 0:
                ht_put(exact, key, index)
        elif a >= 0:
            if by_account[a, lim.kind] < 0:
                by_account[a, lim.kind] = index
        elif s >= 0:
            if by_symbol[s, lim.kind] < 0:
                by_symbol[s, lim.kind] = index
        elif any_[lim.kind] < 0:
            any_[lim.kind] = index
    ids = np.empty(len(rows) + 2, dtype=object)
    ids[: len(rows)] = [lim.limit_id for lim, _, _ in rows]
    ids[LIMIT_CAPACITY] = CAPACITY_LIMIT_ID
    ids[LIMIT_BUILTIN] = ""
    for arr in (exact, table, values, ids):
        arr.flags.writeable = False
    return LimitBook(
        version=version,
        limits=dict(limits),
        exact=exact,
        table=table,
        values=values,
        ids=ids,
    )
