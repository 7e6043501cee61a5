"""The full riskd server (PostgreSQL store, write-behind, health) through the real client.

test_client.py covers the client against an engine-only server; these tests prove the wiring in
riskd_server.server: what the client sees end to end, that mutations are linearizable under
concurrent callers, that health reports SERVING, and that a graceful restart on the same
database recovers every kind of state.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest
from fix_pg import admin
from fix_server import RiskdServer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskd_client import AsyncRiskClient, Execution, LimitSpec, Order, RiskClient, RiskdError

SERVICE = "riskd.v1.RiskService"


@pytest.fixture
def client(riskd_server: RiskdServer) -> Iterator[RiskClient]:
    with RiskClient(riskd_server.target, timeout=10.0) as c:
        yield c


def bit(kind: int) -> int:
    return 1 << kind


# ---------------------------------------------------------------------------------------- checks

# kind name, RiskCheck number, limit scope, orders (the last one is the offender), (observed, threshold)
KIND_CASES: list[tuple[str, int, dict[str, str], float, list[Order], tuple[float, float]]] = [
    ("MAX_ORDER_QUANTITY", 1, {}, 100, [Order("q1", "QA", "S", "BUY", 150, 10)], (150, 100)),
    ("MAX_ORDER_NOTIONAL", 2, {}, 1000, [Order("n1", "NA", "S", "BUY", 200, 10)], (2000, 1000)),
    ("MAX_POSITION", 3, {"symbol": "S"}, 100, [Order("p1", "PA", "S", "BUY", 20, 10)], (110, 100)),
    ("MAX_GROSS_EXPOSURE", 4, {}, 500, [Order("g1", "GA", "S", "BUY", 100, 10)], (1000, 500)),
    ("MAX_NET_EXPOSURE", 5, {}, 500, [Order("e1", "EA", "S", "SELL", 60, 10)], (600, 500)),
    ("PRICE_COLLAR", 6, {"symbol": "S"}, 0.05, [Order("c1", "CA", "S", "BUY", 1, 11)], (0.1, 0.05)),
    (
        "MAX_ORDER_RATE",
        7,
        {},
        2,
        [Order(f"r{i}", "RA", "S", "BUY", 1, 10) for i in range(3)],
        (3, 2),
    ),
    (
        "MAX_OPEN_ORDERS",
        8,
        {},
        1,
        [Order("o1", "OA", "S", "BUY", 1, 10), Order("o2", "OA", "S", "BUY", 1, 10)],
        (2, 1),
    ),
    ("RESTRICTED_SYMBOL", 9, {"symbol": "S"}, 0, [Order("x1", "XA", "S", "BUY", 1, 10)], (1, 0)),
]


def test_every_configurable_limit_kind_rejects_with_its_bit_and_fields(client: RiskClient) -> None:
    """Each limit kind, scoped to its own account, rejects exactly the offending order, sets its
    own reject bit and reports limit id, observed value and threshold."""
    client.update_prices({"S": 10.0})
    client.load_positions([("PA", "S", 90.0)])
    limits = [
        LimitSpec(f"lim-{name.lower()}", name, threshold, account=orders[0].account, **scope)
        for name, _, scope, threshold, orders, _ in KIND_CASES
    ]
    assert client.upsert_limits(limits).persisted is True
    for name, kind, _, _, orders, (observed, threshold) in KIND_CASES:
        results = client.check(orders)
        assert results.accepted == [True] * (len(orders) - 1) + [False], name
        last = results[len(orders) - 1]
        assert last.reject_mask == bit(kind), name
        (v,) = last.reasons
        assert (v.check, v.code, v.limit_id, v.warning) == (name, kind, f"lim-{name.lower()}", False)
        assert v.observed == pytest.approx(observed) and v.threshold == pytest.approx(threshold), name


def test_warnings_and_the_account_level_var_kind(client: RiskClient) -> None:
    """warn_fraction flags an accepted order; MAX_VAR is account-level: a symbol is refused."""
    client.update_prices({"S": 10.0})
    with pytest.raises(RiskdError) as info:
        client.upsert_limits([LimitSpec("var", "MAX_VAR", 0, account="WA", symbol="S")])
    assert info.value.code == "INVALID_ARGUMENT"
    assert "limits[0].symbol: account-level kind MAX_VAR takes no symbol" in info.value.details
    client.upsert_limits([LimitSpec("warn-qty", "MAX_ORDER_QUANTITY", 100, account="WA", warn_fraction=0.5)])
    assert {lim.limit_id for lim in client.list_limits(account="WA")} == {"warn-qty"}
    results = client.check([Order("w1", "WA", "S", "BUY", 60, 10), Order("w2", "WA", "S", "BUY", 10, 10)])
    assert results.accepted == [True, True] and results.reject_mask == [0, 0]
    (warned,) = results.warned()
    assert warned.index == 0
    (v,) = warned.warnings
    assert (v.check, v.limit_id, v.observed, v.threshold) == ("MAX_ORDER_QUANTITY", "warn-qty", 60, 100)


def test_unequal_columns_and_oversized_batches_are_invalid_argument(
    client: RiskClient, riskd_server: RiskdServer
) -> None:
    columns: dict[str, Any] = {
        "client_order_id": ["u1", "u2"],
        "account": ["A", "A"],
        "symbol": ["S"],
        "side": [1, 1],
        "quantity": [1.0, 1.0],
    }
    with pytest.raises(RiskdError) as info:
        client.check(columns)
    assert info.value.code == "INVALID_ARGUMENT"
    assert "orders.symbol" in info.value.details

    n = riskd_server.settings.max_batch + 1
    with pytest.raises(RiskdError) as info:
        client.check([Order(f"big{i}", "A", "S", "BUY", 1, 10) for i in range(n)])
    assert info.value.code == "INVALID_ARGUMENT"
    assert "max-batch" in info.value.details and str(n) in info.value.details
    # Nothing of either request was applied: both ids are still free.
    assert client.check(
        [Order("u1", "A", "S", "BUY", 1, 10), Order("big0", "A", "S", "BUY", 1, 10)]
    ).all_accepted


def test_stream_answers_in_order_and_names_the_bad_message(client: RiskClient) -> None:
    client.update_prices({"S": 10.0})
    batches = [[Order(f"s{i}-{j}", "A", "S", "BUY", 1) for j in range(i)] for i in (1, 4, 0, 2)]
    results = list(client.check_stream(batches))
    assert [r.client_order_ids for r in results] == [[o.client_order_id for o in b] for b in batches]
    assert all(r.all_accepted for r in results)
    versions = [r.state_version for r in results]
    assert versions == sorted(set(versions))

    bad = {"client_order_id": ["b1"], "account": ["A"], "symbol": ["S"], "side": [1], "quantity": []}
    seen = []
    with pytest.raises(RiskdError) as info:
        for result in client.check_stream(
            [[Order("ok1", "A", "S", "BUY", 1)], [Order("ok2", "A", "S", "BUY", 1)], bad]
        ):
            seen.append(result)
    assert [r.client_order_ids for r in seen] == [["ok1"], ["ok2"]]
    assert info.value.code == "INVALID_ARGUMENT"
    assert "message[2].orders.quantity" in info.value.details


def test_stream_of_raw_messages_one_reply_each_and_a_malformed_one_named(riskd_server: RiskdServer) -> None:
    """CheckOrderStream takes serialized messages (one order each on the scalar path, a batch, a
    non-ASCII order for protobuf) and answers each in order; a malformed one ends the stream with
    INVALID_ARGUMENT naming it, after the replies to the ones before."""
    from riskd.v1 import risk_pb2 as pb

    def message(ids: list[str], account: str = "A") -> bytes:
        n = len(ids)
        batch = pb.OrderBatch(
            client_order_id=ids, account=[account] * n, symbol=["S"] * n, side=[1] * n, quantity=[1.0] * n
        )
        batch.price.extend([10.0] * n)
        return pb.CheckOrderStreamRequest(orders=batch).SerializeToString()

    messages = [message(["r1"]), message(["r2", "r3"]), message(["r4"], account="Ä"), message(["r1"])]
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        client.update_prices({"S": 10.0})
    with grpc.insecure_channel(riskd_server.target) as channel:
        call = channel.stream_stream(f"/{SERVICE}/CheckOrderStream")
        replies = [pb.CheckOrderStreamResponse.FromString(r).result for r in call(iter(messages), timeout=10)]
        assert [list(r.accepted) for r in replies] == [[True], [True, True], [True], [False]]
        assert [v.check for v in replies[3].violations] == [21]  # RISK_CHECK_DUPLICATE_ORDER_ID
        versions = [r.state_version for r in replies]
        assert versions == sorted(set(versions))

        seen = []
        with pytest.raises(grpc.RpcError) as info:
            for reply in call(iter([message(["r5"]), b"\x0a\x05\x0a\x03ab", message(["r6"])]), timeout=10):
                seen.append(reply)
        assert len(seen) == 1
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith("message[1]: malformed CheckOrderStreamRequest")


# ---------------------------------------------------------------------------------------- executions, prices, positions


def test_executions_prices_and_positions(client: RiskClient, riskd_server: RiskdServer) -> None:
    eng = riskd_server.running.engine  # type: ignore[union-attr]
    assert client.check(Order("m0", "A", "S", "BUY", 1))[0].failed_checks == ("NO_REFERENCE_PRICE",)
    assert client.update_prices({"S": 10.0, "T": 5.0}).count == 2
    assert client.check(
        [Order("x1", "A", "S", "BUY", 10), Order("x2", "A", "S", "SELL", 4, 9.5)]
    ).all_accepted

    out = client.report_executions(
        [
            Execution("x1", "FILL", 6, 10.0),
            Execution("x2", "CANCELED"),
            Execution("ghost", "FILL", 1, 1.0),
            Execution("x1", "FILL", 7, 10.0),  # 4 left open: an overfill, applied with a note
        ]
    )
    assert out.applied == (True, True, False, True)
    assert out.errors[:2] == ("", "")
    assert "unknown client_order_id" in out.errors[2]
    assert out.errors[3].startswith("overfill")
    assert riskd_server.call(eng.position, "A", "S") == 13.0
    late = client.report_executions([Execution("x2", "FILL", 1, 10.0), Execution("x2", "CANCELED")])
    assert late.applied == (True, False)  # a fill racing the cancel still moves the position
    assert late.errors[0].startswith("late fill") and "closed" in late.errors[1]
    assert riskd_server.call(eng.position, "A", "S") == 12.0

    change = client.load_positions([("A", "S", -3.0), ("B", "T", 7.0)])
    assert (change.count, change.persisted) == (2, True)
    assert riskd_server.call(eng.position, "A", "S") == -3.0
    assert riskd_server.call(eng.position, "B", "T") == 7.0
    with pytest.raises(RiskdError) as info:
        client.update_prices({"S": 0.0})
    assert info.value.code == "INVALID_ARGUMENT" and "price[0]" in info.value.details


def test_fills_of_unknown_orders_move_named_positions_and_survive_a_restart(
    riskd_server: RiskdServer, fresh_dsn: str
) -> None:
    """A fill for an order riskd never saw (entered around it) that names its account, symbol and
    side moves that position, is persisted like any fill and is there after a restart; without
    the names, or for a cancel, it stays "unknown" as before."""
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        client.update_prices({"S": 10.0})
        out = client.report_executions(
            [
                Execution("venue-1", "FILL", 4, 10.5, account="V", symbol="S", side="BUY"),
                Execution("venue-2", "FILL", 1, 10.0),
                Execution("venue-3", "FILL", 2, 11.0, account="V", symbol="NEW", side="SELL"),
                Execution("venue-4", "CANCELED", account="V", symbol="S", side="BUY"),
                Execution("venue-5", "FILL", 1, 10.0, account="V", side="BUY"),
            ]
        )
        assert out.applied == (True, False, True, False, False)
        assert out.errors[0] == out.errors[2] == "unknown order: position updated"
        assert out.errors[1].startswith("unknown client_order_id")
        assert out.errors[3].startswith("unknown client_order_id")
        assert out.errors[4].startswith("unknown order: a fill needs all of account and symbol")
        # The position feeds the checks at once: 4 held + 2 bought > 5.
        client.upsert_limits(LimitSpec("vpos", "MAX_POSITION", 5, account="V"))
        assert client.check(Order("v1", "V", "S", "BUY", 2, 10))[0].failed_checks == ("MAX_POSITION",)

    riskd_server.restart()  # a graceful stop flushes everything first
    with admin(fresh_dsn) as conn:
        rows = conn.execute(
            "SELECT client_order_id, applied, error FROM executions WHERE client_order_id LIKE 'venue-%'"
            " ORDER BY id"
        ).fetchall()
        assert [(cid, ok) for cid, ok, _ in rows] == [
            ("venue-1", True), ("venue-2", False), ("venue-3", True), ("venue-4", False), ("venue-5", False)
        ]  # fmt: skip
        assert rows[0][2] == "unknown order: position updated"
        # No order row: an order forgotten past the retention must not come back to life.
        assert conn.execute(
            "SELECT count(*) FROM orders WHERE client_order_id LIKE 'venue-%'"
        ).fetchone() == (0,)
    eng = riskd_server.running.engine  # type: ignore[union-attr]
    assert riskd_server.call(eng.position, "V", "S") == 4.0
    assert riskd_server.call(eng.position, "V", "NEW") == -2.0
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        # NEW's only price is the unknown fill's, kept as its last fill price: market orders work.
        assert client.check(Order("v2", "V", "NEW", "BUY", 1)).all_accepted
        # The id stays unknown (no order row was made): another named fill applies again.
        again = client.report_executions(
            Execution("venue-1", "FILL", 1, 10.0, account="V", symbol="S", side=1)
        )
        assert again.applied == (True,) and riskd_server.call(eng.position, "V", "S") == 5.0


# ---------------------------------------------------------------------------------------- limits, trading state


def test_limits_crud_and_all_or_nothing_validation(client: RiskClient) -> None:
    first = client.upsert_limits(
        [
            LimitSpec("b", "MAX_ORDER_QUANTITY", 10, account="A", description="desk"),
            LimitSpec("a", "PRICE_COLLAR", 0.05, symbol="S", warn_fraction=0.5),
        ]
    )
    assert (first.count, first.persisted) == (2, True)
    listing = client.list_limits()
    assert [lim.limit_id for lim in listing] == ["a", "b"] and listing.limits_version == first.limits_version
    assert listing.by_id()["b"] == LimitSpec("b", "MAX_ORDER_QUANTITY", 10, account="A", description="desk")
    assert [lim.limit_id for lim in client.list_limits(kind="PRICE_COLLAR")] == ["a"]

    with pytest.raises(RiskdError) as info:
        client.upsert_limits(
            [
                LimitSpec("c", "MAX_ORDER_QUANTITY", 1),
                LimitSpec("d", "MAX_OPEN_ORDERS", 5, account="A", symbol="S"),  # account-level kind
            ]
        )
    assert info.value.code == "INVALID_ARGUMENT"
    assert "limits[1].symbol" in info.value.details
    after = client.list_limits()
    assert [lim.limit_id for lim in after] == ["a", "b"] and after.limits_version == first.limits_version

    deleted = client.delete_limits(["b", "nope"])
    assert (deleted.count, deleted.not_found, deleted.persisted) == (1, ("nope",), True)
    assert [lim.limit_id for lim in client.list_limits()] == ["a"]


def test_trading_states_firm_wide_and_per_account(client: RiskClient) -> None:
    client.update_prices({"S": 10.0})
    client.load_positions([("A", "S", 10.0)])
    assert client.halt("A", reason="ticket").previous == "ACTIVE"
    r = client.check([Order("h1", "A", "S", "BUY", 1), Order("h2", "B", "S", "BUY", 1)])
    assert r.accepted == [False, True] and r[0].reject_mask == bit(22)

    assert client.reduce_only("A").previous == "HALTED"
    r = client.check([Order("r1", "A", "S", "BUY", 1), Order("r2", "A", "S", "SELL", 5)])
    assert r.accepted == [False, True] and r[0].reject_mask == bit(23)
    assert client.resume("A").previous == "REDUCING"

    assert client.halt(reason="drill").previous == "ACTIVE"
    r = client.check([Order("f1", "A", "S", "SELL", 1), Order("f2", "B", "S", "BUY", 1)])
    assert r.accepted == [False, False] and r.reject_mask == [bit(22), bit(22)]
    assert client.reduce_only().previous == "HALTED"
    r = client.check([Order("f3", "B", "S", "BUY", 1), Order("f4", "A", "S", "SELL", 1)])
    assert r.accepted == [False, True]
    assert client.resume().previous == "REDUCING"
    assert client.check(Order("f5", "B", "S", "BUY", 1)).all_accepted


# ---------------------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize(
    ("limit", "allowed"),
    [
        (LimitSpec("open", "MAX_OPEN_ORDERS", 7, account="C"), 7),
        (LimitSpec("pos", "MAX_POSITION", 10, account="C", symbol="S"), 10),
    ],
)
def test_concurrent_checks_are_linearizable(
    riskd_server: RiskdServer, limit: LimitSpec, allowed: int
) -> None:
    """60 single-order CheckOrders from 4 channels at once: exactly `allowed` pass, never more."""

    async def main() -> list[bool]:
        clients = [AsyncRiskClient(riskd_server.target, timeout=20.0) for _ in range(4)]
        try:
            await clients[0].update_prices({"S": 10.0})
            await clients[0].upsert_limits(limit)
            calls = [clients[i % 4].check(Order(f"c{i}", "C", "S", "BUY", 1)) for i in range(60)]
            results = await asyncio.gather(*calls)
        finally:
            for c in clients:
                await c.close()
        return [r[0].accepted for r in results]

    accepted = asyncio.run(main())
    assert sum(accepted) == allowed
    assert riskd_server.call(riskd_server.running.engine.open_orders) == allowed  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------- health


def test_health_reports_serving(riskd_server: RiskdServer) -> None:
    with grpc.insecure_channel(riskd_server.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------------------------------- shutdown


@pytest.mark.parametrize("riskd_settings", [{"grace": 10.0}])
def test_stop_ends_idle_streams_without_waiting_for_the_grace(riskd_server: RiskdServer) -> None:
    """An open CheckOrderStream and a health Watch must not hold a graceful stop for the grace."""
    client = RiskClient(riskd_server.target, timeout=10.0)
    channel = grpc.insecure_channel(riskd_server.target)
    try:
        client.update_prices({"S": 10.0})
        go_on = threading.Event()

        def batches() -> Iterator[list[Order]]:
            yield [Order("st1", "A", "S", "BUY", 1)]
            go_on.wait(30)  # idle: the server waits for the next message

        stream = client.check_stream(batches())
        assert next(stream).all_accepted
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        started = time.monotonic()
        riskd_server.stop()
        took = time.monotonic() - started
        go_on.set()
        assert took < 3.0, f"stop waited {took:.1f}s for idle streams (grace 10s)"

        with pytest.raises(RiskdError) as info:
            next(stream)
        assert info.value.code == "UNAVAILABLE" and "shutting down" in info.value.details
        statuses = []
        with pytest.raises(grpc.RpcError) as rpc:
            statuses.extend(reply.status for reply in watch)
        assert statuses == [health_pb2.HealthCheckResponse.NOT_SERVING]
        assert rpc.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()
        client.close()


def test_stop_lets_an_in_flight_admin_call_finish(riskd_server: RiskdServer, fresh_dsn: str) -> None:
    """A limit upsert waiting for its commit (table locked) completes OK and persisted across a stop."""
    client = RiskClient(riskd_server.target, timeout=20.0)
    outcome: list[Any] = []
    try:
        with admin(fresh_dsn) as conn, conn.transaction():
            conn.execute("LOCK TABLE limits IN ACCESS EXCLUSIVE MODE")
            caller = threading.Thread(
                target=lambda: outcome.append(
                    client.upsert_limits(LimitSpec("late", "MAX_ORDER_QUANTITY", 5))
                )
            )
            caller.start()
            deadline = time.monotonic() + 10
            while riskd_server.call(lambda: len(riskd_server.running.engine.list_limits())) == 0:  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                time.sleep(0.01)
            stopper = threading.Thread(target=riskd_server.stop)
            stopper.start()
            time.sleep(0.3)  # the stop is now waiting for the call, which waits for the lock
            assert caller.is_alive()
        stopper.join(20)
        caller.join(20)
        assert not stopper.is_alive()
        assert len(outcome) == 1 and outcome[0].persisted is True
        with admin(fresh_dsn) as conn:
            assert conn.execute("SELECT limit_id FROM limits").fetchall() == [("late",)]
    finally:
        client.close()


# ---------------------------------------------------------------------------------------- restart


def test_graceful_restart_recovers_everything(riskd_server: RiskdServer) -> None:
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        client.update_prices({"S": 10.0, "M": 50.0})
        client.load_positions([("A", "S", 5.0)])
        client.upsert_limits(
            [
                LimitSpec("qty", "MAX_ORDER_QUANTITY", 100, account="A"),
                LimitSpec("opens", "MAX_OPEN_ORDERS", 3, account="B"),
            ]
        )
        assert client.check(
            [Order("o1", "A", "S", "BUY", 8, 10), Order("o2", "B", "S", "SELL", 2, 10)]
        ).all_accepted
        assert client.report_executions([Execution("o1", "FILL", 3, 10)]).all_applied  # 5 left open
        assert client.check(
            [Order("b1", "B", "S", "BUY", 1, 10), Order("b2", "B", "S", "BUY", 1, 10)]
        ).all_accepted
        client.halt("H", reason="before restart")
        client.reduce_only(reason="firm reduce-only")
        client.resume()
        client.reduce_only("R")

    riskd_server.restart()
    eng = riskd_server.running.engine  # type: ignore[union-attr]

    with RiskClient(riskd_server.target, timeout=10.0) as client:
        assert riskd_server.call(eng.position, "A", "S") == 8.0
        assert riskd_server.call(eng.open_quantity, "o1") == 5.0
        assert riskd_server.call(eng.trading_state, "H") == 3
        assert riskd_server.call(eng.trading_state, "R") == 2
        assert riskd_server.call(eng.trading_state, "") == 1
        assert {lim.limit_id for lim in client.list_limits()} == {"qty", "opens"}

        # Open orders: o1 has exactly 5 left (a fill of 5 is no overfill; it closes the order).
        fill = client.report_executions([Execution("o1", "FILL", 5, 10)])
        assert fill.applied == (True,) and fill.errors == ("",)
        assert riskd_server.call(eng.position, "A", "S") == 13.0
        # B has 3 open orders: the limit of 3 rejects the next one.
        r = client.check(Order("b3", "B", "S", "BUY", 1, 10))
        assert r[0].failed_checks == ("MAX_OPEN_ORDERS",)
        # Marks: a market order needs no new price; the quantity limit still applies.
        r = client.check([Order("mk1", "A", "M", "BUY", 1), Order("mk2", "A", "M", "BUY", 101)])
        assert r.accepted == [True, False] and r[1].failed_checks == ("MAX_ORDER_QUANTITY",)
        # Trading states.
        assert client.check(Order("h1", "H", "S", "BUY", 1, 10))[0].failed_checks == ("TRADING_HALTED",)
        assert client.check(Order("r1", "R", "S", "BUY", 1, 10))[0].failed_checks == ("REDUCE_ONLY",)
        # Duplicate ids: open (o2), closed (o1) and accepted-then-filled are all remembered.
        r = client.check([Order("o2", "C", "S", "BUY", 1, 10), Order("o1", "C", "S", "BUY", 1, 10)])
        assert [x.failed_checks for x in r] == [("DUPLICATE_ORDER_ID",), ("DUPLICATE_ORDER_ID",)]


def test_restart_on_a_database_that_went_away_fails_cleanly(
    riskd_server: RiskdServer, fresh_dsn: str
) -> None:
    """start() against a dropped database raises a one-line StartupError and leaks nothing."""
    from riskd_server.server import StartupError, start

    riskd_server.stop()
    with admin(fresh_dsn, dbname="postgres") as conn:
        name = psycopg.conninfo.conninfo_to_dict(fresh_dsn)["dbname"]
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    settings = riskd_server.settings

    async def attempt() -> None:
        from dataclasses import replace

        with pytest.raises(StartupError, match="cannot connect to PostgreSQL") as info:
            await start(replace(settings, db_timeout=0.5))
        assert "\n" not in str(info.value)
        assert "password" not in str(info.value)

    riskd_server.run(attempt())


# ---------------------------------------------------------------------------------------- start-up failures


def backends(dsn: str) -> int:
    """Connections to dsn's database other than the one asking."""
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with admin(dsn, dbname="postgres") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def settled_backends(dsn: str, timeout: float = 5.0) -> int:
    """backends(dsn) once it reaches 0 or the timeout passes (a closed connection's backend
    lingers in pg_stat_activity for a moment)."""
    deadline = time.monotonic() + timeout
    while (count := backends(dsn)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_failed_recovery_closes_the_pool(riskd_server: RiskdServer, fresh_dsn: str) -> None:
    """start() failing after Store.open (a limit row the engine refuses) leaves no connection open."""
    from riskd_server.limits import LimitValidationError
    from riskd_server.server import start

    riskd_server.stop()
    with admin(fresh_dsn) as conn:
        conn.execute("INSERT INTO limits (limit_id, kind, threshold) VALUES ('broken', 99, 1)")
    assert settled_backends(fresh_dsn) == 0

    async def attempt() -> None:
        with pytest.raises(LimitValidationError, match="kind"):
            await start(riskd_server.settings)

    riskd_server.run(attempt())
    assert settled_backends(fresh_dsn) == 0


def test_failed_start_stops_the_embedded_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the embedded cluster started (here: the kernel warm-up) stops it again."""
    import shutil

    from fix_pg import embedded_dir
    from fix_server import server_settings
    from test_serve_process import postgres_processes

    from riskd_server import server as server_module

    def broken_warm_up() -> float:
        raise RuntimeError("warm-up failed")

    monkeypatch.setattr(server_module, "warm_up", broken_warm_up)
    data_dir = embedded_dir("riskd-fail-")
    try:
        settings = server_settings("", data_dir=str(data_dir))

        async def attempt() -> None:
            with pytest.raises(RuntimeError, match="warm-up failed"):
                await server_module.start(settings)

        asyncio.run(attempt())
        assert (data_dir / "pg" / "PG_VERSION").exists()  # the cluster did start
        assert postgres_processes(data_dir) == []
    finally:
        for proc in postgres_processes(data_dir):
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_malformed_dsn_fails_at_once() -> None:
    from riskd_server.server import StartupError, _probe_database

    started = time.monotonic()
    with pytest.raises(StartupError, match="invalid PostgreSQL DSN"):
        asyncio.run(_probe_database("host=x nonsense_option=1", timeout=30))
    assert time.monotonic() - started < 5
