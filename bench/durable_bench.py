"""Issue 11's end-to-end targets: `riskd serve` with its embedded PostgreSQL beside the echo, one run.

Each step runs a fresh `riskd serve --data-dir TMP` (the embedded PostgreSQL it starts itself, as a
user runs it; the workload's limits, marks and positions loaded through the API; metrics on) and
bench/echo_server.py side by side, load from bench.loadgen processes on 127.0.0.1:

1. **check + cancel**: CheckOrders batches of 1,000, each followed by a ReportExecutions cancelling
   its orders (closed loop, ``cancel_every`` = the batch), for ``--duration`` seconds (60 with
   --full): orders/s real/echo (target >= 0.7), refused calls (target 0: the clients' count by
   status, and the server's own riskd_rpc_errors_total), then **catch-up**: seconds from the end of
   the load until PostgreSQL has everything (a pluggable probe, below).
2. **one-order stream**: CheckOrderStream, 1 order a message, at ``--stream-rate`` (2,000/s) on the
   same server once caught up: p99 real/echo (target <= 1.3) and riskd's server time a message.
3. **journal cost** a one-order message in server time: (a) in-process, bench.journal_cost_bench
   (RiskServicer._check_wire with and without the CHECK record appended by journal.writer's
   Journal, alternating blocks; runs today); (b) the running server: the same stream against two
   `riskd serve`, the ``journal`` setting on and off (RISKD_JOURNAL), runs alternating: the
   difference of the mean of riskd_rpc_server_seconds for CheckOrderStream over a run (exact: the
   histogram's sum and count) and of the server's CPU a message. With the journal off riskd
   persists through its write-behind, so (b) is what the journal path costs or saves against the
   write-behind's, not the journal's own cost (that is (a)). (b) is skipped, with a note, while
   riskd has no ``journal`` setting; a note says whether each server wrote journal files.

In steps 1 and 2 bench.engine_server (the engine behind grpc.aio: no database, journal or alerts)
runs after each echo run, unless ``--no-ceiling``: the ceiling riskd serve can reach on this
machine in the same run, reported beside each target.

Catch-up probes (``--catch-up``; CATCH_UP maps a name to a factory ``(session) -> Probe``, a Probe
answers "does PostgreSQL have everything?"):

- ``rows`` (default; works before and after the journal): the orders table holds
  riskd_orders_accepted_total rows and the executions table one row per cancel the clients had
  acknowledged (every report is a row, applied or not);
- ``journal``: journal_applied's seq reaches the last record of DATA_DIR/journal.

    python -m bench.durable_bench [--full] [--duration S] [--stream-rate R] [--catch-up rows|journal]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc

from .loadgen import LoadConfig, LoadResult, run_load
from .servers import RESULTS, ServerProcess, spawn_riskd, spawn_server
from .workload import Workload

BATCH_RATIO_TARGET = 0.7
STREAM_P99_RATIO_TARGET = 1.3
STREAM_METHOD = ("riskd.v1.RiskService", "CheckOrderStream")
MUTATING = ("CheckOrders", "ReportExecutions", "CheckOrderStream")
JOURNAL_SETTING = "journal"  # issue 11: on | off (the lead's setting); RISKD_JOURNAL in the env

Probe = Callable[[], bool]


# ---------------------------------------------------------------------------------------- riskd


def has_setting(name: str) -> bool:
    from riskd_server.config import OPTIONS

    return any(o.name == name for o in OPTIONS)


def embedded_dsn(data_dir: Path, database: str = "riskd") -> str:
    """The DSN of the cluster `riskd serve` started under data_dir, read from its postmaster.pid
    (line 4 port, line 5 socket folder), without attaching to it: attaching would make this process
    a holder of the cluster and keep it running after riskd stops."""
    lines = (data_dir / "pg" / "postmaster.pid").read_text().splitlines()
    port, socket_dir = lines[3].strip(), lines[4].strip()
    host = socket_dir or (lines[5].strip() if len(lines) > 5 else "") or "127.0.0.1"
    return f"host={host} port={port} dbname={database} user=postgres"


def scrape(url: str) -> dict[str, float]:
    """A Prometheus text page as {"name{labels}": value} (labels as printed)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[key] = float(value)
    return out


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """The sum of every series of ``name`` whose labels include ``labels`` (0 when none)."""
    total = 0.0
    for key, v in values.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{val}"' in rest for k, val in labels.items()):
            total += v
    return total


@dataclass(slots=True)
class Session:
    """One `riskd serve` with its own data dir (embedded PostgreSQL), metrics on."""

    name: str
    data_dir: Path
    server: ServerProcess
    metrics_url: str
    executions_acked: int = 0  # cancels (one execution row each) the clients had answered, in total

    @property
    def target(self) -> str:
        return self.server.target

    @property
    def dsn(self) -> str:
        return embedded_dsn(self.data_dir)

    def metrics(self) -> dict[str, float]:
        return scrape(self.metrics_url)

    def journal_note(self) -> str:
        """What the server left under DATA_DIR/journal: proof the journal was (or was not) on."""
        files = [p for p in (self.data_dir / "journal").glob("*") if p.is_file()]
        if not files:
            return f"{self.name}: no journal files under {self.data_dir / 'journal'}"
        size = sum(p.stat().st_size for p in files)
        return f"{self.name}: {len(files)} journal file(s), {size / 2**20:,.1f} MB"

    def stop(self) -> None:
        self.server.stop(timeout=60)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_riskd(name: str, env: dict[str, str] | None = None, args: list[str] | None = None) -> Session:
    """`riskd serve --data-dir TMP --metrics-listen 127.0.0.1:0 ARGS` with ``env`` added to the
    environment (RISKD_* settings), the workload loaded through the API."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"riskd-{name}-"))
    serve_args = ["--metrics-listen", "127.0.0.1:0", "--log-level", "WARNING", *(args or [])]
    try:
        server = spawn_riskd(name, data_dir, serve_args, env=env)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    url = ""
    for _ in range(100):  # printed right after the serving banner
        url = next((x.rsplit(" ", 1)[1] for x in server.lines if x.startswith("riskd metrics on ")), "")
        if url:
            break
        time.sleep(0.05)
    session = Session(name, data_dir, server, url)
    try:
        if not url:
            raise RuntimeError(f"{name}: no 'riskd metrics on' line in {server.lines}")
        load_workload(session.target, Workload())
    except BaseException:
        session.stop()
        raise
    return session


def load_workload(target: str, workload: Workload) -> None:
    """The workload's limits, marks and positions through the API (what engine_server loads)."""
    from riskd_server.servicer import limit_to_pb

    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 * 2**20)]) as ch:
        stub = pb_grpc.RiskServiceStub(ch)
        limits = workload.limits()
        for i in range(0, len(limits), 1_000):
            chunk = [limit_to_pb(x) for x in limits[i : i + 1_000]]
            stub.UpsertLimits(pb.UpsertLimitsRequest(limits=chunk), timeout=120)
        stub.UpdatePrices(
            pb.UpdatePricesRequest(symbol=workload.symbols, price=workload.marks.tolist()), timeout=120
        )
        accounts, symbols, qty = workload.positions()
        stub.LoadPositions(
            pb.LoadPositionsRequest(account=accounts, symbol=symbols, quantity=qty.tolist()), timeout=120
        )


# ------------------------------------------------------------------------------------- catch-up


def rows_probe(session: Session) -> Probe:
    """Today's (and tomorrow's) check: the orders table holds every accepted order and the
    executions table every acknowledged report. max(id) of executions (its primary key: one index
    probe) gates the exact count(*)s, which are run at most every 2 s: they scan millions of rows
    and would slow the very catch-up they wait for."""
    import psycopg

    accepted = int(metric(session.metrics(), "riskd_orders_accepted_total"))
    executions = session.executions_acked
    dsn = session.dsn
    last_exact = [0.0]

    def probe() -> bool:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            top = conn.execute("SELECT coalesce(max(id), 0) FROM executions").fetchone()
            if top is None or top[0] < executions or time.monotonic() - last_exact[0] < 2.0:
                return False
            last_exact[0] = time.monotonic()
            row = conn.execute(
                "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM executions)"
            ).fetchone()
        return row is not None and row[0] >= accepted and row[1] >= executions

    return probe


def journal_probe(session: Session) -> Probe:
    """After issue 11: journal_applied's seq (the feeder's mark, committed with the rows) reaches
    the journal's last record. The journal is read once, when the probe is made (the load has
    ended, nothing more is appended): the last segment walked to its end."""
    import psycopg

    from riskd_server.journal.format import segments
    from riskd_server.journal.reader import SegmentEnd, walk_segment

    segs = segments(session.data_dir / "journal")
    if not segs:
        raise RuntimeError(f"no journal under {session.data_dir / 'journal'}")
    first, path = segs[-1]
    last = first - 1
    for item in walk_segment(path, first, last=True, visit=False):
        if isinstance(item, SegmentEnd):
            last = item.next_seq - 1
    dsn = session.dsn

    def probe() -> bool:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM journal_applied").fetchone()
        return row is not None and row[0] >= last

    return probe


CATCH_UP: dict[str, Callable[[Session], Probe]] = {"rows": rows_probe, "journal": journal_probe}


def wait_caught_up(probe: Probe, since: float, timeout: float, step: float = 0.1) -> float:
    """Seconds from ``since`` (time.monotonic(): the load's end) until probe() holds; nan after
    ``timeout`` seconds of trying."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if probe():
                return time.monotonic() - since
        except Exception as exc:  # the database restarting, a table not there yet: try again
            print(f"    catch-up probe: {exc!r}", flush=True)
            time.sleep(1.0)
        time.sleep(step)
    return math.nan


# ---------------------------------------------------------------------------------------- runs


@dataclass(slots=True)
class Run:
    """One load run against one server, with the server's own figures over it."""

    server: str
    load: LoadResult
    server_cpu_us: float = math.nan  # the server's CPU per request (per message)
    server_time_us: float = math.nan  # riskd: mean server time a message (stream), from metrics
    server_errors: int = 0  # riskd: riskd_rpc_errors_total delta over the mutating RPCs
    catch_up_s: float = math.nan  # riskd: after the run
    ended: float = 0.0  # time.monotonic() when the load had ended (every client call answered)


@dataclass(slots=True)
class DurableReport:
    settings: dict
    check_cancel: list[Run] = field(default_factory=list)
    stream: list[Run] = field(default_factory=list)
    journal_on: list[Run] = field(default_factory=list)
    journal_off: list[Run] = field(default_factory=list)
    journal_inproc: dict | None = None  # bench.journal_cost_bench's JournalCost, as a dict
    notes: list[str] = field(default_factory=list)


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(name: str, server: ServerProcess, cfg: LoadConfig, session: Session | None = None) -> Run:
    """One bench.loadgen run, with the server's CPU and (riskd) its metrics before and after."""
    before = session.metrics() if session else {}
    cpu = _cpu_seconds(server.proc.pid)
    load = run_load(cfg)
    run = Run(name, load, ended=time.monotonic())
    requests = load.rps * (cfg.warmup + cfg.duration)
    if requests:
        run.server_cpu_us = (_cpu_seconds(server.proc.pid) - cpu) / requests * 1e6
    if session is not None:
        after = session.metrics()
        session.executions_acked += load.cancelled_orders
        sv, md = STREAM_METHOD
        n = metric(after, "riskd_rpc_server_seconds_count", service=sv, method=md) - metric(
            before, "riskd_rpc_server_seconds_count", service=sv, method=md
        )
        s = metric(after, "riskd_rpc_server_seconds_sum", service=sv, method=md) - metric(
            before, "riskd_rpc_server_seconds_sum", service=sv, method=md
        )
        run.server_time_us = s / n * 1e6 if n else math.nan
        run.server_errors = int(
            sum(
                metric(after, "riskd_rpc_errors_total", method=m)
                - metric(before, "riskd_rpc_errors_total", method=m)
                for m in MUTATING
            )
        )
    codes = ", ".join(f"{k} {v}" for k, v in sorted(load.error_codes.items()))
    extra = f", server CPU {run.server_cpu_us:,.0f} µs/req"
    if not math.isnan(run.server_time_us):
        extra += f", server time {run.server_time_us:.1f} µs/msg"
    if session is not None:
        extra += f", server errors {run.server_errors}"
    print(f"    {name:<11} {load.summary()}{extra}" + (f" [{codes}]" if codes else ""), flush=True)
    if load.first_error:
        print(f"                first error: {load.first_error}", flush=True)
    if load.accepted_fraction < 0.95:
        print(f"                most rejected (check:limit_id, sampled): {load.top_rejections}", flush=True)
    return run


def _alternate(rep: int, names: tuple[str, str]) -> tuple[str, str]:
    return names if rep % 2 == 0 else (names[1], names[0])


def check_cancel_cfg(args: argparse.Namespace, target: str) -> LoadConfig:
    return LoadConfig(
        target=target,
        mode="unary",
        batch=1_000,
        duration=args.duration,
        warmup=args.warmup,
        procs=args.procs,
        concurrency=2,
        cancel_every=1_000,  # each batch followed by the ReportExecutions cancelling its orders
        uvloop=not args.no_uvloop,
    )


def stream_cfg(args: argparse.Namespace, target: str) -> LoadConfig:
    return LoadConfig(
        target=target,
        mode="stream",
        batch=1,
        duration=args.stream_duration,
        warmup=args.warmup,
        procs=args.procs,
        concurrency=4,
        rate=args.stream_rate,
        uvloop=not args.no_uvloop,
    )


@contextlib.contextmanager
def _servers(*starters: Callable[[], object]) -> Iterator[list]:
    started: list = []
    try:
        for start in starters:
            started.append(start())
        yield started
    finally:
        for s in reversed(started):
            with contextlib.suppress(Exception):
                s.stop()


def journal_env(on: bool, fsync: str) -> dict[str, str]:
    """The environment that turns riskd's journal on or off (and sets its fsync, when riskd has
    that setting): settings by environment work for a bool or an on/off string alike."""
    env = {"RISKD_" + JOURNAL_SETTING.upper(): "on" if on else "off"}
    if has_setting("journal_fsync"):
        env["RISKD_JOURNAL_FSYNC"] = fsync
    return env


def _references(
    runs: list[Run], echo: ServerProcess, engine: ServerProcess | None, cfg: Callable[[str], LoadConfig]
) -> None:
    """The echo's run (the reference) and, when it was started, the engine-only server's (the
    ceiling), with the same load ``cfg(target)``."""
    runs.append(measure("echo", echo, cfg(echo.target)))
    if engine is not None:
        runs.append(measure("engine-only", engine, cfg(engine.target)))


def step_check_cancel(
    args: argparse.Namespace,
    report: DurableReport,
    echo: ServerProcess,
    riskd: Session,
    engine: ServerProcess | None = None,
) -> None:
    """Step 1: check+cancel on both servers, alternating; after each riskd run, its catch-up.
    With ``engine`` (bench.engine_server: the engine behind grpc.aio, no database, journal or
    alerts) also that, after the echo: the ceiling riskd serve can reach on this machine today."""
    probe_of = CATCH_UP[args.catch_up]
    print(
        f"  1. CheckOrders batch 1,000 + a ReportExecutions cancelling it, {args.duration:g} s "
        f"(x{args.repeat}); catch-up probe '{args.catch_up}'",
        flush=True,
    )
    for rep in range(args.repeat):
        for name in _alternate(rep, ("echo", "riskd")):
            if name == "echo":
                _references(report.check_cancel, echo, engine, lambda target: check_cancel_cfg(args, target))
                continue
            r = measure("riskd", riskd.server, check_cancel_cfg(args, riskd.target), riskd)
            probe = probe_of(riskd)  # made after the load: it reads the totals to wait for
            r.catch_up_s = wait_caught_up(probe, r.ended, args.catch_up_timeout)
            print(
                f"                PostgreSQL caught up {r.catch_up_s:.1f} s after the load ended", flush=True
            )
            report.check_cancel.append(r)


def step_stream(
    args: argparse.Namespace,
    report: DurableReport,
    echo: ServerProcess,
    riskd: Session,
    engine: ServerProcess | None = None,
) -> None:
    """Step 2: the one-order stream on both servers, alternating; with ``engine`` also that, after
    the echo (as in step 1: the p99 riskd serve can reach here without database, journal, alerts)."""
    print(
        f"  2. CheckOrderStream 1 order/msg @ {args.stream_rate:,.0f}/s, {args.stream_duration:g} s "
        f"(x{args.stream_repeat})",
        flush=True,
    )
    for rep in range(args.stream_repeat):
        for name in _alternate(rep, ("echo", "riskd")):
            if name == "echo":
                _references(report.stream, echo, engine, lambda target: stream_cfg(args, target))
            else:
                report.stream.append(measure("riskd", riskd.server, stream_cfg(args, riskd.target), riskd))


def step_journal(args: argparse.Namespace, report: DurableReport, journal: bool) -> None:
    """Step 3: the journal's cost a one-order message, in-process and (with the setting) in riskd."""
    if args.journal_calls:
        from . import journal_cost_bench

        print(
            f"  3a. journal cost in-process (bench.journal_cost_bench, fsync {args.journal_fsync})",
            flush=True,
        )
        cost = journal_cost_bench.run(args.journal_calls, fsync=args.journal_fsync)
        journal_cost_bench.print_report(cost)
        report.journal_inproc = {
            **asdict(cost),
            "cost_p50_us": cost.cost_p50_us,
            "cost_mean_us": cost.cost_mean_us,
        }
    if not args.journal_rounds:
        return
    if not journal:
        report.notes.append(
            f"journal cost in riskd serve: skipped, riskd has no '{JOURNAL_SETTING}' setting on this branch "
            "(merge main once the journal lands; RISKD_JOURNAL=on|off selects it)"
        )
        print(f"  3b. {report.notes[-1]}", flush=True)
        return
    print(
        f"  3b. journal cost: CheckOrderStream @ {args.journal_rate:,.0f}/s, journal on vs off "
        f"(x{args.journal_rounds}, alternating)",
        flush=True,
    )
    with _servers(
        lambda: start_riskd("riskd-journal-on", journal_env(True, args.journal_fsync)),
        lambda: start_riskd("riskd-journal-off", journal_env(False, args.journal_fsync)),
    ) as (on, off):
        cfg = dataclasses.replace(stream_cfg(args, ""), rate=args.journal_rate, duration=2.0, warmup=0.5)
        for s in (
            on,
            off,
        ):  # unmeasured: a server's first run after start is slower (first calls, autovacuum)
            run_load(dataclasses.replace(cfg, target=s.target))
        for rep in range(args.journal_rounds):
            for name in _alternate(rep, ("on", "off")):
                s = on if name == "on" else off
                cfg = dataclasses.replace(stream_cfg(args, s.target), rate=args.journal_rate)
                r = measure(f"journal {name}", s.server, cfg, s)
                (report.journal_on if name == "on" else report.journal_off).append(r)
        report.notes += [on.journal_note(), off.journal_note()]


def run(args: argparse.Namespace) -> DurableReport:
    report = DurableReport(settings={k: v for k, v in vars(args).items()})
    report.notes.append(f"load average at start {_loadavg()} ({os.cpu_count()} cpus: other work shares them)")
    journal = has_setting(JOURNAL_SETTING)
    env = journal_env(True, args.journal_fsync) if journal else None
    report.notes.append(
        f"riskd serve run with RISKD_JOURNAL=on (journal_fsync={args.journal_fsync}; the journal-files "
        "notes below say whether it journaled)"
        if journal
        else "riskd serve as on this branch: no journal setting (today's write-behind)"
    )
    if args.steps & {1, 2}:
        print(
            f"  starting riskd serve (embedded PostgreSQL) and the echo{' with ' + str(env) if env else ''}"
        )
        loop_args = ["--no-uvloop"] if args.no_uvloop else []
        ceiling = bool(args.steps & {1, 2}) and not args.no_ceiling
        with _servers(
            lambda: spawn_server("echo-durable", "bench.echo_server", loop_args),
            lambda: start_riskd("riskd-durable", env),
            *([lambda: spawn_server("engine-durable", "bench.engine_server", loop_args)] if ceiling else []),
        ) as (echo, riskd, *engine):
            print(f"    echo at {echo.target}; riskd at {riskd.target} (data {riskd.data_dir})", flush=True)
            if 1 in args.steps:
                step_check_cancel(args, report, echo, riskd, engine[0] if engine else None)
            if 2 in args.steps and args.stream_server == "fresh" and 1 in args.steps:
                with _servers(lambda: start_riskd("riskd-durable-stream", env)) as (fresh,):
                    report.notes.append("stream on a fresh riskd serve (not step 1's)")
                    step_stream(args, report, echo, fresh, engine[0] if engine else None)
            elif 2 in args.steps:
                step_stream(args, report, echo, riskd, engine[0] if engine else None)
            report.notes.append(riskd.journal_note())
    if 3 in args.steps:
        step_journal(args, report, journal)
    report.notes.append(f"load average at end {_loadavg()}")
    return report


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ------------------------------------------------------------------------------------- report


def _med(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return statistics.median(vals) if vals else math.nan


@dataclass(frozen=True, slots=True)
class Figures:
    """The issue's three figures (and what they rest on), medians over the runs."""

    riskd_orders_per_s: float
    echo_orders_per_s: float
    batch_ratio: float
    engine_orders_per_s: float  # bench.engine_server (no database, journal, alerts); nan = not run
    engine_ratio: float  # engine_orders_per_s / echo_orders_per_s
    refused_client: int  # calls the clients saw fail, every status, all riskd runs
    refused_server: int  # riskd_rpc_errors_total over the mutating RPCs, all riskd runs
    refused_codes: dict[str, int]
    catch_up_s: float  # the longest catch-up of the runs
    riskd_p99_us: float
    echo_p99_us: float
    stream_ratio: float
    engine_p99_us: float  # the stream on bench.engine_server; nan = not run
    engine_stream_ratio: float  # engine_p99_us / echo_p99_us
    stream_server_time_us: float
    stream_short: bool  # a server fell below 90 % of the offered rate: its p99 is queueing
    journal_on_us: float
    journal_off_us: float

    @property
    def journal_cost_us(self) -> float:
        return self.journal_on_us - self.journal_off_us


def figures(rep: DurableReport, rate: float) -> Figures:
    def pick(runs: list[Run], server: str) -> list[Run]:
        return [r for r in runs if r.server == server]

    cc_r, cc_e = pick(rep.check_cancel, "riskd"), pick(rep.check_cancel, "echo")
    st_r, st_e = pick(rep.stream, "riskd"), pick(rep.stream, "echo")
    a = _med([r.load.orders_per_s for r in cc_r])
    b = _med([r.load.orders_per_s for r in cc_e])
    c = _med([r.load.orders_per_s for r in pick(rep.check_cancel, "engine-only")])
    pa, pb_ = _med([r.load.p99_us for r in st_r]), _med([r.load.p99_us for r in st_e])
    pc = _med([r.load.p99_us for r in pick(rep.stream, "engine-only")])
    codes: dict[str, int] = {}
    for r in cc_r + st_r:
        for k, v in r.load.error_codes.items():
            codes[k] = codes.get(k, 0) + v
    short = any(r.load.orders_per_s < 0.9 * rate for r in st_r + st_e)
    catch = [r.catch_up_s for r in cc_r]
    return Figures(
        riskd_orders_per_s=a,
        echo_orders_per_s=b,
        batch_ratio=a / b if b else math.nan,
        engine_orders_per_s=c,
        engine_ratio=c / b if b else math.nan,
        refused_client=sum(r.load.errors for r in cc_r + st_r),
        refused_server=sum(r.server_errors for r in cc_r + st_r),
        refused_codes=codes,
        catch_up_s=max(catch) if catch and not any(math.isnan(c) for c in catch) else math.nan,
        riskd_p99_us=pa,
        echo_p99_us=pb_,
        stream_ratio=pa / pb_ if pb_ else math.nan,
        engine_p99_us=pc,
        engine_stream_ratio=pc / pb_ if pb_ else math.nan,
        stream_server_time_us=_med([r.server_time_us for r in st_r]),
        stream_short=short,
        journal_on_us=_med([r.server_time_us for r in rep.journal_on]),
        journal_off_us=_med([r.server_time_us for r in rep.journal_off]),
    )


def rows_of(rep: DurableReport, rate: float) -> list:
    """run_all's table rows for the three targets."""
    from .run_all import Row

    f = figures(rep, rate)
    cc_r = [r for r in rep.check_cancel if r.server == "riskd"]
    duration = rep.settings.get("duration", 0)
    refused = max(f.refused_client, f.refused_server)
    rows: list = []
    cc_rows = [
        Row(
            f"check+cancel, batch 1,000, {duration:g} s: riskd serve + PostgreSQL vs echo",
            f"{f.riskd_orders_per_s / 1e3:,.1f} k orders/s",
            f"echo {f.echo_orders_per_s / 1e3:,.1f} k/s",
            None if math.isnan(f.batch_ratio) else f.batch_ratio,
            f">= {BATCH_RATIO_TARGET}",
            None if math.isnan(f.batch_ratio) else f.batch_ratio >= BATCH_RATIO_TARGET,
            f"server CPU/batch {_med([r.server_cpu_us for r in cc_r]):,.0f} µs",
        ),
        Row(
            "check+cancel: refused calls (riskd)",
            f"{refused:,}",
            f"clients {f.refused_client:,}, server {f.refused_server:,}",
            None,
            "0",
            refused == 0,
            ", ".join(f"{k} {v}" for k, v in sorted(f.refused_codes.items())),
        ),
        Row(
            f"check+cancel: PostgreSQL catch-up after the load ({rep.settings.get('catch_up')})",
            "timeout" if math.isnan(f.catch_up_s) else f"{f.catch_up_s:.1f} s",
            "",
            None,
            "(report)",
            None,
            ", ".join(f"{r.catch_up_s:.1f}" for r in cc_r) + " s",
        ),
    ]
    stream_row = Row(
        f"CheckOrderStream 1 order/msg @ {rate:,.0f}/s p99: riskd serve + PostgreSQL vs echo",
        f"{f.riskd_p99_us:,.0f} µs",
        f"echo {f.echo_p99_us:,.0f} µs",
        None if math.isnan(f.stream_ratio) else f.stream_ratio,
        f"<= {STREAM_P99_RATIO_TARGET}",
        None if (math.isnan(f.stream_ratio) or f.stream_short) else f.stream_ratio <= STREAM_P99_RATIO_TARGET,
        f"server time {f.stream_server_time_us:.1f} µs/msg"
        + ("; BELOW the offered rate: saturated" if f.stream_short else ""),
    )
    if not math.isnan(f.engine_orders_per_s):
        cc_rows.insert(
            1,
            Row(
                "check+cancel: engine-only server vs echo (the ceiling: no database, journal, alerts)",
                f"{f.engine_orders_per_s / 1e3:,.1f} k orders/s",
                f"riskd serve / engine-only {f.riskd_orders_per_s / f.engine_orders_per_s:.2f}",
                None if math.isnan(f.engine_ratio) else f.engine_ratio,
                "(report)",
                None,
                "bench.engine_server, same workload and load",
            ),
        )
    if rep.check_cancel:
        rows += cc_rows
    if rep.stream:
        rows.append(stream_row)
        if not math.isnan(f.engine_p99_us):
            rows.append(
                Row(
                    "CheckOrderStream p99: engine-only server vs echo (the ceiling: no database, journal, alerts)",
                    f"{f.engine_p99_us:,.0f} µs",
                    f"riskd serve / engine-only {f.riskd_p99_us / f.engine_p99_us:.2f}",
                    None if math.isnan(f.engine_stream_ratio) else f.engine_stream_ratio,
                    "(report)",
                    None,
                    "bench.engine_server, same stream and rate",
                )
            )
    if rep.journal_inproc is not None:
        j = rep.journal_inproc
        rows.append(
            Row(
                f"journal cost per one-order message, in-process server time (fsync {j['fsync']})",
                f"{j['cost_p50_us']:+.2f} µs p50",
                f"{j['journal']['p50_us']:.2f} vs {j['plain']['p50_us']:.2f} µs without",
                None,
                "(report, next to 4.8 µs)",
                None,
                f"mean {j['cost_mean_us']:+.2f} µs; append alone p50 {j['append']['p50_us']:.2f} µs",
            )
        )
    if rep.journal_on:
        on_cpu = _med([r.server_cpu_us for r in rep.journal_on])
        off_cpu = _med([r.server_cpu_us for r in rep.journal_off])
        rows.append(
            Row(
                "one-order message in riskd serve, journal on - off (journal path vs write-behind)",
                f"{f.journal_cost_us:+.1f} µs",
                f"on {f.journal_on_us:.1f} / off {f.journal_off_us:.1f} µs",
                None,
                "(report, next to 4.8 µs)",
                None,
                f"mean of riskd_rpc_server_seconds; CPU/msg {on_cpu - off_cpu:+.0f} µs; "
                f"{len(rep.journal_on)} runs each, alternating",
            )
        )
    return rows


def print_report(rep: DurableReport, rate: float) -> None:
    from .run_all import print_table

    for note in rep.notes:
        print(f"  * {note}")
    print_table(rows_of(rep, rate))


# ---------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="60 s check+cancel runs (the issue's)")
    p.add_argument(
        "--steps",
        type=lambda v: {int(x) for x in v.split(",")},
        default={1, 2, 3},
        help="steps to run, comma separated (default 1,2,3: check+cancel, stream, journal cost)",
    )
    p.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    p.add_argument("--duration", type=float, help="check+cancel seconds a run (default 10; --full 60)")
    p.add_argument(
        "--stream-duration", type=float, help="stream seconds a run (default 6; --full 20; quick 3)"
    )
    p.add_argument(
        "--stream-repeat",
        type=int,
        help="stream runs per server, alternating, the median reported (default --repeat; --full 3): "
        "a p99 of a few seconds is one stall of the shared machine",
    )
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=1, help="runs per server and scenario (alternating)")
    p.add_argument("--procs", type=int, default=2, help="load generator processes")
    p.add_argument("--stream-rate", type=float, default=2_000.0)
    p.add_argument(
        "--stream-server",
        choices=("same", "fresh"),
        default="same",
        help="step 2 on step 1's riskd serve once caught up (same), or on a new one (fresh)",
    )
    p.add_argument(
        "--no-ceiling",
        action="store_true",
        help="steps 1 and 2 without the engine-only server (bench.engine_server) beside the echo",
    )
    p.add_argument("--catch-up", choices=sorted(CATCH_UP), default="rows")
    p.add_argument("--catch-up-timeout", type=float, default=900.0)
    p.add_argument(
        "--journal-rounds",
        type=int,
        help="3b: journal on/off stream runs each (default 1; --full 2; 0: skip)",
    )
    p.add_argument("--journal-fsync", default="interval", help="RISKD_JOURNAL_FSYNC for the journal runs")
    p.add_argument("--journal-rate", type=float, help="3b's stream rate (default --stream-rate)")
    p.add_argument("--journal-calls", type=int, help="in-process journal cost calls each way (0: skip)")
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--json", type=Path, help="also write the report here")
    return p


def settle_args(args: argparse.Namespace) -> argparse.Namespace:
    args.duration = args.duration or (60.0 if args.full else 3.0 if args.quick else 10.0)
    args.stream_duration = args.stream_duration or (3.0 if args.quick else 20.0 if args.full else 6.0)
    if args.stream_repeat is None:
        args.stream_repeat = max(args.repeat, 3) if args.full else args.repeat
    args.journal_rate = args.journal_rate or args.stream_rate
    if args.journal_rounds is None:
        args.journal_rounds = 2 if args.full else 1
    if args.journal_calls is None:
        args.journal_calls = 5_000 if args.quick else 20_000
    if args.quick:
        args.warmup = min(args.warmup, 0.5)
    return args


def main(argv: list[str] | None = None) -> int:
    args = settle_args(build_parser().parse_args(argv))
    # SIGTERM (a killed run) unwinds like Ctrl-C: the servers stop and their data dirs (~3 GB of
    # journal a 60 s run) are removed instead of left under /tmp.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    rep = run(args)
    print(f"\n== durable bench ({time.monotonic() - t0:.0f} s)")
    print_report(rep, args.stream_rate)
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(rep), indent=2, default=str)
    (RESULTS / "durable-latest.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
