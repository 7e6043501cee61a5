"""Plain values the client takes and returns, plus the one exception it raises for RPC failures.

Everything here is a frozen, slotted dataclass so results can be shared between threads and kept
in sets or dict keys; nothing here talks to the network.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

import grpc

# ---------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Order:
    """One order to check; side is "BUY"/"SELL" (any case) or the riskd.v1.Side number.

    price 0 means a market order, priced by the server at the symbol's mark.
    """

    client_order_id: str
    account: str
    symbol: str
    side: str | int
    quantity: float
    price: float = 0.0


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution report; type is "FILL", "CANCELED", "REJECTED", "EXPIRED" or the ExecType number.

    quantity and price matter only for fills. account, symbol and side (keyword-only, as an
    execution report's FIX tags 1, 55, 54) name the order: the server uses them only for a fill of
    an order it does not know (never checked through riskd, or forgotten), which then moves that
    position instead of being dropped. Leave them empty (side 0) to send none.
    """

    client_order_id: str
    type: str | int
    quantity: float = 0.0
    price: float = 0.0
    _: KW_ONLY
    account: str = ""
    symbol: str = ""
    side: str | int = 0


@dataclass(frozen=True, slots=True)
class Position:
    """A signed position (negative is short) that replaces the account's position in the symbol."""

    account: str
    symbol: str
    quantity: float


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """A risk limit; "" for account or symbol means every account or symbol.

    kind takes a check name ("MAX_ORDER_QUANTITY", "max-order-quantity") or the RiskCheck number;
    limits read back from the server carry the canonical name. Everything after threshold is
    keyword-only so an account is never mistaken for a symbol.
    """

    limit_id: str
    kind: str | int
    threshold: float
    _: KW_ONLY
    account: str = ""
    symbol: str = ""
    warn_fraction: float = 0.0
    disabled: bool = False
    description: str = ""
    # Dynamic limits: > 0 tightens the threshold when volatility rises above it (see the README).
    reference_volatility: float = 0.0
    min_scale: float = 0.0  # lowest scale it tightens to; 0: the server's default
    # Read back only (not compared: it moves with the market): the threshold the server enforces
    # now, = threshold unless the limit is dynamic.
    effective_threshold: float | None = field(default=None, compare=False)


# ---------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ViolationInfo:
    """One failed check (or, with warning=True, one crossed warn_fraction) of one order.

    check is the RiskCheck name without its prefix ("MAX_ORDER_QUANTITY"); code is its number.
    limit_id is empty for built-in checks such as DUPLICATE_ORDER_ID.
    """

    check: str
    limit_id: str
    observed: float
    threshold: float
    warning: bool
    code: int


@dataclass(frozen=True, slots=True)
class OrderResult:
    """The verdict on order `index` of a batch; reasons holds its failures and its warnings."""

    index: int
    client_order_id: str
    accepted: bool
    reject_mask: int
    reasons: tuple[ViolationInfo, ...] = ()

    @property
    def failed_checks(self) -> tuple[str, ...]:
        """Names of the checks that rejected the order (warnings excluded)."""
        return tuple(v.check for v in self.reasons if not v.warning)

    @property
    def warnings(self) -> tuple[ViolationInfo, ...]:
        return tuple(v for v in self.reasons if v.warning)


@dataclass(frozen=True, slots=True)
class ExecutionResults:
    """Per-report outcome of report_executions; errors[i] says why report i was not applied."""

    client_order_id: tuple[str, ...]
    applied: tuple[bool, ...]
    errors: tuple[str, ...]
    state_version: int

    def __len__(self) -> int:
        return len(self.applied)

    @property
    def all_applied(self) -> bool:
        return all(self.applied)

    def failed(self) -> list[tuple[int, str, str]]:
        """(index, client_order_id, error) of every report that was not applied."""
        return [
            (i, self.client_order_id[i] if i < len(self.client_order_id) else "", self.errors[i])
            for i, ok in enumerate(self.applied)
            if not ok
        ]


@dataclass(frozen=True, slots=True)
class StateChange:
    """Result of update_prices / load_positions.

    persisted is the server's ``riskd-persisted`` trailer: False means the change is applied but
    only queued for the database; None means the server did not say.
    """

    count: int
    state_version: int
    persisted: bool | None = None


@dataclass(frozen=True, slots=True)
class LimitsChange:
    """Result of upsert_limits / delete_limits; not_found lists requested ids that did not exist."""

    count: int
    limits_version: int
    not_found: tuple[str, ...] = ()
    persisted: bool | None = None


@dataclass(frozen=True, slots=True)
class LimitListing:
    """Limits as read from one limit-set version, ordered by limit_id."""

    limits: tuple[LimitSpec, ...]
    limits_version: int

    def __len__(self) -> int:
        return len(self.limits)

    def __iter__(self):
        return iter(self.limits)

    def by_id(self) -> dict[str, LimitSpec]:
        return {lim.limit_id: lim for lim in self.limits}


@dataclass(frozen=True, slots=True)
class TradingStateChange:
    """Result of set_trading_state: the state before the change ("ACTIVE", "REDUCING", "HALTED")."""

    previous: str
    state_version: int
    persisted: bool | None = None


@dataclass(frozen=True, slots=True)
class AlertInfo:
    """One alert (riskd.v1.Alert) as subscribe_alerts yields it.

    time is Unix seconds; severity ("INFO", "WARNING", "CRITICAL"), kind ("CHECK_REJECT",
    "TRADING_STATE", ...) and check ("MAX_POSITION", or "" when the alert is not about a check)
    are names; count is how many occurrences the alert stands for (a dedupe summary's repeats).
    """

    seq: int
    time: float
    severity: str
    kind: str
    check: str
    account: str
    symbol: str
    limit_id: str
    message: str
    observed: float
    threshold: float
    count: int
    summary: bool
    client_order_id: str


@dataclass(frozen=True, slots=True)
class AlertBatch:
    """One write on an alert stream: the alerts (oldest first), how many this subscriber lost since
    the previous batch because it read too slowly (dropped), and, after a resume, how many alerts
    after the resume point the server no longer held (missed)."""

    alerts: tuple[AlertInfo, ...]
    dropped: int = 0
    missed: int = 0

    def __len__(self) -> int:
        return len(self.alerts)

    def __iter__(self):
        return iter(self.alerts)


@dataclass(frozen=True, slots=True)
class AlertPage:
    """A page of the alert history, newest first; pass next_before_seq as before_seq for the next
    page (0: there is none)."""

    alerts: tuple[AlertInfo, ...]
    next_before_seq: int

    def __len__(self) -> int:
        return len(self.alerts)

    def __iter__(self):
        return iter(self.alerts)


@dataclass(frozen=True, slots=True)
class AlertWindow:
    """Alert occurrences over one sliding window: total, per check ("" for alerts that are not
    about a check) most first, the top offending accounts most first, and how many accounts."""

    seconds: int
    total: int
    by_check: tuple[tuple[str, int], ...]
    top_accounts: tuple[tuple[str, int], ...]
    accounts: int


@dataclass(frozen=True, slots=True)
class AlertStatsReport:
    """GetAlertStats: windows of 1 min, 15 min and 1 h; totals since the server started (alerts
    raised, occurrences counted, occurrences the alert path lost) and the newest seq."""

    windows: tuple[AlertWindow, ...]
    raised: int
    occurrences: int
    lost: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A non-flat position at its mark; mark and value are NaN when the symbol has no mark."""

    symbol: str
    quantity: float
    mark: float
    value: float


@dataclass(frozen=True, slots=True)
class LimitUtilisation:
    """How close a limit is to breach: utilisation = observed / threshold (1.0 = at the limit).

    kind is the check name ("MAX_GROSS_EXPOSURE"); symbol is "" for account-level kinds.
    """

    limit_id: str
    kind: str
    symbol: str
    observed: float
    threshold: float
    utilisation: float


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """One account's risk: exposure, open orders, positions, its own trading state ("ACTIVE",
    "REDUCING", "HALTED") and the (at most five) limits closest to breach, closest first."""

    account: str
    gross: float
    net: float
    open_orders: int
    positions: tuple[PositionSnapshot, ...]
    trading_state: str
    closest_limits: tuple[LimitUtilisation, ...]


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """Accounts read at one state version (from risk_snapshot, or one response of
    stream_risk_snapshots: there, the accounts that changed since the previous one)."""

    accounts: tuple[AccountSnapshot, ...]
    state_version: int
    firm_trading_state: str

    def __len__(self) -> int:
        return len(self.accounts)

    def __iter__(self):
        return iter(self.accounts)

    def by_account(self) -> dict[str, AccountSnapshot]:
        return {a.account: a for a in self.accounts}


# ---------------------------------------------------------------------------------------- errors


class RiskdError(Exception):
    """An RPC failed; carries the gRPC status so callers can branch on it without importing grpc.

    code is the status name ("INVALID_ARGUMENT", "UNAVAILABLE", ...); status the grpc.StatusCode.
    """

    def __init__(self, method: str, target: str, status: grpc.StatusCode, details: str) -> None:
        self.method = method
        self.target = target
        self.status = status
        self.code: str = status.name
        self.details = details
        super().__init__(self.describe())

    @classmethod
    def from_rpc(cls, exc: grpc.RpcError, method: str, target: str) -> RiskdError:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        details = exc.details() if callable(getattr(exc, "details", None)) else None
        return cls(method, target, code or grpc.StatusCode.UNKNOWN, details or "")

    def describe(self) -> str:
        """One line a person can act on."""
        if self.status is grpc.StatusCode.UNAVAILABLE:
            if not self.details or "connect" in self.details.lower():
                return f"cannot reach server at {self.target} ({self.code})"
            # The server answered but refuses work for now (e.g. its persistence backlog is full).
            return f"{self.method}: server at {self.target} is unavailable ({self.code}): {self.details}"
        if self.status is grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"{self.method}: no answer from {self.target} in time ({self.code})"
        return f"{self.method} failed: {self.code}: {self.details}"
