"""Risk snapshot costs, in process (no transport): what a snapshot tick costs the event loop.

- poke: the per-RPC cost StreamRiskSnapshots adds to CheckOrders, CheckOrderStream and
  ReportExecutions (RiskServicer._poke on a hub with a change already pending), against an empty
  method call in the same run.
- pass: the change detection (engine.snapshot_changes) after one UpdatePrices, over every account.
- read + encode of k changed accounts: what one tick does for the accounts that changed.
- full: every account (a subscriber's first response, GetRiskSnapshot with no accounts).

    python -m bench.snapshot_bench [--accounts 100000] [--positions 10] [--symbols 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from riskd_server.engine import Engine, EngineConfig
from riskd_server.engine.snapshot import SnapshotReader
from riskd_server.engine.snapshot_changes import ChangeTracker
from riskd_server.limits import Limit
from riskd_server.servicer import RiskServicer
from riskd_server.wire.snapshot import encode_snapshot


@dataclass(frozen=True, slots=True)
class Report:
    accounts: int
    books: int
    poke_ns: float
    empty_call_ns: float
    pass_ms: float
    tick_ms: dict[int, float]  # changed accounts -> read + encode ms
    full_read_ms: float
    full_encode_ms: float
    full_mb: float


def desk(accounts: int, positions: int, symbols: int, seed: int = 1) -> Engine:
    """accounts x positions random positions over symbols, all marked, and a limit of every kind a
    snapshot reports (each account gets five)."""
    engine = Engine(EngineConfig(max_batch=100_000, max_accounts=max(accounts, 1)))
    rng = np.random.default_rng(seed)
    names = [f"S{i}" for i in range(symbols)]
    engine.update_prices(names, rng.uniform(10, 500, symbols))
    acct = np.repeat(np.array([f"A{i}" for i in range(accounts)], dtype=object), positions)
    sym = np.array(names, dtype=object)[rng.integers(0, symbols, acct.shape[0])]
    qty = rng.integers(-100, 100, acct.shape[0]).astype(float)
    for i in range(0, acct.shape[0], 100_000):
        engine.load_positions(
            acct[i : i + 100_000].tolist(), sym[i : i + 100_000].tolist(), qty[i : i + 100_000]
        )
    engine.upsert_limits(
        [
            Limit(limit_id="gross", kind=4, threshold=1e7),
            Limit(limit_id="net", kind=5, threshold=1e6),
            Limit(limit_id="pos", kind=3, threshold=1_000),
            Limit(limit_id="open", kind=8, threshold=100),
            Limit(limit_id="rate", kind=7, threshold=100),
        ]
    )
    return engine


def _best_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def run(
    accounts: int = 100_000,
    positions: int = 10,
    symbols: int = 2_000,
    ticks: tuple[int, ...] = (1, 100, 1_000, 10_000),
) -> Report:
    engine = desk(accounts, positions, symbols)
    servicer = RiskServicer(engine)
    servicer.snapshots.poke()  # a change pending: the steady state under load
    poke = servicer._poke

    class Empty:
        def call(self) -> None:
            pass

    empty = Empty().call
    n = 1_000_000
    poke_ns = min(timeit.repeat(poke, number=n, repeat=5)) / n * 1e9
    empty_ns = min(timeit.repeat(empty, number=n, repeat=5)) / n * 1e9

    reader, tracker = SnapshotReader(engine), ChangeTracker(engine)
    tracker.detect()
    rng = np.random.default_rng(2)
    passes = []
    for i in range(5):
        engine.update_prices(["S1"], [11.0 + i])
        start = time.perf_counter()
        tracker.detect()
        passes.append(time.perf_counter() - start)
    tick_ms = {}
    for k in ticks:
        ids = np.unique(rng.integers(0, accounts, min(k, accounts)))
        ids = ids[: min(k, ids.shape[0])]
        tick_ms[k] = _best_ms(lambda ids=ids: encode_snapshot(reader.columns(ids)))
    every = reader.all_ids()
    cols = reader.columns(every)
    read_ms = _best_ms(lambda: reader.columns(every), repeat=3)
    data = encode_snapshot(cols)
    encode_ms = _best_ms(lambda: encode_snapshot(cols), repeat=3)
    return Report(
        accounts=accounts,
        books=engine.stats()["books"],
        poke_ns=poke_ns,
        empty_call_ns=empty_ns,
        pass_ms=statistics.median(passes) * 1e3,
        tick_ms=tick_ms,
        full_read_ms=read_ms,
        full_encode_ms=encode_ms,
        full_mb=len(data) / 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=10, help="positions per account")
    parser.add_argument("--symbols", type=int, default=2_000)
    args = parser.parse_args()
    rep = run(args.accounts, args.positions, args.symbols)
    print(f"{rep.accounts:,} accounts, {rep.books:,} books, five limits each")
    print(f"poke (per mutating RPC): {rep.poke_ns:.0f} ns (an empty method call: {rep.empty_call_ns:.0f} ns)")
    print(f"change pass over every account: {rep.pass_ms:.2f} ms")
    for k, ms in rep.tick_ms.items():
        print(f"read + encode {k:>6,} changed accounts: {ms:8.2f} ms")
    print(
        f"full snapshot: read {rep.full_read_ms:.0f} ms + encode {rep.full_encode_ms:.0f} ms "
        f"({rep.full_mb:.1f} MB; the encode runs in a worker thread)"
    )


if __name__ == "__main__":
    main()
