"""The web tier under load: N concurrent SSE connections on `riskd dashboard` processes, one alert at a time.

    python -m bench.sse_bench                      # 10,000 connections, 2 dashboards, 4 client processes
    python -m bench.sse_bench --connections 2000 --dashboards 1 --rounds 5

The upstream is bench/canned_upstream.py (a real grpc.aio RiskService with canned data, in this
process), so the figure is the dashboard tier's own: one SubscribeAlerts per dashboard process,
fanned out over Server-Sent Events. The browsers are raw asyncio sockets in separate client
processes, many connections each, spread evenly over the dashboards. Each round raises one alert
whose message carries its send time; every connection notes when that alert first reached it.
Reported: the delivery delay over all (connection, round) pairs (p50/p99/max), deliveries that
never came, each dashboard's RSS growth per connection (what Python holds per browser; the
kernel's socket buffers are not in RSS) and its CPU time per alert.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

MARK = re.compile(rb"bench-round-(\d+)-(\d+\.\d+)")
RUN_CLI = "import sys; from riskd_client.cli import main; sys.exit(main())"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# ---------------------------------------------------------------------------------------- client process


async def _client(targets: list[tuple[str, int]], connections: int, offset: int) -> None:
    delays: dict[int, list[float]] = defaultdict(list)
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    failed = 0
    gate = asyncio.Semaphore(100)  # connect at a pace the listen backlog absorbs

    async def connect(i: int) -> None:
        nonlocal failed
        host, port = targets[(offset + i) % len(targets)]
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
                writer.write(
                    f"GET /events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if b" 200 " not in head.split(b"\r\n", 1)[0]:
                    raise ConnectionError(head[:100].decode(errors="replace"))
                streams.append((reader, writer))
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                failed += 1

    async def read(reader: asyncio.StreamReader) -> None:
        seen: set[int] = set()
        tail = b""
        while True:
            chunk = await reader.read(1 << 16)
            if not chunk:
                return
            now = time.time()
            data = tail + chunk
            for m in MARK.finditer(data):
                r = int(m.group(1))
                if r not in seen:
                    seen.add(r)
                    delays[r].append(now - float(m.group(2)))
            tail = data[-48:]

    await asyncio.gather(*(connect(i) for i in range(connections)))
    readers = [asyncio.create_task(read(r)) for r, _ in streams]
    print(json.dumps({"ready": len(streams), "failed": failed}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
    for task in readers:
        task.cancel()
    for _, writer in streams:
        writer.close()
    print(json.dumps({"delays": {str(k): v for k, v in delays.items()}}), flush=True)


def client_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sse_bench client")
    parser.add_argument("--targets", required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args(argv)
    raise_nofile()
    targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in args.targets.split(",")]
    run = asyncio.run
    try:
        import uvloop

        run = uvloop.run  # type: ignore[assignment]
    except ImportError:
        pass
    run(_client(targets, args.connections, args.offset))
    return 0


# ---------------------------------------------------------------------------------------- coordinator


@dataclass
class Dashboard:
    proc: subprocess.Popen[str]
    address: str

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.address}/api/stats", timeout=30) as resp:
            return json.load(resp)

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_dashboard(target: str, max_connections: int) -> Dashboard:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "dashboard", "--target", target, "--listen", "127.0.0.1:0",
         "--max-connections", str(max_connections)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving http://" not in line:
        proc.kill()
        raise RuntimeError(f"dashboard did not start: {line!r}")
    return Dashboard(proc, line.split("http://", 1)[1].split("/", 1)[0])


async def _background(service: Any, rate: float) -> None:
    """Alerts at `rate` per second that the clients do not time: the load a storm puts on the tier."""
    if rate <= 0:
        return
    step = max(0.01, 1.0 / rate)
    per_step = max(1, round(rate * step))
    n = 0
    while True:
        for _ in range(per_step):
            n += 1
            service.raise_alert(sev="WARNING", account=f"ACC-{n % 500}", message=f"background {n}")
        await asyncio.sleep(step)


@dataclass
class Result:
    connections: int
    dashboards: int
    client_processes: int
    rounds: int
    background_rate: float
    alerts_raised: int
    connect_seconds: float
    failed_connections: int
    deliveries: int
    missing: int
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    worst_round_p99_s: float
    rss_per_connection_kb: float
    dashboard_rss_mb: list[float]
    cpu_ms_per_alert: list[float]


async def run(args: argparse.Namespace) -> Result:
    from bench.canned_upstream import CannedRiskService, demo_data

    raise_nofile()
    service = CannedRiskService()
    demo_data(service)
    await service.start()
    per_dashboard = -(-args.connections // args.dashboards)
    dashboards = [start_dashboard(service.target, per_dashboard + 100) for _ in range(args.dashboards)]
    clients: list[asyncio.subprocess.Process] = []
    try:
        deadline = time.monotonic() + 30
        while not all(d.stats()["upstream"]["streams"]["alerts"]["state"] == "live" for d in dashboards):
            assert time.monotonic() < deadline, "dashboards never reached the upstream"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        rss0 = [d.stats()["rss_bytes"] for d in dashboards]
        targets = ",".join(d.address for d in dashboards)
        share = [
            args.connections // args.clients + (i < args.connections % args.clients)
            for i in range(args.clients)
        ]
        t_connect = time.monotonic()
        offset = 0
        for n in share:
            argv = ["-m", "bench.sse_bench", "client", "--targets", targets, "--connections", str(n)]
            argv += ["--offset", str(offset)]
            pipes = {"stdin": asyncio.subprocess.PIPE, "stdout": asyncio.subprocess.PIPE, "limit": 1 << 26}
            clients.append(await asyncio.create_subprocess_exec(sys.executable, *argv, **pipes))  # type: ignore[arg-type]
            offset += n
        progress: Any = print if args.verbose else (lambda *a, **k: None)
        ready = [json.loads(await c.stdout.readline()) for c in clients]  # type: ignore[union-attr]
        connect_seconds = time.monotonic() - t_connect
        failed = sum(r["failed"] for r in ready)
        connected = sum(r["ready"] for r in ready)
        print(
            f"sse_bench: {connected} connections open in {connect_seconds:.1f} s ({failed} failed)",
            flush=True,
        )
        await asyncio.sleep(2.0)  # let the handlers settle before reading RSS
        stats = [d.stats() for d in dashboards]
        held = [s["hub"]["connections"] for s in stats]
        rss1 = [s["rss_bytes"] for s in stats]
        per_conn = [(b - a) / max(1, n) for a, b, n in zip(rss0, rss1, held, strict=True)]

        progress(f"sse_bench: held {held}, rss {rss1}", flush=True)
        cpu0 = [d.cpu_seconds() for d in dashboards]
        background = asyncio.create_task(_background(service, args.background_rate))
        for r in range(args.rounds):
            service.raise_alert(
                sev="CRITICAL", kind="CHECK_REJECT", check="MAX_ORDER_QUANTITY", account="ACC-BENCH",
                observed=2.0, threshold=1.0, message=f"bench-round-{r}-{time.time():.6f}",
            )  # fmt: skip
            progress(f"sse_bench: round {r} raised", flush=True)
            await asyncio.sleep(args.interval)
        await asyncio.sleep(args.settle)
        background.cancel()
        raised = service.seq
        cpu = [(d.cpu_seconds() - c) / args.rounds * 1000 for d, c in zip(dashboards, cpu0, strict=True)]

        by_round: dict[int, list[float]] = defaultdict(list)
        for c in clients:
            c.stdin.write(b"stop\n")  # type: ignore[union-attr]
            await c.stdin.drain()  # type: ignore[union-attr]
        for c in clients:
            doc = json.loads(await c.stdout.readline())  # type: ignore[union-attr]
            for k, v in doc["delays"].items():
                by_round[int(k)].extend(v)
            await c.wait()
        everything = sorted(d for v in by_round.values() for d in v)
        worst = max((percentile(sorted(v), 0.99) for v in by_round.values()), default=float("nan"))
        return Result(
            connections=connected,
            dashboards=args.dashboards,
            client_processes=args.clients,
            rounds=args.rounds,
            background_rate=args.background_rate,
            alerts_raised=raised,
            connect_seconds=round(connect_seconds, 2),
            failed_connections=failed,
            deliveries=len(everything),
            missing=connected * args.rounds - len(everything),
            p50_s=round(percentile(everything, 0.50), 4),
            p90_s=round(percentile(everything, 0.90), 4),
            p99_s=round(percentile(everything, 0.99), 4),
            max_s=round(everything[-1], 4) if everything else float("nan"),
            worst_round_p99_s=round(worst, 4),
            rss_per_connection_kb=round(sum(per_conn) / len(per_conn) / 1024, 1),
            dashboard_rss_mb=[round(b / 2**20, 1) for b in rss1],
            cpu_ms_per_alert=[round(c, 1) for c in cpu],
        )
    finally:
        for c in clients:
            if c.returncode is None:
                c.kill()
                await c.wait()
        for d in dashboards:
            d.proc.terminate()
        for d in dashboards:
            try:
                d.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                d.proc.kill()
        await service.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        return client_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--dashboards", type=int, default=2, help="riskd dashboard processes")
    parser.add_argument("--clients", type=int, default=4, help="client processes holding the connections")
    parser.add_argument("--rounds", type=int, default=10, help="alerts raised, one per --interval")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait after the last alert")
    parser.add_argument(
        "--background-rate", type=float, default=0.0, metavar="PER_S",
        help="other alerts raised per second meanwhile (an alert storm; default none)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write the result to PATH")
    parser.add_argument("--verbose", action="store_true", help="say what each step is doing")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    doc = asdict(result)
    for key, value in doc.items():
        print(f"  {key:24} {value}")
    verdict = "meets" if result.p99_s <= 2.0 and result.missing == 0 else "MISSES"
    print(
        f"sse_bench: p99 {result.p99_s:.3f} s over {result.connections} connections: {verdict} the goal (p99 <= 2 s)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
