"""EWMA volatility of each symbol's marks, updated in O(1) per price update (dynamic limits).

sigma² <- lam * sigma² + (1 - lam) * r², r = ln(p / p_prev) between successive UpdatePrices marks of
a symbol; the first return seeds sigma² = r². One pass over an UpdatePrices batch, in order, so a
symbol priced twice in one batch takes both returns.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def ewma_update(
    sid: np.ndarray, px: np.ndarray, lam: float, last: np.ndarray, var: np.ndarray, count: np.ndarray
) -> None:
    """Fold the marks px of symbols sid (valid: > 0, finite, sid >= 0) into last/var/count."""
    for i in range(sid.shape[0]):
        s = sid[i]
        p = px[i]
        prev = last[s]
        if prev > 0.0:
            r = math.log(p / prev)
            if count[s] == 0:
                var[s] = r * r
            else:
                var[s] = lam * var[s] + (1.0 - lam) * r * r
            count[s] += 1
        last[s] = p
