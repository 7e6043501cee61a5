"""Alert dedupe: the first alert of a key goes out at once, its repeats inside the window are
counted and go out as one summary when the window closes.

Pure logic (no I/O, no clock: every call is given ``now``, a monotonic time in seconds). A key's
window opens at its first occurrence and lasts ``window`` seconds, closed at its end
(``now >= opened + window`` is outside it). The map is bounded two ways:

- TTL: a key is removed as soon as its window has closed (at the next ``offer`` or ``due``);
- size: offering a new key while ``max_keys`` are held evicts the key whose window closes first
  (the heap's top, so O(log n)). Its repeats are not lost: their summary is emitted early, returned
  by the next ``due()`` call (``next_due()`` then says "now"), and ``evicted`` counts the eviction.

Every held key has exactly one heap entry (its deadline never moves while its window is open), so
the heap holds no stale entries and its size is the number of keys held.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from .model import Alert, AlertKey

__all__ = ["DedupeStats", "Deduper"]


@dataclass(frozen=True, slots=True)
class DedupeStats:
    """The dedupe map's state and its counters since start."""

    keys: int  # keys whose window is open
    repeats_pending: int  # repeats counted but not yet returned in a summary
    repeats: int  # repeats counted since start (occurrences that did not go out at once)
    evicted: int  # keys evicted by the size cap before their window closed
    summaries_emitted: int  # summaries returned by due()


@dataclass(slots=True)
class _Window:
    repeats: int = 0
    # The last repeat: the summary's severity, message, time, ...; or a function that makes it,
    # called only if the summary goes out (most repeats are overwritten by the next one).
    last: Alert | Callable[[], Alert] | None = None


class Deduper:
    """Counts repeats of an alert key inside a window; one summary per window with repeats."""

    __slots__ = (
        "_heap",
        "_open",
        "_order",
        "_pending",
        "_pending_repeats",
        "_pending_since",
        "_repeats",
        "evicted",
        "max_keys",
        "summaries_emitted",
        "window",
    )

    def __init__(self, window: float = 10.0, max_keys: int = 100_000) -> None:
        if not (window >= 0 and math.isfinite(window)):
            raise ValueError(f"window must be a finite number of seconds >= 0, not {window}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self.window = float(window)
        self.max_keys = max_keys
        self._open: dict[AlertKey, _Window] = {}
        self._heap: list[tuple[float, int, AlertKey]] = []  # (deadline, order, key), one per key
        self._order = 0  # ties between equal deadlines: the key offered first closes first
        self._pending: list[Alert] = []  # summaries due, returned by the next due()
        self._pending_since = math.inf  # the earliest time one of them became due
        self._pending_repeats = 0
        self._repeats = 0
        self.evicted = 0
        self.summaries_emitted = 0

    def offer(self, alert: Alert, now: float) -> bool:
        """True: send ``alert`` now (its key's first occurrence in a window). False: a repeat,
        counted into the summary its window's close will emit.

        An alert with ``count`` n stands for n occurrences (the pipeline groups a batch's
        occurrences per key): opening a window, its first occurrence goes out (the caller sends
        it with count 1) and the other n - 1 are repeats; inside a window, all n are repeats.
        """
        self._expire(now)
        key = alert.key
        win = self._open.get(key)
        if win is None:
            if len(self._open) >= self.max_keys:
                _, _, victim = heapq.heappop(self._heap)
                self._close(victim, now)
                self.evicted += 1
            win = self._open[key] = _Window()
            heapq.heappush(self._heap, (now + self.window, self._order, key))
            self._order += 1
            repeats = alert.count - 1
            first = True
        else:
            repeats = alert.count
            first = False
        self._count(win, repeats, alert)
        return first

    def repeat(self, key: AlertKey, count: int, last: Callable[[], Alert], now: float) -> bool:
        """``count`` more occurrences of ``key`` if its window is open (True), counted as offer()
        counts them, with ``last()`` making the last of them only if the summary goes out. False,
        nothing counted, when the key has no open window: the caller offers a real alert. Most
        occurrences under a sustained flood are repeats: they cost a dict lookup, not an Alert."""
        self._expire(now)
        win = self._open.get(key)
        if win is None:
            return False
        self._count(win, count, last)
        return True

    def _count(self, win: _Window, repeats: int, last: Alert | Callable[[], Alert]) -> None:
        if repeats > 0:
            win.repeats += repeats
            win.last = last
            self._pending_repeats += repeats
            self._repeats += repeats

    def due(self, now: float) -> list[Alert]:
        """Close every window that has ended by ``now``; return the summaries of those that had
        repeats (and of keys evicted early), in the order they became due. Each summary has the
        key's fields, ``count`` = the repeats, ``summary`` set, seq 0 (the pipeline numbers it),
        and severity, observed, threshold, message, client_order_id and time from the last repeat
        (the last alert that brought repeats)."""
        self._expire(now)
        out = self._pending
        if out:
            self._pending = []
            self._pending_since = math.inf
            self._pending_repeats -= sum(a.count for a in out)
            self.summaries_emitted += len(out)
        return out

    def next_due(self) -> float | None:
        """When ``due()`` next has something to do (a time already past when summaries wait),
        or None when no key is held."""
        if self._pending:
            return self._pending_since
        return self._heap[0][0] if self._heap else None

    def stats(self) -> DedupeStats:
        return DedupeStats(
            keys=len(self._open),
            repeats_pending=self._pending_repeats,
            repeats=self._repeats,
            evicted=self.evicted,
            summaries_emitted=self.summaries_emitted,
        )

    def __len__(self) -> int:
        return len(self._open)

    def _expire(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            self._close(key, deadline)

    def _close(self, key: AlertKey, since: float) -> None:
        win = self._open.pop(key)
        if win.repeats:
            last = win.last
            assert last is not None
            if not isinstance(last, Alert):
                last = last()
            self._pending.append(replace(last, seq=0, count=win.repeats, summary=True))
            self._pending_since = min(self._pending_since, since)
