"""Position sizing under a VaR budget: pure, vectorised arithmetic over numpy arrays (no engine, no
I/O, no Python loop over symbols).

For an account with exposures w (currency, w_s = (position + open buys - open sells) x mark) and a
model Sigma (risk.model; symbols the model does not list: ``default_vol``² variance, no
correlation), with V = wᵀ Sigma w, g = Sigma w and VaR = scale * sqrt(V):

- The MAX_VAR rule accepts an order moving w_s by Delta (q * p for a buy of q at p, -q * p for a
  sell) when VaR' <= max(B, VaR), B the budget. With E = max(B, VaR) that is
  V + 2 Delta g_s + Delta² Sigma_ss <= (E / scale)², a quadratic in Delta. Writing
  K = (E / scale)² - V = max((B / scale)² - V, 0) >= 0 (exactly 0 when the budget is below the
  VaR: only orders that do not raise it pass), the largest Delta is the larger root of
  Sigma_ss Delta² + 2 g Delta - K = 0:
      Delta = (-g + sqrt(g² + Sigma_ss K)) / Sigma_ss,
  evaluated as K / (g + sqrt(g² + Sigma_ss K)) when g > 0 (the textbook form subtracts two nearly
  equal numbers there and loses every digit when Sigma_ss K << g²), and sqrt(g² + Sigma_ss K) as
  hypot(g, sqrt(Sigma_ss K)) so no square overflows. Sigma_ss = 0 with g <= 0: unbounded (+inf).
  max_buy = Delta(g) / p, max_sell = Delta(-g) / p.
- marginal_s = dVaR/dw_s = scale * g_s / sqrt(V); 0 when V = 0 (VaR is not differentiable at
  w = 0; every component is 0 there, and they still sum to the VaR). component_s = w_s *
  marginal_s; over every held symbol they sum to the VaR (Euler: VaR is homogeneous of degree 1).
- No usable price (NaN, <= 0): max_buy = max_sell = 0, because the check rejects such an order
  (NO_REFERENCE_PRICE) whatever its size; the reported price is 0 so a reader can tell why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernel.sizing import sum_rows
from .model import RiskModel

# Held symbols above this share of the model: one dense Sigma @ w (BLAS streams the matrix once)
# instead of summing the held rows (kernel.sizing.sum_rows).
DENSE_SHARE = 0.3
# Budgets above this are taken as this (no VaR of bounded exposures comes near; the square of a
# larger one could overflow to inf and turn the roots into NaN).
_BUDGET_CAP = 1e150


@dataclass(frozen=True, slots=True)
class VarSizes:
    """Sizing of r asked symbols (arrays float64[r]) and the portfolio figures they came from."""

    var: float
    budget: float  # E = max(B, VaR): the VaR an order may take the account to
    variance: float  # V = wᵀ Sigma w (currency², daily)
    max_buy: np.ndarray
    max_sell: np.ndarray
    marginal: np.ndarray
    component: np.ndarray


def model_diagonal(model: RiskModel) -> np.ndarray:
    """diag(Sigma) in model order, as the products use it (cache it per model: O(n k))."""
    if model.covariance is not None:
        return np.ascontiguousarray(np.diagonal(model.covariance))
    assert model.loadings is not None
    return np.einsum("ij,ij->i", model.loadings, model.loadings) + model.specific


def largest_move(g: np.ndarray, s: np.ndarray, k: float) -> np.ndarray:
    """Largest Delta >= 0 with s Delta² + 2 g Delta <= k (k >= 0, s >= 0), elementwise; +inf when
    every Delta >= 0 passes (s = 0 and g <= 0). The stable form of the larger root (module doc)."""
    root = np.hypot(g, np.sqrt(s * k))  # sqrt(g² + s k) without overflow
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = k / (g + root)  # g > 0: no cancellation
        falling = (root - g) / s  # g <= 0: both terms >= 0, no cancellation
    out = np.where(g > 0.0, rising, falling)
    return np.where((g <= 0.0) & (s <= 0.0), np.inf, out)  # 0/0 and x/0: the move costs nothing


def sigma_times_sparse(model: RiskModel, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sigma @ w in model order for w nonzero only at rows (distinct), O(n k) or O(n |rows|)."""
    n = len(model.symbols)
    if model.loadings is not None:
        f = model.loadings[rows].T @ weights  # Bᵀ w, k floats
        out = model.loadings @ f
        out[rows] += model.specific[rows] * weights
        return out
    cov = model.covariance
    assert cov is not None
    if rows.shape[0] > DENSE_SHARE * n or not cov.flags.c_contiguous:  # (sum_rows: C order only)
        w = np.zeros(n)
        w[rows] = weights
        return cov @ w
    out = np.empty(n)
    sum_rows(cov, rows.astype(np.int64), weights.astype(np.float64), out)
    return out


def size_var(
    model: RiskModel,
    held_row: np.ndarray,
    held_w: np.ndarray,
    ask_row: np.ndarray,
    ask_w: np.ndarray,
    price: np.ndarray,
    budget: float,
    diag: np.ndarray | None = None,
    sigma_w: np.ndarray | None = None,
) -> VarSizes:
    """Size r asked symbols for one account.

    held_row/held_w: the account's exposures, one per distinct symbol: the model row, or -1 for a
    symbol the model does not list, and the exposure in currency (finite). ask_row/ask_w/price:
    per asked symbol (repeats allowed), its model row or -1, its current exposure (0 when not
    held) and its mark (NaN or <= 0: none). budget B >= 0. diag: model_diagonal(model), cached by
    the caller. sigma_w: Sigma @ w in model order if the caller has it (risk.sizer's cache).
    """
    if diag is None:
        diag = model_diagonal(model)
    dv2 = model.default_vol**2
    scale = model.scale
    in_model = held_row >= 0
    rows, weights = held_row[in_model], held_w[in_model]
    outside = held_w[~in_model]
    g_model = sigma_times_sparse(model, rows, weights) if sigma_w is None else sigma_w
    variance = float(weights @ g_model[rows]) + dv2 * float(outside @ outside)
    variance = max(variance, 0.0)
    sd = float(np.sqrt(variance))
    var = scale * sd

    known = ask_row >= 0
    at = np.where(known, ask_row, 0)
    g = np.where(known, g_model[at], dv2 * ask_w)
    s = np.where(known, diag[at], dv2)
    k = max((min(budget, _BUDGET_CAP) / scale) ** 2 - variance, 0.0)  # a square that stays finite
    priced = price > 0.0  # NaN compares false
    p = np.where(priced, price, 1.0)
    max_buy = np.where(priced, largest_move(g, s, k) / p, 0.0)
    max_sell = np.where(priced, largest_move(-g, s, k) / p, 0.0)
    marginal = g * (scale / sd) if sd > 0.0 else np.zeros_like(g)
    return VarSizes(
        var=var,
        budget=max(budget, var),
        variance=variance,
        max_buy=max_buy,
        max_sell=max_sell,
        marginal=marginal,
        component=ask_w * marginal + 0.0,  # + 0.0: no -0.0 for a symbol not held
    )


def naive_var(model: RiskModel, w: np.ndarray, extra: np.ndarray) -> float:
    """VaR from a fresh wᵀ Sigma w (w in model order, extra: exposures outside the model): the
    plain reference the tests and the bench's naive sizing use."""
    v = model.variance(w) + model.default_vol**2 * float(extra @ extra)
    return model.scale * float(np.sqrt(max(v, 0.0)))
