"""Write-behind throughput against a real (embedded) PostgreSQL, without the gRPC server.

Replays what the load generator makes the engine emit: ``--workers`` clients each sending
CheckOrders batches of ``--batch`` orders (~2 % rejected, ~1 % warned: ``OrdersAccepted`` plus
``CheckEvents``) and, after every ``--cancel-every`` orders, one ReportExecutions canceling all of
them (``ExecutionsReported`` for every id, ``OrdersUpdated`` closing every accepted one). The
changes are generated up front; the timed part only ``put``s them into a ``WriteBehind`` as fast
as ``has_room`` allows (the engine's backpressure), for ``--seconds``, and counts what committed.

A ticker on the same event loop measures how long the loop is blocked (sleep overshoot), which is
what a flush costs every RPC sharing the loop.

    .venv/bin/python -m bench.store_bench [--seconds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from riskd_server import changes as ch
from riskd_server.store import Store

from .workload import EXEC_CANCELED, IdSource, Workload

log = logging.getLogger("riskd.bench.store")

KINDS = ("accepted", "updates", "check_events", "executions")
UNKNOWN = "unknown client_order_id (never accepted, or forgotten after the retention window)"


@dataclass(slots=True)
class Result:
    seconds: float
    orders_per_s: float  # orders checked (accepted or not) whose changes are committed
    accepted_per_s: float
    rows_per_s: float  # all rows committed (backlog units)
    rows: dict[str, int]
    rows_per_s_by_kind: dict[str, float]
    flushes: int
    mean_flush_s: float
    last_flush_s: float
    backpressure_s: float  # time the producer waited for has_room
    loop_lag_max_ms: float
    loop_lag_p99_ms: float
    loop_lag_p50_ms: float
    pending_rows_at_end: int
    drain_s: float


def _objs(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def generate(
    orders: int, batch: int, workers: int, cancel_every: int, reject: float, warn: float, seed: int = 7
) -> list[tuple[ch.Change, int, dict[str, int]]]:
    """(change, orders it stands for, rows per kind), in the order the server would emit them."""
    wl = Workload(n_symbols=2_000, n_accounts=500)
    rng = np.random.default_rng(seed)
    sources = [IdSource() for _ in range(workers)]
    pending: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(workers)]
    sent = [0] * workers
    out: list[tuple[ch.Change, int, dict[str, int]]] = []
    ts = time.time()
    total = 0
    while total < orders:
        for w in range(workers):
            ids = _objs(sources[w].strings(batch))
            a, s, side, qty, price = wl.orders(batch, rng)
            ok = rng.random(batch) >= reject
            warned = ok & (rng.random(batch) < warn)
            idx = np.flatnonzero(ok)
            acc = ch.OrdersAccepted(
                ts=ts,
                client_order_id=ids[idx],
                account=wl._accounts_arr[a[idx]],
                symbol=wl._symbols_arr[s[idx]],
                side=side[idx].astype(np.int8),
                quantity=qty[idx],
                price=np.where(price[idx] > 0, price[idx], wl.marks[s[idx]]),
            )
            out.append((acc, batch, {"accepted": len(idx)}))
            ev = np.flatnonzero(~ok | warned)
            events = ch.CheckEvents(
                ts=ts,
                client_order_id=ids[ev],
                account=wl._accounts_arr[a[ev]],
                symbol=wl._symbols_arr[s[ev]],
                check=np.full(len(ev), 2, dtype=np.int16),
                limit_id=_objs(["any-notional"] * len(ev)),
                observed=qty[ev] * 100.0,
                threshold=np.full(len(ev), 1e6),
                warning=warned[ev],
            )
            out.append((events, 0, {"check_events": len(ev)}))
            pending[w].append((ids, ok))
            sent[w] += batch
            total += batch
            if cancel_every and sent[w] >= cancel_every:
                out.extend(_cancel(pending[w], ts))
                pending[w], sent[w] = [], 0
    return out


def _cancel(batches: list[tuple[np.ndarray, np.ndarray]], ts: float) -> list[tuple[ch.Change, int, dict]]:
    ids = np.concatenate([b[0] for b in batches])
    ok = np.concatenate([b[1] for b in batches])
    n = len(ids)
    execs = ch.ExecutionsReported(
        ts=ts,
        client_order_id=ids,
        exec_type=np.full(n, EXEC_CANCELED, dtype=np.int8),
        quantity=np.zeros(n),
        price=np.zeros(n),
        applied=ok,
        error=np.where(ok, "", UNKNOWN).astype(object),
    )
    closed = ids[ok]
    upd = ch.OrdersUpdated(
        ts=ts,
        client_order_id=closed,
        open_quantity=np.zeros(len(closed)),
        status=np.full(len(closed), ch.ORDER_CLOSED, dtype=np.int8),
    )
    return [(execs, 0, {"executions": n}), (upd, 0, {"updates": len(closed)})]


async def _ticker(lags: list[float], stop: asyncio.Event, period: float = 0.001) -> None:
    """Sleep overshoot samples: the event loop's responsiveness while flushes run."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - t0 - period)


async def run(args: argparse.Namespace, dsn: str, changes: list) -> Result:
    store = await Store.open(dsn, min_size=1, max_size=4, timeout=30.0)
    try:
        writer = store.write_behind(
            max_pending_rows=args.max_pending,
            flush_interval=args.flush_interval,
            write_timeout=60.0,
            max_flush_rows=args.max_flush_rows,
        )
        await writer.start()
        lags: list[float] = []
        stop_tick = asyncio.Event()
        ticker = asyncio.create_task(_ticker(lags, stop_tick))
        waited = 0.0
        started = time.perf_counter()
        deadline = started + args.seconds
        n_put = 0
        for change, _, _ in changes:
            rows = sum(_rows(change))
            if not writer.has_room(rows):
                t0 = time.perf_counter()
                while not writer.has_room(rows) and time.perf_counter() < deadline:
                    await asyncio.sleep(0.001)
                waited += time.perf_counter() - t0
            if time.perf_counter() >= deadline:
                break
            writer.put(change)
            n_put += 1
            await asyncio.sleep(0)
        if n_put == len(changes):  # everything queued early: time the drain as part of the run
            async with asyncio.timeout(max(1.0, deadline - time.perf_counter()) + 30.0):
                await writer.barrier(120.0)
        else:
            await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        elapsed = time.perf_counter() - started
        st = writer.stats()
        stop_tick.set()
        await ticker
        t0 = time.perf_counter()
        await writer.stop(timeout=30.0)
        drain = time.perf_counter() - t0
    finally:
        await store.close()
    done = changes[: st.flushed_changes]
    rows = {k: sum(r.get(k, 0) for _, _, r in done) for k in KINDS}
    orders = sum(o for _, o, _ in done)
    lag = np.asarray(lags or [0.0]) * 1e3
    return Result(
        seconds=round(elapsed, 3),
        orders_per_s=round(orders / elapsed),
        accepted_per_s=round(rows["accepted"] / elapsed),
        rows_per_s=round(sum(rows.values()) / elapsed),
        rows=rows,
        rows_per_s_by_kind={k: round(v / elapsed) for k, v in rows.items()},
        flushes=st.flushes,
        mean_flush_s=round(elapsed / max(1, st.flushes), 4),
        last_flush_s=round(st.last_flush_seconds, 4),
        backpressure_s=round(waited, 3),
        loop_lag_max_ms=round(float(lag.max()), 2),
        loop_lag_p99_ms=round(float(np.percentile(lag, 99)), 2),
        loop_lag_p50_ms=round(float(np.percentile(lag, 50)), 2),
        pending_rows_at_end=st.pending_rows,
        drain_s=round(drain, 3),
    )


def _rows(change: ch.Change) -> list[int]:
    from riskd_server.store._coalesce import change_rows

    return [change_rows(change)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="timed put/flush period (<= 40)")
    p.add_argument("--orders", type=int, default=4_000_000, help="orders generated up front (upper bound)")
    p.add_argument("--batch", type=int, default=1_000)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--cancel-every", type=int, default=10_000)
    p.add_argument("--reject", type=float, default=0.02)
    p.add_argument("--warn", type=float, default=0.01)
    p.add_argument("--max-pending", type=int, default=1_000_000)
    p.add_argument("--max-flush-rows", type=int, default=50_000)
    p.add_argument("--flush-interval", type=float, default=0.05)
    p.add_argument("--dsn", default="", help="an existing database (default: a fresh embedded cluster)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)
    args.seconds = min(args.seconds, 40.0)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    t0 = time.perf_counter()
    changes = generate(args.orders, args.batch, args.workers, args.cancel_every, args.reject, args.warn)
    print(f"generated {len(changes)} changes in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    folder = None
    pg = None
    dsn = args.dsn
    if not dsn:
        from riskd_server.embedded_pg import start_embedded

        folder = Path(tempfile.mkdtemp(prefix="riskd-store-bench-"))
        pg = start_embedded(folder)
        dsn = pg.dsn
    try:
        if args.uvloop:
            import uvloop

            result = uvloop.run(run(args, dsn, changes))
        else:
            result = asyncio.run(run(args, dsn, changes))
    finally:
        if pg is not None:
            pg.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    out = asdict(result)
    for key, value in out.items():
        print(f"{key:>22}: {value}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
