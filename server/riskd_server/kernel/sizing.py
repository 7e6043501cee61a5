"""Loop bodies for position sizing (risk.sizing, risk.sizer): the limit that applies to each of many
(account, symbol) pairs, and a sparse covariance product. Pure: they write only their ``out``.

- ``resolve_thresholds`` answers "which limit of kind k applies to (a, s)" exactly as the check
  kernel does (``levels.find_limit``: exact > account > symbol > any, disabled limits are not in
  the tables), for every symbol and kind in one call, so a sizing answer agrees with the checks.
  It also takes names the engine has not interned (id -1): such a name can only be matched by
  the account-wide and any-symbol levels (a limit naming a symbol interns it).
- ``sum_rows`` is Sigma @ w for a sample covariance when only a few symbols are held: it reads the
  held symbols' rows (Sigma is symmetric) instead of the whole n x n matrix (200 MB at 5,000
  symbols, ~17 ms to stream here) or a fancy-indexed copy of those rows (numpy copies them first).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .layout import L_THRESHOLD, LT_ACCOUNTS
from .limittables import exact_find


@njit(cache=True, nogil=True)
def resolve_thresholds(
    kinds: np.ndarray,
    a: np.int64,
    sids: np.ndarray,
    lim_exact: np.ndarray,
    lim_tab: np.ndarray,
    lim_f: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[j, i] = threshold of the limit of kinds[j] that applies to (a, sids[i]), +inf for none.

    a or sids[i] may be -1 (a name the engine does not know): only the levels that do not name it
    can match then. Mirrors levels.find_limit's order.
    """
    n_acct = lim_tab[0, LT_ACCOUNTS]
    for j in range(kinds.shape[0]):
        kind = kinds[j]
        for i in range(sids.shape[0]):
            s = sids[i]
            li = np.int64(-1)
            if 0 <= a < n_acct and s >= 0 and lim_tab[1 + a, 0] >= 0:  # the account's exact table
                li = exact_find(lim_exact, lim_tab[1 + a, 0], s, kind)
            if li < 0 and 0 <= a < n_acct:
                li = lim_tab[1 + a, kind]
            if li < 0 and s >= 0:
                r = 1 + n_acct + s
                if r < lim_tab.shape[0]:
                    li = lim_tab[r, kind]
            if li < 0:
                li = lim_tab[0, kind]
            out[j, i] = lim_f[li, L_THRESHOLD] if li >= 0 else math.inf


@njit(cache=True, nogil=True)
def sum_rows(cov: np.ndarray, rows: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """out = sum_i weights[i] * cov[rows[i], :] (Sigma @ w for a symmetric Sigma and a sparse w)."""
    out[:] = 0.0
    n = cov.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        x = weights[i]
        for c in range(n):
            out[c] += x * cov[r, c]
