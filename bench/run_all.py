"""Run every riskd benchmark in one go and print a table of ratios against targets and the echo baseline.

1. Kernel: Engine.check_orders and the raw check_batch, batches of 1,000 (target >= 20 M orders/s).
2. Server time: one single-order CheckOrders decode -> engine -> encode, no transport (p50 <= 15 µs);
   then VaR, in-process and without a database: the kernel with MAX_VAR on (bench.var_kernel_bench,
   >= 2 M/s, beside the naive per-order recomputation), the risk model build at 1,000 and 5,000
   symbols (bench.model_bench) and SizePositions at 5,000 symbols (bench.sizing_bench, <= 5 ms,
   beside the naive per-symbol recomputation).
3. End to end, the real server vs the echo server (prepared replies, no checks) in the same run,
   each in its own process, load from separate processes on 127.0.0.1, alternating real/echo:
   - CheckOrders batch 1,000: orders/s ratio real/echo (target >= 0.7);
   - CheckOrderStream 1 order per message at each --stream-rates rate: p99 ratio real/echo (<= 1.3);
   - CheckOrders batch 1: RPS ratio real/echo (reported).
4. Restart: `riskd serve` from process start to SERVING on 1 M open + 1 M retained closed orders
   (bench/recovery_bench.py; target <= 10 s; --quick: 100 k + 100 k).
5. Alert subscribers (bench/subscribers_bench.py): `riskd serve` holding N SubscribeAlerts streams
   against a bare grpc.aio stream holder in the same run (alert delay p99 <= 1.5x the holder's and
   <= 1 s, RSS per idle subscriber <= 1.25x), CheckOrders throughput with N subscribers vs none
   (>= 0.9), 100,000-alert bursts (history at its cap, RSS flat), filtered QueryAlerts (<= 1 ms).
   N = 2,000 by default, 10,000 with --full, 500 with --quick; --subscribers N sets it. The server
   runs 2 alert relays (`--relays N`; 0: subscribers on the server itself).
6. Limits at scale (bench/limits_scale_bench.py, its own process, no database): compile 1 M limits
   (<= 2 s), one upsert at 1 M (<= 10 ms), check throughput with 1 M limits vs 100 (>= 0.9);
   --quick: 100 k limits; --skip-limits leaves it out.
7. Durability (bench/durable_bench.py, issue 11): `riskd serve` with its embedded PostgreSQL beside
   the echo: CheckOrders batch 1,000 each followed by a ReportExecutions cancelling it (10 s; 60 s
   with --full; 3 s with --quick): orders/s ratio (>= 0.7), refused calls (0), PostgreSQL's catch-up
   after the load; one-order CheckOrderStream at 2,000/s, p99 ratio (<= 1.3); the journal's server
   time per message, on vs off (once riskd has the `journal` setting). --skip-durable leaves it out.

The real server is engine-only by default (RiskServicer(Engine()), no database: the write-behind is a
side exit) unless --full/--dsn start the complete server. Results are written to bench/results/.

    python -m bench.run_all [--quick] [--json PATH] [--full | --dsn DSN] [--subscribers N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import grpc

from . import (
    kernel_bench,
    memory_bench,
    model_bench,
    prices_bench,
    recovery_bench,
    sizing_bench,
    var_kernel_bench,
)
from .loadgen import LoadConfig, LoadResult, run_load
from .servers import RESULTS, ServerProcess, spawn_server

E2E_BATCH_RATIO_TARGET = 0.7
STREAM_P99_RATIO_TARGET = 1.3


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    mode: str
    batch: int
    concurrency: int
    rate: float = 0.0


@dataclass(slots=True)
class Row:
    metric: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    ok: bool | None
    note: str = ""


@dataclass(slots=True)
class Report:
    started: str
    env: dict
    settings: dict
    kernel: dict | None = None
    recovery: dict | None = None
    subscribers: dict | None = None
    e2e: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _env() -> dict:
    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan,) * 3
    return {
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "loop": loop,
        "platform": platform.platform(),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; nan elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(results: list[LoadResult], attr: str) -> float:
    values = [getattr(r, attr) for r in results if not math.isnan(getattr(r, attr))]
    return statistics.median(values) if values else math.nan


def _fmt_rate(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M/s"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k/s"
    return f"{x:.0f}/s"


def _ratio(a: float, b: float) -> float | None:
    return a / b if b and not (math.isnan(a) or math.isnan(b)) else None


def kernel_rows(rep: kernel_bench.KernelReport) -> list[Row]:
    target = kernel_bench.KERNEL_TARGET_PER_S
    st_target = kernel_bench.SERVER_TIME_TARGET_US
    rows = []
    for t in (rep.engine, rep.kernel):
        r = t.per_s / target
        rows.append(
            Row(
                f"{t.name}, batch {t.batch} (median)",
                f"{t.per_s / 1e6:.2f} M orders/s",
                f"target {target / 1e6:.0f} M/s",
                r,
                ">= 1.0",
                r >= 1.0,
                f"best round {t.best_per_s / 1e6:.2f} M/s",
            )
        )
    c = rep.cancels
    rows.append(
        Row(
            f"{c.name}, cancels, batch {c.batch}, retention ring full (median)",
            f"{c.per_s / 1e6:.2f} M cancels/s",
            f"{1e9 / c.per_s:.0f} ns a cancel",
            None,
            "(info)",
            None,
            f"best round {c.best_per_s / 1e6:.2f} M/s",
        )
    )
    s = rep.server_time
    rows.append(
        Row(
            "server time p50, 1 order (decode+check+encode)",
            f"{s.p50_us:.1f} µs",
            f"target {st_target:.0f} µs",
            s.p50_us / st_target,
            "<= 1.0",
            s.p50_us <= st_target,
        )
    )
    rows.append(
        Row(
            "server time p99, 1 order",
            f"{s.p99_us:.1f} µs",
            f"{st_target:.0f} µs",
            s.p99_us / st_target,
            "(info)",
            None,
        )
    )
    return rows


def var_rows(rep: var_kernel_bench.VarBenchReport) -> list[Row]:
    target = var_kernel_bench.TARGET_PER_S
    on, plain, naive = rep.var_on, rep.plain, rep.naive_factor
    return [
        Row(
            f"check_batch with MAX_VAR, {rep.symbols:,} symbols, factor k={rep.k}, batch 1,000",
            f"{on.per_s / 1e6:.2f} M orders/s",
            f"target {target / 1e6:.0f} M/s",
            on.per_s / target,
            ">= 1.0",
            on.per_s >= target,
            f"no model {plain.per_s / 1e6:.2f} M/s; naive numpy {naive.per_s:,.0f}/s "
            f"({on.per_s / naive.per_s:,.0f}x), dense {rep.naive_dense.per_s:,.0f}/s",
        )
    ]


def prices_rows(rep: prices_bench.PricesReport) -> list[Row]:
    one_t, batch_t = prices_bench.ONE_SYMBOL_TARGET_US, prices_bench.BATCH_TARGET_PER_S
    return [
        Row(
            f"UpdatePrices server time p50, 1 symbol, {rep.books:,} books",
            f"{rep.one_p50_us:.1f} µs",
            f"target {one_t:.0f} µs",
            rep.one_p50_us / one_t,
            "<= 1.0",
            rep.one_p50_us <= one_t,
            f"p99 {rep.one_p99_us:.1f} µs",
        ),
        Row(
            f"UpdatePrices, 1,000 symbols a call, {rep.books:,} books",
            f"{rep.batch_per_s / 1e6:.2f} M symbols/s",
            f"target {batch_t / 1e6:.0f} M/s",
            rep.batch_per_s / batch_t,
            ">= 1.0",
            rep.batch_per_s >= batch_t,
            f"all-books recompute (before) {rep.recompute_ms:.1f} ms a call",
        ),
    ]


def e2e_rows(
    scenarios: list[Scenario], runs: dict[str, dict[str, list[LoadResult]]], real_name: str
) -> list[Row]:
    rows: list[Row] = []
    for sc in scenarios:
        real, echo = runs[sc.key].get("real", []), runs[sc.key].get("echo", [])
        if not real or not echo:
            continue
        errors = sum(r.errors for r in real + echo)
        note = f"errors {errors}; " if errors else ""
        note += f"server CPU/req {_median(real, 'server_cpu_us'):,.0f} vs {_median(echo, 'server_cpu_us'):,.0f} µs;"
        if sc.mode == "unary":
            attr = "orders_per_s" if sc.batch > 1 else "rps"
            a, b = _median(real, attr), _median(echo, attr)
            r = _ratio(a, b)
            is_batch = sc.batch > 1
            rows.append(
                Row(
                    f"{sc.title}: {real_name} vs echo",
                    _fmt_rate(a) + (" orders" if is_batch else " RPC"),
                    "echo " + _fmt_rate(b),
                    r,
                    f">= {E2E_BATCH_RATIO_TARGET}" if is_batch else "(info)",
                    (r >= E2E_BATCH_RATIO_TARGET) if (is_batch and r is not None) else None,
                    (
                        note + f" p99 {_median(real, 'p99_us'):,.0f} vs {_median(echo, 'p99_us'):,.0f} µs"
                    ).strip(),
                )
            )
        else:
            a, b = _median(real, "p99_us"), _median(echo, "p99_us")
            r = _ratio(a, b)
            got_real, got_echo = _median(real, "orders_per_s"), _median(echo, "orders_per_s")
            short = [n for n, got in (("real", got_real), ("echo", got_echo)) if got < 0.9 * sc.rate]
            extra = f"achieved {_fmt_rate(got_real)} vs {_fmt_rate(got_echo)}"
            if short:
                extra += f"; {'+'.join(short)} BELOW the offered rate: saturated, p99 is queueing"
            rows.append(
                Row(
                    f"{sc.title} p99: {real_name} vs echo",
                    f"{a:,.0f} µs (p50 {_median(real, 'p50_us'):,.0f})",
                    f"echo {b:,.0f} µs (p50 {_median(echo, 'p50_us'):,.0f})",
                    r,
                    f"<= {STREAM_P99_RATIO_TARGET}",
                    (r <= STREAM_P99_RATIO_TARGET) if (r is not None and not short) else None,
                    (note + " " + extra).strip(),
                )
            )
    return rows


def print_table(rows: list[Row]) -> None:
    headers = ("metric", "measured", "baseline / target", "ratio", "target", "ok", "note")
    cells = [
        (
            r.metric,
            r.measured,
            r.baseline,
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            "-" if r.ok is None else ("PASS" if r.ok else "MISS"),
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def run_e2e(
    args: argparse.Namespace, scenarios: list[Scenario], servers: dict[str, ServerProcess]
) -> dict[str, dict[str, list[LoadResult]]]:
    runs: dict[str, dict[str, list[LoadResult]]] = {sc.key: {"real": [], "echo": []} for sc in scenarios}
    for rep in range(args.repeat):
        for sc in scenarios:
            order = ("echo", "real") if rep % 2 == 0 else ("real", "echo")
            for name in order:
                server = servers[name]
                if not server.alive():
                    raise RuntimeError(f"{name} server died; see {server.log_path}")
                cfg = LoadConfig(
                    target=server.target,
                    mode=sc.mode,
                    batch=sc.batch,
                    duration=args.duration,
                    warmup=args.warmup,
                    procs=args.procs,
                    concurrency=sc.concurrency,
                    rate=sc.rate,
                    uvloop=not args.no_uvloop,
                )
                cpu = _cpu_seconds(server.proc.pid)
                result = run_load(cfg)
                # The server's CPU per request over warm-up and measurement: steadier than
                # throughput when the load generators and other work share the cores.
                requests = result.rps * (args.warmup + args.duration)
                if requests:
                    result.server_cpu_us = (_cpu_seconds(server.proc.pid) - cpu) / requests * 1e6
                runs[sc.key][name].append(result)
                cpu_note = f", server CPU {result.server_cpu_us:,.0f} µs/req"
                print(f"  [{rep + 1}/{args.repeat}] {name:<4} {result.summary()}{cpu_note}", flush=True)
                if result.first_error:
                    print(f"         first error: {result.first_error}", flush=True)
                if result.accepted_fraction < 0.95:
                    print(
                        f"         most rejected (check:limit_id, sampled): {result.top_rejections}",
                        flush=True,
                    )
    return runs


def limits_rows(report: Report, n: int) -> list[Row]:
    """bench.limits_scale_bench in its own process (a million Limit objects and gc.freeze stay
    out of this one): compile, one upsert, check throughput at 100 vs n limits."""
    print(f"\n== limits at scale (bench.limits_scale_bench, {n:,} limits, no database)", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "bench.limits_scale_bench", "--limits", str(n), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    res = json.loads(done.stdout)
    report.notes.append(f"limits at scale: {json.dumps(res)}")
    full = n >= 1_000_000
    up = res["one_upsert"]
    ratio = res["ratio_paired_cpu_1M_to_100"]
    print(
        f"    compile {res['compile_s']['best']:.2f} s (median {res['compile_s']['median']:.2f}); one upsert "
        f"p50 {up['p50_ms']:.2f} ms, p99 {up['p99_ms']:.2f} ms, max {up['max_ms']:.2f} ms; checks "
        f"{res['checks_per_s']['1M']['median'] / 1e6:.2f} vs {res['checks_per_s']['100']['median'] / 1e6:.2f} M/s "
        f"(paired ratio {ratio:.3f})",
        flush=True,
    )
    return [
        Row(
            metric=f"compile {n:,} limits (worker thread)",
            measured=f"{res['compile_s']['median']:.2f} s",
            baseline="",
            ratio=None,
            target="<= 2 s at 1 M",
            ok=res["compile_s"]["median"] <= 2.0 if full else None,
        ),
        Row(
            metric=f"one upsert at {n:,} limits, max of {up['count']}",
            measured=f"{up['max_ms']:.2f} ms",
            baseline="",
            ratio=None,
            target="<= 10 ms",
            ok=up["max_ms"] <= 10.0 if full else None,
        ),
        Row(
            metric=f"check_orders with {n:,} limits / with 100",
            measured=f"{res['checks_per_s']['1M']['median'] / 1e6:.2f} M/s",
            baseline=f"{res['checks_per_s']['100']['median'] / 1e6:.2f} M/s",
            ratio=ratio,
            target=">= 0.9",
            ok=ratio >= 0.9 if full else None,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test (~30-40 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    parser.add_argument(
        "--full", action="store_true", help="real = the complete server (store, write-behind)"
    )
    parser.add_argument("--dsn", default="", help="PostgreSQL DSN for --full (implies --full)")
    parser.add_argument("--procs", type=int, default=2, help="load generator processes (2 cores: 1-2)")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 6, quick 2)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per run (default 1, quick 0.5)")
    parser.add_argument("--repeat", type=int, help="runs per server and scenario (default 2, quick 1)")
    parser.add_argument(
        "--stream-rates",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[10_000.0, 2_000.0],
        help="CheckOrderStream offered orders/s, comma separated (default 10000,2000: the target rate, "
        "and one a loaded 2-core machine sustains)",
    )
    parser.add_argument("--skip-kernel", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--skip-limits", action="store_true")
    parser.add_argument("--skip-subscribers", action="store_true")
    parser.add_argument("--skip-limits-io", action="store_true")
    parser.add_argument("--skip-durable", action="store_true")
    parser.add_argument(
        "--relays",
        type=int,
        default=2,
        help="alert relays the subscriber step's server runs (`riskd serve --alert-relays`; 0: none)",
    )
    parser.add_argument(
        "--subscribers", type=int, help="alert subscribers held (default 2,000; --full 10,000; --quick 500)"
    )
    parser.add_argument(
        "--no-uvloop", action="store_true", help="default asyncio loop in servers and clients"
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 6.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    args.repeat = args.repeat or (1 if args.quick else 2)
    full = args.full or bool(args.dsn)
    real_name = "full riskd" if full else "riskd (engine-only)"

    started = time.strftime("%Y%m%d-%H%M%S")
    report = Report(started, _env(), {k: v for k, v in vars(args).items() if k != "dsn"})
    report.notes.append(
        "real server: complete riskd (riskd_server.server.start: store + write-behind)"
        if full
        else "real server: grpc.aio + RiskServicer(Engine()) with the workload's limits/marks/positions, "
        "NO database (the write-behind is a side exit of the engine; --full measures it)"
    )
    report.notes.append(
        "echo: same grpc.aio options and loop, decodes each request to size its prepared all-accepted reply"
    )
    print(f"riskd bench {started}: {report.env}", flush=True)
    rows: list[Row] = []
    t_start = time.monotonic()

    if not args.skip_kernel:
        print("\n== kernel and server time (in-process)", flush=True)
        krep = kernel_bench.run(quick=args.quick, breakdown=True, calls=5_000 if args.quick else 20_000)
        kernel_bench.print_report(krep)
        report.kernel = asdict(krep)
        rows += kernel_rows(krep)
        print("\n== UpdatePrices server time (bench.prices_bench, in-process, no database)", flush=True)
        prep = prices_bench.run(quick=args.quick)
        prices_bench.print_report(prep)
        report.notes.append(f"prices: {asdict(prep)}")
        rows += prices_rows(prep)
        print("\n== memory floor: one random cache line by table size (bench.memory_bench)", flush=True)
        floor = memory_bench.run()
        for mb, ns in floor.items():
            print(f"    {mb:>4} MB table: {ns:5.1f} ns per random line", flush=True)
        report.notes.append(f"memory floor, ns per random line by table MB: {floor}")
        print("\n== MAX_VAR in the kernel (bench.var_kernel_bench, in-process, no database)", flush=True)
        vrep = var_kernel_bench.run(quick=args.quick)
        var_kernel_bench.print_report(vrep)
        report.notes.append(f"var kernel: {asdict(vrep)}")
        rows += var_rows(vrep)
        print("\n== risk model build (bench.model_bench: the pure build, no database read)", flush=True)
        model_bench.main(["--symbols", "1000", "--repeat", "1"] if args.quick else [])
        print("\n== SizePositions (bench.sizing_bench: an in-process server, no database)", flush=True)
        sizing_bench.main(["--symbols", "1000", "--reps", "5", "--naive-symbols", "20"] if args.quick else [])

    if not args.skip_recovery:
        orders = 100_000 if args.quick else 1_000_000
        print(
            f"\n== restart: riskd serve to SERVING (bench.recovery_bench, {orders:,} + {orders:,})",
            flush=True,
        )
        rrep = recovery_bench.run(orders, runs=1 if args.quick else 2)
        recovery_bench.print_report(rrep)
        report.recovery = asdict(rrep)
        rows.append(
            Row(
                metric=f"restart to SERVING, {orders:,} open + {orders:,} closed orders",
                measured=f"{rrep.serving_median:.2f} s",
                baseline="",
                ratio=None,
                target=f"<= {recovery_bench.TARGET_S:g} s at 1 M + 1 M",
                ok=rrep.serving_median <= recovery_bench.TARGET_S if not args.quick else None,
            )
        )

    if not args.skip_limits:
        rows += limits_rows(report, 100_000 if args.quick else 1_000_000)

    scenarios = [Scenario("batch1000", "CheckOrders batch 1000 orders/s", "unary", 1_000, concurrency=2)]
    for rate in args.stream_rates:
        scenarios.append(
            Scenario(f"stream{rate:g}", f"CheckOrderStream 1 order/msg @ {rate:,.0f}/s", "stream", 1, 4, rate)
        )
    scenarios.append(Scenario("batch1", "CheckOrders batch 1 RPS", "unary", 1, concurrency=8))
    if not args.skip_e2e:
        print(
            f"\n== end to end ({args.procs} load processes, {args.duration:g} s each, x{args.repeat})",
            flush=True,
        )
        servers: dict[str, ServerProcess] = {}
        try:
            servers["echo"] = spawn_server(
                "echo", "bench.echo_server", ["--no-uvloop"] if args.no_uvloop else []
            )
            real_args = (["--full"] if full else []) + (["--dsn", args.dsn] if args.dsn else [])
            real_args += ["--no-uvloop"] if args.no_uvloop else []
            try:
                servers["real"] = spawn_server("real", "bench.engine_server", real_args)
            except RuntimeError as exc:
                print(f"real server unavailable: {exc}", file=sys.stderr)
                report.notes.append(f"real server failed to start: {str(exc).splitlines()[0]}")
            print(f"  echo at {servers['echo'].target}; ", end="")
            if "real" in servers:
                print(f"real at {servers['real'].target} ({servers['real'].banner})", flush=True)
            if "real" in servers:
                runs = run_e2e(args, scenarios, servers)
                report.e2e = {k: {n: [asdict(r) for r in v] for n, v in d.items()} for k, d in runs.items()}
                rows += e2e_rows(scenarios, runs, real_name)
        finally:
            for s in servers.values():
                s.stop()

    if not args.skip_durable:
        from . import durable_bench  # imports this module's table helpers

        dur_argv = (["--quick"] if args.quick else []) + (["--full"] if full else [])
        dur_argv += ["--no-uvloop"] if args.no_uvloop else []
        dur_args = durable_bench.settle_args(durable_bench.build_parser().parse_args(dur_argv))
        print(
            f"\n== durability: riskd serve + PostgreSQL vs echo (bench.durable_bench {' '.join(dur_argv)})",
            flush=True,
        )
        drep = durable_bench.run(dur_args)
        report.notes += [f"durable: {n}" for n in drep.notes]
        report.notes.append(
            f"durable: {json.dumps(asdict(durable_bench.figures(drep, dur_args.stream_rate)))}"
        )
        rows += durable_bench.rows_of(drep, dur_args.stream_rate)

    if not args.skip_limits_io:
        from . import limits_io_bench

        n = 100_000 if args.quick else 1_000_000
        print(f"\n== limits export/import through the CLI (bench.limits_io_bench --limits {n})", flush=True)
        lrep = limits_io_bench.run(n)
        limits_io_bench.print_report(lrep)
        report.notes.append(f"limits io: {asdict(lrep)}")
        rows += limits_io_bench.rows_of(lrep)

    if not args.skip_subscribers:
        from . import subscribers_bench  # imports this module's table helpers

        sub_argv = ["--quick"] if args.quick else []
        sub_argv += ["--full"] if args.full else []
        sub_argv += ["--subscribers", str(args.subscribers)] if args.subscribers else []
        sub_argv += ["--no-uvloop"] if args.no_uvloop else []
        sub_argv += ["--relays", str(args.relays)]
        sub_args = subscribers_bench.settle_args(subscribers_bench.build_parser().parse_args(sub_argv))
        print(f"\n== alert subscribers (bench.subscribers_bench {' '.join(sub_argv)})", flush=True)
        srep = subscribers_bench.run(sub_args)
        report.subscribers = asdict(srep)
        report.notes += [f"subscribers: {n}" for n in srep.notes]
        rows += subscribers_bench.rows_of(srep)

    elapsed = time.monotonic() - t_start
    print(f"\n== summary ({elapsed:.0f} s; medians over {args.repeat} run(s); same-run echo baseline)")
    for note in report.notes:
        print(f"  * {note}")
    print()
    print_table(rows)
    report.rows = [asdict(r) for r in rows]
    report.settings["elapsed_s"] = round(elapsed, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"run-{started}.json"
    text = json.dumps(asdict(report), indent=2, default=str)
    out.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)
    print(f"\nresults: {out}" + (f" and {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
