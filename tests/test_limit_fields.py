"""Limit fields beyond the basics through the real server: dynamic limits, templates."""

from __future__ import annotations

import time

import grpc
import pytest
from fix_server import RiskdServer

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc


@pytest.fixture
def riskd_settings() -> dict:
    return {"dynamic_min_returns": 2, "dynamic_tolerance": 0.0}


def _listed(stub: pb_grpc.RiskServiceStub, limit_id: str) -> pb.Limit:
    (got,) = [
        lim for lim in stub.ListLimits(pb.ListLimitsRequest(), timeout=30).limits if lim.limit_id == limit_id
    ]
    return got


def test_a_dynamic_limit_tightens_and_rejects_at_its_effective_threshold(riskd_server: RiskdServer) -> None:
    """End to end: a volatile symbol tightens its dynamic limit (ListLimits shows both thresholds),
    a reject carries the effective threshold, and the dynamic fields survive a restart."""
    lim = pb.Limit(
        limit_id="q", kind=pb.RISK_CHECK_MAX_ORDER_QUANTITY, symbol="VOL", threshold=100,
        reference_volatility=0.02, min_scale=0.4,
    )  # fmt: skip
    with grpc.insecure_channel(riskd_server.target) as channel:
        stub = pb_grpc.RiskServiceStub(channel)
        stub.UpsertLimits(pb.UpsertLimitsRequest(limits=[lim]), timeout=30)
        assert _listed(stub, "q").effective_threshold == 100  # no volatility known yet
        for price in (50.0, 60.0, 45.0, 58.0):  # returns of ~20 %: 10x the reference, clamped at 0.4
            stub.UpdatePrices(pb.UpdatePricesRequest(symbol=["VOL"], price=[price]), timeout=30)
        deadline = time.monotonic() + 20
        while _listed(stub, "q").effective_threshold != pytest.approx(40.0) and time.monotonic() < deadline:
            time.sleep(0.05)  # the refresh runs off the hot path, right after the price update
        got = _listed(stub, "q")
        assert got.threshold == 100 and got.effective_threshold == pytest.approx(40.0)
        batch = pb.OrderBatch(
            client_order_id=["o1", "o2"], account=["A", "A"], symbol=["VOL", "VOL"],
            side=[pb.SIDE_BUY, pb.SIDE_BUY], quantity=[41.0, 40.0], price=[0.0, 0.0],
        )  # fmt: skip
        reply = stub.CheckOrders(pb.CheckOrdersRequest(orders=batch), timeout=30).result
        assert list(reply.accepted) == [False, True]
        (violation,) = reply.violations
        assert violation.limit_id == "q" and violation.threshold == pytest.approx(40.0)
    riskd_server.restart()  # from the checkpoint: the fields are kept, and so is the marks' EWMA
    with grpc.insecure_channel(riskd_server.target) as channel:
        got = _listed(pb_grpc.RiskServiceStub(channel), "q")
    assert (got.reference_volatility, got.min_scale, got.effective_threshold) == (
        0.02,
        pytest.approx(0.4),
        pytest.approx(40.0),
    )


def test_a_template_name_is_kept_through_upsert_list_and_restart(riskd_server: RiskdServer) -> None:
    lim = pb.Limit(limit_id="t", kind=pb.RISK_CHECK_MAX_POSITION, threshold=10, template="standard")
    with grpc.insecure_channel(riskd_server.target) as channel:
        pb_grpc.RiskServiceStub(channel).UpsertLimits(pb.UpsertLimitsRequest(limits=[lim]), timeout=30)
    riskd_server.restart()  # from PostgreSQL
    with grpc.insecure_channel(riskd_server.target) as channel:
        (got,) = pb_grpc.RiskServiceStub(channel).ListLimits(pb.ListLimitsRequest(), timeout=30).limits
    assert got.template == "standard" and got.effective_threshold == 10
