"""The MAX_VAR check in the kernel (kernel.var) against a plain-numpy reference (var_reference).

Random sequences of checks, fills, cancels, price updates, position loads, limit changes and model
swaps (factor and sample, accounts and symbols added after the model): after every step each
account's cached terms and VaR equal a full recomputation with RiskModel's own arithmetic from
positions, open orders and marks kept in plain dicts, and every order's verdict is the rule's.

Tolerance: 1e-9 relative to the variance. A sample model with more symbols than days is singular,
so a hedged book's variance can be ~0 while its terms are not: there the bound is 1e-9 of the
book's undiversified variance Σ Sigma_ss w_s² (the scale its rounding lives at).
"""

from __future__ import annotations

import math

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from var_reference import exposures, make_model, var_of, var_rule, variance

from riskd_server.engine import Engine, EngineConfig
from riskd_server.kernel import layout as L
from riskd_server.limits import MAX_VAR, Limit
from riskd_server.risk.model import FACTOR, SAMPLE, RiskModel
from riskd_server.risk.var_tables import factor_form, pivoted_cholesky

ACCOUNTS = ["A", "B", "C"]
SYMBOLS = [f"S{i}" for i in range(7)]
MODEL_SYMBOLS = [*SYMBOLS[:5], "M9"]  # S5, S6 are unknown to every model; M9 is never traded
REL = 1e-9

qty = st.sampled_from([1.0, 3.0, 7.5, 100.0, 2_500.0, 1e6])
price = st.sampled_from([0.0, 0.5, 10.0, 99.25, 1_000.0])
mark = st.sampled_from([0.25, 10.0, 101.0, 5_000.0])
order = st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS), st.sampled_from([1, 2]), qty, price)
op = st.one_of(
    st.tuples(st.just("check"), st.lists(order, min_size=1, max_size=5)),
    st.tuples(st.just("fill"), st.integers(0, 50), st.sampled_from([0.5, 1.0, 3.0, 1e7]), mark),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("prices"), st.lists(st.tuples(st.sampled_from(SYMBOLS), mark), min_size=1, max_size=4)),
    st.tuples(
        st.just("positions"),
        st.lists(
            st.tuples(
                st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS), st.sampled_from([0.0, 5.0, -40.0, 1e5])
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    st.tuples(st.just("model"), st.integers(0, 10_000), st.sampled_from([FACTOR, SAMPLE]), st.integers(1, 3)),
    st.tuples(st.just("nomodel")),
    st.tuples(
        st.just("limit"),
        st.sampled_from(["", *ACCOUNTS]),
        st.sampled_from([0.0, 50.0, 5e3, 1e6, 1e12]),
        st.sampled_from([0.0, 0.5]),
    ),
)


class Reference:
    """Positions, open orders and marks in dicts; the VaR from var_reference."""

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], float] = {}
        self.open: dict[str, tuple[str, str, int, float]] = {}  # id -> account, symbol, side, open qty
        self.prices: dict[str, float] = {}
        self.fills: dict[str, float] = {}
        self.limits: dict[str, tuple[float, float]] = {}  # account ("" any) -> threshold, warn
        self.model: RiskModel | None = None

    @property
    def marks(self) -> dict[str, float]:
        return {**self.fills, **self.prices}

    def w(self, account: str) -> dict[str, float]:
        return exposures(self.positions, self.open, self.marks, account)

    def limit(self, account: str) -> tuple[float, float] | None:
        return self.limits.get(account, self.limits.get(""))


def assert_terms(engine: Engine, ref: Reference) -> None:
    """Every account's cached VaR (and factor exposures) equals the reference's full recomputation."""
    model = ref.model
    for account in ACCOUNTS:
        cached, f, _ = engine.account_var(account)
        if model is None:
            assert cached == 0.0
            continue
        w = ref.w(account)
        v_ref, undiversified = variance(model, w)
        v = (cached / model.scale) ** 2
        tol = REL * (max(v_ref, undiversified) if model.kind == SAMPLE else v_ref) + 1e-300
        assert abs(v - v_ref) <= tol, (account, v, v_ref, w)
        assert cached == pytest.approx(var_of(model, w), rel=REL, abs=model.scale * math.sqrt(tol))
        if model.kind == FACTOR and engine.accounts.get(account) >= 0:
            vec = np.zeros(len(model.symbols))
            for s, x in w.items():
                if s in model.index:
                    vec[model.index[s]] += x
            assert model.loadings is not None
            f_ref = model.loadings.T @ vec
            scale = np.abs(model.loadings).T @ np.abs(vec)  # cancellation: relative to the terms
            np.testing.assert_array_less(np.abs(f - f_ref), REL * scale + 1e-300)


def run_check(engine: Engine, ref: Reference, orders, next_id: list[int]) -> None:
    ids = [f"o{next_id[0] + i}" for i in range(len(orders))]
    next_id[0] += len(orders)
    accts, syms, sides, qtys, pxs = (list(c) for c in zip(*orders, strict=True))
    out = engine.check_orders(ids, accts, syms, sides, qtys, pxs, now=0.0)
    by_order: dict[int, list] = {}
    v = out.violations
    for j in range(len(v)):
        by_order.setdefault(int(v.order_index[j]), []).append(j)
    for i, (cid, (a, s, side, q, px)) in enumerate(zip(ids, orders, strict=True)):
        m = ref.marks.get(s)
        p = px if px > 0 else m
        lim = ref.limit(a)
        rows = by_order.get(i, [])
        var_rows = [j for j in rows if int(v.check[j]) == MAX_VAR]
        expect_reject = p is None  # NO_REFERENCE_PRICE
        if lim is not None and p is not None:
            t, warn = lim
            if ref.model is None:
                assert [(v.observed[j], v.warning[j]) for j in var_rows] == [(math.inf, False)]
                expect_reject = True
            else:
                w = ref.w(a)
                before = var_of(ref.model, w)
                after_w = dict(w)
                after_w[s] = after_w.get(s, 0.0) + (q if side == 1 else -q) * p
                after = var_of(ref.model, after_w)
                _, und = variance(ref.model, after_w)
                band = 1e-7 * max(after, before, t) + ref.model.scale * math.sqrt(REL * und)
                near = (
                    abs(after - t) <= band
                    or abs(after - before) <= band
                    or (warn > 0 and abs(after - warn * t) <= band)
                )
                breach = var_rule(after, before, t)
                if not near:
                    warned = not breach and warn > 0 and after > warn * t
                    assert len(var_rows) == int(breach or warned), (a, s, after, before, t)
                    expect_reject = breach
                    for j in var_rows:
                        assert bool(v.warning[j]) == warned
                        assert v.observed[j] == pytest.approx(after, rel=1e-7, abs=band)
                        assert v.threshold[j] == t
                else:  # too close to call in floating point: follow the kernel's verdict
                    expect_reject = any(not v.warning[j] for j in var_rows)
        assert bool(out.accepted[i]) == (not expect_reject), (cid, a, s, rows)
        if out.accepted[i]:
            assert p is not None
            ref.open[cid] = (a, s, side, q)


def apply(engine: Engine, ref: Reference, step, next_id: list[int]) -> None:
    kind = step[0]
    if kind == "check":
        run_check(engine, ref, step[1], next_id)
    elif kind in ("fill", "cancel"):
        if not ref.open:
            return
        cid = sorted(ref.open)[step[1] % len(ref.open)]
        a, s, side, open_qty = ref.open[cid]
        if kind == "cancel":
            out = engine.report_executions([cid], [2], [0.0], [0.0])
            del ref.open[cid]
        else:
            f, x = step[2], step[3]
            out = engine.report_executions([cid], [1], [f], [x])
            ref.positions[(a, s)] = ref.positions.get((a, s), 0.0) + (f if side == 1 else -f)
            ref.fills[s] = x
            if open_qty - f <= 0:
                del ref.open[cid]
            else:
                ref.open[cid] = (a, s, side, open_qty - f)
        assert out.applied.all()
    elif kind == "prices":
        syms, pxs = zip(*step[1], strict=True)
        engine.update_prices(list(syms), list(pxs))
        ref.prices.update(step[1])
    elif kind == "positions":
        accts, syms, qs = (list(c) for c in zip(*step[1], strict=True))
        engine.load_positions(accts, syms, qs)
        for a, s, q in step[1]:
            ref.positions[(a, s)] = q
    elif kind == "model":
        _, seed, model_kind, k = step
        ref.model = make_model(MODEL_SYMBOLS, seed, model_kind, k=k, days=2 + 2 * k)
        engine.set_risk_model(ref.model)
    elif kind == "nomodel":
        ref.model = None
        engine.set_risk_model(None)
    elif kind == "limit":
        _, account, t, warn = step
        engine.upsert_limits(
            [
                Limit(
                    limit_id=f"var-{account or 'any'}",
                    kind=MAX_VAR,
                    account=account,
                    threshold=t,
                    warn_fraction=warn,
                )
            ]
        )
        ref.limits[account] = (t, warn)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=30), st.integers(0, 10_000), st.sampled_from([FACTOR, SAMPLE]))
def test_cached_terms_and_verdicts_match_a_full_recomputation(steps, seed, first_kind) -> None:
    # Tiny initial sizes: accounts, symbols and books all grow after the first model is installed.
    engine = Engine(
        EngineConfig(initial_accounts=1, initial_symbols=1, initial_books=1, initial_order_slots=4)
    )
    ref = Reference()
    next_id = [0]
    apply(engine, ref, ("model", seed, first_kind, 2), next_id)
    for step in steps:
        apply(engine, ref, step, next_id)
        assert_terms(engine, ref)
    # The incremental terms equal the kernel's own full rebuild too.
    before = engine._s.vacct.copy()
    engine.recompute_exposure()
    if ref.model is not None:
        k = int(engine._s.vctl[L.VC_K])
        np.testing.assert_allclose(engine._s.vacct[:, L.VA_V], before[:, L.VA_V], rtol=1e-12, atol=1e-300)
        f_now = engine._s.vacct[:, L.VA_F : L.VA_F + k] + engine._s.vacct[:, L.VA_F + k : L.VA_F + 2 * k]
        f_before = before[:, L.VA_F : L.VA_F + k] + before[:, L.VA_F + k : L.VA_F + 2 * k]
        np.testing.assert_allclose(
            f_now, f_before, rtol=1e-12, atol=1e-300 + 1e-15 * np.abs(f_before).max(initial=0.0)
        )


def _engine_with(model: RiskModel | None, t: float) -> Engine:
    engine = Engine()
    if model is not None:
        engine.set_risk_model(model)
    engine.update_prices(["S0", "S1"], [100.0, 50.0])
    engine.upsert_limits([Limit(limit_id="v", kind=MAX_VAR, account="A", threshold=t)])
    return engine


def test_an_order_that_lowers_var_passes_even_above_the_threshold() -> None:
    model = make_model(["S0", "S1"], 1)
    engine = _engine_with(None, 1e12)
    engine.set_risk_model(model)
    engine.load_positions(["A"], ["S0"], [10_000.0])
    var0 = engine.account_var("A")[0]
    assert var0 == pytest.approx(var_of(model, {"S0": 1e6}), rel=1e-12)
    engine.upsert_limits([Limit(limit_id="v", kind=MAX_VAR, account="A", threshold=var0 / 2)])
    out = engine.check_orders(["up", "down"], ["A", "A"], ["S0", "S0"], [1, 2], [1.0, 100.0], [100.0, 100.0])
    assert out.accepted.tolist() == [False, True]
    (v,) = [j for j in range(len(out.violations)) if out.violations.check[j] == MAX_VAR]
    assert out.violations.observed[v] == pytest.approx(var_of(model, {"S0": 1e6 + 100}), rel=1e-12)
    assert out.violations.threshold[v] == var0 / 2
    assert engine.account_var("A")[0] == pytest.approx(var_of(model, {"S0": 1e6 - 1e4}), rel=1e-12)
    # Other accounts are not limited: no MAX_VAR limit applies to them.
    assert engine.check_orders(["b1"], ["B"], ["S0"], [1], [1e6], [100.0]).accepted.tolist() == [True]


def test_without_a_model_a_var_limit_rejects_with_observed_inf(caplog) -> None:
    engine = _engine_with(None, 1e9)
    assert "no risk model is installed" in caplog.text
    out = engine.check_orders(["a1", "b1"], ["A", "B"], ["S0", "S0"], [1, 1], [1.0, 1.0], [100.0, 100.0])
    assert out.accepted.tolist() == [False, True]
    assert out.reject_mask[0] == 1 << MAX_VAR
    assert (out.violations.observed[0], out.violations.threshold[0]) == (math.inf, 1e9)
    engine.set_risk_model(make_model(["S0"], 3))
    assert engine.check_orders(["a2"], ["A"], ["S0"], [1], [1.0], [100.0]).accepted.tolist() == [True]


def test_a_disabled_or_deleted_var_limit_checks_nothing() -> None:
    engine = _engine_with(None, 0.0)
    engine.upsert_limits([Limit(limit_id="v", kind=MAX_VAR, account="A", threshold=0.0, disabled=True)])
    assert engine.check_orders(["a1"], ["A"], ["S0"], [1], [1.0], [100.0]).accepted.tolist() == [True]


def test_the_one_order_paths_price_var_like_the_batch() -> None:
    model = make_model(["S0", "S1"], 5)
    engine = _engine_with(model, 0.0)
    engine.load_positions(["A"], ["S1"], [-3.0])
    var0 = engine.account_var("A")[0]
    one = engine.check_orders(["x1"], ["A"], ["S0"], [1], [2.0], [0.0])  # one order: _check_one
    assert one.accepted.tolist() == [False]
    assert one.violations.observed[0] == pytest.approx(var_of(model, {"S0": 200.0, "S1": -150.0}), rel=1e-12)
    reduce = engine.check_orders(["x2"], ["A"], ["S1"], [1], [1.0], [0.0])
    assert reduce.accepted.tolist() == [True]
    assert engine.account_var("A")[0] < var0


def test_sample_models_are_priced_through_an_exact_low_rank_factor() -> None:
    model = make_model([f"S{i}" for i in range(40)], 11, SAMPLE, days=9)
    form = factor_form(model)
    assert form.k <= 8  # rank <= days - 1
    assert model.covariance is not None
    np.testing.assert_allclose(
        form.loadings @ form.loadings.T + np.diag(form.specific),
        model.covariance,
        atol=1e-13 * model.covariance.max(),
    )
    full = np.cov(np.random.default_rng(2).normal(size=(60, 12)), rowvar=False)
    lmat, resid = pivoted_cholesky(full)
    assert lmat.shape == (12, 12) and np.allclose(lmat @ lmat.T + np.diag(resid), full, atol=1e-12)


def test_a_model_too_large_for_the_account_bound_is_refused() -> None:
    from riskd_server.risk.var_tables import VarModelTooLarge

    engine = Engine(EngineConfig(max_accounts=10_000_000))
    model = make_model(["S0", "S1"], 1, k=20)
    with pytest.raises(VarModelTooLarge):
        engine.set_risk_model(model)
    assert engine.risk_model is None and engine._s.vctl[L.VC_ON] == 0.0


def test_the_alert_for_an_unpriced_var_limit_says_why() -> None:
    from riskd_server.alerts.messages import check_message

    text = check_message(MAX_VAR, False, "A", "S0", math.inf, 1e9, "o1")
    assert text == "MAX_VAR: order o1 (A S0) rejected: no risk model installed"
    assert "12 > 10" in check_message(MAX_VAR, False, "A", "S0", 12.0, 10.0, "o2")


def test_a_factor_form_built_elsewhere_is_installed_as_is() -> None:
    """The model builder factors a sample model in its worker thread and hands the form over."""
    model = make_model(["S0", "S1", "S2"], 4, SAMPLE, days=3)
    form = factor_form(model)
    engine = Engine()
    engine.load_positions(["A", "A"], ["S0", "S2"], [10.0, -4.0])
    engine.update_prices(["S0", "S2"], [20.0, 30.0])
    engine.set_risk_model(model, form)
    assert engine._var_form is form
    assert engine.account_var("A")[0] == pytest.approx(var_of(model, {"S0": 200.0, "S2": -120.0}), rel=1e-9)
    stale = make_model(["S0", "S1", "S2"], 5, SAMPLE, days=3)
    engine.set_risk_model(stale, form)  # a form of another model version is not used
    assert engine._var_form is not form
    assert engine.account_var("A")[0] == pytest.approx(var_of(stale, {"S0": 200.0, "S2": -120.0}), rel=1e-9)
