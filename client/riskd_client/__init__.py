"""riskd client: importable with grpcio and protobuf alone (no numpy, never the server package).

from riskd_client import RiskClient, Order

with RiskClient("127.0.0.1:50051") as risk:
    results = risk.check([Order("o1", "ACC1", "AAPL", "BUY", 100, 187.5)])
    for r in results.rejected():
        print(r.client_order_id, [v.check for v in r.reasons])
"""

from __future__ import annotations

from ._alerts import ALERT_KINDS, SEVERITIES
from ._columns import CHECKS, EXEC_TYPES, SIDES, TRADING_STATES, check_name, parse_check
from ._returns import ReturnsFileError
from ._types import (
    AccountSnapshot,
    AlertBatch,
    AlertInfo,
    AlertPage,
    AlertStatsReport,
    AlertWindow,
    Execution,
    ExecutionResults,
    LimitListing,
    LimitsChange,
    LimitSpec,
    LimitUtilisation,
    ModelRefreshed,
    Order,
    OrderResult,
    Position,
    PositionSizing,
    PositionSnapshot,
    ReturnsImported,
    RiskdError,
    RiskModelInfo,
    RiskSnapshot,
    StateChange,
    SymbolSize,
    TradingStateChange,
    ViolationInfo,
)
from .aio_client import AsyncRiskClient
from .results import CheckResults
from .sync_client import DEFAULT_TARGET, RiskClient

__all__ = [
    "ALERT_KINDS",
    "CHECKS",
    "DEFAULT_TARGET",
    "EXEC_TYPES",
    "SEVERITIES",
    "SIDES",
    "TRADING_STATES",
    "AccountSnapshot",
    "AlertBatch",
    "AlertInfo",
    "AlertPage",
    "AlertStatsReport",
    "AlertWindow",
    "AsyncRiskClient",
    "CheckResults",
    "Execution",
    "ExecutionResults",
    "LimitListing",
    "LimitSpec",
    "LimitUtilisation",
    "LimitsChange",
    "ModelRefreshed",
    "Order",
    "OrderResult",
    "Position",
    "PositionSizing",
    "PositionSnapshot",
    "ReturnsFileError",
    "ReturnsImported",
    "RiskClient",
    "RiskModelInfo",
    "RiskSnapshot",
    "RiskdError",
    "StateChange",
    "SymbolSize",
    "TradingStateChange",
    "ViolationInfo",
    "check_name",
    "parse_check",
]
