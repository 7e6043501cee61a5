"""GetRiskSnapshot and StreamRiskSnapshots through the full server and the real clients: contents
against known positions, orders, limits and marks (exact numbers); the stream's first full
response, changed accounts only, coalescing, its interval, silence while idle, cancellation
leaving no subscriber behind, and a subscriber that stops reading staying bounded."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from fix_server import RiskdServer

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc
from riskd_client import (
    AccountSnapshot,
    AsyncRiskClient,
    LimitSpec,
    LimitUtilisation,
    Order,
    PositionSnapshot,
    RiskClient,
    RiskdError,
    RiskSnapshot,
)
from riskd_server.snapshots import SnapshotHub


@pytest.fixture
def client(riskd_server: RiskdServer) -> Iterator[RiskClient]:
    with RiskClient(riskd_server.target, timeout=10.0) as c:
        yield c


def hub(server: RiskdServer) -> SnapshotHub:
    assert server.running is not None and server.running.snapshots is not None
    return server.running.snapshots


def subscribers(server: RiskdServer) -> int:
    h = hub(server)
    return server.call(lambda: h.stats().subscribers)


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def desk(client: RiskClient) -> None:
    """ACC1: AAPL 100 @ 200, MSFT -25 @ 400, an open buy of 20 AAPL @ 201; ACC2: AAPL 10, an open
    sell of 4 AAPL at the mark, reduce-only; limits of every reported kind and two that are not."""
    client.update_prices({"AAPL": 200.0, "MSFT": 400.0})
    client.load_positions([("ACC1", "AAPL", 100), ("ACC1", "MSFT", -25), ("ACC2", "AAPL", 10)])
    client.upsert_limits(
        [
            LimitSpec("gross-all", "MAX_GROSS_EXPOSURE", 50_000),
            LimitSpec("net-1", "MAX_NET_EXPOSURE", 20_000, account="ACC1"),
            LimitSpec("pos-aapl", "MAX_POSITION", 160, symbol="AAPL"),
            LimitSpec("pos-1-aapl", "MAX_POSITION", 150, account="ACC1", symbol="AAPL"),
            LimitSpec("open-2", "MAX_OPEN_ORDERS", 4, account="ACC2"),
            LimitSpec("qty", "MAX_ORDER_QUANTITY", 1_000),
            LimitSpec("off", "MAX_GROSS_EXPOSURE", 1, account="ACC2", disabled=True),
        ]
    )
    results = client.check(
        [Order("b1", "ACC1", "AAPL", "BUY", 20, 201), Order("s1", "ACC2", "AAPL", "SELL", 4)]
    )
    assert results.all_accepted
    client.reduce_only("ACC2")


ACC1 = AccountSnapshot(
    account="ACC1",
    gross=34_020.0,  # 20,000 + 10,000 + 20 x 201
    net=14_020.0,  # 20,000 - 10,000 + 4,020
    open_orders=1,
    positions=(
        PositionSnapshot("AAPL", 100.0, 200.0, 20_000.0),
        PositionSnapshot("MSFT", -25.0, 400.0, -10_000.0),
    ),
    trading_state="ACTIVE",
    closest_limits=(
        LimitUtilisation("pos-1-aapl", "MAX_POSITION", "AAPL", 120.0, 150.0, 0.8),
        LimitUtilisation("net-1", "MAX_NET_EXPOSURE", "", 14_020.0, 20_000.0, 14_020.0 / 20_000.0),
        LimitUtilisation("gross-all", "MAX_GROSS_EXPOSURE", "", 34_020.0, 50_000.0, 34_020.0 / 50_000.0),
    ),
)
ACC2 = AccountSnapshot(
    account="ACC2",
    gross=2_800.0,  # 2,000 + 4 x 200
    net=1_200.0,
    open_orders=1,
    positions=(PositionSnapshot("AAPL", 10.0, 200.0, 2_000.0),),
    trading_state="REDUCING",
    closest_limits=(
        LimitUtilisation("open-2", "MAX_OPEN_ORDERS", "", 1.0, 4.0, 0.25),
        LimitUtilisation("pos-aapl", "MAX_POSITION", "AAPL", 10.0, 160.0, 10.0 / 160.0),
        LimitUtilisation("gross-all", "MAX_GROSS_EXPOSURE", "", 2_800.0, 50_000.0, 2_800.0 / 50_000.0),
    ),
)


# ---------------------------------------------------------------------------------------- GetRiskSnapshot


def test_snapshot_contents_exact(client: RiskClient) -> None:
    desk(client)
    snap = client.risk_snapshot()
    assert snap.accounts == (ACC1, ACC2)
    assert snap.firm_trading_state == "ACTIVE" and snap.state_version > 0
    assert snap.by_account()["ACC2"] == ACC2


def test_named_unknown_and_repeated_accounts(client: RiskClient) -> None:
    desk(client)
    assert [a.account for a in client.risk_snapshot(["ACC2", "ghost", "ACC1", "ACC2"])] == ["ACC2", "ACC1"]
    assert client.risk_snapshot("ACC2").accounts == (ACC2,)  # a str is one account
    assert len(client.risk_snapshot(["ghost"])) == 0


def test_fill_moves_the_snapshot_and_a_symbol_without_mark_is_nan(client: RiskClient) -> None:
    desk(client)
    client.report_executions([("b1", "FILL", 5, 201.5)])  # AAPL's mark stays the UpdatePrices 200
    client.load_positions([("ACC3", "NOPX", -7)])
    snap = client.risk_snapshot(["ACC1", "ACC3"]).by_account()
    acc1 = snap["ACC1"]
    assert acc1.positions[0] == PositionSnapshot("AAPL", 105.0, 200.0, 21_000.0)
    assert acc1.gross == 21_000.0 + 10_000.0 + 15 * 201.0
    assert acc1.closest_limits[0] == LimitUtilisation("pos-1-aapl", "MAX_POSITION", "AAPL", 120.0, 150.0, 0.8)
    (p,) = snap["ACC3"].positions
    assert p.symbol == "NOPX" and p.quantity == -7.0 and math.isnan(p.mark) and math.isnan(p.value)
    assert snap["ACC3"].gross == 0.0


def test_snapshot_after_a_restart(riskd_server: RiskdServer) -> None:
    """The recovered engine (restored after the servicer and its hub were built) reads the same."""
    with RiskClient(riskd_server.target, timeout=10.0) as c:
        desk(c)
        before = c.risk_snapshot()
    riskd_server.restart()
    with RiskClient(riskd_server.target, timeout=10.0) as c:
        after = c.risk_snapshot()
    assert after.accounts == before.accounts == (ACC1, ACC2)


def test_async_client_and_firm_state(riskd_server: RiskdServer, client: RiskClient) -> None:
    desk(client)
    client.halt(reason="test")

    async def main() -> RiskSnapshot:
        async with AsyncRiskClient(riskd_server.target) as c:
            return await c.risk_snapshot(["ACC1"])

    snap = asyncio.run(main())
    assert snap.accounts == (ACC1,) and snap.firm_trading_state == "HALTED"


# ---------------------------------------------------------------------------------------- the stream


class Follow:
    """Reads a StreamRiskSnapshots into a queue with receive times (loop.time())."""

    def __init__(self, client: AsyncRiskClient, accounts: Any = (), interval_ms: int = 250) -> None:
        self.queue: asyncio.Queue[tuple[float, RiskSnapshot]] = asyncio.Queue()
        self._it: AsyncIterator[RiskSnapshot] = client.stream_risk_snapshots(accounts, interval_ms)
        self.task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        async for snap in self._it:
            self.queue.put_nowait((loop.time(), snap))

    async def next(self, timeout: float = 5.0) -> tuple[float, RiskSnapshot]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def silent_for(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.queue.get(), seconds)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self._it.aclose()  # type: ignore[attr-defined]


def names(snap: RiskSnapshot) -> list[str]:
    return sorted(a.account for a in snap.accounts)


def test_stream_full_first_then_changed_only_then_silent(
    riskd_server: RiskdServer, client: RiskClient
) -> None:
    desk(client)
    client.load_positions([("ACC3", "MSFT", 1)])

    async def main() -> None:
        async with AsyncRiskClient(riskd_server.target) as c:
            follow = Follow(c, interval_ms=50)
            _, first = await follow.next()
            assert names(first) == ["ACC1", "ACC2", "ACC3"]
            assert first.by_account()["ACC1"] == ACC1 and first.by_account()["ACC2"] == ACC2
            assert await follow.silent_for(0.4)  # nothing changed: nothing sent

            await c.update_prices({"AAPL": 210.0})  # ACC1 and ACC2 hold AAPL; ACC3 does not
            _, second = await follow.next()
            assert names(second) == ["ACC1", "ACC2"]
            assert second.by_account()["ACC1"].positions[0] == PositionSnapshot(
                "AAPL", 100.0, 210.0, 21_000.0
            )
            assert await follow.silent_for(0.4)

            await c.check([Order("x1", "ACC3", "MSFT", "SELL", 1, 400)])
            _, third = await follow.next()
            assert names(third) == ["ACC3"] and third.accounts[0].open_orders == 1
            assert third.state_version == (await c.risk_snapshot(["ACC3"])).state_version

            await c.check([Order("x2", "ACC3", "MSFT", "SELL", 1_000_000, 400)])  # rejected (qty)
            assert await follow.silent_for(0.4)  # a rejected order changes nothing here

            await c.halt(reason="firm")  # the firm-wide state: a response with no accounts
            _, fourth = await follow.next()
            assert fourth.accounts == () and fourth.firm_trading_state == "HALTED"
            await follow.close()

    asyncio.run(main())
    wait_for(lambda: subscribers(riskd_server) == 0)


def test_stream_coalesces_a_burst_and_respects_the_interval(
    riskd_server: RiskdServer, client: RiskClient
) -> None:
    desk(client)
    client.load_positions([("ACC3", "MSFT", 1)])
    interval = 0.3

    async def main() -> None:
        async with AsyncRiskClient(riskd_server.target) as c:
            follow = Follow(c, interval_ms=int(interval * 1000))
            await follow.next()
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(40):  # 80 changes to ACC1 and ACC2 over more than a second
                await c.update_prices({"AAPL": 200.0 + i})
                await c.check([Order(f"c{i}", "ACC1", "MSFT", "SELL", 1, 10)])
                await asyncio.sleep(0.02)
            burst = loop.time() - start
            got: list[tuple[float, RiskSnapshot]] = []
            while True:
                try:
                    got.append(await follow.next(timeout=2 * interval))
                except TimeoutError:
                    break
            await follow.close()
            assert 2 <= len(got) <= burst / interval + 2, (len(got), burst)  # coalesced, not 80
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(got)]
            assert min(gaps) >= interval - 0.03, gaps  # at most one response per interval
            assert all(names(snap) in (["ACC1"], ["ACC2"], ["ACC1", "ACC2"]) for _, snap in got)
            final = (await c.risk_snapshot(["ACC1", "ACC2"])).by_account()
            last = {}
            for _, snap in got:
                last.update(snap.by_account())
            assert last == final  # what a follower holds in the end is the state now
            assert final["ACC1"].open_orders == 41 and final["ACC1"].positions[0].mark == 239.0

    asyncio.run(main())
    wait_for(lambda: subscribers(riskd_server) == 0)


def test_stream_of_named_accounts_sees_an_account_appear(
    riskd_server: RiskdServer, client: RiskClient
) -> None:
    desk(client)

    async def main() -> None:
        async with AsyncRiskClient(riskd_server.target) as c:
            follow = Follow(c, ["ACC2", "LATER"], interval_ms=20)
            _, first = await follow.next()
            assert first.accounts == (ACC2,)
            await c.update_prices({"MSFT": 401.0})  # ACC1 only: not followed
            assert await follow.silent_for(0.3)
            await c.load_positions([("LATER", "MSFT", 2)])
            _, second = await follow.next()
            assert names(second) == ["LATER"] and second.accounts[0].gross == 802.0
            await follow.close()

    asyncio.run(main())
    wait_for(lambda: subscribers(riskd_server) == 0)


def test_cancelled_streams_leave_no_subscriber(riskd_server: RiskdServer, client: RiskClient) -> None:
    desk(client)
    streams = [client.stream_risk_snapshots(accounts) for accounts in ((), "ACC1", ["ACC2", "x"])]
    for it in streams:
        next(it)
    assert subscribers(riskd_server) == 3
    for it in streams:
        it.close()  # cancels the call
    wait_for(lambda: subscribers(riskd_server) == 0)
    h = hub(riskd_server)
    assert riskd_server.call(lambda: (h._timer, h._soon, h._shared)) == (None, None, None)


def test_a_subscriber_that_stops_reading_stays_bounded(riskd_server: RiskdServer, client: RiskClient) -> None:
    """It reads its first response and nothing more: once gRPC's flow-control windows are full the
    server stops producing for it (no queue), its pending state is what changed, at most every
    account, and the other subscribers are not held up."""
    accounts = [f"A{i:04d}" for i in range(3_000)]
    client.update_prices({"X": 1.0})
    for i in range(0, len(accounts), 1_000):
        client.load_positions([(a, "X", 1) for a in accounts[i : i + 1_000]])
    h = hub(riskd_server)

    async def main() -> None:
        async with (
            grpc.aio.insecure_channel(riskd_server.target) as channel,
            AsyncRiskClient(riskd_server.target) as c,
        ):
            stalled = pb_grpc.RiskServiceStub(channel).StreamRiskSnapshots(
                pb.StreamRiskSnapshotsRequest(min_interval_ms=10)
            )
            first = await stalled.read()
            assert len(first.accounts) == len(accounts)
            fast = Follow(c, ["A0000"], interval_ms=10)
            await fast.next()
            responses = []
            for round_ in range(60):  # every account changes each round: ~300 KB a response
                await c.update_prices({"X": 2.0 + round_})
                _, snap = await fast.next()  # the fast subscriber keeps up
                assert snap.accounts[0].positions[0].mark == 2.0 + round_
                await asyncio.sleep(0.015)
                stats = riskd_server.call(h.subscriber_stats)
                slow = next(s for s in stats if s.accounts == 0)
                responses.append(slow.responses)
                assert slow.pending <= len(accounts)
            assert responses[-1] < 60  # blocked by flow control long before
            assert responses[-1] == responses[-20], responses  # and stays blocked
            assert not slow.waiting and slow.pending == len(accounts)
            stalled.cancel()
            await fast.close()

    asyncio.run(main())
    wait_for(lambda: subscribers(riskd_server) == 0)


def test_stream_invalid_interval(riskd_server: RiskdServer, client: RiskClient) -> None:
    with pytest.raises(RiskdError) as info:
        next(client.stream_risk_snapshots(min_interval_ms=5))
    assert info.value.code == "INVALID_ARGUMENT" and "min_interval_ms" in info.value.details
    assert subscribers(riskd_server) == 0


def test_a_snapshot_past_the_message_bound_is_refused_clearly(
    riskd_server: RiskdServer, client: RiskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from riskd_server.wire import snapshot as wire_snapshot

    desk(client)
    monkeypatch.setattr(wire_snapshot, "MAX_REPLY_BYTES", 200)
    with pytest.raises(RiskdError) as info:
        client.risk_snapshot()
    assert info.value.code == "RESOURCE_EXHAUSTED" and "ask for fewer accounts" in info.value.details
    assert len(client.risk_snapshot("ACC2")) == 1  # a smaller one still goes
    with pytest.raises(RiskdError) as info:
        next(client.stream_risk_snapshots())
    assert info.value.code == "RESOURCE_EXHAUSTED"
    wait_for(lambda: subscribers(riskd_server) == 0)
