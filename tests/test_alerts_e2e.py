"""Alerts end to end: the real server raises them from checks, executions, trading-state and limit
changes, dedupes repeats into summaries, keeps them queryable (ring, then PostgreSQL) and counts
them, across a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from fix_server import RiskdServer

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc
from riskd_client import Execution, LimitSpec, Order, RiskClient

WINDOW = 0.6


@pytest.fixture
def riskd_settings() -> dict[str, Any]:
    return {"alert_dedupe_window": WINDOW}


@pytest.fixture
def client(riskd_server: RiskdServer) -> Iterator[RiskClient]:
    with RiskClient(riskd_server.target, timeout=10.0) as c:
        yield c


@pytest.fixture
def stub(riskd_server: RiskdServer) -> Iterator[pb_grpc.RiskServiceStub]:
    with grpc.insecure_channel(riskd_server.target) as channel:
        yield pb_grpc.RiskServiceStub(channel)


def query(stub: pb_grpc.RiskServiceStub, **kwargs: Any) -> pb.QueryAlertsResponse:
    flt = kwargs.pop("filter", None)
    return stub.QueryAlerts(pb.QueryAlertsRequest(filter=flt, **kwargs), timeout=10)


def wait_for(stub: pb_grpc.RiskServiceStub, pred, timeout: float = 5.0, **kwargs: Any) -> list[pb.Alert]:
    deadline = time.monotonic() + timeout
    while True:
        alerts = list(query(stub, page_size=1000, **kwargs).alerts)
        if pred(alerts) or time.monotonic() > deadline:
            return alerts
        time.sleep(0.02)


def kinds(alerts: list[pb.Alert]) -> list[int]:
    return [a.kind for a in alerts]


def test_a_reject_goes_out_at_once_and_its_repeats_as_one_summary(client: RiskClient, stub) -> None:
    client.update_prices({"S": 10.0})
    client.upsert_limits([LimitSpec("qty-a", "MAX_ORDER_QUANTITY", 10, account="A")])
    client.check([Order(f"o{i}", "A", "S", "BUY", 20 + i, 10) for i in range(5)])
    for i in range(5, 8):
        client.check([Order(f"o{i}", "A", "S", "BUY", 20 + i, 10)])
    flt = pb.AlertFilter(kinds=[pb.ALERT_KIND_CHECK_REJECT])
    (first,) = wait_for(stub, lambda a: len(a) >= 1, filter=flt)
    assert (first.severity, first.check, first.account, first.symbol, first.limit_id) == (
        pb.SEVERITY_WARNING, pb.RISK_CHECK_MAX_ORDER_QUANTITY, "A", "S", "qty-a",
    )  # fmt: skip
    assert (first.count, first.summary, first.client_order_id) == (1, False, "o0")
    assert (first.observed, first.threshold) == (20, 10)
    assert "MAX_ORDER_QUANTITY" in first.message and "o0" in first.message
    alerts = wait_for(stub, lambda a: len(a) >= 2, timeout=WINDOW * 10, filter=flt)
    summary, again = alerts[0], alerts[1]
    assert again.seq == first.seq
    assert (summary.summary, summary.count, summary.client_order_id) == (True, 7, "o7")
    assert summary.observed == 27 and summary.seq > first.seq
    assert (summary.kind, summary.check, summary.account, summary.symbol, summary.limit_id) == (
        first.kind, first.check, first.account, first.symbol, first.limit_id,
    )  # fmt: skip


def test_warnings_state_changes_limits_and_fills(client: RiskClient, stub) -> None:
    client.update_prices({"S": 10.0})
    client.upsert_limits([LimitSpec("w", "MAX_ORDER_QUANTITY", 100, account="W", warn_fraction=0.5)])
    client.check([Order("w1", "W", "S", "BUY", 60, 10), Order("w2", "W", "S", "BUY", 10, 10)])
    client.set_trading_state("HALTED", "H", reason="fat finger")
    client.set_trading_state("ACTIVE", "H")
    client.check([Order("f1", "F", "S", "BUY", 5, 10)])
    client.report_executions(
        [Execution("f1", "FILL", 7, 10), Execution("nobody", "FILL", 1, 10), Execution("f1", "FILL", 1, 10)]
    )
    alerts = wait_for(stub, lambda a: pb.ALERT_KIND_LATE_FILL in kinds(a))
    by_kind: dict[int, list[pb.Alert]] = {}
    for a in reversed(alerts):
        by_kind.setdefault(a.kind, []).append(a)
    (limit,) = by_kind[pb.ALERT_KIND_LIMIT_CHANGED]
    assert (limit.severity, limit.limit_id, limit.account, limit.threshold) == (
        pb.SEVERITY_INFO,
        "w",
        "W",
        100,
    )
    (warn,) = by_kind[pb.ALERT_KIND_CHECK_WARNING]
    assert (warn.severity, warn.client_order_id, warn.observed, warn.threshold) == (
        pb.SEVERITY_INFO,
        "w1",
        60,
        100,
    )
    halted, active = by_kind[pb.ALERT_KIND_TRADING_STATE]  # never summarised: both at once
    assert (halted.severity, halted.account) == (pb.SEVERITY_CRITICAL, "H")
    assert "HALTED" in halted.message and "fat finger" in halted.message
    assert active.severity == pb.SEVERITY_INFO and "ACTIVE" in active.message
    (over,) = by_kind[pb.ALERT_KIND_OVERFILL]
    assert (over.severity, over.account, over.symbol, over.client_order_id) == (
        pb.SEVERITY_WARNING,
        "F",
        "S",
        "f1",
    )
    (unknown,) = by_kind[pb.ALERT_KIND_UNKNOWN_FILL]
    assert (unknown.client_order_id, unknown.account) == ("nobody", "")
    (late,) = by_kind[pb.ALERT_KIND_LATE_FILL]
    assert late.client_order_id == "f1"


def test_query_filters_and_pages_newest_first(client: RiskClient, stub) -> None:
    client.update_prices({"S": 10.0, "T": 5.0})
    client.upsert_limits([LimitSpec("q", "MAX_ORDER_QUANTITY", 1)])
    for i in range(6):  # distinct keys: one alert each
        client.check([Order(f"p{i}", f"acct{i % 3}", "ST"[i % 2], "BUY", 2, 10)])
    client.set_trading_state("HALTED", "acct0")
    everything = wait_for(stub, lambda a: len(a) >= 8)
    seqs = [a.seq for a in everything]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    rejects = pb.AlertFilter(kinds=[pb.ALERT_KIND_CHECK_REJECT])
    cases = [
        (pb.AlertFilter(accounts=["acct1"]), lambda a: a.account == "acct1"),
        (pb.AlertFilter(symbols=["T"]), lambda a: a.symbol == "T"),
        (pb.AlertFilter(min_severity=pb.SEVERITY_CRITICAL), lambda a: a.severity == pb.SEVERITY_CRITICAL),
        (pb.AlertFilter(checks=[pb.RISK_CHECK_MAX_ORDER_QUANTITY]), lambda a: a.check == 1),
        (rejects, lambda a: a.kind == pb.ALERT_KIND_CHECK_REJECT),
        (pb.AlertFilter(accounts=["acct0", "acct2"], symbols=["S"]), lambda a: a.account in ("acct0", "acct2") and a.symbol == "S"),
    ]  # fmt: skip
    for flt, pred in cases:
        got = list(query(stub, filter=flt, page_size=1000).alerts)
        assert got == [a for a in everything if pred(a)], flt
        assert got, flt
    pages, before = [], 0
    while True:
        page = query(stub, filter=rejects, page_size=4, before_seq=before)
        pages.extend(page.alerts)
        if not page.next_before_seq:
            break
        before = page.next_before_seq
    assert [a.seq for a in pages] == [a.seq for a in everything if a.kind == pb.ALERT_KIND_CHECK_REJECT]


def test_bad_queries_are_invalid_argument_naming_the_field(stub) -> None:
    for request, field in [
        (pb.QueryAlertsRequest(page_size=10_001), "page_size"),
        (pb.QueryAlertsRequest(filter=pb.AlertFilter(kinds=[pb.ALERT_KIND_OVERFILL, 99])), "filter.kinds[1]"),
        (pb.QueryAlertsRequest(filter=pb.AlertFilter(checks=[77])), "filter.checks[0]"),
        (pb.QueryAlertsRequest(filter=pb.AlertFilter(min_severity=9)), "filter.min_severity"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(grpc.RpcError) as info:
            stub.QueryAlerts(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith(field), info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.GetAlertStats(pb.GetAlertStatsRequest(top=1001), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "top" in info.value.details()


def test_stats_count_every_occurrence_per_check_and_account(client: RiskClient, stub) -> None:
    client.update_prices({"S": 10.0})
    client.upsert_limits([LimitSpec("q", "MAX_ORDER_QUANTITY", 1), LimitSpec("n", "MAX_ORDER_NOTIONAL", 1e9)])
    client.check([Order(f"x{i}", "BAD", "S", "BUY", 5, 10) for i in range(30)])
    client.check([Order(f"y{i}", "MEH", "S", "BUY", 5, 10) for i in range(4)])
    wait_for(stub, lambda a: len(a) >= 3)
    stats = stub.GetAlertStats(pb.GetAlertStatsRequest(top=1), timeout=10)
    assert [w.seconds for w in stats.windows] == [60, 900, 3600]
    for w in stats.windows:
        by_check = {c.check: c.count for c in w.by_check}
        assert by_check[pb.RISK_CHECK_MAX_ORDER_QUANTITY] == 34
        assert [(t.account, t.count) for t in w.top_accounts] == [("BAD", 30)]
        assert w.accounts == 2
    assert stats.occurrences >= 35 and stats.raised >= 3 and stats.lost == 0
    assert stats.last_seq >= stats.raised


@pytest.mark.parametrize("riskd_settings", [{"alert_dedupe_window": WINDOW, "alert_history": 4}])
def test_alerts_persist_page_past_the_ring_and_continue_after_restart(
    riskd_server: RiskdServer, riskd_settings: dict[str, Any]
) -> None:
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        client.update_prices({"S": 10.0})
        client.upsert_limits([LimitSpec("q", "MAX_ORDER_QUANTITY", 1)])
        for i in range(10):
            client.check([Order(f"r{i}", f"acct{i}", "S", "BUY", 2, 10)])
    with grpc.insecure_channel(riskd_server.target) as channel:
        stub = pb_grpc.RiskServiceStub(channel)
        ring = list(query(stub, page_size=4).alerts)
        assert len(ring) == 4
        assert riskd_server.run(riskd_server.running.writer.barrier(timeout=10)) is None  # type: ignore[union-attr]
        before = {a.seq: a for a in wait_for(stub, lambda a: len(a) >= 11)}  # 10 rejects + 1 limit change
        assert len(before) == 11 and sorted(before) == list(range(1, 12))
    riskd_server.restart()
    with grpc.insecure_channel(riskd_server.target) as channel:
        stub = pb_grpc.RiskServiceStub(channel)
        after = {a.seq: a for a in query(stub, page_size=100).alerts}
        assert after == before
        with RiskClient(riskd_server.target, timeout=10.0) as client:
            client.set_trading_state("HALTED", "acct1")
        newest = wait_for(stub, lambda a: a[0].seq == 12)[0]
        assert (newest.seq, newest.kind) == (12, pb.ALERT_KIND_TRADING_STATE)


def test_the_client_and_cli_query_and_count_alerts(
    riskd_server: RiskdServer, client: RiskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from riskd_client.cli import main

    client.update_prices({"S": 10.0})
    client.upsert_limits([LimitSpec("q", "MAX_ORDER_QUANTITY", 1)])
    for i in range(5):
        client.check([Order(f"c{i}", f"acct{i}", "S", "BUY", 2, 10)])
    client.set_trading_state("HALTED", "acct1", reason="why not")
    deadline = time.monotonic() + 5
    while len(client.query_alerts(page_size=100)) < 7 and time.monotonic() < deadline:
        time.sleep(0.02)
    page = client.query_alerts(kinds="check-reject", page_size=3)
    assert [a.client_order_id for a in page] == ["c4", "c3", "c2"]
    assert page.alerts[0].kind == "CHECK_REJECT" and page.alerts[0].check == "MAX_ORDER_QUANTITY"
    rest = client.query_alerts(kinds="check-reject", before_seq=page.next_before_seq)
    assert [a.client_order_id for a in rest] == ["c1", "c0"] and rest.next_before_seq == 0
    (halt,) = client.query_alerts(min_severity="critical")
    assert (halt.kind, halt.severity, halt.account) == ("TRADING_STATE", "CRITICAL", "acct1")
    stats = client.alert_stats(top=2)
    minute = stats.windows[0]
    assert minute.seconds == 60 and dict(minute.by_check)["MAX_ORDER_QUANTITY"] == 5
    assert len(minute.top_accounts) == 2 and minute.accounts == 5
    target = ["--target", riskd_server.target]
    assert main([*target, "alerts", "query", "--check", "max-order-quantity", "--limit", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "c4" in lines[0] and "c1" in lines[3]
    assert main([*target, "alerts", "query", "--severity", "critical", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert '"kind": "TRADING_STATE"' in line
    assert main([*target, "alerts", "stats", "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "last 1 min: 7 occurrence(s), 5 account(s)" in out and "MAX_ORDER_QUANTITY 5, other 2" in out
    assert main([*target, "alerts", "query", "--kind", "nonsense"]) == 2
