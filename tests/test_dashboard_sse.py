"""The SSE tier end to end against a real grpc.aio RiskService with canned data (bench/canned_upstream.py).

The dashboard runs in-process on a loopback port, browsers are HTTP clients reading the event
stream (and one raw socket that never reads). The real-server and real-browser tests are in
test_dashboard_browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
from sse_client import SseClient, has_alert, stream_state

from bench.canned_upstream import CannedRiskService, demo_data, make_account
from riskd_client.dashboard.web import Dashboard, DashboardSettings


@contextlib.asynccontextmanager
async def running_dashboard(target: str, **overrides: Any) -> AsyncIterator[tuple[Dashboard, str]]:
    settings = DashboardSettings(
        target=target, listen="127.0.0.1:0", backoff_base=0.1, backoff_cap=0.5, **overrides
    )
    dashboard = Dashboard(settings)
    stop = asyncio.Event()
    bound: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(dashboard.run(stop, bound.set_result))
    address = await asyncio.wait_for(asyncio.shield(bound), 10)
    try:
        yield dashboard, f"http://{address}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def canned(history: int = 1000, demo: bool = True) -> AsyncIterator[CannedRiskService]:
    service = CannedRiskService(history)
    if demo:
        demo_data(service)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(0.02)


def test_new_browser_gets_accounts_and_recent_alerts_first_then_live_updates() -> None:
    async def run() -> None:
        async with canned() as service, running_dashboard(service.target) as (dash, url):
            await wait_until(lambda: dash.state.streams["alerts"].state == "live", what="alerts live")
            await wait_until(lambda: len(dash.state.accounts) == 5, what="accounts")
            async with aiohttp.ClientSession() as session:
                browser = await SseClient(session, url + "/events").open()
                event, sync = await browser.next()
                assert event == "sync"
                assert sorted(a["account"] for a in sync["accounts"]) == sorted(service.accounts)
                assert [a["seq"] for a in sync["alerts"]] == list(
                    range(1, 9)
                )  # oldest first, from QueryAlerts
                assert sync["status"]["streams"]["snapshots"]["state"] == "live"
                assert service.query_requests[0].page_size == dash.settings.alert_buffer
                assert service.subscribe_requests[-1].after_seq == 8  # resumes after the seeded history

                t0 = time.monotonic()
                alert = service.raise_alert(
                    sev="CRITICAL", kind="TRADING_STATE", account="ACC-EQ-01", message="halt"
                )
                event, data = await browser.until(has_alert(alert.seq), timeout=2)
                assert time.monotonic() - t0 < 1.0
                (view,) = [a for a in data["alerts"] if a["seq"] == alert.seq]
                assert view["sev"] == "CRITICAL" and view["account"] == "ACC-EQ-01" and view["msg"] == "halt"

                service.set_accounts(
                    [make_account("ACC-NEW", gross=5.0, limits=[("x", "MAX_POSITION", "S", 9, 10)])]
                )
                event, data = await browser.until(lambda e: e[0] == "accounts")
                (row,) = data["accounts"]
                assert row["account"] == "ACC-NEW" and row["max_util"] == 0.9

                late = await SseClient(
                    session, url + "/events"
                ).open()  # a later browser starts from the new state
                _, sync2 = await late.next()
                assert alert.seq in [a["seq"] for a in sync2["alerts"]]
                assert "ACC-NEW" in [a["account"] for a in sync2["accounts"]]
                browser.close()
                late.close()
            assert (
                len(service.subscribe_requests) == 1 and len(service.snapshot_requests) == 1
            )  # one upstream each

    asyncio.run(run())


def test_one_upstream_subscription_serves_many_browsers() -> None:
    async def run() -> None:
        async with canned() as service, running_dashboard(service.target) as (dash, url):
            await wait_until(lambda: dash.state.streams["alerts"].state == "live")
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                browsers = [await SseClient(session, url + "/events").open() for _ in range(50)]
                for b in browsers:
                    assert (await b.next())[0] == "sync"
                published = dash.hub.published
                alert = service.raise_alert(account="ACC-MM-02")
                for b in browsers:
                    await b.until(has_alert(alert.seq), timeout=5)
                assert dash.hub.published == published + 1  # serialised once for all 50
                assert dash.hub.direct >= 40  # idle sockets: written at once, no writer task woken
                assert len(service.alert_subscribers) == 1 and len(service.snapshot_subscribers) == 1
                for b in browsers:
                    b.close()

    asyncio.run(run())


def test_a_slow_browser_neither_delays_others_nor_grows_its_queue() -> None:
    async def run() -> None:
        async with (
            canned(demo=False) as service,
            running_dashboard(service.target, queue_frames=8, alert_interval=0.0) as (dash, url),
        ):
            await wait_until(lambda: dash.state.streams["alerts"].state == "live")
            host, port = url.removeprefix("http://").rsplit(":", 1)
            # The slow browser: asks for the stream, then reads nothing (a small receive buffer fills fast).
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect((host, int(port)))
            slow.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            await wait_until(lambda: len(dash.hub) == 1, what="slow browser connected")
            async with aiohttp.ClientSession() as session:
                fast = await SseClient(session, url + "/events").open()
                await fast.next()
                delays = []
                for i in range(200):  # 8 MB: past the loopback socket buffers (4 MB), then the queue
                    t0 = time.monotonic()
                    alert = service.raise_alert(account="ACC", message=f"{i:04d} " + "x" * 40_000)
                    await fast.until(has_alert(alert.seq), timeout=2)
                    delays.append(time.monotonic() - t0)
                assert max(delays) < 1.0, max(delays)  # the stuck browser holds back no one
                stats = dash.hub.stats()
                assert stats["frames_dropped"] > 0
                slow_subs = [s for s in dash.hub._subscribers if s.dropped_total]
                assert (
                    len(slow_subs) == 1 and len(slow_subs[0]) <= 8
                )  # bounded, and only the slow one dropped

                # The slow browser now reads: it is told it missed frames and gets a fresh full view.
                slow.setblocking(False)
                loop = asyncio.get_running_loop()
                received = b""
                async with asyncio.timeout(10):
                    while b"event: missed" not in received or received.count(b"event: sync") < 2:
                        received += await loop.sock_recv(slow, 1 << 20)
                tail = received[received.index(b"event: missed") :]
                assert tail.index(b"event: sync") > 0  # missed, then the re-sync
                fast.close()
            slow.close()
            await wait_until(lambda: len(dash.hub) == 0, what="both browsers gone")

    asyncio.run(run())


def test_closed_browsers_leave_no_queue_or_task_behind() -> None:
    async def run() -> None:
        async with canned() as service, running_dashboard(service.target) as (dash, url):
            await wait_until(lambda: dash.state.streams["snapshots"].state == "live")
            baseline = len(asyncio.all_tasks())
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                browsers = [await SseClient(session, url + "/events").open() for _ in range(30)]
                for b in browsers:
                    await b.next()
                assert len(dash.hub) == 30
                assert len(asyncio.all_tasks()) >= baseline + 30  # one handler task per browser
                for b in browsers:
                    b.close()
                await wait_until(lambda: len(dash.hub) == 0, what="queues removed")  # idle: no write needed
                await wait_until(lambda: len(asyncio.all_tasks()) <= baseline, what="handler tasks gone")
            service.raise_alert()  # publishing to nobody is fine
            assert dash.hub.connected_total == 30

    asyncio.run(run())


def test_reconnects_after_a_server_restart_and_resumes_after_the_last_seq() -> None:
    async def run() -> None:
        async with canned(history=5) as service, running_dashboard(service.target) as (dash, url):
            await wait_until(lambda: dash.state.streams["alerts"].state == "live")
            async with aiohttp.ClientSession() as session:
                browser = await SseClient(session, url + "/events").open()
                await browser.next()
                await service.stop()
                await browser.until(stream_state("alerts", "reconnecting"), timeout=5)
                assert dash.state.streams["alerts"].detail.startswith("UNAVAILABLE")
                # While it is down the server raises 3 alerts: 9, 10, 11 (its history holds 5: 7..11).
                raised = [service.raise_alert(account="ACC-R", message=f"while down {i}") for i in range(3)]
                await service.start()
                mark = len(browser.events)
                await browser.until(has_alert(raised[-1].seq), timeout=10)
                replayed = [a["seq"] for e, d in browser.events[mark:] if e == "alerts" for a in d["alerts"]]
                assert replayed == [a.seq for a in raised]
                assert any(
                    stream_state("alerts", "live")(e) for e in browser.events[mark:]
                )  # the page saw it
                assert service.subscribe_requests[-1].after_seq == 8
                assert dash.state.streams["alerts"].connects == 2 and dash.state.missed == 0

                # A longer outage: more alerts than the server's history holds -> `missed` on the page.
                await service.stop()
                await browser.until(stream_state("alerts", "reconnecting"), timeout=5)
                for i in range(8):
                    service.raise_alert(message=f"long outage {i}")  # 12..19, history keeps 15..19
                await service.start()
                _, status = await browser.until(lambda e: e[0] == "status" and e[1]["missed"] > 0, timeout=10)
                assert status["missed"] == 3 and dash.state.last_seq == 19
                browser.close()

    asyncio.run(run())


def test_resumes_from_the_servers_seq_header_when_no_alert_came_before_the_restart() -> None:
    """No history to seed from (QueryAlerts unimplemented) and no alert on the stream: the seq the
    server announces when it registers the stream is where the dashboard resumes after a restart."""

    async def run() -> None:
        async with canned(demo=False) as service:
            service.query_alerts = False
            for i in range(3):
                service.raise_alert(message=f"before {i}")  # seqs 1..3, never sent to the dashboard
            async with running_dashboard(service.target) as (dash, _):
                await wait_until(lambda: dash.state.streams["alerts"].state == "live")
                assert dash.state.last_seq == 3 and len(dash.state.alerts) == 0
                await service.stop()
                await wait_until(lambda: dash.state.streams["alerts"].state == "reconnecting")
                raised = [service.raise_alert(message=f"while down {i}") for i in range(2)]
                await service.start()
                await wait_until(lambda: dash.state.last_seq == 5, what="replayed")
                assert service.subscribe_requests[-1].after_seq == 3
                assert [a["seq"] for a in dash.state.alerts] == [a.seq for a in raised]

    asyncio.run(run())


def test_a_server_without_the_rpcs_is_shown_unavailable_and_retried_with_growing_waits() -> None:
    async def run() -> None:
        bare = grpc.aio.server()  # a gRPC server with no RiskService: every call is UNIMPLEMENTED
        port = bare.add_insecure_port("127.0.0.1:0")
        await bare.start()
        try:
            async with (
                running_dashboard(f"127.0.0.1:{port}") as (dash, url),
                aiohttp.ClientSession() as session,
            ):
                await wait_until(lambda: dash.state.streams["alerts"].state == "unavailable")
                await asyncio.sleep(2.0)
                for name in ("alerts", "snapshots"):
                    assert dash.state.streams[name].state == "unavailable"
                    assert dash.state.streams[name].detail.startswith("UNIMPLEMENTED")
                    # waits 0.05-0.1, 0.1-0.2, 0.2-0.4, then 0.25-0.5 s (cap 0.5): not a hot loop
                    assert 3 <= dash.upstream.errors[name] <= 12, dash.upstream.errors
                browser = await SseClient(session, url + "/events").open()
                _, sync = await browser.next()
                assert sync["status"]["streams"]["alerts"]["state"] == "unavailable"
                browser.close()
        finally:
            await bare.stop(None)

    asyncio.run(run())


def test_connection_limit_refuses_with_503_and_page_assets_are_local() -> None:
    async def run() -> None:
        async with (
            canned() as service,
            running_dashboard(service.target, max_connections=2) as (dash, url),
            aiohttp.ClientSession() as session,
        ):
            await wait_until(lambda: len(dash.state.accounts) == 5, what="accounts")
            held = [await SseClient(session, url + "/events").open() for _ in range(2)]
            async with session.get(url + "/events") as resp:
                assert resp.status == 503 and resp.headers["Retry-After"] == "5"
            assert dash.hub.refused == 1
            for b in held:
                b.close()
            async with session.get(url + "/") as resp:
                page = await resp.text()
                assert resp.status == 200 and "/static/dashboard.js" in page
            for name in ("dashboard.js", "dashboard.css", "favicon.svg"):
                async with session.get(f"{url}/static/{name}") as resp:
                    body = await resp.text()
                    assert resp.status == 200
                    assert "http://" not in body.replace('"http://www.w3.org/2000/svg"', "")
                    assert "https://" not in body  # nothing loaded from the internet
            assert "https://" not in page and "http://" not in page
            async with session.get(url + "/static/../web.py") as resp:
                assert resp.status == 404
            async with session.get(url + "/api/stats") as resp:
                stats = await resp.json()
                assert stats["hub"]["refused"] == 1 and stats["state"]["accounts"] == 5

    asyncio.run(run())
