"""The Prometheus endpoint: prometheus_client's HTTP server in its own thread, and a Collector that
snapshots riskd's state on the event loop.

A scrape runs in the HTTP server's thread, but the engine, the write-behind, the pool and the
alert path belong to the event loop and change between its callbacks (a dict or deque iterated
from another thread can change size under the iteration). So the collector never reads them
from its thread: it hands one callback to the loop (``loop.call_soon_threadsafe``) that copies
every source into a plain snapshot (microseconds: counters, a few small dicts, no I/O), waits for
it at most ``snapshot_timeout`` seconds, then builds the metric families from the copy in its
own thread. A scrape therefore sees one consistent moment of the loop and the loop pays only the
copy. If the loop does not answer in time (blocked, or stopped), the scrape carries the process
metrics and ``riskd_metrics_snapshot_timeouts_total`` instead of stale or torn values.

Sources plug in with ``add_gauges(prefix, fn)``: ``fn()`` runs on the loop at each scrape and
returns a mapping (or a dataclass) of numbers, exported as ``riskd_<prefix>_<name>``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import math
import numbers
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from ..engine.counts import CheckCounter
from .families import NAME_RE, GaugeSet, Snapshot, families
from .rpc import RpcTimings

log = logging.getLogger("riskd.metrics")

SNAPSHOT_TIMEOUT = 2.0

Values = Mapping[str, Any] | Any  # a mapping of numbers, or a dataclass instance holding them


@dataclass(frozen=True, slots=True)
class _Source:
    prefix: str
    fn: Callable[[], Values]
    counters: frozenset[str]
    docs: Mapping[str, str]


class MetricsBindError(OSError):
    """The metrics address could not be bound (in use, or not an address of this host)."""


class Metrics:
    """riskd's metrics for one server: sources, the collector and the HTTP endpoint."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rpc: RpcTimings | None = None,
        *,
        snapshot_timeout: float = SNAPSHOT_TIMEOUT,
        process_metrics: bool = True,
    ) -> None:
        self._loop = loop
        self.rpc = rpc if rpc is not None else RpcTimings()
        self._timeout = snapshot_timeout
        self._checks: CheckCounter | None = None
        self._sources: dict[str, _Source] = {}
        self._breakers: dict[str, Callable[[], str]] = {}
        self._timeouts = 0
        self._source_errors: dict[str, int] = {}
        self._failing: set[str] = set()  # sources whose last call raised (the loop's)
        self._lock = threading.Lock()  # the scrape-side counters above (scrapes may overlap)
        self.registry = CollectorRegistry(auto_describe=False)
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.registry.register(_RiskdCollector(self))
        self._httpd: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ sources (registration API)

    def watch_checks(self, counter: CheckCounter) -> None:
        """The engine's check counters (Engine.check_counter): orders and violations by check."""
        self._checks = counter

    def add_gauges(
        self,
        prefix: str,
        fn: Callable[[], Values],
        *,
        counters: Iterable[str] = (),
        docs: Mapping[str, str] | None = None,
    ) -> None:
        """Export ``fn()``'s numbers as ``riskd_<prefix>_<name>`` at every scrape.

        ``fn`` runs on the event loop (so it may read loop-owned state freely) and must be quick
        and non-blocking. It returns a mapping of name -> number, or a dataclass instance (its
        fields); bools count as 0/1 and anything not a finite number (a str) is skipped. Names in
        ``counters`` are monotonic totals, exported as counters (``..._total``) and as 0 when
        ``fn`` leaves them out (psycopg_pool's get_stats omits counters still at 0); the rest are
        gauges. ``docs`` gives a help text per name. A prefix can be registered once.
        """
        if not NAME_RE.match(prefix):
            raise ValueError(f"metrics prefix {prefix!r} is not a valid metric name part")
        if prefix in self._sources:
            raise ValueError(f"metrics prefix {prefix!r} is already registered")
        for name in counters:
            if not NAME_RE.match(name):
                raise ValueError(f"metrics counter name {name!r} is not a valid metric name part")
        self._sources[prefix] = _Source(prefix, fn, frozenset(counters), dict(docs or {}))

    def add_breaker(self, name: str, state: Callable[[], str]) -> None:
        """A circuit breaker: ``state()`` -> "closed", "open" or "half_open" (aiobreaker's state
        names, lower case), read on the loop at every scrape."""
        if name in self._breakers:
            raise ValueError(f"breaker {name!r} is already registered")
        self._breakers[name] = state

    def remove(self, prefix: str) -> None:
        """Stop exporting a source (a component that was stopped)."""
        self._sources.pop(prefix, None)

    # ------------------------------------------------------------------ the HTTP endpoint

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (its own daemon thread); returns the bound port (port 0 picks one)."""
        try:
            httpd, thread = start_http_server(port, addr=host.strip("[]"), registry=self.registry)
        except OSError as exc:
            raise MetricsBindError(exc.errno, exc.strerror or str(exc)) from exc
        self._httpd, self._thread = httpd, thread
        self.port = int(httpd.server_port)
        log.info("metrics on http://%s:%d/metrics", host, self.port)
        return self.port

    def close(self) -> None:
        """Stop the HTTP endpoint (blocks for up to its 0.5 s poll; run it off the loop)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ------------------------------------------------------------------ scraping

    def snapshot(self) -> Snapshot:
        """Copy every source (call on the event loop: the sources are the loop's)."""
        failed: list[str] = []
        gauges: list[GaugeSet] = []
        for src in list(self._sources.values()):
            try:
                values = _numbers(src.fn(), src.counters)
            except Exception:
                if src.prefix not in self._failing:  # logged when it starts failing, counted always
                    self._failing.add(src.prefix)
                    log.exception(
                        "metrics source %r failed (counted in riskd_metrics_source_errors)", src.prefix
                    )
                failed.append(src.prefix)
                continue
            self._failing.discard(src.prefix)
            gauges.append(GaugeSet(src.prefix, values, src.counters, src.docs))
        breakers: list[tuple[str, str]] = []
        for name, state in list(self._breakers.items()):
            try:
                breakers.append((name, str(state()).lower()))
            except Exception:
                if f"breaker:{name}" not in self._failing:
                    self._failing.add(f"breaker:{name}")
                    log.exception("metrics breaker %r failed", name)
                failed.append(f"breaker:{name}")
                continue
            self._failing.discard(f"breaker:{name}")
        return Snapshot(
            checks=self._checks.snapshot() if self._checks is not None else None,
            rpcs=self.rpc.snapshot(),
            gauges=gauges,
            breakers=breakers,
            failed_sources=failed,
        )

    def snapshot_from_thread(self) -> Snapshot | None:
        """``snapshot()`` taken on the loop from another thread; None when the loop did not answer
        within the timeout (or is closed). On the loop's own thread it is taken directly."""
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is self._loop:
                return self.snapshot()
        future: concurrent.futures.Future[Snapshot] = concurrent.futures.Future()

        def take() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the scrape gave up already
            try:
                future.set_result(self.snapshot())
            except BaseException as exc:
                future.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(take)
            return future.result(self._timeout)
        except (RuntimeError, concurrent.futures.TimeoutError):  # loop closed; loop busy or stopped
            future.cancel()
            with self._lock:
                self._timeouts += 1
            log.warning("metrics scrape: the event loop did not answer within %.1fs", self._timeout)
            return None

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot_from_thread()
        if snap is not None:
            yield from families(snap)
            with self._lock:
                for prefix in snap.failed_sources:
                    self._source_errors[prefix] = self._source_errors.get(prefix, 0) + 1
        with self._lock:
            timeouts, errors = self._timeouts, dict(self._source_errors)
        yield CounterMetricFamily(
            "riskd_metrics_snapshot_timeouts",
            "Scrapes the event loop did not answer in time (they carried only process metrics).",
            value=timeouts,
        )
        fam = CounterMetricFamily(
            "riskd_metrics_source_errors", "Scrapes at which a metrics source raised.", labels=["source"]
        )
        for prefix, n in sorted(errors.items()):
            fam.add_metric([prefix], n)
        yield fam


class _RiskdCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.collect()


def _numbers(values: Values, counters: frozenset[str]) -> dict[str, float]:
    """A source's result as name -> float: numbers and bools kept, everything else skipped."""
    items: Mapping[str, Any]
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        items = {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    elif isinstance(values, Mapping):
        items = values
    else:
        raise TypeError(f"a metrics source returned {type(values).__name__}, not a mapping or a dataclass")
    out: dict[str, float] = dict.fromkeys(sorted(counters), 0.0)
    for name, value in items.items():
        if isinstance(value, bool):
            out[name] = 1.0 if value else 0.0
        elif isinstance(value, numbers.Real) and math.isfinite(value) and NAME_RE.match(name):
            out[name] = float(value)
    return out
