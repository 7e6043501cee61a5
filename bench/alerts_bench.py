"""The alert core in-process (alerts.history, alerts.dedupe, alerts.stats): no server, no transport.

1. Append throughput into a full 100,000-alert ring (every append evicts and re-indexes).
2. Filtered QueryAlerts pages (100 alerts) over a full 100,000 history: one account among 1,000,
   a severity, a check, an account and a severity, a deep page: median and p99 µs per query, for
   AlertHistory.query alone and with the page turned into a serialised QueryAlertsResponse (what
   the handler adds), once with Alert.to_pb per alert and once joined from each alert's
   Alert.wire entry (made once by Alert.numbered). The issue's target is <= 1 ms server time.
3. after() replays: a resuming subscriber's filter over the last 10,000 seqs.
4. A burst of 1,000,000 appends into the 100,000 ring: len stays at capacity, RSS stays flat.
5. Deduper.offer and AlertStats.add per alert; AlertStats.snapshot.
6. The pipeline on checked batches: bench.workload's 1,000-order batches parsed from the wire
   (as the servicer does) and checked by an Engine whose alert intake feeds an AlertPipeline; each
   batch's orders then cancelled. The µs of ``run_once`` a batch (~17 violations, ~2 % rejects),
   after a warm-up, so every key is a repeat in its dedupe window: a sustained reject flood.

    python -m bench.alerts_bench [--quick]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.dedupe import Deduper
from riskd_server.alerts.history import AlertHistory
from riskd_server.alerts.model import Alert, AlertFilter
from riskd_server.alerts.stats import AlertStats

QUERY_TARGET_US = 1000.0
CHECKS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 21, 22, 23]
SEVERITIES = [pb.SEVERITY_INFO] * 5 + [pb.SEVERITY_WARNING] * 4 + [pb.SEVERITY_CRITICAL]


def iter_alerts(
    n: int, first_seq: int = 1, accounts: int = 1000, seed: int = 0, wire: bool = False
) -> Iterator[Alert]:
    """Check alerts over ``accounts`` accounts and 500 symbols; severities 50/40/10 % INFO,
    WARNING, CRITICAL; 14 checks. ``wire``: numbered as the pipeline does (Alert.numbered makes
    each alert's serialised entry once); else just given their seq (the history alone)."""
    rng = random.Random(seed)
    for seq in range(first_seq, first_seq + n):
        severity = rng.choice(SEVERITIES)
        kind = pb.ALERT_KIND_CHECK_REJECT if severity > 1 else pb.ALERT_KIND_CHECK_WARNING
        alert = Alert(
            seq=0 if wire else seq,
            time=1.7e9 + seq / 1000,
            severity=severity,
            kind=kind,
            check=rng.choice(CHECKS),
            account=f"acct{rng.randrange(accounts)}",
            symbol=f"SYM{rng.randrange(500)}",
            message="order notional above limit",
            observed=1234.5,
            threshold=1000.0,
            client_order_id=f"o{seq}",
        )
        yield alert.numbered(seq) if wire else alert


def make_alerts(
    n: int, first_seq: int = 1, accounts: int = 1000, seed: int = 0, wire: bool = False
) -> list[Alert]:
    return list(iter_alerts(n, first_seq, accounts, seed, wire))


@dataclass(frozen=True, slots=True)
class Timing:
    name: str
    p50_us: float
    p99_us: float
    matches: float  # mean page length


@dataclass(frozen=True, slots=True)
class AlertsReport:
    capacity: int
    append_per_s: float
    queries: list[Timing]  # AlertHistory.query alone
    queries_encoded: list[Timing]  # the same pages as a serialised QueryAlertsResponse (to_pb)
    queries_joined: list[Timing]  # ... joined from per-alert bytes serialised once
    replay: Timing
    burst: int
    burst_s: float
    burst_len: int
    rss_mb: list[tuple[int, float]]  # (appends into the full ring so far, RSS MB)
    dedupe_offer_us: float
    stats_add_us: float
    stats_snapshot_us: float
    pipeline_batch_us: float  # step 6: AlertPipeline.run_once a checked 1,000-order batch
    pipeline_occurrences: float  # violations a batch


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def _time(name: str, calls: list[Callable[[], int]]) -> Timing:
    times, lengths = [], []
    for call in calls:
        t0 = time.perf_counter_ns()
        n = call()
        times.append((time.perf_counter_ns() - t0) / 1000)
        lengths.append(n)
    times.sort()
    return Timing(
        name,
        statistics.median(times),
        times[min(len(times) - 1, int(len(times) * 0.99))],
        statistics.fmean(lengths),
    )


def _encoded(history: AlertHistory, flt: AlertFilter, before: int) -> int:
    page, next_before = history.query(flt, before, 100)
    reply = pb.QueryAlertsResponse(alerts=[a.to_pb() for a in page], next_before_seq=next_before)
    return len(reply.SerializeToString()) and len(page)


def _joined(history: AlertHistory, flt: AlertFilter, before: int) -> tuple[bytes, int]:
    """The page as QueryAlertsResponse bytes joined from each alert's wire entry (Alert.wire)."""
    page, next_before = history.query(flt, before, 100)
    tail = pb.QueryAlertsResponse(next_before_seq=next_before).SerializeToString()
    return b"".join([a.wire for a in page]) + tail, len(page)


def run(capacity: int = 100_000, burst: int = 1_000_000, repeat: int = 1000) -> AlertsReport:
    rng = random.Random(1)
    history = AlertHistory(capacity)
    warm = make_alerts(capacity, 1, wire=True)
    for alert in warm:
        history.append(alert)
    # 1. Appends into the full ring: each one evicts.
    more = make_alerts(min(capacity, 200_000), capacity + 1, seed=2, wire=True)
    gc.disable()
    t0 = time.perf_counter()
    for alert in more:
        history.append(alert)
    append_per_s = len(more) / (time.perf_counter() - t0)
    gc.enable()
    del warm, more
    last = history.last_seq

    # 2. Filtered pages over the full history.
    def account() -> AlertFilter:
        return AlertFilter(accounts=frozenset({f"acct{rng.randrange(1000)}"}))

    def check() -> AlertFilter:
        return AlertFilter(checks=frozenset({rng.choice(CHECKS)}))

    def account_warning() -> AlertFilter:
        acct = frozenset({f"acct{rng.randrange(1000)}"})
        return AlertFilter(min_severity=pb.SEVERITY_WARNING, accounts=acct)

    def deep() -> int:
        return rng.randrange(history.oldest_seq, last)

    critical = AlertFilter(min_severity=pb.SEVERITY_CRITICAL)
    cases: list[tuple[str, Callable[[], AlertFilter], Callable[[], int]]] = [
        ("one account of 1,000", account, lambda: 0),
        ("min severity CRITICAL", lambda: critical, lambda: 0),
        ("one check of 14", check, lambda: 0),
        ("account + min WARNING", account_warning, lambda: 0),
        ("one check, deep cursor", check, deep),
        ("CRITICAL, deep cursor", lambda: critical, deep),
        ("any (no filter)", AlertFilter, lambda: 0),
    ]
    sample_filter = account()
    page, next_before = history.query(sample_filter, 0, 100)
    assert pb.QueryAlertsResponse.FromString(_joined(history, sample_filter, 0)[0]) == (
        pb.QueryAlertsResponse(alerts=[a.to_pb() for a in page], next_before_seq=next_before)
    )
    queries, encoded, joins = [], [], []
    for name, flt, before in cases:
        args = [(flt(), before()) for _ in range(repeat)]
        queries.append(_time(name, [lambda f=f, b=b: len(history.query(f, b, 100)[0]) for f, b in args]))
        encoded.append(_time(name, [lambda f=f, b=b: _encoded(history, f, b) for f, b in args]))
        joins.append(_time(name, [lambda f=f, b=b: _joined(history, f, b)[1] for f, b in args]))

    # 3. A subscriber resuming 10,000 seqs back with an account filter (first 1,000 replayed).
    replay_filters = [account() for _ in range(repeat)]
    replay = _time(
        "after(): one account, 10,000 seqs back",
        [lambda f=f: len(history.after(last - 10_000, f, 1000)[0]) for f in replay_filters],
    )

    # 4. The burst: RSS once the ring is full, then every capacity's worth of appends (the
    # alerts built one at a time, as the pipeline does).
    rss = [(0, _rss_mb())]
    seq = history.last_seq
    t0 = time.perf_counter()
    for start in range(0, burst, capacity):
        for alert in iter_alerts(min(capacity, burst - start), seq + 1 + start, seed=start):
            history.append(alert)
        rss.append((start + capacity, _rss_mb()))
    burst_s = time.perf_counter() - t0

    # 5. Dedupe and statistics per alert.
    sample = make_alerts(100_000, 1, accounts=1000, seed=3)
    dedupe = Deduper(window=10.0, max_keys=100_000)
    t0 = time.perf_counter()
    for i, alert in enumerate(sample):
        dedupe.offer(alert, i / 1000)  # 1,000 alerts/s: windows open and close
    dedupe_us = (time.perf_counter() - t0) / len(sample) * 1e6
    stats = AlertStats()
    t0 = time.perf_counter()
    for i, alert in enumerate(sample):
        stats.add(alert, 1.7e9 + i / 30)  # ~55 min of alerts: every window slides
    stats_us = (time.perf_counter() - t0) / len(sample) * 1e6
    t0 = time.perf_counter()
    for i in range(100):
        stats.snapshot(1.7e9 + len(sample) / 30 + i, 10)
    snapshot_us = (time.perf_counter() - t0) / 100 * 1e6

    pipeline_us, occurrences = pipeline_per_batch(max(repeat, 300))
    return AlertsReport(
        capacity=capacity,
        append_per_s=append_per_s,
        queries=queries,
        queries_encoded=encoded,
        queries_joined=joins,
        replay=replay,
        burst=burst,
        burst_s=burst_s,
        burst_len=len(history),
        rss_mb=rss,
        dedupe_offer_us=dedupe_us,
        stats_add_us=stats_us,
        stats_snapshot_us=snapshot_us,
        pipeline_batch_us=pipeline_us,
        pipeline_occurrences=occurrences,
    )


def pipeline_per_batch(batches: int, warm: int = 200) -> tuple[float, float]:
    """Step 6: (µs of AlertPipeline.run_once a batch, violations a batch) over ``batches`` checked
    batches after ``warm`` ones."""
    from riskd_server.config import Settings
    from riskd_server.engine import Engine
    from riskd_server.server import alert_pipeline
    from riskd_server.warm import warm_up
    from riskd_server.wire.request import parse_check_request, parse_report_request

    from .workload import RequestBuilder, Workload

    warm_up()
    workload = Workload()
    engine = Engine()
    workload.load_into(engine)
    engine.index_names()
    pipeline = alert_pipeline(Settings(), engine)
    engine.alert_intake = pipeline.intake
    builder = RequestBuilder(workload, 1000)
    spent = 0.0
    before = pipeline.stats.occurrences
    for i in range(warm + batches):
        if i == warm:
            before = pipeline.stats.occurrences
        request, ids = builder.request()
        engine.check_parsed(parse_check_request(request))
        r = parse_report_request(builder.cancel_request([ids]))
        engine.report_executions(r.client_order_id, r.type, r.quantity, r.price)
        t0 = time.perf_counter()
        pipeline.run_once(drain_all=True)
        if i >= warm:
            spent += time.perf_counter() - t0
    return spent / batches * 1e6, (pipeline.stats.occurrences - before) / batches


def print_report(rep: AlertsReport) -> None:
    print(f"alert history, capacity {rep.capacity:,}")
    print(f"  append into the full ring (evicting): {rep.append_per_s / 1e3:,.0f} k alerts/s")
    print(f"  filtered page of 100 (target <= {QUERY_TARGET_US:.0f} µs server time), p50 / p99 µs:")
    print(f"    {'filter':<26}{'query':>13}{'+ to_pb':>13}{'+ join':>13}{'page':>6}")
    for q, e, j in zip(rep.queries, rep.queries_encoded, rep.queries_joined, strict=True):
        print(
            f"    {q.name:<26}{q.p50_us:>6.0f} /{q.p99_us:>5.0f}{e.p50_us:>6.0f} /{e.p99_us:>5.0f}"
            f"{j.p50_us:>6.0f} /{j.p99_us:>5.0f}{q.matches:>6.0f}"
        )
    print("    (+ to_pb: the page as a serialised QueryAlertsResponse built with Alert.to_pb;")
    print("     + join: the same bytes joined from each alert's Alert.wire, serialised once)")
    r = rep.replay
    print(f"  {r.name}: p50 {r.p50_us:.0f} µs, p99 {r.p99_us:.0f} µs, {r.matches:.0f} replayed")
    (_, first), (_, full), (_, last) = rep.rss_mb[0], rep.rss_mb[1], rep.rss_mb[-1]
    print(
        f"  burst of {rep.burst:,} appends (alerts built + appended) in {rep.burst_s:.1f} s: "
        f"len {rep.burst_len:,} (capacity {rep.capacity:,})"
    )
    print(
        f"  RSS: {first:.1f} MB full ring -> {full:.1f} MB after one more ring's worth -> "
        f"{last:.1f} MB after the burst ({last - full:+.1f} MB over the last "
        f"{rep.burst - rep.capacity:,} appends)"
    )
    print("    RSS every ring's worth: " + " ".join(f"{mb:.0f}" for _, mb in rep.rss_mb))
    print(f"dedupe offer: {rep.dedupe_offer_us:.2f} µs/alert (1,000 accounts, 10 s window)")
    print(
        f"stats add: {rep.stats_add_us:.2f} µs/alert (3 windows); "
        f"snapshot: {rep.stats_snapshot_us:.0f} µs (1,000 accounts, top 10)"
    )
    print(
        f"pipeline on checked 1,000-order batches: {rep.pipeline_batch_us:.0f} µs a batch "
        f"({rep.pipeline_occurrences:.1f} violations a batch, every key a repeat)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 10,000 ring, 100,000 burst")
    quick = parser.parse_args(argv).quick
    if quick:
        print_report(run(capacity=10_000, burst=100_000, repeat=200))
    else:
        print_report(run())


if __name__ == "__main__":
    main()
