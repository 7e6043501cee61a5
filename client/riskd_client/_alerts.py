"""Alert subscriptions, client side, without I/O: names and numbers, the filter, decoding, where
to resume, and the reconnect backoff. The sync and async ``subscribe_alerts`` share all of it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from riskd.v1 import risk_pb2 as pb

from ._columns import _enum_names, _parse_enum, check_name, parse_check
from ._types import AlertBatch, AlertInfo, AlertPage, AlertStatsReport, AlertWindow

SEVERITIES = _enum_names(pb.Severity, "SEVERITY_")  # "WARNING" -> 2
ALERT_KINDS = _enum_names(pb.AlertKind, "ALERT_KIND_")  # "CHECK_REJECT" -> 1
_SEVERITY_NAMES = {number: name for name, number in SEVERITIES.items()}
_KIND_NAMES = {number: name for name, number in ALERT_KINDS.items()}

# The server's initial metadata on a SubscribeAlerts stream: its newest seq when this subscriber
# was registered (resume from there if the stream breaks before any alert arrives).
SEQ_HEADER = "riskd-alert-seq"
# Statuses after which a subscription reconnects: the server restarting or unreachable, refusing
# new calls for now (its pending-call limit, its subscriber limit), or the connection breaking.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
    }
)
INITIAL_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 10.0


def parse_severity(value: Any, what: str = "severity") -> int:
    """ "warning", "WARNING", "SEVERITY_WARNING" or 2 -> 2."""
    return _parse_enum(value, SEVERITIES, "SEVERITY_", what)


def parse_alert_kind(value: Any, what: str = "kind") -> int:
    """ "check-reject", "CHECK_REJECT", "ALERT_KIND_CHECK_REJECT" or 1 -> 1."""
    return _parse_enum(value, ALERT_KINDS, "ALERT_KIND_", what)


def severity_name(number: int) -> str:
    return _SEVERITY_NAMES.get(number, f"SEVERITY_{number}")


def kind_name(number: int) -> str:
    return _KIND_NAMES.get(number, f"KIND_{number}")


def _values(values: str | Iterable[Any] | None) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, str | int):
        return [values]
    return list(values)


def alert_filter(
    min_severity: Any = None,
    accounts: str | Iterable[str] | None = (),
    symbols: str | Iterable[str] | None = (),
    kinds: Any = (),
    checks: Any = (),
) -> pb.AlertFilter:
    """An AlertFilter from names or numbers (a single value or an iterable); ValueError names the bad one."""
    return pb.AlertFilter(
        min_severity=parse_severity(min_severity, "min_severity") if min_severity else 0,  # type: ignore[arg-type]
        accounts=[str(a) for a in _values(accounts)],
        symbols=[str(s) for s in _values(symbols)],
        kinds=[parse_alert_kind(k, f"kinds[{i}]") for i, k in enumerate(_values(kinds))],  # type: ignore[misc]
        checks=[parse_check(c, f"checks[{i}]") for i, c in enumerate(_values(checks))],  # type: ignore[misc]
    )


def decode_alert(msg: pb.Alert) -> AlertInfo:
    return AlertInfo(
        seq=msg.seq,
        time=msg.time.seconds + msg.time.nanos / 1e9,
        severity=severity_name(msg.severity),
        kind=kind_name(msg.kind),
        check=check_name(msg.check) if msg.check else "",
        account=msg.account,
        symbol=msg.symbol,
        limit_id=msg.limit_id,
        message=msg.message,
        observed=msg.observed,
        threshold=msg.threshold,
        count=msg.count,
        summary=msg.summary,
        client_order_id=msg.client_order_id,
    )


def decode_batch(msg: pb.SubscribeAlertsResponse) -> AlertBatch:
    return AlertBatch(tuple(decode_alert(a) for a in msg.alerts), msg.dropped, msg.missed)


class Resume:
    """Where a subscription continues after a reconnect: the last seq it saw.

    Before it has seen any alert, the server's SEQ_HEADER (its newest seq when the subscription
    started) stands in, so alerts raised while the stream is down are replayed even then.
    """

    __slots__ = ("after_seq",)

    def __init__(self, after_seq: int = 0) -> None:
        if after_seq < 0:
            raise ValueError(f"after_seq must not be negative, got {after_seq}")
        self.after_seq = after_seq

    def connected(self, metadata: Any) -> bool:
        """Read the stream's initial metadata; True when the server registered the subscriber."""
        for key, value in metadata or ():
            if key == SEQ_HEADER:
                if self.after_seq == 0 and str(value).isdigit():
                    self.after_seq = int(value)
                return True
        return False

    def saw(self, batch: AlertBatch) -> None:
        if batch.alerts:
            self.after_seq = batch.alerts[-1].seq


class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in [0, min(maximum,
    initial * 2**n)], so thousands of clients refused together come back spread out."""

    __slots__ = ("_rng", "attempts", "initial", "maximum")

    def __init__(
        self,
        maximum: float = DEFAULT_MAX_BACKOFF,
        initial: float = INITIAL_BACKOFF,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not initial > 0 or maximum < initial:
            raise ValueError(f"backoff: need 0 < initial <= maximum, got {initial} and {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0
        self._rng = rng

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * 2.0 ** min(self.attempts, 60))
        self.attempts += 1
        return ceiling * self._rng()

    def reset(self) -> None:
        self.attempts = 0


def retryable(exc: grpc.RpcError) -> bool:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    return code in RETRYABLE


def decode_page(msg: pb.QueryAlertsResponse) -> AlertPage:
    return AlertPage(tuple(decode_alert(a) for a in msg.alerts), msg.next_before_seq)


def decode_stats(msg: pb.GetAlertStatsResponse) -> AlertStatsReport:
    return AlertStatsReport(
        windows=tuple(
            AlertWindow(
                seconds=w.seconds,
                total=w.total,
                by_check=tuple((check_name(c.check) if c.check else "", c.count) for c in w.by_check),
                top_accounts=tuple((a.account, a.count) for a in w.top_accounts),
                accounts=w.accounts,
            )
            for w in msg.windows
        ),
        raised=msg.raised,
        occurrences=msg.occurrences,
        lost=msg.lost,
        last_seq=msg.last_seq,
    )
