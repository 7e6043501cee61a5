"""Change records the engine hands to the write-behind store.

Every record is an immutable columnar copy taken at the moment of the change, so the store can
write it later, off the hot path, without reading live engine state. Columns of strings are numpy
object arrays; numeric columns are numpy arrays of the dtype named in each field's comment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
class AlertsRaised:
    """Alerts as the pipeline published them, one row per alert, in seq order (append-only)."""

    seq: np.ndarray  # int64
    time: np.ndarray  # float64, wall-clock seconds
    severity: np.ndarray  # int16 (riskd.v1.Severity)
    kind: np.ndarray  # int16 (riskd.v1.AlertKind)
    check: np.ndarray  # int16 (riskd.v1.RiskCheck), 0 when none
    account: np.ndarray  # object (str)
    symbol: np.ndarray  # object (str)
    limit_id: np.ndarray  # object (str)
    message: np.ndarray  # object (str)
    observed: np.ndarray  # float64
    threshold: np.ndarray  # float64
    count: np.ndarray  # int64
    summary: np.ndarray  # bool
    client_order_id: np.ndarray  # object (str)


@dataclass(frozen=True, slots=True)
class LimitsChanged:
    """Limits inserted or replaced, and ids deleted, in one all-or-nothing change; who made it,
    when and how are kept in the limits' history (limit_history table)."""

    upserted: tuple[Limit, ...]
    deleted: tuple[str, ...]
    version: int = 0  # the limit-set version the change made
    who: str = ""  # the caller (its peer address until authentication exists)
    action: str = ""  # "upsert", "delete", "import", "template"
    ts: float = 0.0  # wall-clock seconds


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
    | AlertsRaised
    | LimitsChanged
    | TradingStateChanged
)


@dataclass(frozen=True, slots=True)
class OpenOrderRow:
    """An order as recovered from the database (one row of RecoveredOrders, for tests and logs)."""

    client_order_id: str
    account: str
    symbol: str
    side: int
    open_quantity: float
    price: float


@dataclass(frozen=True, slots=True)
class TextColumn:
    """Strings kept as UTF-8 byte spans of one buffer: value i is buf[off[i]:off[i] + length[i]].

    Recovery hashes and looks up millions of names straight from the bytes PostgreSQL sent,
    without a Python str per row; ``[i]`` decodes one value when a str is needed.
    """

    buf: np.ndarray  # uint8
    off: np.ndarray  # int64
    length: np.ndarray  # int64

    @classmethod
    def of(cls, values: Sequence[str]) -> TextColumn:
        """A column holding values (encoded as the engine encodes names: UTF-8, surrogatepass)."""
        enc = [v.encode("utf-8", "surrogatepass") for v in values]
        length = np.fromiter(map(len, enc), dtype=np.int64, count=len(enc))
        off = np.zeros(len(enc), dtype=np.int64)
        np.cumsum(length[:-1], out=off[1:])
        return cls(np.frombuffer(b"".join(enc), dtype=np.uint8), off, length)

    def __len__(self) -> int:
        return int(self.off.shape[0])

    def __getitem__(self, i: int) -> str:
        o = int(self.off[i])
        return self.buf[o : o + int(self.length[i])].tobytes().decode("utf-8", "surrogatepass")

    def take(self, idx: np.ndarray) -> TextColumn:
        """The values at idx (same buffer)."""
        return TextColumn(self.buf, self.off[idx], self.length[idx])

    def tolist(self) -> list[str]:
        return [self[i] for i in range(len(self))]


@dataclass(frozen=True, slots=True)
class RecoveredOrders:
    """Orders read back at start-up, as columns: rows [0, closed) are the retained closed orders,
    oldest close first; rows [closed, n) are the open orders."""

    client_order_id: TextColumn
    account: TextColumn
    symbol: TextColumn
    side: np.ndarray  # int64: 1 buy, 2 sell
    open_quantity: np.ndarray  # float64
    price: np.ndarray  # float64
    closed: int

    @classmethod
    def of(cls, closed: Sequence[OpenOrderRow] = (), open_: Sequence[OpenOrderRow] = ()) -> RecoveredOrders:
        """Columns of row values (tests, small snapshots)."""
        rows = [*closed, *open_]
        return cls(
            TextColumn.of([r.client_order_id for r in rows]),
            TextColumn.of([r.account for r in rows]),
            TextColumn.of([r.symbol for r in rows]),
            np.array([r.side for r in rows], dtype=np.int64),
            np.array([r.open_quantity for r in rows], dtype=np.float64),
            np.array([r.price for r in rows], dtype=np.float64),
            len(closed),
        )

    def __len__(self) -> int:
        return len(self.client_order_id)

    def rows(self, start: int = 0, stop: int | None = None) -> tuple[OpenOrderRow, ...]:
        """Rows start..stop as values (tests, small snapshots)."""
        return tuple(
            OpenOrderRow(
                self.client_order_id[i],
                self.account[i],
                self.symbol[i],
                int(self.side[i]),
                float(self.open_quantity[i]),
                float(self.price[i]),
            )
            for i in range(start, len(self) if stop is None else stop)
        )

    @property
    def recent_closed(self) -> tuple[OpenOrderRow, ...]:
        return self.rows(0, self.closed)

    @property
    def open_orders(self) -> tuple[OpenOrderRow, ...]:
        return self.rows(self.closed)


@dataclass(frozen=True, slots=True)
class RecoveredPositions:
    """Non-zero positions read back at start-up, as columns."""

    account: TextColumn
    symbol: TextColumn
    quantity: np.ndarray  # float64, signed

    @classmethod
    def of(cls, rows: Sequence[tuple[str, str, float]] = ()) -> RecoveredPositions:
        return cls(
            TextColumn.of([r[0] for r in rows]),
            TextColumn.of([r[1] for r in rows]),
            np.array([r[2] for r in rows], dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.quantity.shape[0])

    def rows(self) -> tuple[tuple[str, str, float], ...]:
        return tuple((self.account[i], self.symbol[i], float(self.quantity[i])) for i in range(len(self)))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the engine needs to rebuild its state at start-up."""

    limits: tuple[Limit, ...] = ()
    limits_version: int = 0  # the highest limits_version recorded: the recovered book's version
    trading_states: tuple[tuple[str, int], ...] = ()  # (account or "" for firm, TradingState)
    marks: tuple[tuple[str, float, float], ...] = ()  # (symbol, price or NaN, last_fill_price or NaN)
    positions: RecoveredPositions = field(default_factory=RecoveredPositions.of)
    orders: RecoveredOrders = field(default_factory=RecoveredOrders.of)
    journal_seq: int = 0  # journal_applied read with the rest: the last journal record these rows hold

    @property
    def open_orders(self) -> tuple[OpenOrderRow, ...]:
        return self.orders.open_orders

    @property
    def recent_closed(self) -> tuple[OpenOrderRow, ...]:
        """The retained closed orders, newest last."""
        return self.orders.recent_closed


@dataclass(frozen=True, slots=True)
class LimitVersion:
    """One stored version of a limit (limit_history), as LimitHistory returns it."""

    limit: Limit | None  # None: the change deleted it
    limits_version: int
    who: str
    ts: float  # wall-clock seconds
    action: str
