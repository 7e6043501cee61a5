"""The check kernel's VaR tables from a RiskModel (pure; no engine state, safe in a worker thread).

The kernel (kernel.var) prices every model in factor form, Sigma = B Bᵀ + diag(spec):

- ``factor`` models already are: B = loadings (n x k), spec = specific variances.
- ``sample`` models are factored once here by a pivoted Cholesky: Sigma = L Lᵀ + diag(residual),
  L n x r. A sample covariance over d days has rank r <= d - 1 (250 days: r <= 249, whatever n),
  so L is exact up to the stopping tolerance (the pivots stop when the largest remaining variance
  is below ``PIVOT_TOL`` of the largest variance; what is left stays on the diagonal). The kernel
  then keeps r factor exposures per account instead of the n-vector Σw (5,000 symbols: 4 kB an
  account instead of 40 kB) and prices an order in O(r). Cost: O(n r²), ~0.5 s at n = 5,000,
  r = 249; a full-rank matrix (more days than symbols) is O(n³): minutes at 5,000, so build it in
  a worker thread (``factor_form``) and hand it to Engine.set_risk_model.

Memory bound: per account 2k + 3 floats (k factors or the sample's rank r), for every account the
engine holds: ``state_bytes``; a model whose bound at ``max_accounts`` exceeds
``VAR_STATE_BYTES_MAX`` is refused (VarModelTooLarge) rather than installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..kernel.layout import VA_F, VS_EXTRA, VS_SPEC, VS_TOTAL
from .model import RiskModel

PIVOT_TOL = 1e-13  # stop the pivoted Cholesky below this share of the largest variance
VAR_STATE_BYTES_MAX = 2 << 30  # per-account VaR terms at max_accounts


class VarModelTooLarge(ValueError):
    """The per-account VaR terms of this model would exceed VAR_STATE_BYTES_MAX."""


@dataclass(frozen=True, slots=True)
class FactorForm:
    """A model as Sigma = B Bᵀ + diag(specific), model order; total = diag(Sigma)."""

    version: str  # the model's
    loadings: np.ndarray  # float64[n, k]
    specific: np.ndarray  # float64[n]
    total: np.ndarray  # float64[n]

    @property
    def k(self) -> int:
        return int(self.loadings.shape[1])


def pivoted_cholesky(cov: np.ndarray, tol: float = PIVOT_TOL) -> tuple[np.ndarray, np.ndarray]:
    """(L n x r, residual diagonal n) with cov ~ L Lᵀ + diag(residual), largest pivots first.

    The columns are kept as the rows of Lᵀ (contiguous), so each step's update is one gemv."""
    n = cov.shape[0]
    d = np.array(np.diag(cov), dtype=np.float64)
    lt = np.zeros((min(n, 256), n), dtype=np.float64)
    stop = tol * float(d.max()) if n and d.max() > 0 else 0.0
    chosen = np.zeros(n, dtype=bool)
    r = 0
    while r < n:
        p = int(np.argmax(d))
        if not d[p] > stop:
            break
        if r == lt.shape[0]:  # more columns: double (the rank is seldom known up front)
            grown = np.zeros((min(n, 2 * r), n), dtype=np.float64)
            grown[:r] = lt
            lt = grown
        col = np.array(cov[p], dtype=np.float64)
        if r:
            col -= lt[:r, p] @ lt[:r]
        pivot = np.sqrt(d[p])
        col /= pivot
        col[chosen] = 0.0  # pivoted order is triangular: earlier pivots get no later column
        col[p] = pivot
        chosen[p] = True
        lt[r] = col
        d -= col * col
        d[p] = 0.0
        np.maximum(d, 0.0, out=d)
        r += 1
    return np.ascontiguousarray(lt[:r].T), d


def factor_form(model: RiskModel) -> FactorForm:
    """The model in factor form (O(n k) for factor, a pivoted Cholesky for sample)."""
    if model.loadings is not None:
        b = np.asarray(model.loadings, dtype=np.float64)
        spec = np.asarray(model.specific, dtype=np.float64)
        total = np.einsum("ij,ij->i", b, b) + spec
        return FactorForm(model.version, b, spec, total)
    assert model.covariance is not None
    cov = np.asarray(model.covariance, dtype=np.float64)
    lmat, resid = pivoted_cholesky(cov)
    return FactorForm(model.version, lmat, resid, np.array(np.diag(cov), dtype=np.float64))


def state_bytes(k: int, accounts: int) -> int:
    """Bytes of the per-account VaR terms (kernel.layout.VA_*) for this many accounts."""
    return (VA_F + 2 * k) * 8 * accounts


def check_bound(form: FactorForm, max_accounts: int) -> None:
    need = state_bytes(form.k, max_accounts)
    if need > VAR_STATE_BYTES_MAX:
        raise VarModelTooLarge(
            f"risk model {form.version}: {form.k} factors x {max_accounts} accounts need "
            f"{need / 2**20:.0f} MiB of VaR terms, above the {VAR_STATE_BYTES_MAX / 2**20:.0f} MiB bound "
            "(use the factor model or fewer var_window days)"
        )


def symbol_rows(
    form: FactorForm, model: RiskModel, names: Sequence[str] | np.ndarray, out: np.ndarray
) -> None:
    """Write the kernel rows (layout.VS_*) of the engine symbols ``names`` into out[len(names), k + 2]:
    the model's row for a symbol it lists, else default_vol² and zero loadings (no correlation)."""
    k = form.k
    rows = np.fromiter((model.index.get(str(name), -1) for name in names), dtype=np.int64, count=len(names))
    known = rows >= 0
    default = model.default_vol * model.default_vol
    out[:, :k] = 0.0
    out[:, k + VS_SPEC] = default
    out[:, k + VS_TOTAL] = default
    if known.any():
        r = rows[known]
        out[known, :k] = form.loadings[r]
        out[known, k + VS_SPEC] = form.specific[r]
        out[known, k + VS_TOTAL] = form.total[r]


def empty_rows(rows: int, k: int, default_var: float) -> np.ndarray:
    """rows x (k + VS_EXTRA) kernel rows for symbols not interned yet: default variance, no loadings."""
    out = np.zeros((rows, k + VS_EXTRA), dtype=np.float64)
    out[:, k + VS_SPEC] = default_var
    out[:, k + VS_TOTAL] = default_var
    return out
