"""Alert subscribers grouped by filter: one bounded ring of wire entries per group, one cursor per
subscriber (pure: no asyncio, no gRPC; alerts.fanout does the waiting and the writing).

Subscribers with identical filters share a ``Group`` (most dashboards subscribe with "any"), so a
publish matches each distinct filter once and appends the matching entries once, to the group's
ring, whatever the number of subscribers. Each subscriber reads the ring through its own cursor:
the entries between its cursor and the ring's end are its queue. The ring holds ``capacity``
entries, so a subscriber that falls more than ``capacity`` entries behind loses the oldest ones;
they are counted into its ``dropped`` (reported in its next response) when the publish that
pushed them out runs, so a subscriber stuck in a write still shows up at once.

A subscriber is in one of three states: REPLAYING (reading the history; its cursor moves on
silently, the history holds what the ring lets go), WAITING (has read everything; woken by the
next publish) and BUSY (writing, or woken and about to run).
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from .model import AlertFilter

REPLAYING, WAITING, BUSY, REMOVED = 0, 1, 2, -1

Entry = tuple[int, bytes]  # (seq, the ``alerts`` entry's bytes)


class Subscriber:
    """One open SubscribeAlerts stream."""

    __slots__ = (
        "cursor",
        "dropped",
        "group",
        "peer",
        "replayed",
        "reported_at",
        "skip_to",
        "state",
        "unreported",
        "waiter",
    )

    def __init__(self, group: Group, peer: str, state: int) -> None:
        self.group = group
        self.peer = peer
        self.state = state
        self.cursor = group.end  # the next entry this subscriber needs
        self.dropped = 0  # lost since its last response (sent in the next one)
        self.replayed = 0  # the replay's position in the history (after_seq, then the last sent)
        self.skip_to = 0  # live entries with seq <= this were already sent by the replay
        self.unreported = 0  # lost but not yet passed to on_drop (rate-limited)
        self.reported_at = float("-inf")
        self.waiter: object | None = None  # what fanout awaits while WAITING (a future)


class Group:
    """Subscribers with one filter, and the ring of entries that matched it."""

    __slots__ = (
        "busy",
        "capacity",
        "end",
        "entries",
        "floor",
        "flt",
        "match_all",
        "members",
        "seqs",
        "waiting",
    )

    def __init__(self, flt: AlertFilter, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.flt = flt
        self.match_all = flt.is_any
        self.capacity = capacity
        self.entries: deque[bytes] = deque(maxlen=capacity)
        self.seqs: deque[int] = deque(maxlen=capacity)
        self.end = 0  # entries ever pushed; the ring holds [end - len(entries), end)
        self.members = 0
        self.floor = 0  # no BUSY subscriber's cursor is below this (lagging() has nothing to do)
        self.waiting: set[Subscriber] = set()
        self.busy: set[Subscriber] = set()

    @property
    def start(self) -> int:
        """Index of the oldest entry the ring still holds."""
        return self.end - len(self.entries)

    def join(self, peer: str, replaying: bool) -> Subscriber:
        sub = Subscriber(self, peer, REPLAYING if replaying else BUSY)
        self.members += 1
        if not replaying:
            self.busy.add(sub)
        return sub

    def leave(self, sub: Subscriber) -> None:
        self.waiting.discard(sub)
        self.busy.discard(sub)
        self.members -= 1

    def push(self, entries: list[Entry]) -> None:
        """Append matching entries (the ring forgets the oldest beyond its capacity)."""
        for seq, entry in entries[-self.capacity :]:
            self.seqs.append(seq)
            self.entries.append(entry)
        self.end += len(entries)

    def wake(self) -> set[Subscriber]:
        """The waiting subscribers, now BUSY (the caller resolves their waiters)."""
        woken = self.waiting
        if woken:
            self.waiting = set()
            floor = self.floor
            for sub in woken:
                sub.state = BUSY
                if sub.cursor < floor:
                    floor = sub.cursor
            self.floor = floor
            self.busy |= woken
        return woken

    def lagging(self) -> list[tuple[Subscriber, int]]:
        """Count what BUSY subscribers lost to the last push: (subscriber, lost) for each."""
        start = self.start
        if start <= self.floor:
            return []
        out = []
        for sub in self.busy:
            if sub.cursor < start:
                lost = start - sub.cursor
                sub.cursor = start
                sub.dropped += lost
                sub.unreported += lost
                out.append((sub, lost))
        self.floor = min((sub.cursor for sub in self.busy), default=self.end)
        return out

    def wait(self, sub: Subscriber) -> None:
        self.busy.discard(sub)
        sub.state = WAITING
        self.waiting.add(sub)

    def take(self, sub: Subscriber) -> tuple[list[bytes], int]:
        """Everything queued for ``sub`` since its last take (oldest first) and what it dropped
        meanwhile; entries it already got from the history are skipped."""
        start = self.start
        if sub.cursor < start:  # not BUSY when it fell behind: count it now
            lost = start - sub.cursor
            sub.dropped += lost
            sub.unreported += lost
            sub.cursor = start
        offset = sub.cursor - start
        if sub.skip_to:
            seqs = self.seqs
            while offset < len(seqs) and seqs[offset] <= sub.skip_to:
                offset += 1
            sub.skip_to = 0
        parts = list(islice(self.entries, offset, None)) if offset < len(self.entries) else []
        sub.cursor = self.end
        dropped, sub.dropped = sub.dropped, 0
        return parts, dropped

    def catch_up(self, sub: Subscriber) -> None:
        """A replaying subscriber skips what the ring let go (the history still holds it)."""
        start = self.start
        if sub.cursor < start:
            sub.cursor = start

    def go_live(self, sub: Subscriber) -> None:
        """Replay done: from now on the ring (live entries up to ``skip_to``, the last seq the
        replay sent, are skipped once)."""
        sub.state = BUSY
        self.floor = min(self.floor, sub.cursor)
        self.busy.add(sub)
