"""The web dashboard in a real browser: Debian's chromium, headless, driven over DevTools from pytest.

`riskd dashboard` runs as its own process, as a desk would run it. The first test drives it over
the canned RiskService (bench/canned_upstream.py: a real grpc.aio server with canned data),
so the page, its filters and its connection state are tested whatever the server implements.
The last one is the issue's end-to-end test: the real riskd server, a breach through the gRPC
API, the alert on the page.

RISKD_DASHBOARD_SCREENSHOT=PATH saves the canned test's screenshot there (docs/dashboard.png).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import grpc
import pytest
from cdp import Browser, CdpError
from fix_dashboard import CannedServer, DashboardProcess
from fix_server import RiskdServer

from bench.canned_upstream import make_account
from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc
from riskd_client import LimitSpec, Order, Position, RiskClient

ROWS = "document.querySelectorAll('#feed tbody tr').length"


def feed_rows(attr: str) -> str:
    """JS: the attribute of every alert row drawn, in order."""
    return f"[...document.querySelectorAll('#feed tbody tr')].map(r => r.dataset.{attr})"


async def wait_feed(page: Browser, attr: str, expected: set[str], timeout: float = 5.0) -> None:
    """Wait until the drawn alert rows carry exactly these values (the page redraws on the next frame)."""
    deadline = time.monotonic() + timeout
    while (seen := set(await page.evaluate(feed_rows(attr)))) != expected:
        assert time.monotonic() < deadline, f"feed shows {attr} {seen}, expected {expected}"
        await asyncio.sleep(0.05)


def test_page_shows_accounts_and_live_alerts_filters_and_connection_state(
    chromium: str, canned_server: CannedServer, dashboard_process, tmp_path: Path
) -> None:
    dash = dashboard_process(canned_server.target)
    dash.wait_stats(lambda s: s["upstream"]["streams"]["alerts"]["state"] == "live")

    async def run() -> None:
        async with Browser(chromium, 1920, 1080) as page:
            await page.goto(dash.url + "/")
            await page.wait_for("document.querySelectorAll('#accounts tbody tr').length === 5")
            await page.wait_for(f"{ROWS} === 8")
            assert await page.evaluate("document.body.dataset.link") == "live"
            assert await page.evaluate("document.body.dataset.alerts") == "live"
            # Accounts: closest to their limits first, breaches in red, states as badges.
            accounts = await page.evaluate(
                "[...document.querySelectorAll('#accounts tbody tr')].map(r => r.dataset.account)"
            )
            assert accounts[:2] == ["ACC-FX-07", "ACC-ARB-12"]
            bar = await page.evaluate(
                "document.querySelector('#accounts tr[data-account=\"ACC-FX-07\"] .lim').className"
            )
            assert "l4" in bar  # 105 %: the breach colour
            assert (
                await page.evaluate("document.querySelector('#accounts .state.HALTED').textContent")
                == "HALTED"
            )

            # A live alert appears without a reload, at the top.
            t0 = time.monotonic()
            alert = canned_server.call(
                canned_server.service.raise_alert,
                sev="CRITICAL", kind="CHECK_REJECT", check="MAX_POSITION", account="ACC-EQ-01", symbol="AAPL",
                limit_id="eq01-pos-aapl", observed=15500, threshold=15000, order="o-9001",
                message="order o-9001 position 15500 > 15000",
            )  # fmt: skip
            await page.wait_for(f"document.querySelector('#feed tr[data-seq=\"{alert.seq}\"]')", timeout=5)
            assert time.monotonic() - t0 < 2.0
            assert (await page.evaluate(feed_rows("seq")))[0] == str(alert.seq)
            assert await page.evaluate("document.getElementById('k-crit').textContent") == "3"

            # Filters: severity, account, check (as a person picks them), then clear.
            await page.set_value("#f-severity", "CRITICAL")
            await wait_feed(page, "sev", {"CRITICAL"})
            await page.set_value("#f-severity", "WARNING")
            await wait_feed(page, "sev", {"WARNING", "CRITICAL"})
            await page.set_value("#f-severity", "")
            await page.set_value("#f-account", "ACC-MM-02", "input")
            await wait_feed(page, "account", {"ACC-MM-02"})
            await page.set_value("#f-account", "", "input")
            await page.set_value("#f-check", "MAX_POSITION")
            await wait_feed(page, "seq", {str(alert.seq)})
            assert "check=MAX_POSITION" in await page.evaluate("location.hash")  # a view can be shared
            await page.evaluate("document.getElementById('f-clear').click()")
            await page.wait_for(f"{ROWS} === 9")

            # An account update redraws its row.
            canned_server.call(
                canned_server.service.set_accounts,
                [make_account("ACC-DESK-3", gross=2.5e6, state="HALTED", limits=[("d3-qty", "MAX_ORDER_QUANTITY", "", 990, 1000)])],
            )  # fmt: skip
            await page.wait_for(
                "document.querySelector('#accounts tr[data-account=\"ACC-DESK-3\"]').dataset.state === 'HALTED'"
            )

            await page.screenshot(tmp_path / "dashboard.png")
            target = os.environ.get("RISKD_DASHBOARD_SCREENSHOT")
            if target:
                shutil.copy(tmp_path / "dashboard.png", target)

            # The risk server goes away: the page says so; it comes back: live again, nothing lost.
            canned_server.loop.run(canned_server.service.stop())
            await page.wait_for("document.body.dataset.alerts === 'reconnecting'", timeout=10)
            banner = await page.evaluate("document.getElementById('banner').textContent")
            assert "alerts stream reconnecting" in banner
            later = canned_server.call(
                canned_server.service.raise_alert, sev="WARNING", account="ACC-R", message="raised while away"
            )
            canned_server.loop.run(canned_server.service.start())
            await page.wait_for(f"document.querySelector('#feed tr[data-seq=\"{later.seq}\"]')", timeout=15)
            await page.wait_for(
                "document.body.dataset.alerts === 'live' && document.getElementById('banner').hidden",
                timeout=10,
            )
            assert page.console == []  # no script errors

    asyncio.run(run())
    stats = dash.stats()
    assert stats["hub"]["connected_total"] >= 1 and stats["upstream"]["errors"]["alerts"] >= 1


def why_no_alert(target: str, dash: DashboardProcess) -> str:
    """A failure message that says which part did not deliver: the server's history or its stream."""
    try:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.RiskServiceStub(channel)
            held = stub.QueryAlerts(pb.QueryAlertsRequest(page_size=100), timeout=10).alerts
    except grpc.RpcError as exc:
        return f"no alert on the page, and QueryAlerts failed too ({exc.code().name}: {exc.details()})"
    rejects = [a.seq for a in held if a.kind == pb.ALERT_KIND_CHECK_REJECT and a.account == "ACC1"]
    upstream = dash.stats()["upstream"]
    if not rejects:
        return f"the server raised no CHECK_REJECT alert for ACC1 (QueryAlerts holds {len(held)} alerts)"
    return (
        f"the server holds the CHECK_REJECT alert (seq {rejects}) but SubscribeAlerts never delivered it "
        f"to the dashboard (responses {upstream['responses']}, streams {upstream['streams']})"
    )


def test_breach_through_the_grpc_api_shows_on_the_page(
    chromium: str, riskd_server: RiskdServer, dashboard_process
) -> None:
    """The issue's end-to-end test: a real server, a real breach, the alert on the page."""
    dash = dashboard_process(riskd_server.target)
    stats = dash.wait_stats(lambda s: s["upstream"]["streams"]["alerts"]["state"] in ("live", "unavailable"))
    if stats["upstream"]["streams"]["alerts"]["state"] == "unavailable":
        pytest.xfail(
            "the server does not implement SubscribeAlerts yet ("
            + stats["upstream"]["streams"]["alerts"]["detail"]
            + "): this test passes once the alert fan-out is on main"
        )
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        client.update_prices({"AAPL": 10.0})
        client.load_positions([Position("ACC1", "AAPL", 50)])
        client.upsert_limits(LimitSpec("acc1-qty", "MAX_ORDER_QUANTITY", 100, account="ACC1"))

        async def run() -> None:
            async with Browser(chromium) as page:
                await page.goto(dash.url + "/")
                await page.wait_for("document.body.dataset.link === 'live'")
                results = client.check([Order("o-big", "ACC1", "AAPL", "BUY", 500, 10.0)])
                assert not results.all_accepted
                row = 'document.querySelector(\'#feed tr[data-kind="CHECK_REJECT"][data-account="ACC1"][data-check="MAX_ORDER_QUANTITY"]\')'
                try:
                    await page.wait_for(row, timeout=10)
                except CdpError:
                    raise AssertionError(why_no_alert(riskd_server.target, dash)) from None
                text = await page.evaluate(row + ".textContent")
                assert "ACC1" in text and "500" in text and "100" in text
                if stats["upstream"]["streams"]["snapshots"]["state"] != "unavailable":
                    await page.wait_for(
                        "document.querySelector('#accounts tr[data-account=\"ACC1\"]')", timeout=10
                    )
                assert page.console == []

        asyncio.run(run())
