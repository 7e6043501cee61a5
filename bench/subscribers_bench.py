"""Alert subscribers: riskd's SubscribeAlerts fan-out measured against a bare grpc.aio stream holder
in the same run, and what alerts cost the rest of the server.

1. The holder (bench.stream_holder, its own process, no database): N streams opened by subscriber
   processes (bench.subscriber_clients), RSS before and with them open, then ``--rounds`` times
   one prepared alert written to every stream; the delay from its Alert.time to each arrival.
2. ``riskd serve`` as a user runs it (embedded PostgreSQL in a temporary folder, a subprocess),
   loaded with the bench workload (limits, marks, positions) through the API:
   (a) + (b) on the fresh server, as for the holder: RSS before and with N SubscribeAlerts streams,
   then ``--rounds`` marked alerts raised through the real API (one order over the
   ``subbench-mark`` MAX_ORDER_QUANTITY limit: its Alert.time is when the check raised it), the
   delay to every subscriber and the server's CPU time per alert;
   (c) CheckOrders throughput (bench.loadgen, batches of 1,000): none, N attached, none. "Quiet"
   runs: every batch carries one order over the mark limit (one dedupe key: an occurrence per
   batch, an alert at first and a summary per dedupe window) and a fresh alert is raised every
   ``--alert-interval`` s; "noisy" runs (info): the workload's full limits, ~2 % of orders
   rejected over hundreds of keys. Each run starts with the persistence backlog drained.
3. A second fresh ``riskd serve``: (d) ``--bursts`` bursts of ``--burst`` alerts (distinct
   rejected orders: 1,000 accounts x burst/1,000 symbols, a fresh limit id each burst so dedupe
   folds nothing), RSS after each (write-behind drained, RSS settled), the history's length read
   back through SubscribeAlerts(after_seq=1) (replayed + ``missed``); (e) filtered QueryAlerts
   over the full history: the server's own timer (``riskd_rpc_server_seconds`` from
   ``--metrics-listen``, when the server has it) and the client round trip minus an empty RPC's
   (grpc.health.v1 Check), alternating call by call.

Every riskd figure is with its database; the holder has none (it is the floor).

    python -m bench.subscribers_bench [--subscribers N | --full | --quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc

from .loadgen import LoadConfig, LoadResult, run_load
from .run_all import Row, _cpu_seconds, _fmt_rate, print_table
from .servers import RESULTS, ServerProcess, rss_bytes, spawn_riskd, spawn_server
from .stream_holder import COUNT, FIRE
from .subscriber_clients import MARK_PREFIX, Delays, SubscriberPool, raise_fd_limit
from .workload import Workload

P99_RATIO_TARGET = 1.5  # riskd's p99 delay / the holder's
P99_TARGET_S = 1.0
RSS_RATIO_TARGET = 1.25  # riskd's RSS per idle subscriber / the holder's
THROUGHPUT_RATIO_TARGET = 0.9  # CheckOrders with N subscribers / with none
QUERY_TARGET_US = 1_000.0
# RSS "flat" under bursts: RSS per alert raised after the first burst (the history already full)
# at most this fraction of RSS per alert while the first burst filled it. Anything kept per alert
# past the cap would show as a fraction near 1; the allocator's noise here is about +-15 MB a burst.
FLAT_FRACTION_TARGET = 0.1

MARK_ACCOUNT = "SBMARK"
MARK_LIMIT = "subbench-mark"
TICK_BASE = 100_000  # marked alerts raised under load are rounds TICK_BASE, TICK_BASE + 1, ...
BURST_ACCOUNTS = 1_000
QUERY_METHOD = "/riskd.v1.RiskService/QueryAlerts"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SUBSCRIBE_METHOD = "/riskd.v1.RiskService/SubscribeAlerts"


# ---------------------------------------------------------------------------------------- results


@dataclass(slots=True)
class FanoutFigures:
    """One server's subscriber figures: streams held, RSS, delivery delays of the marked alerts."""

    server: str
    asked: int
    opened: int = 0
    refused: int = 0  # refused attempts (retried)
    failed: int = 0  # streams that never opened
    open_s: float = math.nan
    rss_before: int = 0
    rss_open: int = 0  # N streams open, idle
    rss_rounds: int = 0  # after the rounds
    rss_closed: int = 0  # streams closed again
    cpu_per_round_ms: float = math.nan  # the server's CPU time from raising an alert to its last delivery
    rounds: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    round_max_ms: list[float] = field(default_factory=list)
    missing: int = 0  # deliveries of the marked alerts that never arrived
    ended: int = 0  # streams the server ended while held
    dropped: int = 0  # sum of the responses' dropped fields
    end_error: str = ""

    @property
    def per_stream_kb(self) -> float:
        return (self.rss_open - self.rss_before) / self.opened / 1024 if self.opened else math.nan

    def take_delays(self, delays: Delays, rounds: range) -> None:
        per = {r: delays.per_round.get(r, np.zeros(0)) for r in rounds}
        allv = np.concatenate(list(per.values())) if per else np.zeros(0)
        self.rounds = len(per)
        self.missing = sum(max(self.opened - len(d), 0) for d in per.values())
        if allv.size:
            p50, p99 = np.percentile(allv, [50, 99])
            self.p50_ms, self.p99_ms, self.max_ms = p50 * 1e3, p99 * 1e3, float(allv.max()) * 1e3
        self.round_max_ms = [round(float(d.max()) * 1e3, 1) if d.size else math.nan for d in per.values()]


@dataclass(slots=True)
class ThroughputRun:
    """One CheckOrders load run (bench.loadgen, batches of 1,000) and what the alert path did meanwhile."""

    regime: str  # "quiet": one rejected order per batch (one key) + a fresh alert every
    # --alert-interval s; "noisy": the workload's full limits (~2 % rejected, many distinct keys)
    subscribers: int
    result: dict  # LoadResult
    raised: int = 0  # alerts numbered during the run (GetAlertStats.raised)
    deliveries: int = 0  # alerts the subscribers received during the run
    ticks: int = 0  # fresh marked alerts the ticker raised
    wall_s: float = 0.0  # the run, warm-up included
    server_cpu_s: float = math.nan  # the server process's CPU time over the run
    relay_cpu_s: float = 0.0  # the alert relays' CPU time over the run (--relays)
    orders_checked: float = math.nan  # riskd_orders_checked_total over the run (--metrics-listen)

    @property
    def cpu_us_per_order(self) -> float:
        """Server CPU per order checked (the fan-out's CPU included): steadier than throughput on a
        shared machine, and what 'the hot path's cost' means when the server is not saturated."""
        if math.isnan(self.orders_checked) or not self.orders_checked:
            return math.nan
        return self.server_cpu_s / self.orders_checked * 1e6


@dataclass(slots=True)
class ThroughputFigures:
    runs: list[ThroughputRun] = field(default_factory=list)
    subscribers: int = 0
    delayed_p99_ms: float = math.nan  # the ticker's alerts: delay to every subscriber, under load
    delayed_max_ms: float = math.nan

    def rate(self, regime: str, attached: bool) -> float:
        values = [
            r.result["orders_per_s"]
            for r in self.runs
            if r.regime == regime and (r.subscribers > 0) == attached
        ]
        return statistics.mean(values) if values else math.nan

    def ratio(self, regime: str) -> float:
        none = self.rate(regime, False)
        return self.rate(regime, True) / none if none else math.nan

    def cpu(self, regime: str, attached: bool) -> float:
        values = [
            r.cpu_us_per_order
            for r in self.runs
            if r.regime == regime and (r.subscribers > 0) == attached and not math.isnan(r.cpu_us_per_order)
        ]
        return statistics.mean(values) if values else math.nan

    def latency_ms(self, regime: str, attached: bool, key: str = "p99_us") -> float:
        """CheckOrders latency (the loadgen's ``p99_us``/``max_us``), median over the runs."""
        values = [
            r.result[key] / 1e3 for r in self.runs if r.regime == regime and (r.subscribers > 0) == attached
        ]
        return statistics.median(values) if values else math.nan


@dataclass(slots=True)
class BurstFigures:
    size: int
    history_cap: int
    rss: list[int] = field(default_factory=list)  # before the first burst, then after each
    seconds: list[float] = field(default_factory=list)  # first order sent -> last alert numbered
    raised: list[int] = field(default_factory=list)  # alerts numbered per burst
    last_seq: int = 0
    held: int = 0  # alerts the history replays after seq 1
    missed: int = 0  # ... and those it says it no longer holds

    @property
    def expected_held(self) -> int:
        """What SubscribeAlerts(after_seq=1) should replay: the ring full, or everything after seq 1."""
        return min(self.history_cap, max(self.last_seq - 1, 0))

    @property
    def fill_bytes_per_alert(self) -> float:
        """RSS per alert while the first burst filled the history (ring, indexes, dedupe, names)."""
        if len(self.rss) < 2 or not self.raised:
            return math.nan
        return (self.rss[1] - self.rss[0]) / max(self.raised[0], 1)

    @property
    def flat_bytes_per_alert(self) -> float:
        """RSS per alert raised after the first burst: ~0 when nothing is kept past the cap."""
        if len(self.rss) < 3:
            return math.nan
        return (self.rss[-1] - self.rss[1]) / max(sum(self.raised[1:]), 1)


@dataclass(slots=True)
class QueryFigures:
    name: str
    returned: int
    rtt_p50_us: float
    rtt_p99_us: float
    empty_p50_us: float
    through_postgres: bool = False
    server_mean_us: float = math.nan  # riskd_rpc_server_seconds (--metrics-listen), when served
    server_p50_bound_us: float = math.nan  # the histogram bucket bound holding the median

    @property
    def server_us(self) -> float:
        """The server's own timer when it has one; else round trip minus the empty RPC's."""
        if not math.isnan(self.server_mean_us):
            return self.server_mean_us
        return self.rtt_p50_us - self.empty_p50_us


@dataclass(slots=True)
class Report:
    started: str
    env: dict
    settings: dict
    holder: FanoutFigures | None = None
    riskd: FanoutFigures | None = None
    throughput: ThroughputFigures | None = None
    burst: BurstFigures | None = None
    queries: list[QueryFigures] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- helpers


def _env() -> dict:
    from .run_all import _env as run_all_env

    env = run_all_env()
    env["mem_total_mb"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    env["nofile"] = list(raise_fd_limit())
    return env


def _order_request(
    coids: list[str], accounts: list[str], symbols: list[str], qty: float
) -> pb.CheckOrdersRequest:
    n = len(coids)
    return pb.CheckOrdersRequest(
        orders=pb.OrderBatch(
            client_order_id=coids,
            account=accounts,
            symbol=symbols,
            side=[pb.SIDE_BUY] * n,
            quantity=[qty] * n,
            price=[100.0] * n,
        )
    )


def raise_marked(stub: pb_grpc.RiskServiceStub, r: int) -> None:
    """One order over the subbench-mark limit: riskd raises a MAX_ORDER_QUANTITY reject alert
    whose client_order_id marks round r (a fresh symbol per round: a fresh dedupe key)."""
    reply = stub.CheckOrders(
        _order_request([f"{MARK_PREFIX}{r}"], [MARK_ACCOUNT], [f"SBM{r}"], 1_000.0), timeout=30
    )
    if reply.result.accepted[0]:
        raise RuntimeError("the marked order was accepted: is the subbench-mark limit set?")


def _grpc_unavailable(exc: grpc.RpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]


def hold_streams(
    fig: FanoutFigures | None,
    server: ServerProcess,
    args: argparse.Namespace,
    fire=None,
    rounds: range = range(0),
    request: bytes = b"",
) -> SubscriberPool:
    """Open the streams (with ``fig``: RSS before and with them, then the marked rounds); the pool
    stays open."""
    target, pids = fanout_end(server)
    rss_before = sum(settle_rss(p) for p in pids) if fig is not None else 0
    pool = SubscriberPool(
        target,
        args.subscribers,
        args.client_procs,
        args.channels,
        args.wave,
        request,
        not args.no_uvloop,
    )
    try:
        st = pool.start()
    except BaseException:
        pool.kill(grace=0.0)
        raise
    print(
        f"  {st['open']:,} streams open in {pool.open_seconds:.1f} s "
        f"({pool.total // max(len(pool.procs), 1):,} a process x {len(pool.procs)}, {args.channels} "
        f"channels each; {st['refused']} refused attempts retried, {st['failed']} failed)",
        flush=True,
    )
    if fig is None:
        return pool
    if target != server.target:
        fig.server = f"{fig.server} via {len(pids) - 1} relays at {target}"
    fig.opened, fig.refused, fig.failed, fig.open_s = (
        st["open"],
        st["refused"],
        st["failed"],
        pool.open_seconds,
    )
    fig.rss_before = rss_before
    time.sleep(args.settle)
    fig.rss_open = sum(rss_bytes(p) for p in pids)
    print(
        f"  RSS {fig.rss_before / 2**20:,.1f} -> {fig.rss_open / 2**20:,.1f} MB: "
        f"{fig.per_stream_kb:.1f} KB per idle stream",
        flush=True,
    )
    cpu = 0.0
    for r in rounds:
        cpu0 = sum(_cpu_seconds(p) for p in pids)
        fire(r)
        if not pool.wait_round(r, args.round_timeout):
            print(f"  round {r}: not every stream got the alert within {args.round_timeout:g} s", flush=True)
        cpu += sum(_cpu_seconds(p) for p in pids) - cpu0
        time.sleep(args.round_gap)
    fig.cpu_per_round_ms = cpu / max(len(rounds), 1) * 1e3
    fig.rss_rounds = sum(rss_bytes(p) for p in pids)
    return pool


RELAYS_BANNER = "riskd alert relays on "


def fanout_end(server: ServerProcess) -> tuple[str, list[int]]:
    """Where subscribers connect and the processes that serve them: the server itself, or, when it
    runs alert relays (`--alert-relays`), their shared port and the server with its relays (RSS
    and CPU per alert count every process that does the fan-out's work)."""
    line = next((x for x in server.lines if x.startswith(RELAYS_BANNER)), "")
    if not line:
        return server.target, [server.proc.pid]
    return line[len(RELAYS_BANNER) :].split()[0], [server.proc.pid, *relay_pids(server.proc.pid)]


def relay_pids(pid: int) -> list[int]:
    import psutil

    try:
        return [
            c.pid
            for c in psutil.Process(pid).children()
            if "riskd_server.alerts.relay" in " ".join(c.cmdline())
        ]
    except psutil.Error:
        return []


def close_streams(fig: FanoutFigures, server: ServerProcess, pool: SubscriberPool, rounds: range) -> Delays:
    st, delays = pool.stop()
    fig.ended, fig.dropped, fig.end_error = st["ended"], st["dropped"], st["end_error"]
    fig.take_delays(delays, rounds)
    time.sleep(1.0)
    fig.rss_closed = sum(rss_bytes(p) for p in fanout_end(server)[1])
    print(
        f"  delay to all {fig.opened:,}: p50 {fig.p50_ms:,.1f} ms, p99 {fig.p99_ms:,.1f} ms, "
        f"max {fig.max_ms:,.1f} ms (per round max {fig.round_max_ms}); server CPU "
        f"{fig.cpu_per_round_ms:,.0f} ms per alert; missing {fig.missing}, "
        f"ended by the server {fig.ended}; RSS after closing {fig.rss_closed / 2**20:,.1f} MB",
        flush=True,
    )
    return delays


# ---------------------------------------------------------------------------------------- holder


def run_holder(args: argparse.Namespace) -> FanoutFigures:
    fig = FanoutFigures("holder", args.subscribers)
    server = spawn_server("holder", "bench.stream_holder", ["--no-uvloop"] if args.no_uvloop else [])
    try:
        with grpc.insecure_channel(server.target) as ch:
            fire_rpc, count = ch.unary_unary(FIRE), ch.unary_unary(COUNT)
            fire_rpc(b"warm-up", timeout=10)  # the fire path's first-call costs, before RSS
            rounds = range(args.rounds)
            pool = hold_streams(
                fig, server, args, lambda r: fire_rpc(f"{MARK_PREFIX}{r}".encode(), timeout=30), rounds
            )
            try:
                held = int(count(b"", timeout=10))
                if held != fig.opened:
                    print(f"  holder counts {held} streams, clients {fig.opened}", flush=True)
            finally:
                close_streams(fig, server, pool, rounds)
    finally:
        server.stop()
    return fig


# ---------------------------------------------------------------------------------------- riskd


def load_workload(stub: pb_grpc.RiskServiceStub, workload: Workload, limits: list) -> None:
    """The workload's marks and positions, the given limits, and the mark limit, through the API."""
    from riskd_server.limits import MAX_ORDER_QUANTITY, Limit

    mark = Limit(limit_id=MARK_LIMIT, kind=MAX_ORDER_QUANTITY, account=MARK_ACCOUNT, threshold=10)
    upsert(stub, [*limits, mark])
    stub.UpdatePrices(
        pb.UpdatePricesRequest(symbol=workload.symbols, price=workload.marks.tolist()), timeout=60
    )
    accounts, symbols, qty = workload.positions()
    stub.LoadPositions(
        pb.LoadPositionsRequest(account=accounts, symbol=symbols, quantity=qty.tolist()), timeout=60
    )


def drain(stub: pb_grpc.RiskServiceStub, timeout: float = 300.0) -> float:
    """Wait until the write-behind has committed everything queued: each throughput run starts with
    an empty persistence backlog, not the previous run's. DeleteLimits of an id that does not
    exist changes nothing (no alert) but, like every limit change, returns once the write-behind
    has committed up to it (trailer riskd-persisted: true). Returns the seconds waited."""
    t0 = time.monotonic()
    request = pb.DeleteLimitsRequest(limit_ids=["subbench-no-such-limit"])
    while time.monotonic() - t0 < timeout:
        try:
            _, call = stub.DeleteLimits.with_call(request, timeout=60)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                raise
            time.sleep(0.2)  # refusing new work until the backlog drains
            continue
        if dict(call.trailing_metadata() or ()).get("riskd-persisted") == "true":
            return time.monotonic() - t0
    raise TimeoutError(f"the persistence backlog did not drain in {timeout:g} s")


def _throughput(
    args: argparse.Namespace, target: str, stub: pb_grpc.RiskServiceStub, extra: bool = False
) -> LoadResult:
    """One bench.loadgen run (batches of 1,000; with ``extra`` one more order per batch, over the
    mark limit: every batch raises one occurrence of one alert key)."""
    waited = drain(stub)
    cfg = LoadConfig(
        target=target,
        mode="unary",
        batch=1_000,
        duration=args.duration,
        warmup=args.warmup,
        procs=args.load_procs,
        concurrency=2,
        uvloop=not args.no_uvloop,
        extra_order=(MARK_ACCOUNT, "SBREJ", 1_000.0, 100.0) if extra else None,
    )
    result = run_load(cfg)
    refused = f"; first error {result.first_error}" if result.errors else ""
    print(f"    {result.summary()} (backlog drained {waited:.1f} s before){refused}", flush=True)
    return result


class Ticker:
    """Raises a fresh marked alert every ``interval`` s on its own thread (0: none), numbered from
    ``rounds``, so the alert path and the fan-out work while the throughput is measured."""

    def __init__(self, stub: pb_grpc.RiskServiceStub, interval: float, rounds) -> None:
        self.stub = stub
        self.interval = interval
        self.rounds = rounds
        self.raised: list[int] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            r = next(self.rounds)
            try:
                raise_marked(self.stub, r)
            except (grpc.RpcError, RuntimeError) as exc:
                self.error = str(exc)
                return
            self.raised.append(r)

    def __enter__(self) -> Ticker:
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def alert_stats(stub: pb_grpc.RiskServiceStub) -> pb.GetAlertStatsResponse:
    return stub.GetAlertStats(pb.GetAlertStatsRequest(), timeout=30)


def wait_alerts(
    stub: pb_grpc.RiskServiceStub, at_least: int, quiet: float = 1.0, timeout: float = 300.0
) -> tuple[int, float]:
    """Poll GetAlertStats until last_seq >= at_least and unchanged for ``quiet`` s:
    (the last seq, time.perf_counter() when it was first seen)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.perf_counter()
    while time.monotonic() < deadline:
        seq = alert_stats(stub).last_seq
        if seq != last:
            last, since = seq, time.perf_counter()
        elif seq >= at_least and time.perf_counter() - since >= quiet:
            return seq, since
        time.sleep(0.02)
    raise TimeoutError(f"alerts: last_seq {last}, expected at least {at_least} within {timeout:g} s")


def history_held(channel: grpc.Channel, last_seq: int, timeout: float = 120.0) -> tuple[int, int]:
    """(alerts the history replays after seq 1 up to last_seq, alerts it says it no longer holds)."""
    call = channel.unary_stream(SUBSCRIBE_METHOD)(
        pb.SubscribeAlertsRequest(after_seq=1).SerializeToString(), timeout=timeout
    )
    held = missed = 0
    if last_seq <= 1:
        return 0, 0
    try:
        for raw in call:
            msg = pb.SubscribeAlertsResponse.FromString(raw)
            missed += msg.missed
            held += sum(1 for a in msg.alerts if a.seq <= last_seq)
            if msg.alerts and msg.alerts[-1].seq >= last_seq:
                break
    finally:
        call.cancel()
    return held, missed


def run_bursts(
    args: argparse.Namespace,
    stub: pb_grpc.RiskServiceStub,
    channel: grpc.Channel,
    server: ServerProcess,
    cap: int,
) -> BurstFigures:
    from riskd_server.limits import MAX_ORDER_QUANTITY, Limit
    from riskd_server.servicer import limit_to_pb

    fig = BurstFigures(args.burst, cap)
    n_sym = max(1, math.ceil(args.burst / BURST_ACCOUNTS))
    accounts = [f"SBB{a:03d}" for a in range(BURST_ACCOUNTS)]
    symbols = [f"SBBS{s:03d}" for s in range(n_sym)]
    pairs = [(a, s) for s in symbols for a in accounts][: args.burst]
    drain(stub)
    fig.rss.append(settle_rss(server.proc.pid))
    previous: list[str] = []
    for b in range(args.bursts):
        ids = [f"subbench-burst{b}-{s}" for s in symbols]
        stub.UpsertLimits(
            pb.UpsertLimitsRequest(
                limits=[
                    limit_to_pb(Limit(limit_id=i, kind=MAX_ORDER_QUANTITY, symbol=s, threshold=10))
                    for i, s in zip(ids, symbols, strict=True)
                ]
            ),
            timeout=60,
        )
        if previous:
            stub.DeleteLimits(pb.DeleteLimitsRequest(limit_ids=previous), timeout=60)
        previous = ids
        start_seq, _ = wait_alerts(stub, 0, quiet=0.5)
        t0 = time.perf_counter()
        for i in range(0, len(pairs), 1_000):
            chunk = pairs[i : i + 1_000]
            req = _order_request(
                [f"sbb{b}-{i + k}" for k in range(len(chunk))],
                [a for a, _ in chunk],
                [s for _, s in chunk],
                50.0,
            )
            reply = stub.CheckOrders(req, timeout=60)
            if any(reply.result.accepted):
                raise RuntimeError("a burst order was accepted: the burst limits did not apply")
        last, t_last = wait_alerts(stub, start_seq + len(pairs), quiet=1.0)
        fig.seconds.append(t_last - t0)
        fig.raised.append(last - start_seq)
        drain(stub)  # the burst's rows committed: the write-behind's buffers are not the history's
        fig.rss.append(settle_rss(server.proc.pid))
        print(
            f"    burst {b + 1}: {last - start_seq:,} alerts numbered in {fig.seconds[-1]:.2f} s, "
            f"RSS {fig.rss[-1] / 2**20:,.1f} MB",
            flush=True,
        )
    fig.last_seq = alert_stats(stub).last_seq
    fig.held, fig.missed = history_held(channel, fig.last_seq)
    print(
        f"    history holds {fig.held:,} of {fig.last_seq:,} alerts (missed {fig.missed:,}; cap {cap:,}); "
        f"RSS {fig.fill_bytes_per_alert:,.0f} B per alert filling it, {fig.flat_bytes_per_alert:,.0f} B "
        f"per alert past the cap",
        flush=True,
    )
    return fig


def _interleaved(query, request: bytes, empty, n: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Round trips (µs) of ``query`` and of the empty RPC, alternating call by call so the machine's
    drift (other work on the shared cores) lands on both alike; and the last reply."""
    reply = b""
    for _ in range(max(n // 10, 5)):  # warm
        reply = query(request, timeout=30)
        empty(b"", timeout=30)
    q, e = np.empty(n), np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        reply = query(request, timeout=30)
        t1 = time.perf_counter_ns()
        empty(b"", timeout=30)
        t2 = time.perf_counter_ns()
        q[i], e[i] = (t1 - t0) / 1e3, (t2 - t1) / 1e3
    return q, e, reply


_HIST = re.compile(
    r"^riskd_rpc_server_seconds_(bucket|sum|count)\{([^}]*)\} ([0-9.eE+-]+|[+-]Inf|NaN)$", re.M
)


def counter(metrics_url: str, name: str) -> float:
    """One unlabelled counter or gauge from the Prometheus endpoint (nan when absent)."""
    if not metrics_url:
        return math.nan
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{re.escape(name)} ([0-9.eE+-]+)$", text, re.M)
    return float(m[1]) if m else math.nan


def server_times(metrics_url: str, method: str) -> dict[str, float]:
    """riskd_rpc_server_seconds for one method from the Prometheus endpoint: sum, count and the
    cumulative count per bucket bound ("le")."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for kind, labels, value in _HIST.findall(text):
        if f'method="{method}"' not in labels:
            continue
        if kind == "bucket":
            le = re.search(r'le="([^"]+)"', labels)
            out[f"le={le[1] if le else ''}"] = float(value)
        else:
            out[kind] = float(value)
    return out


def _hist_delta(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """(mean µs, p50 bucket bound µs) of the calls between two scrapes (nan when none)."""
    count = after.get("count", 0.0) - before.get("count", 0.0)
    if count <= 0:
        return math.nan, math.nan
    mean = (after.get("sum", 0.0) - before.get("sum", 0.0)) / count * 1e6
    bounds = sorted((float(k[3:]), after[k] - before.get(k, 0.0)) for k in after if k.startswith("le="))
    p50 = next((le * 1e6 for le, n in bounds if n >= count / 2), math.nan)
    return mean, p50


def run_queries(
    args: argparse.Namespace, channel: grpc.Channel, n_sym: int, metrics_url: str = ""
) -> list[QueryFigures]:
    query = channel.unary_unary(QUERY_METHOD)
    empty = channel.unary_unary(HEALTH_CHECK)
    acct, sym = "SBB123", f"SBBS{min(42, n_sym - 1):03d}"
    cases = [
        ("account (1 of 1,000), page 100", pb.AlertFilter(accounts=[acct]), False),
        ("min severity WARNING, page 100", pb.AlertFilter(min_severity=pb.SEVERITY_WARNING), False),
        (
            "check MAX_ORDER_QUANTITY + symbol, page 100",
            pb.AlertFilter(checks=[pb.RISK_CHECK_MAX_ORDER_QUANTITY], symbols=[sym]),
            False,
        ),
        (
            "kind TRADING_STATE (no match: pages on into PostgreSQL)",
            pb.AlertFilter(kinds=[pb.ALERT_KIND_TRADING_STATE]),
            True,
        ),
    ]
    out = []
    for name, flt, deep in cases:
        req = pb.QueryAlertsRequest(filter=flt, page_size=100).SerializeToString()
        before = server_times(metrics_url, "QueryAlerts") if metrics_url else {}
        rtt, rtt_empty, reply = _interleaved(query, req, empty, args.queries)
        after = server_times(metrics_url, "QueryAlerts") if metrics_url else {}
        q = QueryFigures(
            name,
            len(pb.QueryAlertsResponse.FromString(reply).alerts),
            float(np.percentile(rtt, 50)),
            float(np.percentile(rtt, 99)),
            float(np.percentile(rtt_empty, 50)),
            deep,
        )
        if metrics_url:
            q.server_mean_us, q.server_p50_bound_us = _hist_delta(before, after)
        out.append(q)
        timer = (
            f"; server timer: mean {q.server_mean_us:,.0f} µs, p50 <= {q.server_p50_bound_us:,.0f} µs"
            if metrics_url
            else ""
        )
        print(
            f"    {name}: {q.returned} alerts, round trip p50 {q.rtt_p50_us:,.0f} µs (p99 {q.rtt_p99_us:,.0f}), "
            f"empty RPC {q.empty_p50_us:,.0f} µs -> difference {q.rtt_p50_us - q.empty_p50_us:,.0f} µs"
            + timer,
            flush=True,
        )
    return out


def _has_setting(name: str) -> bool:
    from riskd_server.config import OPTIONS

    return any(o.name == name for o in OPTIONS)


def _serve_setting(name: str, args: argparse.Namespace, default):
    """A riskd serve setting's value in this run: from --serve-arg when given, else its default."""
    flag = "--" + name.replace("_", "-")
    for i, a in enumerate(args.serve_args):
        if a == flag and i + 1 < len(args.serve_args):
            return type(default)(args.serve_args[i + 1])
        if a.startswith(flag + "="):
            return type(default)(a.split("=", 1)[1])
    from riskd_server.config import OPTIONS

    return next((o.default for o in OPTIONS if o.name == name), default)


def split_limits(workload: Workload) -> tuple[list, list]:
    """(quiet, tight): the workload's limits without / with only the tight per-account and
    per-symbol ones that reject ~2 % of its orders (hundreds of distinct dedupe keys)."""
    tight_prefixes = (
        "acct-qty-",
        "sym-notional-",
        "sym-collar-",
        "sym-restricted-",
        "x-position-",
        "x-restricted-",
    )
    quiet, tight = [], []
    for lim in workload.limits():
        (tight if lim.limit_id.startswith(tight_prefixes) else quiet).append(lim)
    return quiet, tight


def upsert(stub: pb_grpc.RiskServiceStub, limits: list) -> None:
    from riskd_server.servicer import limit_to_pb

    for i in range(0, len(limits), 1_000):
        chunk = [limit_to_pb(x) for x in limits[i : i + 1_000]]
        stub.UpsertLimits(pb.UpsertLimitsRequest(limits=chunk), timeout=60)


def settle_rss(pid: int, timeout: float = 30.0, step: float = 0.5, tolerance: int = 2**20) -> int:
    """RSS once it stops moving (two steps within ``tolerance``): after a load run the allocator
    keeps returning memory for a while, which would read as negative per-stream memory."""
    deadline = time.monotonic() + timeout
    last = rss_bytes(pid)
    still = 0
    while time.monotonic() < deadline and still < 2:
        time.sleep(step)
        now = rss_bytes(pid)
        still = still + 1 if abs(now - last) <= tolerance else 0
        last = now
    return last


class RiskdSession:
    """One `riskd serve` (its own embedded PostgreSQL in a temporary folder) and a channel to it."""

    def __init__(self, args: argparse.Namespace, name: str) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="riskd-subbench-"))
        serve_args = list(args.serve_args)
        if _has_setting("metrics_listen") and not any(a.startswith("--metrics-listen") for a in serve_args):
            serve_args += ["--metrics-listen", "127.0.0.1:0"]  # the server's own timer for QueryAlerts
        if args.relays and not any(a.startswith("--alert-relays") for a in serve_args):
            serve_args += ["--alert-relays", str(args.relays), "--alert-relay-listen", "127.0.0.1:0"]
        self.server: ServerProcess | None = None
        self.channel: grpc.Channel | None = None
        try:
            self.server = spawn_riskd(name, self.data_dir, serve_args)
        except BaseException:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise
        print(f"  {self.server.banner} at {self.server.target} (pid {self.server.proc.pid})", flush=True)
        self.metrics_url = ""
        for _ in range(100 if args.relays else 0):  # the relays' line follows the banner
            if any(x.startswith(RELAYS_BANNER) for x in self.server.lines):
                break
            time.sleep(0.05)
        for _ in range(50 if "--metrics-listen" in serve_args else 0):  # printed after the banner
            self.metrics_url = next(
                (x.rsplit(" ", 1)[1] for x in self.server.lines if x.startswith("riskd metrics on ")), ""
            )
            if self.metrics_url:
                break
            time.sleep(0.05)
        self.channel = grpc.insecure_channel(
            self.server.target, options=[("grpc.max_receive_message_length", 64 * 2**20)]
        )
        self.stub = pb_grpc.RiskServiceStub(self.channel)

    def __enter__(self) -> RiskdSession:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.server is not None:
            self.server.stop(timeout=60)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def run_riskd(args: argparse.Namespace, report: Report) -> None:
    """(a), (b), (c) on one fresh `riskd serve`; (d), (e) on another, so each phase's RSS starts from
    a server that has not just freed (and kept) the memory of an earlier phase."""
    fig = report.riskd = FanoutFigures("riskd", args.subscribers)
    workload = Workload()
    quiet, tight = split_limits(workload)
    with RiskdSession(args, "riskd-subbench") as rs:
        assert rs.server is not None
        server, stub = rs.server, rs.stub
        load_workload(stub, workload, quiet)
        raise_marked(stub, -1)  # the alert path's first-call costs
        thr = report.throughput = ThroughputFigures(subscribers=args.subscribers)
        ticks = iter(range(TICK_BASE, TICK_BASE + 1_000_000))
        ticked: list[int] = []

        def load_run(regime: str, pool: SubscriberPool | None) -> None:
            n = pool.open if pool is not None else 0
            interval = args.alert_interval if regime == "quiet" else 0.0
            print(
                f"  CheckOrders batch 1,000, {regime}, {n:,} subscribers"
                + (
                    f", one rejected order per batch (one dedupe key), a fresh alert every {interval:g} s"
                    if regime == "quiet"
                    else ", the workload's full limits"
                ),
                flush=True,
            )
            before = pool.stats()["alerts"] if pool is not None else 0
            drain(stub)
            raised0 = alert_stats(stub).raised
            relays = relay_pids(server.proc.pid)
            checked0, cpu0, relay0 = (
                counter(rs.metrics_url, "riskd_orders_checked_total"),
                _cpu_seconds(server.proc.pid),
                sum(_cpu_seconds(p) for p in relays),
            )
            t0 = time.perf_counter()
            with Ticker(stub, interval, ticks) as ticker:
                result = _throughput(args, server.target, stub, extra=regime == "quiet")
            run = ThroughputRun(regime, n, asdict(result), ticks=len(ticker.raised))
            run.wall_s = time.perf_counter() - t0
            run.server_cpu_s = _cpu_seconds(server.proc.pid) - cpu0
            run.relay_cpu_s = sum(_cpu_seconds(p) for p in relays) - relay0
            run.orders_checked = counter(rs.metrics_url, "riskd_orders_checked_total") - checked0
            ticked.extend(ticker.raised)
            if ticker.error:
                report.notes.append(f"alert ticker stopped: {ticker.error}")
            if pool is not None:
                time.sleep(2.0)  # what was queued lands
                run.deliveries = pool.stats()["alerts"] - before
            run.raised = alert_stats(stub).raised - raised0
            print(
                f"    alerts raised {run.raised:,}"
                + (f", delivered {run.deliveries:,}" if pool is not None else "")
                + f"; server CPU {run.cpu_us_per_order:.2f} µs per order checked"
                + (f"; relays' CPU {run.relay_cpu_s:.1f} s" if relays else ""),
                flush=True,
            )
            thr.runs.append(run)

        # (a), (b) on the fresh server, as the holder: RSS before and with the streams, the rounds.
        rounds = range(args.rounds)
        pool = hold_streams(fig, server, args, lambda r: raise_marked(stub, r), rounds)
        close_streams(fig, server, pool, rounds)
        # (c) none, N attached, ..., none; the noisy pair with the workload's full limits.
        delays: list[Delays] = []
        for rep in range(args.repeat if args.duration > 0 else 0):
            load_run("quiet", None)
            pool = hold_streams(None, server, args)
            try:
                load_run("quiet", pool)
                if args.noisy and rep == 0:
                    upsert(stub, tight)
                    load_run("noisy", pool)
            finally:
                delays.append(pool.stop()[1])
            if args.noisy and rep == 0:
                # The attached run met every key first: wait out the dedupe window (its summaries go
                # out, its keys are forgotten) so this run raises the same first occurrences.
                time.sleep(_serve_setting("alert_dedupe_window", args, 10.0) + 2.0)
                load_run("noisy", None)
                stub.DeleteLimits(pb.DeleteLimitsRequest(limit_ids=[x.limit_id for x in tight]), timeout=60)
                time.sleep(_serve_setting("alert_dedupe_window", args, 10.0) + 2.0)  # its summaries out
        if args.duration > 0 and args.repeat > 0:
            load_run("quiet", None)
        if ticked:
            parts = [d.per_round[r] for d in delays for r in ticked if r in d.per_round]
            vals = np.concatenate(parts) if parts else np.zeros(0)
            if vals.size:
                thr.delayed_p99_ms = float(np.percentile(vals, 99)) * 1e3
                thr.delayed_max_ms = float(vals.max()) * 1e3
                print(
                    f"  marked alerts under load (quiet runs, attached): {vals.size:,} deliveries, "
                    f"p99 {thr.delayed_p99_ms:,.1f} ms, max {thr.delayed_max_ms:,.1f} ms",
                    flush=True,
                )
    if args.bursts > 0 and args.burst > 0:
        cap = _serve_setting("alert_history", args, 100_000)
        print(
            f"\n== riskd serve (a second, fresh one): {args.bursts} bursts of {args.burst:,} alerts "
            f"(history cap {cap:,})",
            flush=True,
        )
        with RiskdSession(args, "riskd-subbench-bursts") as rs:
            assert rs.server is not None and rs.channel is not None
            report.burst = run_bursts(args, rs.stub, rs.channel, rs.server, cap)
            if args.queries > 0:
                print(f"  filtered QueryAlerts over the full history ({args.queries} calls each)", flush=True)
                n_sym = max(1, math.ceil(args.burst / BURST_ACCOUNTS))
                report.queries = run_queries(args, rs.channel, n_sym, rs.metrics_url)


# ---------------------------------------------------------------------------------------- table


def rows_of(report: Report) -> list:
    rows = []
    relays = report.settings.get("relays") or 0
    via = f" (via {relays} relays)" if relays else ""
    h, r = report.holder, report.riskd
    if h is not None and h.opened:
        rows.append(
            Row(
                f"holder: {h.opened:,} streams, alert delay p99",
                f"{h.p99_ms:,.0f} ms",
                f"p50 {h.p50_ms:,.0f} ms",
                None,
                "(floor)",
                None,
                f"max {h.max_ms:,.0f} ms; server CPU {h.cpu_per_round_ms:,.0f} ms per alert; "
                f"{h.per_stream_kb:.1f} KB per idle stream; no database",
            )
        )
    if r is not None and r.opened:
        ratio = r.p99_ms / h.p99_ms if h is not None and h.opened else None
        rows.append(
            Row(
                f"riskd: {r.opened:,} SubscribeAlerts{via}, alert delay p99 vs holder",
                f"{r.p99_ms:,.0f} ms (p50 {r.p50_ms:,.0f})",
                f"holder {h.p99_ms:,.0f} ms" if h else "",
                ratio,
                f"<= {P99_RATIO_TARGET}",
                None if ratio is None else ratio <= P99_RATIO_TARGET and not r.missing,
                f"max {r.max_ms:,.0f} ms; server CPU {r.cpu_per_round_ms:,.0f} ms per alert "
                f"(holder {h.cpu_per_round_ms:,.0f}); missing {r.missing}"
                if h is not None
                else f"max {r.max_ms:,.0f} ms; missing {r.missing}",
            )
        )
        rows.append(
            Row(
                "riskd: alert delay p99, absolute",
                f"{r.p99_ms:,.0f} ms",
                f"target {P99_TARGET_S * 1e3:,.0f} ms",
                r.p99_ms / (P99_TARGET_S * 1e3),
                "<= 1.0",
                r.p99_ms <= P99_TARGET_S * 1e3 and not r.missing,
            )
        )
        rratio = r.per_stream_kb / h.per_stream_kb if h is not None and h.opened else None
        rows.append(
            Row(
                f"riskd: RSS per idle subscriber{via} vs holder",
                f"{r.per_stream_kb:.1f} KB",
                f"holder {h.per_stream_kb:.1f} KB" if h else "",
                rratio,
                f"<= {RSS_RATIO_TARGET}",
                None if rratio is None else rratio <= RSS_RATIO_TARGET,
                f"RSS {r.rss_before / 2**20:,.0f} -> {r.rss_open / 2**20:,.0f} MB, "
                f"{r.rss_closed / 2**20:,.0f} MB after closing",
            )
        )
    t = report.throughput
    for regime, what in (
        ("quiet", "alerts now and then"),
        ("noisy", "the workload's ~2 % rejects as alerts"),
    ):
        runs = [x for x in (t.runs if t is not None else []) if x.regime == regime]
        if t is None or not any(x.subscribers for x in runs) or all(x.subscribers for x in runs):
            continue
        ratio = t.ratio(regime)
        att = [x for x in runs if x.subscribers]
        seconds = sum(x.wall_s for x in att) or 1.0
        rows.append(
            Row(
                f"riskd: CheckOrders batch 1000, {t.subscribers:,} subscribers{via} vs none ({what})",
                _fmt_rate(t.rate(regime, True)) + " orders",
                "none " + " / ".join(_fmt_rate(x.result["orders_per_s"]) for x in runs if not x.subscribers),
                ratio,
                f">= {THROUGHPUT_RATIO_TARGET}" if regime == "quiet" else "(info)",
                ratio >= THROUGHPUT_RATIO_TARGET if regime == "quiet" else None,
                f"server CPU/order {t.cpu(regime, True):.2f} vs {t.cpu(regime, False):.2f} µs; "
                + (f"relays' CPU {sum(x.relay_cpu_s for x in att) / seconds:.2f} s/s; " if relays else "")
                + f"CheckOrders p99 {t.latency_ms(regime, True):,.0f} vs {t.latency_ms(regime, False):,.0f} ms, "
                f"max {t.latency_ms(regime, True, 'max_us'):,.0f} vs {t.latency_ms(regime, False, 'max_us'):,.0f} ms; "
                f"alerts raised while attached {sum(x.raised for x in att):,}, "
                f"deliveries {sum(x.deliveries for x in att):,} (~{sum(x.deliveries for x in att) / seconds:,.0f}/s)"
                + (
                    f"; marked ones' delay p99 {t.delayed_p99_ms:,.0f} ms"
                    if regime == "quiet" and not math.isnan(t.delayed_p99_ms)
                    else ""
                ),
            )
        )
    b = report.burst
    if b is not None and b.raised:
        flat, fill = b.flat_bytes_per_alert, b.fill_bytes_per_alert
        frac = flat / fill if fill > 0 and not math.isnan(flat) else None
        rows.append(
            Row(
                f"riskd: {len(b.raised)} bursts of {b.size:,} alerts, RSS per alert past the cap",
                f"{flat:,.0f} B/alert",
                f"filling: {fill:,.0f} B/alert",
                frac,
                f"<= {FLAT_FRACTION_TARGET}",
                None if frac is None else frac <= FLAT_FRACTION_TARGET,
                "RSS MB before, then after each burst: " + " -> ".join(f"{x / 2**20:,.0f}" for x in b.rss),
            )
        )
        rows.append(
            Row(
                "riskd: history length after the bursts",
                f"{b.held:,}",
                f"cap {b.history_cap:,}",
                b.held / b.expected_held if b.expected_held else None,
                "== min(cap, last seq - 1)",
                b.held == b.expected_held and b.held + b.missed == b.last_seq - 1,
                f"replayed after seq 1: {b.held:,} held + {b.missed:,} missed of last seq {b.last_seq:,}; "
                f"a burst took {statistics.mean(b.seconds):.2f} s",
            )
        )
    for q in report.queries:
        rows.append(
            Row(
                f"riskd: QueryAlerts {q.name}",
                f"{q.server_us:,.0f} µs server" + ("" if not math.isnan(q.server_mean_us) else " (~)"),
                f"target {QUERY_TARGET_US:,.0f} µs",
                q.server_us / QUERY_TARGET_US,
                "(info)" if q.through_postgres else "<= 1.0",
                None if q.through_postgres else q.server_us <= QUERY_TARGET_US,
                f"{q.returned} returned; "
                + (
                    f"server timer mean, median <= {q.server_p50_bound_us:,.0f} µs; "
                    if not math.isnan(q.server_mean_us)
                    else "no server timer (no --metrics-listen): "
                )
                + f"round trip p50 {q.rtt_p50_us:,.0f} µs - empty RPC {q.empty_p50_us:,.0f} µs "
                f"= {q.rtt_p50_us - q.empty_p50_us:,.0f} µs",
            )
        )
    return rows


# ---------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, help="streams held (default 2,000; --full 10,000)")
    parser.add_argument("--full", action="store_true", help="the issue's sizes: 10,000 subscribers")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter (smoke)")
    parser.add_argument(
        "--client-procs", type=int, help="subscriber processes (default: one per 1,250 streams, 2-8)"
    )
    parser.add_argument(
        "--channels", type=int, default=4, help="channels (TCP connections) per subscriber process"
    )
    parser.add_argument(
        "--wave", type=int, default=250, help="new SubscribeAlerts calls in flight per process"
    )
    parser.add_argument("--rounds", type=int, default=5, help="marked alerts timed to every subscriber")
    parser.add_argument("--round-gap", type=float, default=0.5, help="seconds between rounds")
    parser.add_argument("--round-timeout", type=float, default=30.0)
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds before reading RSS with the streams open"
    )
    parser.add_argument(
        "--duration", type=float, help="CheckOrders seconds per run (0: skip; default 5, --full 10)"
    )
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--load-procs", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--alert-interval",
        type=float,
        default=5.0,
        help="seconds between fresh alerts in the quiet runs (0: none; every batch also rejects one order "
        "of one dedupe key)",
    )
    parser.add_argument(
        "--no-noisy",
        dest="noisy",
        action="store_false",
        help="skip the runs with the workload's full limits (~2 %% of orders rejected: many alerts)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="throughput: (none, attached) pairs, then a last none run (default 1; --full 2)",
    )
    parser.add_argument("--burst", type=int, default=100_000, help="alerts per burst (0: skip)")
    parser.add_argument(
        "--bursts", type=int, default=4, help="bursts (the first fills the history; RSS flat after it)"
    )
    parser.add_argument("--queries", type=int, default=300, help="QueryAlerts calls per filter (0: skip)")
    parser.add_argument("--skip-holder", action="store_true")
    parser.add_argument("--skip-riskd", action="store_true")
    parser.add_argument(
        "--serve-arg",
        dest="serve_args",
        action="append",
        default=[],
        help="extra `riskd serve` argument (repeat; e.g. --serve-arg=--alert-history --serve-arg=2000)",
    )
    parser.add_argument(
        "--relays",
        type=int,
        default=0,
        help="riskd runs with --alert-relays N and the subscribers connect to the relays (0: to the server)",
    )
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    return parser


def settle_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.subscribers is None:
        args.subscribers = 10_000 if args.full else (500 if args.quick else 2_000)
    if args.client_procs is None:
        args.client_procs = min(8, max(2, math.ceil(args.subscribers / 1_250)))
    if args.duration is None:
        args.duration = 2.0 if args.quick else (10.0 if args.full else 5.0)
    if args.repeat is None:
        args.repeat = 2 if args.full else 1
    if args.quick:
        args.rounds = min(args.rounds, 3)
        args.bursts = min(args.bursts, 3)
        args.queries = min(args.queries, 100)
        args.warmup = min(args.warmup, 0.5)
        if args.duration > 0:
            args.alert_interval = min(args.alert_interval, args.duration / 2)
    return args


def run(args: argparse.Namespace) -> Report:
    started = time.strftime("%Y%m%d-%H%M%S")
    settings = {k: v for k, v in vars(args).items()}
    report = Report(started, _env(), settings)
    report.notes.append(
        "holder: bare grpc.aio (bench.stream_holder), same options and loop, no database; "
        "riskd: `riskd serve` with its embedded PostgreSQL, as a user runs it"
    )
    report.notes.append(
        "delays: Alert.time (raised) -> arrival in a subscriber process, one clock; "
        "subscriber processes share the 2 cores with the server"
    )
    print(f"riskd subscriber bench {started}: {report.env}", flush=True)
    if not args.skip_holder:
        print(f"\n== holder: {args.subscribers:,} streams, {args.rounds} rounds", flush=True)
        report.holder = run_holder(args)
    if not args.skip_riskd:
        print(f"\n== riskd serve: {args.subscribers:,} SubscribeAlerts, {args.rounds} rounds", flush=True)
        try:
            run_riskd(args, report)
        except (grpc.RpcError, RuntimeError, TimeoutError) as exc:
            detail = _grpc_unavailable(exc) if isinstance(exc, grpc.RpcError) else str(exc)
            msg = f"riskd phase stopped: {detail}"
            print(f"  {msg}", flush=True)
            report.notes.append(msg)
    return report


def main(argv: list[str] | None = None) -> int:
    args = settle_args(build_parser().parse_args(argv))
    t0 = time.monotonic()
    report = run(args)
    rows = rows_of(report)
    report.rows = [asdict(r) for r in rows]
    report.settings["elapsed_s"] = round(time.monotonic() - t0, 1)
    print(f"\n== summary ({report.settings['elapsed_s']:.0f} s)")
    for note in report.notes:
        print(f"  * {note}")
    print()
    if rows:
        print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"subscribers-{report.started}.json"
    text = json.dumps(asdict(report), indent=2, default=str)
    out.write_text(text)
    (RESULTS / "subscribers-latest.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
