"""Fold a run of change records into the rows one flush writes (pure: no I/O, safe in a thread).

State tables keep only the last value per key, applied in change order, so an order accepted and
filled within one flush is written once, already filled. Audit records are kept whole, in order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from .. import changes as ch
from ..limits import Limit

# A full order row, in the column order of the orders table (without closed_seq):
# account, symbol, side, quantity, open_quantity, price, status, accepted_at, updated_at
OrderRow = list
# A partial update of an order accepted in an earlier flush: open_quantity, status, updated_at
OrderUpdate = tuple[float, int, datetime]

_NUL = "\x00"


def change_rows(change: ch.Change) -> int:
    """Rows a change adds to the backlog (what the engine's has_room(rows) is measured in)."""
    if isinstance(change, ch.LimitsChanged):
        return len(change.upserted) + len(change.deleted)
    if isinstance(change, ch.TradingStateChanged):
        return 1
    if isinstance(change, ch.PositionsChanged | ch.MarksChanged):
        return int(change.symbol.shape[0])
    return int(change.client_order_id.shape[0])


@dataclass(slots=True)
class Coalesced:
    """What one flush writes; every dict is keyed like its table's primary key."""

    orders: dict[str, OrderRow] = field(default_factory=dict)
    order_updates: dict[str, OrderUpdate] = field(default_factory=dict)
    closes: dict[str, None] = field(default_factory=dict)  # ids closed in this flush, in close order
    positions: dict[tuple[str, str], float] = field(default_factory=dict)
    marks: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    limits: dict[str, Limit | None] = field(default_factory=dict)  # None = deleted
    trading_states: dict[str, tuple[int, str, datetime]] = field(default_factory=dict)
    executions: list[tuple] = field(default_factory=list)
    check_events: list[tuple] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            (
                self.orders,
                self.order_updates,
                self.positions,
                self.marks,
                self.limits,
                self.trading_states,
                self.executions,
                self.check_events,
            )
        )


def coalesce(changes: Iterable[ch.Change]) -> Coalesced:
    """Apply changes in order; last write per key wins, audit rows append."""
    out = Coalesced()
    for change in changes:
        _APPLY[type(change)](out, change)
    return out


def _text(col: np.ndarray) -> list[str]:
    """PostgreSQL text cannot hold NUL: replace it rather than let one odd id block every flush."""
    values = col.tolist()
    if _NUL in "".join(values):
        values = [v.replace(_NUL, "\ufffd") for v in values]
    return values


def _str(value: str) -> str:
    return value.replace(_NUL, "\ufffd") if _NUL in value else value


def _ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _null_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


def _accepted(out: Coalesced, c: ch.OrdersAccepted) -> None:
    at = _ts(c.ts)
    orders, updates, closes = out.orders, out.order_updates, out.closes
    for oid, account, symbol, side, qty, price in zip(
        _text(c.client_order_id),
        _text(c.account),
        _text(c.symbol),
        c.side.tolist(),
        c.quantity.tolist(),
        c.price.tolist(),
        strict=True,
    ):
        # An id can be accepted again once it has left the closed-order retention window.
        orders[oid] = [account, symbol, side, qty, qty, price, ch.ORDER_OPEN, at, at]
        updates.pop(oid, None)
        closes.pop(oid, None)


def _updated(out: Coalesced, c: ch.OrdersUpdated) -> None:
    at = _ts(c.ts)
    orders, updates, closes = out.orders, out.order_updates, out.closes
    for oid, open_qty, status in zip(
        _text(c.client_order_id), c.open_quantity.tolist(), c.status.tolist(), strict=True
    ):
        row = orders.get(oid)
        if row is not None:
            row[4], row[6], row[8] = open_qty, status, at
        else:
            updates[oid] = (open_qty, status, at)
        closes.pop(oid, None)
        if status == ch.ORDER_CLOSED:
            closes[oid] = None


def _executions(out: Coalesced, c: ch.ExecutionsReported) -> None:
    at = _ts(c.ts)
    out.executions.extend(
        (at, oid, typ, qty, px, ok, err)
        for oid, typ, qty, px, ok, err in zip(
            _text(c.client_order_id),
            c.exec_type.tolist(),
            c.quantity.tolist(),
            c.price.tolist(),
            c.applied.tolist(),
            _text(c.error),
            strict=True,
        )
    )


def _positions(out: Coalesced, c: ch.PositionsChanged) -> None:
    out.positions.update(
        zip(zip(_text(c.account), _text(c.symbol), strict=True), c.quantity.tolist(), strict=True)
    )


def _marks(out: Coalesced, c: ch.MarksChanged) -> None:
    out.marks.update(
        (sym, (_null_nan(px), _null_nan(fill)))
        for sym, px, fill in zip(_text(c.symbol), c.price.tolist(), c.last_fill_price.tolist(), strict=True)
    )


def _check_events(out: Coalesced, c: ch.CheckEvents) -> None:
    at = _ts(c.ts)
    out.check_events.extend(
        (at, *row)
        for row in zip(
            _text(c.client_order_id),
            _text(c.account),
            _text(c.symbol),
            c.check.tolist(),
            _text(c.limit_id),
            c.observed.tolist(),
            c.threshold.tolist(),
            c.warning.tolist(),
            strict=True,
        )
    )


def _limits(out: Coalesced, c: ch.LimitsChanged) -> None:
    for lim in c.upserted:
        text = {name: _str(getattr(lim, name)) for name in ("limit_id", "account", "symbol", "description")}
        out.limits[text["limit_id"]] = replace(lim, **text)
    for limit_id in c.deleted:
        out.limits[_str(limit_id)] = None


def _trading_state(out: Coalesced, c: ch.TradingStateChanged) -> None:
    out.trading_states[_str(c.account)] = (c.state, _str(c.reason), _ts(c.ts))


_APPLY = {
    ch.OrdersAccepted: _accepted,
    ch.OrdersUpdated: _updated,
    ch.ExecutionsReported: _executions,
    ch.PositionsChanged: _positions,
    ch.MarksChanged: _marks,
    ch.CheckEvents: _check_events,
    ch.LimitsChanged: _limits,
    ch.TradingStateChanged: _trading_state,
}
