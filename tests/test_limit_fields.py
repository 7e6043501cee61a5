"""Limit fields the proto carries ahead of the server: refused by UpsertLimits, never ignored."""

from __future__ import annotations

import grpc
import pytest
from fix_server import RiskdServer

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc


@pytest.mark.parametrize("field", [{"reference_volatility": 0.02}, {"min_scale": 0.5}], ids=str)
def test_upsert_refuses_fields_it_does_not_apply(riskd_server: RiskdServer, field: dict) -> None:
    ok = pb.Limit(limit_id="q", kind=pb.RISK_CHECK_MAX_ORDER_QUANTITY, threshold=10)
    bad = pb.Limit(limit_id="p", kind=pb.RISK_CHECK_MAX_POSITION, threshold=10, **field)
    with grpc.insecure_channel(riskd_server.target) as channel:
        stub = pb_grpc.RiskServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.UpsertLimits(pb.UpsertLimitsRequest(limits=[ok, bad]), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"limits[1].{next(iter(field))}: not supported" in err.value.details()
        assert not stub.ListLimits(pb.ListLimitsRequest(), timeout=30).limits  # nothing applied


def test_a_template_name_is_kept_through_upsert_list_and_restart(riskd_server: RiskdServer) -> None:
    lim = pb.Limit(limit_id="t", kind=pb.RISK_CHECK_MAX_POSITION, threshold=10, template="standard")
    with grpc.insecure_channel(riskd_server.target) as channel:
        pb_grpc.RiskServiceStub(channel).UpsertLimits(pb.UpsertLimitsRequest(limits=[lim]), timeout=30)
    riskd_server.restart()  # from PostgreSQL
    with grpc.insecure_channel(riskd_server.target) as channel:
        (got,) = pb_grpc.RiskServiceStub(channel).ListLimits(pb.ListLimitsRequest(), timeout=30).limits
    assert got.template == "standard" and got.effective_threshold == 10
