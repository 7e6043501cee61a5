"""risk.build against plain numpy: np.cov with no gaps, reconstruction of Sigma from the factors,
defaulted symbols, k larger than the rank, and the version naming data and parameters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd_server.risk.build import BuildParams, ReturnsWindow, build_model, scaled_returns, version_of
from riskd_server.risk.model import FACTOR, SAMPLE


def window(matrix: np.ndarray, first_day: int = 20260101) -> ReturnsWindow:
    n, d = matrix.shape
    return ReturnsWindow(
        tuple(f"S{i:04d}" for i in range(n)), np.arange(first_day, first_day + d, dtype=np.int32), matrix
    )


def correlated(n: int, d: int, k: int = 3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.01, (n, k)) @ rng.normal(0, 1, (k, d)) + rng.normal(0, 0.005, (n, d))


def reference_sigma(matrix: np.ndarray, min_days: int, default_vol: float) -> np.ndarray:
    """Plain per-pair loops over the documented rule (own mean, gaps count as it, own variance)."""
    n, d = matrix.shape
    sigma = np.zeros((n, n))
    ok = [np.count_nonzero(~np.isnan(matrix[i])) >= min_days for i in range(n)]
    dev = []
    for i in range(n):
        row = matrix[i]
        c = np.count_nonzero(~np.isnan(row))
        mean = np.nanmean(row) if c else 0.0
        dev.append((np.where(np.isnan(row), mean, row) - mean) * np.sqrt((d - 1) / max(c - 1, 1)))
    for i in range(n):
        for j in range(n):
            if i == j:
                sigma[i, i] = float(dev[i] @ dev[i]) / (d - 1) if ok[i] else default_vol**2
            elif ok[i] and ok[j]:
                sigma[i, j] = float(dev[i] @ dev[j]) / (d - 1)
    return sigma


def test_sample_equals_np_cov_without_gaps() -> None:
    m = correlated(30, 60)
    model = build_model(window(m), BuildParams(kind=SAMPLE))
    assert model.covariance is not None and model.loadings is None
    np.testing.assert_allclose(model.covariance, np.cov(m, ddof=1), rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(model.vol, np.std(m, axis=1, ddof=1), rtol=1e-12)
    assert model.summary.defaulted_symbols == ()
    assert model.summary.memory_bytes == 30 * 30 * 8 + 2 * 30 * 8
    assert not model.covariance.flags.writeable


def test_factor_reconstructs_sigma_with_full_rank() -> None:
    """k >= rank: B Bᵀ + diag(specific) is the sample matrix (specific ~ 0 up to the floor)."""
    m = correlated(8, 40)
    sample = build_model(window(m), BuildParams(kind=SAMPLE))
    factor = build_model(window(m), BuildParams(kind=FACTOR, factors=8))
    b = factor.loadings
    assert b is not None and b.shape == (8, 8)
    rebuilt = b @ b.T + np.diag(factor.specific)
    np.testing.assert_allclose(rebuilt, sample.covariance, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(factor.vol, sample.vol, rtol=1e-9)
    assert factor.summary.explained_variance == pytest.approx(1.0)


def test_factor_top_k_matches_eigh() -> None:
    """B Bᵀ is the best rank-k part of Sigma: the top-k eigenpairs of np.cov."""
    m = correlated(25, 80, k=4)
    factor = build_model(window(m), BuildParams(kind=FACTOR, factors=3))
    vals, vecs = np.linalg.eigh(np.cov(m))
    top = vecs[:, -3:] @ np.diag(vals[-3:]) @ vecs[:, -3:].T
    assert factor.loadings is not None
    np.testing.assert_allclose(factor.loadings @ factor.loadings.T, top, rtol=1e-8, atol=1e-15)
    diag = np.diag(np.cov(m))
    np.testing.assert_allclose(factor.vol**2, diag, rtol=1e-9)
    assert factor.summary.explained_variance == pytest.approx(vals[-3:].sum() / vals.sum())
    np.testing.assert_allclose(
        factor.sigma_times(np.ones(25)), (top + np.diag(factor.specific)) @ np.ones(25)
    )


def test_k_larger_than_rank_is_capped() -> None:
    """500 symbols over 10 days: rank <= 9 after centring, so 20 factors become 9."""
    m = correlated(500, 10, k=5)
    model = build_model(window(m), BuildParams(kind=FACTOR, factors=20, min_days=5))
    assert model.loadings is not None and model.loadings.shape == (500, 9)
    assert model.summary.factors == 9
    np.testing.assert_allclose(model.vol**2, np.var(m, axis=1, ddof=1), rtol=1e-8)  # + the floor
    assert (model.specific > 0).all()


def test_defaulted_symbols_get_default_vol_and_no_correlation() -> None:
    m = correlated(6, 40)
    m[2, 5:] = np.nan  # 5 returns < min_days
    m[4, :] = np.nan  # none
    for kind in (SAMPLE, FACTOR):
        model = build_model(window(m), BuildParams(kind=kind, min_days=20, default_vol=0.03, factors=6))
        assert model.summary.defaulted_symbols == ("S0002", "S0004")
        assert model.vol[2] == pytest.approx(0.03) and model.vol[4] == pytest.approx(0.03)
        e2 = np.zeros(6)
        e2[2] = 1.0
        cross = model.sigma_times(e2)
        assert cross[2] == pytest.approx(0.03**2)
        assert np.count_nonzero(np.delete(cross, 2)) == 0


def test_gaps_keep_own_variance_and_psd() -> None:
    m = correlated(10, 50)
    m[3, ::3] = np.nan
    m[7, 10:20] = np.nan
    model = build_model(window(m), BuildParams(kind=SAMPLE, min_days=20))
    ref = reference_sigma(m, 20, 0.02)
    np.testing.assert_allclose(model.covariance, ref, rtol=1e-10, atol=1e-18)
    np.testing.assert_allclose(model.vol[3], np.nanstd(m[3], ddof=1), rtol=1e-12)
    assert np.linalg.eigvalsh(model.covariance).min() > -1e-15


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 12),
    d=st.integers(1, 30),
    gaps=st.floats(0.0, 0.6),
    k=st.integers(1, 15),
    min_days=st.integers(2, 10),
    seed=st.integers(0, 10_000),
)
def test_property_against_reference(n: int, d: int, gaps: float, k: int, min_days: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = correlated(n, d, k=2, seed=seed)
    m[rng.random((n, d)) < gaps] = np.nan
    ref = reference_sigma(m, min_days, 0.02) if d >= 2 else np.diag(np.full(n, 0.02**2))
    sample = build_model(window(m), BuildParams(kind=SAMPLE, min_days=min_days))
    np.testing.assert_allclose(sample.covariance, ref, rtol=1e-9, atol=1e-15)
    factor = build_model(window(m), BuildParams(kind=FACTOR, factors=k, min_days=min_days))
    b = factor.loadings
    assert b is not None and 1 <= b.shape[1] <= k
    assert (factor.specific > 0).all()
    # The factor part never exceeds the sample variance (up to the floor), and with k >= rank the
    # whole matrix comes back.
    np.testing.assert_allclose(factor.vol, sample.vol, rtol=1e-8, atol=1e-12)
    if k >= min(n, d):
        rebuilt = b @ b.T + np.diag(factor.specific)
        np.testing.assert_allclose(rebuilt, ref, rtol=1e-8, atol=1e-12)
    w = rng.normal(0, 1e6, n)
    assert sample.var(w) == pytest.approx(sample.scale * np.sqrt(max(w @ ref @ w, 0.0)), rel=1e-8, abs=1e-6)


def test_version_names_data_and_parameters() -> None:
    m = correlated(5, 30)
    p = BuildParams(kind=FACTOR, factors=3)
    v = build_model(window(m), p).version
    assert v.startswith("factor-k3-w250-m20-dv0.02-c0.99-h1:150r-5s-30d-20260101-")
    assert v == version_of(window(m), p)
    changed = m.copy()
    changed[0, 0] += 1e-9
    assert build_model(window(changed), p).version != v
    assert build_model(window(m), BuildParams(kind=FACTOR, factors=4)).version != v
    assert build_model(window(m), BuildParams(kind=SAMPLE)).version.startswith("sample-w250-")


def test_empty_window() -> None:
    w = ReturnsWindow((), np.zeros(0, dtype=np.int32), np.zeros((0, 0)))
    for kind in (SAMPLE, FACTOR):
        model = build_model(w, BuildParams(kind=kind))
        assert model.symbols == () and model.summary.days == 0 and model.summary.first_day == 0


def test_scaled_returns_rows_are_zero_for_defaulted() -> None:
    m = correlated(3, 10)
    m[1, 2:] = np.nan
    x, ok = scaled_returns(m, 5)
    assert ok.tolist() == [True, False, True]
    assert not x[1].any()


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        BuildParams(kind="nope")
    with pytest.raises(ValueError):
        BuildParams(confidence=0.4)
    with pytest.raises(ValueError):
        BuildParams(factors=0)


@pytest.mark.parametrize(("n", "d"), [(300, 40), (12, 60), (40, 40)])
def test_factor_equals_thin_svd_of_the_returns(n: int, d: int) -> None:
    """The Gram-matrix route gives the same B Bᵀ as LAPACK's thin SVD of the centred returns."""
    m = correlated(n, d, k=6, seed=n + d)
    model = build_model(window(m), BuildParams(kind=FACTOR, factors=5))
    centred = m - m.mean(axis=1, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    b = u[:, :5] * s[:5] / np.sqrt(d - 1)
    assert model.loadings is not None
    np.testing.assert_allclose(model.loadings @ model.loadings.T, b @ b.T, rtol=1e-9, atol=1e-16)
    np.testing.assert_allclose(np.abs(model.loadings), np.abs(b), rtol=1e-6, atol=1e-12)  # up to sign
