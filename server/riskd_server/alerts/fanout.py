"""SubscribeAlerts: numbered alerts fanned out to every streaming subscriber, none waiting on another.

``publish`` runs on the event loop, called by the alert pipeline with alerts already numbered and
in the history; it never awaits. Each alert's ``alerts`` entry (tag, length, Alert bytes) is made
once (``Alert.wire``) and shared by every subscriber and every response; a response is those
entries joined, plus the ``dropped``/``missed`` fields, never re-encoded. Subscribers are grouped
by filter (alerts.subscribers): a publish matches each distinct filter once and appends to the
group's bounded ring once, then wakes the group's waiting subscribers. A subscriber writes
everything queued since its last write in one response, so a busy server writes fewer, larger
messages; one that reads too slowly loses the oldest entries, counted into ``dropped`` and
reported to ``on_drop`` (at most once a second per subscriber), and delays nobody.

A resumed subscription (``after_seq`` > 0) registers first, then replays the history in chunks,
then goes live; live entries already replayed are skipped, so an alert published in between is
sent exactly once. A cancelled or broken stream is removed at once, in ``finally``, and the
cancellation re-raised (a swallowed CancelledError leaks native memory per RPC: grpc/grpc#43360).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

import grpc
from google.protobuf.message import DecodeError

from riskd.v1 import risk_pb2 as pb

from .model import Alert, AlertFilter, varint, wire_of
from .subscribers import REMOVED, REPLAYING, Entry, Group, Subscriber

log = logging.getLogger("riskd.alerts")

# Initial metadata sent once a subscriber is registered: the newest seq at that moment, so a
# client that has seen no alert yet can still resume without a gap (after_seq = this value).
SEQ_HEADER = "riskd-alert-seq"
REPLAY_CHUNK = 512  # alerts per replay response
MAX_FILTER_VALUES = 10_000  # per repeated field of a filter
DROP_REPORT_INTERVAL = 1.0  # seconds between on_drop calls for one subscriber
WAKE_SLICE = 256  # subscribers woken per turn of the event loop (see AlertHub._wake_some)


class HistoryReader(Protocol):
    """What the hub reads from the alert history (alerts.history.AlertHistory)."""

    @property
    def last_seq(self) -> int: ...

    def after(
        self, after_seq: int, flt: AlertFilter, limit: int | None = None
    ) -> tuple[list[Alert], int]: ...


class EmptyHistory:
    """A history that holds nothing (a hub without the alert path: live alerts only)."""

    last_seq = 0

    def after(self, after_seq: int, flt: AlertFilter, limit: int | None = None) -> tuple[list[Alert], int]:
        return [], 0


class SubscribeError(ValueError):
    """A SubscribeAlertsRequest this server refuses (INVALID_ARGUMENT), naming the field."""


class HubFull(RuntimeError):
    """max_subscribers streams are open already (RESOURCE_EXHAUSTED)."""


@dataclass(frozen=True, slots=True)
class FanoutStats:
    subscribers: int  # open streams
    groups: int  # distinct filters among them
    published: int  # alerts handed to publish
    dropped: int  # entries subscribers lost because they read too slowly (total)
    writes: int  # responses written
    bytes_written: int
    refused: int  # subscriptions refused at max_subscribers
    replayed: int  # alerts sent from the history to resumed subscriptions
    missed: int  # alerts resumed subscriptions asked for that the history no longer held


def alert_filter(msg: pb.AlertFilter) -> AlertFilter:
    """The request's filter, refusing enum values this server does not know (a typo would match
    nothing, silently) and oversized lists, with the field (and index)."""
    if msg.min_severity not in pb.Severity.values():
        raise SubscribeError(f"filter.min_severity: unknown Severity {msg.min_severity}")
    for name, values, enum in (("kinds", msg.kinds, pb.AlertKind), ("checks", msg.checks, pb.RiskCheck)):
        known = enum.values()
        for i, value in enumerate(values):
            if value == 0 or value not in known:
                raise SubscribeError(f"filter.{name}[{i}]: unknown {enum.DESCRIPTOR.name} {value}")
    for name, size in (
        ("accounts", len(msg.accounts)),
        ("symbols", len(msg.symbols)),
        ("kinds", len(msg.kinds)),
        ("checks", len(msg.checks)),
    ):
        if size > MAX_FILTER_VALUES:
            raise SubscribeError(f"filter.{name}: at most {MAX_FILTER_VALUES:,} values, got {size:,}")
    return AlertFilter.from_pb(msg)


def subscribe_request(data: bytes) -> tuple[AlertFilter, int]:
    """A serialised SubscribeAlertsRequest -> (filter, after_seq)."""
    try:
        msg = pb.SubscribeAlertsRequest.FromString(data)
    except DecodeError as exc:
        raise SubscribeError(f"malformed SubscribeAlertsRequest: {exc}") from None
    return alert_filter(msg.filter), msg.after_seq


def response_bytes(parts: list[bytes], dropped: int = 0, missed: int = 0) -> bytes:
    """A SubscribeAlertsResponse from ready entries: alerts (field 1), dropped (2), missed (3)."""
    if dropped:
        parts.append(b"\x10" + varint(dropped))
    if missed:
        parts.append(b"\x18" + varint(missed))
    return b"".join(parts)


class AlertHub:
    """The subscribers of SubscribeAlerts and the fan-out to them (see the module docstring)."""

    def __init__(
        self,
        history: HistoryReader,
        queue_size: int = 256,
        max_subscribers: int = 20_000,
        on_drop: Callable[[str, int], None] | None = None,
        *,
        replay_chunk: int = REPLAY_CHUNK,
        drop_report_interval: float = DROP_REPORT_INTERVAL,
        wake_slice: int = WAKE_SLICE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_size < 1 or max_subscribers < 0 or replay_chunk < 1 or wake_slice < 1:
            raise ValueError("queue_size, replay_chunk and wake_slice must be >= 1, max_subscribers >= 0")
        self.history = history
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self.on_drop = on_drop
        self._replay_chunk = replay_chunk
        self._report_interval = drop_report_interval
        self._clock = clock
        self._wake_slice = wake_slice
        self._to_wake: deque[Subscriber] = deque()  # woken by a publish, waiter not resolved yet
        self._waking = False
        self._groups: dict[AlertFilter, Group] = {}
        self._count = 0
        self._last_seq = 0
        self._published = 0
        self._dropped = 0
        self._writes = 0
        self._bytes = 0
        self._refused = 0
        self._replayed = 0
        self._missed = 0

    # ------------------------------------------------------------------ producer side

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Queue numbered alerts for every matching subscriber and wake the waiting ones."""
        if not alerts:
            return
        self._published += len(alerts)
        self._last_seq = max(self._last_seq, alerts[-1].seq)
        if not self._groups:
            return
        entries: list[Entry] = [(a.seq, wire_of(a)) for a in alerts]
        lost: list[tuple[Subscriber, int]] = []
        for group in self._groups.values():
            if group.match_all:
                matched = entries
            else:
                matches = group.flt.matches
                matched = [e for a, e in zip(alerts, entries, strict=True) if matches(a)]
                if not matched:
                    continue
            group.push(matched)
            woken = group.wake()
            if woken:
                self._to_wake.extend(woken)
            if group.busy:
                lost += group.lagging()
        if self._to_wake and not self._waking:
            self._wake_some()
        if lost:
            self._dropped += sum(n for _, n in lost)
            now = self._clock()
            for sub, _ in lost:
                self._report(sub, now)

    def _wake_some(self) -> None:
        """Resolve the waiters of up to ``wake_slice`` woken subscribers; the rest on the next
        turn of the loop. Each woken task goes on the loop's ready queue, and asyncio runs the
        whole queue before it polls for I/O again: waking 10,000 at once would hold a check
        arriving meanwhile behind 10,000 writes."""
        queue = self._to_wake
        for _ in range(min(self._wake_slice, len(queue))):
            waiter = queue.popleft().waiter
            if waiter is not None and not waiter.done():  # type: ignore[attr-defined]
                waiter.set_result(None)  # type: ignore[attr-defined]
        self._waking = bool(queue)
        if queue:
            try:
                asyncio.get_running_loop().call_soon(self._wake_some)
            except RuntimeError:  # no loop (the hub driven by hand, as in tests): no one awaits
                queue.clear()
                self._waking = False

    def reset(self, history: HistoryReader) -> None:
        """A new history after the numbering started again (alerts.relay); live streams go on."""
        self.history = history
        self._last_seq = 0

    @property
    def last_seq(self) -> int:
        """The newest seq published or held in the history (0 when none)."""
        return max(self._last_seq, self.history.last_seq)

    # ------------------------------------------------------------------ subscribers (pure steps)

    def register(self, flt: AlertFilter, peer: str = "", after_seq: int = 0) -> Subscriber:
        """Add a subscriber; HubFull past max_subscribers.

        With ``after_seq`` below the newest seq it replays first (REPLAYING), else it is live at
        once: ``after_seq`` at or past the newest seq (a client that remembers seqs from before
        the numbering was reset, say) gets the alerts published from now on.
        """
        if self._count >= self.max_subscribers:
            self._refused += 1
            raise HubFull(f"alert subscribers: the server holds at most {self.max_subscribers:,}")
        group = self._groups.get(flt)
        if group is None:
            group = self._groups[flt] = Group(flt, self.queue_size)
        self._count += 1
        replay = 0 < after_seq < self.last_seq
        sub = group.join(peer, replay)
        if replay:
            sub.replayed = after_seq
        return sub

    def remove(self, sub: Subscriber) -> None:
        """Forget a subscriber (idempotent); its group goes when it was the last one."""
        if sub.state == REMOVED:
            return
        group = sub.group
        sub.state = REMOVED
        sub.waiter = None
        group.leave(sub)
        self._count -= 1
        if group.members == 0 and self._groups.get(group.flt) is group:
            del self._groups[group.flt]
        if sub.unreported:
            self._report(sub, self._clock(), force=True)

    def take(self, sub: Subscriber) -> bytes | None:
        """The next live response for ``sub`` (everything queued since its last), or None."""
        group = sub.group
        if sub.cursor == group.end and not sub.dropped:
            return None
        parts, dropped = group.take(sub)
        if sub.unreported:
            self._report(sub, self._clock())
        if not parts and not dropped:
            return None
        return response_bytes(parts, dropped)

    def replay_step(self, sub: Subscriber) -> bytes | None:
        """The next chunk of a resumed subscription's replay (None when it has nothing to send);
        once the history has nothing newer the subscriber goes live (state no longer REPLAYING)."""
        group = sub.group
        group.catch_up(sub)
        alerts, missed = self.history.after(sub.replayed, group.flt, self._replay_chunk)
        if alerts:
            sub.replayed = sub.skip_to = alerts[-1].seq
        if len(alerts) < self._replay_chunk:
            group.go_live(sub)
        self._replayed += len(alerts)
        self._missed += missed
        if not alerts and not missed:
            return None
        return response_bytes([wire_of(a) for a in alerts], 0, missed)

    def _report(self, sub: Subscriber, now: float, force: bool = False) -> None:
        if not force and now - sub.reported_at < self._report_interval:
            return
        count, sub.unreported = sub.unreported, 0
        sub.reported_at = now
        log.warning("alert subscriber %s too slow: %d alert(s) dropped", sub.peer or "?", count)
        if self.on_drop is not None:
            try:
                self.on_drop(sub.peer, count)
            except Exception:
                log.exception("on_drop failed")

    # ------------------------------------------------------------------ the RPC

    async def stream(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        """SubscribeAlerts (raw bytes in, serialised responses out through ``context.write``)."""
        try:
            flt, after_seq = subscribe_request(request)
            sub = self.register(flt, context.peer(), after_seq)
        except SubscribeError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except HubFull as exc:
            await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        try:
            await context.send_initial_metadata(((SEQ_HEADER, str(self.last_seq)),))
            while sub.state == REPLAYING:
                data = self.replay_step(sub)
                if data is not None:
                    await self._write(context, data)
            loop = asyncio.get_running_loop()
            group = sub.group
            while True:
                data = self.take(sub)
                if data is None:
                    waiter = loop.create_future()
                    sub.waiter = waiter
                    group.wait(sub)
                    try:
                        await waiter
                    finally:
                        sub.waiter = None
                    continue
                await self._write(context, data)
        finally:
            self.remove(sub)

    async def _write(self, context: grpc.aio.ServicerContext, data: bytes) -> None:
        try:
            await context.write(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The stream broke under the write (the client went away while it was in flight:
            # grpc raises ExecuteBatchError, before it may have noticed the cancel itself). End
            # as a cancelled RPC: returning would send a status on a dead call, and letting it
            # through logs an error per departed subscriber.
            log.debug("alert stream to %s broke: %r", context.peer(), exc)
            raise asyncio.CancelledError(f"alert stream broke: {exc!r}") from exc
        self._writes += 1
        self._bytes += len(data)

    # ------------------------------------------------------------------ stats

    @property
    def subscribers(self) -> int:
        return self._count

    def stats(self) -> FanoutStats:
        return FanoutStats(
            subscribers=self._count,
            groups=len(self._groups),
            published=self._published,
            dropped=self._dropped,
            writes=self._writes,
            bytes_written=self._bytes,
            refused=self._refused,
            replayed=self._replayed,
            missed=self._missed,
        )


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("unreachable: context.abort raises")
