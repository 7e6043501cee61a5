"""risk.sizer on a real Engine (in-process): exposures read from the engine's books, the limit room
against the check kernel itself (0.999 x the room is accepted, 1.001 x rejected), the budget from
a MAX_VAR limit, and the request errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_models import make_model

from riskd_server import changes as ch
from riskd_server.engine import Engine, EngineConfig
from riskd_server.limits import (
    MAX_GROSS_EXPOSURE,
    MAX_NET_EXPOSURE,
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_QUANTITY,
    MAX_POSITION,
    MAX_VAR,
    RESTRICTED_SYMBOL,
    Limit,
)
from riskd_server.risk.model import FACTOR, SAMPLE
from riskd_server.risk.sizer import PRECONDITION, Sizer, SizingError, compute
from riskd_server.risk.sizing import naive_var

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
_ids = itertools.count()
BUY, SELL = 1, 2


def _engine(kind: str = FACTOR) -> Engine:
    eng = Engine(EngineConfig(max_open_orders=1_000, closed_order_retention=100))
    eng.set_risk_model(make_model(kind, SYMBOLS, seed=11))
    eng.update_prices(["AAA", "BBB", "CCC", "OUT"], [10.0, 20.0, 40.0, 5.0])  # DDD, EEE: no mark
    eng.load_positions(["ACC"] * 4, ["AAA", "BBB", "OUT", "DDD"], [1_000.0, -500.0, 300.0, 50.0])
    eng.load_positions(["OTHER"], ["AAA"], [9e6])
    out = eng.check_orders(
        ["o1", "o2"], ["ACC", "ACC"], ["AAA", "CCC"], [BUY, SELL], [200.0, 70.0], [11.0, 0.0]
    )
    assert out.accepted.all()
    return eng


def _install(eng: Engine, limits: list[Limit]) -> None:
    """Install limits as the engine compiles them, bypassing validation (MAX_VAR is refused at
    upsert until the kernel enforces it)."""
    merged = dict(eng.limits.limits)
    merged.update((lim.limit_id, lim) for lim in limits)
    eng.install_limits(
        eng.compile_limits(merged, eng.limits.version + 1), ch.LimitsChanged(tuple(limits), ())
    )


@pytest.mark.parametrize("kind", [FACTOR, SAMPLE])
def test_exposures_come_from_positions_open_orders_and_marks(kind: str) -> None:
    eng = _engine(kind)
    model = eng.risk_model
    assert model is not None
    asked = ["AAA", "BBB", "CCC", "DDD", "OUT", "NEW"]
    r = compute(Sizer(eng).gather("ACC", asked, 1e6, False))
    # w = (pos + open buy - open sell) x mark; DDD has no mark: not valued; OUT is outside the model
    expect = {
        "AAA": 1_200 * 10.0,
        "BBB": -500 * 20.0,
        "CCC": -70 * 40.0,
        "DDD": 0.0,
        "OUT": 300 * 5.0,
        "NEW": 0.0,
    }
    assert r.exposure.tolist() == [expect[s] for s in asked]
    assert r.price.tolist() == [10.0, 20.0, 40.0, 0.0, 5.0, 0.0]
    w = np.zeros(len(SYMBOLS))
    for s in ("AAA", "BBB", "CCC"):
        w[model.index[s]] = expect[s]
    assert r.var == pytest.approx(naive_var(model, w, np.array([expect["OUT"]])), rel=1e-12)
    assert r.component.sum() == pytest.approx(r.var, rel=1e-9)  # every valued holding was asked
    assert r.max_buy[3] == r.max_sell[3] == r.max_buy[5] == 0.0  # no mark: nothing can be priced
    assert r.limit_buy is None
    # no symbols: every model symbol, in model order
    every = compute(Sizer(eng).gather("ACC", (), 1e6, False))
    assert list(every.symbols) == SYMBOLS
    assert every.var == r.var
    # an unknown account holds nothing
    nobody = compute(Sizer(eng).gather("NOBODY", ["AAA"], 1e6, True))
    assert nobody.var == 0.0 and nobody.exposure.tolist() == [0.0]
    assert nobody.max_buy[0] == pytest.approx(1e6 / (model.scale * model.vol[0] * 10.0), rel=1e-9)


def test_a_new_book_after_a_read_is_seen() -> None:
    eng = _engine()
    sizer = Sizer(eng)
    before = compute(sizer.gather("ACC", ["EEE", "CCC"], 1e6, False))
    eng.update_prices(["EEE"], [8.0])
    eng.load_positions(["ACC"], ["EEE"], [10.0])
    after = compute(sizer.gather("ACC", ["EEE", "CCC"], 1e6, False))
    assert before.exposure[0] == 0.0 and after.exposure[0] == 80.0
    assert after.var != before.var
    assert after.var == compute(Sizer(eng).gather("ACC", ["EEE", "CCC"], 1e6, False)).var  # a fresh index


LIMITS = [
    Limit(limit_id="q-any", kind=MAX_ORDER_QUANTITY, account="", symbol="", threshold=5_000.0),
    Limit(limit_id="q-exact", kind=MAX_ORDER_QUANTITY, account="ACC", symbol="AAA", threshold=700.0),
    Limit(limit_id="n-sym", kind=MAX_ORDER_NOTIONAL, account="", symbol="BBB", threshold=9_000.0),
    Limit(limit_id="p-acct", kind=MAX_POSITION, account="ACC", symbol="", threshold=1_500.0),
    Limit(limit_id="p-exact", kind=MAX_POSITION, account="ACC", symbol="CCC", threshold=100.0),
    Limit(limit_id="g-acct", kind=MAX_GROSS_EXPOSURE, account="ACC", symbol="", threshold=60_000.0),
    Limit(limit_id="n-any", kind=MAX_NET_EXPOSURE, account="", symbol="", threshold=8_000.0),
    Limit(limit_id="r-sym", kind=RESTRICTED_SYMBOL, account="", symbol="EEE", threshold=1.0),
    Limit(
        limit_id="q-off", kind=MAX_ORDER_QUANTITY, account="ACC", symbol="BBB", threshold=1.0, disabled=True
    ),
]


def test_limit_room_agrees_with_the_check_kernel() -> None:
    eng = _engine()
    eng.update_prices(["EEE"], [3.0])
    eng.upsert_limits(LIMITS)
    asked = ["AAA", "BBB", "CCC", "OUT", "EEE"]
    r = compute(Sizer(eng).gather("ACC", asked, 1e6, True))
    assert r.limit_buy is not None and r.limit_sell is not None
    assert r.limit_buy[4] == r.limit_sell[4] == 0.0  # restricted
    probed = 0
    for i, sym in enumerate(asked):
        for side, room in ((BUY, r.limit_buy[i]), (SELL, r.limit_sell[i])):
            assert room >= 0.0 and not math.isnan(room)
            if room == 0.0 or not math.isfinite(room):
                continue
            for factor, accepted in ((0.999, True), (1.001, False)):
                oid = f"probe{next(_ids)}"
                out = eng.check_orders([oid], ["ACC"], [sym], [side], [factor * room], [0.0])
                assert bool(out.accepted[0]) is accepted, (sym, side, factor, room, out.reject_mask)
                if accepted:
                    eng.report_executions([oid], [2], [0.0], [0.0])  # cancel: back to where it was
                probed += 1
    assert probed >= 16


def test_room_used_up_is_zero_and_no_limit_is_inf() -> None:
    eng = _engine()
    r = compute(Sizer(eng).gather("ACC", ["AAA"], 1e6, True))
    assert r.limit_buy is not None and r.limit_sell is not None
    assert r.limit_buy.tolist() == [math.inf] and r.limit_sell.tolist() == [math.inf]
    # ACC holds 1,200 AAA if every order fills
    eng.upsert_limits(
        [Limit(limit_id="p", kind=MAX_POSITION, account="ACC", symbol="AAA", threshold=1_000.0)]
    )
    r = compute(Sizer(eng).gather("ACC", ["AAA"], 1e6, True))
    assert r.limit_buy is not None and r.limit_sell is not None
    assert r.limit_buy[0] == 0.0 and r.limit_sell[0] == 2_000.0  # sell: -(1000 - 0 - q) <= 1000


def test_budget_from_the_max_var_limit() -> None:
    eng = _engine()
    sizer = Sizer(eng)
    with pytest.raises(SizingError) as err:
        sizer.gather("ACC", ["AAA"], 0.0, False)
    assert err.value.code == PRECONDITION and "MAX_VAR" in str(err.value)
    _install(
        eng,
        [
            Limit(limit_id="v-any", kind=MAX_VAR, account="", symbol="", threshold=50_000.0),
            Limit(limit_id="v-acc", kind=MAX_VAR, account="ACC", symbol="", threshold=30_000.0),
        ],
    )
    assert compute(sizer.gather("ACC", ["AAA"], 0.0, False)).budget == 30_000.0
    assert compute(sizer.gather("OTHER", ["AAA"], 0.0, False)).budget == max(
        50_000.0, compute(sizer.gather("OTHER", ["AAA"], 1.0, False)).var
    )
    assert compute(sizer.gather("ACC", ["AAA"], 12_345.0, False)).budget == 12_345.0  # given wins


@pytest.mark.parametrize(
    ("account", "symbols", "budget", "message"),
    [
        ("", [], 1.0, "account"),
        ("ACC", [], -1.0, "var_budget"),
        ("ACC", [], math.nan, "var_budget"),
        ("ACC", [], math.inf, "var_budget"),
        ("ACC", ["AAA", ""], 1.0, "symbols[1]"),
        ("ACC", ["AAA", "x\x00"], 1.0, "symbols[1]"),
    ],
)
def test_invalid_requests_name_the_field(
    account: str, symbols: list[str], budget: float, message: str
) -> None:
    with pytest.raises(SizingError) as err:
        Sizer(_engine()).gather(account, symbols, budget, False)
    assert err.value.code == "INVALID_ARGUMENT" and str(err.value).startswith(message)


def test_no_model_is_a_failed_precondition() -> None:
    eng = _engine()
    eng.set_risk_model(None)
    with pytest.raises(SizingError) as err:
        Sizer(eng).gather("ACC", [], 1.0, False)
    assert err.value.code == PRECONDITION and str(err.value) == "no risk model yet"


def test_the_sigma_cache_answers_like_a_fresh_product() -> None:
    eng = _engine(SAMPLE)
    sizer = Sizer(eng)
    for qty in (100.0, 250.0, -40.0):
        eng.load_positions(["ACC"], ["CCC"], [qty])
        cached = sizer.compute(sizer.gather("ACC", (), 1e6, False))
        fresh = compute(Sizer(eng).gather("ACC", (), 1e6, False))
        assert cached.var == pytest.approx(fresh.var, rel=1e-12)
        np.testing.assert_allclose(cached.max_buy, fresh.max_buy, rtol=1e-9)
        np.testing.assert_allclose(cached.marginal, fresh.marginal, rtol=1e-9)
    assert sizer.sigma_cache.incremental == 2 and sizer.sigma_cache.full == 1


_KINDS = [MAX_ORDER_QUANTITY, MAX_ORDER_NOTIONAL, MAX_POSITION, MAX_GROSS_EXPOSURE, MAX_NET_EXPOSURE]


@settings(max_examples=40, deadline=None)
@given(
    limits=st.lists(
        st.tuples(
            st.sampled_from(_KINDS),
            st.sampled_from(["", "ACC"]),
            st.sampled_from(["", "AAA", "BBB"]),
            st.floats(min_value=1.0, max_value=1e6),
        ),
        max_size=8,
    ),
    positions=st.lists(st.floats(min_value=-5e3, max_value=5e3).map(round), min_size=2, max_size=2),
    opens=st.lists(
        st.tuples(st.sampled_from(["AAA", "BBB"]), st.sampled_from([BUY, SELL]), st.integers(1, 500))
    ),
    prices=st.lists(st.floats(min_value=0.5, max_value=500.0), min_size=2, max_size=2),
)
def test_random_limits_agree_with_the_check_kernel(limits, positions, opens, prices) -> None:
    eng = Engine(EngineConfig(max_open_orders=1_000, closed_order_retention=100))
    eng.set_risk_model(make_model(FACTOR, SYMBOLS, seed=1))
    eng.update_prices(["AAA", "BBB"], prices)
    eng.load_positions(["ACC", "ACC"], ["AAA", "BBB"], positions)
    for i, (sym, side, qty) in enumerate(opens):  # open orders, before any limit
        eng.check_orders([f"open{i}"], ["ACC"], [sym], [side], [float(qty)], [0.0])
    account_level = {MAX_GROSS_EXPOSURE, MAX_NET_EXPOSURE}
    eng.upsert_limits(
        [
            Limit(limit_id=f"l{i}", kind=k, account=a, symbol="" if k in account_level else s, threshold=t)
            for i, (k, a, s, t) in enumerate(limits)
        ]
    )
    r = compute(Sizer(eng).gather("ACC", ["AAA", "BBB"], 1e12, True))
    assert r.limit_buy is not None and r.limit_sell is not None
    for i, sym in enumerate(("AAA", "BBB")):
        for side, room in ((BUY, r.limit_buy[i]), (SELL, r.limit_sell[i])):
            assert room >= 0.0 and not math.isnan(room)
            if not math.isfinite(room):
                continue
            probes = ((0.999, True), (1.001, False)) if room > 0.0 else ((1.0, False),)
            for factor, accepted in probes:
                qty = factor * room if room > 0.0 else 1.0
                oid = f"probe{next(_ids)}"
                out = eng.check_orders([oid], ["ACC"], [sym], [side], [qty], [0.0])
                assert bool(out.accepted[0]) is accepted, (sym, side, factor, room, out.reject_mask)
                if accepted:
                    eng.report_executions([oid], [2], [0.0], [0.0])
