"""`riskd dashboard`: the web tier. aiohttp serves the page and one SSE stream per browser.

Each browser gets the full view first (`sync`, built once per state version and shared), then
the frames the Feed publishes. Its writer runs in its own handler task, so a slow browser only
fills its own bounded queue; when that queue dropped frames, the writer sends `missed` and a
fresh `sync` instead of the stale backlog. A browser that goes away cancels its handler
(handler_cancellation) and its queue is removed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from .sse import DEFAULT_MAX_CONNECTIONS, DEFAULT_QUEUE_FRAMES, PING_FRAME, RETRY_FRAME, Feed, Hub
from .state import DEFAULT_ALERT_BUFFER, DEFAULT_MAX_ACCOUNTS, DashboardState
from .upstream import Upstream

log = logging.getLogger("riskd.dashboard")

STATIC_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # a reverse proxy must not buffer the stream
}
WRITE_TIMEOUT = 30.0  # a browser that reads nothing for this long (socket buffer full) is closed
SYNC_CONCURRENCY = 64  # browsers receiving their first full view at the same time
SHUTDOWN_TIMEOUT = 2.0  # on SIGTERM: writers stuck on browsers that read nothing get this long


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    target: str
    listen: str = "127.0.0.1:8080"
    alert_buffer: int = DEFAULT_ALERT_BUFFER
    max_accounts: int = DEFAULT_MAX_ACCOUNTS
    queue_frames: int = DEFAULT_QUEUE_FRAMES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    alert_interval: float = 0.1
    account_interval: float = 0.25
    snapshot_interval_ms: int = 250
    ping_interval: float = 15.0
    reuse_port: bool = False
    backlog: int = 4096  # a reconnect storm of thousands of browsers after a restart
    backoff_base: float = 0.25  # reconnecting to the risk server: first wait, seconds
    backoff_cap: float = 10.0  # ... and the longest


def split_host_port(listen: str) -> tuple[str, int]:
    """'127.0.0.1:8080', '[::1]:8080', ':8080' -> (host, port); ValueError naming the input."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen: expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from package data: nothing is loaded from the internet."""
    folder = resources.files("riskd_client.dashboard") / "static"
    files = {}
    for entry in folder.iterdir():
        suffix = os.path.splitext(entry.name)[1]
        if suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _direct_sink(transport: Any) -> Callable[[bytes], bool]:
    """Write a ready chunk now if the socket has nothing unsent; else say no (the frame is queued).

    The response is chunked (aiohttp's writer frames what the handler writes); these bytes are
    framed the same way by sse.chunk(), once per frame for every browser.
    """

    def sink(data: bytes) -> bool:
        if transport.is_closing() or transport.get_write_buffer_size():
            return False
        transport.write(data)
        return True

    return sink


class Dashboard:
    """The parts of one dashboard process, wired: state <- upstream -> feed -> hub -> browsers."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self.state = DashboardState(
            settings.target, alert_buffer=settings.alert_buffer, max_accounts=settings.max_accounts
        )
        self.hub = Hub(queue_frames=settings.queue_frames, max_subscribers=settings.max_connections)
        self.feed = Feed(
            self.state,
            self.hub,
            alert_interval=settings.alert_interval,
            account_interval=settings.account_interval,
        )
        self.upstream = Upstream(
            settings.target,
            self.state,
            self.feed,
            min_interval_ms=settings.snapshot_interval_ms,
            backoff_base=settings.backoff_base,
            backoff_cap=settings.backoff_cap,
        )
        self.static = _static_files()
        self.write_timeouts = 0
        self.started = time.time()
        self._sync_gate = asyncio.Semaphore(SYNC_CONCURRENCY)

    # ------------------------------------------------------------------ HTTP handlers

    async def page(self, request: web.Request) -> web.Response:
        body, ctype = self.static["index.html"]
        return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "no-cache"})

    async def static_file(self, request: web.Request) -> web.Response:
        found = self.static.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, ctype = found
        return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "no-cache"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        sub = self.hub.subscribe()
        if sub is None:
            raise web.HTTPServiceUnavailable(
                text="this dashboard is at its connection limit\n", headers={"Retry-After": "5"}
            )
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            sub.busy = True
            await response.prepare(request)
            transport = request.transport
            async with self._sync_gate:  # a reconnect storm's full views are not all buffered at once
                sub.reset()  # what queued meanwhile is in the view taken now (no await between the two)
                try:
                    async with asyncio.timeout(WRITE_TIMEOUT):  # a browser that reads nothing frees its slot
                        await response.write(RETRY_FRAME + self.feed.sync_frame())
                except TimeoutError:
                    self.write_timeouts += 1
                    if transport is not None:
                        transport.abort()
                    return response
            if transport is not None:
                sub.sink = _direct_sink(transport)
            while True:
                sub.busy = False
                frames, dropped = await sub.take()
                if sub.closed:
                    break
                sub.busy = True
                if dropped:  # lagging: the backlog is stale, a fresh full view replaces it
                    frames = [self.feed.missed_frame(dropped, sub.dropped_total), self.feed.sync_frame()]
                data = frames[0] if len(frames) == 1 else b"".join(frames)
                if transport is not None and transport.get_write_buffer_size() == 0:
                    await response.write(data)  # nothing pending: this write cannot wait on the peer
                    continue
                try:
                    async with asyncio.timeout(WRITE_TIMEOUT):
                        await response.write(data)
                except TimeoutError:
                    self.write_timeouts += 1
                    if transport is not None:
                        transport.abort()
                    break
        except ConnectionError:
            pass  # the browser went away mid-write
        finally:
            self.hub.unsubscribe(sub)
        return response

    async def api_state(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.feed.sync_frame().split(b"data: ", 1)[1], content_type="application/json"
        )

    async def api_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def stats(self) -> dict[str, Any]:
        return {
            "hub": self.hub.stats(),
            "state": self.state.stats(),
            "upstream": {
                "target": self.settings.target,
                "responses": dict(self.upstream.responses),
                "errors": dict(self.upstream.errors),
                "streams": {name: st.view() for name, st in self.state.streams.items()},
            },
            "sync_frames_built": self.feed.sync_built,
            "write_timeouts": self.write_timeouts,
            "rss_bytes": _rss_bytes(),
            "pid": os.getpid(),
            "uptime": time.time() - self.started,
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get("/static/{name}", self.static_file)
        app.router.add_get("/events", self.events)
        app.router.add_get("/api/state", self.api_state)
        app.router.add_get("/api/stats", self.api_stats)
        return app

    # ------------------------------------------------------------------ lifecycle

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            if len(self.hub):
                self.hub.publish(PING_FRAME)

    async def run(self, stop: asyncio.Event, ready: Callable[[str], None] | None = None) -> None:
        """Serve until `stop` is set; `ready` gets the bound address (port 0 picks one)."""
        host, port = split_host_port(self.settings.listen)
        runner = web.AppRunner(
            self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        tasks: list[asyncio.Task[None]] = []
        try:
            site = web.TCPSite(
                runner, host, port, backlog=self.settings.backlog, reuse_port=self.settings.reuse_port or None
            )
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            bound = sockets[0].getsockname() if sockets else (host, port)
            family = sockets[0].family if sockets else socket.AF_INET
            address = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
            tasks = [asyncio.create_task(self.upstream.run()), asyncio.create_task(self._ping())]
            if ready is not None:
                ready(address)
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.feed.close()
            self.hub.close_all()
            await runner.cleanup()


def _raise_open_files(wanted: int) -> None:
    """Each browser is a socket: lift the soft open-file limit toward the hard one (often 1,024 by default)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, wanted))
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open-file limit %d is below --max-connections + 100 = %d: raise `ulimit -n`", soft, wanted
        )


def run(settings: DashboardSettings, *, use_uvloop: bool = True) -> int:
    """The `riskd dashboard` process: serve until SIGINT/SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _raise_open_files(settings.max_connections + 100)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        dashboard = Dashboard(settings)

        def ready(address: str) -> None:
            print(
                f"riskd dashboard: serving http://{address}/ (upstream {settings.target}, pid {os.getpid()})",
                flush=True,
            )

        await dashboard.run(stop, ready)

    loop_factory = None
    if use_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    return 0
