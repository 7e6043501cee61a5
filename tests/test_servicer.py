"""The servicer's protobuf <-> column translation, without a server."""

from __future__ import annotations

import numpy as np
import pytest

from riskd.v1 import risk_pb2 as pb
from riskd_server.engine import Engine
from riskd_server.servicer import decode_batch, encode_result


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
