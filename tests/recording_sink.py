"""A ChangeSink for tests: keeps every change record the engine emits, always has room."""

from __future__ import annotations

from riskd_server import changes as ch


class RecordingSink:
    def __init__(self) -> None:
        self.changes: list[ch.Change] = []

    def has_room(self, rows: int = 0) -> bool:
        return True

    def put(self, change: ch.Change) -> None:
        self.changes.append(change)

    def of(self, kind: type) -> list:
        """The recorded changes of one type, in order."""
        return [c for c in self.changes if isinstance(c, kind)]
