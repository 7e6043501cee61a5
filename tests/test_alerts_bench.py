"""bench.alerts_bench runs to completion on a small ring (its figures are not asserted)."""

from __future__ import annotations

from bench import alerts_bench


def test_alerts_bench_fills_the_ring_and_reports_every_figure() -> None:
    rep = alerts_bench.run(capacity=2_000, burst=6_000, repeat=20)
    assert rep.burst_len == rep.capacity == 2_000
    assert len(rep.queries) == len(rep.queries_encoded) == len(rep.queries_joined) == 7
    assert all(q.p50_us > 0 and q.matches > 0 for q in rep.queries)
    assert [n for n, _ in rep.rss_mb] == [0, 2_000, 4_000, 6_000]
    assert rep.append_per_s > 0 and rep.dedupe_offer_us > 0 and rep.stats_add_us > 0
    assert rep.pipeline_batch_us > 0 and rep.pipeline_occurrences > 5  # the workload's ~2 % rejects
    alerts_bench.print_report(rep)
