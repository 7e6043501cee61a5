"""Server-Sent Events fan-out: one serialisation per event, a small bounded queue per browser.

`Hub.publish(frame)` hands the same bytes to every subscriber and never waits, whatever the
browsers do: a browser whose socket has room gets it written at once (one synchronous write of
the chunk, built once per publish, no task woken); any other gets it queued for its writer. A full queue drops its oldest frame and counts
it; the writer then tells its page how many it missed and sends a fresh full view (`sync`), so a
slow browser catches up instead of replaying what it lost. `Feed` turns state changes into
frames, coalescing bursts (at most one alerts frame per `alert_interval`, one accounts frame per
`account_interval`, the first at once) so 10,000 browsers cost one frame per interval each, not
one per upstream message. asyncio only: the HTTP side lives in web.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .model import View
from .state import DashboardState

log = logging.getLogger("riskd.dashboard")

DEFAULT_QUEUE_FRAMES = 32
DEFAULT_MAX_CONNECTIONS = 10_000
RETRY_FRAME = b"retry: 2000\n\n"  # EventSource reconnects after 2 s when the dashboard restarts
FANOUT_SHARE_INVERSE = 2.0  # frames are spaced at least 2x their fan-out time apart
PING_FRAME = b": ping\n\n"  # a comment: keeps proxies from timing out, finds dead connections


def encode_frame(event: str, payload: Any) -> bytes:
    """`event: NAME` + one `data:` line of compact JSON (json.dumps never emits a raw newline)."""
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return b"event: " + event.encode() + b"\ndata: " + data.encode() + b"\n\n"


def chunk(frame: bytes) -> bytes:
    """The frame as one HTTP/1.1 chunk (the SSE response is chunked), built once per publish."""
    return b"%x\r\n" % len(frame) + frame + b"\r\n"


Sink = Callable[[bytes], bool]


class Subscriber:
    """One browser connection's queue: bounded, oldest dropped first, drops counted.

    `sink`, when its writer has set one, takes a chunk straight to the socket without waking the
    writer (it returns False when the socket already holds unsent bytes); it is used only while
    nothing is queued and the writer is not mid-write, so frames never overtake each other.
    """

    __slots__ = ("_limit", "_queue", "_wake", "busy", "closed", "direct", "dropped", "dropped_total", "sink")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self.sink: Sink | None = None
        self.busy = False  # the writer is writing: later frames must queue behind it
        self.dropped = 0  # since the writer last took the queue
        self.dropped_total = 0
        self.direct = 0  # frames that went straight to the socket
        self.closed = False

    def push(self, frame: bytes, chunked: bytes | None = None) -> None:
        sink = self.sink
        if chunked is not None and sink is not None and not self.busy and not self._queue and sink(chunked):
            self.direct += 1
            return
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
            self.dropped_total += 1
        self._queue.append(frame)
        self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    async def take(self) -> tuple[list[bytes], int]:
        """Wait for frames; return them all (oldest first) and how many were dropped before them."""
        while not self._queue and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        frames, dropped = list(self._queue), self.dropped
        self._queue.clear()
        self.dropped = 0
        return frames, dropped

    def reset(self) -> None:
        """Forget what is queued: the writer is about to send a full view that includes it."""
        self._queue.clear()
        self.dropped = 0

    def close(self) -> None:
        self.closed = True
        self.sink = None
        self._wake.set()


class Hub:
    """The set of connected browsers; publish() is O(subscribers) appends and never awaits."""

    def __init__(
        self, *, queue_frames: int = DEFAULT_QUEUE_FRAMES, max_subscribers: int = DEFAULT_MAX_CONNECTIONS
    ) -> None:
        if queue_frames < 1 or max_subscribers < 1:
            raise ValueError("queue_frames and max_subscribers must be at least 1")
        self.queue_frames = queue_frames
        self.max_subscribers = max_subscribers
        self._subscribers: set[Subscriber] = set()
        self.published = 0
        self.direct = 0  # frame deliveries written straight to a socket (no queue, no task woken)
        self.dropped = 0  # frames dropped from full queues, all subscribers, since start
        self.refused = 0  # connections refused at max_subscribers
        self.connected_total = 0
        self.slow_subscribers = 0  # connections that dropped at least once

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscriber | None:
        """A new queue, or None (counted) when max_subscribers are connected."""
        if len(self._subscribers) >= self.max_subscribers:
            self.refused += 1
            return None
        sub = Subscriber(self.queue_frames)
        self._subscribers.add(sub)
        self.connected_total += 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            if sub.dropped_total:
                self.slow_subscribers += 1
        sub.close()

    def close_all(self) -> None:
        """Shutdown: every writer finishes its response and returns."""
        for sub in list(self._subscribers):
            self.unsubscribe(sub)

    def publish(self, frame: bytes) -> None:
        self.published += 1
        chunked = chunk(frame)
        for sub in self._subscribers:
            before, direct = sub.dropped_total, sub.direct
            sub.push(frame, chunked)
            if sub.direct != direct:
                self.direct += 1
            elif sub.dropped_total != before:
                self.dropped += 1

    def stats(self) -> dict[str, int]:
        return {
            "connections": len(self._subscribers),
            "connected_total": self.connected_total,
            "refused": self.refused,
            "frames_published": self.published,
            "frames_direct": self.direct,
            "frames_dropped": self.dropped,
            "slow_connections_closed": self.slow_subscribers,
            "queue_frames": self.queue_frames,
        }


class Feed:
    """State changes -> frames on the hub, coalesced; `sync_frame()` is the full view, cached per version.

    Frames: `sync` (status, accounts, recent alerts), `alerts` (new alerts, oldest first, plus how
    many a burst had to leave out), `accounts` (changed rows), `status` (connection state and loss
    counters), and per connection `missed`.
    """

    def __init__(
        self,
        state: DashboardState,
        hub: Hub,
        *,
        alert_interval: float = 0.1,
        account_interval: float = 0.25,
    ) -> None:
        self.state = state
        self.hub = hub
        self.alert_interval = alert_interval
        self.account_interval = account_interval
        self.max_alerts_per_frame = state.alerts.maxlen or 500
        self._alerts: deque[View] = deque(maxlen=self.max_alerts_per_frame)
        self._alerts_skipped = 0  # a burst's alerts beyond max_alerts_per_frame, for the next frame
        self._accounts: dict[str, View] = {}
        self._last_alerts = 0.0
        self._last_accounts = 0.0
        self._alerts_timer: asyncio.TimerHandle | None = None
        self._accounts_timer: asyncio.TimerHandle | None = None
        self._sync: tuple[int, bytes] = (-1, b"")
        self.sync_built = 0
        self.publish_cost = 0.0  # seconds one frame's fan-out takes (moving average)

    # ------------------------------------------------------------------ inputs

    def alerts(self, views: list[View]) -> None:
        if not views:
            return
        room = self.max_alerts_per_frame - len(self._alerts)
        if len(views) > room:
            self._alerts_skipped += len(views) - room
        self._alerts.extend(views)
        self._alerts_timer = self._schedule(
            self._alerts_timer, self._last_alerts, self.alert_interval, self.flush_alerts
        )

    def accounts(self, views: list[View]) -> None:
        if not views:
            return
        for view in views:
            self._accounts[view["account"]] = view  # bounded by the state's account cap
        self._accounts_timer = self._schedule(
            self._accounts_timer, self._last_accounts, self.account_interval, self.flush_accounts
        )

    def status(self) -> None:
        self.hub.publish(encode_frame("status", self.state.status_view()))

    # ------------------------------------------------------------------ outputs

    def flush_alerts(self) -> None:
        self._alerts_timer = None
        if not self._alerts:
            return
        payload = {"alerts": list(self._alerts), "skipped": self._alerts_skipped}
        self._alerts.clear()
        self._alerts_skipped = 0
        self._last_alerts = time.monotonic()
        self._publish(encode_frame("alerts", payload))

    def flush_accounts(self) -> None:
        self._accounts_timer = None
        if not self._accounts:
            return
        payload = {"accounts": list(self._accounts.values()), "firm_state": self.state.firm_state}
        self._accounts.clear()
        self._last_accounts = time.monotonic()
        self._publish(encode_frame("accounts", payload))

    def _publish(self, frame: bytes) -> None:
        t0 = time.perf_counter()
        self.hub.publish(frame)
        self.publish_cost = 0.8 * self.publish_cost + 0.2 * (time.perf_counter() - t0)

    def sync_frame(self) -> bytes:
        """The full view for a new (or lagging) browser; built once per state version, shared."""
        version, frame = self._sync
        if version != self.state.version:
            frame = encode_frame("sync", self.state.snapshot())
            self._sync = (self.state.version, frame)
            self.sync_built += 1
        return frame

    def missed_frame(self, dropped: int, total: int) -> bytes:
        return encode_frame("missed", {"frames": dropped, "total": total})

    def close(self) -> None:
        for timer in (self._alerts_timer, self._accounts_timer):
            if timer is not None:
                timer.cancel()
        self._alerts_timer = self._accounts_timer = None

    # ------------------------------------------------------------------ coalescing

    def _schedule(
        self, timer: asyncio.TimerHandle | None, last: float, interval: float, flush: Any
    ) -> asyncio.TimerHandle | None:
        """Flush now if the last flush is `interval` old, else once when it will be (no idle timer).

        The interval stretches to FANOUT_SHARE_INVERSE times what a fan-out costs, so with many
        browsers an alert storm takes at most half the loop: frames get fewer and larger instead
        of the loop falling behind.
        """
        if timer is not None:
            return timer  # a flush is already due: this change rides along
        interval = max(interval, FANOUT_SHARE_INVERSE * self.publish_cost)
        wait = last + interval - time.monotonic()
        if wait <= 0:
            flush()
            return None
        return asyncio.get_running_loop().call_later(wait, flush)
