"""The email outbox: alerts waiting for the next digest, oldest first, bounded.

Pure (no I/O, no clock) so its bound and its drop accounting are tested against a plain list.
When full, ``put`` drops the oldest alert and counts it: a mail outage must cost memory up to the
bound and no more, and the next digest must say what was lost. A digest ``take``s its alerts out
while it is being sent; a failed send ``restore``s them to the front in their order, so the retry
sends the same alerts first (the oldest beyond the bound are then dropped and counted).
"""

from __future__ import annotations

from collections import deque

from .model import Alert


class Outbox:
    """FIFO of alerts with a capacity; O(1) ``put``, drops the oldest when full."""

    __slots__ = ("_queue", "capacity", "dropped", "unreported")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._queue: deque[Alert] = deque()
        self.dropped = 0  # every alert ever dropped for want of room
        self.unreported = 0  # dropped alerts no delivered digest has told about yet

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, alert: Alert) -> None:
        queue = self._queue
        if len(queue) >= self.capacity:
            queue.popleft()
            self.dropped += 1
            self.unreported += 1
        queue.append(alert)

    def take(self, most: int) -> list[Alert]:
        """Remove and return the oldest ``most`` alerts (fewer when fewer are queued), oldest first."""
        queue = self._queue
        return [queue.popleft() for _ in range(min(most, len(queue)))]

    def restore(self, alerts: list[Alert]) -> None:
        """Put taken alerts back in front, in order (their send failed); past the capacity the oldest
        are dropped and counted."""
        queue = self._queue
        queue.extendleft(reversed(alerts))
        excess = len(queue) - self.capacity
        for _ in range(max(0, excess)):
            queue.popleft()
        if excess > 0:
            self.dropped += excess
            self.unreported += excess

    def reported(self, count: int) -> None:
        """A delivered digest told about ``count`` drops (drops since it was built stay unreported)."""
        self.unreported -= min(count, self.unreported)

    def peek_all(self) -> list[Alert]:
        """A copy of the queued alerts, oldest first (tests, shutdown reports)."""
        return list(self._queue)
