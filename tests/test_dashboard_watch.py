"""`riskd watch` run for a moment against the canned RiskService; its last screen is checked.

Off a terminal, rich's Live prints its final screen when it stops (--duration), which is what
a script or this test reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fix_dashboard import RUN_CLI, CannedServer


def run_watch(target: str, *flags: str, during: object = None, duration: float = 5.0) -> str:
    env = {**os.environ, "COLUMNS": "220", "LINES": "60", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "watch", "--target", target, "--duration", str(duration), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if callable(during):
        time.sleep(duration / 2)
        during()
    out, err = proc.communicate(timeout=duration + 30)
    assert proc.returncode == 0, err
    return out


def test_watch_shows_accounts_by_utilisation_and_the_live_feed(canned_server: CannedServer) -> None:
    live = []

    def raise_one() -> None:
        live.append(
            canned_server.call(
                canned_server.service.raise_alert,
                sev="CRITICAL",
                kind="CHECK_REJECT",
                check="MAX_POSITION",
                account="ACC-EQ-01",
                observed=15500,
                threshold=15000,
                message="live one: position 15500 > 15000",
            )
        )

    out = run_watch(canned_server.target, during=raise_one)
    assert "alerts live" in out and "snapshots live" in out
    lines = out.splitlines()
    account_rows = [ln for ln in lines if ln.startswith("ACC-")]
    assert [row.split()[0] for row in account_rows] == [
        "ACC-FX-07", "ACC-ARB-12", "ACC-EQ-01", "ACC-DESK-3", "ACC-MM-02",
    ]  # fmt: skip
    fx = next(ln for ln in account_rows if ln.startswith("ACC-FX-07"))
    assert "REDUCING" in fx and "21.00M" in fx and "105.0%" in fx and "gross exposure" in fx
    feed = [ln for ln in lines if ln[:2].isdigit() and ln[2] == ":"]
    assert "live one: position 15500 > 15000" in feed[0]  # newest first, arrived while running
    assert len(feed) == 9 and "CRITICAL" in feed[0]


def test_watch_filters_the_feed_by_flags(canned_server: CannedServer) -> None:
    out = run_watch(canned_server.target, "--severity", "critical", duration=3.0)
    feed = [ln for ln in out.splitlines() if ln[:2].isdigit() and ln[2] == ":"]
    assert len(feed) == 2 and all("CRITICAL" in ln for ln in feed)
    out = run_watch(canned_server.target, "--account", "ACC-MM-02", "--check", "price-collar", duration=3.0)
    feed = [ln for ln in out.splitlines() if ln[:2].isdigit() and ln[2] == ":"]
    assert len(feed) == 1 and "ACC-MM-02" in feed[0] and "mm-5530" in feed[0]


def test_watch_refuses_an_unknown_filter_value() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "watch", "--target", "127.0.0.1:1", "--check", "max-fun"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "unknown check 'MAX_FUN'" in proc.stderr
