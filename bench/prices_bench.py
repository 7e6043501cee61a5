"""UpdatePrices server time at 200,000 books (10,000 symbols x 1,000 accounts, every book holding a
position), in-process, no transport, no database.

One call is what the RPC handler does: ``UpdatePricesRequest.FromString`` -> ``RiskServicer
.UpdatePrices`` (Engine.update_prices: validation, symbol ids, the revaluation kernel) ->
``SerializeToString`` of the reply. Measured for one symbol a call (p50/p99) and for 1,000
symbols a call (symbol updates/s). The baseline in the same run is what a price update cost
before marks revalued only their symbol's holders: one recomputation of every account's exposure
from all books (Engine.recompute_exposure). Targets: <= 20 µs for a one-symbol update, >= 1 M
symbol updates/s in batches of 1,000.

    python -m bench.prices_bench [--quick]
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass

import numpy as np

from riskd.v1 import risk_pb2 as pb
from riskd_server.engine import Engine, EngineConfig
from riskd_server.servicer import RiskServicer

from .workload import UNIVERSE, Workload

ONE_SYMBOL_TARGET_US = 20.0
BATCH_TARGET_PER_S = 1e6


@dataclass(frozen=True, slots=True)
class PricesReport:
    books: int
    one_p50_us: float
    one_p99_us: float
    batch_p50_us: float  # one 1,000-symbol call
    batch_per_s: float  # symbol updates/s at the median call
    recompute_ms: float  # the old way: every book revalued on every update (median)


def _run_handler(servicer: RiskServicer, data: bytes) -> bytes:
    """RiskServicer.UpdatePrices on request bytes, as grpc would run it, minus the transport.

    The handler awaits nothing on success, so one send() runs it to completion.
    """
    coro = servicer.UpdatePrices(pb.UpdatePricesRequest.FromString(data), None)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value.SerializeToString()
    raise RuntimeError("UpdatePrices awaited")


def make_engine(workload: Workload) -> Engine:
    """The workload's limits and marks, and a position in every (account, universe symbol) book."""
    engine = Engine(EngineConfig(initial_books=workload.n_accounts * UNIVERSE + 1))
    workload.load_into(engine)
    accounts = np.repeat(np.array(workload.accounts, dtype=object), UNIVERSE)
    symbols = np.array(workload.symbols, dtype=object)[workload.universe.reshape(-1)]
    qty = np.random.default_rng(5).integers(1, 300, accounts.shape[0]).astype(np.float64)
    step = engine.config.max_batch
    for i in range(0, accounts.shape[0], step):
        engine.load_positions(
            accounts[i : i + step].tolist(), symbols[i : i + step].tolist(), qty[i : i + step]
        )
    return engine


def _requests(workload: Workload, per_call: int, calls: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(calls):
        s = rng.choice(workload.n_symbols, per_call, replace=False)
        px = np.round(workload.marks[s] * rng.uniform(0.99, 1.01, per_call), 4)
        out.append(
            pb.UpdatePricesRequest(
                symbol=[workload.symbols[i] for i in s], price=px.tolist()
            ).SerializeToString()
        )
    return out


def _timed(servicer: RiskServicer, requests: list[bytes]) -> np.ndarray:
    lat = np.empty(len(requests), dtype=np.int64)
    clock = time.perf_counter_ns
    for i, req in enumerate(requests):
        t0 = clock()
        _run_handler(servicer, req)
        lat[i] = clock() - t0
    return lat / 1e3


def run(quick: bool = False) -> PricesReport:
    workload = Workload()
    engine = make_engine(workload)
    servicer = RiskServicer(engine)
    one_calls, batch_calls = (2_000, 30) if quick else (20_000, 200)
    for req in _requests(workload, 1, 500, 1) + _requests(workload, 1_000, 5, 2):  # warm
        _run_handler(servicer, req)
    gc.collect()
    gc.freeze()
    one = _timed(servicer, _requests(workload, 1, one_calls, 3))
    batch = _timed(servicer, _requests(workload, 1_000, batch_calls, 4))
    recompute = np.empty(7 if quick else 21)
    for i in range(recompute.shape[0]):
        t0 = time.perf_counter()
        engine.recompute_exposure()
        recompute[i] = (time.perf_counter() - t0) * 1e3
    gc.unfreeze()
    batch_p50 = float(np.percentile(batch, 50))
    return PricesReport(
        books=engine.stats()["books"],
        one_p50_us=float(np.percentile(one, 50)),
        one_p99_us=float(np.percentile(one, 99)),
        batch_p50_us=batch_p50,
        batch_per_s=1_000 / (batch_p50 / 1e6),
        recompute_ms=float(np.median(recompute)),
    )


def print_report(rep: PricesReport) -> None:
    print(
        f"UpdatePrices server time at {rep.books:,} books (no database): 1 symbol p50 {rep.one_p50_us:.1f} µs, "
        f"p99 {rep.one_p99_us:.1f} (target <= {ONE_SYMBOL_TARGET_US:.0f}); 1,000 symbols p50 "
        f"{rep.batch_p50_us / 1e3:.2f} ms = {rep.batch_per_s / 1e6:.2f} M symbol updates/s "
        f"(target >= {BATCH_TARGET_PER_S / 1e6:.0f} M/s); full recompute of every book (the old way, "
        f"per update) {rep.recompute_ms:.2f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print_report(run(quick=parser.parse_args(argv).quick))


if __name__ == "__main__":
    main()
