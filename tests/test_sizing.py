"""risk.sizing against brute force: the plain-numpy VaR of the moved exposures (RiskModel.variance,
a fresh wᵀ Sigma w), bisection on it, Euler's sum, both model kinds, symbols outside the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_models import make_model

from riskd_server.risk.model import FACTOR, SAMPLE
from riskd_server.risk.sizing import largest_move, naive_var, size_var

N = 30
SYMBOLS = [f"S{i}" for i in range(N)]
MODELS = {kind: make_model(kind, SYMBOLS, seed=7) for kind in (FACTOR, SAMPLE)}


def _exposures(model, held_row, held_w):
    """(w in model order, exposures outside the model) of held symbols (-1: outside)."""
    w = np.zeros(len(model.symbols))
    inside = held_row >= 0
    w[held_row[inside]] = held_w[inside]
    return w, held_w[~inside].copy()


def _moved_var(model, held_row, held_w, row, extra_index, delta):
    """VaR after moving one symbol's exposure by delta: row >= 0 a model symbol; else extra_index
    names its place among the outside exposures (-1: a new one)."""
    w, extra = _exposures(model, held_row, held_w)
    if row >= 0:
        w[row] += delta
    elif extra_index >= 0:
        extra[extra_index] += delta
    else:
        extra = np.append(extra, delta)
    return naive_var(model, w, extra)


def _bisect(model, held_row, held_w, row, extra_index, price, side, budget):
    """The largest q in [0, 1e12] with VaR' <= max(budget, VaR) by bisection (brute force)."""
    w, extra = _exposures(model, held_row, held_w)
    limit = max(budget, naive_var(model, w, extra))

    def ok(q: float) -> bool:
        return _moved_var(model, held_row, held_w, row, extra_index, side * q * price) <= limit

    lo, hi = 0.0, 1e12
    if ok(hi):
        return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _book(rows, ws):
    return np.asarray(rows, dtype=np.int64), np.asarray(ws, dtype=np.float64)


@pytest.mark.parametrize("kind", [FACTOR, SAMPLE])
@pytest.mark.parametrize("budget", [0.0, 5_000.0, 50_000.0])
def test_sizes_match_bisection_and_the_rule(kind: str, budget: float) -> None:
    model = MODELS[kind]
    held_row, held_w = _book([0, 3, 7, -1, 12], [1e5, -2e5, 5e4, 3e4, 7.5e4])
    # asked: held model symbols, an unheld model symbol, the held outside one, a new outside one
    ask_row = np.array([0, 3, 7, 20, -1, -1])
    ask_w = np.array([1e5, -2e5, 5e4, 0.0, 3e4, 0.0])
    extra_index = [-1, -1, -1, -1, 0, -1]
    price = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    out = size_var(model, held_row, held_w, ask_row, ask_w, price, budget)
    w, extra = _exposures(model, held_row, held_w)
    assert out.var == pytest.approx(naive_var(model, w, extra), rel=1e-12)
    assert out.budget == max(budget, out.var)
    for i in range(ask_row.shape[0]):
        for side, q in ((1.0, out.max_buy[i]), (-1.0, out.max_sell[i])):
            brute = _bisect(model, held_row, held_w, ask_row[i], extra_index[i], price[i], side, budget)
            # rounding in the plain VaR (~1e-15 of it) moves the brute-force root by about
            # that much VaR over the marginal VaR of one unit
            noise = 1e-12 * max(budget, out.var) / (abs(out.marginal[i]) * price[i] + 1e-30)
            assert q == pytest.approx(brute, rel=1e-7, abs=noise)
            if q == 0.0:
                continue
            limit = max(budget, out.var)
            args = (model, held_row, held_w, ask_row[i], extra_index[i])
            assert _moved_var(*args, side * 0.999 * q * price[i]) <= limit
            assert _moved_var(*args, side * 1.001 * q * price[i]) > limit


@pytest.mark.parametrize("kind", [FACTOR, SAMPLE])
def test_a_budget_below_the_var_allows_only_orders_that_lower_it(kind: str) -> None:
    model = MODELS[kind]
    held_row, held_w = _book([0, 1, -1], [2e5, 1e5, -4e4])
    ask_row, ask_w = np.array([0, 1, -1, 5]), np.array([2e5, 1e5, -4e4, 0.0])
    out = size_var(model, held_row, held_w, ask_row, ask_w, np.full(4, 10.0), budget=1.0)
    assert out.budget == out.var > 1.0
    # long exposures with positive marginals: buying raises the VaR (0), selling can lower it
    assert out.max_buy[0] == 0.0 and out.max_sell[0] > 0.0
    assert out.max_sell[2] == 0.0 and out.max_buy[2] > 0.0  # short outside the model: buy back
    # selling exactly 2 g / Sigma_ss (the other root) brings the variance back to where it was
    for i, extra_index in ((0, -1), (2, 0)):
        q = out.max_sell[i] if i == 0 else out.max_buy[i]
        side = -1.0 if i == 0 else 1.0
        after = _moved_var(model, held_row, held_w, ask_row[i], extra_index, side * q * 10.0)
        assert after == pytest.approx(out.var, rel=1e-9)


@pytest.mark.parametrize("kind", [FACTOR, SAMPLE])
def test_components_sum_to_the_var(kind: str) -> None:
    model = MODELS[kind]
    rng = np.random.default_rng(3)
    rows = rng.choice(N, size=12, replace=False)
    held_row = np.concatenate([rows, [-1, -1]])
    held_w = rng.normal(0, 1e5, size=held_row.shape[0])
    out = size_var(model, held_row, held_w, held_row, held_w, np.full(held_row.shape[0], 5.0), 1e6)
    assert out.component.sum() == pytest.approx(out.var, rel=1e-9)
    # the marginal is the derivative: a central difference of the plain VaR agrees
    w, extra = _exposures(model, held_row, held_w)
    h = 1.0
    for i in (0, 5):
        up, down = w.copy(), w.copy()
        up[held_row[i]] += h
        down[held_row[i]] -= h
        numeric = (naive_var(model, up, extra) - naive_var(model, down, extra)) / (2 * h)
        assert out.marginal[i] == pytest.approx(numeric, rel=1e-5)


def test_zero_exposure_and_missing_prices() -> None:
    model = MODELS[FACTOR]
    empty_row, empty_w = _book([], [])
    ask_row = np.array([0, 1, -1, 2])
    price = np.array([10.0, np.nan, 5.0, 0.0])
    out = size_var(model, empty_row, empty_w, ask_row, np.zeros(4), price, budget=1_000.0)
    assert out.var == 0.0 and out.variance == 0.0
    assert np.all(out.marginal == 0.0) and np.all(out.component == 0.0)
    # alone in the book: q p sqrt(Sigma_ss) scale = budget, buy and sell alike
    sd0 = math.sqrt(model.variance(np.eye(N)[0]))
    assert out.max_buy[0] == pytest.approx(1_000.0 / (model.scale * sd0 * 10.0), rel=1e-12)
    assert out.max_sell[0] == out.max_buy[0]
    assert out.max_buy[2] == pytest.approx(1_000.0 / (model.scale * model.default_vol * 5.0), rel=1e-12)
    assert out.max_buy[1] == out.max_sell[1] == out.max_buy[3] == out.max_sell[3] == 0.0  # no price
    out0 = size_var(model, empty_row, empty_w, ask_row, np.zeros(4), price, budget=0.0)
    assert np.all(out0.max_buy == 0.0) and np.all(out0.max_sell == 0.0)  # budget 0, VaR 0


def test_largest_move_is_stable_where_the_textbook_root_cancels() -> None:
    # g² >> s k: (-g + sqrt(g² + s k)) / s loses every digit; the stable form keeps them
    g, s, k = np.array([1e8]), np.array([1e-4]), 1e-3
    exact = k / (2 * g[0]) * (1 - s[0] * k / (4 * g[0] ** 2))  # series of the root
    assert largest_move(g, s, k)[0] == pytest.approx(exact, rel=1e-15)
    assert (-g[0] + math.sqrt(g[0] ** 2 + s[0] * k)) / s[0] == 0.0  # the naive form: all lost
    # zero variance: linear, or unbounded
    assert largest_move(np.array([2.0]), np.array([0.0]), 8.0)[0] == 2.0
    assert largest_move(np.array([-1.0, 0.0]), np.array([0.0, 0.0]), 8.0).tolist() == [math.inf, math.inf]
    # huge budget: no overflow in g² + s k
    assert math.isfinite(largest_move(np.array([1e200]), np.array([1.0]), 1e300)[0])


_w = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False).filter(lambda x: abs(x) > 1e-3 or x == 0)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from([FACTOR, SAMPLE]),
    book=st.dictionaries(st.integers(-3, N - 1), _w, max_size=12),
    budget=st.floats(min_value=0.0, max_value=1e8),
    ask=st.integers(-3, N - 1),
    price=st.floats(min_value=1e-2, max_value=1e4),
)
def test_random_books(kind: str, book: dict[int, float], budget: float, ask: int, price: float) -> None:
    """Any book: the answer is finite or +inf, never NaN; 0.999 x passes and 1.001 x fails the rule;
    components sum to the VaR."""
    model = MODELS[kind]
    # keys < 0 are distinct symbols outside the model
    keys = sorted(book)
    held_row = np.array([k if k >= 0 else -1 for k in keys], dtype=np.int64)
    held_w = np.array([book[k] for k in keys], dtype=np.float64)
    extra_keys = [k for k in keys if k < 0]
    ask_row = np.array([ask if ask >= 0 else -1])
    ask_w = np.array([book.get(ask, 0.0)])
    extra_index = extra_keys.index(ask) if ask in extra_keys else -1
    out = size_var(model, held_row, held_w, ask_row, ask_w, np.array([price]), budget)
    for x in (out.max_buy, out.max_sell, out.marginal, out.component):
        assert not np.isnan(x).any()
    assert np.all(out.max_buy >= 0) and np.all(out.max_sell >= 0)
    if held_w.shape[0]:
        full = size_var(model, held_row, held_w, held_row, held_w, np.ones(held_row.shape[0]), budget)
        assert full.component.sum() == pytest.approx(out.var, rel=1e-9, abs=1e-6)
    limit = max(budget, out.var)
    for side, q in ((1.0, out.max_buy[0]), (-1.0, out.max_sell[0])):
        if q == 0.0 or not math.isfinite(q):
            continue
        args = (model, held_row, held_w, ask_row[0], extra_index)
        # the rule holds to rounding of the VaR itself (relative 1e-12 of the larger terms)
        slack = 1e-12 * max(limit, abs(side * q * price) * model.vol.max() * model.scale)
        assert _moved_var(*args, side * 0.999 * q * price) <= limit + slack
        assert _moved_var(*args, side * 1.001 * q * price) > limit - slack


def test_sigma_cache_follows_changes_and_stays_bounded() -> None:
    from riskd_server.risk.sigma_cache import SigmaCache

    model = make_model(SAMPLE, [f"C{i}" for i in range(40)], seed=2)
    factor = MODELS[FACTOR]
    cache = SigmaCache(accounts=2, refresh_every=5)
    rng = np.random.default_rng(9)
    rows = np.arange(0, 40, 2)
    weights = rng.normal(0, 1e6, size=rows.shape[0])
    for step in range(30):
        pick = rng.choice(rows.shape[0], size=2, replace=False)  # two exposures move a step
        weights[pick] += rng.normal(0, 1e5, size=2)
        if step == 10:
            weights[:] = rng.normal(0, 1e6, size=rows.shape[0])  # most moved: a full product
        got = cache.sigma_w("A", model, rows, weights)
        w = np.zeros(40)
        w[rows] = weights
        np.testing.assert_allclose(got, model.covariance @ w, rtol=1e-11, atol=1e-9 * np.abs(w).max())
        assert not got.flags.writeable
    assert cache.incremental > 15 and cache.full >= 30 // 6  # refreshed every 5 updates
    assert cache.sigma_w("A", model, rows, weights) is got  # nothing moved: the same product
    full = cache.full
    cache.sigma_w("A", make_model(SAMPLE, [f"C{i}" for i in range(40)], seed=3), rows, weights)
    assert cache.full == full + 1  # a new model: recomputed
    cache.sigma_w("B", model, rows, weights)
    cache.sigma_w("C", model, rows, weights)
    assert len(cache) == 2  # "A" evicted, least recently used
    # the factor model is not cached
    np.testing.assert_allclose(
        cache.sigma_w("F", factor, rows[:5], weights[:5]),
        factor.sigma_times(np.bincount(rows[:5], weights[:5], minlength=N)),
    )
    assert len(cache) == 2
