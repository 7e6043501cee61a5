"""The engine's side exit to the alert path: a bounded FIFO of raw engine events.

The engine puts one small tuple per request that has something to say (a batch with violations,
executions with overfills or unknown fills, a trading-state or limit change) and returns: no
names are decoded, no Alert is built, nothing is awaited. The pipeline (alerts.pipeline) drains
the queue later on the same event loop, after the request has been answered. When the pipeline
falls behind, the oldest events are dropped and counted (``lost_events``, ``lost_occurrences``),
and the pipeline raises an ALERTS_LOST alert saying how many: checks never wait on alerts.

An event is a tuple ``(kind, occurrences, time, *payload)``; the payloads are documented at the
EV_* constants and built by engine methods (they hold only immutable or freshly built arrays).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

# (EV_CHECKS, n, time, violations: Violations, aid, sid, ids): aid/sid per order of the batch (arrays)
# or the one order's ints; ids: a sequence of the batch's client order ids, or a OneOrder.
EV_CHECKS = 1
# (EV_EXECUTIONS, n, time, ids: sequence of client order ids, status, account ids, symbol ids):
# one row per overfill, late fill or unknown fill, already picked out of the batch.
EV_EXECUTIONS = 2
# (EV_TRADING_STATE, 1, time, account, state, previous, reason)
EV_TRADING_STATE = 3
# (EV_LIMITS, n, time, upserted: tuple[Limit, ...], deleted: tuple[str, ...])
EV_LIMITS = 4
# (EV_FAULT, 1, time, kind: AlertKind, message, observed, threshold, account)
EV_FAULT = 5


class AlertIntake:
    """Bounded FIFO of engine events; ``put`` is O(1) and never blocks (drops the oldest when full)."""

    __slots__ = ("_armed", "_events", "capacity", "lost_events", "lost_occurrences", "wake")

    def __init__(self, capacity: int = 4096, wake: Callable[[], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._events: deque[tuple] = deque()
        self.lost_events = 0
        self.lost_occurrences = 0
        self.wake = wake  # called once per drain cycle, when the first event arrives
        self._armed = False

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: tuple) -> None:
        events = self._events
        if len(events) >= self.capacity:
            old = events.popleft()
            self.lost_events += 1
            self.lost_occurrences += old[1]
        events.append(event)
        if not self._armed and self.wake is not None:
            self._armed = True
            self.wake()

    def drain(self, limit: int | None = None) -> list[tuple]:
        """Take up to ``limit`` events (all when None), oldest first."""
        events = self._events
        if limit is None or limit >= len(events):
            out = list(events)
            events.clear()
            self._armed = False
        else:
            out = [events.popleft() for _ in range(limit)]
        return out
