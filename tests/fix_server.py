"""pytest plugin: the FULL riskd server (PostgreSQL store, write-behind, health, reflection) in-process.

``riskd_server`` starts ``riskd_server.server.start(settings)`` on its own event loop in a
background thread, on a fresh database, so tests drive it with the real blocking client from the
test thread (or asyncio.run for the async client). ``restart()`` stops it gracefully and starts a
new server on the same database, which is how restart survival is tested. Override the
``riskd_settings`` fixture in a test module to change settings.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from riskd_server.config import Settings
from riskd_server.server import RunningServer, start

T = TypeVar("T")
START_TIMEOUT = 120.0  # the first start in a process may JIT-compile every kernel


class LoopThread:
    """An event loop running forever in a daemon thread; run() executes a coroutine on it."""

    def __init__(self, name: str = "riskd-server") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def drain() -> None:
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()

        try:
            self.run(drain())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


class RiskdServer:
    """A running full server; .running changes on restart(), .settings stay (same database)."""

    def __init__(self, settings: Settings, loop: LoopThread) -> None:
        self.settings = settings
        self._loop = loop
        self.running: RunningServer | None = None

    @property
    def port(self) -> int:
        assert self.running is not None, "server not running"
        return self.running.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.running is None
        self.running = self._loop.run(start(self.settings), timeout=START_TIMEOUT)

    def stop(self) -> None:
        """Graceful stop, as on SIGTERM (health NOT_SERVING, drain, flush, close the pool)."""
        running, self.running = self.running, None
        if running is not None:
            self._loop.run(running.stop(), timeout=self.settings.grace + 60)

    def restart(self) -> None:
        """Stop gracefully and start a new server on the same database (the port may change)."""
        self.stop()
        self.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's loop."""
        return self._loop.run(coro, timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the server's loop thread (the engine is not thread-safe)."""

        async def invoke() -> T:
            return fn(*args)

        return self._loop.run(invoke())


def server_settings(dsn: str, **overrides: Any) -> Settings:
    """Settings for a test server: any free loopback port, short flushes and a short grace, and
    its own data folder (the journal and checkpoints), kept across restart() like the database."""
    base = Settings(
        listen="127.0.0.1:0",
        dsn=dsn,
        data_dir=tempfile.mkdtemp(prefix="riskd-test-"),
        feeder="task",  # in-process: a process per test server costs seconds (test_durability_e2e runs them)
        flush_interval_ms=10.0,
        grace=2.0,
        db_timeout=10.0,
        max_batch=1_000,
        uvloop=False,
    )
    return replace(base, **overrides)


@pytest.fixture
def riskd_settings() -> dict[str, Any]:
    """Overrides for the riskd_server fixture's Settings (override this fixture in a module)."""
    return {}


@pytest.fixture
def riskd_server(fresh_dsn: str, riskd_settings: dict[str, Any]) -> Iterator[RiskdServer]:
    loop = LoopThread()
    server = RiskdServer(server_settings(fresh_dsn, **riskd_settings), loop)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            loop.close()
