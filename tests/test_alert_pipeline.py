"""The alert pipeline without a server: an engine with the pipeline's intake, drained by hand."""

from __future__ import annotations

import numpy as np

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.dedupe import Deduper
from riskd_server.alerts.history import AlertHistory
from riskd_server.alerts.model import AlertFilter
from riskd_server.alerts.pipeline import AlertPipeline
from riskd_server.alerts.stats import AlertStats
from riskd_server.engine import Engine
from riskd_server.limits import Limit


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def make(capacity: int = 64, window: float = 10.0) -> tuple[Engine, AlertPipeline, Clock, list]:
    clock = Clock()
    engine = Engine(wall_clock=clock)
    pipeline = AlertPipeline(
        engine.accounts, engine.symbols, AlertHistory(1000), Deduper(window, 1000), AlertStats(),
        intake_capacity=capacity, clock=clock,
    )  # fmt: skip
    sent: list = []
    pipeline.add_output(sent.extend)
    engine.alert_intake = pipeline.intake
    engine.update_prices(["S"], [10.0])
    engine.upsert_limits([Limit(limit_id="q", kind=1, threshold=5.0)])
    return engine, pipeline, clock, sent


def reject(engine: Engine, ids: list[str], account: str = "A") -> None:
    n = len(ids)
    engine.check_orders(
        ids, [account] * n, ["S"] * n, np.ones(n, dtype=np.int64), np.full(n, 10.0), np.full(n, 10.0)
    )


def test_a_batch_of_repeats_is_one_alert_now_and_one_summary_when_the_window_closes() -> None:
    engine, pipeline, clock, sent = make()
    reject(engine, [f"o{i}" for i in range(1000)])
    pipeline.run_once()
    checks = [a for a in sent if a.kind == pb.ALERT_KIND_CHECK_REJECT]
    assert [(a.count, a.summary, a.client_order_id) for a in checks] == [(1, False, "o0")]
    clock.now += 11
    pipeline._emit(pipeline.dedupe.due(clock.now))
    summary = [a for a in sent if a.kind == pb.ALERT_KIND_CHECK_REJECT][-1]
    assert (summary.summary, summary.count, summary.client_order_id) == (True, 999, "o999")
    assert [a.seq for a in sent] == list(range(1, len(sent) + 1))


def test_an_overflowing_intake_loses_the_oldest_events_and_says_how_many() -> None:
    engine, pipeline, _, sent = make(capacity=3)
    pipeline.run_once()  # the limit change
    sent.clear()
    for i in range(10):
        reject(engine, [f"x{i}", f"y{i}"], account=f"acct{i}")
    pipeline.run_once()
    lost = [a for a in sent if a.kind == pb.ALERT_KIND_ALERTS_LOST]
    assert len(lost) == 1 and lost[0].severity == pb.SEVERITY_CRITICAL
    assert lost[0].observed == 14 and "7 engine event(s)" in lost[0].message
    assert {a.account for a in sent if a.kind == pb.ALERT_KIND_CHECK_REJECT} == {"acct7", "acct8", "acct9"}
    assert pipeline.stats_snapshot().lost_occurrences == 14


def test_names_with_control_characters_are_escaped_in_messages() -> None:
    engine, pipeline, _, sent = make()
    reject(engine, ["bad\x00id\n"])
    pipeline.run_once()
    (alert,) = [a for a in sent if a.kind == pb.ALERT_KIND_CHECK_REJECT]
    assert alert.client_order_id == "bad\\x00id\\n" and "\x00" not in alert.message


def test_history_holds_what_went_out() -> None:
    engine, pipeline, _, sent = make()
    reject(engine, ["a1"])
    engine.set_trading_state("", 3, "firm halt")
    pipeline.run_once()
    page, _ = pipeline.history.query(AlertFilter(), 0, 10)
    assert [a.seq for a in page] == [a.seq for a in reversed(sent)]
    firm = page[0]
    assert (firm.kind, firm.severity, firm.account) == (pb.ALERT_KIND_TRADING_STATE, pb.SEVERITY_CRITICAL, "")
    assert "firm HALTED" in firm.message


def wire_request(ids: list[str], accounts: list[str]) -> bytes:
    n = len(ids)
    batch = pb.OrderBatch(
        client_order_id=ids,
        account=accounts,
        symbol=["S"] * n,
        side=[1] * n,
        quantity=[10.0] * n,
        price=[10.0] * n,
    )
    return pb.CheckOrdersRequest(orders=batch).SerializeToString()


def test_batches_from_the_wire_raise_the_alerts_a_batch_of_strs_raises() -> None:
    """The servicer's parsed batches (ids as spans of the request, or one order) and check_orders'
    lists give the same alerts, order ids and counts."""
    from riskd_server.wire.request import OneOrder, parse_check_request

    ids = [f"order-{i:04d}\x07" if i == 3 else f"order-{i:04d}" for i in range(40)]
    accounts = ["A" if i % 3 else "B" for i in range(40)]
    got = []
    for wire in (True, False):
        engine, pipeline, clock, sent = make()
        pipeline.run_once()  # the limit change
        sent.clear()
        if wire:
            parsed = parse_check_request(wire_request(ids, accounts))
            assert not isinstance(parsed, OneOrder)
            engine.check_parsed(parsed)
            one = parse_check_request(wire_request(["solo"], ["C"]))
            assert isinstance(one, OneOrder)
            engine.check_parsed(one)
        else:
            n = len(ids)
            engine.check_orders(
                ids, accounts, ["S"] * n, np.ones(n, np.int64), np.full(n, 10.0), np.full(n, 10.0)
            )
            reject(engine, ["solo"], account="C")
        pipeline.run_once()
        clock.now += 11
        pipeline._emit(pipeline.dedupe.due(clock.now))
        got.append([(a.account, a.client_order_id, a.count, a.summary, a.message) for a in sent])
    assert got[0] == got[1]
    assert [row[:4] for row in got[0]] == [
        ("B", "order-0000", 1, False),
        ("A", "order-0001", 1, False),
        ("B", "order-0003\\x07", 1, False),  # an invalid id: its own key, escaped
        ("C", "solo", 1, False),
        ("B", "order-0039", 12, True),
        ("A", "order-0038", 25, True),
    ]


def test_every_group_of_a_batch_is_counted_once_in_the_statistics() -> None:
    engine, pipeline, clock, _ = make()
    pipeline.run_once()  # the limit change: one alert, no account
    before = pipeline.stats.snapshot(clock.now)[0]
    for _ in range(2):  # the second batch: every key a repeat
        ids = [f"b{clock.now}-{i}" for i in range(5)]
        accounts = ["A", "A", "B", "A", "B"]
        engine.check_orders(
            ids, accounts, ["S"] * 5, np.ones(5, np.int64), np.full(5, 10.0), np.full(5, 10.0)
        )
        pipeline.run_once()
        clock.now += 0.5
    after = pipeline.stats.snapshot(clock.now)[0]
    assert after.total - before.total == 10
    assert dict(after.top_accounts) == {"A": 6, "B": 4}
    assert dict(after.by_check)[1] == 10  # check 1: the quantity limit
    assert pipeline.stats.raised - 1 == 4  # two keys (A, B) a batch, counted as one alert each


def test_a_cancel_of_an_unknown_order_is_routine_and_a_fill_of_one_is_an_alert() -> None:
    engine, pipeline, _, sent = make()
    pipeline.run_once()  # the limit change
    sent.clear()
    engine.report_executions(
        ["never1", "never2"], [pb.EXEC_TYPE_CANCELED, pb.EXEC_TYPE_FILL], [0.0, 1.0], [0.0, 10.0]
    )
    pipeline.run_once()
    assert [(a.kind, a.client_order_id) for a in sent] == [(pb.ALERT_KIND_UNKNOWN_FILL, "never2")]
