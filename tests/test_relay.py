"""Alert relays (alerts.relay, alerts.relays): the wire cutting and the feed's bookkeeping as pure
steps, then end to end: `riskd serve --alert-relays 2` (the riskd_server fixture) with the real
async client subscribed to the relays' shared port, and a standalone `riskd relay` that keeps its
subscribers through a restart of the server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from fix_server import RiskdServer
from test_fanout_e2e import Collector, Publisher, await_until, free_port, make_alert

from riskd.v1 import risk_pb2 as pb
from riskd_client import AsyncRiskClient
from riskd_server.alerts.fanout import AlertHub
from riskd_server.alerts.history import AlertHistory
from riskd_server.alerts.model import CRITICAL, AlertFilter
from riskd_server.alerts.relay import BANNER, RelayFeed, WireError, alert_of, split_response
from riskd_server.alerts.relays import loopback_target, relay_listen

# ---------------------------------------------------------------------------------------- pure


def response(seqs: list[int], dropped: int = 0, missed: int = 0) -> bytes:
    msg = pb.SubscribeAlertsResponse(
        alerts=[make_alert(s).to_pb() for s in seqs], dropped=dropped, missed=missed
    )
    return msg.SerializeToString()


def test_split_response_cuts_entries_out_unchanged_and_reads_the_counts() -> None:
    data = response([1, 2, 3], dropped=7, missed=2)
    entries, dropped, missed = split_response(data)
    assert (dropped, missed) == (7, 2)
    assert [alert_of(e).seq for e in entries] == [1, 2, 3]
    assert entries == [make_alert(s).wire for s in (1, 2, 3)]  # the server's bytes, as sent
    assert alert_of(entries[1]) == make_alert(2) and alert_of(entries[1]).wire == entries[1]
    # A newer server's unknown fields (varint, fixed64, fixed32, bytes) are skipped.
    extra = b"\x20\x05" + b"\x29" + bytes(8) + b"\x35" + bytes(4) + b"\x3a\x02hi"
    assert split_response(data + extra) == (entries, 7, 2)


@pytest.mark.parametrize(
    "bad", [b"\x0a\x05abc", b"\x10", b"\x29\x00", b"\x0b", b"\x0a" + b"\xff" * 11], ids=str
)
def test_split_response_refuses_truncated_or_unknown_wire(bad: bytes) -> None:
    with pytest.raises(WireError):
        split_response(bad)


def feed(capacity: int = 100) -> tuple[RelayFeed, AlertHub]:
    history = AlertHistory(capacity)
    hub = AlertHub(history)
    return RelayFeed("unused:1", history, hub), hub


def test_the_feed_keeps_each_alert_once_in_order_and_reports_gaps() -> None:
    f, hub = feed()
    assert f.take(response([1, 2, 3])) == 0
    assert f.take(response([2, 3, 4, 5], dropped=3)) == 3  # a resume's replay overlaps: kept once
    assert f.last_seq == 5 and len(f.history) == 5 and f.stats.received == 5
    assert hub.stats().published == 5
    assert f.take(response([], missed=4)) == 0
    assert f.stats.missed == 4
    alerts, missed = f.history.after(0, AlertFilter())
    assert [a.seq for a in alerts] == [1, 2, 3, 4, 5] and missed == 0


def test_the_feed_starts_a_fresh_history_when_the_server_numbering_starts_again() -> None:
    f, hub = feed()
    f.take(response([1, 2, 3]))
    f._renumbered(0)
    assert f.last_seq == 0 and hub.history is f.history and len(f.history) == 0
    f.take(response([1]))
    assert f.last_seq == 1


def test_relay_addresses() -> None:
    assert relay_listen("", "127.0.0.1:50051") == "127.0.0.1:50052"
    assert relay_listen("", "[::]:0") == "[::]:0"
    assert relay_listen("0.0.0.0:7000", "127.0.0.1:50051") == "0.0.0.0:7000"
    assert loopback_target("0.0.0.0:50051", 50051) == "127.0.0.1:50051"
    assert loopback_target("[::]:1", 9) == "127.0.0.1:9"
    assert loopback_target("10.0.0.5:1", 9) == "10.0.0.5:9"


# ---------------------------------------------------------------------------------------- serve


@pytest.mark.parametrize("riskd_settings", [{"alert_relays": 2, "alert_relay_listen": "127.0.0.1:0"}])
def test_serve_with_two_relays_fans_out_filters_and_replays(riskd_server: RiskdServer) -> None:
    running = riskd_server.running
    assert running is not None and running.relays is not None
    relays = running.relays
    assert relays.port and len(relays.pids) == 2
    target = f"127.0.0.1:{relays.port}"
    publisher = Publisher(riskd_server)
    publisher.wait_subscribers(2)  # one upstream stream per relay, whatever follows
    publisher.emit({}, {"severity": CRITICAL, "account": "A1"})

    async def main() -> tuple[list[Collector], Collector]:
        clients = [AsyncRiskClient(target) for _ in range(4)]  # channels: spread over both relays
        everyone = [Collector() for _ in range(12)]
        tasks = [
            asyncio.create_task(c.read(clients[i % 4].subscribe_alerts(after_seq=1)))
            for i, c in enumerate(everyone)
        ]
        critical = Collector()
        tasks.append(asyncio.create_task(critical.read(clients[0].subscribe_alerts(min_severity="critical"))))
        await await_until(lambda: all(c.seqs == [2] for c in everyone), 30.0, "replay from the relays")
        await asyncio.sleep(0.2)  # every subscription registered (the replayed ones are)
        await asyncio.to_thread(publisher.emit, {}, {"severity": CRITICAL, "account": "A2"}, {})
        await await_until(lambda: all(c.seqs == [2, 3, 4, 5] for c in everyone), 30.0, "live")
        await await_until(lambda: critical.seqs == [4], 30.0, "filtered")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.close()
        return everyone, critical

    everyone, critical = asyncio.run(main())
    for c in everyone:
        assert c.dropped == 0 and c.missed == 0
    assert critical.alerts[0].account == "A2" and critical.alerts[0].severity == "CRITICAL"
    # The server itself wrote to the two relays only.
    assert publisher.subscribers() == 2


# ---------------------------------------------------------------------------------------- standalone


def start_relay(target: str, port: int, *args: str) -> subprocess.Popen[str]:
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "riskd"),
        "relay",
        "--target",
        target,
        "--listen",
        f"127.0.0.1:{port}",
        "--no-uvloop",
        *args,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(BANNER), line
    return proc


@pytest.mark.parametrize("riskd_settings", [{"listen": f"127.0.0.1:{free_port()}", "grace": 1.0}])
def test_a_standalone_relay_keeps_its_subscribers_through_a_server_restart(
    riskd_server: RiskdServer,
) -> None:
    publisher = Publisher(riskd_server)
    port = free_port()
    relay = start_relay(riskd_server.target, port, "--history", "50")
    try:
        publisher.wait_subscribers(1)
        publisher.emit(*[{}] * 3)

        async def main() -> Collector:
            async with AsyncRiskClient(f"127.0.0.1:{port}") as client:
                c = Collector()
                task = asyncio.create_task(c.read(client.subscribe_alerts(after_seq=1)))
                await await_until(lambda: c.seqs == [2, 3], 30.0, "replay")
                await asyncio.to_thread(riskd_server.restart)  # the relay reconnects upstream
                # The restarted test server holds no alerts (the publisher bypasses the database);
                # the seqs go on from 4, as they would from PostgreSQL.
                publisher.seq = 3
                await asyncio.to_thread(publisher.wait_subscribers, 1, 30.0)
                await asyncio.to_thread(publisher.emit, *[{}] * 2)
                await await_until(lambda: c.seqs == [2, 3, 4, 5], 30.0, "after the restart")
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return c

        c = asyncio.run(main())
        assert c.dropped == 0 and c.missed == 0
    finally:
        relay.terminate()
        assert relay.wait(10) == 0


def test_relay_refuses_bad_settings() -> None:
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "riskd"), "relay", "--target", "x:1", "--queue", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--queue must be at least 1" in out.stderr
