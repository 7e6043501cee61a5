"""Sliding-window alert statistics: counts per check and per account over 1 min, 15 min and 1 h.

Pure logic (no I/O, no clock: every call is given ``now`` in seconds). Each window is a ring of
fixed time buckets (60 by default: 1 s, 15 s and 60 s wide) plus running totals. ``add`` counts an
alert into the current bucket and the running totals, O(1); when time moves into a new bucket,
the buckets that fell out of the window are subtracted from the running totals and cleared, so
each count is added once and subtracted once (amortised O(1) per alert), and history is never
rescanned. Running maps drop entries that reach zero: memory is bounded by the checks and
accounts seen inside the longest window.

A window of n buckets of width b covers the current bucket and the n - 1 before it, i.e. alerts
counted at times t with floor(t / b) in (floor(now / b) - n, floor(now / b)]: between
(n - 1) * b and n * b seconds back. ``now`` should not go backwards; an earlier ``now`` than the
last one counts in the newest bucket.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from riskd.v1 import risk_pb2 as pb

from .model import Alert

__all__ = ["AlertStats", "WindowStats"]

DEFAULT_WINDOWS = (60, 900, 3600)
DEFAULT_BUCKETS = 60
_CHECK_KINDS = frozenset({pb.ALERT_KIND_CHECK_REJECT, pb.ALERT_KIND_CHECK_WARNING})


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One window's counts (occurrences: an alert adds its ``count``)."""

    seconds: int
    total: int
    by_check: list[tuple[int, int]]  # (check, count), most first; 0 = alerts that are not checks'
    top_accounts: list[tuple[str, int]]  # (account, count), most first
    accounts: int  # distinct accounts with alerts in the window


def _merge(running: dict, counts: Mapping) -> None:
    get = running.get
    for name, count in counts.items():
        running[name] = get(name, 0) + count


def _subtract(running: dict, bucket: dict) -> None:
    for name, count in bucket.items():
        left = running[name] - count
        if left:
            running[name] = left
        else:
            del running[name]
    bucket.clear()


class _Bucket:
    __slots__ = ("by_account", "by_check", "total")

    def __init__(self) -> None:
        self.total = 0
        self.by_check: dict[int, int] = {}
        self.by_account: dict[str, int] = {}


class _Window:
    """n buckets of ``width`` seconds and the running totals over them."""

    __slots__ = ("buckets", "by_account", "by_check", "head", "n", "seconds", "total", "width")

    def __init__(self, seconds: int, width: float) -> None:
        n = round(seconds / width)
        if n < 1 or not math.isclose(n * width, seconds):
            raise ValueError(f"a {seconds} s window is not a whole number of {width} s buckets")
        self.seconds = seconds
        self.width = float(width)
        self.n = n
        self.head = -(2**62)  # absolute index of the newest bucket
        self.buckets = [_Bucket() for _ in range(n)]
        self.total = 0
        self.by_check: dict[int, int] = {}
        self.by_account: dict[str, int] = {}

    def bucket_of(self, now: float) -> int:
        """The absolute index of ``now``'s bucket."""
        return math.floor(now / self.width)

    def advance(self, now: float) -> _Bucket:
        """Move the window to ``now``'s bucket (expiring what fell out) and return that bucket."""
        idx = math.floor(now / self.width)
        head = self.head
        if idx > head:
            n = self.n
            if idx - head >= n:  # everything fell out
                if self.total:
                    for bucket in self.buckets:
                        bucket.total = 0
                        bucket.by_check.clear()
                        bucket.by_account.clear()
                    self.total = 0
                    self.by_check.clear()
                    self.by_account.clear()
            else:
                for i in range(head + 1, idx + 1):
                    bucket = self.buckets[i % n]
                    if bucket.total:
                        self.total -= bucket.total
                        bucket.total = 0
                        _subtract(self.by_check, bucket.by_check)
                        _subtract(self.by_account, bucket.by_account)
            self.head = head = idx
        return self.buckets[head % self.n]

    def add(self, now: float, total: int, by_check: Mapping[int, int], by_account: Mapping[str, int]) -> None:
        """``total`` occurrences at ``now``, split per check and per account (accounts may sum to
        less: an alert without an account counts in no account)."""
        bucket = self.advance(now)
        bucket.total += total
        self.total += total
        _merge(bucket.by_check, by_check)
        _merge(self.by_check, by_check)
        _merge(bucket.by_account, by_account)
        _merge(self.by_account, by_account)

    def snapshot(self, now: float, top: int) -> WindowStats:
        self.advance(now)
        return WindowStats(
            seconds=self.seconds,
            total=self.total,
            by_check=sorted(self.by_check.items(), key=lambda kv: (-kv[1], kv[0])),
            top_accounts=heapq.nlargest(top, self.by_account.items(), key=itemgetter(1)),
            accounts=len(self.by_account),
        )


class AlertStats:
    """Alert counts per check and per account over sliding windows, and totals since start.

    Counts arriving within the same bucket of every window are summed in a pending set first and
    added to the windows when time moves to another bucket, or when a snapshot is asked for: under
    a reject flood hundreds of batches a second each cost a merge into two small dicts, not one
    into every window's bucket and running totals (measured: most of the alert path's statistics
    cost)."""

    __slots__ = (
        "_pending_account",
        "_pending_at",
        "_pending_check",
        "_pending_key",
        "_windows",
        "occurrences",
        "raised",
    )

    def __init__(
        self,
        windows: Sequence[int] = DEFAULT_WINDOWS,
        bucket_seconds: Sequence[float] | None = None,
    ) -> None:
        """``bucket_seconds``: each window's bucket width (default: the window / 60)."""
        if bucket_seconds is None:
            bucket_seconds = [w / DEFAULT_BUCKETS for w in windows]
        if len(bucket_seconds) != len(windows):
            raise ValueError("bucket_seconds needs one width per window")
        self._windows = [_Window(w, b) for w, b in zip(windows, bucket_seconds, strict=True)]
        self.raised = 0  # alerts added since start
        self.occurrences = 0  # their counts summed (a summary adds its repeats)
        # Not yet in the windows: counts at times whose bucket in every window is _pending_key.
        self._pending_key: tuple[int, ...] = ()
        self._pending_at = 0.0
        self._pending_check: dict[int, int] = {}
        self._pending_account: dict[str, int] = {}

    def add(self, alert: Alert, now: float, count: int | None = None) -> None:
        """Count ``alert`` at ``now``: ``count`` occurrences (default ``alert.count``; a group's
        first alert with its repeats' counts, so no alert is copied to carry their sum)."""
        n = alert.count if count is None else count
        self.count(alert.check if alert.kind in _CHECK_KINDS else 0, alert.account, n, now)

    def count(self, check: int, account: str, count: int, now: float) -> None:
        """What add() counts of an alert, without the alert (a dedupe repeat: none is made);
        ``check`` 0 for an alert that is not a check's."""
        self.count_many(1, {check: count}, {account: count} if account else {}, now)

    def count_many(
        self, alerts: int, by_check: Mapping[int, int], by_account: Mapping[str, int], now: float
    ) -> None:
        """``alerts`` alerts (or dedupe repeats) at ``now`` whose occurrences sum to ``by_check``
        per check (0: not a check's) and to ``by_account`` per account (alerts without an account
        in none): a checked batch's alert keys counted at once."""
        self.raised += alerts
        self.occurrences += sum(by_check.values())
        key = tuple([window.bucket_of(now) for window in self._windows])
        if key != self._pending_key:
            self._flush()
            self._pending_key = key
            self._pending_at = now
        _merge(self._pending_check, by_check)
        _merge(self._pending_account, by_account)

    def _flush(self) -> None:
        by_check, by_account = self._pending_check, self._pending_account
        if not by_check:
            return
        total = sum(by_check.values())
        for window in self._windows:
            window.add(self._pending_at, total, by_check, by_account)
        self._pending_check, self._pending_account = {}, {}

    def snapshot(self, now: float, top: int = 10) -> list[WindowStats]:
        """Each window's counts as of ``now``, with its ``top`` accounts."""
        self._flush()
        return [window.snapshot(now, top) for window in self._windows]
