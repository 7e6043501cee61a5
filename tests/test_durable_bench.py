"""bench.durable_bench: its parsing helpers, the loadgen counts it relies on, and the catch-up probe
against a real `riskd serve` with its embedded PostgreSQL."""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace

import grpc

from bench import durable_bench as db
from bench.loadgen import LoadConfig, LoadResult, _WorkerStats, run_load
from bench.servers import spawn_server

PAGE = {
    'riskd_rpc_server_seconds_sum{method="CheckOrderStream",service="riskd.v1.RiskService"}': 0.5,
    'riskd_rpc_server_seconds_sum{method="CheckOrders",service="riskd.v1.RiskService"}': 2.0,
    'riskd_rpc_errors_total{method="CheckOrders",service="riskd.v1.RiskService"}': 3.0,
    'riskd_rpc_errors_total{method="CheckOrders",service="other.Service"}': 4.0,
    "riskd_orders_accepted_total": 7.0,
}


def test_metric_sums_the_series_whose_labels_match() -> None:
    assert db.metric(PAGE, "riskd_orders_accepted_total") == 7.0
    assert db.metric(PAGE, "riskd_rpc_server_seconds_sum", method="CheckOrderStream") == 0.5
    assert db.metric(PAGE, "riskd_rpc_errors_total", method="CheckOrders") == 7.0
    assert db.metric(PAGE, "riskd_rpc_errors_total", service="other.Service") == 4.0
    assert db.metric(PAGE, "riskd_rpc_errors_total", method="ReportExecutions") == 0.0
    assert db.metric(PAGE, "riskd_rpc_server_seconds") == 0.0  # a prefix is not a name


def test_embedded_dsn_reads_port_and_socket_folder_from_postmaster_pid(tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    lines = ["4242", str(tmp_path / "pg"), "1700000000", "54321", "/tmp/sock", "", "1 2", "ready"]
    (tmp_path / "pg" / "postmaster.pid").write_text("\n".join(lines) + "\n")
    assert db.embedded_dsn(tmp_path) == "host=/tmp/sock port=54321 dbname=riskd user=postgres"


def test_loadgen_counts_every_cancelled_order_and_refusals_by_status() -> None:
    """Each batch followed by its cancel: every order sent is in a cancel the server answered."""
    echo = spawn_server("echo-test-durable", "bench.echo_server")
    try:
        cfg = LoadConfig(
            target=echo.target,
            batch=50,
            procs=1,
            concurrency=2,
            duration=30,
            warmup=0,
            max_requests=20,
            cancel_every=50,
        )
        r = run_load(cfg)
        assert r.errors == 0 and r.error_codes == {}
        assert r.orders >= 20 * 50 and r.cancelled_orders >= r.orders and r.cancelled_orders % 50 == 0
        assert r.cancels == r.cancelled_orders // 50  # one ReportExecutions a batch
    finally:
        echo.stop()
    st = _WorkerStats()
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
        st.error(grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "refused"))
    st.error(TimeoutError())
    assert st.errors == 4 and st.first_error == "UNAVAILABLE: refused"
    assert dict(st.codes) == {"UNAVAILABLE": 2, "INTERNAL": 1, "TimeoutError": 1}


def test_rows_probe_waits_for_every_order_and_report_in_postgresql() -> None:
    """A real riskd serve: after a check+cancel load the probe holds once the write-behind has
    written everything; one acknowledged report more than were sent never holds."""
    session = db.start_riskd("riskd-test-durable")
    try:
        cfg = LoadConfig(
            target=session.target,
            batch=200,
            procs=1,
            concurrency=2,
            duration=30,
            warmup=0,
            max_requests=10,
            cancel_every=200,
        )
        run = db.measure("riskd", session.server, cfg, session)
        assert run.server_errors == 0 and session.executions_acked == run.load.cancelled_orders >= 2_000
        waited = db.wait_caught_up(db.rows_probe(session), run.ended, timeout=60, step=0.05)
        assert 0 < waited < 60
        import psycopg

        with psycopg.connect(session.dsn) as conn:
            orders, closed = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 2) FROM orders"
            ).fetchone()  # type: ignore[misc]
            (executions,) = conn.execute("SELECT count(*) FROM executions").fetchone()  # type: ignore[misc]
        accepted = db.metric(session.metrics(), "riskd_orders_accepted_total")
        assert orders == accepted > 0 and executions == session.executions_acked
        assert closed == orders  # every accepted order cancelled
        session.executions_acked += 1
        assert math.isnan(db.wait_caught_up(db.rows_probe(session), time.monotonic(), timeout=3))
    finally:
        session.stop()


def test_journal_cost_bench_times_both_ways_and_appends_every_record() -> None:
    from bench import journal_cost_bench

    r = journal_cost_bench.run(calls=400, blocks=2, fsync="always")
    assert r.calls == 400 and r.record_bytes > 60  # HEAD (20 bytes) + a one-order request + reply
    assert 0 < r.plain.p50_us <= r.plain.p99_us and 0 < r.append.p50_us <= r.journal.p99_us
    assert r.syncs >= 400  # fsync always: one per append (and the warm-up's)


def test_journal_probe_holds_once_journal_applied_reaches_the_last_record(
    tmp_path: Path, fresh_dsn: str
) -> None:
    """The probe for after issue 11's change: journal_applied's seq against the journal's end."""
    import psycopg

    from riskd_server.journal.records import CHECK
    from riskd_server.journal.writer import Journal

    journal = Journal(tmp_path / "journal", fsync="none", segment_bytes=4096)
    journal.open()
    for i in range(300):  # several segments: the last one is walked
        journal.append([(CHECK, bytes(40 + i % 7))])
    journal.close()
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE journal_applied (seq bigint NOT NULL)")
        conn.execute("INSERT INTO journal_applied VALUES (299)")
        session = SimpleNamespace(data_dir=tmp_path, dsn=fresh_dsn)
        probe = db.journal_probe(session)  # type: ignore[arg-type]
        assert not probe()
        conn.execute("UPDATE journal_applied SET seq = 300")
        assert probe()


def _cc_run(server: str, orders_per_s: float) -> db.Run:
    load = LoadResult(
        "unary", 1_000, 2, 2, 0.0, 10.0, 100, 100_000, 0, 10.0, orders_per_s,
        1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
    )  # fmt: skip
    return db.Run(server, load, catch_up_s=1.0)


def test_step_one_reports_the_engine_only_ceiling_beside_the_target_when_it_was_run() -> None:
    rep = db.DurableReport(settings={"duration": 10, "catch_up": "journal"})
    rep.check_cancel = [_cc_run("echo", 1_000_000.0), _cc_run("riskd", 500_000.0)]
    titles = [r.metric for r in db.rows_of(rep, 2_000.0)]
    assert not any("engine-only" in t for t in titles)  # --no-ceiling: no row, no nan
    rep.check_cancel.insert(1, _cc_run("engine-only", 800_000.0))
    rows = db.rows_of(rep, 2_000.0)
    target, ceiling = rows[0], rows[1]
    assert target.ratio == 0.5  # the target's ratio is still riskd against the echo
    assert "engine-only" in ceiling.metric and ceiling.ratio == 0.8
    assert "riskd serve / engine-only 0.62" in ceiling.baseline


def _stream_run(server: str, p99_us: float) -> db.Run:
    load = LoadResult(
        "stream", 1, 2, 4, 2_000.0, 10.0, 20_000, 20_000, 0, 2_000.0, 2_000.0,
        100.0, 100.0, p99_us, p99_us, p99_us, 1.0,
    )  # fmt: skip
    return db.Run(server, load)


def test_step_two_reports_the_engine_only_stream_p99_beside_the_target_when_it_was_run() -> None:
    rep = db.DurableReport(settings={"duration": 10})
    rep.stream = [_stream_run("echo", 2_000.0), _stream_run("riskd", 3_000.0)]
    assert not any("engine-only" in r.metric for r in db.rows_of(rep, 2_000.0))
    rep.stream.insert(1, _stream_run("engine-only", 2_400.0))
    target, ceiling = db.rows_of(rep, 2_000.0)
    assert target.ratio == 1.5  # still riskd against the echo
    assert "engine-only" in ceiling.metric and ceiling.ratio == 1.2
    assert "riskd serve / engine-only 1.25" in ceiling.baseline
