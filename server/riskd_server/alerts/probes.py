"""Fault probes the alert pipeline polls once a second: each returns (kind, message, observed,
threshold) while its fault lasts, else None. The text before the first ":" names the fault, so an
alert is raised when it starts, not every second it lasts."""

from __future__ import annotations

from collections.abc import Callable

from riskd.v1 import risk_pb2 as pb

from ..store import WriteBehind

# Share of the persistence backlog that raises a BACKLOG alert (full refuses mutating RPCs).
BACKLOG_WARN_FRACTION = 0.8

Fault = tuple[int, str, float, float]


def backlog_probe(writer: WriteBehind, max_rows: int) -> Callable[[], Fault | None]:
    def probe() -> Fault | None:
        pending = writer.stats().pending_rows
        if pending < BACKLOG_WARN_FRACTION * max_rows:
            return None
        share = pending / max_rows
        what = "full: mutating RPCs are refused" if pending >= max_rows else f"{share:.0%} full"
        return (
            pb.ALERT_KIND_BACKLOG,
            f"persistence backlog: {what} ({pending:,} of {max_rows:,} rows; database slow or down?)",
            float(pending),
            float(max_rows),
        )

    return probe


def breaker_probe(name: str, state: Callable[[], str]) -> Callable[[], Fault | None]:
    """``state()`` is the breaker's state name ("closed", "open", "half_open")."""

    def probe() -> Fault | None:
        if state() != "open":
            return None
        return (pb.ALERT_KIND_BREAKER_OPEN, f"{name} breaker open: calls are failing fast", 1.0, 0.0)

    return probe


def journal_probe(used: Callable[[], int], max_bytes: int, warn: float = 0.8) -> Callable[[], Fault | None]:
    """The local journal past ``warn`` of journal_max_bytes: PostgreSQL is behind or down, and
    changes are refused once it is full. ``used()`` is the journal's bytes held."""

    def probe() -> Fault | None:
        held = used()
        if held < warn * max_bytes:
            return None
        return (
            pb.ALERT_KIND_BACKLOG,
            f"journal {held / max_bytes:.0%} full ({held:,} of {max_bytes:,} bytes): PostgreSQL behind or "
            "down; changes are refused when it is full",
            float(held),
            float(max_bytes),
        )

    return probe


def journal_failed_probe(failed: Callable[[], str]) -> Callable[[], Fault | None]:
    """The journal stopped taking changes (a failed fsync or append): every change is refused
    until riskd is restarted. ``failed()`` says why ("" while healthy). A failed fsync is found by
    the sync loop, not by a request, so this is how a quiet server reports it."""

    def probe() -> Fault | None:
        why = failed()
        if not why:
            return None
        return (pb.ALERT_KIND_JOURNAL_FAILED, f"journal failed: {why}", 1.0, 0.0)

    return probe
