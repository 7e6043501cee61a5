"""The one subscription a dashboard process holds to the risk server, kept alive across restarts.

Two server streams on one channel: SubscribeAlerts (every alert, no filter: the viewers filter)
and StreamRiskSnapshots (every account, coalesced by the server). Either one that fails or ends
is re-opened after a jittered exponential backoff; alerts resume after the last seq seen
(`after_seq`), so a server restart costs nothing the server's history still holds, and what it
no longer holds comes back as `missed`. A fresh process first reads the newest page of the alert
history (QueryAlerts) so its viewers start with recent alerts, not an empty feed.

This module uses the generated stub directly on a grpc.aio channel: it needs no server package,
no aiohttp and no rich.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import grpc

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc

from ..sync_client import CHANNEL_OPTIONS
from .model import View
from .state import DashboardState

log = logging.getLogger("riskd.dashboard.upstream")

LIVE_AFTER = (
    0.5  # a stream still open this long after it started counts as live (a quiet server sends nothing)
)
SEED_TIMEOUT = 5.0
STABLE_AFTER = 2.0  # a stream that lasted this long (or delivered anything) restarts the backoff
SEQ_HEADER = "riskd-alert-seq"  # SubscribeAlerts' initial metadata: the server's newest seq at registration


class Backoff:
    """Jittered exponential backoff: wait n is uniform in [d/2, d] with d = min(cap, base * 2**n).

    The jitter spreads many dashboards (or one restarted server's many clients) over time, so a
    restart is not met by a synchronised reconnect storm.
    """

    def __init__(
        self, base: float = 0.25, cap: float = 10.0, rng: Callable[[], float] = random.random
    ) -> None:
        if not 0 < base <= cap:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base, self.cap, self._rng = base, cap, rng
        self.attempt = 0

    def next(self) -> float:
        d = min(self.cap, self.base * 2.0 ** min(self.attempt, 32))
        self.attempt += 1
        return d / 2 + self._rng() * d / 2

    def reset(self) -> None:
        self.attempt = 0


class Listener(Protocol):
    """What the upstream tells about: new alerts, changed accounts, a status change."""

    def alerts(self, views: list[View]) -> None: ...
    def accounts(self, views: list[View]) -> None: ...
    def status(self) -> None: ...


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        code = exc.code()
        name = code.name if code is not None else "UNKNOWN"
        details = (exc.details() or "").strip()
        return f"{name}: {details}" if details else name
    return f"{type(exc).__name__}: {exc}"


class Upstream:
    """Runs the two streams until cancelled; owns its channel (closed on exit)."""

    def __init__(
        self,
        target: str,
        state: DashboardState,
        listener: Listener,
        *,
        min_interval_ms: int = 250,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
    ) -> None:
        self.target = target
        self.state = state
        self.listener = listener
        self.min_interval_ms = min_interval_ms
        self._backoff = (backoff_base, backoff_cap)
        self._seeded = False
        self.responses = {"alerts": 0, "snapshots": 0}
        self.errors = {"alerts": 0, "snapshots": 0}

    async def run(self) -> None:
        channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        stub = pb_grpc.RiskServiceStub(channel)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._keep("alerts", lambda: self._alerts(stub)))
                tg.create_task(self._keep("snapshots", lambda: self._snapshots(stub)))
        finally:
            await channel.close(grace=None)

    # ------------------------------------------------------------------ one stream, forever

    async def _keep(self, name: str, open_stream: Callable[[], Awaitable[None]]) -> None:
        backoff = Backoff(*self._backoff)
        while True:
            self._status(name, "connecting" if self.state.streams[name].connects == 0 else "reconnecting")
            started, responses = time.monotonic(), self.responses[name]
            try:
                await open_stream()
                detail = "stream ended by the server"
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                detail = describe_error(exc)
            except Exception as exc:  # a bug or a bad message: keep the dashboard up, say it
                log.exception("%s stream failed", name)
                detail = describe_error(exc)
            self.errors[name] += 1
            if self.responses[name] > responses or time.monotonic() - started >= STABLE_AFTER:
                backoff.reset()  # it worked for a while: the next failure is a new one
            delay = backoff.next()
            unimplemented = detail.startswith("UNIMPLEMENTED")
            self._status(name, "unavailable" if unimplemented else "reconnecting", detail, round(delay, 2))
            log.warning("%s stream to %s: %s; retrying in %.2f s", name, self.target, detail, delay)
            await asyncio.sleep(delay)

    def _status(self, name: str, state: str, detail: str = "", retry_in: float = 0.0) -> None:
        if self.state.set_status(name, state, detail, retry_in):
            self.listener.status()

    def _live_soon(self, name: str, call: grpc.aio.Call) -> asyncio.TimerHandle:
        def check() -> None:
            if not call.done():
                self._status(name, "live")

        return asyncio.get_running_loop().call_later(LIVE_AFTER, check)

    # ------------------------------------------------------------------ alerts

    async def _seed(self, stub: pb_grpc.RiskServiceStub) -> None:
        """The newest page of history, once per process, so viewers do not start empty."""
        page = self.state.alerts.maxlen or 0
        try:
            response = await stub.QueryAlerts(pb.QueryAlertsRequest(page_size=page), timeout=SEED_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                self._seeded = True  # an older server: start from the live stream
                return
            raise
        self._seeded = True
        self.listener.alerts(self.state.seed_alerts(response.alerts))

    def _resume_point(self, metadata: grpc.aio.Metadata | None) -> None:
        """The server's newest seq when it registered us (SEQ_HEADER): where to resume if the
        stream breaks before any alert arrives. A seq below ours means a server whose numbering
        started over: follow it rather than skip its alerts as already seen."""
        try:
            values = [v for k, v in (metadata or ()) if k == SEQ_HEADER]
            newest = int(values[-1]) if values else None
        except (TypeError, ValueError):
            newest = None
        if newest is None:
            return
        if newest < self.state.last_seq:
            log.warning(
                "alert seq of %s went back from %d to %d: following the server",
                self.target,
                self.state.last_seq,
                newest,
            )
            self.state.last_seq = newest
        elif self.state.last_seq == 0:
            self.state.last_seq = newest

    async def _alerts(self, stub: pb_grpc.RiskServiceStub) -> None:
        if not self._seeded and self.state.last_seq == 0:
            await self._seed(stub)
        request = pb.SubscribeAlertsRequest(after_seq=self.state.last_seq)
        call = stub.SubscribeAlerts(request)
        timer = self._live_soon("alerts", call)
        try:
            self._resume_point(await call.initial_metadata())
            if not call.done():
                self._status("alerts", "live")
            async for response in call:
                self.responses["alerts"] += 1
                self._status("alerts", "live")
                views = self.state.apply_alerts(response)
                if response.missed or response.dropped:
                    log.warning(
                        "alerts from %s: %d missed on resume, %d dropped (this dashboard read too slowly)",
                        self.target,
                        response.missed,
                        response.dropped,
                    )
                    self.listener.status()
                self.listener.alerts(views)
        finally:
            timer.cancel()
            call.cancel()

    # ------------------------------------------------------------------ snapshots

    async def _snapshots(self, stub: pb_grpc.RiskServiceStub) -> None:
        request = pb.StreamRiskSnapshotsRequest(min_interval_ms=self.min_interval_ms)
        call = stub.StreamRiskSnapshots(request)
        timer = self._live_soon("snapshots", call)
        try:
            async for response in call:
                self.responses["snapshots"] += 1
                self._status("snapshots", "live")
                firm = self.state.firm_state
                views = self.state.apply_snapshots(response)
                if self.state.firm_state != firm:
                    self.listener.status()
                self.listener.accounts(views)
        finally:
            timer.cancel()
            call.cancel()
