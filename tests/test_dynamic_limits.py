"""Dynamic limits (riskd_server.dynamic) against a plain-Python reference as prices move, through the
Engine: EWMA volatility of marks, exposure-weighted account volatility, the clamp, and the kernel
rejecting at the effective threshold (a reject's threshold is the effective one)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskd_server.engine import Engine
from riskd_server.engine.config import EngineConfig
from riskd_server.limits import (
    MAX_GROSS_EXPOSURE,
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_QUANTITY,
    MAX_POSITION,
    Limit,
)

LAMBDA = 0.9
MIN_RETURNS = 2
DEFAULT_MIN_SCALE = 0.25
POSITIONS = {"S0": 10.0, "S1": -4.0}

LIMITS = [
    Limit(
        limit_id="pos",
        kind=MAX_POSITION,
        account="A",
        symbol="S0",
        threshold=1_000,
        reference_volatility=0.01,
    ),
    Limit(
        limit_id="qty",
        kind=MAX_ORDER_QUANTITY,
        symbol="S1",
        threshold=500,
        reference_volatility=0.02,
        min_scale=0.5,
    ),
    Limit(limit_id="gross", kind=MAX_GROSS_EXPOSURE, account="A", threshold=1e6, reference_volatility=0.01),
    Limit(limit_id="firm", kind=MAX_ORDER_NOTIONAL, threshold=1e5, reference_volatility=0.015),
    Limit(limit_id="static", kind=MAX_ORDER_QUANTITY, account="A", symbol="S0", threshold=700),
]


class Reference:
    """The README's definition, in plain Python."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.var: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def price(self, symbol: str, p: float) -> None:
        prev = self.last.get(symbol)
        if prev is not None:
            r = math.log(p / prev)
            n = self.count.get(symbol, 0)
            self.var[symbol] = r * r if n == 0 else LAMBDA * self.var[symbol] + (1 - LAMBDA) * r * r
            self.count[symbol] = n + 1
        self.last[symbol] = p

    def vol(self, symbol: str) -> float | None:
        return math.sqrt(self.var[symbol]) if self.count.get(symbol, 0) >= MIN_RETURNS else None

    def account_vol(self) -> float | None:
        num = den = 0.0
        for symbol, pos in POSITIONS.items():
            v = self.vol(symbol)
            if v is not None:
                w = abs(pos * self.last[symbol])
                num += w * v
                den += w
        return num / den if den > 0 else None

    def effective(self, lim: Limit) -> float:
        vol = self.vol(lim.symbol) if lim.symbol else self.account_vol()  # one account: firm = A
        if lim.reference_volatility <= 0 or vol is None or vol <= 0:
            return lim.threshold
        low = lim.min_scale or DEFAULT_MIN_SCALE
        return lim.threshold * min(1.0, max(low, lim.reference_volatility / vol))


def _engine() -> Engine:
    eng = Engine(
        EngineConfig(
            vol_ewma_lambda=LAMBDA,
            dynamic_min_returns=MIN_RETURNS,
            dynamic_min_scale=DEFAULT_MIN_SCALE,
            dynamic_tolerance=0.0,
        )
    )
    eng.upsert_limits(LIMITS)
    return eng


moves = st.lists(
    st.tuples(st.sampled_from(["S0", "S1"]), st.floats(-0.08, 0.08, allow_nan=False)), min_size=1, max_size=30
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves)
def test_effective_thresholds_follow_the_reference(path) -> None:
    eng = _engine()
    ref = Reference()
    marks = {"S0": 100.0, "S1": 50.0}
    eng.update_prices(list(marks), list(marks.values()))
    for symbol, p in marks.items():
        ref.price(symbol, p)
    eng.load_positions(["A", "A"], list(POSITIONS), list(POSITIONS.values()))
    for symbol, move in path:
        marks[symbol] = round(marks[symbol] * math.exp(move), 6)
        eng.update_prices([symbol], [marks[symbol]])
        ref.price(symbol, marks[symbol])
        eng.refresh_dynamic()
        for lim in LIMITS:
            assert eng.effective_threshold(lim) == pytest.approx(ref.effective(lim), rel=1e-9), lim.limit_id


def test_before_any_volatility_is_known_nothing_tightens() -> None:
    eng = _engine()
    eng.update_prices(["S0", "S1"], [100.0, 50.0])
    eng.update_prices(["S0", "S1"], [130.0, 70.0])  # one return each: fewer than MIN_RETURNS
    eng.refresh_dynamic()
    assert [eng.effective_threshold(lim) for lim in LIMITS] == [lim.threshold for lim in LIMITS]


def test_a_reject_carries_the_effective_threshold() -> None:
    eng = _engine()
    for p in (50.0, 60.0, 45.0, 58.0):  # a volatile S1: vol ~0.25 per update, far above 0.02
        eng.update_prices(["S1"], [p])
    assert eng.refresh_dynamic()
    qty = next(lim for lim in LIMITS if lim.limit_id == "qty")
    effective = eng.effective_threshold(qty)
    assert effective == pytest.approx(250.0)  # clamped at its own min_scale 0.5
    out = eng.check_orders(
        ["o1", "o2"], ["B", "B"], ["S1", "S1"], [1, 1], [effective + 1, effective], [0.0, 0.0]
    )
    assert out.accepted.tolist() == [False, True]
    v = out.violations
    assert v.limit_id.tolist() == ["qty"] and v.threshold.tolist() == [effective]
    # Calm again: the threshold comes back, the same order passes.
    for _ in range(60):
        eng.update_prices(["S1"], [58.0])
    assert eng.refresh_dynamic()
    assert eng.effective_threshold(qty) == 500.0
    assert eng.check_orders(["o3"], ["B"], ["S1"], [1], [effective + 1], [0.0]).accepted.tolist() == [True]


def test_risk_model_vol_wins_over_the_ewma() -> None:
    import numpy as np

    from riskd_server.risk.model import FACTOR, ModelSummary, RiskModel

    eng = _engine()
    for p in (50.0, 60.0, 45.0, 58.0):
        eng.update_prices(["S1"], [p])
    summary = ModelSummary(FACTOR, 1, 0, 0, 0, 0, 1.0, (), 0, 0.99, 1.0, 2.33)
    model = RiskModel(
        version="t", kind=FACTOR, symbols=("S1",), vol=np.array([0.01]), specific=np.zeros(1),
        loadings=np.zeros((1, 1)), covariance=None, z=2.33, horizon_days=1.0, confidence=0.99,
        default_vol=0.02, summary=summary, built_at=0.0,
    )  # fmt: skip
    eng.set_risk_model(model)
    eng.refresh_dynamic()
    qty = next(lim for lim in LIMITS if lim.limit_id == "qty")
    assert eng.effective_threshold(qty) == 500.0  # model vol 0.01 < reference 0.02: no tightening
