"""SubscribeAlerts end to end: the full server (riskd_server fixture) and the real clients and CLI.

Alerts are published into the running server's hub on its own loop, as the alert pipeline does
(numbered, appended to the history, then ``publish``), so these tests drive the fan-out, not the
checks: every filter field, replay with ``after_seq`` and ``missed``, a stalled subscriber next to
a fast one, cancelled and broken streams leaving nothing behind, the subscriber limit, a
reconnect storm after a restart, and ``riskd alerts follow``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from fix_server import RiskdServer

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc
from riskd_client import AlertBatch, AlertInfo, AsyncRiskClient, RiskClient, RiskdError
from riskd_server.alerts.fanout import AlertHub
from riskd_server.alerts.history import AlertHistory
from riskd_server.alerts.model import CRITICAL, INFO, WARNING, Alert

TIME = 1_700_000_000.5


def make_alert(seq: int, **fields: Any) -> Alert:
    base: dict[str, Any] = dict(time=TIME + seq, severity=WARNING, kind=pb.ALERT_KIND_CHECK_REJECT)
    base.update(fields)
    return Alert(seq=0, message=base.pop("message", f"alert {seq}"), **base).numbered(seq)


class Publisher:
    """Publishes into the running server's hub on its loop, numbering on from ``seq``."""

    def __init__(self, server: RiskdServer) -> None:
        self.server = server
        self.seq = 0

    @property
    def hub(self) -> AlertHub:
        assert self.server.running is not None and self.server.running.alert_hub is not None
        return self.server.running.alert_hub

    def emit(self, *specs: dict[str, Any]) -> list[Alert]:
        first = self.seq + 1
        self.seq += len(specs)
        alerts = [make_alert(first + i, **spec) for i, spec in enumerate(specs)]
        hub = self.hub

        async def publish() -> None:
            for alert in alerts:
                hub.history.append(alert)
            hub.publish(alerts)

        self.server.run(publish())
        return alerts

    def on_loop(self, fn: Callable[[AlertHub], Any]) -> Any:
        hub = self.hub
        return self.server.call(fn, hub)

    def subscribers(self) -> int:
        return self.on_loop(lambda hub: hub.subscribers)

    def wait_subscribers(self, n: int, timeout: float = 30.0) -> None:
        wait_until(
            lambda: self.subscribers() == n, timeout, lambda: f"{self.subscribers()} subscribers, not {n}"
        )


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what()}")
        time.sleep(0.01)


async def await_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.01)


class Collector:
    """Reads one async subscription into lists."""

    def __init__(self) -> None:
        self.alerts: list[AlertInfo] = []
        self.batches: list[AlertBatch] = []
        self.dropped = 0
        self.missed = 0

    @property
    def seqs(self) -> list[int]:
        return [a.seq for a in self.alerts]

    async def read(self, batches: Any) -> None:
        async for batch in batches:
            self.batches.append(batch)
            self.alerts += batch.alerts
            self.dropped += batch.dropped
            self.missed += batch.missed


def server_tasks(server: RiskdServer) -> int:
    """The server loop's tasks, once the risk model's start-up build (a background task that comes
    and goes on its own) is done."""

    async def count() -> int:
        for _ in range(500):
            if not any(
                "RiskModelService" in getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks()
            ):
                break
            await asyncio.sleep(0.01)
        return len(asyncio.all_tasks())

    return server.run(count())


@pytest.fixture
def publisher(riskd_server: RiskdServer) -> Publisher:
    return Publisher(riskd_server)


# ---------------------------------------------------------------------------------------- filters

MIXED: list[dict[str, Any]] = [
    dict(
        severity=INFO,
        kind=pb.ALERT_KIND_CHECK_WARNING,
        check=pb.RISK_CHECK_MAX_POSITION,
        account="A1",
        symbol="AAPL",
        observed=95.0,
        threshold=100.0,
        client_order_id="o1",
    ),
    dict(
        severity=WARNING,
        kind=pb.ALERT_KIND_CHECK_REJECT,
        check=pb.RISK_CHECK_MAX_ORDER_QUANTITY,
        account="A2",
        symbol="MSFT",
        limit_id="q-1",
        observed=150.0,
        threshold=100.0,
    ),
    dict(severity=CRITICAL, kind=pb.ALERT_KIND_TRADING_STATE, account="A1", message="account A1 HALTED"),
    dict(severity=WARNING, kind=pb.ALERT_KIND_OVERFILL, account="A3", symbol="AAPL", count=4, summary=True),
    dict(severity=CRITICAL, kind=pb.ALERT_KIND_BACKLOG),
    dict(severity=INFO, kind=pb.ALERT_KIND_LIMIT_CHANGED, check=pb.RISK_CHECK_MAX_POSITION, account="A2"),
]

# subscribe_alerts keyword arguments (names, numbers, single values) -> the seqs of MIXED they get
CLIENT_FILTERS: list[tuple[dict[str, Any], list[int]]] = [
    ({}, [1, 2, 3, 4, 5, 6]),
    ({"min_severity": "warning"}, [2, 3, 4, 5]),
    ({"min_severity": pb.SEVERITY_CRITICAL}, [3, 5]),
    ({"accounts": ["A1", "A3"]}, [1, 3, 4]),
    ({"accounts": "A2"}, [2, 6]),
    ({"symbols": ["AAPL"]}, [1, 4]),
    ({"kinds": ["trading-state", "ALERT_KIND_BACKLOG"]}, [3, 5]),
    ({"kinds": pb.ALERT_KIND_OVERFILL}, [4]),
    ({"checks": ["max_position"]}, [1, 6]),
    ({"checks": [pb.RISK_CHECK_MAX_ORDER_QUANTITY]}, [2]),
    (
        {"min_severity": "WARNING", "accounts": ["A1", "A2"], "kinds": ["CHECK_REJECT", "TRADING_STATE"]},
        [2, 3],
    ),
]


def test_every_filter_field_through_the_async_client(riskd_server: RiskdServer, publisher: Publisher) -> None:
    async def main() -> list[Collector]:
        async with AsyncRiskClient(riskd_server.target) as client:
            collectors = [Collector() for _ in CLIENT_FILTERS]
            tasks = [
                asyncio.create_task(c.read(client.subscribe_alerts(**kw)))
                for c, (kw, _) in zip(collectors, CLIENT_FILTERS, strict=True)
            ]
            await asyncio.to_thread(publisher.wait_subscribers, len(tasks))
            await asyncio.to_thread(publisher.emit, *MIXED)
            await asyncio.to_thread(publisher.emit, *MIXED)
            for c, (_, want) in zip(collectors, CLIENT_FILTERS, strict=True):
                await await_until(lambda c=c, want=want: len(c.alerts) >= 2 * len(want), what=f"{want}")
            await asyncio.sleep(0.1)  # nothing more may arrive
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return collectors

    collectors = asyncio.run(main())
    for c, (kw, want) in zip(collectors, CLIENT_FILTERS, strict=True):
        assert c.seqs == want + [s + 6 for s in want], kw
        assert c.dropped == 0 and c.missed == 0
    deadline = time.monotonic() + 10  # the server sees the cancelled streams end a moment later
    while (groups := publisher.on_loop(lambda hub: hub.stats())).subscribers and time.monotonic() < deadline:
        time.sleep(0.02)
    assert groups.subscribers == 0 and groups.groups == 0
    # The alert as the client sees it: names, Unix time, every field.
    first = collectors[0].alerts
    assert first[0] == AlertInfo(
        seq=1,
        time=TIME + 1,
        severity="INFO",
        kind="CHECK_WARNING",
        check="MAX_POSITION",
        account="A1",
        symbol="AAPL",
        limit_id="",
        message="alert 1",
        observed=95.0,
        threshold=100.0,
        count=1,
        summary=False,
        client_order_id="o1",
    )
    assert (first[1].check, first[1].limit_id, first[2].check, first[2].message) == (
        "MAX_ORDER_QUANTITY",
        "q-1",
        "",
        "account A1 HALTED",
    )
    assert (first[3].count, first[3].summary) == (4, True)


def test_the_blocking_client_follows_and_unsubscribes_when_closed(
    riskd_server: RiskdServer, publisher: Publisher
) -> None:
    got: list[AlertBatch] = []
    with RiskClient(riskd_server.target) as client:
        stream = client.subscribe_alerts(min_severity="CRITICAL", accounts=["A1"])

        def read() -> None:
            for batch in stream:
                got.append(batch)
                if sum(len(b) for b in got) >= 2:
                    break
            stream.close()

        reader = threading.Thread(target=read)
        reader.start()
        publisher.wait_subscribers(1)
        publisher.emit(*MIXED, *MIXED)
        reader.join(10)
        assert not reader.is_alive()
    assert [a.seq for b in got for a in b] == [3, 9]
    publisher.wait_subscribers(0)


def test_bad_filters_are_refused_naming_the_field(riskd_server: RiskdServer) -> None:
    with grpc.insecure_channel(riskd_server.target) as channel:
        stub = pb_grpc.RiskServiceStub(channel)
        for flt, field in (
            (pb.AlertFilter(kinds=[pb.ALERT_KIND_OVERFILL, 77]), "filter.kinds[1]: unknown AlertKind 77"),
            (pb.AlertFilter(checks=[0]), "filter.checks[0]: unknown RiskCheck 0"),
            (pb.AlertFilter(min_severity=8), "filter.min_severity: unknown Severity 8"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                next(iter(stub.SubscribeAlerts(pb.SubscribeAlertsRequest(filter=flt), timeout=10)))
            assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details() == field
        raw = channel.unary_stream("/riskd.v1.RiskService/SubscribeAlerts")
        with pytest.raises(grpc.RpcError) as info:
            next(iter(raw(b"\x0a\x05\x08", timeout=10)))
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed SubscribeAlertsRequest" in (info.value.details() or "")
    with RiskClient(riskd_server.target) as client:
        with pytest.raises(ValueError, match="kinds\\[0\\]: 'check-rejected' is not one of"):
            next(client.subscribe_alerts(kinds=["check-rejected"]))
        # A refusal that retrying cannot fix is raised even with reconnect on.
        with pytest.raises(RiskdError) as err:
            next(client.subscribe_alerts(kinds=[99]))
        assert err.value.code == "INVALID_ARGUMENT" and "filter.kinds[0]" in err.value.details


@pytest.mark.parametrize("riskd_settings", [{"max_alert_subscribers": 3}])
def test_subscribers_past_the_limit_are_resource_exhausted(
    riskd_server: RiskdServer, publisher: Publisher
) -> None:
    async def main() -> None:
        async with AsyncRiskClient(riskd_server.target) as client:
            held = [asyncio.create_task(Collector().read(client.subscribe_alerts())) for _ in range(3)]
            await asyncio.to_thread(publisher.wait_subscribers, 3)
            with pytest.raises(RiskdError) as err:
                await anext(client.subscribe_alerts(reconnect=False))
            assert err.value.code == "RESOURCE_EXHAUSTED"
            assert "at most 3" in err.value.details
            # With reconnect, the fourth waits its turn and gets in when a place frees up.
            fourth = Collector()
            task = asyncio.create_task(fourth.read(client.subscribe_alerts(max_backoff=0.2)))
            await asyncio.sleep(0.5)
            assert await asyncio.to_thread(publisher.subscribers) == 3
            held[0].cancel()
            deadline = time.monotonic() + 10
            while not fourth.alerts:  # publish until the fourth is in and gets one
                assert time.monotonic() < deadline, "the fourth subscriber never got in"
                await asyncio.to_thread(publisher.emit, {})
                await asyncio.sleep(0.05)
            task.cancel()
            for t in held:
                t.cancel()
            await asyncio.gather(task, *held, return_exceptions=True)

    asyncio.run(main())
    assert publisher.on_loop(lambda hub: hub.stats().refused) >= 2
    publisher.wait_subscribers(0)


# ---------------------------------------------------------------------------------------- replay


def test_resume_replays_what_the_history_holds_reports_missed_then_goes_live(
    riskd_server: RiskdServer, publisher: Publisher
) -> None:
    publisher.on_loop(lambda hub: setattr(hub, "history", AlertHistory(20)))
    publisher.emit(*[MIXED[i % 6] for i in range(30)])  # the history holds 11..30

    async def main() -> tuple[Collector, Collector, Collector]:
        async with AsyncRiskClient(riskd_server.target) as client:
            everything, filtered, current = Collector(), Collector(), Collector()
            tasks = [
                asyncio.create_task(everything.read(client.subscribe_alerts(after_seq=5))),
                asyncio.create_task(filtered.read(client.subscribe_alerts(after_seq=5, accounts=["A1"]))),
                asyncio.create_task(current.read(client.subscribe_alerts(after_seq=30))),
            ]
            await await_until(lambda: len(everything.alerts) == 20 and len(filtered.alerts) == 6)
            await asyncio.to_thread(publisher.wait_subscribers, 3)
            await asyncio.to_thread(publisher.emit, MIXED[0], MIXED[1])  # 31 (A1), 32 (A2)
            await await_until(lambda: len(everything.alerts) == 22 and len(current.alerts) == 2)
            await await_until(lambda: len(filtered.alerts) == 7)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return everything, filtered, current

    everything, filtered, current = asyncio.run(main())
    assert everything.seqs == list(range(11, 33))
    assert everything.batches[0].missed == 5 and everything.missed == 5  # 6..10 no longer held
    assert filtered.seqs == [s for s in range(11, 32) if MIXED[(s - 1) % 6].get("account") == "A1"]
    assert filtered.batches[0].missed == 5
    assert current.seqs == [31, 32] and current.missed == 0
    stats = publisher.on_loop(lambda hub: hub.stats())
    assert stats.missed == 10 and stats.replayed == 26


def test_a_dropped_stream_resumes_where_it_stopped(riskd_server: RiskdServer, publisher: Publisher) -> None:
    """Reconnecting with the last seq seen replays what was published meanwhile, nothing twice."""
    publisher.emit({}, {})

    async def main() -> list[int]:
        got: list[int] = []
        async with AsyncRiskClient(riskd_server.target) as client:
            stream = client.subscribe_alerts(reconnect=False)
            first = asyncio.ensure_future(anext(stream))
            await asyncio.to_thread(publisher.wait_subscribers, 1)
            await asyncio.to_thread(publisher.emit, {}, {})
            got += [a.seq for a in (await first).alerts]
            await stream.aclose()
            await asyncio.to_thread(publisher.wait_subscribers, 0)
            await asyncio.to_thread(publisher.emit, {}, {}, {})  # 5..7 while away
            resumed = Collector()
            task = asyncio.create_task(resumed.read(client.subscribe_alerts(after_seq=got[-1])))
            await await_until(lambda: len(resumed.alerts) >= 3)
            await asyncio.to_thread(publisher.emit, {})
            await await_until(lambda: len(resumed.alerts) >= 4)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return got + resumed.seqs

    assert asyncio.run(main()) == [3, 4, 5, 6, 7, 8]


# ---------------------------------------------------------------------------------------- slow readers

STALL_OPTIONS = [("grpc.http2.bdp_probe", 0)]  # keep the never-reading client's window small
BIG = "x" * 20_000  # large alerts fill the stalled stream's flow-control window quickly


@pytest.mark.parametrize("riskd_settings", [{"alert_subscriber_queue": 16}])
def test_a_stalled_subscriber_delays_no_one_and_is_told_what_it_lost(
    riskd_server: RiskdServer, publisher: Publisher
) -> None:
    n = 300

    async def main() -> tuple[Collector, list[float], list[int], int]:
        stall_channel = grpc.aio.insecure_channel(riskd_server.target, options=STALL_OPTIONS)
        stalled = pb_grpc.RiskServiceStub(stall_channel).SubscribeAlerts(pb.SubscribeAlertsRequest())
        await stalled.initial_metadata()
        fast = Collector()
        delays: list[float] = []
        async with AsyncRiskClient(riskd_server.target) as client:
            task = asyncio.create_task(fast.read(client.subscribe_alerts()))
            await asyncio.to_thread(publisher.wait_subscribers, 2)
            for i in range(n):
                started = time.perf_counter()
                await asyncio.to_thread(publisher.emit, {"message": BIG})
                await await_until(lambda i=i: len(fast.alerts) > i, 5.0, f"alert {i + 1}")
                delays.append(time.perf_counter() - started)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        dropped_while_stalled = await asyncio.to_thread(publisher.on_loop, lambda hub: hub.stats().dropped)
        seqs: list[int] = []
        lost = []
        async for response in stalled:  # now read what the stalled one was sent
            seqs += [a.seq for a in response.alerts]
            lost.append(response.dropped)
            if seqs and seqs[-1] == n:
                break
        stalled.cancel()
        await stall_channel.close()
        return fast, delays, [*seqs, -1, *lost], dropped_while_stalled

    fast, delays, both, dropped_while_stalled = asyncio.run(main())
    cut = both.index(-1)
    seqs, lost = both[:cut], both[cut + 1 :]
    assert fast.seqs == list(range(1, n + 1)) and fast.dropped == 0
    assert max(delays) < 2.0, f"the fast subscriber waited {max(delays):.3f}s"
    assert dropped_while_stalled > 0  # counted while the stalled one was stuck in its write
    assert seqs == sorted(seqs) and seqs[-1] == n
    assert len(seqs) + sum(lost) == n, "every alert was either received or counted as dropped"
    assert sum(lost) == dropped_while_stalled
    publisher.wait_subscribers(0)


# ---------------------------------------------------------------------------------------- cleanup


def test_cancelled_and_broken_streams_leave_no_trace(riskd_server: RiskdServer, publisher: Publisher) -> None:
    baseline = server_tasks(riskd_server)

    async def main() -> None:
        async with AsyncRiskClient(riskd_server.target) as client:
            tasks = [
                asyncio.create_task(Collector().read(client.subscribe_alerts(accounts=[f"A{i % 7}"])))
                for i in range(150)
            ]
            await asyncio.to_thread(publisher.wait_subscribers, 150)
            assert await asyncio.to_thread(publisher.on_loop, lambda hub: hub.stats().groups) == 7
            await asyncio.to_thread(publisher.emit, {"account": "A1"})
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(publisher.wait_subscribers, 0, 10.0)
        # A connection that just goes away (no cancel), with a stream stuck in a write.
        channel = grpc.aio.insecure_channel(riskd_server.target, options=STALL_OPTIONS)
        stub = pb_grpc.RiskServiceStub(channel)
        calls = [stub.SubscribeAlerts(pb.SubscribeAlertsRequest()) for _ in range(20)]
        for call in calls:
            await call.initial_metadata()
        await asyncio.to_thread(publisher.wait_subscribers, 20)
        for _ in range(20):
            await asyncio.to_thread(publisher.emit, {"message": BIG})
        await channel.close()

    asyncio.run(main())
    publisher.wait_subscribers(0, 10.0)
    stats = publisher.on_loop(lambda hub: hub.stats())
    assert stats.groups == 0
    wait_until(
        lambda: server_tasks(riskd_server) == baseline, 10.0, lambda: f"{server_tasks(riskd_server)} tasks"
    )


# ---------------------------------------------------------------------------------------- restart


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STORM = 300


@pytest.mark.parametrize(
    "riskd_settings", [{"listen": f"127.0.0.1:{free_port()}", "max_pending_requests": 20, "grace": 1.0}]
)
def test_a_reconnect_storm_after_a_restart_all_get_back_in_without_gaps(
    riskd_server: RiskdServer, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="riskd.client")

    async def main() -> list[Collector]:
        clients = [AsyncRiskClient(riskd_server.target) for _ in range(6)]
        collectors = [Collector() for _ in range(STORM)]
        tasks = [
            asyncio.create_task(c.read(clients[i % len(clients)].subscribe_alerts(max_backoff=1.0)))
            for i, c in enumerate(collectors)
        ]
        await asyncio.to_thread(publisher.wait_subscribers, STORM, 60.0)
        await asyncio.to_thread(publisher.emit, *[{}] * 10)
        await await_until(lambda: all(len(c.alerts) == 10 for c in collectors), 30.0, "before the restart")
        await asyncio.to_thread(riskd_server.restart)
        await asyncio.to_thread(publisher.emit, *[{}] * 10)  # while they are getting back in
        await asyncio.to_thread(publisher.wait_subscribers, STORM, 60.0)
        await asyncio.to_thread(publisher.emit, *[{}] * 10)
        await await_until(
            lambda: all(len(c.alerts) >= 30 for c in collectors),
            30.0,
            f"{sum(len(c.alerts) < 30 for c in collectors)} subscribers behind",
        )
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.close()
        return collectors

    collectors = asyncio.run(main())
    for c in collectors:
        assert c.seqs == list(range(1, 31)) and c.dropped == 0 and c.missed == 0
    refused = [r for r in caplog.records if "CANCELLED" in r.getMessage() or "RESOURCE" in r.getMessage()]
    reconnects = [r for r in caplog.records if "resuming after seq" in r.getMessage()]
    assert len(reconnects) >= STORM
    assert refused, "the pending-call limit should have refused part of the storm"
    publisher.wait_subscribers(0)


# ---------------------------------------------------------------------------------------- CLI


def _follow(target: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    # An ignored SIGINT stays ignored across exec, and a shell without job control starts its
    # background jobs so (`pytest &` in a script): the child would never see the test's ctrl-c.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        return _spawn_follow(target, args, env)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _spawn_follow(target: str, args: tuple[str, ...], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "riskd"),
            "--target",
            target,
            "alerts",
            "follow",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _lines(proc: subprocess.Popen[str], n: int, timeout: float = 20.0) -> list[str]:
    out: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while len(out) < n:
        assert time.monotonic() < deadline, f"got {out}"
        line = proc.stdout.readline()
        assert line, f"follow ended early: {out} {proc.stderr.read() if proc.stderr else ''}"
        out.append(line.rstrip("\n"))
    return out


def _interrupt(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:  # say where it hangs: faulthandler prints every thread on SIGABRT
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=20)
        pytest.fail(f"riskd alerts follow did not stop on SIGINT within 20 s; its threads:\n{err}")
    return proc.returncode, err


def test_alerts_follow_prints_each_alert_until_ctrl_c(
    riskd_server: RiskdServer, publisher: Publisher
) -> None:
    text = _follow(riskd_server.target, "--severity", "warning", "--account", "A1", "A2")
    as_json = _follow(riskd_server.target, "--check", "max-position", "--json")
    publisher.wait_subscribers(2)
    publisher.emit(*MIXED)
    lines = _lines(text, 2)
    assert "WARNING" in lines[0] and "CHECK_REJECT" in lines[0] and "MAX_ORDER_QUANTITY" in lines[0]
    assert "A2" in lines[0] and "MSFT" in lines[0] and "150/100" in lines[0] and "#2" in lines[0]
    assert "CRITICAL" in lines[1] and "TRADING_STATE" in lines[1] and "account A1 HALTED" in lines[1]
    docs = [json.loads(line) for line in _lines(as_json, 2)]
    assert [d["seq"] for d in docs] == [1, 6]
    assert docs[0] | {"time": 0} == {
        "seq": 1,
        "time": 0,
        "severity": "INFO",
        "kind": "CHECK_WARNING",
        "check": "MAX_POSITION",
        "account": "A1",
        "symbol": "AAPL",
        "limit_id": "",
        "message": "alert 1",
        "observed": 95.0,
        "threshold": 100.0,
        "count": 1,
        "summary": False,
        "client_order_id": "o1",
    }
    assert docs[0]["time"] == pytest.approx(TIME + 1)
    for proc in (text, as_json):
        code, err = _interrupt(proc)
        assert code == 0, err
        assert "Traceback" not in err


def test_alerts_follow_resumes_with_after_seq_and_notes_missed(
    riskd_server: RiskdServer, publisher: Publisher
) -> None:
    publisher.on_loop(lambda hub: setattr(hub, "history", AlertHistory(3)))
    publisher.emit(*[{}] * 6)  # held: 4..6
    proc = _follow(riskd_server.target, "--after-seq", "1")
    lines = _lines(proc, 4)
    assert "missed 2" in lines[0]  # 2 and 3 are gone
    assert ["#4" in lines[1], "#5" in lines[2], "#6" in lines[3]] == [True, True, True]
    code, err = _interrupt(proc)
    assert code == 0, err


def test_alerts_follow_refuses_bad_names_before_connecting() -> None:
    proc = _follow("127.0.0.1:1", "--kind", "no-such-kind")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "no-such-kind" in err
