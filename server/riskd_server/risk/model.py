"""The risk model the MAX_VAR check and SizePositions price against: an immutable, versioned value.

Built off the event loop (a worker thread) from stored daily returns, then swapped in whole, so a
check or a sizing call sees one model from start to end. Two shapes share this type:

- ``sample``: Sigma is the n x n sample covariance (``covariance``); ``loadings`` is None.
- ``factor``: Sigma = B Bᵀ + diag(specific), with B = ``loadings`` (n x k); ``covariance`` is None.
  Only n x k + n floats, which is why large books use it (5,000 symbols: 0.8 MB at k = 20 against
  200 MB for the sample matrix).

Symbols with fewer than ``var_min_days`` returns are in the model with ``default_vol`` and zero
correlation (a zero row of B, or a zero row and column of the sample matrix but the diagonal);
symbols the model does not list at all are priced the same way by its users.

VaR(w) = z * sqrt(wᵀ Sigma w) * sqrt(horizon_days) for exposures w in currency;
``scale`` = z * sqrt(horizon_days).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

SAMPLE = "sample"
FACTOR = "factor"


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """What a person wants to know about a model (GetRiskModel's summary)."""

    kind: str
    symbols: int
    days: int  # days used
    first_day: int  # YYYYMMDD, 0 when no data
    last_day: int
    factors: int  # 0 for sample
    explained_variance: float  # share of total variance the factors explain (factor), 1.0 for sample
    defaulted_symbols: tuple[str, ...]  # fewer than var_min_days returns: default vol, no correlation
    memory_bytes: int
    confidence: float
    horizon_days: float
    z: float


@dataclass(frozen=True, slots=True)
class RiskModel:
    """One built model; never mutated after construction (arrays are made read-only)."""

    version: str  # names the data and parameters (see risk.build)
    kind: str  # SAMPLE or FACTOR
    symbols: tuple[str, ...]  # model order
    vol: np.ndarray  # float64[n]: daily volatility, sqrt(diag Sigma)
    specific: np.ndarray  # float64[n]: factor: specific variances; sample: zeros
    loadings: np.ndarray | None  # float64[n, k] (factor) or None
    covariance: np.ndarray | None  # float64[n, n] (sample) or None
    z: float  # NormalDist().inv_cdf(confidence)
    horizon_days: float
    confidence: float
    default_vol: float  # for symbols the model does not list
    summary: ModelSummary
    built_at: float  # time.time() when built
    index: Mapping[str, int] = field(default_factory=dict)  # symbol -> row (filled in __post_init__)

    def __post_init__(self) -> None:
        if not self.index:
            object.__setattr__(self, "index", {s: i for i, s in enumerate(self.symbols)})
        for arr in (self.vol, self.specific, self.loadings, self.covariance):
            if arr is not None:
                arr.setflags(write=False)

    @property
    def scale(self) -> float:
        """VaR = scale * sqrt(wᵀ Sigma w)."""
        return float(self.z * np.sqrt(self.horizon_days))

    @property
    def factors(self) -> int:
        return 0 if self.loadings is None else int(self.loadings.shape[1])

    # Plain-numpy reference arithmetic (O(n k) or O(n²)); the kernels keep incremental terms and
    # are tested against these.

    def sigma_times(self, w: np.ndarray) -> np.ndarray:
        """Sigma @ w for w in model order."""
        if self.covariance is not None:
            return self.covariance @ w
        assert self.loadings is not None
        return self.loadings @ (self.loadings.T @ w) + self.specific * w

    def variance(self, w: np.ndarray) -> float:
        """wᵀ Sigma w (currency², daily)."""
        return float(w @ self.sigma_times(w))

    def var(self, w: np.ndarray) -> float:
        """VaR of exposures w (model order)."""
        return self.scale * float(np.sqrt(max(self.variance(w), 0.0)))
