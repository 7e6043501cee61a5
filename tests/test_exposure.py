"""Exposure sums stay equal to a fresh recomputation whatever the history (kernel.exposure).

Magnitudes from 1e-6 to 1e15 mixed in one sequence: the incremental double-double sums must match
the reference model's correctly rounded sums of the current terms, with nothing absorbed, no NaN,
and exactly 0 once every order is closed and every position flat.
"""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from reference_model import BUY, INVALID, Model

from riskd_server.engine import BatchError, Engine, EngineConfig
from riskd_server.limits import Limit

ACCOUNTS = ["A", "B"]
SYMBOLS = ["X", "Y", "Z"]
# Tolerance of the sums against math.fsum of the same terms: the double-double residue is ~2**-105
# of the largest partial sum the account's sums went through (RESIDUE times the running maximum of
# the model's gross sums), plus TOLERANCE; plain float sums miss by up to half an ulp of that
# partial sum (2**-53 of it: 0.06 at 1e15), far above it.
TOLERANCE = 1e-9
RESIDUE = 2.0**-96


def magnitude(low: int = -6, high: int = 15) -> st.SearchStrategy[float]:
    """Positive floats from 10**low to 10**high with random mantissas, every decade equally likely."""
    return st.tuples(st.floats(1.0, 9.999), st.integers(low, high)).map(lambda t: t[0] * 10.0 ** t[1])


order = st.tuples(
    st.integers(0, 40).map(lambda i: f"o{i}"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(SYMBOLS),
    st.sampled_from([1, 2]),
    magnitude(),
    st.one_of(st.just(0.0), magnitude(-6, 12)),
)
ops = st.one_of(
    st.tuples(st.just("check"), st.lists(order, min_size=1, max_size=6)),
    st.tuples(
        st.just("exec"),
        st.lists(
            st.tuples(st.integers(0, 40), st.sampled_from([1, 1, 2]), magnitude(), magnitude(-6, 12)),
            min_size=1,
            max_size=4,
        ),
    ),
    st.tuples(st.just("prices"), st.dictionaries(st.sampled_from(SYMBOLS), magnitude(-6, 14), min_size=1)),
    st.tuples(
        st.just("positions"),
        st.lists(
            st.tuples(
                st.sampled_from(ACCOUNTS),
                st.sampled_from(SYMBOLS),
                st.one_of(st.just(0.0), magnitude(-6, 14), magnitude(-6, 14).map(lambda q: -q)),
            ),
            min_size=1,
            max_size=3,
        ),
    ),
)


def _assert_sums_match(engine: Engine, model: Model, peak: dict[str, float], where: object) -> None:
    for a in ACCOUNTS:
        e = engine.exposure(a)
        got = (e.position_gross, e.position_net, e.open_gross, e.open_net)
        want = model.exposure(a)
        peak[a] = max(peak.get(a, 0.0), want[0] + want[2])
        for g, w in zip(got, want, strict=True):
            assert math.isfinite(g), (where, a, got)
            assert abs(g - w) <= TOLERANCE + RESIDUE * peak[a], (where, a, got, want)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=40))
def test_sums_equal_a_fresh_recomputation_then_zero(sequence: list) -> None:
    engine, model = Engine(EngineConfig(initial_order_slots=2, initial_books=1)), Model()
    peak: dict[str, float] = {}  # the largest gross each account's sums went through
    for step, item in enumerate(sequence):
        if item[0] == "check":
            cols = [list(c) for c in zip(*item[1], strict=True)]
            out = engine.check_orders(*cols, now=0.0)
            want_acc, want_mask, _ = model.check(*cols, now=0.0)
            assert out.accepted.tolist() == want_acc and out.reject_mask.tolist() == want_mask, step
        elif item[0] == "exec":
            cols = [[f"o{r[0]}" for r in item[1]], *[list(c) for c in zip(*item[1], strict=True)][1:]]
            statuses = model.execute(*cols)
            got = engine.report_executions(*cols)
            assert got.applied.tolist() == [s in ("applied", "overfill", "late_fill") for s in statuses]
        elif item[0] == "prices":
            engine.update_prices(list(item[1]), list(item[1].values()))
            model.update_prices(list(item[1]), list(item[1].values()))
        else:
            cols = [list(c) for c in zip(*item[1], strict=True)]
            engine.load_positions(*cols)
            model.load_positions(*cols)
        _assert_sums_match(engine, model, peak, (step, item))
    # Close everything: every sum is exactly 0, not a rounding residue.
    open_ids = [cid for cid, o in model.orders.items() if o.is_open]
    if open_ids:
        assert engine.report_executions(
            open_ids, [2] * len(open_ids), [0.0] * len(open_ids), [0.0] * len(open_ids)
        ).applied.all()
    flat = [(a, s) for a in ACCOUNTS for s in SYMBOLS]
    engine.load_positions([a for a, _ in flat], [s for _, s in flat], [0.0] * len(flat))
    for a in ACCOUNTS:
        e = engine.exposure(a)
        assert (e.position_gross, e.position_net, e.open_gross, e.open_net, e.open_orders) == (0, 0, 0, 0, 0)


def _gross_limited() -> Engine:
    engine = Engine()
    engine.upsert_limits(
        [
            Limit(limit_id="g", kind=4, account="ACC", threshold=1e6),
            Limit(limit_id="n", kind=5, account="ACC", threshold=1e6),
        ]
    )
    return engine


def test_an_absurd_order_is_invalid_and_cannot_switch_exposure_limits_off() -> None:
    engine = _gross_limited()
    out = engine.check_orders(["n1"], ["ACC"], ["S"], [BUY], [1e200], [1e200], now=0.0)
    assert out.reject_mask.tolist() == [1 << INVALID]
    assert out.violations.observed.tolist() == [math.inf] and out.violations.threshold.tolist() == [1e15]
    past = engine.check_orders(["n2"], ["ACC"], ["S"], [BUY], [1e6], [1e9 + 1], now=0.0)
    assert past.reject_mask.tolist() == [1 << INVALID]  # notional 1e15 + 1e6 > max_order_notional
    # The exposure limits still fire: a 1e11-notional order breaches the 1e6 gross and net limits.
    big = engine.check_orders(["n3"], ["ACC"], ["S"], [BUY], [1e5], [1e6], now=0.0)
    assert big.reject_mask.tolist() == [(1 << 4) | (1 << 5)]


def test_a_huge_order_opened_and_cancelled_leaves_the_small_ones_exact() -> None:
    engine = Engine()
    engine.check_orders(["small"], ["ACC"], ["S"], [BUY], [1.0], [0.01], now=0.0)
    for i in range(20):  # absorption: each 1e15 order would round the 0.01 away in a plain sum
        engine.check_orders([f"big{i}"], ["ACC"], ["S"], [BUY], [1e15 / 3], [2.9999999], now=0.0)
        engine.report_executions([f"big{i}"], [2], [0.0], [0.0])
    e = engine.exposure("ACC")
    assert (e.open_gross, e.open_net, e.open_orders) == (0.01, 0.01, 1)
    engine.report_executions(["small"], [2], [0.0], [0.0])
    assert engine.exposure("ACC") == engine.exposure("nobody")  # exactly zero


def test_partial_fills_keep_the_open_term_exact() -> None:
    engine = Engine()
    engine.check_orders(["a", "b"], ["ACC", "ACC"], ["S", "S"], [BUY, 2], [3e14, 7.0], [0.1, 0.3], now=0.0)
    engine.report_executions(["a", "a"], [1, 1], [1e14, 2e14 - 1e-3], [0.1, 0.1])
    e = engine.exposure("ACC")
    want_gross = math.fsum([(3e14 - 1e14 - (2e14 - 1e-3)) * 0.1, 7.0 * 0.3])
    assert abs(e.open_gross - want_gross) <= TOLERANCE


def test_bounds_on_prices_positions_and_fills() -> None:
    engine = Engine(EngineConfig(max_order_notional=1e9))
    with pytest.raises(BatchError, match=r"price\[1\]"):
        engine.update_prices(["X", "Y"], [1.0, 2e9])
    with pytest.raises(BatchError, match=r"quantity\[0\]"):
        engine.load_positions(["A"], ["X"], [-2e9])
    engine.check_orders(["o"], ["A"], ["X"], [BUY], [10.0], [1.0], now=0.0)
    out = engine.report_executions(["o", "o"], [1, 1], [1e5, 1.0], [1e5, 1.0])
    assert out.applied.tolist() == [False, True] and "max_order_notional" in out.error[0]


def test_a_price_update_revalues_only_that_symbols_holders() -> None:
    engine = Engine()
    names = [f"S{i}" for i in range(50)]
    engine.update_prices(names, [10.0] * 50)
    engine.load_positions(["A"] * 50 + ["B"] * 50, names * 2, [1.0] * 50 + [-2.0] * 50)
    engine.update_prices(["S7", "S7", "S9"], [11.0, 12.5, 0.5])
    a, b = engine.exposure("A"), engine.exposure("B")
    assert (a.position_gross, a.position_net) == (48 * 10 + 12.5 + 0.5, 48 * 10 + 12.5 + 0.5)
    assert (b.position_gross, b.position_net) == (2 * (48 * 10 + 13.0), -2 * (48 * 10 + 13.0))
    # A fill on an unmarked symbol makes its price the mark of every holder.
    engine.load_positions(["A", "B"], ["U", "U"], [4.0, -1.0])
    assert engine.exposure("A").position_gross == a.position_gross  # no mark yet: not valued
    engine.check_orders(["f"], ["B"], ["U"], [BUY], [1.0], [3.0], now=0.0)
    engine.report_executions(["f"], [1], [1.0], [3.0])  # B flat in U now
    assert engine.exposure("A").position_gross == a.position_gross + 12.0
    assert engine.exposure("B").position_net == b.position_net
    before = engine.exposure("A"), engine.exposure("B")
    engine.recompute_exposure()
    assert (engine.exposure("A"), engine.exposure("B")) == before


def test_a_rejected_price_update_changes_and_interns_nothing() -> None:
    engine = Engine()
    engine.update_prices(["X"], [5.0])
    for names, prices, where in (
        (["X", "NEW"], [6.0, math.nan], r"price\[1\]"),
        (["X"], [0.0], r"price\[0\]"),
    ):
        with pytest.raises(BatchError, match=where):
            engine.update_prices(names, prices)
    assert engine.symbols.get("NEW") < 0
    engine.load_positions(["A"], ["X"], [2.0])
    assert engine.exposure("A").position_gross == 10.0  # the mark is still 5
