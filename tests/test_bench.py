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


def test_recovery_bench_times_a_real_restart(fresh_dsn: str) -> None:
    """bench.recovery_bench fills the database, and the riskd serve it times recovers all of it."""
    from bench import recovery_bench

    rep = recovery_bench.run(orders=2_000, runs=1, dsn=fresh_dsn)
    (start,) = rep.starts
    assert 0 < start.serving < 120 and start.read >= 0 and start.restore >= 0 and start.warm_up >= 0
    assert "'open_orders': 2000" in start.stats and "'retained_closed_orders': 2000" in start.stats
    assert rep.positions == 400


def test_fanout_bench_delivers_every_alert_to_every_stream() -> None:
    """bench.fanout_bench: a riskd hub and the bare holder, each with clients in other processes."""
    from bench import fanout_bench

    for mode in ("holder", "riskd"):
        r = fanout_bench.run_mode(mode, streams=40, clients=2, alerts=2, interval=0.2)
        assert r.received == 80 and 0 <= r.p50_ms <= r.p99_ms <= r.max_ms
        assert r.kb_per_stream > 0
