"""Plain-numpy reference for the MAX_VAR check (kernel.var): random models, exposures, the rule.

Independent of the kernel's arithmetic: w is rebuilt from positions, open orders and marks held in
plain dicts, and VaR comes from RiskModel.var (covariance or loadings, model order) plus the
default variance for symbols the model does not list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from riskd_server.risk.model import FACTOR, ModelSummary, RiskModel

Z99 = 2.3263478740408408  # NormalDist().inv_cdf(0.99)


def make_model(
    symbols: list[str],
    seed: int,
    kind: str = FACTOR,
    k: int = 2,
    days: int = 6,
    default_vol: float = 0.03,
    horizon: float = 1.0,
) -> RiskModel:
    """A random model of ``symbols``: factor (k factors, specific >= 10 % of each variance) or
    sample (the covariance of ``days`` random daily returns: rank <= days - 1)."""
    rng = np.random.default_rng(seed)
    n = len(symbols)
    loadings = covariance = None
    if kind == FACTOR:
        loadings = rng.normal(0.0, 0.01, (n, k))
        specific = rng.uniform(0.1, 1.0, n) * 1e-4 + 0.1 * np.einsum("ij,ij->i", loadings, loadings)
        var = np.einsum("ij,ij->i", loadings, loadings) + specific
    else:
        returns = rng.normal(0.0, 0.02, (days, n)) + rng.normal(0.0, 0.01, (days, 1))
        covariance = np.cov(returns, rowvar=False, ddof=1).reshape(n, n)
        specific = np.zeros(n)
        var = np.diag(covariance).copy()
        k = 0
    summary = ModelSummary(kind, n, days, 0, 0, k, 1.0, (), 0, 0.99, horizon, Z99)
    return RiskModel(
        version=f"{kind}-{seed}",
        kind=kind,
        symbols=tuple(symbols),
        vol=np.sqrt(var),
        specific=specific,
        loadings=loadings,
        covariance=covariance,
        z=Z99,
        horizon_days=horizon,
        confidence=0.99,
        default_vol=default_vol,
        summary=summary,
        built_at=0.0,
    )


def variance(model: RiskModel, w: Mapping[str, float]) -> tuple[float, float]:
    """(wᵀ Sigma w, Σ Sigma_ss w_s²) for exposures by symbol name: RiskModel.variance over the
    symbols it lists, default_vol² and no correlation for the rest. The second figure is the
    undiversified variance, the scale a hedged book's rounding is measured against."""
    vec = np.zeros(len(model.symbols))
    outside = 0.0
    for s, x in w.items():
        i = model.index.get(s)
        if i is None:
            outside += model.default_vol**2 * x * x
        else:
            vec[i] += x
    undiversified = float(np.sum(model.vol**2 * vec * vec)) + outside
    return model.variance(vec) + outside, undiversified


def var_of(model: RiskModel, w: Mapping[str, float]) -> float:
    return model.scale * math.sqrt(max(variance(model, w)[0], 0.0))


def exposures(
    positions: Mapping[tuple[str, str], float],
    open_orders: Mapping[str, tuple[str, str, int, float]],
    marks: Mapping[str, float],
    account: str,
) -> dict[str, float]:
    """w_s = (pos + open buy - open sell) x mark for one account; unmarked symbols count 0."""
    net: dict[str, float] = {}
    for (a, s), q in positions.items():
        if a == account:
            net[s] = net.get(s, 0.0) + q
    for a, s, side, q in open_orders.values():
        if a == account:
            net[s] = net.get(s, 0.0) + (q if side == 1 else -q)
    return {s: q * marks[s] for s, q in net.items() if s in marks}


def var_rule(var_after: float, var_before: float, threshold: float) -> bool:
    """The MAX_VAR rule: True = reject (VaR' > T and VaR' > VaR: an order lowering VaR passes)."""
    return var_after > threshold and var_after > var_before
