"""bench/sse_bench.py runs end to end on a small scale (its figures are not asserted, its bookkeeping is)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import sse_bench


def test_sse_bench_times_every_delivery_on_a_small_run(tmp_path: Path) -> None:
    out = tmp_path / "sse.json"
    argv = ["--connections", "60", "--dashboards", "2", "--clients", "2", "--rounds", "3"]
    assert sse_bench.main([*argv, "--interval", "0.3", "--settle", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["connections"] == 60 and result["failed_connections"] == 0
    assert result["deliveries"] == 180 and result["missing"] == 0  # every connection, every round
    assert 0 < result["p50_s"] <= result["p99_s"] <= result["max_s"] < 5
    assert len(result["dashboard_rss_mb"]) == 2
