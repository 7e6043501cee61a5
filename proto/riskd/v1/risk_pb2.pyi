import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_BUY: _ClassVar[Side]
    SIDE_SELL: _ClassVar[Side]

class RiskCheck(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_CHECK_UNSPECIFIED: _ClassVar[RiskCheck]
    RISK_CHECK_MAX_ORDER_QUANTITY: _ClassVar[RiskCheck]
    RISK_CHECK_MAX_ORDER_NOTIONAL: _ClassVar[RiskCheck]
    RISK_CHECK_MAX_POSITION: _ClassVar[RiskCheck]
    RISK_CHECK_MAX_GROSS_EXPOSURE: _ClassVar[RiskCheck]
    RISK_CHECK_MAX_NET_EXPOSURE: _ClassVar[RiskCheck]
    RISK_CHECK_PRICE_COLLAR: _ClassVar[RiskCheck]
    RISK_CHECK_MAX_ORDER_RATE: _ClassVar[RiskCheck]
    RISK_CHECK_MAX_OPEN_ORDERS: _ClassVar[RiskCheck]
    RISK_CHECK_RESTRICTED_SYMBOL: _ClassVar[RiskCheck]
    RISK_CHECK_MAX_VAR: _ClassVar[RiskCheck]
    RISK_CHECK_INVALID_ORDER: _ClassVar[RiskCheck]
    RISK_CHECK_DUPLICATE_ORDER_ID: _ClassVar[RiskCheck]
    RISK_CHECK_TRADING_HALTED: _ClassVar[RiskCheck]
    RISK_CHECK_REDUCE_ONLY: _ClassVar[RiskCheck]
    RISK_CHECK_NO_REFERENCE_PRICE: _ClassVar[RiskCheck]

class ExecType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXEC_TYPE_UNSPECIFIED: _ClassVar[ExecType]
    EXEC_TYPE_FILL: _ClassVar[ExecType]
    EXEC_TYPE_CANCELED: _ClassVar[ExecType]
    EXEC_TYPE_REJECTED: _ClassVar[ExecType]
    EXEC_TYPE_EXPIRED: _ClassVar[ExecType]

class TradingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRADING_STATE_UNSPECIFIED: _ClassVar[TradingState]
    TRADING_STATE_ACTIVE: _ClassVar[TradingState]
    TRADING_STATE_REDUCING: _ClassVar[TradingState]
    TRADING_STATE_HALTED: _ClassVar[TradingState]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_KIND_UNSPECIFIED: _ClassVar[AlertKind]
    ALERT_KIND_CHECK_REJECT: _ClassVar[AlertKind]
    ALERT_KIND_CHECK_WARNING: _ClassVar[AlertKind]
    ALERT_KIND_TRADING_STATE: _ClassVar[AlertKind]
    ALERT_KIND_LIMIT_CHANGED: _ClassVar[AlertKind]
    ALERT_KIND_OVERFILL: _ClassVar[AlertKind]
    ALERT_KIND_LATE_FILL: _ClassVar[AlertKind]
    ALERT_KIND_UNKNOWN_FILL: _ClassVar[AlertKind]
    ALERT_KIND_BREAKER_OPEN: _ClassVar[AlertKind]
    ALERT_KIND_BACKLOG: _ClassVar[AlertKind]
    ALERT_KIND_SUBSCRIBER_DROPPED: _ClassVar[AlertKind]
    ALERT_KIND_ALERTS_LOST: _ClassVar[AlertKind]
    ALERT_KIND_JOURNAL_FAILED: _ClassVar[AlertKind]
SIDE_UNSPECIFIED: Side
SIDE_BUY: Side
SIDE_SELL: Side
RISK_CHECK_UNSPECIFIED: RiskCheck
RISK_CHECK_MAX_ORDER_QUANTITY: RiskCheck
RISK_CHECK_MAX_ORDER_NOTIONAL: RiskCheck
RISK_CHECK_MAX_POSITION: RiskCheck
RISK_CHECK_MAX_GROSS_EXPOSURE: RiskCheck
RISK_CHECK_MAX_NET_EXPOSURE: RiskCheck
RISK_CHECK_PRICE_COLLAR: RiskCheck
RISK_CHECK_MAX_ORDER_RATE: RiskCheck
RISK_CHECK_MAX_OPEN_ORDERS: RiskCheck
RISK_CHECK_RESTRICTED_SYMBOL: RiskCheck
RISK_CHECK_MAX_VAR: RiskCheck
RISK_CHECK_INVALID_ORDER: RiskCheck
RISK_CHECK_DUPLICATE_ORDER_ID: RiskCheck
RISK_CHECK_TRADING_HALTED: RiskCheck
RISK_CHECK_REDUCE_ONLY: RiskCheck
RISK_CHECK_NO_REFERENCE_PRICE: RiskCheck
EXEC_TYPE_UNSPECIFIED: ExecType
EXEC_TYPE_FILL: ExecType
EXEC_TYPE_CANCELED: ExecType
EXEC_TYPE_REJECTED: ExecType
EXEC_TYPE_EXPIRED: ExecType
TRADING_STATE_UNSPECIFIED: TradingState
TRADING_STATE_ACTIVE: TradingState
TRADING_STATE_REDUCING: TradingState
TRADING_STATE_HALTED: TradingState
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity
ALERT_KIND_UNSPECIFIED: AlertKind
ALERT_KIND_CHECK_REJECT: AlertKind
ALERT_KIND_CHECK_WARNING: AlertKind
ALERT_KIND_TRADING_STATE: AlertKind
ALERT_KIND_LIMIT_CHANGED: AlertKind
ALERT_KIND_OVERFILL: AlertKind
ALERT_KIND_LATE_FILL: AlertKind
ALERT_KIND_UNKNOWN_FILL: AlertKind
ALERT_KIND_BREAKER_OPEN: AlertKind
ALERT_KIND_BACKLOG: AlertKind
ALERT_KIND_SUBSCRIBER_DROPPED: AlertKind
ALERT_KIND_ALERTS_LOST: AlertKind
ALERT_KIND_JOURNAL_FAILED: AlertKind

class OrderBatch(_message.Message):
    __slots__ = ("client_order_id", "account", "symbol", "side", "quantity", "price")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: _containers.RepeatedScalarFieldContainer[str]
    account: _containers.RepeatedScalarFieldContainer[str]
    symbol: _containers.RepeatedScalarFieldContainer[str]
    side: _containers.RepeatedScalarFieldContainer[Side]
    quantity: _containers.RepeatedScalarFieldContainer[float]
    price: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, client_order_id: _Optional[_Iterable[str]] = ..., account: _Optional[_Iterable[str]] = ..., symbol: _Optional[_Iterable[str]] = ..., side: _Optional[_Iterable[_Union[Side, str]]] = ..., quantity: _Optional[_Iterable[float]] = ..., price: _Optional[_Iterable[float]] = ...) -> None: ...

class Violation(_message.Message):
    __slots__ = ("order_index", "check", "limit_id", "observed", "threshold", "warning")
    ORDER_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    order_index: int
    check: RiskCheck
    limit_id: str
    observed: float
    threshold: float
    warning: bool
    def __init__(self, order_index: _Optional[int] = ..., check: _Optional[_Union[RiskCheck, str]] = ..., limit_id: _Optional[str] = ..., observed: _Optional[float] = ..., threshold: _Optional[float] = ..., warning: _Optional[bool] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("accepted", "reject_mask", "violations", "state_version")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECT_MASK_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    accepted: _containers.RepeatedScalarFieldContainer[bool]
    reject_mask: _containers.RepeatedScalarFieldContainer[int]
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    state_version: int
    def __init__(self, accepted: _Optional[_Iterable[bool]] = ..., reject_mask: _Optional[_Iterable[int]] = ..., violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ..., state_version: _Optional[int] = ...) -> None: ...

class CheckOrdersRequest(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: OrderBatch
    def __init__(self, orders: _Optional[_Union[OrderBatch, _Mapping]] = ...) -> None: ...

class CheckOrdersResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: CheckResult
    def __init__(self, result: _Optional[_Union[CheckResult, _Mapping]] = ...) -> None: ...

class CheckOrderStreamRequest(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: OrderBatch
    def __init__(self, orders: _Optional[_Union[OrderBatch, _Mapping]] = ...) -> None: ...

class CheckOrderStreamResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: CheckResult
    def __init__(self, result: _Optional[_Union[CheckResult, _Mapping]] = ...) -> None: ...

class ReportExecutionsRequest(_message.Message):
    __slots__ = ("client_order_id", "type", "quantity", "price", "account", "symbol", "side")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: _containers.RepeatedScalarFieldContainer[str]
    type: _containers.RepeatedScalarFieldContainer[ExecType]
    quantity: _containers.RepeatedScalarFieldContainer[float]
    price: _containers.RepeatedScalarFieldContainer[float]
    account: _containers.RepeatedScalarFieldContainer[str]
    symbol: _containers.RepeatedScalarFieldContainer[str]
    side: _containers.RepeatedScalarFieldContainer[Side]
    def __init__(self, client_order_id: _Optional[_Iterable[str]] = ..., type: _Optional[_Iterable[_Union[ExecType, str]]] = ..., quantity: _Optional[_Iterable[float]] = ..., price: _Optional[_Iterable[float]] = ..., account: _Optional[_Iterable[str]] = ..., symbol: _Optional[_Iterable[str]] = ..., side: _Optional[_Iterable[_Union[Side, str]]] = ...) -> None: ...

class ReportExecutionsResponse(_message.Message):
    __slots__ = ("applied", "error", "state_version")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    applied: _containers.RepeatedScalarFieldContainer[bool]
    error: _containers.RepeatedScalarFieldContainer[str]
    state_version: int
    def __init__(self, applied: _Optional[_Iterable[bool]] = ..., error: _Optional[_Iterable[str]] = ..., state_version: _Optional[int] = ...) -> None: ...

class UpdatePricesRequest(_message.Message):
    __slots__ = ("symbol", "price")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    symbol: _containers.RepeatedScalarFieldContainer[str]
    price: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, symbol: _Optional[_Iterable[str]] = ..., price: _Optional[_Iterable[float]] = ...) -> None: ...

class UpdatePricesResponse(_message.Message):
    __slots__ = ("updated", "state_version")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    updated: int
    state_version: int
    def __init__(self, updated: _Optional[int] = ..., state_version: _Optional[int] = ...) -> None: ...

class LoadPositionsRequest(_message.Message):
    __slots__ = ("account", "symbol", "quantity")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    account: _containers.RepeatedScalarFieldContainer[str]
    symbol: _containers.RepeatedScalarFieldContainer[str]
    quantity: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, account: _Optional[_Iterable[str]] = ..., symbol: _Optional[_Iterable[str]] = ..., quantity: _Optional[_Iterable[float]] = ...) -> None: ...

class LoadPositionsResponse(_message.Message):
    __slots__ = ("loaded", "state_version")
    LOADED_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    loaded: int
    state_version: int
    def __init__(self, loaded: _Optional[int] = ..., state_version: _Optional[int] = ...) -> None: ...

class Limit(_message.Message):
    __slots__ = ("limit_id", "kind", "account", "symbol", "threshold", "warn_fraction", "disabled", "description", "template", "reference_volatility", "min_scale", "effective_threshold")
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WARN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_VOLATILITY_FIELD_NUMBER: _ClassVar[int]
    MIN_SCALE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    limit_id: str
    kind: RiskCheck
    account: str
    symbol: str
    threshold: float
    warn_fraction: float
    disabled: bool
    description: str
    template: str
    reference_volatility: float
    min_scale: float
    effective_threshold: float
    def __init__(self, limit_id: _Optional[str] = ..., kind: _Optional[_Union[RiskCheck, str]] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., threshold: _Optional[float] = ..., warn_fraction: _Optional[float] = ..., disabled: _Optional[bool] = ..., description: _Optional[str] = ..., template: _Optional[str] = ..., reference_volatility: _Optional[float] = ..., min_scale: _Optional[float] = ..., effective_threshold: _Optional[float] = ...) -> None: ...

class UpsertLimitsRequest(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    def __init__(self, limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ...) -> None: ...

class UpsertLimitsResponse(_message.Message):
    __slots__ = ("upserted", "limits_version")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_VERSION_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    limits_version: int
    def __init__(self, upserted: _Optional[int] = ..., limits_version: _Optional[int] = ...) -> None: ...

class DeleteLimitsRequest(_message.Message):
    __slots__ = ("limit_ids",)
    LIMIT_IDS_FIELD_NUMBER: _ClassVar[int]
    limit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, limit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteLimitsResponse(_message.Message):
    __slots__ = ("deleted", "not_found", "limits_version")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    LIMITS_VERSION_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    not_found: _containers.RepeatedScalarFieldContainer[str]
    limits_version: int
    def __init__(self, deleted: _Optional[int] = ..., not_found: _Optional[_Iterable[str]] = ..., limits_version: _Optional[int] = ...) -> None: ...

class ListLimitsRequest(_message.Message):
    __slots__ = ("account", "symbol", "kind", "template")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    account: str
    symbol: str
    kind: RiskCheck
    template: str
    def __init__(self, account: _Optional[str] = ..., symbol: _Optional[str] = ..., kind: _Optional[_Union[RiskCheck, str]] = ..., template: _Optional[str] = ...) -> None: ...

class ListLimitsResponse(_message.Message):
    __slots__ = ("limits", "limits_version")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_VERSION_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    limits_version: int
    def __init__(self, limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ..., limits_version: _Optional[int] = ...) -> None: ...

class SetTradingStateRequest(_message.Message):
    __slots__ = ("account", "state", "reason")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    account: str
    state: TradingState
    reason: str
    def __init__(self, account: _Optional[str] = ..., state: _Optional[_Union[TradingState, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class SetTradingStateResponse(_message.Message):
    __slots__ = ("previous", "state_version")
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    previous: TradingState
    state_version: int
    def __init__(self, previous: _Optional[_Union[TradingState, str]] = ..., state_version: _Optional[int] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("seq", "time", "severity", "kind", "check", "account", "symbol", "limit_id", "message", "observed", "threshold", "count", "summary", "client_order_id")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    severity: Severity
    kind: AlertKind
    check: RiskCheck
    account: str
    symbol: str
    limit_id: str
    message: str
    observed: float
    threshold: float
    count: int
    summary: bool
    client_order_id: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., severity: _Optional[_Union[Severity, str]] = ..., kind: _Optional[_Union[AlertKind, str]] = ..., check: _Optional[_Union[RiskCheck, str]] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., limit_id: _Optional[str] = ..., message: _Optional[str] = ..., observed: _Optional[float] = ..., threshold: _Optional[float] = ..., count: _Optional[int] = ..., summary: _Optional[bool] = ..., client_order_id: _Optional[str] = ...) -> None: ...

class AlertFilter(_message.Message):
    __slots__ = ("min_severity", "accounts", "symbols", "kinds", "checks")
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    min_severity: Severity
    accounts: _containers.RepeatedScalarFieldContainer[str]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[AlertKind]
    checks: _containers.RepeatedScalarFieldContainer[RiskCheck]
    def __init__(self, min_severity: _Optional[_Union[Severity, str]] = ..., accounts: _Optional[_Iterable[str]] = ..., symbols: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[_Union[AlertKind, str]]] = ..., checks: _Optional[_Iterable[_Union[RiskCheck, str]]] = ...) -> None: ...

class SubscribeAlertsRequest(_message.Message):
    __slots__ = ("filter", "after_seq")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    filter: AlertFilter
    after_seq: int
    def __init__(self, filter: _Optional[_Union[AlertFilter, _Mapping]] = ..., after_seq: _Optional[int] = ...) -> None: ...

class SubscribeAlertsResponse(_message.Message):
    __slots__ = ("alerts", "dropped", "missed")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    dropped: int
    missed: int
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., dropped: _Optional[int] = ..., missed: _Optional[int] = ...) -> None: ...

class QueryAlertsRequest(_message.Message):
    __slots__ = ("filter", "page_size", "before_seq")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    BEFORE_SEQ_FIELD_NUMBER: _ClassVar[int]
    filter: AlertFilter
    page_size: int
    before_seq: int
    def __init__(self, filter: _Optional[_Union[AlertFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., before_seq: _Optional[int] = ...) -> None: ...

class QueryAlertsResponse(_message.Message):
    __slots__ = ("alerts", "next_before_seq")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_BEFORE_SEQ_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    next_before_seq: int
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., next_before_seq: _Optional[int] = ...) -> None: ...

class GetAlertStatsRequest(_message.Message):
    __slots__ = ("top",)
    TOP_FIELD_NUMBER: _ClassVar[int]
    top: int
    def __init__(self, top: _Optional[int] = ...) -> None: ...

class CheckCount(_message.Message):
    __slots__ = ("check", "count")
    CHECK_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    check: RiskCheck
    count: int
    def __init__(self, check: _Optional[_Union[RiskCheck, str]] = ..., count: _Optional[int] = ...) -> None: ...

class AccountCount(_message.Message):
    __slots__ = ("account", "count")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    count: int
    def __init__(self, account: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class AlertStatsWindow(_message.Message):
    __slots__ = ("seconds", "total", "by_check", "top_accounts", "accounts")
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BY_CHECK_FIELD_NUMBER: _ClassVar[int]
    TOP_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    seconds: int
    total: int
    by_check: _containers.RepeatedCompositeFieldContainer[CheckCount]
    top_accounts: _containers.RepeatedCompositeFieldContainer[AccountCount]
    accounts: int
    def __init__(self, seconds: _Optional[int] = ..., total: _Optional[int] = ..., by_check: _Optional[_Iterable[_Union[CheckCount, _Mapping]]] = ..., top_accounts: _Optional[_Iterable[_Union[AccountCount, _Mapping]]] = ..., accounts: _Optional[int] = ...) -> None: ...

class GetAlertStatsResponse(_message.Message):
    __slots__ = ("windows", "raised", "occurrences", "lost", "last_seq")
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    RAISED_FIELD_NUMBER: _ClassVar[int]
    OCCURRENCES_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[AlertStatsWindow]
    raised: int
    occurrences: int
    lost: int
    last_seq: int
    def __init__(self, windows: _Optional[_Iterable[_Union[AlertStatsWindow, _Mapping]]] = ..., raised: _Optional[int] = ..., occurrences: _Optional[int] = ..., lost: _Optional[int] = ..., last_seq: _Optional[int] = ...) -> None: ...

class PositionSnapshot(_message.Message):
    __slots__ = ("symbol", "quantity", "mark", "value")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    quantity: float
    mark: float
    value: float
    def __init__(self, symbol: _Optional[str] = ..., quantity: _Optional[float] = ..., mark: _Optional[float] = ..., value: _Optional[float] = ...) -> None: ...

class LimitUtilisation(_message.Message):
    __slots__ = ("limit_id", "kind", "symbol", "observed", "threshold", "utilisation")
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UTILISATION_FIELD_NUMBER: _ClassVar[int]
    limit_id: str
    kind: RiskCheck
    symbol: str
    observed: float
    threshold: float
    utilisation: float
    def __init__(self, limit_id: _Optional[str] = ..., kind: _Optional[_Union[RiskCheck, str]] = ..., symbol: _Optional[str] = ..., observed: _Optional[float] = ..., threshold: _Optional[float] = ..., utilisation: _Optional[float] = ...) -> None: ...

class AccountSnapshot(_message.Message):
    __slots__ = ("account", "gross", "net", "open_orders", "positions", "trading_state", "closest_limits")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    GROSS_FIELD_NUMBER: _ClassVar[int]
    NET_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    CLOSEST_LIMITS_FIELD_NUMBER: _ClassVar[int]
    account: str
    gross: float
    net: float
    open_orders: int
    positions: _containers.RepeatedCompositeFieldContainer[PositionSnapshot]
    trading_state: TradingState
    closest_limits: _containers.RepeatedCompositeFieldContainer[LimitUtilisation]
    def __init__(self, account: _Optional[str] = ..., gross: _Optional[float] = ..., net: _Optional[float] = ..., open_orders: _Optional[int] = ..., positions: _Optional[_Iterable[_Union[PositionSnapshot, _Mapping]]] = ..., trading_state: _Optional[_Union[TradingState, str]] = ..., closest_limits: _Optional[_Iterable[_Union[LimitUtilisation, _Mapping]]] = ...) -> None: ...

class GetRiskSnapshotRequest(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accounts: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRiskSnapshotResponse(_message.Message):
    __slots__ = ("accounts", "state_version", "firm_trading_state")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRM_TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[AccountSnapshot]
    state_version: int
    firm_trading_state: TradingState
    def __init__(self, accounts: _Optional[_Iterable[_Union[AccountSnapshot, _Mapping]]] = ..., state_version: _Optional[int] = ..., firm_trading_state: _Optional[_Union[TradingState, str]] = ...) -> None: ...

class StreamRiskSnapshotsRequest(_message.Message):
    __slots__ = ("accounts", "min_interval_ms")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedScalarFieldContainer[str]
    min_interval_ms: int
    def __init__(self, accounts: _Optional[_Iterable[str]] = ..., min_interval_ms: _Optional[int] = ...) -> None: ...

class StreamRiskSnapshotsResponse(_message.Message):
    __slots__ = ("accounts", "state_version", "firm_trading_state")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRM_TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[AccountSnapshot]
    state_version: int
    firm_trading_state: TradingState
    def __init__(self, accounts: _Optional[_Iterable[_Union[AccountSnapshot, _Mapping]]] = ..., state_version: _Optional[int] = ..., firm_trading_state: _Optional[_Union[TradingState, str]] = ...) -> None: ...

class ImportReturnsRequest(_message.Message):
    __slots__ = ("symbol", "day", "ret")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    RET_FIELD_NUMBER: _ClassVar[int]
    symbol: _containers.RepeatedScalarFieldContainer[str]
    day: _containers.RepeatedScalarFieldContainer[int]
    ret: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, symbol: _Optional[_Iterable[str]] = ..., day: _Optional[_Iterable[int]] = ..., ret: _Optional[_Iterable[float]] = ...) -> None: ...

class ImportReturnsResponse(_message.Message):
    __slots__ = ("upserted", "symbols", "first_day", "last_day")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    FIRST_DAY_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    symbols: int
    first_day: int
    last_day: int
    def __init__(self, upserted: _Optional[int] = ..., symbols: _Optional[int] = ..., first_day: _Optional[int] = ..., last_day: _Optional[int] = ...) -> None: ...

class RefreshRiskModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RefreshRiskModelResponse(_message.Message):
    __slots__ = ("model_version", "build_seconds")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUILD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    build_seconds: float
    def __init__(self, model_version: _Optional[str] = ..., build_seconds: _Optional[float] = ...) -> None: ...

class GetRiskModelRequest(_message.Message):
    __slots__ = ("include_symbols",)
    INCLUDE_SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    include_symbols: bool
    def __init__(self, include_symbols: _Optional[bool] = ...) -> None: ...

class RiskModelSummary(_message.Message):
    __slots__ = ("model", "symbols", "days", "first_day", "last_day", "factors", "explained_variance", "defaulted_symbols", "memory_bytes", "confidence", "horizon_days", "z")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    FIRST_DAY_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    EXPLAINED_VARIANCE_FIELD_NUMBER: _ClassVar[int]
    DEFAULTED_SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    model: str
    symbols: int
    days: int
    first_day: int
    last_day: int
    factors: int
    explained_variance: float
    defaulted_symbols: _containers.RepeatedScalarFieldContainer[str]
    memory_bytes: int
    confidence: float
    horizon_days: float
    z: float
    def __init__(self, model: _Optional[str] = ..., symbols: _Optional[int] = ..., days: _Optional[int] = ..., first_day: _Optional[int] = ..., last_day: _Optional[int] = ..., factors: _Optional[int] = ..., explained_variance: _Optional[float] = ..., defaulted_symbols: _Optional[_Iterable[str]] = ..., memory_bytes: _Optional[int] = ..., confidence: _Optional[float] = ..., horizon_days: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class GetRiskModelResponse(_message.Message):
    __slots__ = ("model_version", "summary", "symbols", "volatility", "built_at")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    VOLATILITY_FIELD_NUMBER: _ClassVar[int]
    BUILT_AT_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    summary: RiskModelSummary
    symbols: _containers.RepeatedScalarFieldContainer[str]
    volatility: _containers.RepeatedScalarFieldContainer[float]
    built_at: _timestamp_pb2.Timestamp
    def __init__(self, model_version: _Optional[str] = ..., summary: _Optional[_Union[RiskModelSummary, _Mapping]] = ..., symbols: _Optional[_Iterable[str]] = ..., volatility: _Optional[_Iterable[float]] = ..., built_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SizePositionsRequest(_message.Message):
    __slots__ = ("account", "symbols", "var_budget", "apply_limits")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    VAR_BUDGET_FIELD_NUMBER: _ClassVar[int]
    APPLY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    account: str
    symbols: _containers.RepeatedScalarFieldContainer[str]
    var_budget: float
    apply_limits: bool
    def __init__(self, account: _Optional[str] = ..., symbols: _Optional[_Iterable[str]] = ..., var_budget: _Optional[float] = ..., apply_limits: _Optional[bool] = ...) -> None: ...

class PositionSizes(_message.Message):
    __slots__ = ("symbol", "max_buy_quantity", "max_sell_quantity", "marginal_var", "component_var", "price", "exposure", "limit_buy_quantity", "limit_sell_quantity")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    MAX_BUY_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MAX_SELL_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MARGINAL_VAR_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_VAR_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_BUY_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_SELL_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    symbol: _containers.RepeatedScalarFieldContainer[str]
    max_buy_quantity: _containers.RepeatedScalarFieldContainer[float]
    max_sell_quantity: _containers.RepeatedScalarFieldContainer[float]
    marginal_var: _containers.RepeatedScalarFieldContainer[float]
    component_var: _containers.RepeatedScalarFieldContainer[float]
    price: _containers.RepeatedScalarFieldContainer[float]
    exposure: _containers.RepeatedScalarFieldContainer[float]
    limit_buy_quantity: _containers.RepeatedScalarFieldContainer[float]
    limit_sell_quantity: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, symbol: _Optional[_Iterable[str]] = ..., max_buy_quantity: _Optional[_Iterable[float]] = ..., max_sell_quantity: _Optional[_Iterable[float]] = ..., marginal_var: _Optional[_Iterable[float]] = ..., component_var: _Optional[_Iterable[float]] = ..., price: _Optional[_Iterable[float]] = ..., exposure: _Optional[_Iterable[float]] = ..., limit_buy_quantity: _Optional[_Iterable[float]] = ..., limit_sell_quantity: _Optional[_Iterable[float]] = ...) -> None: ...

class SizePositionsResponse(_message.Message):
    __slots__ = ("var", "var_budget", "model_version", "sizes", "server_micros")
    VAR_FIELD_NUMBER: _ClassVar[int]
    VAR_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIZES_FIELD_NUMBER: _ClassVar[int]
    SERVER_MICROS_FIELD_NUMBER: _ClassVar[int]
    var: float
    var_budget: float
    model_version: str
    sizes: PositionSizes
    server_micros: float
    def __init__(self, var: _Optional[float] = ..., var_budget: _Optional[float] = ..., model_version: _Optional[str] = ..., sizes: _Optional[_Union[PositionSizes, _Mapping]] = ..., server_micros: _Optional[float] = ...) -> None: ...

class ApplyTemplateRequest(_message.Message):
    __slots__ = ("account", "template", "scale", "dry_run")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    account: str
    template: str
    scale: float
    dry_run: bool
    def __init__(self, account: _Optional[str] = ..., template: _Optional[str] = ..., scale: _Optional[float] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ApplyTemplateResponse(_message.Message):
    __slots__ = ("limits", "upserted", "limits_version", "diff")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    upserted: int
    limits_version: int
    diff: LimitDiff
    def __init__(self, limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ..., upserted: _Optional[int] = ..., limits_version: _Optional[int] = ..., diff: _Optional[_Union[LimitDiff, _Mapping]] = ...) -> None: ...

class ListTemplatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LimitTemplate(_message.Message):
    __slots__ = ("name", "description", "limits", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    source: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class ListTemplatesResponse(_message.Message):
    __slots__ = ("templates",)
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[LimitTemplate]
    def __init__(self, templates: _Optional[_Iterable[_Union[LimitTemplate, _Mapping]]] = ...) -> None: ...

class ExportLimitsRequest(_message.Message):
    __slots__ = ("filter", "chunk_size")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    filter: ListLimitsRequest
    chunk_size: int
    def __init__(self, filter: _Optional[_Union[ListLimitsRequest, _Mapping]] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class ExportLimitsResponse(_message.Message):
    __slots__ = ("limits", "limits_version")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_VERSION_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    limits_version: int
    def __init__(self, limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ..., limits_version: _Optional[int] = ...) -> None: ...

class ImportLimitsRequest(_message.Message):
    __slots__ = ("limits", "first_line", "dry_run", "replace", "max_changes")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    FIRST_LINE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    MAX_CHANGES_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    first_line: int
    dry_run: bool
    replace: bool
    max_changes: int
    def __init__(self, limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ..., first_line: _Optional[int] = ..., dry_run: _Optional[bool] = ..., replace: _Optional[bool] = ..., max_changes: _Optional[int] = ...) -> None: ...

class LimitChange(_message.Message):
    __slots__ = ("limit_id", "old", "new")
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    limit_id: str
    old: Limit
    new: Limit
    def __init__(self, limit_id: _Optional[str] = ..., old: _Optional[_Union[Limit, _Mapping]] = ..., new: _Optional[_Union[Limit, _Mapping]] = ...) -> None: ...

class LimitDiff(_message.Message):
    __slots__ = ("added", "changed", "deleted", "unchanged", "changes", "changes_omitted")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    CHANGES_OMITTED_FIELD_NUMBER: _ClassVar[int]
    added: int
    changed: int
    deleted: int
    unchanged: int
    changes: _containers.RepeatedCompositeFieldContainer[LimitChange]
    changes_omitted: int
    def __init__(self, added: _Optional[int] = ..., changed: _Optional[int] = ..., deleted: _Optional[int] = ..., unchanged: _Optional[int] = ..., changes: _Optional[_Iterable[_Union[LimitChange, _Mapping]]] = ..., changes_omitted: _Optional[int] = ...) -> None: ...

class ImportLimitsResponse(_message.Message):
    __slots__ = ("diff", "limits_version", "records", "dry_run")
    DIFF_FIELD_NUMBER: _ClassVar[int]
    LIMITS_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    diff: LimitDiff
    limits_version: int
    records: int
    dry_run: bool
    def __init__(self, diff: _Optional[_Union[LimitDiff, _Mapping]] = ..., limits_version: _Optional[int] = ..., records: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class LimitHistoryRequest(_message.Message):
    __slots__ = ("limit_id",)
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    limit_id: str
    def __init__(self, limit_id: _Optional[str] = ...) -> None: ...

class LimitVersion(_message.Message):
    __slots__ = ("limit", "limits_version", "who", "time", "action")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    LIMITS_VERSION_FIELD_NUMBER: _ClassVar[int]
    WHO_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    limit: Limit
    limits_version: int
    who: str
    time: _timestamp_pb2.Timestamp
    action: str
    def __init__(self, limit: _Optional[_Union[Limit, _Mapping]] = ..., limits_version: _Optional[int] = ..., who: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[str] = ...) -> None: ...

class LimitHistoryResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[LimitVersion]
    def __init__(self, versions: _Optional[_Iterable[_Union[LimitVersion, _Mapping]]] = ...) -> None: ...
