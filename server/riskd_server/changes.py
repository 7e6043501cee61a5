"""Change records the engine hands to the write-behind store.

Every record is an immutable columnar copy taken at the moment of the change, so the store can
write it later, off the hot path, without reading live engine state. Columns of strings are numpy
object arrays; numeric columns are numpy arrays of the dtype named in each field's comment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .limits import Limit

# Order status as persisted.
ORDER_OPEN = 1
ORDER_CLOSED = 2


@dataclass(frozen=True, slots=True)
class OrdersAccepted:
    """Orders that passed every check and are now open; price is the reference price p."""

    ts: float  # wall-clock seconds (time.time())
    client_order_id: np.ndarray  # object (str)
    account: np.ndarray  # object (str)
    symbol: np.ndarray  # object (str)
    side: np.ndarray  # int8: 1 buy, 2 sell
    quantity: np.ndarray  # float64
    price: np.ndarray  # float64, reference price used for notional


@dataclass(frozen=True, slots=True)
class OrdersUpdated:
    """New open quantity and status of orders touched by executions (last row per id wins)."""

    ts: float
    client_order_id: np.ndarray  # object (str)
    open_quantity: np.ndarray  # float64
    status: np.ndarray  # int8: ORDER_OPEN or ORDER_CLOSED


@dataclass(frozen=True, slots=True)
class ExecutionsReported:
    """Every execution report received, applied or not (append-only audit)."""

    ts: float
    client_order_id: np.ndarray  # object (str)
    exec_type: np.ndarray  # int8 (riskd.v1.ExecType)
    quantity: np.ndarray  # float64
    price: np.ndarray  # float64
    applied: np.ndarray  # bool
    error: np.ndarray  # object (str), "" when none


@dataclass(frozen=True, slots=True)
class PositionsChanged:
    """Positions after a change (last row per (account, symbol) wins)."""

    account: np.ndarray  # object (str)
    symbol: np.ndarray  # object (str)
    quantity: np.ndarray  # float64, signed


@dataclass(frozen=True, slots=True)
class MarksChanged:
    """Symbol prices after a change; NaN means not set. mark = price if set else last_fill_price."""

    symbol: np.ndarray  # object (str)
    price: np.ndarray  # float64, last UpdatePrices price or NaN
    last_fill_price: np.ndarray  # float64, last fill price or NaN


@dataclass(frozen=True, slots=True)
class CheckEvents:
    """Every reject and warning of a batch, one row per Violation (append-only audit)."""

    ts: float
    client_order_id: np.ndarray  # object (str)
    account: np.ndarray  # object (str)
    symbol: np.ndarray  # object (str)
    check: np.ndarray  # int16 (riskd.v1.RiskCheck)
    limit_id: np.ndarray  # object (str), "" for built-in checks
    observed: np.ndarray  # float64
    threshold: np.ndarray  # float64
    warning: np.ndarray  # bool


@dataclass(frozen=True, slots=True)
class LimitsChanged:
    """Limits inserted or replaced, and ids deleted, in one all-or-nothing change."""

    upserted: tuple[Limit, ...]
    deleted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """A trading state set for an account ("" = firm-wide)."""

    ts: float
    account: str
    state: int  # riskd.v1.TradingState
    reason: str


Change = (
    OrdersAccepted
    | OrdersUpdated
    | ExecutionsReported
    | PositionsChanged
    | MarksChanged
    | CheckEvents
    | LimitsChanged
    | TradingStateChanged
)


@dataclass(frozen=True, slots=True)
class OpenOrderRow:
    """An order as recovered from the database."""

    client_order_id: str
    account: str
    symbol: str
    side: int
    open_quantity: float
    price: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the engine needs to rebuild its state at start-up."""

    limits: tuple[Limit, ...]
    trading_states: tuple[tuple[str, int], ...]  # (account or "" for firm, TradingState)
    marks: tuple[tuple[str, float, float], ...]  # (symbol, price or NaN, last_fill_price or NaN)
    positions: tuple[tuple[str, str, float], ...]  # (account, symbol, quantity)
    open_orders: tuple[OpenOrderRow, ...]
    recent_closed: tuple[OpenOrderRow, ...]  # newest last, at most the retention count
