"""Checkpoint costs at scale (engine.checkpoint), in-process, no database.

An engine with N open orders (default 1 M) over 10,000 accounts and 5,000 symbols, plus C retained
closed orders (default 1 M: the order table as a long-running server holds it), then:

* capture: the event loop's stall (into buffers Buffers.prepare reserved; later ones reuse them),
  beside an os.fork() of the same process (the copy-on-write alternative's stall);
* write: the worker thread's time (encode, CRC-32C, write, fsync, rename) and the file's size;
* latency: accept+cancel of one order at a time beside each mode's writer (copy mode: a writer
  thread; fork mode: the child, niced), against none: what the copy-on-write faults cost;
* restart: a new process that builds Engine() and runs load_latest (import time excluded, shown).

    python -m bench.checkpoint_bench [--orders N] [--closed C] [--dir PATH] [--skip-latency]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ACCOUNTS = 10_000
SYMBOLS = 5_000
HEADROOM = 100_000  # open-order slots past the filled ones, for the latency probe's orders


def _config(orders: int, closed: int):  # -> EngineConfig
    from riskd_server.engine import EngineConfig

    return EngineConfig(max_open_orders=orders + HEADROOM, closed_order_retention=max(closed, 0))


def build(orders: int, closed: int):  # -> Engine
    from riskd_server.engine import Engine
    from riskd_server.limits import MAX_GROSS_EXPOSURE, MAX_ORDER_QUANTITY, Limit

    cfg = _config(orders, closed)
    engine = Engine(cfg)
    rng = np.random.default_rng(7)
    accounts = np.array([f"ACC{i:05d}" for i in range(ACCOUNTS)], dtype=object)
    symbols = np.array([f"SYM{i:04d}" for i in range(SYMBOLS)], dtype=object)
    engine.update_prices(symbols.tolist(), rng.uniform(10.0, 100.0, SYMBOLS).tolist())
    engine.upsert_limits(
        [
            Limit(limit_id=f"q{i}", kind=MAX_ORDER_QUANTITY, account=accounts[i], threshold=1e9)
            for i in range(100)
        ]
        + [Limit(limit_id="gross", kind=MAX_GROSS_EXPOSURE, threshold=1e15)]
    )
    batch = cfg.max_batch

    def accept(prefix: str, n: int) -> None:
        for lo in range(0, n, batch):
            k = min(batch, n - lo)
            ids = [f"{prefix}{i}" for i in range(lo, lo + k)]
            out = engine.check_orders(
                ids,
                accounts[rng.integers(0, ACCOUNTS, k)].tolist(),
                symbols[rng.integers(0, SYMBOLS, k)].tolist(),
                rng.integers(1, 3, k).tolist(),
                np.ones(k).tolist(),
                np.full(k, 50.0).tolist(),
                now=0.0,
            )
            assert out.accepted.all()

    if closed:
        accept("c", closed)
        for lo in range(0, closed, batch):
            k = min(batch, closed - lo)
            engine.report_executions([f"c{i}" for i in range(lo, lo + k)], [2] * k, [0.0] * k, [0.0] * k)
    accept("o", orders)
    return engine


def restart(directory: Path, orders: int, closed: int) -> None:
    """(In the child) Engine() + load_latest, timed."""
    t0 = time.perf_counter()
    from riskd_server.engine import Engine
    from riskd_server.engine import checkpoint as ck

    t1 = time.perf_counter()
    engine = Engine(_config(orders, closed))
    t2 = time.perf_counter()
    cpu = time.process_time()
    seq = ck.load_latest(directory, engine)
    t3 = time.perf_counter()
    cpu = time.process_time() - cpu
    out = engine.check_orders(["probe"], ["ACC00001"], ["SYM0001"], [1], [1.0], [50.0], now=0.0)
    t4 = time.perf_counter()
    assert seq is not None and engine.open_orders() == orders + int(out.accepted[0])
    print(
        f"RESTART imports={t1 - t0:.3f} engine={t2 - t1:.3f} load={t3 - t2:.3f} (cpu {cpu:.3f}) "
        f"first_check={t4 - t3:.4f}"
    )


def probe(engine, seconds: float, until=None) -> list[float]:  # -> latencies of one accept+cancel
    """Accept one order and cancel it, over and over (random account and symbol: random pages of
    the state), for seconds or until until() is true; each pair's latency."""
    rng = np.random.default_rng(3)
    out = []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end and not (until is not None and until()):
        a, s = f"ACC{int(rng.integers(0, ACCOUNTS)):05d}", f"SYM{int(rng.integers(0, SYMBOLS)):04d}"
        oid = f"p{time.perf_counter_ns()}-{i}"
        t = time.perf_counter()
        engine.check_orders([oid], [a], [s], [1], [1.0], [50.0], now=0.0)
        engine.report_executions([oid], [2], [0.0], [0.0])
        out.append(time.perf_counter() - t)
        i += 1
    return out


def _pcts(lat: list[float]) -> str:
    a = np.asarray(lat) * 1e6
    return (
        f"n={a.shape[0]:,} p50={np.percentile(a, 50):.0f} p99={np.percentile(a, 99):.0f} "
        f"p99.9={np.percentile(a, 99.9):.0f} max={a.max():.0f} µs"
    )


def latency(engine, directory: Path) -> None:
    """The server-side cost of each mode while its writer runs: accept+cancel latency beside it."""
    import threading

    from riskd_server.engine import checkpoint as ck

    print(f"probe, no checkpoint:        {_pcts(probe(engine, 3.0))}")
    captured = ck.capture(engine, 100)  # the module's BUFFERS: fresh, so this one allocates
    done = threading.Event()
    thread = threading.Thread(target=lambda: (ck.write(captured, directory), done.set()))
    thread.start()
    t = time.perf_counter()
    lat = probe(engine, 60.0, done.is_set)
    thread.join()
    print(f"probe, copy mode writer thread ({time.perf_counter() - t:.1f} s): {_pcts(lat)}")
    forked = ck.capture_forked(engine, 101, directory, nice=19)
    exited: list[int] = []

    def child_done() -> bool:
        if not exited and os.waitpid(forked.pid, os.WNOHANG)[0]:
            exited.append(1)
        return bool(exited)

    t = time.perf_counter()
    lat = probe(engine, 60.0, child_done)
    print(
        f"probe, fork mode child ({time.perf_counter() - t:.1f} s, fork {forked.stall * 1e3:.1f} ms): {_pcts(lat)}"
    )
    print(f"probe, after:                {_pcts(probe(engine, 3.0))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--closed", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--skip-latency", action="store_true", help="leave out the latency probe")
    parser.add_argument("--restart", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.restart:
        restart(args.dir, args.orders, args.closed)
        return
    from riskd_server.engine import checkpoint as ck

    directory = args.dir or Path(tempfile.mkdtemp(prefix="riskd-ckpt-"))
    t = time.perf_counter()
    engine = build(args.orders, args.closed)
    print(
        f"built {args.orders:,} open + {args.closed:,} closed orders in {time.perf_counter() - t:.1f} s: {engine.stats()}"
    )
    buffers = ck.Buffers()
    t = time.perf_counter()
    buffers.prepare(engine)  # a worker thread's job in the server, at start-up
    prepare_s = time.perf_counter() - t
    first = ck.capture(engine, 1, buffers)
    t = time.perf_counter()
    path = ck.write(first, directory)
    write_s = time.perf_counter() - t
    stalls = []
    for seq in range(2, 7):
        captured = ck.capture(engine, seq, buffers)
        stalls.append(captured.stall)
        buffers.release(captured.held)
    forks = []
    for _ in range(5):
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        forks.append(time.perf_counter() - t)
        os.waitpid(pid, 0)
    size = path.stat().st_size
    print(f"Buffers.prepare (worker thread at start-up): {prepare_s:.2f} s")
    print(f"capture stall: first {first.stall * 1e3:.1f} ms (prepared buffers), later ones median "
          f"{statistics.median(stalls) * 1e3:.1f} ms (min {min(stalls) * 1e3:.1f}, max {max(stalls) * 1e3:.1f})")  # fmt: skip
    print(
        f"os.fork() of this process: median {statistics.median(forks) * 1e3:.1f} ms (max {max(forks) * 1e3:.1f})"
    )
    print(f"write: {write_s:.2f} s, {size / 2**20:.0f} MiB -> {path}")
    if not args.skip_latency:
        latency(engine, directory)
    del engine, first
    cmd = [sys.executable, "-m", "bench.checkpoint_bench", "--restart", "--dir", str(directory),
           "--orders", str(args.orders), "--closed", str(args.closed)]  # fmt: skip
    for _ in range(3):
        out = subprocess.run(cmd, capture_output=True, text=True)
        print(out.stdout.strip() if out.returncode == 0 else f"restart failed: {out.stderr.strip()}")
    if args.dir is None:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
