"""The snapshot hub on an event loop, without gRPC: shared reads and encodings, no timer while idle,
the interval, and what unsubscribing leaves (nothing)."""

from __future__ import annotations

import asyncio

import pytest

from riskd_server.engine import Engine
from riskd_server.snapshots import IntervalError, SnapshotHub, interval_of
from riskd_server.wire.snapshot import SnapshotWire


def desk() -> Engine:
    e = Engine()
    e.update_prices(["X", "Y"], [10.0, 20.0])
    e.load_positions(["A", "B"], ["X", "Y"], [1.0, 2.0])
    return e


def test_interval_of() -> None:
    assert interval_of(0) == 0.25 and interval_of(10) == 0.01 and interval_of(1500) == 1.5
    with pytest.raises(IntervalError, match="at least 10, got 9"):
        interval_of(9)


def test_subscribers_woken_together_share_one_read_and_one_encoding() -> None:
    async def main() -> None:
        engine = desk()
        hub, wire = SnapshotHub(engine), SnapshotWire()
        a, b = hub.subscribe((), 0.01), hub.subscribe((), 0.01)
        first_a, first_b = await hub.next(a), await hub.next(b)
        assert first_a is first_b and len(first_a) == 2
        assert await wire.encode(first_a) is await wire.encode(first_b)  # encoded once
        engine.update_prices(["X"], [11.0])
        hub.poke()
        second_a, second_b = await asyncio.gather(hub.next(a), hub.next(b))
        assert second_a is second_b and [n for n in second_a.accounts_names.names_of(second_a.account)] == [
            "A"
        ]
        named = hub.subscribe(["B"], 0.01)
        assert (await hub.next(named)) is not second_a  # another account set: its own read
        for sub in (a, b, named):
            hub.unsubscribe(sub)
        assert hub.stats().subscribers == 0 and (hub._timer, hub._soon, hub._shared) == (None, None, None)

    asyncio.run(main())


def test_no_timer_while_idle_and_the_interval_between_responses() -> None:
    async def main() -> None:
        engine = desk()
        hub = SnapshotHub(engine)
        loop = asyncio.get_running_loop()
        sub = hub.subscribe((), 0.2)
        await hub.next(sub)
        waiter = asyncio.ensure_future(hub.next(sub))
        await asyncio.sleep(0.3)
        assert not waiter.done() and hub._timer is None and hub._soon is None  # idle: nothing runs
        ticks = hub.stats().ticks
        engine.update_prices(["Y"], [21.0])
        start = loop.time()
        hub.poke()
        hub.poke()  # a second poke while one is pending costs nothing and schedules nothing
        cols = await asyncio.wait_for(waiter, 1.0)
        assert loop.time() - start < 0.1  # the interval had elapsed: sent at once
        assert cols.accounts()[0].account == "B" and hub.stats().ticks == ticks + 1
        engine.update_prices(["X"], [12.0])
        start = loop.time()
        hub.poke()
        cols = await asyncio.wait_for(hub.next(sub), 1.0)
        assert loop.time() - start >= 0.19  # no sooner than the interval after the previous one
        assert cols.accounts()[0].account == "A"
        hub.unsubscribe(sub)

    asyncio.run(main())


def test_a_pass_with_nothing_new_for_a_subscriber_sends_nothing() -> None:
    async def main() -> None:
        engine = desk()
        hub = SnapshotHub(engine)
        sub = hub.subscribe(["A"], 0.01)
        await hub.next(sub)
        waiter = asyncio.ensure_future(hub.next(sub))
        engine.update_prices(["Y"], [30.0])  # B only
        hub.poke()
        await asyncio.sleep(0.1)
        assert not waiter.done() and hub.tracker.passes >= 2
        engine.set_trading_state("A", 3)
        hub.poke()
        cols = await asyncio.wait_for(waiter, 1.0)
        assert cols.accounts()[0].trading_state == 3
        hub.unsubscribe(sub)

    asyncio.run(main())
