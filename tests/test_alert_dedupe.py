"""alerts.dedupe against a brute-force simulation (a plain list of open windows, scanned in full
at every step), with the size cap, TTL expiry, windows closing between and at offers, and a
conservation law: every occurrence offered goes out once, at once or inside a summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.dedupe import Deduper
from riskd_server.alerts.model import Alert

KEYS = [
    (pb.ALERT_KIND_CHECK_REJECT, 3, "A", "X", ""),
    (pb.ALERT_KIND_CHECK_REJECT, 3, "A", "Y", ""),
    (pb.ALERT_KIND_CHECK_REJECT, 4, "A", "X", ""),
    (pb.ALERT_KIND_CHECK_WARNING, 3, "B", "X", "lim1"),
    (pb.ALERT_KIND_OVERFILL, 0, "B", "", ""),
]


def make(key_index: int, time: float, n: int, count: int = 1) -> Alert:
    kind, check, account, symbol, limit_id = KEYS[key_index]
    return Alert(
        seq=n + 1,
        time=time,
        severity=1 + n % 3,
        kind=kind,
        check=check,
        account=account,
        symbol=symbol,
        limit_id=limit_id,
        message=f"m{n}",
        observed=float(n),
        threshold=float(n % 5),
        count=count,
        client_order_id=f"o{n}",
    )


@dataclass
class RefWindow:
    key: tuple
    deadline: float
    order: int
    repeats: int = 0
    last: Alert | None = None


class Reference:
    """The dedupe rules done the slow, obvious way."""

    def __init__(self, window: float, max_keys: int) -> None:
        self.window, self.max_keys = window, max_keys
        self.open: list[RefWindow] = []
        self.out: list[tuple[float, Alert]] = []  # (when it became due, summary)
        self.order = 0
        self.evicted = 0

    def close(self, w: RefWindow, since: float) -> None:
        self.open.remove(w)
        if w.repeats:
            assert w.last is not None
            self.out.append((since, replace(w.last, seq=0, count=w.repeats, summary=True)))

    def expire(self, now: float) -> None:
        for w in sorted(self.open, key=lambda w: (w.deadline, w.order)):
            if w.deadline <= now:
                self.close(w, w.deadline)

    def offer(self, alert: Alert, now: float) -> bool:
        """An alert of count n is n occurrences: the first of a window goes out, the rest repeat."""
        self.expire(now)
        for w in self.open:
            if w.key == alert.key:
                w.repeats += alert.count
                w.last = alert
                return False
        if len(self.open) >= self.max_keys:
            self.close(min(self.open, key=lambda w: (w.deadline, w.order)), now)
            self.evicted += 1
        w = RefWindow(alert.key, now + self.window, self.order)
        if alert.count > 1:
            w.repeats, w.last = alert.count - 1, alert
        self.open.append(w)
        self.order += 1
        return True

    def due(self, now: float) -> list[Alert]:
        self.expire(now)
        out = [a for _, a in self.out]
        self.out = []
        return out

    def next_due(self) -> float | None:
        if self.out:
            return min(t for t, _ in self.out)
        return min((w.deadline for w in self.open), default=None)


ops = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 7.5]),  # time step
        st.one_of(st.integers(0, len(KEYS) - 1), st.just("due")),
        st.sampled_from([1, 1, 1, 2]),  # the offered alert's count
        st.booleans(),  # try repeat() first (the pipeline's path for a key it may have open)
    ),
    max_size=60,
)


@settings(max_examples=500)
@given(ops=ops, window=st.sampled_from([0.0, 1.0, 2.0, 3.0, 10.0]), max_keys=st.integers(1, 6))
def test_dedupe_against_the_reference(ops: list, window: float, max_keys: int) -> None:
    dedupe, ref = Deduper(window, max_keys), Reference(window, max_keys)
    now = 1000.0
    offered = sent_at_once = summarised = 0
    for n, (step, what, count, lazy) in enumerate(ops):
        now += step
        if what == "due":
            got = dedupe.due(now)
            assert got == ref.due(now)
            summarised += sum(a.count for a in got)
        else:
            alert = make(what, now, n, count)
            offered += count
            if lazy and dedupe.repeat(alert.key, count, lambda a=alert: a, now):
                assert ref.offer(alert, now) is False  # open in the reference too: all repeats
                continue
            out = dedupe.offer(alert, now)
            assert out == ref.offer(alert, now)
            sent_at_once += 1 if out else 0
        assert dedupe.next_due() == ref.next_due()
        stats = dedupe.stats()
        assert stats.keys == len(dedupe) == len(ref.open) <= max_keys
        assert stats.evicted == dedupe.evicted == ref.evicted
        assert stats.repeats_pending == sum(w.repeats for w in ref.open) + sum(a.count for _, a in ref.out)
        assert len(dedupe._heap) == len(dedupe._open)
    final = dedupe.due(math.inf)
    assert final == ref.due(math.inf)
    summarised += sum(a.count for a in final)
    # Nothing lost, nothing doubled: first occurrences went out at once, every repeat in a summary.
    assert offered == sent_at_once + summarised
    assert dedupe.stats().repeats == summarised and dedupe.stats().repeats_pending == 0
    assert len(dedupe) == 0 and dedupe.next_due() is None


def test_first_goes_out_repeats_are_summarised_when_the_window_closes() -> None:
    dedupe = Deduper(window=10.0)
    assert dedupe.offer(make(0, 100.0, 0), now=100.0)
    assert not dedupe.offer(make(0, 101.0, 1), now=101.0)
    assert dedupe.offer(make(1, 102.0, 2), now=102.0)  # another key: its own window
    last = make(0, 109.5, 3)
    assert not dedupe.offer(last, now=109.5)
    assert dedupe.next_due() == 110.0
    assert dedupe.due(109.99) == []
    (summary,) = dedupe.due(110.0)  # key 1 had no repeats: no summary, but it is gone too at 112
    assert summary == replace(last, seq=0, count=2, summary=True)
    assert summary.key == KEYS[0] and summary.message == "m3" and summary.time == 109.5
    assert dedupe.next_due() == 112.0 and dedupe.due(112.0) == [] and dedupe.next_due() is None
    # The window closed: the key's next occurrence goes out at once and opens a new window.
    assert dedupe.offer(make(0, 110.0, 4), now=110.0)
    stats = dedupe.stats()
    assert (stats.keys, stats.repeats, stats.summaries_emitted, stats.evicted) == (1, 2, 1, 0)


def test_a_window_that_closes_before_the_next_offer_still_emits_its_summary() -> None:
    dedupe = Deduper(window=5.0)
    assert dedupe.offer(make(0, 0.0, 0), now=0.0)
    assert not dedupe.offer(make(0, 1.0, 1), now=1.0)
    assert dedupe.offer(make(0, 6.0, 2), now=6.0)  # no due() call in between
    assert dedupe.next_due() == 5.0  # already past: the caller's timer fires at once
    (summary,) = dedupe.due(6.0)
    assert summary.count == 1 and summary.message == "m1"
    assert dedupe.next_due() == 11.0


def test_the_size_cap_evicts_the_earliest_window_and_emits_its_repeats_early() -> None:
    dedupe = Deduper(window=10.0, max_keys=2)
    assert dedupe.offer(make(0, 0.0, 0), now=0.0)
    assert not dedupe.offer(make(0, 0.5, 1), now=0.5)
    assert dedupe.offer(make(1, 1.0, 2), now=1.0)
    assert dedupe.offer(make(2, 2.0, 3), now=2.0)  # full: key 0 (closes at 10) is evicted
    assert dedupe.evicted == 1 and len(dedupe) == 2
    assert dedupe.next_due() == 2.0  # its summary waits for the next due(), due now
    (summary,) = dedupe.due(2.0)
    assert summary.key == KEYS[0] and summary.count == 1 and summary.summary
    assert dedupe.offer(make(0, 3.0, 4), now=3.0)  # evicted: its next occurrence goes out again
    assert dedupe.evicted == 2  # key 1 (closes at 11) made room; it had no repeats, no summary
    assert dedupe.due(3.0) == [] and dedupe.stats().evicted == 2


def test_a_group_opening_a_window_sends_one_occurrence_and_counts_the_rest() -> None:
    """The pipeline offers a batch's occurrences of one key as one alert with count n."""
    dedupe = Deduper(window=10.0)
    group = make(0, 0.0, 0, count=10_000)
    assert dedupe.offer(group, now=0.0)  # goes out (as count 1); 9,999 repeats wait
    assert dedupe.stats().repeats_pending == 9_999
    later = make(0, 3.0, 1, count=5)
    assert not dedupe.offer(later, now=3.0)
    (summary,) = dedupe.due(10.0)
    assert summary == replace(later, seq=0, count=10_004, summary=True)
    assert dedupe.offer(make(1, 11.0, 2), now=11.0) and dedupe.due(30.0) == []  # count 1: nothing waits


def test_a_repeat_is_counted_without_its_alert_which_is_made_only_for_the_summary() -> None:
    """Deduper.repeat: the pipeline's path under a flood; only the last repeat's alert is made."""
    dedupe = Deduper(window=10.0)
    made: list[int] = []

    def maker(n: int):
        def make_it() -> Alert:
            made.append(n)
            return make(0, float(n), n, count=3)

        return make_it

    assert not dedupe.repeat(KEYS[0], 3, maker(0), now=0.0)  # no open window: nothing counted
    assert dedupe.stats().repeats == 0 and len(dedupe) == 0
    assert dedupe.offer(make(0, 0.0, 0), now=0.0)
    for n in range(1, 6):
        assert dedupe.repeat(KEYS[0], 3, maker(n), now=float(n))
    assert dedupe.stats().repeats_pending == 15 and made == []
    (summary,) = dedupe.due(10.0)
    assert made == [5] and summary == replace(make(0, 5.0, 5, count=3), seq=0, count=15, summary=True)
    assert not dedupe.repeat(KEYS[0], 1, maker(6), now=10.0)  # closed: the caller offers again


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="window"):
        Deduper(window=-1.0)
    with pytest.raises(ValueError, match="window"):
        Deduper(window=math.nan)
    with pytest.raises(ValueError, match="max_keys"):
        Deduper(max_keys=0)
