"""Restart time: a real `riskd serve` from process start to SERVING, with N open and N retained
closed orders (and positions, marks, limits) in PostgreSQL.

The database (an embedded cluster in a temporary folder, or --dsn) is filled server-side with
generate_series, then `riskd serve --dsn ...` is started and timed until it prints its "serving"
line (printed once health reports SERVING). The breakdown comes from the server's own log lines:
start-up before the database (imports, engine arrays), snapshot read (queries, binary COPY
transfer), parse (COPY -> columns, closed-order selection), restore (Engine.restore) and warm-up.

    python -m bench.recovery_bench [--orders N] [--runs R] [--quick] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from .servers import RESULTS, ROOT

TARGET_S = 10.0  # issue 7: SERVING within 10 s with 1 M open and 1 M retained closed orders
ACCOUNTS = 1_000
SYMBOLS = 10_000
SYMBOLS_PER_ACCOUNT = 200  # positions: ACCOUNTS x this many (as bench/workload.py)


@dataclass(slots=True)
class Start:
    """One timed start of `riskd serve`; seconds."""

    serving: float  # process start -> "serving" line
    before_db: float = float("nan")  # process start -> first "connecting to PostgreSQL" log line
    read: float = float("nan")
    parse: float = float("nan")
    restore: float = float("nan")
    warm_up: float = float("nan")
    stats: str = ""


@dataclass(slots=True)
class RecoveryReport:
    orders: int  # open orders, and as many retained closed ones
    positions: int
    fill_s: float
    starts: list[Start] = field(default_factory=list)

    @property
    def serving_median(self) -> float:
        return statistics.median(s.serving for s in self.starts)


def fill(dsn: str, orders: int) -> int:
    """Schema via the server's migrations, then N open + N closed orders, positions, marks, limits."""
    import asyncio

    from riskd_server.store import Store

    async def migrate() -> None:
        store = await Store.open(dsn)
        await store.close()

    asyncio.run(migrate())
    positions = min(ACCOUNTS * SYMBOLS_PER_ACCOUNT, max(orders // 5, 1))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE orders, positions, marks, limits, trading_states")
        conn.execute("ALTER SEQUENCE orders_closed_seq RESTART")
        order_sql = """
            INSERT INTO orders SELECT
                {prefix} || lpad(g::text, 9, '0'), 'ACC' || lpad((g % {accounts})::text, 4, '0'),
                'SYM' || lpad(((g * 7) % {symbols})::text, 5, '0'), 1 + g % 2, 100, {open_qty},
                10 + (g % 1000) / 8.0, {status}, now(), now(), {seq}
            FROM generate_series(1, {n}) AS g"""
        common = {"accounts": ACCOUNTS, "symbols": SYMBOLS, "n": orders}
        conn.execute(
            order_sql.format(
                prefix="'cl-'", open_qty=0, status=2, seq="nextval('orders_closed_seq')", **common
            )
        )
        conn.execute(order_sql.format(prefix="'op-'", open_qty="1 + g % 90", status=1, seq="NULL", **common))
        conn.execute(
            """INSERT INTO positions SELECT 'ACC' || lpad((g %% %s)::text, 4, '0'),
                   'SYM' || lpad(((g / %s) * 37 %% %s)::text, 5, '0'), (g %% 500) - 250
               FROM generate_series(0, %s - 1) AS g ON CONFLICT DO NOTHING""",
            (ACCOUNTS, ACCOUNTS, SYMBOLS, positions),
        )
        conn.execute(
            "INSERT INTO marks (symbol, price) SELECT 'SYM' || lpad(g::text, 5, '0'), 10 + g %% 100"
            " FROM generate_series(0, %s - 1) AS g",
            (SYMBOLS,),
        )
        conn.execute(
            "INSERT INTO limits (limit_id, kind, threshold) VALUES ('qty', 1, 1e6), ('notional', 2, 1e9)"
        )
        conn.execute("VACUUM ANALYZE orders")
        return conn.execute("SELECT count(*) FROM positions").fetchone()[0]


_PATTERNS = {
    "read": re.compile(r"snapshot read in ([\d.]+)s, parsed in ([\d.]+)s"),
    "restore": re.compile(r"recovered state in ([\d.]+)s: (.*)"),
    "warm_up": re.compile(r"kernels warm in ([\d.]+)s"),
    "before_db": re.compile(r"^(\S+ \S+) INFO riskd.server: connecting to PostgreSQL"),
}


def serve_once(dsn: str, orders: int, log_path: Path, timeout: float = 300.0) -> Start:
    """Start `riskd serve` on the filled database, time it to SERVING, stop it with SIGTERM."""
    riskd = Path(sys.executable).with_name("riskd")
    cmd = [str(riskd) if riskd.exists() else shutil.which("riskd") or "riskd", "serve", "--dsn", dsn]
    cmd += ["--listen", "127.0.0.1:0", "--max-open-orders", str(orders)]
    cmd += ["--closed-order-retention", str(orders)]
    # A fresh data folder each start: no checkpoint or journal, so this measures the database path
    # (a new machine); the journal's own restart is bench.checkpoint_bench.
    cmd += ["--data-dir", tempfile.mkdtemp(prefix="riskd-recovery-bench-")]
    with log_path.open("w") as log:
        wall0 = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        serving = time.perf_counter() - t0
        try:
            if not line or "serving" not in line[0]:
                raise RuntimeError(f"riskd serve did not reach SERVING; see {log_path}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    start = Start(serving=serving)
    for text in log_path.read_text().splitlines():
        if m := _PATTERNS["read"].search(text):
            start.read, start.parse = float(m[1]), float(m[2])
        elif m := _PATTERNS["restore"].search(text):
            start.restore, start.stats = float(m[1]), m[2]
        elif m := _PATTERNS["warm_up"].search(text):
            start.warm_up = float(m[1])
        elif m := _PATTERNS["before_db"].search(text):
            stamp = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            start.before_db = stamp - wall0
    return start


def run(orders: int = 1_000_000, runs: int = 2, dsn: str = "") -> RecoveryReport:
    RESULTS.mkdir(parents=True, exist_ok=True)
    pg = folder = None
    if not dsn:
        import tempfile

        from riskd_server.embedded_pg import start_embedded

        folder = Path(tempfile.mkdtemp(prefix="riskd-recovery-bench-"))
        pg = start_embedded(folder)
        dsn = pg.dsn
    try:
        t0 = time.perf_counter()
        positions = fill(dsn, orders)
        report = RecoveryReport(orders, positions, time.perf_counter() - t0)
        for i in range(runs):
            report.starts.append(serve_once(dsn, orders, RESULTS / f"recovery-{i}.log"))
        return report
    finally:
        if pg is not None:
            pg.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def print_report(rep: RecoveryReport) -> None:
    print(
        f"  {rep.orders:,} open + {rep.orders:,} retained closed orders, {rep.positions:,} positions "
        f"(filled in {rep.fill_s:.1f} s)",
        flush=True,
    )
    for s in rep.starts:
        print(
            f"    process start -> SERVING {s.serving:6.2f} s  (before the database {s.before_db:.2f}, "
            f"read {s.read:.2f}, parse {s.parse:.2f}, restore {s.restore:.2f}, warm-up {s.warm_up:.2f})",
            flush=True,
        )
    print(f"    recovered: {rep.starts[-1].stats}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--orders", type=int, help="open orders, and as many closed (default 1 M, quick 100 k)"
    )
    parser.add_argument("--runs", type=int, help="timed starts (default 2, quick 1)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dsn", default="", help="fill and use this database (its orders are replaced)")
    args = parser.parse_args(argv)
    orders = args.orders or (100_000 if args.quick else 1_000_000)
    rep = run(orders, args.runs or (1 if args.quick else 2), args.dsn)
    print_report(rep)
    verdict = "met" if rep.serving_median <= TARGET_S else "MISSED"
    print(
        f"  median {rep.serving_median:.2f} s to SERVING (target <= {TARGET_S:g} s at 1 M + 1 M: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
