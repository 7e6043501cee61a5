"""The dashboard's pure parts: views, the bounded state, SSE frames, per-browser queues, coalescing, backoff."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.canned_upstream import make_account, make_alert
from riskd.v1 import risk_pb2 as pb
from riskd_client.dashboard.model import FeedFilter, account_view, alert_view
from riskd_client.dashboard.sse import Feed, Hub, Subscriber, encode_frame
from riskd_client.dashboard.state import DashboardState
from riskd_client.dashboard.upstream import Backoff


def parse_frames(data: bytes) -> list[tuple[str, object]]:
    """SSE bytes -> [(event, payload)] as EventSource reads them (comments and retry skipped)."""
    out = []
    for block in data.decode().split("\n\n"):
        event, lines = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                lines.append(line[6:])
        if lines:
            out.append((event, json.loads("\n".join(lines))))
    return out


# ---------------------------------------------------------------------------------------- views


def test_alert_view_names_enums_and_makes_nan_null() -> None:
    a = make_alert(
        7, sev="CRITICAL", kind="CHECK_REJECT", check="MAX_ORDER_QUANTITY", account="A", symbol="S",
        limit_id="q1", observed=1500, threshold=float("nan"), order="o1", time=1700000000.25,
    )  # fmt: skip
    v = alert_view(a)
    assert v["seq"] == 7 and v["sev"] == "CRITICAL" and v["kind"] == "CHECK_REJECT"
    assert v["check"] == "MAX_ORDER_QUANTITY" and v["limit"] == "q1" and v["order"] == "o1"
    assert v["obs"] == 1500 and v["thr"] is None
    assert v["t"] == pytest.approx(1700000000.25)
    assert alert_view(make_alert(1, kind="OVERFILL"))["check"] == ""  # no check: empty, not UNSPECIFIED
    json.dumps(v, allow_nan=False)


def test_account_view_orders_positions_and_takes_max_utilisation() -> None:
    snap = make_account(
        "A",
        gross=10.0,
        net=-4.0,
        open_orders=3,
        state="HALTED",
        positions=[(f"S{i}", i, 1.0) for i in range(8)],
        limits=[("l1", "MAX_POSITION", "S1", 9, 10), ("l2", "MAX_GROSS_EXPOSURE", "", 5, 10)],
    )
    snap.positions.add(symbol="NOMARK", quantity=5, mark=float("nan"), value=float("nan"))
    v = account_view(snap, version=42)
    assert v["state"] == "HALTED" and v["open"] == 3 and v["v"] == 42 and v["npos"] == 9
    assert [p["symbol"] for p in v["positions"]] == ["S7", "S6", "S5", "S4", "S3"]  # largest |value| first
    assert v["max_util"] == pytest.approx(0.9)
    assert [lim["kind"] for lim in v["limits"]] == ["MAX_POSITION", "MAX_GROSS_EXPOSURE"]
    json.dumps(v, allow_nan=False)


def test_feed_filter_parses_flags_and_matches() -> None:
    f = FeedFilter.parse("warning", ["A"], ["max-order-quantity"], ["check_reject"])
    base = alert_view(
        make_alert(1, sev="WARNING", kind="CHECK_REJECT", check="MAX_ORDER_QUANTITY", account="A")
    )
    assert f.matches(base)
    assert not f.matches({**base, "sev": "INFO"})
    assert f.matches({**base, "sev": "CRITICAL"})
    assert not f.matches({**base, "account": "B"})
    assert not f.matches({**base, "check": "MAX_POSITION"})
    assert not f.matches({**base, "kind": "CHECK_WARNING"})
    assert FeedFilter().matches({**base, "sev": "INFO"})
    for bad in (("loud",), ("", [], ["max-fun"]), ("", [], [], ["party"])):
        with pytest.raises(ValueError):
            FeedFilter.parse(*bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- state


def test_state_skips_replayed_seqs_and_counts_losses() -> None:
    s = DashboardState("t", alert_buffer=3)
    assert [v["seq"] for v in s.seed_alerts([make_alert(2), make_alert(1)])] == [1, 2]  # newest-first page
    resp = pb.SubscribeAlertsResponse(alerts=[make_alert(2), make_alert(3)], missed=4, dropped=1)
    assert [v["seq"] for v in s.apply_alerts(resp)] == [3]
    assert s.alerts_duplicate == 1 and s.missed == 4 and s.dropped == 1 and s.last_seq == 3
    s.add_alerts([make_alert(i) for i in (4, 5, 6)])
    assert [a["seq"] for a in s.alerts] == [4, 5, 6]  # the ring keeps the newest alert_buffer


def test_state_account_cap_counts_refused_accounts_once() -> None:
    s = DashboardState("t", max_accounts=2)
    resp = pb.StreamRiskSnapshotsResponse(
        accounts=[make_account(n) for n in ("A", "B", "C")], state_version=5, firm_trading_state=3
    )
    assert [v["account"] for v in s.apply_snapshots(resp)] == ["A", "B"]
    assert s.accounts_refused == 1 and s.firm_state == "HALTED" and s.state_version == 5
    again = pb.StreamRiskSnapshotsResponse(
        accounts=[make_account("C"), make_account("A", gross=1)], state_version=6
    )
    assert [v["account"] for v in s.apply_snapshots(again)] == ["A"]
    assert s.accounts_refused == 1  # the same refused account is not counted twice
    assert s.accounts["A"]["gross"] == 1 and s.accounts["A"]["v"] == 6


def test_state_version_moves_on_every_visible_change() -> None:
    s = DashboardState("t")
    v0 = s.version
    s.add_alerts([make_alert(1)])
    v1 = s.version
    s.add_alerts([make_alert(1)])  # duplicate: nothing visible changed
    assert s.version == v1 > v0
    assert s.set_status("alerts", "live") and s.version > v1
    assert not s.set_status("alerts", "live")


# ---------------------------------------------------------------------------------------- frames and queues


def test_encode_frame_is_one_event_that_eventsource_parses() -> None:
    frame = encode_frame("alerts", {"msg": "line1\nline2 ünïcode"})
    assert frame.startswith(b"event: alerts\ndata: ") and frame.endswith(b"\n\n")
    assert frame.count(b"\n") == 3  # a raw newline inside data would split the event
    assert parse_frames(frame) == [("alerts", {"msg": "line1\nline2 ünïcode"})]
    with pytest.raises(ValueError):
        encode_frame("x", {"v": math.nan})


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 8), ops=st.lists(st.one_of(st.just("take"), st.integers(0, 20)), max_size=60))
def test_subscriber_queue_keeps_the_newest_and_counts_the_rest(limit: int, ops: list) -> None:
    """Against a plain reference: a list that drops from the front past `limit`."""

    async def run() -> None:
        sub = Subscriber(limit)
        ref: list[bytes] = []
        ref_dropped = 0
        n = 0
        for op in ops:
            if op == "take":
                if not ref:
                    continue  # take() would wait
                frames, dropped = await sub.take()
                assert frames == ref and dropped == ref_dropped
                ref, ref_dropped = [], 0
            else:
                for _ in range(op):
                    frame = str(n).encode()
                    n += 1
                    sub.push(frame)
                    ref.append(frame)
                    if len(ref) > limit:
                        ref.pop(0)
                        ref_dropped += 1
                assert len(sub) == len(ref) <= limit

    asyncio.run(run())


def test_hub_publish_never_waits_for_a_slow_subscriber() -> None:
    async def run() -> None:
        hub = Hub(queue_frames=4, max_subscribers=3)
        fast, slow = hub.subscribe(), hub.subscribe()
        assert fast is not None and slow is not None
        got: list[bytes] = []
        for i in range(100):
            hub.publish(b"%d" % i)  # synchronous: returns without any subscriber reading
            frames, _ = await fast.take()
            got.extend(frames)
        assert got == [b"%d" % i for i in range(100)]
        frames, dropped = await slow.take()
        assert frames == [b"96", b"97", b"98", b"99"] and dropped == 96
        assert hub.stats()["frames_dropped"] == 96
        third, fourth = hub.subscribe(), hub.subscribe()
        assert third is not None and fourth is None and hub.refused == 1
        for sub in (fast, slow, third):
            hub.unsubscribe(sub)
        assert len(hub) == 0 and hub.slow_subscribers == 1
        assert (await slow.take()) == ([], 0) and slow.closed  # a closed queue wakes its writer

    asyncio.run(run())


def test_feed_coalesces_bursts_and_counts_what_a_frame_leaves_out() -> None:
    async def run() -> None:
        state = DashboardState("t", alert_buffer=10)
        hub = Hub()
        sub = hub.subscribe()
        assert sub is not None
        feed = Feed(state, hub, alert_interval=0.05, account_interval=0.05)
        feed.alerts(state.add_alerts([make_alert(1)]))  # the first goes out at once
        assert hub.published == 1
        for seq in range(2, 40):
            feed.alerts(state.add_alerts([make_alert(seq)]))
        assert hub.published == 1  # the rest wait for one frame
        await asyncio.sleep(0.12)
        assert hub.published == 2
        frames, _ = await sub.take()
        events = parse_frames(b"".join(frames))
        assert events[0][1]["alerts"][0]["seq"] == 1
        second = events[1][1]
        assert [a["seq"] for a in second["alerts"]] == list(range(30, 40))  # newest max_alerts_per_frame
        assert second["skipped"] == 28
        await asyncio.sleep(0.2)
        assert hub.published == 2  # idle: no timer fires, nothing is sent
        feed.accounts(state.apply_snapshots(pb.StreamRiskSnapshotsResponse(accounts=[make_account("A")])))
        assert hub.published == 3
        feed.close()

    asyncio.run(run())


def test_sync_frame_is_built_once_per_state_version() -> None:
    async def run() -> None:
        state = DashboardState("t")
        feed = Feed(state, Hub())
        first = feed.sync_frame()
        assert feed.sync_frame() is first and feed.sync_built == 1
        state.add_alerts([make_alert(1)])
        second = feed.sync_frame()
        assert second is not first and feed.sync_built == 2
        (event, payload), = parse_frames(second)  # fmt: skip
        assert event == "sync" and [a["seq"] for a in payload["alerts"]] == [1]  # type: ignore[index]

    asyncio.run(run())


# ---------------------------------------------------------------------------------------- backoff


def test_backoff_grows_with_jitter_to_its_cap_and_resets() -> None:
    low = Backoff(base=0.5, cap=4.0, rng=lambda: 0.0)
    assert [low.next() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    high = Backoff(base=0.5, cap=4.0, rng=lambda: 1.0)
    assert [high.next() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    high.reset()
    assert high.next() == 0.5
    rnd = Backoff(base=0.1, cap=1.0)
    for _ in range(200):
        assert 0.05 <= rnd.next() <= 1.0
    with pytest.raises(ValueError):
        Backoff(base=2.0, cap=1.0)
