"""The email outbox and the digest text, without SMTP.

The outbox is checked against a plain list over random operations: its bound, which alerts it
drops (the oldest), the drop counts a digest reports, and that a failed send puts its alerts back
in order. The digest is checked for what a risk desk reads: counts by severity, the newest alert,
oldest-first listing, the dropped and remaining notes, one line per alert whatever the message.
"""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.digest import build_digest, clean, format_time, to_message
from riskd_server.alerts.model import CRITICAL, INFO, WARNING, Alert
from riskd_server.alerts.outbox import Outbox

SEQ_LINE = re.compile(r"^\[(\d+)\] ", re.MULTILINE)


def alert(seq: int, severity: int = CRITICAL, **kw: object) -> Alert:
    fields: dict = {"time": 1_700_000_000.0 + seq, "kind": pb.ALERT_KIND_TRADING_STATE, "message": f"a{seq}"}
    fields.update(kw)
    return Alert(seq=seq, severity=severity, **fields)


# ------------------------------------------------------------------------------ outbox vs a list


class ListOutbox:
    """The reference: a plain list, trimmed from the front."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: list[Alert] = []
        self.dropped = 0
        self.unreported = 0

    def trim(self) -> None:
        while len(self.items) > self.capacity:
            self.items.pop(0)
            self.dropped += 1
            self.unreported += 1

    def put(self, a: Alert) -> None:
        self.items.append(a)
        self.trim()

    def take(self, most: int) -> list[Alert]:
        taken, self.items = self.items[:most], self.items[most:]
        return taken

    def restore(self, taken: list[Alert]) -> None:
        self.items = taken + self.items
        self.trim()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 3)),
        st.tuples(st.just("send_ok"), st.integers(1, 6)),
        st.tuples(st.just("send_fail"), st.integers(1, 6)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 8), script=ops)
def test_outbox_matches_a_list(capacity: int, script: list[tuple[str, int]]) -> None:
    box, ref = Outbox(capacity), ListOutbox(capacity)
    seq = 0
    for op, n in script:
        if op == "put":
            for _ in range(n):
                seq += 1
                box.put(alert(seq))
                ref.put(alert(seq))
        else:
            reported = box.unreported
            taken = box.take(n)
            assert taken == ref.take(n)
            box.put(alert(seq + 1000))  # an alert arriving while the digest is out
            ref.put(alert(seq + 1000))
            if op == "send_ok":
                box.reported(reported)
                ref.unreported -= reported
            else:
                box.restore(taken)
                ref.restore(taken)
        assert box.peek_all() == ref.items
        assert len(box) <= capacity
        assert (box.dropped, box.unreported) == (ref.dropped, ref.unreported)


def test_outbox_drops_oldest_and_counts() -> None:
    box = Outbox(3)
    for seq in range(1, 6):
        box.put(alert(seq))
    assert [a.seq for a in box.peek_all()] == [3, 4, 5]
    assert (box.dropped, box.unreported) == (2, 2)
    taken = box.take(2)
    box.put(alert(6))
    box.put(alert(7))  # full again while 3 and 4 are out
    box.restore(taken)  # 3, 4 back in front; past the bound the oldest (3, 4) are dropped
    assert [a.seq for a in box.peek_all()] == [5, 6, 7]
    assert (box.dropped, box.unreported) == (4, 4)
    box.reported(3)
    assert box.unreported == 1


def test_outbox_refuses_zero_capacity() -> None:
    with pytest.raises(ValueError):
        Outbox(0)


# ------------------------------------------------------------------------------ digest text


def listed(body: str) -> list[int]:
    return [int(m) for m in SEQ_LINE.findall(body)]


def test_digest_subject_counts_by_severity_and_names_the_newest() -> None:
    alerts = [
        alert(
            7,
            WARNING,
            kind=pb.ALERT_KIND_CHECK_REJECT,
            account="ACC1",
            check=pb.RISK_CHECK_MAX_ORDER_QUANTITY,
        ),
        alert(8, CRITICAL, account="ACC2", symbol="AAPL", message="ACC2 halted by hand"),
        alert(9, WARNING),
        alert(12, CRITICAL, account="ACC3", message="ACC3 set REDUCING"),
    ]
    digest = build_digest(alerts)
    assert digest.subject == (
        "riskd: 4 alerts (2 CRITICAL, 2 WARNING); newest: CRITICAL TRADING_STATE ACC3: ACC3 set REDUCING"
    )
    assert listed(digest.body) == [7, 8, 9, 12]
    assert digest.body.startswith(
        "riskd alert digest: 4 alerts (2 CRITICAL, 2 WARNING), oldest first, seq 7 to 12.\n"
    )
    assert "dropped" not in digest.body and "queued" not in digest.body
    first = digest.body.splitlines()[2]
    assert first == (
        "[7] 2023-11-14 22:13:27.000Z WARNING CHECK_REJECT account=ACC1 check=MAX_ORDER_QUANTITY"
    )


def test_digest_reports_dropped_and_remaining() -> None:
    digest = build_digest([alert(1)], dropped=1, remaining=1_500, capacity=10_000, source="riskd@desk")
    assert digest.subject.startswith("riskd@desk: 1 alert (1 CRITICAL), 1 dropped, 1,500 more queued;")
    lines = digest.body.splitlines()
    assert (
        lines[1] == "1 older alert was dropped before this mail: the email outbox (10,000 alerts) was full."
    )
    assert lines[2] == "1,500 more alerts are queued for the next mail."
    assert (digest.dropped, digest.remaining) == (1, 1_500)


def test_digest_lists_every_field_and_keeps_one_line_per_alert() -> None:
    a = alert(
        3,
        WARNING,
        kind=pb.ALERT_KIND_CHECK_REJECT,
        check=pb.RISK_CHECK_MAX_ORDER_QUANTITY,
        account="ACC1",
        symbol="AAPL",
        limit_id="qty-cap",
        client_order_id="o-17",
        observed=120.0,
        threshold=100.0,
        count=5,
        summary=True,
        message="line one\r\nline two\x00",
    )
    digest = build_digest([a, alert(4, kind=999, severity=7)])
    lines = digest.body.splitlines()
    assert lines[2] == (
        "[3] 2023-11-14 22:13:23.000Z WARNING CHECK_REJECT account=ACC1 symbol=AAPL limit=qty-cap "
        "order=o-17 check=MAX_ORDER_QUANTITY observed=120 threshold=100 count=5 summary"
    )
    assert lines[3] == "    line one line two"
    assert lines[4].startswith("[4] 2023-11-14 22:13:24.000Z 7 999")  # values newer than the proto


@given(st.lists(st.text(max_size=300), min_size=1, max_size=5))
def test_subject_is_one_short_line_whatever_the_messages(messages: list[str]) -> None:
    alerts = [alert(i + 1, message=m, account=m[:20]) for i, m in enumerate(messages)]
    digest = build_digest(alerts)
    assert len(digest.subject) <= 180
    assert clean(digest.subject) == digest.subject
    assert listed(digest.body) == list(range(1, len(messages) + 1))
    message = to_message(digest, "Risk <risk@example.com>", ["desk@example.com"])
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert parsed["Subject"] == digest.subject
    assert parsed.get_content() == digest.body  # type: ignore[attr-defined]


def test_message_headers() -> None:
    digest = build_digest([alert(1)])
    message = to_message(digest, "Risk <risk@example.com>", ["a@example.com", "b@example.org"])
    assert message["From"] == "Risk <risk@example.com>"
    assert message["To"] == "a@example.com, b@example.org"
    assert message["Message-ID"].endswith("@example.com>")
    assert message["Auto-Submitted"] == "auto-generated"


def test_empty_digest_is_refused() -> None:
    with pytest.raises(ValueError):
        build_digest([])


def test_format_time() -> None:
    assert format_time(0.0) == "1970-01-01 00:00:00.000Z"
    assert format_time(1_700_000_000.25) == "2023-11-14 22:13:20.250Z"
    assert format_time(1e300).startswith("t=")
    assert INFO < WARNING < CRITICAL
