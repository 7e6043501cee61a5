"""alerts.history against a plain reference: the last ``capacity`` alerts of a list, filtered
with AlertFilter.matches.

Capacities are small and the alert streams long, so the ring wraps many times; seqs are dense
or with gaps; filters mix empty parts, several values per part and values no alert has.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.history import AlertHistory
from riskd_server.alerts.model import Alert, AlertFilter

ACCOUNTS = ["", "A", "B", "C"]
SYMBOLS = ["", "X", "Y"]
KINDS = [pb.ALERT_KIND_CHECK_REJECT, pb.ALERT_KIND_CHECK_WARNING, pb.ALERT_KIND_OVERFILL]
CHECKS = [0, 1, 2, 3]
SEVERITIES = [pb.SEVERITY_INFO, pb.SEVERITY_WARNING, pb.SEVERITY_CRITICAL]

alert_fields = st.tuples(
    st.sampled_from(SEVERITIES),
    st.sampled_from(KINDS),
    st.sampled_from(CHECKS),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(SYMBOLS),
)
# Some filter values no alert has ("Z", "nobody", check 9).
filters = st.builds(
    AlertFilter,
    min_severity=st.sampled_from([0, *SEVERITIES]),
    accounts=st.frozensets(st.sampled_from([*ACCOUNTS, "nobody"]), max_size=3),
    symbols=st.frozensets(st.sampled_from([*SYMBOLS, "Z"]), max_size=2),
    kinds=st.frozensets(st.sampled_from(KINDS), max_size=2),
    checks=st.frozensets(st.sampled_from([*CHECKS, 9]), max_size=3),
)


@st.composite
def streams(draw: st.DrawFn, max_len: int = 60) -> list[Alert]:
    """Alerts with strictly increasing seqs: dense from 1, or with gaps."""
    fields = draw(st.lists(alert_fields, max_size=max_len))
    dense = draw(st.booleans())
    gaps = draw(st.lists(st.integers(1, 4), min_size=len(fields), max_size=len(fields)))
    seq = draw(st.integers(0, 3))
    out = []
    for (sev, kind, check, account, symbol), gap in zip(fields, gaps, strict=True):
        seq += 1 if dense else gap
        out.append(Alert(seq, float(seq), sev, kind, check, account, symbol, message=f"m{seq}"))
    return out


def fill(alerts: list[Alert], capacity: int) -> AlertHistory:
    history = AlertHistory(capacity)
    for i, alert in enumerate(alerts):
        evicted = history.append(alert)
        assert evicted == (alerts[i - capacity] if i >= capacity else None)
    return history


def distinct_index_values(held: list[Alert]) -> int:
    return sum(
        len({getattr(a, part) for a in held}) for part in ("severity", "account", "kind", "check", "symbol")
    )


def check_indexes(history: AlertHistory, held: list[Alert]) -> None:
    """Every index's live positions are exactly the held alerts with that value; no empty entry."""
    positions = range(history._next - len(held), history._next)
    for part, index in (
        ("severity", history._by_severity),
        ("account", history._by_account),
        ("kind", history._by_kind),
        ("check", history._by_check),
        ("symbol", history._by_symbol),
    ):
        want: dict = {}
        for pos, alert in zip(positions, held, strict=True):
            want.setdefault(getattr(alert, part), []).append(pos)
        got = {value: run.items[run.start :] for value, run in index.items()}
        assert got == want
        for run in index.values():  # compaction keeps the dead prefix at most half the list
            assert run.start * 2 <= len(run.items)


@settings(max_examples=300)
@given(alerts=streams(), capacity=st.integers(1, 12))
def test_append_evicts_the_oldest_and_cleans_every_index(alerts: list[Alert], capacity: int) -> None:
    history = fill(alerts, capacity)
    held = alerts[-capacity:]
    assert len(history) == len(held) and history.capacity == capacity
    assert history.last_seq == (alerts[-1].seq if alerts else 0)
    assert history.oldest_seq == (held[0].seq if held else 0)
    stats = history.stats()
    assert stats.evicted == history.evicted == max(0, len(alerts) - capacity)
    assert stats.index_values == distinct_index_values(held)
    check_indexes(history, held)


@settings(max_examples=300)
@given(
    alerts=streams(),
    capacity=st.integers(1, 12),
    flt=filters,
    before=st.integers(0, 80),
    page_size=st.integers(1, 6),
)
def test_query_one_page_against_the_reference(
    alerts: list[Alert], capacity: int, flt: AlertFilter, before: int, page_size: int
) -> None:
    history = fill(alerts, capacity)
    want = [a for a in reversed(alerts[-capacity:]) if flt.matches(a)]
    if before:
        want = [a for a in want if a.seq < before]
    page, next_before = history.query(flt, before, page_size)
    assert page == want[:page_size]
    assert next_before == (page[-1].seq if len(want) > page_size else 0)


@settings(max_examples=300)
@given(alerts=streams(), capacity=st.integers(1, 12), flt=filters, page_size=st.integers(1, 5))
def test_paging_visits_every_match_exactly_once(
    alerts: list[Alert], capacity: int, flt: AlertFilter, page_size: int
) -> None:
    history = fill(alerts, capacity)
    want = [a for a in reversed(alerts[-capacity:]) if flt.matches(a)]
    seen: list[Alert] = []
    before = 0
    for _ in range(len(want) + 2):
        page, before = history.query(flt, before, page_size)
        assert len(page) <= page_size
        assert page or not seen  # only a first page may be empty (no match at all)
        seen += page
        if not before:
            break
        assert len(page) == page_size  # a page short of full is the last one
    assert before == 0
    assert seen == want


@settings(max_examples=300)
@given(
    alerts=streams(),
    capacity=st.integers(1, 12),
    flt=filters,
    after_seq=st.integers(-1, 90),
    limit=st.one_of(st.none(), st.integers(0, 5)),
)
def test_after_replays_oldest_first_and_counts_missed(
    alerts: list[Alert], capacity: int, flt: AlertFilter, after_seq: int, limit: int | None
) -> None:
    history = fill(alerts, capacity)
    held = alerts[-capacity:]
    want = [a for a in held if a.seq > after_seq and flt.matches(a)]
    got, missed = history.after(after_seq, flt, limit)
    assert got == want[:limit]
    last = alerts[-1].seq if alerts else 0
    if held and after_seq < last:
        assert missed == len(range(max(after_seq, 0) + 1, held[0].seq))
    else:
        assert missed == 0


@settings(max_examples=200)
@given(
    fields=st.lists(alert_fields, min_size=1, max_size=60),
    capacity=st.integers(1, 12),
    after_seq=st.integers(0, 70),
)
def test_missed_with_dense_seqs_is_the_evicted_alerts_after_the_cursor(
    fields: list, capacity: int, after_seq: int
) -> None:
    alerts = [Alert(i + 1, 0.0, *f) for i, f in enumerate(fields)]
    history = fill(alerts, capacity)
    evicted_after = [a for a in alerts[:-capacity] if a.seq > after_seq]
    _, missed = history.after(after_seq, AlertFilter(), 0)
    assert missed == len(evicted_after)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), alert_fields, st.integers(1, 3)),
        st.tuples(st.just("query"), filters, st.integers(0, 3), st.integers(1, 4)),
        st.tuples(st.just("after"), filters, st.integers(0, 3), st.none()),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(ops=ops, capacity=st.integers(1, 10))
def test_interleaved_appends_and_reads(ops: list, capacity: int) -> None:
    """Reads between appends, with cursors relative to the newest seq, as the server sees them."""
    history = AlertHistory(capacity)
    alerts: list[Alert] = []
    seq = 0
    for op in ops:
        held = alerts[-capacity:]
        if op[0] == "append":
            seq += op[2]
            alerts.append(Alert(seq, 0.0, *op[1]))
            assert history.append(alerts[-1]) == (held[0] if len(held) == capacity else None)
        elif op[0] == "query":
            _, flt, back, page_size = op
            before = max(0, seq - back) if back else 0
            want = [a for a in reversed(held) if flt.matches(a) and (not before or a.seq < before)]
            page, next_before = history.query(flt, before, page_size)
            assert page == want[:page_size]
            assert next_before == (page[-1].seq if len(want) > page_size else 0)
        else:
            _, flt, back, _ = op
            got, _ = history.after(seq - back, flt)
            assert got == [a for a in held if a.seq > seq - back and flt.matches(a)]
    check_indexes(history, alerts[-capacity:])


def test_memory_stays_bounded_over_many_wraps() -> None:
    """100 capacities' worth of alerts, a new account every 7 alerts: the indexes hold only the
    values still in the ring, and their lists at most twice the live entries."""
    capacity = 500
    history = AlertHistory(capacity)
    for seq in range(1, 100 * capacity + 1):
        history.append(Alert(seq, 0.0, 1 + seq % 3, 1, seq % 5, f"acct{seq // 7}", f"s{seq % 11}"))
    assert len(history) == capacity and history.evicted == 99 * capacity
    held = [history._at(p) for p in range(history._next - capacity, history._next)]
    assert history.stats().index_values == distinct_index_values(held)
    assert len(history._by_account) == len({a.account for a in held}) <= capacity // 7 + 2
    for index in (history._by_account, history._by_symbol, history._by_severity):
        assert sum(len(run.items) for run in index.values()) <= 2 * capacity + len(index)


class CountingHistory(AlertHistory):
    """An AlertHistory that counts the index candidates its reads take: the entries scanned."""

    scanned = 0

    def _candidates(self, flt: AlertFilter, bound: int, newest_first: bool):  # type: ignore[no-untyped-def]
        candidates, exact = super()._candidates(flt, bound, newest_first)

        def counted():  # type: ignore[no-untyped-def]
            for pos in candidates:
                CountingHistory.scanned += 1
                yield pos

        return counted(), exact


def scanned(history: AlertHistory, read: str, **parts: object) -> tuple[list[int], int]:
    CountingHistory.scanned = 0
    flt = AlertFilter(**parts)  # type: ignore[arg-type]
    if read == "query":
        page, _ = history.query(flt, 0, 5)
    else:
        page, _ = history.after(0, flt, 5)
    return [a.seq for a in page], CountingHistory.scanned


def test_reads_scan_only_the_most_selective_index() -> None:
    """10,000 alerts over 1,000 accounts, check 3 on every 1,000th, CRITICAL on every 500th: each
    read scans its most selective part's entries (and one more match for the cursor), not the ring.
    """
    history = CountingHistory(10_000)
    for seq in range(1, 10_001):
        check = 3 if seq % 1000 == 0 else 1
        severity = pb.SEVERITY_CRITICAL if seq % 500 == 0 else pb.SEVERITY_INFO
        history.append(Alert(seq, 0.0, severity, 1, check, f"a{seq % 1000}", f"s{seq % 2}"))
    one_account = {"accounts": frozenset({"a7"})}
    assert scanned(history, "query", **one_account) == ([9007, 8007, 7007, 6007, 5007], 6)
    assert scanned(history, "after", **one_account) == ([7, 1007, 2007, 3007, 4007], 5)
    # Both symbols and both kinds match everything; the rare check decides the scan.
    rare_check = {
        "symbols": frozenset({"s0", "s1"}),
        "kinds": frozenset({1, 2}),
        "checks": frozenset({3}),
        "min_severity": pb.SEVERITY_INFO,
    }
    assert scanned(history, "query", **rare_check) == ([10000, 9000, 8000, 7000, 6000], 6)
    critical = {"min_severity": pb.SEVERITY_CRITICAL, "symbols": frozenset({"s0"})}
    assert scanned(history, "query", **critical) == ([10000, 9500, 9000, 8500, 8000], 6)
    two_accounts = {"accounts": frozenset({"a7", "a500"}), "symbols": frozenset({"s0"})}
    assert scanned(history, "query", **two_accounts) == ([9500, 8500, 7500, 6500, 5500], 11)
    # A value no alert has: nothing scanned at all.
    assert scanned(history, "query", accounts=frozenset({"nobody"}), kinds=frozenset({1})) == ([], 0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="capacity"):
        AlertHistory(0)
    history = AlertHistory(4)
    history.append(Alert(5, 0.0, 1, 1))
    with pytest.raises(ValueError, match="seq 5 is not above"):
        history.append(Alert(5, 0.0, 1, 1))
    with pytest.raises(ValueError, match="page_size"):
        history.query(AlertFilter(), 0, 0)
    with pytest.raises(ValueError, match="limit"):
        history.after(0, AlertFilter(), -1)


def test_empty_history() -> None:
    history = AlertHistory(3)
    assert history.query(AlertFilter(), 0, 10) == ([], 0)
    assert history.query(AlertFilter(accounts=frozenset({"A"})), 5, 10) == ([], 0)
    assert history.after(0, AlertFilter(), None) == ([], 0)
    assert (history.last_seq, history.oldest_seq, len(history)) == (0, 0, 0)
