"""The alert history: a ring of the last ``capacity`` alerts, indexed so a filtered page costs
O(matches scanned + page), never O(history).

Pure logic (no I/O, no asyncio). Every alert gets a *position* (how many alerts were appended
before it); its ring slot is ``position % capacity``. The indexes (by severity, account, kind,
check and symbol) keep, per value, the ascending positions of the alerts holding that value.
Positions are dense by construction, so the history never assumes the pipeline's seqs are dense:
a seq is turned into a position once per call (O(1) when the held seqs are consecutive, a bisect
over the ring otherwise), and from then on everything is positions.

Eviction is exact and O(1): the evicted alert is the oldest held, so it is the first live entry
of each of its five index lists; each list's start offset moves on by one, the list is compacted
when its dead prefix passes half its length, and an index value whose list empties is deleted.
Memory is therefore bounded by ``capacity`` (five list slots per alert plus one small entry per
distinct value still held), whatever the alerts' accounts or symbols.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from itertools import islice

from .model import Alert, AlertFilter

__all__ = ["AlertHistory", "HistoryStats"]


class _Run:
    """Ascending positions of the alerts holding one index value; ``items[:start]`` are evicted."""

    __slots__ = ("items", "start")

    def __init__(self) -> None:
        self.items: list[int] = []
        self.start = 0

    def __len__(self) -> int:
        return len(self.items) - self.start


def _push(index: dict, value: Hashable, pos: int) -> None:
    run = index.get(value)
    if run is None:
        run = index[value] = _Run()
    run.items.append(pos)


def _pop_oldest(index: dict, value: Hashable, pos: int) -> None:
    """Drop ``pos`` (the oldest held position) from ``value``'s run; delete the run once empty."""
    run: _Run = index[value]
    items = run.items
    start = run.start
    assert items[start] == pos, "the evicted alert must be its index lists' oldest entry"
    start += 1
    if start == len(items):
        del index[value]
    elif start * 2 > len(items):
        del items[:start]
        run.start = 0
    else:
        run.start = start


@dataclass(frozen=True, slots=True)
class HistoryStats:
    """What the history holds and has dropped (exported as metrics)."""

    held: int
    capacity: int
    evicted: int
    last_seq: int
    oldest_seq: int
    index_values: int  # distinct (index, value) entries held: bounded by the alerts held


class AlertHistory:
    """The last ``capacity`` alerts, newest-first pages and oldest-first replays by filter."""

    __slots__ = (
        "_by_account",
        "_by_check",
        "_by_kind",
        "_by_severity",
        "_by_symbol",
        "_cap",
        "_last_seq",
        "_len",
        "_next",
        "_ring",
        "evicted",
    )

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._cap = capacity
        self._ring: list[Alert | None] = [None] * capacity
        self._next = 0  # position of the next append = alerts appended since start
        self._len = 0
        self._last_seq = 0
        self._by_severity: dict[int, _Run] = {}
        self._by_account: dict[str, _Run] = {}
        self._by_kind: dict[int, _Run] = {}
        self._by_check: dict[int, _Run] = {}
        self._by_symbol: dict[str, _Run] = {}
        self.evicted = 0  # alerts pushed out of the ring by newer ones

    # -- size ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def last_seq(self) -> int:
        """The newest alert's seq (0 while empty)."""
        return self._last_seq

    @property
    def oldest_seq(self) -> int:
        """The oldest held alert's seq (0 while empty)."""
        if not self._len:
            return 0
        return self._at(self._next - self._len).seq

    def stats(self) -> HistoryStats:
        indexes = (self._by_severity, self._by_account, self._by_kind, self._by_check, self._by_symbol)
        return HistoryStats(
            held=self._len,
            capacity=self._cap,
            evicted=self.evicted,
            last_seq=self._last_seq,
            oldest_seq=self.oldest_seq,
            index_values=sum(len(index) for index in indexes),
        )

    # -- append -------------------------------------------------------------------------------

    def append(self, alert: Alert) -> Alert | None:
        """Hold ``alert`` (its seq must exceed every held seq); return the alert it evicted, if any."""
        if alert.seq <= self._last_seq:
            raise ValueError(f"alert seq {alert.seq} is not above the last seq {self._last_seq}")
        pos = self._next
        slot = pos % self._cap
        evicted = None
        if self._len == self._cap:
            evicted = self._ring[slot]
            assert evicted is not None
            self._unindex(evicted, pos - self._cap)
            self.evicted += 1
        else:
            self._len += 1
        self._ring[slot] = alert
        self._next = pos + 1
        self._last_seq = alert.seq
        _push(self._by_severity, alert.severity, pos)
        _push(self._by_account, alert.account, pos)
        _push(self._by_kind, alert.kind, pos)
        _push(self._by_check, alert.check, pos)
        _push(self._by_symbol, alert.symbol, pos)
        return evicted

    def _unindex(self, alert: Alert, pos: int) -> None:
        _pop_oldest(self._by_severity, alert.severity, pos)
        _pop_oldest(self._by_account, alert.account, pos)
        _pop_oldest(self._by_kind, alert.kind, pos)
        _pop_oldest(self._by_check, alert.check, pos)
        _pop_oldest(self._by_symbol, alert.symbol, pos)

    # -- queries ------------------------------------------------------------------------------

    def query(self, flt: AlertFilter, before_seq: int = 0, page_size: int = 100) -> tuple[list[Alert], int]:
        """A page of matching alerts with seq < ``before_seq`` (0: from the newest), newest first.

        Returns (page, next_before_seq); next_before_seq is the page's last seq when an older
        match exists (pass it back as before_seq), else 0, so paging visits every held match exactly once.
        Cost: O(candidates scanned + page) from the filter's most selective index.
        """
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        if not self._len:
            return [], 0
        end = self._next if before_seq <= 0 else self._first_pos_above(before_seq - 1)
        oldest = self._next - self._len
        if flt.is_any:
            stop = max(oldest, end - page_size)
            page = [self._at(p) for p in range(end - 1, stop - 1, -1)]
            return page, (page[-1].seq if page and stop > oldest else 0)
        candidates, exact = self._candidates(flt, end, newest_first=True)
        ring, cap = self._ring, self._cap
        if exact:  # the index part is the whole filter: every candidate matches
            page = [ring[pos % cap] for pos in islice(candidates, page_size + 1)]  # type: ignore[misc]
            if len(page) > page_size:
                del page[page_size:]
                return page, page[-1].seq
            return page, 0
        matches = flt.matches
        page = []
        for pos in candidates:
            alert = ring[pos % cap]
            if matches(alert):  # type: ignore[arg-type]
                if len(page) == page_size:
                    return page, page[-1].seq
                page.append(alert)  # type: ignore[arg-type]
        return page, 0

    def after(self, after_seq: int, flt: AlertFilter, limit: int | None = None) -> tuple[list[Alert], int]:
        """The held matching alerts with seq > ``after_seq``, oldest first (at most ``limit``).

        Returns (alerts, missed). ``missed`` counts every seq in (after_seq, oldest held seq) the
        ring no longer holds, whether or not those alerts would have matched the filter (the ring
        cannot know); the pipeline numbers seqs densely, so that is the alerts evicted since.
        ``after_seq`` at or past ``last_seq`` (e.g. a subscriber from before a restart) gives
        nothing and misses nothing. With ``limit``, call again after the last returned seq.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        after_seq = max(after_seq, 0)
        if not self._len or after_seq >= self._last_seq:
            return [], 0
        missed = max(0, self.oldest_seq - 1 - after_seq)
        if limit == 0:
            return [], missed
        first = self._first_pos_above(after_seq)
        out: list[Alert] = []
        if flt.is_any:
            stop = self._next if limit is None else min(self._next, first + limit)
            return [self._at(p) for p in range(first, stop)], missed
        candidates, exact = self._candidates(flt, first, newest_first=False)
        ring, cap = self._ring, self._cap
        if exact:
            return [ring[pos % cap] for pos in islice(candidates, limit)], missed  # type: ignore[misc]
        matches = flt.matches
        for pos in candidates:
            alert = ring[pos % cap]
            if matches(alert):  # type: ignore[arg-type]
                out.append(alert)  # type: ignore[arg-type]
                if len(out) == limit:
                    break
        return out, missed

    # -- internals ----------------------------------------------------------------------------

    def _at(self, pos: int) -> Alert:
        alert = self._ring[pos % self._cap]
        assert alert is not None
        return alert

    def _first_pos_above(self, seq: int) -> int:
        """The first held position whose seq is above ``seq`` (the next position when none is)."""
        oldest = self._next - self._len
        oldest_seq = self._at(oldest).seq
        if seq < oldest_seq:
            return oldest
        if seq >= self._last_seq:
            return self._next
        if self._last_seq - oldest_seq == self._len - 1:  # consecutive seqs: direct
            return oldest + (seq - oldest_seq) + 1
        ring, cap = self._ring, self._cap

        def seq_at(pos: int) -> int:
            return ring[pos % cap].seq  # type: ignore[union-attr]

        return bisect_right(range(oldest, self._next), seq, key=seq_at) + oldest

    def _candidates(self, flt: AlertFilter, bound: int, newest_first: bool) -> tuple[Iterator[int], bool]:
        """Positions from the filter's most selective index part: those below ``bound`` newest
        first, or those at or above it oldest first; and whether that part is the whole filter
        (else the caller tests the whole filter on each)."""
        best: list[_Run] | None = None
        best_size = -1
        parts_set = 0
        parts: list[tuple[frozenset, dict]] = [
            (flt.accounts, self._by_account),
            (flt.symbols, self._by_symbol),
            (flt.kinds, self._by_kind),
            (flt.checks, self._by_check),
        ]
        for values, index in parts:
            if not values:
                continue
            parts_set += 1
            runs = [index[v] for v in values if v in index]
            size = sum(map(len, runs))
            if best is None or size < best_size:
                best, best_size = runs, size
            if not size:
                return iter(()), True
        if flt.min_severity:
            parts_set += 1
            runs = [run for sev, run in self._by_severity.items() if sev >= flt.min_severity]
            size = sum(map(len, runs))
            if best is None or size < best_size:
                best, best_size = runs, size
        assert best is not None, "an is_any filter walks the ring instead"
        if newest_first:
            its = [
                map(run.items.__getitem__, range(cut - 1, run.start - 1, -1))
                for run in best
                if (cut := bisect_left(run.items, bound, run.start)) > run.start
            ]
        else:
            its = [
                map(run.items.__getitem__, range(cut, len(run.items)))
                for run in best
                if (cut := bisect_left(run.items, bound, run.start)) < len(run.items)
            ]
        exact = parts_set == 1
        if len(its) == 1:
            return its[0], exact
        return heapq.merge(*its, reverse=newest_first), exact
