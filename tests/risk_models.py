"""Small hand-made RiskModels for the sizing tests and bench (no returns, no database)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from riskd_server.risk.model import FACTOR, SAMPLE, ModelSummary, RiskModel


def make_model(
    kind: str,
    symbols: list[str] | tuple[str, ...],
    seed: int = 0,
    factors: int = 3,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    default_vol: float = 0.02,
    version: str = "",
) -> RiskModel:
    """A random, well-conditioned model over symbols: factor (B n x k, specific) or sample (B Bᵀ +
    diag: a full-rank covariance). Daily vols of about 1-3 %."""
    rng = np.random.default_rng(seed)
    n = len(symbols)
    loadings = rng.normal(0.0, 0.006, size=(n, factors))
    specific = rng.uniform(0.005, 0.02, size=n) ** 2
    z = NormalDist().inv_cdf(confidence)
    if kind == FACTOR:
        cov = None
        load: np.ndarray | None = loadings
        vol = np.sqrt(np.einsum("ij,ij->i", loadings, loadings) + specific)
        spec = specific
    else:
        assert kind == SAMPLE
        cov = loadings @ loadings.T + np.diag(specific)
        load = None
        vol = np.sqrt(np.diagonal(cov)).copy()
        spec = np.zeros(n)
    summary = ModelSummary(
        kind=kind, symbols=n, days=250, first_day=20250101, last_day=20251231,
        factors=factors if kind == FACTOR else 0, explained_variance=0.5 if kind == FACTOR else 1.0,
        defaulted_symbols=(), memory_bytes=0, confidence=confidence, horizon_days=horizon_days, z=z,
    )  # fmt: skip
    return RiskModel(
        version=version or f"test-{kind}-{n}-{seed}",
        kind=kind,
        symbols=tuple(symbols),
        vol=vol,
        specific=spec,
        loadings=load,
        covariance=cov,
        z=z,
        horizon_days=horizon_days,
        confidence=confidence,
        default_vol=default_vol,
        summary=summary,
        built_at=0.0,
    )
