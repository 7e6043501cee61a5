"""The client's alert-subscription logic without a server: names, the filter, decoding, where to
resume, the backoff, and the follow command's lines."""

from __future__ import annotations

import json

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskd.v1 import risk_pb2 as pb
from riskd_client import ALERT_KINDS, SEVERITIES, AlertBatch, AlertInfo
from riskd_client._alerts import (
    RETRYABLE,
    SEQ_HEADER,
    Backoff,
    Resume,
    alert_filter,
    decode_alert,
    decode_batch,
    kind_name,
    parse_alert_kind,
    parse_severity,
)
from riskd_client._cli_alerts import batch_lines, format_alert


def test_names_cover_every_enum_value() -> None:
    assert set(SEVERITIES.values()) == set(pb.Severity.values()) - {0}
    assert set(ALERT_KINDS.values()) == set(pb.AlertKind.values()) - {0}


@pytest.mark.parametrize("value", ["critical", "CRITICAL", "Severity_Critical", " critical ", 3, "3"])
def test_severity_by_name_or_number(value: object) -> None:
    assert parse_severity(value) == pb.SEVERITY_CRITICAL


@pytest.mark.parametrize("value", ["check-reject", "CHECK_REJECT", "alert_kind_check_reject", 1])
def test_kind_by_name_or_number(value: object) -> None:
    assert parse_alert_kind(value) == pb.ALERT_KIND_CHECK_REJECT


def test_filter_from_names_single_values_and_lists() -> None:
    flt = alert_filter("warning", "A1", ["AAPL", "MSFT"], "trading-state", ["max-position", 1])
    assert flt == pb.AlertFilter(
        min_severity=pb.SEVERITY_WARNING,
        accounts=["A1"],
        symbols=["AAPL", "MSFT"],
        kinds=[pb.ALERT_KIND_TRADING_STATE],
        checks=[pb.RISK_CHECK_MAX_POSITION, pb.RISK_CHECK_MAX_ORDER_QUANTITY],
    )
    assert alert_filter() == pb.AlertFilter()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_severity": "loud"}, "min_severity: 'loud' is not one of INFO, WARNING, CRITICAL"),
        ({"kinds": ["overfill", "underfill"]}, r"kinds\[1\]: 'underfill' is not one of"),
        ({"checks": ["max-positions"]}, r"checks\[0\]: 'max-positions' is not one of"),
    ],
)
def test_bad_names_are_value_errors_naming_the_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        alert_filter(**kwargs)


def _alert(**fields: object) -> pb.Alert:
    base: dict = {"seq": 7, "severity": pb.SEVERITY_WARNING, "kind": pb.ALERT_KIND_CHECK_REJECT}
    msg = pb.Alert(**(base | fields))
    msg.time.seconds, msg.time.nanos = 1_700_000_000, 250_000_000
    return msg


def test_decoding_gives_names_and_unix_time() -> None:
    info = decode_alert(_alert(check=pb.RISK_CHECK_MAX_POSITION, account="A", observed=2.5, count=3))
    assert (info.seq, info.time, info.severity, info.kind, info.check) == (
        7,
        1_700_000_000.25,
        "WARNING",
        "CHECK_REJECT",
        "MAX_POSITION",
    )
    assert (info.account, info.observed, info.count) == ("A", 2.5, 3)
    assert decode_alert(_alert()).check == ""  # no check
    unknown = pb.Alert.FromString(b"\x18\x09\x20\x63")  # severity 9, kind 99 from a newer server
    assert (decode_alert(unknown).severity, decode_alert(unknown).kind) == ("SEVERITY_9", "KIND_99")
    batch = decode_batch(pb.SubscribeAlertsResponse(alerts=[_alert(), _alert()], dropped=4, missed=2))
    assert len(batch) == 2 and (batch.dropped, batch.missed) == (4, 2)
    assert kind_name(pb.ALERT_KIND_SUBSCRIBER_DROPPED) == "SUBSCRIBER_DROPPED"


def test_resume_after_the_last_seq_seen_or_the_servers_seq_before_any() -> None:
    resume = Resume()
    assert not resume.connected(())  # a refused call: no header, still at 0
    assert resume.connected(((SEQ_HEADER, "41"),)) and resume.after_seq == 41
    assert resume.connected(((SEQ_HEADER, "90"),)) and resume.after_seq == 41  # only before any
    resume.saw(AlertBatch((), dropped=3))
    assert resume.after_seq == 41
    resume.saw(decode_batch(pb.SubscribeAlertsResponse(alerts=[_alert(), _alert(seq=8)])))
    assert resume.after_seq == 8
    pinned = Resume(after_seq=5)
    pinned.connected(((SEQ_HEADER, "90"),))
    assert pinned.after_seq == 5
    with pytest.raises(ValueError, match="negative"):
        Resume(-1)


def test_backoff_doubles_to_its_maximum_with_full_jitter_and_resets() -> None:
    top = Backoff(maximum=1.0, initial=0.1, rng=lambda: 1.0)
    assert [round(top.next(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    top.reset()
    assert top.next() == pytest.approx(0.1)
    assert Backoff(rng=lambda: 0.0).next() == 0.0
    with pytest.raises(ValueError, match="initial <= maximum"):
        Backoff(maximum=0.01, initial=0.1)


@given(st.integers(0, 200), st.floats(0, 1))
def test_backoff_stays_within_its_bounds(attempts: int, u: float) -> None:
    b = Backoff(maximum=10.0, initial=0.1, rng=lambda: u)
    b.attempts = attempts
    assert 0.0 <= b.next() <= 10.0


def test_retried_statuses_are_the_transient_ones() -> None:
    assert grpc.StatusCode.INVALID_ARGUMENT not in RETRYABLE
    assert grpc.StatusCode.UNIMPLEMENTED not in RETRYABLE
    assert {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    } <= RETRYABLE


def test_follow_lines() -> None:
    a = AlertInfo(
        seq=12,
        time=1_700_000_000.5,
        severity="WARNING",
        kind="CHECK_REJECT",
        check="MAX_POSITION",
        account="A1",
        symbol="AAPL",
        limit_id="p-1",
        message="MAX_POSITION: order o1 (A1 AAPL) rejected: 110 > 100",
        observed=110.0,
        threshold=100.0,
        count=3,
        summary=True,
        client_order_id="o1",
    )
    line = format_alert(a)
    assert line.split()[2:5] == ["#12", "WARNING", "CHECK_REJECT"]
    assert "CHECK_REJECT" in line and "A1  AAPL  MAX_POSITION: order o1" in line
    assert line.endswith("110/100  x3 (summary)")
    lines = batch_lines(AlertBatch((a,), dropped=2, missed=1), as_json=False)
    assert lines[:2] == [
        "-- missed 1 alert(s): the server no longer held them",
        "-- dropped 2 alert(s): this reader fell behind",
    ]
    docs = [json.loads(x) for x in batch_lines(AlertBatch((a,), dropped=2), as_json=True)]
    assert docs[0] == {"dropped": 2} and docs[1]["seq"] == 12 and docs[1]["check"] == "MAX_POSITION"
