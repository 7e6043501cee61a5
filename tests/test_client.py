"""riskd_client against a real gRPC server over an in-memory Engine (fixture engine_server)."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from riskd_client import (
    AsyncRiskClient,
    CheckResults,
    Execution,
    LimitSpec,
    Order,
    Position,
    RiskClient,
    RiskdError,
    ViolationInfo,
)
from riskd_client._columns import encode_executions

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(engine_server) -> Iterator[RiskClient]:
    with RiskClient(engine_server.target) as c:
        yield c


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qty_limit(threshold: float = 100.0, **kw) -> LimitSpec:
    return LimitSpec("qty", "MAX_ORDER_QUANTITY", threshold, **kw)


# ---------------------------------------------------------------------------------------- checks


def test_check_dataclasses_reports_reasons_per_order(client: RiskClient, engine_server) -> None:
    client.upsert_limits(qty_limit(100, warn_fraction=0.5))
    results = client.check(
        [
            Order("o1", "ACC1", "AAPL", "BUY", 10, 187.5),
            Order("o2", "ACC1", "AAPL", "SELL", 1000, 187.5),
            Order("o3", "ACC1", "AAPL", "buy", 60, 187.5),
        ]
    )
    assert isinstance(results, CheckResults)
    assert len(results) == 3
    assert results.accepted == [True, False, True]
    assert not results.all_accepted
    assert [r.client_order_id for r in results] == ["o1", "o2", "o3"]
    assert [r.index for r in results] == [0, 1, 2]

    ok, bad, warned = results
    assert ok.reasons == () and ok.reject_mask == 0
    assert bad.accepted is False
    assert bad.reject_mask == 1 << 1  # bit n = RiskCheck n
    assert bad.reasons == (
        ViolationInfo(
            check="MAX_ORDER_QUANTITY",
            limit_id="qty",
            observed=1000.0,
            threshold=100.0,
            warning=False,
            code=1,
        ),
    )
    assert bad.failed_checks == ("MAX_ORDER_QUANTITY",)
    assert results.rejected_checks(1) == ("MAX_ORDER_QUANTITY",)
    assert warned.accepted and warned.failed_checks == ()
    assert [(w.check, w.observed, w.warning) for w in warned.warnings] == [("MAX_ORDER_QUANTITY", 60.0, True)]

    assert [r.client_order_id for r in results.rejected()] == ["o2"]
    assert [r.client_order_id for r in results.warned()] == ["o3"]
    assert results[-1] == warned
    with pytest.raises(IndexError):
        results[3]
    assert results.state_version == engine_server.call(lambda: engine_server.engine.state_version)
    # Accepted orders are now open orders on the server; the rejected one is not.
    assert engine_server.call(engine_server.engine.open_quantity, "o1") == 10.0
    assert engine_server.call(engine_server.engine.open_quantity, "o2") == 0.0


def test_check_accepts_dicts_tuples_objects_and_a_single_order(client: RiskClient, engine_server) -> None:
    @dataclass
    class OmsOrder:  # an OMS's own type with the same attribute names
        client_order_id: str
        account: str
        symbol: str
        side: str
        quantity: float
        price: float = 0.0

    client.update_prices({"AAPL": 100.0})
    results = client.check(
        [
            {"client_order_id": "d1", "account": "A", "symbol": "AAPL", "side": 1, "quantity": 5},
            ("t1", "A", "AAPL", "SELL", 6, 99.5),
            OmsOrder("m1", "A", "AAPL", "B", 7),
        ]
    )
    assert results.accepted == [True, True, True]
    assert [r.client_order_id for r in results] == ["d1", "t1", "m1"]
    assert engine_server.call(engine_server.engine.open_quantity, "m1") == 7.0

    single = client.check(Order("s1", "A", "AAPL", "BUY", 1))
    assert len(single) == 1 and single[0].accepted
    one_dict = client.check(
        {"client_order_id": "s2", "account": "A", "symbol": "AAPL", "side": "SELL", "quantity": 2}
    )
    assert len(one_dict) == 1 and one_dict[0].client_order_id == "s2"


def test_check_numpy_columns(client: RiskClient, engine_server) -> None:
    client.upsert_limits(qty_limit(50))
    n = 1000
    ids = np.array([f"n{i}" for i in range(n)])
    results = client.check_columns(
        client_order_id=ids,
        account=np.array(["A", "B"] * (n // 2), dtype=object),
        symbol=np.array([b"AAPL", b"MSFT"] * (n // 2)),  # bytes ("S") columns are decoded
        side=np.array([1, 2] * (n // 2), dtype=np.int8),
        quantity=np.arange(n, dtype=np.float64) % 100,
        price=np.full(n, 10.0, dtype=np.float32),
    )
    assert len(results) == n
    expected = ((np.arange(n) % 100) <= 50) & ((np.arange(n) % 100) > 0)  # qty 0 is an invalid order
    assert results.accepted == expected.tolist()
    assert results.client_order_ids == ids.tolist()
    assert results[60].failed_checks == ("MAX_ORDER_QUANTITY",)
    assert results[0].failed_checks == ("INVALID_ORDER",)
    assert engine_server.call(engine_server.engine.open_quantity, "n43") == 43.0
    # A dict of numpy columns goes through check() the same way; price defaults to market orders.
    client.update_prices(np.array(["AAPL"]), np.array([100.0]))
    more = client.check(
        {
            "client_order_id": np.array(["x1", "x2"]),
            "account": ["A", "A"],
            "symbol": ["AAPL", "AAPL"],
            "side": np.array([1, 2]),
            "quantity": np.array([1.0, 2.0]),
        }
    )
    assert more.accepted == [True, True]


def test_unequal_columns_raise_invalid_argument_naming_the_column(client: RiskClient, engine_server) -> None:
    with pytest.raises(RiskdError) as info:
        client.check_columns(
            client_order_id=["a", "b", "c"],
            account=["A", "A", "A"],
            symbol=["S", "S", "S"],
            side=["BUY", "BUY", "BUY"],
            quantity=[1.0, 2.0],
        )
    err = info.value
    assert err.code == "INVALID_ARGUMENT"
    assert err.status is grpc.StatusCode.INVALID_ARGUMENT
    assert err.method == "CheckOrders"
    assert "orders.quantity" in err.details and "has 2 entries, expected 3" in err.details
    assert "CheckOrders failed: INVALID_ARGUMENT: orders.quantity" in str(err)
    assert engine_server.call(engine_server.engine.open_orders) == 0  # nothing half-applied


def test_malformed_input_is_a_local_value_error(client: RiskClient) -> None:
    with pytest.raises(ValueError, match=r"orders.side\[1\]: 'BYU'"):
        client.check([Order("a", "A", "S", "BUY", 1), Order("b", "A", "S", "BYU", 1)])
    with pytest.raises(ValueError, match=r"orders\[0\]: missing symbol"):
        client.check([{"client_order_id": "a", "account": "A", "side": "BUY", "quantity": 1}])
    with pytest.raises(ValueError, match="unknown column"):
        client.check({"client_order_id": ["a"], "qty": [1]})
    with pytest.raises(ValueError, match=r"orders\.quantity"):
        client.check([Order("a", "A", "S", "BUY", "ten")])  # type: ignore[arg-type]


def test_duplicate_and_invalid_orders_carry_builtin_reasons(client: RiskClient) -> None:
    client.update_prices({"S": 10.0})
    first = client.check([Order("dup", "A", "S", "BUY", 1)])
    assert first.all_accepted
    again = client.check(
        [Order("dup", "A", "S", "BUY", 1), Order("", "A", "S", "BUY", 1), Order("m", "A", "Q", 1, 1)]
    )
    assert [r.failed_checks for r in again] == [
        ("DUPLICATE_ORDER_ID",),
        ("INVALID_ORDER",),
        ("NO_REFERENCE_PRICE",),
    ]
    assert all(v.limit_id == "" for r in again for v in r.reasons)


# ---------------------------------------------------------------------------------------- stream


def test_stream_answers_each_batch_in_order(client: RiskClient) -> None:
    client.update_prices({"S": 10.0})
    sizes = [1, 3, 0, 5, 2]

    def batches() -> Iterator[list[Order]]:
        counter = itertools.count()
        for size in sizes:
            yield [Order(f"s{next(counter)}", "A", "S", "BUY", 1) for _ in range(size)]
        yield [Order("s0", "A", "S", "BUY", 1)]  # a duplicate of the first batch's order

    results = list(client.check_stream(batches()))
    assert [len(r) for r in results] == [*sizes, 1]
    assert [r.client_order_ids for r in results[:2]] == [["s0"], ["s1", "s2", "s3"]]
    versions = [r.state_version for r in results]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert all(r.all_accepted for r in results[:-1])
    assert results[-1][0].failed_checks == ("DUPLICATE_ORDER_ID",)


def test_stream_mixed_batch_shapes_and_early_close(client: RiskClient, engine_server) -> None:
    client.update_prices({"S": 10.0})
    columns = {"client_order_id": ["c1", "c2"], "account": ["A", "A"], "symbol": ["S", "S"], "side": [1, 2]}
    stream = client.check_stream(
        itertools.chain(
            [{**columns, "quantity": np.array([1.0, 2.0])}],
            ([Order(f"inf{i}", "A", "S", "SELL", 1)] for i in itertools.count()),  # never ends
        )
    )
    first = next(stream)
    assert first.client_order_ids == ["c1", "c2"] and first.all_accepted
    assert next(stream)[0].client_order_id == "inf0"
    stream.close()  # cancels the call; the endless generator is abandoned
    assert client.check(Order("after", "A", "S", "BUY", 1)).all_accepted


def test_stream_bad_batch_raises_after_earlier_answers(client: RiskClient) -> None:
    client.update_prices({"S": 10.0})
    batches = [
        [Order("g1", "A", "S", "BUY", 1)],
        [Order("g2", "A", "S", "HOLD", 1)],
        [Order("g3", "A", "S", "BUY", 1)],
    ]
    seen: list[CheckResults] = []
    with pytest.raises(ValueError, match="HOLD"):
        for result in client.check_stream(batches):
            seen.append(result)
    assert [r.client_order_ids for r in seen] == [["g1"]]


def test_stream_server_error_names_message_and_column(client: RiskClient) -> None:
    good = [Order("e1", "A", "S", "BUY", 1, 10.0)]
    bad = {"client_order_id": ["e2"], "account": ["A"], "symbol": ["S"], "side": [1], "quantity": [1.0, 2.0]}
    seen = []
    with pytest.raises(RiskdError) as info:
        for result in client.check_stream([good, bad]):
            seen.append(result)
    assert len(seen) == 1
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.method == "CheckOrderStream"
    assert "message[1].orders.quantity" in info.value.details


# ---------------------------------------------------------------------------------------- executions, prices, positions


def test_executions_move_positions_and_report_errors(client: RiskClient, engine_server) -> None:
    eng = engine_server.engine
    assert client.check(
        [Order("x1", "A", "S", "BUY", 10, 20.0), Order("x2", "A", "S", "SELL", 4, 21.0)]
    ).all_accepted
    out = client.report_executions(
        [
            Execution("x1", "FILL", 6, 20.0),
            Execution("x2", "canceled"),
            Execution("nope", "FILL", 1, 1.0),
        ]
    )
    assert out.applied == (True, True, False)
    assert not out.all_applied
    assert out.errors[:2] == ("", "")
    assert out.failed() == [(2, "nope", out.errors[2])]
    assert "unknown client_order_id" in out.errors[2]
    assert engine_server.call(eng.position, "A", "S") == 6.0
    assert engine_server.call(eng.open_quantity, "x1") == 4.0
    assert engine_server.call(eng.open_quantity, "x2") == 0.0

    columns = client.report_executions(
        {"client_order_id": ["x1"], "type": np.array([1]), "quantity": np.array([4.0]), "price": [20.0]}
    )
    assert columns.applied == (True,) and columns.state_version > out.state_version
    assert engine_server.call(eng.position, "A", "S") == 10.0
    with pytest.raises(ValueError, match=r"executions.type\[0\]"):
        client.report_executions([Execution("x1", "PARTIAL")])


def test_prices_drive_market_orders(client: RiskClient) -> None:
    client.upsert_limits(LimitSpec("notional", "max-order-notional", 1000.0))
    assert client.check(Order("m0", "A", "S", "BUY", 20)).rejected()[0].failed_checks == (
        "NO_REFERENCE_PRICE",
    )
    change = client.update_prices({"S": 100.0, "T": 1.0})
    assert change.count == 2
    change2 = client.update_prices(["S"], np.array([40.0]))
    assert change2.count == 1 and change2.state_version > change.state_version
    results = client.check([Order("m1", "A", "S", "BUY", 20), Order("m2", "A", "S", "BUY", 30)])
    assert results.accepted == [True, False]
    (reason,) = results[1].reasons
    assert (reason.check, reason.limit_id, reason.observed, reason.threshold) == (
        "MAX_ORDER_NOTIONAL",
        "notional",
        1200.0,
        1000.0,
    )
    with pytest.raises(RiskdError) as info:
        client.update_prices({"S": -1.0})
    assert info.value.code == "INVALID_ARGUMENT" and "price[0]" in info.value.details
    with pytest.raises(ValueError):
        client.update_prices(["S", "T"])  # symbols without prices


def test_positions_feed_position_limits(client: RiskClient, engine_server) -> None:
    change = client.load_positions([("A", "S", 90.0), Position("B", "S", -5.0)])
    assert change.count == 2 and change.persisted is True
    assert engine_server.call(engine_server.engine.position, "B", "S") == -5.0
    client.load_positions({"account": ["A"], "symbol": ["S"], "quantity": np.array([95.0])})
    assert engine_server.call(engine_server.engine.position, "A", "S") == 95.0
    client.upsert_limits(LimitSpec("pos", "MAX_POSITION", 100.0, symbol="S"))
    client.update_prices({"S": 1.0})
    results = client.check([Order("p1", "A", "S", "BUY", 5), Order("p2", "A", "S", "BUY", 1)])
    assert results.accepted == [True, False]
    assert results[1].reasons[0].check == "MAX_POSITION" and results[1].reasons[0].observed == 101.0


# ---------------------------------------------------------------------------------------- limits, trading state


def test_limits_crud(client: RiskClient) -> None:
    first = client.upsert_limits(
        [
            LimitSpec("b-qty", "max-order-quantity", 10, account="ACC1", description="desk B"),
            {"limit_id": "a-collar", "kind": 6, "threshold": 0.05, "symbol": "AAPL", "warn_fraction": 0.5},
        ]
    )
    assert first.count == 2 and first.persisted is True
    listing = client.list_limits()
    assert [lim.limit_id for lim in listing] == ["a-collar", "b-qty"]  # ordered by id
    assert listing.limits_version == first.limits_version
    assert listing.by_id()["a-collar"] == LimitSpec(
        "a-collar", "PRICE_COLLAR", 0.05, symbol="AAPL", warn_fraction=0.5
    )
    assert listing.by_id()["b-qty"].description == "desk B"
    assert [lim.limit_id for lim in client.list_limits(account="ACC1")] == ["b-qty"]
    assert [lim.limit_id for lim in client.list_limits(kind="price-collar")] == ["a-collar"]
    assert len(client.list_limits(symbol="MSFT")) == 0

    replaced = client.upsert_limits(
        LimitSpec("b-qty", "MAX_ORDER_QUANTITY", 20, account="ACC1", disabled=True)
    )
    assert replaced.limits_version > first.limits_version
    assert client.list_limits().by_id()["b-qty"].disabled is True

    deleted = client.delete_limits(["b-qty", "ghost"])
    assert (deleted.count, deleted.not_found) == (1, ("ghost",))
    assert [lim.limit_id for lim in client.list_limits()] == ["a-collar"]
    assert client.delete_limits("ghost").count == 0


def test_invalid_limits_are_rejected_all_or_nothing(client: RiskClient) -> None:
    with pytest.raises(RiskdError) as info:
        client.upsert_limits(
            [
                LimitSpec("ok", "MAX_ORDER_QUANTITY", 1),
                LimitSpec("bad", "MAX_GROSS_EXPOSURE", 1, symbol="S", warn_fraction=2),
            ]
        )
    assert info.value.code == "INVALID_ARGUMENT"
    assert "limits[1].symbol" in info.value.details and "limits[1].warn_fraction" in info.value.details
    assert len(client.list_limits()) == 0
    with pytest.raises(ValueError, match="MAX_ORDER_QUANTITY"):  # the message lists the valid names
        client.upsert_limits(LimitSpec("x", "MAX_ORDERS", 1))
    with pytest.raises(ValueError, match="limits\\[0\\]"):
        client.upsert_limits({"limit_id": "x", "kind": 1, "threshold": 1, "colour": "red"})


def test_trading_states(client: RiskClient, engine_server) -> None:
    eng = engine_server.engine
    client.update_prices({"S": 10.0})
    client.load_positions([("A", "S", 10.0)])

    halted = client.halt("A", reason="ops ticket 1")
    assert halted.previous == "ACTIVE" and halted.persisted is True
    assert engine_server.call(eng.trading_state, "A") == 3
    r = client.check([Order("h1", "A", "S", "BUY", 1), Order("h2", "B", "S", "BUY", 1)])
    assert r.accepted == [False, True]
    assert r[0].failed_checks == ("TRADING_HALTED",)

    assert client.reduce_only("A").previous == "HALTED"
    r = client.check([Order("r1", "A", "S", "BUY", 1), Order("r2", "A", "S", "SELL", 5)])
    assert r.accepted == [False, True]
    assert r[0].failed_checks == ("REDUCE_ONLY",)

    assert client.resume("A").previous == "REDUCING"
    assert client.check(Order("r3", "A", "S", "BUY", 1)).all_accepted

    firm = client.halt(reason="firm-wide drill")
    assert firm.previous == "ACTIVE"
    assert engine_server.call(eng.trading_state, "") == 3
    assert client.check(Order("f1", "B", "S", "BUY", 1))[0].failed_checks == ("TRADING_HALTED",)
    assert client.set_trading_state("active").previous == "HALTED"
    with pytest.raises(ValueError):
        client.set_trading_state("PAUSED")
    with pytest.raises(RiskdError) as info:
        client.set_trading_state(0)
    assert info.value.code == "INVALID_ARGUMENT" and "state" in info.value.details


# ---------------------------------------------------------------------------------------- connection errors


def test_unreachable_server_raises_unavailable() -> None:
    target = f"127.0.0.1:{free_port()}"
    with RiskClient(target, timeout=5.0) as c:
        with pytest.raises(RiskdError) as info:
            c.check(Order("u1", "A", "S", "BUY", 1))
        assert info.value.code == "UNAVAILABLE"
        assert info.value.describe() == f"cannot reach server at {target} (UNAVAILABLE)"
        with pytest.raises(RiskdError, match="UNAVAILABLE"):
            c.wait_ready(timeout=0.2)


def test_hung_server_hits_the_deadline() -> None:
    """A peer that accepts TCP but never speaks HTTP/2 must not stall the caller past its timeout."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        target = f"127.0.0.1:{hung.getsockname()[1]}"
        with RiskClient(target, timeout=0.3) as c, pytest.raises(RiskdError) as info:
            c.list_limits()
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert str(info.value) == f"ListLimits: no answer from {target} in time (DEADLINE_EXCEEDED)"


def test_shared_channel_is_left_open(engine_server) -> None:
    channel = grpc.insecure_channel(engine_server.target)
    try:
        with RiskClient(channel=channel) as c:
            c.wait_ready()
            assert len(c.list_limits()) == 0
        with RiskClient(channel=channel) as c:  # still usable after the first client closed
            assert len(c.list_limits()) == 0
    finally:
        channel.close()


def test_fills_of_unknown_orders_name_their_account_symbol_and_side(
    client: RiskClient, engine_server
) -> None:
    """Execution's keyword-only account, symbol and side reach the server only when some report
    names its order; a named fill of an unknown id moves that position."""
    eng = engine_server.engine
    assert not encode_executions([Execution("a", "FILL", 1, 2.0)]).account  # none named: no columns
    both = encode_executions([Execution("a", "FILL", 1, 2.0, account="V", side="b"), Execution("b", 2)])
    assert (list(both.account), list(both.symbol), list(both.side)) == (["V", ""], ["", ""], [1, 0])
    out = client.report_executions(
        [
            Execution("venue-1", "FILL", 3, 20.0, account="V", symbol="S", side="SELL"),
            Execution("venue-2", "FILL", 1, 20.0),
            Execution("venue-3", "FILL", 1, 20.0, account="V", symbol="S"),
        ]
    )
    assert out.applied == (True, False, False)
    assert out.errors[0] == "unknown order: position updated"
    assert out.failed() == [(1, "venue-2", out.errors[1]), (2, "venue-3", out.errors[2])]
    assert "unknown client_order_id" in out.errors[1] and "side BUY or SELL" in out.errors[2]
    assert engine_server.call(eng.position, "V", "S") == -3.0
    columns = client.report_executions(
        {
            "client_order_id": ["venue-4"],
            "type": ["FILL"],
            "quantity": np.array([5.0]),
            "price": [20.0],
            "account": np.array(["V"]),
            "symbol": ["S"],
            "side": [1],
        }
    )
    assert columns.applied == (True,) and engine_server.call(eng.position, "V", "S") == 2.0
    with pytest.raises(RiskdError) as info:
        client.report_executions(
            {
                "client_order_id": ["a", "b"],
                "type": [1, 1],
                "account": ["V"],
                "symbol": ["S", "S"],
                "side": [1, 1],
            }
        )
    assert info.value.code == "INVALID_ARGUMENT" and info.value.details.startswith("account:")
    with pytest.raises(ValueError, match=r"executions.side\[0\]"):
        client.report_executions([Execution("x1", "FILL", 1, 1.0, account="V", symbol="S", side="UP")])


# ---------------------------------------------------------------------------------------- async client


def test_async_client_end_to_end(engine_server) -> None:
    eng = engine_server.engine

    async def scenario() -> None:
        async with AsyncRiskClient(engine_server.target) as c:
            await c.wait_ready()
            assert (await c.upsert_limits(qty_limit(100))).count == 1
            assert [lim.kind for lim in await c.list_limits(kind=1)] == ["MAX_ORDER_QUANTITY"]
            await c.update_prices({"S": 10.0})
            await c.load_positions([Position("A", "S", 3.0)])
            results = await c.check([Order("a1", "A", "S", "BUY", 10), Order("a2", "A", "S", "BUY", 500)])
            assert results.accepted == [True, False]
            assert results[1].reasons[0].check == "MAX_ORDER_QUANTITY"
            cols = await c.check_columns(
                client_order_id=np.array(["a3"]), account=["A"], symbol=["S"], side=["SELL"], quantity=[1.0]
            )
            assert cols.all_accepted

            async def batches() -> AsyncIterator[list[Order]]:
                for i in range(4):
                    yield [Order(f"st{i}-{j}", "A", "S", "BUY", 1) for j in range(i + 1)]

            streamed = [r async for r in c.check_stream(batches())]
            assert [len(r) for r in streamed] == [1, 2, 3, 4]
            assert streamed[2].client_order_ids == ["st2-0", "st2-1", "st2-2"]

            bad = [
                [Order("sx", "A", "S", "BUY", 1)],
                {"client_order_id": ["sy"], "account": ["A"], "symbol": []},
            ]
            seen = []
            with pytest.raises(ValueError, match="missing column"):
                async for r in c.check_stream(bad):
                    seen.append(r)
            assert len(seen) == 1

            out = await c.report_executions([Execution("a1", "FILL", 10, 10.0)])
            assert out.applied == (True,)
            named = await c.report_executions(
                Execution("gone", "FILL", 2, 10.0, account="Q", symbol="S", side=1)
            )
            assert named.errors == ("unknown order: position updated",)
            assert (await c.halt("A", "async")).previous == "ACTIVE"
            assert (await c.check(Order("a4", "A", "S", "BUY", 1)))[0].failed_checks == ("TRADING_HALTED",)
            assert (await c.reduce_only("A")).previous == "HALTED"
            assert (await c.resume("A")).previous == "REDUCING"
            deleted = await c.delete_limits(["qty", "nope"])
            assert deleted.not_found == ("nope",)

            with pytest.raises(RiskdError) as info:
                await c.check_columns(
                    client_order_id=["z1", "z2"],
                    account=["A"],
                    symbol=["S", "S"],
                    side=[1, 1],
                    quantity=[1, 1],
                )
            assert info.value.code == "INVALID_ARGUMENT" and "orders.account" in info.value.details

        async with AsyncRiskClient(f"127.0.0.1:{free_port()}") as down:
            with pytest.raises(RiskdError) as info:
                await down.list_limits()
            assert info.value.code == "UNAVAILABLE"
            with pytest.raises(RiskdError):
                await down.wait_ready(timeout=0.2)

    asyncio.run(scenario())
    assert engine_server.call(eng.position, "A", "S") == 13.0
    assert engine_server.call(eng.position, "Q", "S") == 2.0


# ---------------------------------------------------------------------------------------- packaging


BLOCKER = textwrap.dedent(
    """
    import sys

    BLOCKED = {"numpy", "numba", "psycopg", "psycopg_pool", "riskd_server", "pandas", "grpc_health"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def run_blocked(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter where the server-side packages cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )


def test_client_imports_without_server_dependencies() -> None:
    proc = run_blocked(
        """
        import riskd_client, riskd_client.cli, riskd_client.aio_client
        import numpy  # the blocker must actually block, or this test proves nothing
        """
    )
    assert "blocked for this test: numpy" in proc.stderr, proc.stderr
    proc = run_blocked(
        """
        import sys
        import riskd_client, riskd_client.cli
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_client_works_without_server_dependencies(engine_server) -> None:
    proc = run_blocked(
        """
        import sys
        from riskd_client import Order, RiskClient
        with RiskClient(sys.argv[1]) as c:
            c.update_prices({"S": 5.0})
            r = c.check([Order("np1", "A", "S", "BUY", 2)])
            print(r.accepted, r[0].client_order_id)
        """,
        engine_server.target,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[True]", "np1"]
