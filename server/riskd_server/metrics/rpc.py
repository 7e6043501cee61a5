"""Server time per RPC: handlers wrapped once at registration, counted into fixed buckets.

What one call pays: two ``time.perf_counter_ns()`` reads, a ``bisect`` into ``BOUNDS_NS`` and a
list increment (measured against prometheus_client's ``Histogram.observe``, which takes a lock per
bucket and sum and costs several times as much: bench/metrics_bench.py). The counts become
Prometheus histograms only when scraped (metrics.families). Everything runs on the event loop; a
scrape copies the counts there (metrics.exporter), so nothing here needs a lock.

- unary RPCs: the handler's time, from its call to its return (or raise);
- bidirectional streams (CheckOrderStream): each message's processing, from the moment the
  handler is given a request to the moment it yields its reply, not the stream's life; replies
  are counted as messages sent;
- server-streaming RPCs (SubscribeAlerts, StreamRiskSnapshots): calls and messages sent, no
  time (a subscription's life says nothing about the server).

A call that ends with an exception is counted in ``errors`` (an abort with a status, a failure)
or ``cancelled`` (the client left, a deadline passed, the server is stopping: for an endless
stream the usual end); exceptions pass through unchanged (a cancellation is re-raised,
grpc/grpc#43360).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

# Bucket upper bounds in ns (Prometheus "le", inclusive): 5 µs .. 10 s.
BOUNDS_NS: tuple[int, ...] = (
    5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000,
    250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000,
)  # fmt: skip

UNARY = "unary"
CLIENT_STREAM = "client_stream"
SERVER_STREAM = "server_stream"
BIDI_STREAM = "bidi_stream"
# How a call ends when it is cancelled: the task's cancellation, or a wrapping stream closed early.
_ENDED = (asyncio.CancelledError, GeneratorExit)


class MethodStats:
    """One method's live counters (mutated on the event loop only)."""

    __slots__ = (
        "calls", "cancelled", "counts", "errors", "kind", "messages_sent", "method", "service", "sum_ns",
    )  # fmt: skip

    def __init__(self, service: str, method: str, kind: str) -> None:
        self.service = service
        self.method = method
        self.kind = kind
        self.calls = 0
        self.errors = 0  # ended by an exception: an abort with a status, a failure
        self.cancelled = 0  # ended by a cancellation (the client left, a deadline, shutdown)
        self.messages_sent = 0
        self.counts = [0] * (len(BOUNDS_NS) + 1)  # the last one: above every bound (+Inf)
        self.sum_ns = 0

    def snapshot(self) -> MethodSnapshot:
        return MethodSnapshot(
            self.service,
            self.method,
            self.kind,
            self.calls,
            self.errors,
            self.cancelled,
            self.messages_sent,
            tuple(self.counts),
            self.sum_ns,
        )


@dataclass(frozen=True, slots=True)
class MethodSnapshot:
    service: str
    method: str
    kind: str
    calls: int
    errors: int
    cancelled: int
    messages_sent: int
    counts: tuple[int, ...]  # per bucket, not cumulative; len(BOUNDS_NS) + 1
    sum_ns: int

    @property
    def timed(self) -> bool:
        """Whether the method has a server-time histogram (unary and bidi-streaming RPCs)."""
        return self.kind in (UNARY, BIDI_STREAM)

    @property
    def observations(self) -> int:
        return sum(self.counts)


class RpcTimings:
    """Per-method counters; ``wrap`` a handler once at registration (see server._Registrar)."""

    def __init__(self) -> None:
        self._methods: dict[tuple[str, str], MethodStats] = {}

    def snapshot(self) -> list[MethodSnapshot]:
        """Copies of every method's counters (call on the event loop)."""
        return [m.snapshot() for m in self._methods.values()]

    def stats(self, service: str, method: str) -> MethodStats:
        return self._methods[(service, method)]

    def wrap(self, service: str, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler with its behaviour timed or counted; unknown shapes are left as they are."""
        if handler.unary_unary is not None:
            kind, attr, behavior = UNARY, "unary_unary", handler.unary_unary
        elif handler.unary_stream is not None:
            kind, attr, behavior = SERVER_STREAM, "unary_stream", handler.unary_stream
        elif handler.stream_stream is not None:
            kind, attr, behavior = BIDI_STREAM, "stream_stream", handler.stream_stream
        elif handler.stream_unary is not None:
            kind, attr, behavior = CLIENT_STREAM, "stream_unary", handler.stream_unary
        else:
            return handler
        stats = self._methods.setdefault((service, method), MethodStats(service, method, kind))
        if inspect.isasyncgenfunction(behavior):
            if kind == BIDI_STREAM:
                wrapped: Callable[..., Any] = _timed_bidi(behavior, stats)
            else:
                wrapped = _counted_stream(behavior, stats)
        elif inspect.iscoroutinefunction(behavior):
            if kind == UNARY:
                wrapped = _timed_unary(behavior, stats)
            else:
                wrapped = _counted_call(behavior, stats)  # e.g. health Watch: writes via context
        else:
            return handler  # a synchronous handler: grpc.aio runs it as is; left untimed
        return handler._replace(**{attr: wrapped})  # type: ignore[attr-defined]  # a NamedTuple at run time


def _timed_unary(
    behavior: Callable[..., Awaitable[Any]], stats: MethodStats
) -> Callable[..., Awaitable[Any]]:
    clock = time.perf_counter_ns
    bounds = BOUNDS_NS
    counts = stats.counts

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        t0 = clock()
        try:
            return await behavior(request, context)
        except _ENDED:
            stats.cancelled += 1
            raise
        except BaseException:
            stats.errors += 1
            raise
        finally:
            dt = clock() - t0
            counts[bisect_left(bounds, dt)] += 1
            stats.sum_ns += dt
            stats.calls += 1

    return handler


def _counted_call(
    behavior: Callable[..., Awaitable[Any]], stats: MethodStats
) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        stats.calls += 1
        try:
            return await behavior(request, context)
        except _ENDED:
            stats.cancelled += 1
            raise
        except BaseException:
            stats.errors += 1
            raise

    return handler


def _counted_stream(
    behavior: Callable[..., AsyncIterator[Any]], stats: MethodStats
) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        stats.calls += 1
        inner = behavior(request, context)
        try:
            async for response in inner:
                stats.messages_sent += 1
                yield response
        except _ENDED:
            stats.cancelled += 1
            raise
        except BaseException:
            stats.errors += 1
            raise
        finally:
            await inner.aclose()  # type: ignore[attr-defined]  # an async generator

    return handler


class _Mark:
    __slots__ = ("t0",)

    def __init__(self) -> None:
        self.t0 = 0


async def _marked(requests: AsyncIterator[Any], mark: _Mark) -> AsyncIterator[Any]:
    """The request stream as the handler sees it, noting when each request is handed over (an async
    generator: about 0.1 µs a message less than a class with a coroutine ``__anext__``)."""
    clock = time.perf_counter_ns
    async for request in requests:
        mark.t0 = clock()
        yield request


def _timed_bidi(
    behavior: Callable[..., AsyncIterator[Any]], stats: MethodStats
) -> Callable[..., AsyncIterator[Any]]:
    clock = time.perf_counter_ns
    bounds = BOUNDS_NS
    counts = stats.counts

    async def handler(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        stats.calls += 1
        mark = _Mark()
        marked = _marked(requests, mark)
        inner = behavior(marked, context)
        try:
            async for response in inner:
                t0 = mark.t0
                if t0:  # the reply to the request handed over at t0
                    mark.t0 = 0
                    dt = clock() - t0
                    counts[bisect_left(bounds, dt)] += 1
                    stats.sum_ns += dt
                stats.messages_sent += 1
                yield response
        except _ENDED:
            stats.cancelled += 1
            raise
        except BaseException:
            stats.errors += 1
            raise
        finally:
            await inner.aclose()  # type: ignore[attr-defined]  # an async generator
            await marked.aclose()  # type: ignore[attr-defined]  # left suspended if the handler quit early

    return handler
