"""StreamRiskSnapshots' fan-out: push each subscriber the accounts that changed, coalesced, at most
once per its interval, and nothing while idle; no fixed timer.

How it runs (all on the event loop: the engine is not thread-safe):

- The servicer calls ``poke()`` after every mutating RPC. A poke is one attribute test while a
  change is already pending (38-47 ns, against 29-44 ns for an empty method call: the per-RPC
  cost on the check path); the first poke after a pass schedules one ``_tick`` with
  ``call_soon``.
- ``_tick`` wakes the waiting subscribers whose interval has elapsed and arms one timer
  (``call_at``) for the earliest one still inside its interval. With no pokes nothing is
  scheduled: an idle server runs no code for its subscribers.
- A woken subscriber (``next``) runs the change pass if one is due (engine.snapshot_changes:
  shared by every subscriber woken after it, since it runs once per state version), takes the
  accounts stamped since its last response and reads them (engine.snapshot). Subscribers woken
  together at one state version share the read of the same accounts.
- A subscriber's pending state is the pass number of its last response: whatever changed since
  is found from the per-account stamps, so a subscriber that reads slowly (its handler waits for
  gRPC to take the previous response) gets one response with everything that changed meanwhile
  when it comes back. Nothing queues; nothing grows with the changes.

Cost of one tick at 100,000 accounts (python -m bench.snapshot_bench): the change pass, ~1.4 ms,
plus reading and encoding the changed accounts, ~1-3 us each (1,000 accounts with ten positions
and five limits: 3.8 ms); a first response reads every account it asked for (100,000 accounts and
a million books: ~155 ms on the loop, the encoding in a worker thread).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .engine import Engine
from .engine.snapshot import SnapshotColumns, SnapshotReader
from .engine.snapshot_changes import ChangeTracker

log = logging.getLogger("riskd.snapshots")
DEFAULT_INTERVAL = 0.25  # seconds, for min_interval_ms = 0
MIN_INTERVAL = 0.010


class IntervalError(ValueError):
    """min_interval_ms out of range."""


def interval_of(min_interval_ms: int) -> float:
    """min_interval_ms (0: the default) -> seconds; IntervalError below 10 ms."""
    if min_interval_ms == 0:
        return DEFAULT_INTERVAL
    if min_interval_ms < MIN_INTERVAL * 1000:
        raise IntervalError(f"must be 0 (default 250) or at least 10, got {min_interval_ms}")
    return min_interval_ms / 1000.0


@dataclass(frozen=True, slots=True)
class SubscriberStats:
    accounts: int  # accounts asked for (0: all)
    interval: float
    responses: int
    waiting: bool  # waiting for a change (False: writing, or its client has not taken the last one)
    pending: int  # accounts changed since its last response


@dataclass(frozen=True, slots=True)
class HubStats:
    subscribers: int
    ticks: int  # _tick runs
    passes: int  # change passes
    responses: int  # responses produced, all subscribers
    accounts_sent: int  # account snapshots in them


class Subscription:
    """One StreamRiskSnapshots call: what it asked for and where it is; O(1) state besides its
    account list."""

    __slots__ = (
        "_event",
        "first",
        "ids",
        "interval",
        "last_seq",
        "last_write",
        "names",
        "resolved",
        "responses",
        "waiting",
    )

    def __init__(self, names: Sequence[str], interval: float) -> None:
        self.names = tuple(dict.fromkeys(names))  # () = every account
        self.ids = np.empty(0, dtype=np.int64)  # the known ones among names
        self.resolved = -1  # account count when ids were resolved
        self.interval = interval
        self.first = True
        self.last_seq = 0
        self.last_write = -math.inf
        self.responses = 0
        self.waiting = False
        self._event = asyncio.Event()


class SnapshotHub:
    """Risk snapshots for GetRiskSnapshot and the StreamRiskSnapshots subscribers (see module doc)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.reader = SnapshotReader(engine)
        self.tracker = ChangeTracker(engine)
        self.poked = True  # an RPC may have changed something since the last change pass
        self._subs: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._soon: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        # One read shared by the subscribers woken together: (state version, pass, account set).
        self._shared_key: tuple[int, int, int] | None = None
        self._shared: SnapshotColumns | None = None
        self._ticks = 0
        self._responses = 0
        self._accounts_sent = 0

    # ------------------------------------------------------------------ the servicer's side

    def poke(self) -> None:
        """Something may have changed (after a mutating RPC): O(1), schedules at most one tick."""
        if self.poked:
            return
        self.poked = True
        if self._subs and self._soon is None and self._loop is not None:
            self._soon = self._loop.call_soon(self._on_soon)

    def touch(self, accounts: Sequence[str]) -> None:
        """These accounts changed in a way the rows may not show (LoadPositions)."""
        self.tracker.touch(accounts)
        self.poke()

    def read(self, accounts: Sequence[str] = ()) -> SnapshotColumns:
        """GetRiskSnapshot: the named accounts now (unknown left out; none = every account)."""
        r = self.reader
        return r.columns(r.account_ids(accounts) if len(accounts) else r.all_ids())

    def subscribe(self, accounts: Sequence[str], interval: float) -> Subscription:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        sub = Subscription(accounts, interval)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.waiting = False
        if not self._subs:
            for handle in (self._soon, self._timer):
                if handle is not None:
                    handle.cancel()
            self._soon = self._timer = None
            self._shared_key = self._shared = None

    async def next(self, sub: Subscription) -> SnapshotColumns:
        """sub's next response: every account it asked for the first time, then the accounts
        changed since its previous response (an empty one when only the firm-wide state moved),
        no sooner than its interval after the previous one."""
        loop = self._loop
        assert loop is not None
        if sub.first:
            sub.first = False
            self._pass()
            return self._respond(sub, self._ids(sub), everything=True)
        while True:
            if self.poked or sub.last_seq < self.tracker.seq:
                due = sub.last_write + sub.interval
                if loop.time() >= due:
                    self._pass()
                    tracker = self.tracker
                    ids = tracker.changed_since(sub.last_seq, None if not sub.names else self._ids(sub))
                    if ids.shape[0] or tracker.firm_seq > sub.last_seq:
                        return self._respond(sub, ids, everything=False)
                    sub.last_seq = tracker.seq  # nothing of its own: keep waiting
                    continue
                self._arm(due)
            sub._event.clear()
            sub.waiting = True
            try:
                await sub._event.wait()
            finally:
                sub.waiting = False

    def stats(self) -> HubStats:
        return HubStats(
            len(self._subs), self._ticks, self.tracker.passes, self._responses, self._accounts_sent
        )

    def subscriber_stats(self) -> list[SubscriberStats]:
        """Per subscriber, for tests and metrics (pending: one comparison over the stamps each)."""
        self._pass()
        out = []
        for sub in self._subs:
            ids = None if not sub.names else self._ids(sub)
            pending = int(self.tracker.changed_since(sub.last_seq, ids).shape[0])
            out.append(SubscriberStats(len(sub.names), sub.interval, sub.responses, sub.waiting, pending))
        return out

    # ------------------------------------------------------------------ internals

    def _pass(self) -> None:
        """The change pass (shared by every subscriber: it runs only when the state version moved)."""
        self.poked = False
        self.tracker.detect()

    def _ids(self, sub: Subscription) -> np.ndarray:
        """sub's accounts that are known (re-resolved when new accounts appear); every account for ()."""
        count = len(self._engine.accounts)
        if not sub.names:
            return self.reader.all_ids()
        if sub.resolved != count:
            sub.ids = self.reader.account_ids(sub.names)
            sub.resolved = count
        return sub.ids

    def _respond(self, sub: Subscription, ids: np.ndarray, everything: bool) -> SnapshotColumns:
        # Subscribers of every account woken after one pass at one state version read the same ids.
        key = (self._engine.state_version, self.tracker.seq, sub.last_seq if not everything else -1)
        if not sub.names and self._shared_key == key and self._shared is not None:
            cols = self._shared
        else:
            cols = self.reader.columns(ids)
            if not sub.names:
                self._shared_key, self._shared = key, cols
        sub.last_seq = self.tracker.seq
        sub.last_write = self._loop.time() if self._loop is not None else 0.0
        sub.responses += 1
        self._responses += 1
        self._accounts_sent += len(cols)
        return cols

    def _on_soon(self) -> None:
        self._soon = None
        self._tick()

    def _on_timer(self) -> None:
        self._timer = None
        self._tick()

    def _tick(self) -> None:
        """Wake the waiting subscribers that have something new and whose interval has elapsed;
        arm the timer for the earliest of the rest."""
        self._ticks += 1
        loop = self._loop
        assert loop is not None
        now = loop.time()
        news = self.poked
        seq = self.tracker.seq
        earliest = math.inf
        for sub in self._subs:
            if not sub.waiting or not (news or sub.last_seq < seq):
                continue
            due = sub.last_write + sub.interval
            if due <= now:
                sub._event.set()
            elif due < earliest:
                earliest = due
        if earliest < math.inf:
            self._arm(earliest)

    def _arm(self, when: float) -> None:
        """Make sure a tick runs at `when` (one timer: the earliest wins)."""
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        assert self._loop is not None
        self._timer = self._loop.call_at(when, self._on_timer)
