"""Plain values the client takes and returns, plus the one exception it raises for RPC failures.

Everything here is a frozen, slotted dataclass so results can be shared between threads and kept
in sets or dict keys; nothing here talks to the network.
"""

from __future__ import annotations

import heapq
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
    template: str = ""  # the template it came from (apply_template); "" when set by hand
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
class LimitChangeInfo:
    """One limit in a diff: old is None when added, new is None when deleted."""

    limit_id: str
    old: LimitSpec | None
    new: LimitSpec | None


@dataclass(frozen=True, slots=True)
class LimitDiffInfo:
    """Counts of an import's or a template's changes, and the first of them in limit_id order
    (``omitted`` more were not listed)."""

    added: int
    changed: int
    deleted: int
    unchanged: int
    changes: tuple[LimitChangeInfo, ...]
    omitted: int


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """A named limit template (limits with an empty account; limit_id a suffix)."""

    name: str
    description: str
    limits: tuple[LimitSpec, ...]
    source: str  # "builtin" or the server's templates_file


@dataclass(frozen=True, slots=True)
class TemplateApplied:
    """Result of apply_template: the expansion, the diff, how many were upserted (0 on a dry run)."""

    limits: tuple[LimitSpec, ...]
    upserted: int
    limits_version: int
    diff: LimitDiffInfo
    persisted: bool | None = None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Result of import_limits: the diff applied (or, with dry_run, that would be)."""

    diff: LimitDiffInfo
    limits_version: int
    records: int
    dry_run: bool
    persisted: bool | None = None


@dataclass(frozen=True, slots=True)
class LimitVersionInfo:
    """One stored version of a limit: limit is None for a deletion; time in Unix seconds."""

    limit: LimitSpec | None
    limits_version: int
    who: str
    time: float
    action: str


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


@dataclass(frozen=True, slots=True)
class SymbolSize:
    """One symbol of a PositionSizing: the largest buy and sell the account's VaR budget allows (inf:
    unbounded; 0 with price 0: the symbol has no mark, so no order could be priced), dVaR/dw
    (marginal_var) and w x marginal (component_var), the mark used and the current exposure w. With
    apply_limits, limit_buy/limit_sell: the largest the quantity, notional, position, gross and net
    limits accept (inf when none applies)."""

    symbol: str
    max_buy: float
    max_sell: float
    marginal_var: float
    component_var: float
    price: float
    exposure: float
    limit_buy: float
    limit_sell: float

    @property
    def buy(self) -> float:
        """The largest buy both the VaR budget and the limits accept."""
        return min(self.max_buy, self.limit_buy)

    @property
    def sell(self) -> float:
        return min(self.max_sell, self.limit_sell)


@dataclass(frozen=True, slots=True)
class PositionSizing:
    """size_positions: the account's VaR now, the budget used (max(budget, VaR): an order may take
    the VaR up to it, or lower it), the model version, the server's time in microseconds, and the
    per-symbol columns in the order asked (model order when none was named). Columnar because a
    whole-model answer has thousands of symbols: iterating, ``sizes``, ``by_symbol`` and
    ``top_contributors`` build SymbolSize values on demand. No limit columns (apply_limits off):
    limit_buy and limit_sell are +inf."""

    var: float
    var_budget: float
    model_version: str
    server_micros: float
    symbol: tuple[str, ...]
    max_buy: tuple[float, ...]
    max_sell: tuple[float, ...]
    marginal_var: tuple[float, ...]
    component_var: tuple[float, ...]
    price: tuple[float, ...]
    exposure: tuple[float, ...]
    limit_buy: tuple[float, ...]
    limit_sell: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.symbol)

    def __getitem__(self, i: int) -> SymbolSize:
        return SymbolSize(
            self.symbol[i], self.max_buy[i], self.max_sell[i], self.marginal_var[i], self.component_var[i],
            self.price[i], self.exposure[i], self.limit_buy[i], self.limit_sell[i],
        )  # fmt: skip

    def __iter__(self):
        return map(
            SymbolSize, self.symbol, self.max_buy, self.max_sell, self.marginal_var, self.component_var,
            self.price, self.exposure, self.limit_buy, self.limit_sell,
        )  # fmt: skip

    @property
    def sizes(self) -> tuple[SymbolSize, ...]:
        return tuple(self)

    def by_symbol(self) -> dict[str, SymbolSize]:
        return {s.symbol: s for s in self}

    def top_contributors(self, n: int = 10) -> list[SymbolSize]:
        """The n symbols with the largest component VaR, largest first (what drives the VaR);
        symbols contributing exactly 0 (not held) are left out."""
        c = self.component_var
        top = heapq.nlargest(n, (i for i in range(len(c)) if c[i] != 0.0), key=c.__getitem__)
        return [self[i] for i in top]


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


# ---------------------------------------------------------------------------------------- VaR model


@dataclass(frozen=True, slots=True)
class ReturnsImported:
    """Result of import_returns: ``rows`` sent, ``upserted`` of them new or changed in the
    database (a re-import of the same data upserts 0), distinct symbols and the day range sent."""

    rows: int
    upserted: int
    symbols: int
    first_day: int
    last_day: int


@dataclass(frozen=True, slots=True)
class ModelRefreshed:
    """Result of refresh_risk_model: the version now in force and the build's seconds."""

    model_version: str
    build_seconds: float


@dataclass(frozen=True, slots=True)
class RiskModelInfo:
    """The risk model in force (get_risk_model). ``model_version`` is empty when the server has
    none yet; ``symbols``/``volatility`` are filled only with include_symbols=True."""

    model_version: str
    model: str  # "factor" or "sample"
    symbol_count: int
    days: int
    first_day: int
    last_day: int
    factors: int
    explained_variance: float
    defaulted_symbols: tuple[str, ...]
    memory_bytes: int
    confidence: float
    horizon_days: float
    z: float
    built_at: float  # Unix seconds
    symbols: tuple[str, ...] = ()
    volatility: tuple[float, ...] = ()

    @property
    def exists(self) -> bool:
        return bool(self.model_version)
