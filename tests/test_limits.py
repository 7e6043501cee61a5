"""Limit validation: all-or-nothing, every problem reported with its field and index."""

from __future__ import annotations

import math

import pytest

from riskd_server.engine import Engine
from riskd_server.limits import Limit, LimitValidationError, validate_limits


def test_every_problem_is_reported_at_once_with_field_and_index() -> None:
    limits = [
        Limit(limit_id="ok", kind=1, threshold=10),
        Limit(limit_id="", kind=1, threshold=10),
        Limit(limit_id="g", kind=4, symbol="AAPL", threshold=1e6),
        Limit(limit_id="v", kind=10, symbol="A", threshold=1),
        Limit(limit_id="t", kind=2, threshold=math.nan, warn_fraction=1.5),
        Limit(limit_id="ok", kind=3, threshold=1),
        Limit(limit_id="k", kind=21, threshold=1),
    ]
    with pytest.raises(LimitValidationError) as info:
        validate_limits(limits)
    assert info.value.errors == [
        "limits[1].limit_id: must not be empty",
        "limits[2].symbol: account-level kind MAX_GROSS_EXPOSURE takes no symbol",
        "limits[3].symbol: account-level kind MAX_VAR takes no symbol",
        "limits[4].threshold: must be finite and >= 0, got nan",
        "limits[4].warn_fraction: must be in [0, 1), got 1.5",
        "limits[5].limit_id: duplicate of limits[0]",
        "limits[6].kind: 21 is not a configurable RiskCheck (1..10)",
    ]


def test_a_rejected_upsert_changes_nothing() -> None:
    engine = Engine()
    engine.upsert_limits([Limit(limit_id="q", kind=1, threshold=5)])
    before = engine.limits
    with pytest.raises(LimitValidationError):
        engine.upsert_limits([Limit(limit_id="q", kind=1, threshold=50), Limit(limit_id="", kind=1)])
    assert engine.limits is before
    assert engine.check_orders(["o"], ["A"], ["S"], [1], [6.0], [1.0], now=0.0).accepted.tolist() == [False]
