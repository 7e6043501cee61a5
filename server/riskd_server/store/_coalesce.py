"""Fold a run of change records into the rows one flush writes (pure: no I/O, safe in a thread).

State tables keep only the last value per key, applied in change order, so an order accepted and
filled within one flush is written once, already filled. Audit records are kept whole, in order.

Orders and audit rows (nearly all of the volume) stay columnar: last-wins is found with dicts
built by C-level ``dict(zip(...))`` over chunks, and rows are picked with numpy, so there is no
Python code per row and no single call holds the GIL for long (the event loop keeps running).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np

from .. import changes as ch
from ..limits import Limit

# Rows handed to one C-level call at a time: bounds how long the worker thread holds the GIL.
CHUNK = 16_384

_NUL = "\x00"

Columns = dict[str, np.ndarray]
# Columns of an orders COPY, in table order; ts columns are float seconds, close_rank is the
# order's place among this flush's closes (-1 = open), turned into closed_seq when written.
ORDER_COLUMNS = (
    "client_order_id", "account", "symbol", "side", "quantity", "open_quantity", "price", "status",
    "accepted_at", "updated_at", "close_rank",
)  # fmt: skip
UPDATE_COLUMNS = ("client_order_id", "open_quantity", "status", "updated_at", "close_rank")
EXECUTION_COLUMNS = ("ts", "client_order_id", "exec_type", "quantity", "price", "applied", "error")
CHECK_EVENT_COLUMNS = (
    "ts", "client_order_id", "account", "symbol", "check", "limit_id", "observed", "threshold", "warning",
)  # fmt: skip


ALERT_COLUMNS = (
    "seq", "time", "severity", "kind", "check", "account", "symbol", "limit_id", "message", "observed",
    "threshold", "count", "summary", "client_order_id",
)  # fmt: skip


# Columns of a limit_history COPY, in table order (the limit columns are NULL where deleted).
LIMIT_HISTORY_COLUMNS = (
    "limit_id", "limits_version", "who", "ts", "action", "deleted", "kind", "account", "symbol", "threshold",
    "warn_fraction", "disabled", "description", "template", "reference_volatility", "min_scale",
)  # fmt: skip
LIMIT_FIELDS = (
    "limit_id", "kind", "account", "symbol", "threshold", "warn_fraction", "disabled", "description", "template",
    "reference_volatility", "min_scale",
)  # fmt: skip


def change_rows(change: ch.Change) -> int:
    """Rows a change adds to the backlog (what the engine's has_room(rows) is measured in)."""
    if isinstance(change, ch.LimitsChanged):
        return len(change.upserted) + len(change.deleted)
    if isinstance(change, ch.TradingStateChanged):
        return 1
    if isinstance(change, ch.PositionsChanged | ch.MarksChanged):
        return int(change.symbol.shape[0])
    return int(change.client_order_id.shape[0])


def rows_of(cols: Columns | None) -> int:
    return 0 if cols is None else int(next(iter(cols.values())).shape[0])


@dataclass(slots=True)
class Coalesced:
    """What one flush writes. Columnar parts are None when empty; dicts are keyed like the table."""

    orders: Columns | None = None  # ORDER_COLUMNS: orders accepted in this flush
    order_updates: Columns | None = None  # UPDATE_COLUMNS: orders accepted in an earlier flush
    closes: int = 0  # rows of orders/order_updates with close_rank >= 0
    positions: dict[tuple[str, str], float] = field(default_factory=dict)
    marks: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    limits: dict[str, Limit | None] = field(default_factory=dict)  # None = deleted
    trading_states: dict[str, tuple[int, str, datetime]] = field(default_factory=dict)
    executions: Columns | None = None  # EXECUTION_COLUMNS, in report order
    check_events: Columns | None = None  # CHECK_EVENT_COLUMNS, in check order
    alerts: Columns | None = None  # ALERT_COLUMNS, in seq order
    limit_history: Columns | None = None  # LIMIT_HISTORY_COLUMNS, one row per limit per change
    # closed_seq per close rank, when fixed before the write (a split flush: every part keeps the
    # flush's close order; a flush prepared while the one before it wrote); None = the write takes
    # ``closes`` new values.
    seqs: np.ndarray | None = None
    # The binary COPY streams (_write.encode_all with ``seqs``), when built before the write (a
    # flush prepared while the one before it wrote); None = the write builds them.
    encoded: tuple[bytes | None, ...] | None = None

    def __bool__(self) -> bool:
        return bool(
            self.orders is not None
            or self.order_updates is not None
            or self.positions
            or self.marks
            or self.limits
            or self.trading_states
            or self.executions is not None
            or self.check_events is not None
            or self.alerts is not None
            or self.limit_history is not None
        )


def coalesce(changes: Iterable[ch.Change]) -> Coalesced:
    """Apply changes in order; last write per key wins, audit rows append."""
    out = Coalesced()
    lifecycle: list[ch.OrdersAccepted | ch.OrdersUpdated] = []
    executions: list[ch.ExecutionsReported] = []
    events: list[ch.CheckEvents] = []
    alerts: list[ch.AlertsRaised] = []
    limit_changes: list[ch.LimitsChanged] = []
    for change in changes:
        if isinstance(change, ch.OrdersAccepted | ch.OrdersUpdated):
            lifecycle.append(change)
        elif isinstance(change, ch.ExecutionsReported):
            executions.append(change)
        elif isinstance(change, ch.CheckEvents):
            events.append(change)
        elif isinstance(change, ch.AlertsRaised):
            alerts.append(change)
        elif isinstance(change, ch.LimitsChanged):
            limit_changes.append(change)
            _limits(out, change)
        else:
            _APPLY[type(change)](out, change)
    if lifecycle:
        out.orders, out.order_updates, out.closes = _orders(lifecycle)
    out.executions = _audit(executions, EXECUTION_COLUMNS)
    out.check_events = _audit(events, CHECK_EVENT_COLUMNS)
    out.alerts = _audit(alerts, ALERT_COLUMNS)
    out.limit_history = _limit_history(limit_changes)
    return out


def text(col: np.ndarray | Sequence[str]) -> list[str]:
    """PostgreSQL text cannot hold NUL: replace it rather than let one odd id block every flush.

    Only audit rows (check_events, executions: the names of rejected orders and of reports for
    unknown ids) and free text (limit descriptions, trading-state reasons) can hold NUL: a name
    with a control character is never accepted (riskd_server.names), so the names in state tables
    (orders, positions, marks, limits, trading states) pass through unchanged and come back from
    recovery byte for byte."""
    values = col.tolist() if isinstance(col, np.ndarray) else list(col)
    if any(_NUL in "".join(values[i : i + CHUNK]) for i in range(0, len(values), CHUNK)):
        values = [v.replace(_NUL, "\ufffd") for v in values]
    return values


def _last_index(keys: list[str], positions: np.ndarray | range) -> dict[str, int]:
    """key -> its last position (dict(zip) keeps the last value per key), built in GIL-short chunks."""
    last: dict[str, int] = {}
    for i in range(0, len(keys), CHUNK):
        last.update(zip(keys[i : i + CHUNK], positions[i : i + CHUNK], strict=True))
    return last


def _objects(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _orders(
    changes: list[ch.OrdersAccepted | ch.OrdersUpdated],
) -> tuple[Columns | None, Columns | None, int]:
    """Last-wins per client_order_id over accepts and updates, in change order.

    An id whose last accept is in this flush becomes a full orders row (the accept's fields with
    the last event's open quantity, status and time); any other id becomes an update. An order is
    closed when its last event closes it, and closes keep the order of those last events.
    """
    acc = [c for c in changes if isinstance(c, ch.OrdersAccepted)]
    is_acc = np.concatenate(
        [np.full(c.client_order_id.shape[0], isinstance(c, ch.OrdersAccepted)) for c in changes]
    )
    ids = text(np.concatenate([c.client_order_id for c in changes]))
    id_arr = _objects(ids)
    n = len(ids)
    open_qty = np.concatenate(
        [c.quantity if isinstance(c, ch.OrdersAccepted) else c.open_quantity for c in changes]
    ).astype(np.float64, copy=False)
    status = np.concatenate(
        [
            np.full(c.client_order_id.shape[0], ch.ORDER_OPEN, np.int8)
            if isinstance(c, ch.OrdersAccepted)
            else c.status.astype(np.int8, copy=False)
            for c in changes
        ]
    )
    ts = np.concatenate([np.full(c.client_order_id.shape[0], c.ts, np.float64) for c in changes])
    last = _last_index(ids, range(n))
    pos = np.arange(n, dtype=np.int64)
    acc_pos = pos[is_acc]
    last_acc = _last_index(id_arr[acc_pos].tolist(), acc_pos.tolist()) if acc else {}
    keys = list(last)
    final = np.fromiter(last.values(), dtype=np.int64, count=len(keys))
    last_accept = np.fromiter(map(last_acc.get, keys, repeat(-1)), dtype=np.int64, count=len(keys))
    closed = status[final] == ch.ORDER_CLOSED
    rank = np.full(len(keys), -1, dtype=np.int64)
    closed_idx = np.flatnonzero(closed)
    rank[closed_idx[np.argsort(final[closed_idx], kind="stable")]] = np.arange(closed_idx.shape[0])
    key_arr = _objects(keys)
    new = last_accept >= 0
    orders = updates = None
    if new.any():
        sel = np.flatnonzero(new)
        # Row of each selected id's last accept within the concatenated accepts.
        acc_row = np.cumsum(is_acc) - 1
        src = acc_row[last_accept[sel]]
        account = np.concatenate([c.account for c in acc])
        symbol = np.concatenate([c.symbol for c in acc])
        side = np.concatenate([c.side for c in acc])
        qty = np.concatenate([c.quantity for c in acc]).astype(np.float64, copy=False)
        price = np.concatenate([c.price for c in acc]).astype(np.float64, copy=False)
        fin = final[sel]
        orders = {
            "client_order_id": key_arr[sel],
            "account": account[src],
            "symbol": symbol[src],
            "side": side[src].astype(np.int16),
            "quantity": qty[src],
            "open_quantity": open_qty[fin],
            "price": price[src],
            "status": status[fin].astype(np.int16),
            "accepted_at": ts[last_accept[sel]],
            "updated_at": ts[fin],
            "close_rank": rank[sel],
        }
    if not new.all():
        sel = np.flatnonzero(~new)
        fin = final[sel]
        updates = {
            "client_order_id": key_arr[sel],
            "open_quantity": open_qty[fin],
            "status": status[fin].astype(np.int16),
            "updated_at": ts[fin],
            "close_rank": rank[sel],
        }
    return orders, updates, int(closed_idx.shape[0])


def _audit(changes: list, names: tuple[str, ...]) -> Columns | None:
    """Concatenate append-only records column by column; ``ts`` is repeated per row."""
    if not changes:
        return None
    out: Columns = {}
    for name in names:
        if name == "ts":
            out[name] = np.concatenate(
                [np.full(c.client_order_id.shape[0], c.ts, np.float64) for c in changes]
            )
        else:
            out[name] = np.concatenate([getattr(c, name) for c in changes])
    return out if out["client_order_id"].shape[0] else None


def _str(value: str) -> str:
    return value.replace(_NUL, "\ufffd") if _NUL in value else value


def _ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _null_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


def _positions(out: Coalesced, c: ch.PositionsChanged) -> None:
    out.positions.update(
        zip(zip(text(c.account), text(c.symbol), strict=True), c.quantity.tolist(), strict=True)
    )


def _marks(out: Coalesced, c: ch.MarksChanged) -> None:
    out.marks.update(
        (sym, (_null_nan(px), _null_nan(fill)))
        for sym, px, fill in zip(text(c.symbol), c.price.tolist(), c.last_fill_price.tolist(), strict=True)
    )


def _limits(out: Coalesced, c: ch.LimitsChanged) -> None:
    limits = out.limits
    for lim in c.upserted:
        if _NUL in lim.description or _NUL in lim.limit_id or _NUL in lim.account or _NUL in lim.symbol:
            lim = replace(
                lim,
                limit_id=_str(lim.limit_id),
                account=_str(lim.account),
                symbol=_str(lim.symbol),
                description=_str(lim.description),
            )
        limits[lim.limit_id] = lim
    for limit_id in c.deleted:
        limits[_str(limit_id)] = None


def limit_columns(limits: list[Limit]) -> Columns:
    """LIMIT_FIELDS as columns (strings as object arrays)."""
    out: Columns = {}
    n = len(limits)
    for name in LIMIT_FIELDS:
        values = [getattr(lim, name) for lim in limits]
        if name in ("threshold", "warn_fraction", "reference_volatility", "min_scale"):
            out[name] = np.fromiter(values, dtype=np.float64, count=n)
        elif name == "kind":
            out[name] = np.fromiter(values, dtype=np.int16, count=n)
        elif name == "disabled":
            out[name] = np.fromiter(values, dtype=bool, count=n)
        else:
            out[name] = _objects(values)
    return out


def _limit_history(changes: list[ch.LimitsChanged]) -> Columns | None:
    """One history row per limit per change, in change order: upserts, then deletions."""
    rows = sum(len(c.upserted) + len(c.deleted) for c in changes)
    if not rows:
        return None
    upserted = [lim for c in changes for lim in c.upserted]
    cols = limit_columns(upserted)
    counts = np.array([len(c.upserted) + len(c.deleted) for c in changes], dtype=np.int64)
    deleted = np.concatenate(
        [np.r_[np.zeros(len(c.upserted), bool), np.ones(len(c.deleted), bool)] for c in changes]
    )
    out: Columns = {
        "limit_id": _objects(
            [x for c in changes for x in (*(lim.limit_id for lim in c.upserted), *c.deleted)]
        ),
        "limits_version": np.repeat(np.array([c.version for c in changes], dtype=np.int64), counts),
        "who": np.repeat(_objects([c.who for c in changes]), counts),
        "ts": np.repeat(np.array([c.ts for c in changes], dtype=np.float64), counts),
        "action": np.repeat(_objects([c.action for c in changes]), counts),
        "deleted": deleted,
    }
    if not deleted.any():  # upserts only (an import): the limits' columns as they are
        out.update((name, cols[name]) for name in LIMIT_FIELDS[1:])
        return out
    up = np.flatnonzero(~deleted)
    for name in LIMIT_FIELDS[1:]:
        src = cols[name]
        col = np.empty(rows, dtype=src.dtype) if src.dtype != object else _objects([""] * rows)
        if src.dtype != object:
            col[:] = 0
        col[up] = src
        out[name] = col
    return out


def _trading_state(out: Coalesced, c: ch.TradingStateChanged) -> None:
    out.trading_states[_str(c.account)] = (c.state, _str(c.reason), _ts(c.ts))


_APPLY: dict[type, Callable[[Coalesced, Any], None]] = {
    ch.PositionsChanged: _positions,
    ch.MarksChanged: _marks,
    ch.TradingStateChanged: _trading_state,
}
