"""AlertHub without a server: filters, grouping, serialise-once, drop-oldest, replay + live, removal.

The hub's steps (register, publish, take, replay_step, remove) are plain methods; the RPC
(``stream``) only awaits between them, and is tested end to end in test_fanout_e2e.py. The
history here is a plain list standing in for alerts.history.AlertHistory (same ``after``
contract: matching alerts held after a seq, oldest first, and how many seqs it no longer holds).
"""

from __future__ import annotations

import asyncio
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.fanout import (
    MAX_FILTER_VALUES,
    AlertHub,
    HubFull,
    SubscribeError,
    alert_filter,
    subscribe_request,
)
from riskd_server.alerts.model import CRITICAL, INFO, WARNING, Alert, AlertFilter
from riskd_server.alerts.subscribers import REPLAYING, WAITING, Subscriber

ANY = AlertFilter()


class ListHistory:
    """The last ``capacity`` alerts in a list; ``after`` scans it (the reference, not the index)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.alerts: deque[Alert] = deque(maxlen=capacity)

    def append(self, alert: Alert) -> None:
        self.alerts.append(alert)

    @property
    def last_seq(self) -> int:
        return self.alerts[-1].seq if self.alerts else 0

    def after(self, after_seq: int, flt: AlertFilter, limit: int | None = None) -> tuple[list[Alert], int]:
        if not self.alerts or after_seq >= self.last_seq:
            return [], 0
        missed = max(0, self.alerts[0].seq - 1 - after_seq)
        out = [a for a in self.alerts if a.seq > after_seq and flt.matches(a)]
        return (out if limit is None else out[:limit]), missed


class Producer:
    """Numbers alerts, appends them to the history, then publishes them (as the pipeline does)."""

    def __init__(self, hub: AlertHub, history: ListHistory) -> None:
        self.hub = hub
        self.history = history
        self.seq = 0
        self.published: list[Alert] = []

    def emit(self, *specs: dict) -> list[Alert]:
        out = []
        for spec in specs:
            self.seq += 1
            out.append(make_alert(self.seq, **spec))
        for a in out:
            self.history.append(a)
        self.published += out
        self.hub.publish(out)
        return out


def make_alert(seq: int, **fields) -> Alert:
    base: dict = dict(time=1_700_000_000.25, severity=WARNING, kind=pb.ALERT_KIND_CHECK_REJECT)
    base.update(fields)
    return Alert(seq=0, message=base.pop("message", f"alert {seq}"), **base).numbered(seq)


def decode(data: bytes | None) -> tuple[list[int], int, int]:
    if data is None:
        return [], 0, 0
    msg = pb.SubscribeAlertsResponse.FromString(data)
    return [a.seq for a in msg.alerts], msg.dropped, msg.missed


def hub_with(queue_size: int = 256, capacity: int = 10_000, **kw) -> tuple[AlertHub, ListHistory, Producer]:
    history = ListHistory(capacity)
    hub = AlertHub(history, queue_size=queue_size, **kw)
    return hub, history, Producer(hub, history)


def drain(hub: AlertHub, sub: Subscriber) -> tuple[list[int], int, int]:
    """Everything a subscriber would be sent now: the replay while REPLAYING, then live."""
    seqs: list[int] = []
    dropped = missed = 0
    while sub.state == REPLAYING:
        s, d, m = decode(hub.replay_step(sub))
        seqs += s
        dropped += d
        missed += m
    s, d, m = decode(hub.take(sub))
    return seqs + s, dropped + d, missed + m


def idle(sub: Subscriber) -> None:
    """What stream() does when take() has nothing: wait for the next publish."""
    sub.group.wait(sub)


# ---------------------------------------------------------------------------------------- filters

MIXED = [
    dict(
        severity=INFO,
        kind=pb.ALERT_KIND_CHECK_WARNING,
        check=pb.RISK_CHECK_MAX_POSITION,
        account="A1",
        symbol="AAPL",
    ),
    dict(
        severity=WARNING,
        kind=pb.ALERT_KIND_CHECK_REJECT,
        check=pb.RISK_CHECK_MAX_ORDER_QUANTITY,
        account="A2",
        symbol="MSFT",
    ),
    dict(severity=CRITICAL, kind=pb.ALERT_KIND_TRADING_STATE, account="A1"),
    dict(severity=WARNING, kind=pb.ALERT_KIND_OVERFILL, account="A3", symbol="AAPL"),
    dict(severity=CRITICAL, kind=pb.ALERT_KIND_BACKLOG),
    dict(severity=INFO, kind=pb.ALERT_KIND_LIMIT_CHANGED, check=pb.RISK_CHECK_MAX_POSITION, account="A2"),
]

FILTERS = {
    "any": ANY,
    "severity": AlertFilter(min_severity=WARNING),
    "critical": AlertFilter(min_severity=CRITICAL),
    "accounts": AlertFilter(accounts=frozenset({"A1", "A3"})),
    "symbols": AlertFilter(symbols=frozenset({"AAPL"})),
    "kinds": AlertFilter(kinds=frozenset({pb.ALERT_KIND_TRADING_STATE, pb.ALERT_KIND_BACKLOG})),
    "checks": AlertFilter(checks=frozenset({pb.RISK_CHECK_MAX_POSITION})),
    "combined": AlertFilter(min_severity=WARNING, accounts=frozenset({"A1", "A2"})),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter_gets_exactly_its_alerts_in_order(name: str) -> None:
    hub, _, producer = hub_with()
    flt = FILTERS[name]
    sub = hub.register(flt, "peer")
    assert hub.take(sub) is None
    idle(sub)
    alerts = producer.emit(*MIXED, *MIXED)
    expected = [a.seq for a in alerts if flt.matches(a)]
    assert expected, "each filter must match something here, or the test proves nothing"
    assert len(expected) < len(alerts) or name == "any"
    assert drain(hub, sub) == (expected, 0, 0)
    assert hub.take(sub) is None


def test_subscribers_with_one_filter_share_a_group_and_its_entries() -> None:
    hub, _, producer = hub_with()
    a = [hub.register(ANY, f"any{i}") for i in range(3)]
    b = [hub.register(AlertFilter(accounts=frozenset({"A1"})), f"a1-{i}") for i in range(2)]
    c = hub.register(AlertFilter(accounts=frozenset({"A1"}), min_severity=CRITICAL), "c")
    assert hub.stats().groups == 3
    assert len({id(s.group) for s in a}) == 1 and len({id(s.group) for s in b}) == 1
    assert a[0].group is not b[0].group is not c.group
    producer.emit(*MIXED)
    assert len(a[0].group.entries) == len(MIXED)  # one ring for three subscribers
    assert len(b[0].group.entries) == 2 and len(c.group.entries) == 1
    responses = {hub.take(s) for s in a}
    assert len(responses) == 1  # byte-identical responses
    for s in [*a, *b, c]:
        hub.remove(s)
    assert hub.stats().groups == 0 and hub.subscribers == 0


def test_each_alert_is_serialised_once_for_all_subscribers(monkeypatch: pytest.MonkeyPatch) -> None:
    hub, _, producer = hub_with()
    subs = [hub.register(ANY, str(i)) for i in range(50)] + [
        hub.register(AlertFilter(min_severity=WARNING), "w") for _ in range(50)
    ]
    calls = 0
    to_pb = Alert.to_pb

    def counting(self: Alert) -> pb.Alert:
        nonlocal calls
        calls += 1
        return to_pb(self)

    alerts = producer.emit(*MIXED)  # numbered: wire made once, by Alert.numbered
    monkeypatch.setattr(Alert, "to_pb", counting)
    for s in subs:
        data = hub.take(s)
        assert data is not None
        wanted = [a for a in alerts if s.group.flt.matches(a)]
        assert data == b"".join(a.wire for a in wanted)  # the entries as they are, joined
    assert all(x is a.wire for x, a in zip(subs[0].group.entries, alerts, strict=True))
    assert calls == 0
    # An alert without its wire bytes (not numbered by the pipeline) is encoded once per publish.
    hub.publish([Alert(seq=99, time=1.0, severity=CRITICAL, kind=pb.ALERT_KIND_BACKLOG)])
    assert calls == 1
    assert decode(hub.take(subs[0]))[0] == [99] and decode(hub.take(subs[-1]))[0] == [99]


# ---------------------------------------------------------------------------------------- slow subscribers


def test_a_slow_subscriber_loses_the_oldest_and_is_told_how_many() -> None:
    reports: list[tuple[str, int]] = []
    hub, _, producer = hub_with(queue_size=4, on_drop=lambda peer, n: reports.append((peer, n)))
    slow = hub.register(ANY, "slow")
    fast = hub.register(ANY, "fast")
    hub.take(slow)  # slow is now "writing" (BUSY) and does not come back
    hub.take(fast)
    idle(fast)
    sent = []
    for _ in range(10):
        producer.emit(dict())
        sent += decode(hub.take(fast))[0]
        idle(fast)
    assert sent == list(range(1, 11))  # the fast one is never held back
    assert reports == [("slow", 1)]  # counted when the 5th pushed the 1st out; then rate-limited
    assert hub.stats().dropped == 6
    assert decode(hub.take(slow)) == ([7, 8, 9, 10], 6, 0)  # the newest 4, and the 6 it lost
    assert decode(hub.take(slow)) == ([], 0, 0)
    hub.remove(slow)
    assert reports == [("slow", 1), ("slow", 5)]  # the rest reported when it goes


def test_drops_are_counted_while_waiting_too_and_reported_at_most_once_a_second() -> None:
    now = [100.0]
    reports: list[int] = []
    hub, _, producer = hub_with(queue_size=2, on_drop=lambda peer, n: reports.append(n), clock=lambda: now[0])
    sub = hub.register(ANY, "p")
    idle(sub)
    producer.emit(*[{}] * 5)  # wakes it, and 3 of the 5 no longer fit before it runs
    assert reports == [3]
    now[0] += 0.5
    producer.emit(*[{}] * 2)  # 2 more lost (its queue holds the newest 2): not reported yet
    assert reports == [3]
    now[0] += 0.6
    producer.emit({})  # 1 more, a second after the first report: 2 + 1 reported
    assert reports == [3, 3]
    assert decode(hub.take(sub)) == ([7, 8], 6, 0)


def test_a_publish_larger_than_the_queue_keeps_the_newest() -> None:
    hub, _, producer = hub_with(queue_size=3)
    sub = hub.register(ANY)
    idle(sub)
    producer.emit(*[{}] * 10)
    assert decode(hub.take(sub)) == ([8, 9, 10], 7, 0)


def test_a_response_carries_everything_queued_since_the_last_one() -> None:
    hub, _, producer = hub_with()
    sub = hub.register(ANY)
    idle(sub)
    for _ in range(5):
        producer.emit({}, {})
    assert decode(hub.take(sub)) == (list(range(1, 11)), 0, 0)  # one write for five publishes


def test_waking_is_spread_over_turns_of_the_loop() -> None:
    """A publish resolves at most wake_slice waiters at once, the rest on later turns, so the loop
    polls for I/O (a check arriving) between slices instead of after every subscriber's write."""

    async def main() -> list[int]:
        hub, _, producer = hub_with(wake_slice=100, max_subscribers=1_000)
        loop = asyncio.get_running_loop()
        subs = [hub.register(ANY) for _ in range(450)]
        for sub in subs:
            sub.waiter = loop.create_future()
            idle(sub)
        hub.remove(subs[-1])  # gone while waiting: never resolved, dropped from the queue
        producer.emit({})
        counts = []
        for _ in range(6):
            counts.append(sum(1 for s in subs if s.waiter is not None and s.waiter.done()))
            await asyncio.sleep(0)
        return counts

    assert asyncio.run(main()) == [100, 200, 300, 400, 449, 449]


# ---------------------------------------------------------------------------------------- replay


def test_replay_then_live_without_loss_or_duplicates() -> None:
    hub, _, producer = hub_with(replay_chunk=3)
    producer.emit(*[{}] * 10)
    sub = hub.register(ANY, after_seq=4)
    producer.emit({}, {})  # 11, 12: published after registering, before any replay
    got = decode(hub.replay_step(sub))[0]
    producer.emit({})  # 13: between two replay chunks
    while sub.state == REPLAYING:
        got += decode(hub.replay_step(sub))[0]
    producer.emit({})  # 14
    got += decode(hub.take(sub))[0]
    assert got == list(range(5, 15))
    assert hub.stats().replayed == 9  # 5..13 from the history, 14 live


def test_replay_reports_missed_in_its_first_response() -> None:
    hub, _, producer = hub_with(capacity=5)
    producer.emit(*[{}] * 10)  # the history holds 6..10
    sub = hub.register(ANY, after_seq=2)
    assert decode(hub.replay_step(sub)) == ([6, 7, 8, 9, 10], 0, 3)  # 3, 4, 5 are gone
    assert sub.state != REPLAYING
    assert hub.stats().missed == 3


def test_replay_past_the_newest_seq_goes_live_and_skips_nothing() -> None:
    """A subscriber resuming with a seq from before a reset of the numbering gets the live alerts."""
    hub, _, producer = hub_with()
    producer.emit({}, {})
    sub = hub.register(ANY, after_seq=500)
    assert sub.state != REPLAYING
    producer.emit({})
    assert decode(hub.take(sub))[0] == [3]


def test_a_replaying_subscriber_is_not_charged_for_what_the_history_holds() -> None:
    hub, _, producer = hub_with(queue_size=2, replay_chunk=2)
    producer.emit(*[{}] * 3)
    sub = hub.register(ANY, after_seq=1)
    got = decode(hub.replay_step(sub))[0]  # 2, 3
    producer.emit(*[{}] * 6)  # 4..9 overflow its ring while it replays
    seqs, dropped, missed = drain(hub, sub)
    assert got + seqs == list(range(2, 10)) and dropped == 0 and missed == 0


# ---------------------------------------------------------------------------------------- registry


def test_removal_leaves_nothing_and_is_idempotent() -> None:
    hub, _, producer = hub_with()
    subs = [hub.register(ANY), hub.register(AlertFilter(accounts=frozenset({"A1"})), after_seq=1)]
    idle(subs[0])
    producer.emit({})
    for sub in subs:
        group = sub.group
        hub.remove(sub)
        hub.remove(sub)
        assert sub not in group.waiting and sub not in group.busy
    assert hub.stats().subscribers == 0 and hub.stats().groups == 0


def test_more_than_max_subscribers_are_refused() -> None:
    hub, _, _ = hub_with(max_subscribers=2)
    a = hub.register(ANY)
    hub.register(ANY)
    with pytest.raises(HubFull, match="at most 2"):
        hub.register(ANY)
    hub.remove(a)
    hub.register(ANY)
    assert hub.stats().refused == 1 and hub.subscribers == 2


def test_last_seq_is_the_newest_published_or_held() -> None:
    hub, history, producer = hub_with()
    assert hub.last_seq == 0
    history.append(make_alert(7))  # restored after a restart, never published
    assert hub.last_seq == 7
    producer.seq = 7
    producer.emit({})
    assert hub.last_seq == 8


# ---------------------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        (pb.AlertFilter(min_severity=9), "filter.min_severity: unknown Severity 9"),
        (pb.AlertFilter(kinds=[1, 99]), r"filter.kinds\[1\]: unknown AlertKind 99"),
        (pb.AlertFilter(kinds=[0]), r"filter.kinds\[0\]: unknown AlertKind 0"),
        (pb.AlertFilter(checks=[1, 2, 500]), r"filter.checks\[2\]: unknown RiskCheck 500"),
        (pb.AlertFilter(accounts=["a"] * (MAX_FILTER_VALUES + 1)), "filter.accounts: at most"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(flt: pb.AlertFilter, message: str) -> None:
    with pytest.raises(SubscribeError, match=message):
        alert_filter(flt)


def test_requests_parse_to_a_filter_and_after_seq() -> None:
    msg = pb.SubscribeAlertsRequest(
        filter=pb.AlertFilter(min_severity=pb.SEVERITY_WARNING, accounts=["A", "B"], checks=[1]),
        after_seq=42,
    )
    flt, after = subscribe_request(msg.SerializeToString())
    assert after == 42
    assert flt == AlertFilter(min_severity=WARNING, accounts=frozenset({"A", "B"}), checks=frozenset({1}))
    with pytest.raises(SubscribeError, match="malformed SubscribeAlertsRequest"):
        subscribe_request(b"\x0a\xff")


# ---------------------------------------------------------------------------------------- model


SPEC = st.fixed_dictionaries(
    {
        "severity": st.sampled_from([INFO, WARNING, CRITICAL]),
        "account": st.sampled_from(["", "A1", "A2"]),
        "kind": st.sampled_from([pb.ALERT_KIND_CHECK_REJECT, pb.ALERT_KIND_TRADING_STATE]),
    }
)
FLT = st.sampled_from(
    [
        ANY,
        AlertFilter(min_severity=CRITICAL),
        AlertFilter(accounts=frozenset({"A1"})),
        AlertFilter(kinds=frozenset({3})),
    ]
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.lists(SPEC, min_size=1, max_size=6)),
        st.tuples(st.just("subscribe"), FLT, st.integers(-1, 30)),  # -1: live only, else after_seq
        st.tuples(st.just("step"), st.integers(0, 5)),  # one step of subscriber i: replay, take or wait
        st.tuples(st.just("cancel"), st.integers(0, 5)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, queue_size=st.integers(1, 8), chunk=st.integers(1, 4), capacity=st.integers(3, 40))
def test_every_subscriber_gets_its_alerts_once_in_order_or_is_told(ops, queue_size, chunk, capacity) -> None:
    """Against a plain reference: a subscriber receives, in seq order and at most once, only
    matching alerts after its starting point; when it stays to the end it receives all of them
    except those reported as dropped or missed (missed counts every seq the history let go, so
    for a filtered subscriber it is an upper bound)."""
    hub, _, producer = hub_with(queue_size=queue_size, capacity=capacity, replay_chunk=chunk)
    subs: list[Sub] = []
    for op in ops:
        if op[0] == "publish":
            producer.emit(*op[1])
        elif op[0] == "subscribe":
            _, flt, after = op
            live_from = hub.last_seq
            sub = hub.register(flt, after_seq=max(after, 0))
            subs.append(Sub(sub, flt, min(after, live_from) if after > 0 else live_from))
        elif subs:
            s = subs[op[1] % len(subs)]
            if s.cancelled:
                continue
            if op[0] == "cancel":
                hub.remove(s.sub)
                s.cancelled = True
            elif s.sub.state == REPLAYING:
                s.add(decode(hub.replay_step(s.sub)))
            elif s.sub.state != WAITING:
                seqs, dropped, missed = decode(hub.take(s.sub))
                s.add((seqs, dropped, missed))
                if not seqs and not dropped:
                    idle(s.sub)
    for s in subs:
        expected = [a.seq for a in producer.published if a.seq > s.start and s.flt.matches(a)]
        if not s.cancelled:
            s.add(drain(hub, s.sub))
            hub.remove(s.sub)
        assert s.got == sorted(set(s.got)), "in order, never twice"
        assert set(s.got) <= set(expected)
        if s.cancelled:
            continue
        assert len(s.got) + s.dropped <= len(expected) <= len(s.got) + s.dropped + s.missed
        if s.flt.is_any:
            assert len(s.got) + s.dropped + s.missed == len(expected)
        if not s.dropped and not s.missed:
            assert s.got == expected
    assert hub.subscribers == 0 and hub.stats().groups == 0


class Sub:
    def __init__(self, sub: Subscriber, flt: AlertFilter, start: int) -> None:
        self.sub, self.flt, self.start = sub, flt, start
        self.got: list[int] = []
        self.dropped = self.missed = 0
        self.cancelled = False

    def add(self, response: tuple[list[int], int, int]) -> None:
        self.got += response[0]
        self.dropped += response[1]
        self.missed += response[2]


# ---------------------------------------------------------------------------------------- the RPC


def test_the_stream_re_raises_cancellation_and_forgets_the_subscriber(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through a real grpc.aio server: a client cancelling (while the handler waits, and while it
    is stuck in a write) ends hub.stream with CancelledError, never a normal return, which would
    leak native memory per RPC (grpc/grpc#43360), and with the subscriber gone."""
    import grpc

    from riskd.v1 import risk_pb2_grpc as pb_grpc

    async def main() -> list[str]:
        hub, _, producer = hub_with(queue_size=4)
        endings: list[str] = []

        async def handler(request: bytes, context: grpc.aio.ServicerContext) -> None:
            try:
                await hub.stream(request, context)
            except BaseException as exc:
                endings.append(type(exc).__name__)
                raise
            endings.append("returned")

        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "riskd.v1.RiskService", {"SubscribeAlerts": grpc.unary_stream_rpc_method_handler(handler)}
                ),
            )
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.http2.bdp_probe", 0)])
        stub = pb_grpc.RiskServiceStub(channel)
        waiting = stub.SubscribeAlerts(pb.SubscribeAlertsRequest())
        writing = stub.SubscribeAlerts(pb.SubscribeAlertsRequest(after_seq=0))
        assert dict(await waiting.initial_metadata())["riskd-alert-seq"] == "0"
        await writing.initial_metadata()
        for _ in range(40):  # never read: fills `writing`'s window until its write blocks (and `waiting`'s)
            producer.emit({"message": "x" * 20_000})
            await asyncio.sleep(0.01)
        assert hub.stats().dropped > 0
        waiting.cancel()
        writing.cancel()
        for _ in range(200):
            if len(endings) == 2:
                break
            await asyncio.sleep(0.01)
        assert hub.subscribers == 0 and hub.stats().groups == 0
        await channel.close()
        await server.stop(0)
        return endings

    assert asyncio.run(main()) == ["CancelledError", "CancelledError"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "a departed subscriber is not an error"
