"""The in-process benchmarks run to completion on a small engine (their figures are not asserted)."""

from __future__ import annotations

from bench.kernel_bench import bench_cancels
from bench.workload import Workload
from riskd_server.engine import Engine, EngineConfig
from riskd_server.kernel import layout as L


def test_cancel_bench_fills_the_retention_ring_then_measures_its_steady_state() -> None:
    workload = Workload(n_symbols=300, n_accounts=20)
    engine = Engine(EngineConfig(max_open_orders=20_000, closed_order_retention=12_000))
    workload.load_into(engine)
    result = bench_cancels(engine, workload, batch=5_000, batches=2, rounds=2)
    assert result.orders > 0 and result.per_s > 0
    assert result.accepted_fraction == 1.0  # every cancel found its open order
    assert int(engine._s.ctr[L.C_RING_COUNT]) == 12_000  # full, and trimmed back to the retention
    assert engine.open_orders() == 0
