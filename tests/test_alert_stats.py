"""alerts.stats against brute-force window sums over the list of (time, alert) added so far."""

from __future__ import annotations

import math
from collections import Counter

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.model import Alert
from riskd_server.alerts.stats import AlertStats, WindowStats

CHECK_KINDS = (pb.ALERT_KIND_CHECK_REJECT, pb.ALERT_KIND_CHECK_WARNING)
KINDS = [*CHECK_KINDS, pb.ALERT_KIND_OVERFILL, pb.ALERT_KIND_TRADING_STATE]
ACCOUNTS = ["", "A", "B", "C", "D", "E"]

alerts = st.builds(
    Alert,
    seq=st.just(0),
    time=st.just(0.0),
    severity=st.just(pb.SEVERITY_WARNING),
    kind=st.sampled_from(KINDS),
    check=st.integers(0, 4),
    account=st.sampled_from(ACCOUNTS),
    count=st.sampled_from([1, 1, 2, 5]),
)
# Steps inside a bucket, across buckets, and past every window at once.
steps = st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.9, 3.0, 7.0, 13.0, 31.0, 200.0])


def reference(
    added: list[tuple[float, Alert]], now: float, seconds: int, width: float
) -> tuple[int, Counter, Counter]:
    n = round(seconds / width)
    head = math.floor(now / width)
    total, by_check, by_account = 0, Counter(), Counter()
    for t, a in added:
        if head - n < math.floor(t / width) <= head:
            total += a.count
            by_check[a.check if a.kind in CHECK_KINDS else 0] += a.count
            if a.account:
                by_account[a.account] += a.count
    return total, by_check, by_account


def check_window(got: WindowStats, total: int, by_check: Counter, by_account: Counter, top: int):
    assert got.total == total
    assert got.by_check == sorted(by_check.items(), key=lambda kv: (-kv[1], kv[0]))
    assert got.accounts == len(by_account)
    assert len(got.top_accounts) == min(top, len(by_account))
    assert [c for _, c in got.top_accounts] == sorted(by_account.values(), reverse=True)[:top]
    assert all(by_account[a] == c for a, c in got.top_accounts)


WINDOWS, WIDTHS = (4, 12, 30), (1.0, 3.0, 5.0)


@settings(max_examples=300)
@given(
    events=st.lists(st.tuples(steps, st.one_of(alerts, st.none())), max_size=80),
    top=st.integers(1, 4),
)
def test_windows_against_brute_force_sums(events: list, top: int) -> None:
    """A None event is a snapshot; every snapshot matches the brute-force sums of every window."""
    stats = AlertStats(WINDOWS, WIDTHS)
    added: list[tuple[float, Alert]] = []
    now = 10_000.0
    for step, alert in [*events, (0.0, None)]:
        now += step
        if alert is not None:
            stats.add(alert, now)
            added.append((now, alert))
            continue
        snap = stats.snapshot(now, top)
        assert [w.seconds for w in snap] == list(WINDOWS)
        for got, seconds, width in zip(snap, WINDOWS, WIDTHS, strict=True):
            check_window(got, *reference(added, now, seconds, width), top)
        for window in stats._windows:  # running maps hold no zero entries, buckets no stale counts
            assert 0 not in window.by_check.values() and 0 not in window.by_account.values()
            assert window.total == sum(b.total for b in window.buckets)
    assert stats.raised == len(added)
    assert stats.occurrences == sum(a.count for _, a in added)


def test_default_windows_and_memory_bounded_by_the_last_hour() -> None:
    stats = AlertStats()
    t0 = 1_699_999_200.0  # on an hour boundary: every window's current bucket is full
    for i in range(3_000):  # 3,000 accounts over 50 minutes
        stats.add(Alert(0, 0.0, 2, pb.ALERT_KIND_CHECK_REJECT, 1 + i % 3, f"acct{i}"), t0 + i)
    one_min, quarter, hour = stats.snapshot(t0 + 2_999, top=3)
    assert (one_min.seconds, quarter.seconds, hour.seconds) == (60, 900, 3600)
    assert (one_min.total, one_min.accounts) == (60, 60)
    assert (quarter.total, hour.total) == (900, 3000)
    assert hour.top_accounts == [("acct0", 1), ("acct1", 1), ("acct2", 1)]
    assert hour.by_check == [(1, 1000), (2, 1000), (3, 1000)]
    # An hour of quiet later, nothing is held: no map keeps an account that went quiet.
    quiet = stats.snapshot(t0 + 2_999 + 3_600)
    assert [(w.total, w.accounts, w.by_check, w.top_accounts) for w in quiet] == [(0, 0, [], [])] * 3
    for window in stats._windows:
        assert not window.by_account and not window.by_check
        assert all(not b.by_account and not b.by_check and not b.total for b in window.buckets)
    assert (stats.raised, stats.occurrences) == (3_000, 3_000)


def test_non_check_alerts_count_under_check_zero_and_accountless_alerts_not_per_account() -> None:
    stats = AlertStats((60,), (1.0,))
    stats.add(Alert(0, 0.0, 3, pb.ALERT_KIND_BREAKER_OPEN, check=5, count=3), 10.0)
    stats.add(Alert(0, 0.0, 2, pb.ALERT_KIND_CHECK_REJECT, check=5, account="A"), 10.0)
    (window,) = stats.snapshot(10.0)
    assert window == WindowStats(60, 4, [(0, 3), (5, 1)], [("A", 1)], 1)


def test_a_late_now_counts_in_the_newest_bucket() -> None:
    stats = AlertStats((10,), (1.0,))
    stats.add(Alert(0, 0.0, 2, 1, 1, "A"), 100.0)
    stats.add(Alert(0, 0.0, 2, 1, 1, "A"), 50.0)  # earlier than the last now
    assert stats.snapshot(109.0)[0].total == 2
    assert stats.snapshot(110.0)[0].total == 0  # both expire with the bucket of 100


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="whole number"):
        AlertStats((60,), (7.0,))
    with pytest.raises(ValueError, match="one width per window"):
        AlertStats((60, 900), (1.0,))
