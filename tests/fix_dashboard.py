"""pytest plugin for the dashboard tests: `riskd dashboard` as a real process, the canned
RiskService on a loop thread, and headless chromium (failing loudly in CI when it is missing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cdp import find_chromium
from fix_server import LoopThread

from bench.canned_upstream import CannedRiskService, demo_data

RUN_CLI = "import sys; from riskd_client.cli import main; sys.exit(main())"


@dataclass
class DashboardProcess:
    """A running `riskd dashboard` process and where it serves."""

    proc: subprocess.Popen[str]
    url: str

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/api/stats", timeout=5) as resp:
            return json.load(resp)

    def wait_stats(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"dashboard stats never matched: {stats}")
            time.sleep(0.05)


def start_dashboard(target: str, *extra: str) -> DashboardProcess:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "dashboard", "--target", target, "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "riskd dashboard: serving http://127.0.0.1:PORT/ (...)"
    if "serving http://" not in line:
        proc.kill()
        raise RuntimeError(f"dashboard did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    url = line.split("serving ", 1)[1].split("/ ", 1)[0].rstrip("/")
    return DashboardProcess(proc, url)


def stop_process(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def dashboard_process() -> Iterator[Callable[..., DashboardProcess]]:
    """start(target, *flags) -> DashboardProcess; every one started is stopped (SIGTERM) at the end."""
    started: list[DashboardProcess] = []

    def start(target: str, *extra: str) -> DashboardProcess:
        dash = start_dashboard(target, *extra)
        started.append(dash)
        return dash

    yield start
    for dash in started:
        stop_process(dash.proc)
        assert dash.proc.returncode == 0, dash.proc.stderr.read() if dash.proc.stderr else ""


@dataclass
class CannedServer:
    service: CannedRiskService
    loop: LoopThread

    @property
    def target(self) -> str:
        return self.service.target

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run fn on the service's loop (its subscriber queues belong to that loop)."""

        async def invoke() -> Any:
            return fn(*args, **kwargs)

        return self.loop.run(invoke())


@pytest.fixture
def canned_server() -> Iterator[CannedServer]:
    loop = LoopThread(name="canned-risk-service")
    service = CannedRiskService()
    demo_data(service)
    try:
        loop.run(service.start())
        yield CannedServer(service, loop)
    finally:
        try:
            loop.run(service.stop())
        finally:
            loop.close()


@pytest.fixture
def chromium() -> str:
    """Debian's chromium. Missing in CI is a failure (.ci/run installs it); locally a skip with the reason."""
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found: .ci/run should have installed it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    return path
