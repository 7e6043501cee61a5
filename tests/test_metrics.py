"""Prometheus metrics: the engine's check counters against a plain reference, the RPC timing
wrappers, the exporter (snapshot on the loop, a loop that does not answer), and the real server
with ``metrics_listen`` scraped over HTTP."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import hypothesis.strategies as st
import numpy as np
import pytest
from fix_pg import run
from fix_server import LoopThread, RiskdServer, server_settings
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families

from riskd.v1 import risk_pb2 as pb
from riskd_client import LimitSpec, Order, RiskClient
from riskd_server import changes as ch
from riskd_server.config import Settings, SettingsError, load_settings
from riskd_server.engine import Engine
from riskd_server.limits import (
    DUPLICATE_ORDER_ID,
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_QUANTITY,
    TRADING_HALTED,
    Limit,
)
from riskd_server.metrics.exporter import Metrics
from riskd_server.metrics.families import CHECK_LABELS
from riskd_server.metrics.rpc import BOUNDS_NS, RpcTimings
from riskd_server.server import StartupError, start
from riskd_server.store import Store
from riskd_server.wire.request import parse_check_request

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


# ---------------------------------------------------------------------------------- scraping


@dataclass(frozen=True)
class Scrape:
    """A scrape's samples: name -> [(labels, value)]."""

    samples: dict[str, list[tuple[dict[str, str], float]]]
    families: dict[str, str]  # family name -> type

    def value(self, name: str, **labels: str) -> float:
        found = [
            v for lab, v in self.samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
        ]
        assert len(found) == 1, f"{name}{labels}: {found} in {sorted(self.samples)[:200]}"
        return found[0]

    def has(self, name: str) -> bool:
        return name in self.samples


def parse(text: str) -> Scrape:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    types: dict[str, str] = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return Scrape(samples, types)


def scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return parse(resp.read().decode())


# ------------------------------------------------------------------------- engine check counts


def _reference(outcomes: list[Any]) -> tuple[int, int, Counter[int], Counter[int]]:
    """Totals recomputed from the outcomes the engine answered (the plain reference)."""
    checked = sum(len(o.accepted) for o in outcomes)
    rejected = sum(int((~o.accepted).sum()) for o in outcomes)
    rejects: Counter[int] = Counter()
    warnings: Counter[int] = Counter()
    for o in outcomes:
        for check, warn in zip(o.violations.check.tolist(), o.violations.warning.tolist(), strict=True):
            (warnings if warn else rejects)[check] += 1
    return checked, rejected, rejects, warnings


def _request(orders: list[tuple[str, str, str, int, float, float]]) -> bytes:
    b = pb.OrderBatch()
    for cid, acc, sym, side, qty, px in orders:
        b.client_order_id.append(cid)
        b.account.append(acc)
        b.symbol.append(sym)
        b.side.append(side)  # type: ignore[arg-type]
        b.quantity.append(qty)
        b.price.append(px)
    return pb.CheckOrdersRequest(orders=b).SerializeToString()


ORDER = st.tuples(
    st.sampled_from(["o1", "o2", "o3", "o4", "", "o5"]),  # repeats: duplicates; "": invalid
    st.sampled_from(["A", "B", "H"]),  # H is halted
    st.sampled_from(["S", "T"]),
    st.sampled_from([1, 2]),
    st.sampled_from([1.0, 40.0, 60.0, 90.0, 150.0, -1.0]),
    st.sampled_from([0.0, 10.0, 100.0]),  # 0: the mark (S has one, T none)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(
        st.tuples(st.sampled_from(["columns", "wire"]), st.lists(ORDER, min_size=1, max_size=6)),
        min_size=1,
        max_size=8,
    )
)
def test_check_counts_match_the_outcomes(requests: list[tuple[str, list[Any]]]) -> None:
    engine = Engine()
    engine.update_prices(["S"], [10.0])
    engine.upsert_limits(
        [
            Limit(limit_id="q", kind=MAX_ORDER_QUANTITY, threshold=100.0, warn_fraction=0.5),
            Limit(limit_id="n", kind=MAX_ORDER_NOTIONAL, threshold=5_000.0, warn_fraction=0.5),
        ]
    )
    engine.set_trading_state("H", 3)
    outcomes = []
    for how, orders in requests:
        if how == "wire":  # one order: the one-call numba path; more: the span batch path
            outcomes.append(engine.check_parsed(parse_check_request(_request(orders))))
        else:  # one order: _check_one; more: the str-column batch path
            cols = list(zip(*orders, strict=True))
            outcomes.append(engine.check_orders(*cols))
    checked, rejected, rejects, warnings = _reference(outcomes)
    got = engine.check_counter.snapshot()
    assert (got.checked, got.rejected, got.accepted) == (checked, rejected, checked - rejected)
    assert got.rejects == dict(rejects)
    assert got.warnings == dict(warnings)


# ------------------------------------------------------------------------------- RPC timings


def _bucket(ns: int) -> int:
    return next(i for i, b in enumerate(BOUNDS_NS) if ns <= b)


def test_unary_timing_counts_each_call_in_its_bucket_and_its_errors() -> None:
    timings = RpcTimings()

    async def slow(request: Any, context: Any) -> str:
        await asyncio.sleep(0.03)
        if request == "bad":
            raise ValueError("bad")
        if request == "hang":
            await asyncio.sleep(10)
        return request

    handler = timings.wrap("svc", "Slow", grpc.unary_unary_rpc_method_handler(slow))

    async def main() -> None:
        assert await handler.unary_unary("ok", None) == "ok"
        with pytest.raises(ValueError):
            await handler.unary_unary("bad", None)
        task = asyncio.ensure_future(handler.unary_unary("hang", None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (m,) = timings.snapshot()
    assert (m.calls, m.errors, m.cancelled, m.observations) == (3, 1, 1, 3)
    # 30 ms sleeps land in the (25 ms, 50 ms] bucket (a loaded machine may push one further)
    assert m.counts[_bucket(30_000_000)] >= 1 and sum(m.counts[: _bucket(25_000_000)]) == 0
    assert 0.09e9 <= m.sum_ns < 2e9


def test_bidi_timing_is_per_message_not_the_stream_life() -> None:
    timings = RpcTimings()

    async def echo(requests: AsyncIterator[int], context: Any) -> AsyncIterator[int]:
        async for r in requests:
            yield r * 2

    handler = timings.wrap("svc", "Echo", grpc.stream_stream_rpc_method_handler(echo))

    async def requests() -> AsyncIterator[int]:
        for i in range(5):
            await asyncio.sleep(0.04)  # the client is slow: idle time, not the server's
            yield i

    async def main() -> list[int]:
        return [r async for r in handler.stream_stream(requests(), None)]

    start_ = time.perf_counter()
    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert time.perf_counter() - start_ >= 0.2
    (m,) = timings.snapshot()
    assert (m.calls, m.messages_sent, m.observations, m.errors, m.cancelled) == (1, 5, 5, 0, 0)
    assert m.sum_ns < 0.03e9  # five replies of microseconds each, not 200 ms of stream life


def test_server_stream_counts_messages_and_cancellation() -> None:
    timings = RpcTimings()

    async def feed(request: int, context: Any) -> AsyncIterator[int]:
        for i in range(request):
            yield i
        await asyncio.sleep(10)  # an endless subscription
        yield -1

    handler = timings.wrap("svc", "Feed", grpc.unary_stream_rpc_method_handler(feed))

    async def main() -> None:
        got: list[int] = []

        async def consume() -> None:
            async for r in handler.unary_stream(3, None):
                got.append(r)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert got == [0, 1, 2]

    asyncio.run(main())
    (m,) = timings.snapshot()
    assert (m.calls, m.messages_sent, m.cancelled, m.errors, m.observations) == (1, 3, 1, 0, 0)
    assert not m.timed


# ---------------------------------------------------------------------------------- exporter


@dataclass(frozen=True)
class _Stats:
    depth: int
    sent: int
    healthy: bool
    note: str


def test_exporter_reads_sources_on_the_loop_and_exports_them() -> None:
    loop = LoopThread("metrics-test")
    try:
        metrics = Metrics(loop.loop, process_metrics=False)
        seen_threads: list[Any] = []

        def stats() -> _Stats:
            seen_threads.append(asyncio.get_running_loop())
            return _Stats(depth=3, sent=7, healthy=True, note="text is skipped")

        metrics.add_gauges("hub", stats, counters=("sent", "dropped"), docs={"depth": "Queued."})
        metrics.add_breaker("mail", lambda: "HALF_OPEN")
        metrics.add_gauges("broken", lambda: {"x": 1 / 0})
        with pytest.raises(ValueError, match="already registered"):
            metrics.add_gauges("hub", stats)
        with pytest.raises(ValueError, match="not a valid"):
            metrics.add_gauges("bad-name", stats)
        port = metrics.serve("127.0.0.1", 0)
        try:
            s = scrape(port)
        finally:
            metrics.close()
    finally:
        loop.close()
    assert seen_threads == [loop.loop]  # fn ran on the loop, not in the HTTP thread
    assert s.value("riskd_hub_depth") == 3 and s.families["riskd_hub_depth"] == "gauge"
    assert s.value("riskd_hub_sent_total") == 7 and s.families["riskd_hub_sent"] == "counter"
    assert s.value("riskd_hub_dropped_total") == 0  # a declared counter the source left out
    assert s.value("riskd_hub_healthy") == 1
    assert not s.has("riskd_hub_note")
    assert s.value("riskd_breaker_state", breaker="mail", state="half_open") == 1
    assert s.value("riskd_breaker_state", breaker="mail", state="open") == 0
    assert s.value("riskd_metrics_snapshot_timeouts_total") == 0
    assert s.value("riskd_metrics_source_errors_total", source="broken") == 1  # the others still there
    assert not s.has("riskd_broken_x")


def test_a_loop_that_does_not_answer_gives_process_metrics_and_a_timeout_count() -> None:
    idle = asyncio.new_event_loop()  # never run: a callback handed to it never runs
    try:
        metrics = Metrics(idle, snapshot_timeout=0.2)
        metrics.add_gauges("hub", lambda: {"depth": 1})
        port = metrics.serve("127.0.0.1", 0)
        try:
            first = scrape(port)
            second = scrape(port)
        finally:
            metrics.close()
    finally:
        idle.close()
    assert not first.has("riskd_hub_depth")
    assert first.value("riskd_metrics_snapshot_timeouts_total") == 1
    assert second.value("riskd_metrics_snapshot_timeouts_total") == 2
    assert first.has("process_cpu_seconds_total") and first.has("python_info")


def test_write_behind_backlog_and_lag(fresh_dsn: str) -> None:
    """Rows queued but not flushed show as backlog and age; a flush takes them to zero."""

    async def main() -> tuple[Scrape, Scrape]:
        from riskd_server.metrics.sources import watch_store, watch_write_behind

        store = await Store.open(fresh_dsn, min_size=1, max_size=2, timeout=5.0)
        try:
            writer = store.write_behind(max_pending_rows=100, flush_interval=60.0)
            metrics = Metrics(asyncio.get_running_loop(), process_metrics=False)
            watch_write_behind(metrics, writer)
            watch_store(metrics, store)
            port = metrics.serve("127.0.0.1", 0)
            try:
                writer.put(ch.MarksChanged(np.array(["S", "T"], dtype=object), np.ones(2), np.ones(2)))
                await asyncio.sleep(0.3)
                writer.put(ch.MarksChanged(np.array(["U"], dtype=object), np.ones(1), np.ones(1)))
                before = await asyncio.to_thread(scrape, port)  # the loop stays free to answer
                await writer.start()
                await writer.barrier(10.0)
                after = await asyncio.to_thread(scrape, port)
                await writer.stop(5.0)
            finally:
                await asyncio.to_thread(metrics.close)
        finally:
            await store.close()
        return before, after

    before, after = run(main())
    assert before.value("riskd_write_behind_pending_rows") == 3
    assert before.value("riskd_write_behind_pending_changes") == 2
    assert before.value("riskd_write_behind_max_pending_rows") == 100
    assert 0.3 <= before.value("riskd_write_behind_oldest_pending_seconds") < 30
    assert before.value("riskd_write_behind_flushed_rows_total") == 0
    assert after.value("riskd_write_behind_pending_rows") == 0
    assert after.value("riskd_write_behind_oldest_pending_seconds") == 0
    assert after.value("riskd_write_behind_flushed_rows_total") == 3
    assert after.value("riskd_write_behind_flushes_total") == 1
    assert after.value("riskd_breaker_state", breaker="store", state="closed") == 1
    assert after.value("riskd_db_pool_pool_max") == 2
    assert after.value("riskd_db_pool_requests_num_total") >= 1


def test_alert_pipeline_counts_plug_in() -> None:
    """watch_alerts exports what the alert path produced and lost (the intake drops the oldest
    event past its capacity and counts it)."""
    from riskd_server.alerts.intake import EV_FAULT
    from riskd_server.alerts.pipeline import AlertPipeline
    from riskd_server.alerts.stats import AlertStats
    from riskd_server.interning import Interner
    from riskd_server.metrics.sources import watch_alerts

    async def main() -> Scrape:
        unused: Any = None  # history, dedupe: the intake (and the stats it reports) alone is exercised
        pipeline = AlertPipeline(
            Interner("account", 10), Interner("symbol", 10), unused, unused, AlertStats(), intake_capacity=2
        )
        for i in range(5):  # never drained: 3 events of 4 occurrences each are dropped
            pipeline.intake.put((EV_FAULT, 4, 0.0, 0, f"fault {i}", 0.0, 0.0, ""))
        metrics = Metrics(asyncio.get_running_loop(), process_metrics=False)
        watch_alerts(metrics, pipeline.stats_snapshot)
        port = metrics.serve("127.0.0.1", 0)
        try:
            return await asyncio.to_thread(scrape, port)
        finally:
            await asyncio.to_thread(metrics.close)

    s = asyncio.run(main())
    assert s.value("riskd_alerts_lost_events_total") == 3
    assert s.value("riskd_alerts_lost_occurrences_total") == 12
    assert s.value("riskd_alerts_pending_events") == 2
    assert s.value("riskd_alerts_raised_total") == 0


# ---------------------------------------------------------------------------------- settings


def test_metrics_listen_is_off_by_default_and_validated() -> None:
    assert Settings().metrics_listen == ""
    assert load_settings({}, environ={}).metrics_listen == ""
    assert load_settings({"metrics_listen": "0.0.0.0:9100"}, environ={}).metrics_listen == "0.0.0.0:9100"
    assert load_settings({}, environ={"RISKD_METRICS_LISTEN": "[::1]:0"}).metrics_listen == "[::1]:0"
    for bad in ("9100", ":9100", "host:port", "host:70000"):
        with pytest.raises(SettingsError, match="metrics_listen"):
            load_settings({"metrics_listen": bad}, environ={})


# ------------------------------------------------------------------------------ the real server

# Orders and what they are (limits below: quantity 100 and notional 10,000, both warning at half;
# account HALT halted). RiskCheck -> count.
EXPECTED_REJECTS = {MAX_ORDER_QUANTITY: 3, MAX_ORDER_NOTIONAL: 1, TRADING_HALTED: 2, DUPLICATE_ORDER_ID: 1}
EXPECTED_WARNINGS = {MAX_ORDER_QUANTITY: 2, MAX_ORDER_NOTIONAL: 1}


@pytest.fixture
def riskd_settings() -> dict[str, Any]:
    return {"metrics_listen": "127.0.0.1:0"}


def _drive(client: RiskClient) -> list[Any]:
    client.update_prices({"S": 10.0})
    client.upsert_limits(
        [
            LimitSpec("q", "MAX_ORDER_QUANTITY", 100, warn_fraction=0.5),
            LimitSpec("n", "MAX_ORDER_NOTIONAL", 10_000, warn_fraction=0.5),
        ]
    )
    client.halt("HALT", reason="test")
    results = [
        client.check([Order("a1", "A", "S", "BUY", 10, 10)]),  # clean (one-order path)
        client.check([Order("a2", "A", "S", "BUY", 60, 10)]),  # quantity warning
        client.check([Order("a3", "A", "S", "BUY", 150, 10)]),  # quantity reject
        client.check(
            [
                Order("b1", "A", "S", "BUY", 10, 10),  # clean
                Order("b2", "A", "S", "BUY", 200, 100),  # quantity + notional rejects
                Order("b3", "HALT", "S", "BUY", 1, 10),  # halted
                Order("b4", "A", "S", "BUY", 70, 80),  # quantity + notional warnings
                Order("a1", "A", "S", "BUY", 1, 10),  # duplicate id
            ]
        ),
    ]
    results += list(
        client.check_stream(
            [
                [Order("s1", "A", "S", "SELL", 1, 10)],  # clean
                [Order("s2", "A", "S", "SELL", 150, 10)],  # quantity reject
                [Order("s3", "A", "S", "SELL", 1, 10), Order("s4", "HALT", "S", "SELL", 1, 10)],  # halted
            ]
        )
    )
    return results


def test_server_metrics_end_to_end(riskd_server: RiskdServer) -> None:
    running = riskd_server.running
    assert running is not None and running.metrics_port is not None
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        results = _drive(client)
    # The expectations above agree with what the server answered...
    rejects: Counter[int] = Counter()
    warnings: Counter[int] = Counter()
    for batch in results:
        for r in batch:
            for v in r.reasons:
                check = pb.RiskCheck.Value("RISK_CHECK_" + v.check) if isinstance(v.check, str) else v.check
                (warnings if v.warning else rejects)[int(check)] += 1
    assert dict(rejects) == EXPECTED_REJECTS and dict(warnings) == EXPECTED_WARNINGS
    n_orders = sum(len(list(b)) for b in results)
    n_rejected = sum(1 for b in results for r in b if not r.accepted)
    assert (n_orders, n_rejected) == (12, 6)

    # ... and the scrape says exactly that.
    s = scrape(running.metrics_port)
    assert s.value("riskd_orders_checked_total") == 12
    assert s.value("riskd_orders_rejected_total") == 6
    assert s.value("riskd_orders_accepted_total") == 6
    for check, label in CHECK_LABELS.items():
        assert s.value("riskd_check_rejects_total", check=label) == EXPECTED_REJECTS.get(check, 0), label
        assert s.value("riskd_check_warnings_total", check=label) == EXPECTED_WARNINGS.get(check, 0), label

    svc = "riskd.v1.RiskService"
    assert s.value("riskd_rpc_server_seconds_count", service=svc, method="CheckOrders") == 4
    assert s.value("riskd_rpc_calls_total", service=svc, method="CheckOrders") == 4
    assert s.value("riskd_rpc_server_seconds_bucket", service=svc, method="CheckOrders", le="+Inf") == 4
    assert 0 < s.value("riskd_rpc_server_seconds_sum", service=svc, method="CheckOrders") < 5
    assert s.value("riskd_rpc_server_seconds_count", service=svc, method="CheckOrderStream") == 3
    assert s.value("riskd_rpc_calls_total", service=svc, method="CheckOrderStream") == 1
    assert s.value("riskd_rpc_messages_sent_total", service=svc, method="CheckOrderStream") == 3
    for method in ("UpsertLimits", "UpdatePrices", "SetTradingState"):
        assert s.value("riskd_rpc_server_seconds_count", service=svc, method=method) == 1, method
    assert s.value("riskd_rpc_server_seconds_count", service=svc, method="ReportExecutions") == 0
    assert s.value("riskd_rpc_errors_total", service=svc, method="CheckOrders") == 0

    assert s.value("riskd_engine_open_orders") == 6  # every accepted order is still open
    assert s.value("riskd_write_behind_max_pending_rows") == riskd_server.settings.max_pending_rows
    assert s.has("riskd_write_behind_pending_rows") and s.has("riskd_write_behind_oldest_pending_seconds")
    assert s.value("riskd_breaker_state", breaker="store", state="closed") == 1
    assert s.value("riskd_db_pool_pool_max") == riskd_server.settings.db_pool_max
    assert s.value("riskd_db_pool_pool_size") >= 1
    assert s.has("riskd_db_pool_requests_num_total") and s.has("riskd_db_pool_connections_lost_total")
    assert s.has("process_cpu_seconds_total") and s.has("process_resident_memory_bytes")

    # The admin calls waited for their commit; the checks' rows follow within a flush interval.
    deadline = time.monotonic() + 10
    while (
        scrape(running.metrics_port).value("riskd_write_behind_pending_rows") and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    s = scrape(running.metrics_port)
    assert s.value("riskd_write_behind_pending_rows") == 0
    assert s.value("riskd_write_behind_oldest_pending_seconds") == 0
    assert s.value("riskd_write_behind_flushed_rows_total") > 0

    # Every riskd_ family is documented, and the documentation names nothing that is not exported
    # (email's only when email is on, which this server is not).
    doc = DOC.read_text()
    documented = set(re.findall(r"`(riskd_[a-z0-9_]+)(?=[`{])", doc))
    exported = {
        n + "_total" if t == "counter" else n for n, t in s.families.items() if n.startswith("riskd_")
    }
    assert exported - documented == set()
    email = {n for n in documented if n.startswith("riskd_email_")}
    assert documented - exported - email == set()
    assert s.has("riskd_alerts_raised_total") and s.has("riskd_alert_subscribers_subscribers")


def test_metrics_are_off_by_default(fresh_dsn: str) -> None:
    loop = LoopThread()
    try:
        running = loop.run(start(server_settings(fresh_dsn)), timeout=120)
        try:
            assert running.metrics is None and running.metrics_port is None
        finally:
            loop.run(running.stop(), timeout=30)
    finally:
        loop.close()


def test_a_taken_metrics_port_is_a_clear_start_up_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The DSN points nowhere: the metrics port is refused before any database work.
        settings_ = server_settings("postgresql://127.0.0.1:1/none", metrics_listen=f"127.0.0.1:{port}")

        async def main() -> None:
            await start(settings_)

        with pytest.raises(
            StartupError, match=rf"cannot serve metrics on 127\.0\.0\.1:{port}: address in use"
        ):
            asyncio.run(main())


def test_the_overhead_bench_compares_counting_with_not_counting() -> None:
    """bench.metrics_bench's A/B is only meaningful if its baseline answers the same and counts
    nothing."""
    from bench.metrics_bench import set_counting

    outcomes = {}
    for on in (False, True):
        engine = Engine()
        engine.update_prices(["S"], [10.0])
        engine.upsert_limits(
            [Limit(limit_id="q", kind=MAX_ORDER_QUANTITY, threshold=100.0, warn_fraction=0.5)]
        )
        set_counting(engine, on)
        outs = [
            engine.check_parsed(parse_check_request(_request([("a", "A", "S", 1, 150.0, 10.0)]))),
            engine.check_parsed(parse_check_request(_request([("b", "A", "S", 1, 60.0, 0.0)] * 2))),
        ]
        outcomes[on] = [(o.reject_mask.tolist(), o.violations.check.tolist()) for o in outs]
        got = engine.check_counter.snapshot()
        assert (got.checked, got.rejected, got.rejects, got.warnings) == (
            (3, 2, {MAX_ORDER_QUANTITY: 1, DUPLICATE_ORDER_ID: 1}, {MAX_ORDER_QUANTITY: 2})
            if on
            else (0, 0, {}, {})
        )
    assert outcomes[False] == outcomes[True]
