"""Alert values: what an alert holds, its dedupe key, the filter subscribers and queries use.

Pure values (no I/O): the engine's outcomes become ``Alert``s in alerts.pipeline, the history,
dedupe and statistics index them, the fan-out serialises each once (``to_pb``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from riskd.v1 import risk_pb2 as pb

INFO = pb.SEVERITY_INFO
WARNING = pb.SEVERITY_WARNING
CRITICAL = pb.SEVERITY_CRITICAL

# Default severity of each kind (the table); trading-state alerts are CRITICAL only for
# HALTED and REDUCING (alerts.pipeline decides), ACTIVE again is INFO.
DEFAULT_SEVERITY: dict[int, int] = {
    pb.ALERT_KIND_CHECK_REJECT: WARNING,
    pb.ALERT_KIND_CHECK_WARNING: INFO,
    pb.ALERT_KIND_TRADING_STATE: CRITICAL,
    pb.ALERT_KIND_LIMIT_CHANGED: INFO,
    pb.ALERT_KIND_OVERFILL: WARNING,
    pb.ALERT_KIND_LATE_FILL: WARNING,
    pb.ALERT_KIND_UNKNOWN_FILL: WARNING,
    pb.ALERT_KIND_BREAKER_OPEN: CRITICAL,
    pb.ALERT_KIND_BACKLOG: CRITICAL,
    pb.ALERT_KIND_SUBSCRIBER_DROPPED: CRITICAL,
    pb.ALERT_KIND_ALERTS_LOST: CRITICAL,
    pb.ALERT_KIND_JOURNAL_FAILED: CRITICAL,
}

# (kind, check, account, symbol, limit_id): repeats of one key inside the dedupe window are counted.
AlertKey = tuple[int, int, str, str, str]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert (riskd.v1.Alert). ``time`` is Unix seconds; ``seq`` 0 until the pipeline numbers it."""

    seq: int
    time: float
    severity: int
    kind: int
    check: int = 0
    account: str = ""
    symbol: str = ""
    limit_id: str = ""
    message: str = ""
    observed: float = 0.0
    threshold: float = 0.0
    count: int = 1
    summary: bool = False
    client_order_id: str = ""
    # The serialised ``alerts`` entry (field 1 of SubscribeAlertsResponse and of QueryAlertsResponse:
    # tag, length, Alert bytes), made once when the alert is numbered (``numbered``) and reused by
    # every subscriber and query; b"" until then.
    wire: bytes = field(default=b"", compare=False, repr=False)

    def numbered(self, seq: int) -> Alert:
        """This alert with its seq, and its wire bytes made once."""
        # time to the microsecond: what PostgreSQL keeps, so an alert reads the same after a restart
        alert = replace(self, seq=seq, time=round(self.time * 1e6) / 1e6)
        object.__setattr__(alert, "wire", alerts_entry(alert.to_pb().SerializeToString()))
        return alert

    @property
    def key(self) -> AlertKey:
        return (self.kind, self.check, self.account, self.symbol, self.limit_id)

    def to_pb(self) -> pb.Alert:
        msg = pb.Alert(
            seq=self.seq,
            severity=self.severity,  # type: ignore[arg-type]
            kind=self.kind,  # type: ignore[arg-type]
            check=self.check,  # type: ignore[arg-type]
            account=self.account,
            symbol=self.symbol,
            limit_id=self.limit_id,
            message=self.message,
            observed=self.observed,
            threshold=self.threshold,
            count=self.count,
            summary=self.summary,
            client_order_id=self.client_order_id,
        )
        seconds = int(self.time // 1)
        msg.time.seconds = seconds
        msg.time.nanos = min(999_999_000, round((self.time - seconds) * 1e6) * 1000)
        return msg

    @classmethod
    def from_pb(cls, msg: pb.Alert) -> Alert:
        return cls(
            seq=msg.seq,
            time=msg.time.seconds + msg.time.nanos / 1e9,
            severity=msg.severity,
            kind=msg.kind,
            check=msg.check,
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


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def alerts_entry(alert_bytes: bytes) -> bytes:
    """One ``repeated Alert alerts = 1`` entry: tag 0x0a, varint length, the Alert's bytes."""
    return b"\x0a" + varint(len(alert_bytes)) + alert_bytes


def wire_of(alert: Alert) -> bytes:
    """The alert's ``alerts`` entry: made when it was numbered, or now (an alert read back)."""
    return alert.wire or alerts_entry(alert.to_pb().SerializeToString())


def _frozen(values: Iterable) -> frozenset:
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a subscriber or query wants: every part must match; an empty set means any."""

    min_severity: int = 0
    accounts: frozenset[str] = field(default_factory=frozenset)
    symbols: frozenset[str] = field(default_factory=frozenset)
    kinds: frozenset[int] = field(default_factory=frozenset)
    checks: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def from_pb(cls, msg: pb.AlertFilter) -> AlertFilter:
        return cls(
            min_severity=msg.min_severity,
            accounts=_frozen(msg.accounts),
            symbols=_frozen(msg.symbols),
            kinds=_frozen(msg.kinds),
            checks=_frozen(msg.checks),
        )

    @property
    def is_any(self) -> bool:
        return not (self.min_severity or self.accounts or self.symbols or self.kinds or self.checks)

    def matches(self, alert: Alert) -> bool:
        return (
            alert.severity >= self.min_severity
            and (not self.accounts or alert.account in self.accounts)
            and (not self.symbols or alert.symbol in self.symbols)
            and (not self.kinds or alert.kind in self.kinds)
            and (not self.checks or alert.check in self.checks)
        )
