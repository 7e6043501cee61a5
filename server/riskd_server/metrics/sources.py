"""riskd's own metric sources: the engine, the write-behind (backlog, lag, breaker), the pool and
the alert pipeline.

Each is a ``Metrics.add_gauges`` registration; the fan-out and the mailer plug in the same way
(``metrics.add_gauges("subscribers", hub.stats, counters=(...))``, ``metrics.add_breaker(...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..durable import Durability
    from ..engine import Engine
    from ..store import Store, WriteBehind
    from .exporter import Metrics

ENGINE_DOCS = {
    "accounts": "Accounts interned.",
    "symbols": "Symbols interned.",
    "books": "(account, symbol) books in use.",
    "open_orders": "Open orders, all accounts.",
    "retained_closed_orders": "Closed order ids remembered for duplicates and late fills.",
    "order_slots": "Order slots allocated.",
    "limits": "Limits installed.",
    "limits_version": "Version of the limit book.",
    "state_version": "Engine state version (increments on every change).",
}

WRITE_BEHIND_COUNTERS = (
    "flushed_rows",
    "flushed_changes",
    "flushes",
    "failures",
    "dead_letter_rows",
    "dead_letter_file_rows",
)
WRITE_BEHIND_DOCS = {
    "pending_rows": "Backlog: rows queued or being written (mutating RPCs fail UNAVAILABLE at max_pending_rows).",
    "pending_changes": "Backlog: change records queued or being written.",
    "max_pending_rows": "The backlog bound (max_pending_rows).",
    "oldest_pending_seconds": "Lag: age of the oldest change not yet committed (0 when none).",
    "flushed_rows": "Rows committed (or dead-lettered).",
    "flushed_changes": "Change records committed.",
    "flushes": "Flush transactions committed.",
    "failures": "Failed flush attempts (retried with backoff).",
    "consecutive_failures": "Failed flush attempts since the last success.",
    "last_flush_seconds": "Duration of the last committed flush.",
    "dead_letter_rows": "Rows the database refused (dead_letter table, file or log).",
    "dead_letter_file_rows": "Refused rows the dead_letter table refused too (in the file).",
    "resolving": "1 while a refused flush is being cut down to its refused rows.",
}

# psycopg_pool get_stats(): the measures are gauges, the rest counters (absent until non-zero).
POOL_COUNTERS = (
    "requests_num",
    "requests_queued",
    "requests_wait_ms",
    "requests_errors",
    "usage_ms",
    "returns_bad",
    "connections_num",
    "connections_ms",
    "connections_errors",
    "connections_lost",
)
POOL_DOCS = {
    "pool_min": "Pool minimum size.",
    "pool_max": "Pool maximum size.",
    "pool_size": "Connections held (in use, idle or being made).",
    "pool_available": "Idle connections ready to use.",
    "requests_waiting": "Requests waiting for a connection now.",
    "requests_num": "Connection requests.",
    "requests_queued": "Requests that had to wait for a connection.",
    "requests_wait_ms": "Total ms requests waited for a connection.",
    "requests_errors": "Requests that failed (timeout, pool closed).",
    "usage_ms": "Total ms connections were in use.",
    "returns_bad": "Connections returned in a bad state.",
    "connections_num": "Connection attempts.",
    "connections_ms": "Total ms spent connecting.",
    "connections_errors": "Failed connection attempts.",
    "connections_lost": "Connections found broken.",
}


def watch_engine(metrics: Metrics, engine: Engine) -> None:
    metrics.watch_checks(engine.check_counter)
    metrics.add_gauges("engine", engine.stats, docs=ENGINE_DOCS)


def watch_store(metrics: Metrics, store: Store) -> None:
    metrics.add_gauges("db_pool", store.get_stats, counters=POOL_COUNTERS, docs=POOL_DOCS)


def watch_write_behind(metrics: Metrics, writer: WriteBehind) -> None:
    metrics.add_gauges("write_behind", writer.stats, counters=WRITE_BEHIND_COUNTERS, docs=WRITE_BEHIND_DOCS)
    metrics.add_breaker("store", lambda: writer.stats().breaker_state)


JOURNAL_DOCS = {
    "first_seq": "Oldest journal record still held (older segments were pruned).",
    "next_seq": "Seq the next journal record gets.",
    "segments": "Journal segment files held.",
    "bytes": "Journal bytes held (bounded by journal_max_bytes).",
    "max_bytes": "journal_max_bytes.",
    "syncs": "fdatasyncs of the journal (journal_fsync interval or always).",
    "applied_seq": "Last journal record whose rows PostgreSQL holds (journal_applied, as last read).",
    "behind_records": "Journal records PostgreSQL does not hold yet (the feeder's lag).",
    "checkpoint_seq": "Journal seq of the newest engine checkpoint written.",
}


def watch_journal(metrics: Metrics, durability: Durability) -> None:
    """The journal, the database's place in it and the checkpoints: riskd_journal_*."""

    def values() -> dict[str, float]:
        j = durability.journal
        st = j.stats()
        return {
            "first_seq": st.first_seq,
            "next_seq": st.next_seq,
            "segments": st.segments,
            "bytes": st.bytes,
            "max_bytes": st.max_bytes,
            "syncs": st.syncs,
            "applied_seq": durability.applied_seq,
            "behind_records": max(0, j.last_seq - durability.applied_seq),
            "checkpoint_seq": durability.checkpoint_seq,
        }

    metrics.add_gauges("journal", values, counters=("syncs",), docs=JOURNAL_DOCS)


# alerts.pipeline.PipelineStats: what the alert path produced and what it lost.
ALERT_COUNTERS = ("raised", "occurrences", "lost_events", "lost_occurrences", "unpersisted")
ALERT_DOCS = {
    "last_seq": "Sequence number of the last alert raised.",
    "raised": "Alerts raised (first occurrences, dedupe summaries, faults).",
    "occurrences": "Occurrences seen by the alert path, repeats included.",
    "lost_events": "Engine events the alert intake dropped (the pipeline fell behind).",
    "lost_occurrences": "Occurrences in the dropped events.",
    "unpersisted": "Alerts the write-behind had no room for (not in PostgreSQL).",
    "pending_events": "Engine events waiting in the alert intake.",
}


def watch_alerts(metrics: Metrics, stats: Callable[[], Any]) -> None:
    """The alert pipeline (``pipeline.stats_snapshot``): riskd_alerts_*."""
    metrics.add_gauges("alerts", stats, counters=ALERT_COUNTERS, docs=ALERT_DOCS)


# alerts.fanout.FanoutStats: SubscribeAlerts streams.
SUBSCRIBER_COUNTERS = ("published", "dropped", "writes", "bytes_written", "refused", "replayed", "missed")
SUBSCRIBER_DOCS = {
    "subscribers": "Open SubscribeAlerts streams.",
    "groups": "Distinct alert filters among them.",
    "published": "Alerts handed to the fan-out.",
    "dropped": "Alert entries subscribers lost because they read too slowly.",
    "writes": "SubscribeAlerts responses written.",
    "bytes_written": "Bytes of SubscribeAlerts responses written.",
    "refused": "Subscriptions refused at max_alert_subscribers.",
    "replayed": "Alerts replayed from the history to resumed subscriptions.",
    "missed": "Alerts resumed subscriptions asked for that the history no longer held.",
}

# alerts.mailer.MailerStats: email digests.
MAILER_COUNTERS = ("sent_mails", "sent_alerts", "dropped", "failures", "skipped")
MAILER_DOCS = {
    "queued": "Alerts waiting in the email outbox.",
    "sent_mails": "Digest mails sent.",
    "sent_alerts": "Alerts sent in digests.",
    "dropped": "Alerts the full outbox dropped (oldest first).",
    "failures": "Failed send attempts.",
    "skipped": "Intervals with alerts queued but no connection tried (the email breaker was open).",
}


def watch_subscribers(metrics: Metrics, stats: Callable[[], Any]) -> None:
    """The alert fan-out (``AlertHub.stats``): riskd_alert_subscribers_*."""
    metrics.add_gauges("alert_subscribers", stats, counters=SUBSCRIBER_COUNTERS, docs=SUBSCRIBER_DOCS)


def watch_mailer(metrics: Metrics, stats: Callable[[], Any]) -> None:
    """Email digests (``DigestMailer.stats``): riskd_email_* and the email breaker."""
    metrics.add_gauges("email", stats, counters=MAILER_COUNTERS, docs=MAILER_DOCS)
    metrics.add_breaker("email", lambda: stats().breaker_state)
