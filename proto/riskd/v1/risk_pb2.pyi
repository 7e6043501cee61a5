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
    __slots__ = ("limit_id", "kind", "account", "symbol", "threshold", "warn_fraction", "disabled", "description")
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WARN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    limit_id: str
    kind: RiskCheck
    account: str
    symbol: str
    threshold: float
    warn_fraction: float
    disabled: bool
    description: str
    def __init__(self, limit_id: _Optional[str] = ..., kind: _Optional[_Union[RiskCheck, str]] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., threshold: _Optional[float] = ..., warn_fraction: _Optional[float] = ..., disabled: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("account", "symbol", "kind")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    account: str
    symbol: str
    kind: RiskCheck
    def __init__(self, account: _Optional[str] = ..., symbol: _Optional[str] = ..., kind: _Optional[_Union[RiskCheck, str]] = ...) -> None: ...

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
