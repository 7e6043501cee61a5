"""The servicer's protobuf <-> column translation, without a server."""

from __future__ import annotations

import numpy as np
import pytest

from riskd.v1 import risk_pb2 as pb
from riskd_server.engine import Engine
from riskd_server.wire.encode import encode_into, encode_result
from riskd_server.wire.request import decode_batch


@pytest.mark.parametrize("n", [1, 8, 9, 40])
def test_decoded_columns_check_like_the_raw_repeated_fields(n: int) -> None:
    """Small batches pass the repeated fields through, larger ones become lists and arrays: same answers."""
    batch = pb.OrderBatch(
        client_order_id=[f"id{i % 30}" for i in range(n)],
        account=[("A", "B", "")[i % 3] for i in range(n)],
        symbol=["S"] * n,
        side=[1 + i % 2 for i in range(n)],
        quantity=[float(1 + i % 5) for i in range(n)],
        price=[0.0 if i % 4 else 10.5 for i in range(n)],
    )
    decoded, raw = Engine(), Engine()
    for eng in (decoded, raw):
        eng.update_prices(["S"], [10.0])
    got = decoded.check_orders(*decode_batch(batch), now=1.0)
    want = raw.check_orders(
        batch.client_order_id, batch.account, batch.symbol, batch.side, batch.quantity, batch.price, now=1.0
    )
    assert encode_result(got) == encode_result(want)
    assert (got.accepted.sum() > 0 and (~got.accepted).sum() > 0) or n == 1
    if n > 8:
        columns = decode_batch(batch)
        assert isinstance(columns[0], list) and columns[4].dtype == np.float64


def _plain_result(out) -> pb.CheckResult:
    """The reference encoding: one Python value per element (what encode_result's wire path replaces)."""
    result = pb.CheckResult(
        accepted=out.accepted.tolist(), reject_mask=out.reject_mask.tolist(), state_version=out.state_version
    )
    v = out.violations
    for i in range(len(v)):
        result.violations.add(
            order_index=int(v.order_index[i]),
            check=int(v.check[i]),
            limit_id=v.limit_id[i],
            observed=float(v.observed[i]),
            threshold=float(v.threshold[i]),
            warning=bool(v.warning[i]),
        )
    return result


@pytest.mark.parametrize("n", [1, 15, 16, 300])
@pytest.mark.parametrize("big_mask", [False, True])
@pytest.mark.parametrize("version", [0, 1, 300, 2**40])
def test_wire_encoded_result_equals_the_plain_one(n: int, big_mask: bool, version: int) -> None:
    """encode_result's numpy wire path (>= 16 orders) gives the same message and bytes as the plain one."""
    from riskd_server.outcomes import NO_VIOLATIONS as _NO_VIOLATIONS
    from riskd_server.outcomes import CheckOutcome

    rng = np.random.default_rng(n)
    accepted = rng.random(n) < 0.7
    high = (1 << 32) if big_mask else 0x80
    mask = np.where(accepted, 0, rng.integers(1, high, n, dtype=np.int64)).astype(np.uint32)
    if big_mask and n > 4:
        mask[:4] = [0x80, 0x3FFF, 0x4000, 0xFFFFFFFF]
    out = CheckOutcome(accepted, mask, _NO_VIOLATIONS, version)
    got = encode_result(out)
    assert got == _plain_result(out)
    assert got.SerializeToString() == _plain_result(out).SerializeToString()


def test_wire_encoded_result_keeps_violations() -> None:
    eng = Engine()
    eng.update_prices(["S"], [10.0])
    n = 40
    out = eng.check_orders(
        [f"id{i}" for i in range(n)],
        ["A"] * n,
        ["S"] * n,
        [1] * n,
        [1.0] * n,
        [10.0 if i % 3 else -1.0 for i in range(n)],
        now=1.0,
    )
    got = encode_result(out)
    assert len(got.violations) == len(out.violations) > 0
    assert got == _plain_result(out)


@pytest.mark.parametrize("n", [1, 15, 16, 10_000])
@pytest.mark.parametrize("errors", ["none", "some"])
def test_encode_executions_equals_the_plain_response(n: int, errors: str) -> None:
    from riskd_server.wire.encode import encode_executions

    rng = np.random.default_rng(n)
    applied = rng.random(n) < 0.9
    error = ["" if (errors == "none" or a) else "order already closed" for a in applied.tolist()]
    for version in (0, 7, 2**33):
        got = encode_executions(applied, error, version)
        want = pb.ReportExecutionsResponse(applied=applied.tolist(), error=error, state_version=version)
        assert got == want
        assert got.SerializeToString() == want.SerializeToString()


@pytest.mark.parametrize("n", [3, 40])
def test_encode_executions_from_engine_statuses_equals_the_plain_response(n: int) -> None:
    """The engine's status codes select prepared error bytes: same response as the error strings."""
    from riskd_server.wire.encode import encode_executions

    eng = Engine()
    eng.update_prices(["S"], [10.0])
    ids = [f"id{i}" for i in range(n)]
    eng.check_orders(ids, ["A"] * n, ["S"] * n, [1] * n, [5.0] * n, [10.0] * n, now=1.0)
    report = [ids[i] if i % 4 else f"unknown{i}" for i in range(n)]
    types = [(2, 1, 2, 9)[i % 4] for i in range(n)]
    qty = [(0.0, 7.0, 0.0, 1.0)[i % 4] for i in range(n)]
    px = [(0.0, 10.0, 0.0, 1.0)[i % 4] for i in range(n)]
    out = eng.report_executions(report, types, qty, px, now=2.0)
    assert out.status is not None and len(set(out.error)) >= 3
    got = encode_executions(out.applied, out.error, out.state_version, out.status)
    want = pb.ReportExecutionsResponse(
        applied=out.applied.tolist(), error=out.error, state_version=out.state_version
    )
    assert got == want
    assert got.SerializeToString() == want.SerializeToString()


@pytest.mark.parametrize("seed", range(12))
def test_encode_response_is_the_serialized_message(seed: int) -> None:
    """The numba reply encoder gives the bytes upb gives for encode_into's message: zero fields left
    out, negative enums, -0.0 and NaN doubles, empty, unicode and NUL-holding limit ids."""
    from riskd_server.outcomes import NO_VIOLATIONS as _NO_VIOLATIONS
    from riskd_server.outcomes import CheckOutcome, Violations
    from riskd_server.wire.encode import encode_response

    rng = np.random.default_rng(seed)
    n = int(rng.choice([0, 1, 2, 17, 300]))
    accepted = rng.random(n) < 0.6
    mask = np.where(accepted, 0, rng.integers(1, 1 << 32, n)).astype(np.uint32)
    nv = int(rng.integers(0, 40)) if seed % 3 else 0
    pick = rng.integers(0, 6, nv)
    ids = np.array(["", "lim-a", "é-limit", "x\0y", "q" * 128, "server:max-open-orders"], dtype=object)
    specials = np.array([0.0, -0.0, np.nan, np.inf, 1.5, -2.25e300])
    violations = (
        Violations(
            order_index=rng.integers(0, 3, nv).astype(np.uint32)
            * rng.integers(0, 1 << 20, nv).astype(np.uint32),
            check=rng.choice([0, 1, 9, 24, -1, -(2**31)], nv).astype(np.int32),
            limit_id=ids[pick if seed % 2 else pick % 3],
            observed=specials[rng.integers(0, 6, nv)],
            threshold=specials[rng.integers(0, 6, nv)],
            warning=rng.random(nv) < 0.5,
        )
        if nv
        else _NO_VIOLATIONS
    )
    out = CheckOutcome(accepted, mask, violations, int(rng.choice([0, 1, 127, 128, 2**21, 2**40])))
    want = pb.CheckOrdersResponse()
    want.result.MergeFrom(_plain_result(out))
    assert encode_response(out) == want.SerializeToString()
    assert pb.CheckOrderStreamResponse.FromString(encode_response(out)).result == _plain_result(out)


def test_encode_response_of_one_accepted_order_is_the_serialized_message() -> None:
    from riskd_server.wire.encode import encode_response

    eng = Engine()
    eng.update_prices(["S"], [10.0])
    for i in range(200):
        out = eng.check_orders([f"id{i}"], ["A"], ["S"], [1], [1.0], [10.0], now=1.0)
        want = pb.CheckOrdersResponse()
        encode_into(want.result, out)
        assert encode_response(out) == want.SerializeToString()


@pytest.mark.parametrize("n", [1, 15, 16, 10_000])
def test_executions_wire_is_the_serialized_message(n: int) -> None:
    from riskd_server.outcomes import EXEC_MESSAGES as _EXEC_MESSAGES
    from riskd_server.wire.encode import executions_wire

    rng = np.random.default_rng(n)
    for some in (False, True):
        status = (
            rng.integers(0, len(_EXEC_MESSAGES), n) * (rng.random(n) < 0.2)
            if some
            else np.zeros(n, dtype=np.int64)
        )
        applied = status <= 2
        error = _EXEC_MESSAGES[status].tolist()
        for version in (0, 5, 2**33):
            want = pb.ReportExecutionsResponse(applied=applied.tolist(), error=error, state_version=version)
            assert executions_wire(applied, error, version, status) == want.SerializeToString()
            assert executions_wire(applied, error, version) == want.SerializeToString()
