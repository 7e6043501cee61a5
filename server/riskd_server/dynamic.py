"""Dynamic limits: thresholds that tighten when volatility rises (pure; no I/O).

A limit with ``reference_volatility`` > 0 is enforced at

    effective = threshold * clamp(reference_volatility / vol, min_scale, 1)

where min_scale is the limit's own, or ``dynamic_min_scale`` when it is 0, and vol is the current
volatility of what the limit covers: the symbol's when the limit names a symbol; otherwise the
exposure-weighted volatility of the account it names (sum |position x mark| x vol / sum
|position x mark| over its positions in symbols whose vol is known), or of every account for a
firm-wide limit. A symbol's vol is the risk model's (``RiskModel.vol``, daily) when the model lists
it, else the EWMA of the log returns of its marks (``kernel.vol``) once it has ``min_returns``
returns. Unknown vol (no model entry, too few returns, no weighted exposure) or a vol of 0: no
tightening, the effective threshold is the configured one. It never loosens past the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .kernel import layout as L
from .kernel.vol import ewma_update
from .limitbook import M_MIN_SCALE, M_REF_VOL, M_THRESHOLD, W_ACCOUNT, W_SYMBOL, LimitBook


@dataclass(frozen=True, slots=True)
class DynamicConfig:
    min_scale: float = 0.25  # for limits whose min_scale is 0
    ewma_lambda: float = 0.94
    min_returns: int = 5  # EWMA returns before a symbol's vol counts as known
    tolerance: float = 0.01  # relative move of an effective threshold that triggers a new version

    def __post_init__(self) -> None:
        errors = []
        if not 0 < self.min_scale <= 1:
            errors.append(f"dynamic_min_scale must be in (0, 1], got {self.min_scale}")
        if not 0 < self.ewma_lambda < 1:
            errors.append(f"vol_ewma_lambda must be in (0, 1), got {self.ewma_lambda}")
        if self.min_returns < 1:
            errors.append(f"dynamic_min_returns must be >= 1, got {self.min_returns}")
        if not self.tolerance >= 0:
            errors.append(f"dynamic_tolerance must be >= 0, got {self.tolerance}")
        if errors:
            raise ValueError("; ".join(errors))


class VolEwma:
    """Per-symbol EWMA state (last mark, variance, returns seen), grown with the symbols."""

    __slots__ = ("count", "lam", "last", "var")

    def __init__(self, lam: float, size: int = 1_024) -> None:
        self.lam = lam
        self.last = np.zeros(size, dtype=np.float64)
        self.var = np.zeros(size, dtype=np.float64)
        self.count = np.zeros(size, dtype=np.int64)

    def update(self, sid: np.ndarray, px: np.ndarray) -> None:
        """Fold one validated UpdatePrices batch in (O(1) per price)."""
        if sid.shape[0] and sid.max() >= self.last.shape[0]:
            size = max(int(sid.max()) + 1, 2 * self.last.shape[0])
            self.last = _grown(self.last, size)
            self.var = _grown(self.var, size)
            self.count = _grown(self.count, size)
        ewma_update(sid, px, self.lam, self.last, self.var, self.count)

    def vol(self, n: int, min_returns: int) -> np.ndarray:
        """float64[n]: EWMA vol per symbol id, NaN until min_returns returns."""
        out = np.full(n, np.nan)
        k = min(n, self.var.shape[0])
        known = self.count[:k] >= min_returns
        out[:k][known] = np.sqrt(self.var[:k][known])
        return out


def _grown(arr: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


@dataclass(frozen=True, slots=True)
class Vols:
    """The volatilities one set of effective thresholds is computed from."""

    symbol: np.ndarray  # float64[symbols]: NaN unknown
    account: np.ndarray  # float64[accounts]: exposure-weighted, NaN unknown
    firm: float  # every account's exposure-weighted vol, NaN unknown
    min_scale: float  # the server's dynamic_min_scale

    def of_rows(self, where: np.ndarray) -> np.ndarray:
        """The vol each limit row (where: account, symbol, kind) is scaled by."""
        a, s = where[:, W_ACCOUNT], where[:, W_SYMBOL]
        vol = np.full(where.shape[0], self.firm)
        by_acct = (s < 0) & (a >= 0)
        vol[by_acct] = _at(self.account, a[by_acct])
        by_sym = s >= 0
        vol[by_sym] = _at(self.symbol, s[by_sym])
        return vol

    def effective(self, meta: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Effective thresholds of limit rows (meta: threshold, reference_volatility, min_scale)."""
        threshold = meta[:, M_THRESHOLD]
        ref = meta[:, M_REF_VOL]
        low = np.where(meta[:, M_MIN_SCALE] > 0, meta[:, M_MIN_SCALE], self.min_scale)
        vol = self.of_rows(where)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.clip(ref / vol, low, 1.0)
        tightens = (ref > 0) & (vol > 0) & np.isfinite(vol)  # NaN compares false: unknown vol
        return np.where(tightens, threshold * scale, threshold)


def _at(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = np.full(ids.shape[0], np.nan)
    ok = ids < values.shape[0]
    out[ok] = values[ids[ok]]
    return out


def symbol_vols(
    ewma: VolEwma,
    n_symbols: int,
    min_returns: int,
    model_vol: np.ndarray | None = None,
    model_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Per symbol id: the risk model's vol where it lists the symbol (model_ids: the symbol id of
    each model row, -1 unknown here), else the EWMA's."""
    vol = ewma.vol(n_symbols, min_returns)
    if model_vol is not None and model_ids is not None:
        ok = (model_ids >= 0) & (model_ids < n_symbols)
        vol[model_ids[ok]] = model_vol[ok]
    return vol


def model_symbol_ids(index: Mapping[str, int], size: int, symbol_id: Callable[[str], int]) -> np.ndarray:
    """int64[size]: the symbol id of each model row (-1 for a symbol this server has not seen)."""
    ids = np.full(size, -1, dtype=np.int64)
    for name, row in index.items():
        ids[row] = symbol_id(name)
    return ids


def account_vols(
    sym_vol: np.ndarray,
    sym: np.ndarray,
    book: np.ndarray,
    book_pair: np.ndarray,
    n_books: int,
    n_accounts: int,
) -> tuple[np.ndarray, float]:
    """(per account, firm): exposure-weighted vols over the books' positions (|pos| x mark weights,
    mark = last UpdatePrices price, else last fill price; books without a known vol left out)."""
    a = book_pair[:n_books, L.BP_ACCOUNT]
    s = book_pair[:n_books, L.BP_SYMBOL]
    mark = sym[s, L.S_PRICE]
    mark = np.where(np.isnan(mark), sym[s, L.S_FILL], mark)
    w = np.abs(book[:n_books, L.B_POS] * mark)
    v = _at(sym_vol, s)
    ok = np.isfinite(w) & (w > 0) & np.isfinite(v)
    wsum = np.bincount(a[ok], weights=w[ok], minlength=n_accounts)[:n_accounts]
    vsum = np.bincount(a[ok], weights=(w * v)[ok], minlength=n_accounts)[:n_accounts]
    with np.errstate(divide="ignore", invalid="ignore"):
        acct = np.where(wsum > 0, vsum / wsum, np.nan)
    total = float(wsum.sum())
    firm = float(vsum.sum()) / total if total > 0 else float("nan")
    return acct, firm


def dynamic_rows(book: LimitBook) -> np.ndarray:
    """Rows of book holding dynamic limits (unread rows of replaced limits included: harmless).
    O(rows added since the last call on the book's buffers), not O(limits): the rows found are
    kept with the buffers, whose published rows never change."""
    n = book.meta.shape[0]
    cache = book.buffers.dynamic
    scanned, rows = cache
    if scanned < n:
        found = np.flatnonzero(book.buffers.meta[scanned:n, M_REF_VOL] > 0) + scanned
        rows = np.concatenate((rows, found))
        cache[:] = [n, rows]
    return rows[: int(np.searchsorted(rows, n))]  # an older version: fewer rows


def refreshed(book: LimitBook, vols: Vols, tolerance: float, version: int) -> LimitBook | None:
    """book with its dynamic limits' effective thresholds recomputed from vols, as a new version,
    or None when none moves by more than tolerance (relative) from what book enforces."""
    rows = dynamic_rows(book)
    if not rows.shape[0]:
        return None
    eff = vols.effective(book.meta[rows], book.where[rows])
    current = book.values[rows, L.L_THRESHOLD]
    if not (np.abs(eff - current) > tolerance * np.abs(current)).any():
        return None
    values = book.buffers.values.copy()  # copy on write: the current version keeps its own
    values[rows, L.L_THRESHOLD] = eff
    return book.with_values(values, version, vols)
