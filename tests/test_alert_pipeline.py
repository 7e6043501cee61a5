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
