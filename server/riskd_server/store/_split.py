"""Cut a coalesced flush into parts, and name the row a one-row part holds (pure, safe in a thread).

A flush is one sequence of rows in write order: orders, order updates, positions, marks, limits,
trading states, executions, check events, alerts (``SEGMENTS``). ``halves`` cuts that sequence in the
middle, so writing the parts one after the other, first part first, keeps what one flush
promised: audit rows stay in order, each key is still written once (coalescing made keys unique
within the flush), and closes keep their order because every part carries the flush's closed_seq
values (``Coalesced.seqs``, fixed before the first cut) and every row its close rank in the flush.

Cutting is cheap: columns are sliced as numpy views; only dict segments are copied.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from typing import Any

import numpy as np

from ._coalesce import (
    ALERT_COLUMNS,
    CHECK_EVENT_COLUMNS,
    EXECUTION_COLUMNS,
    ORDER_COLUMNS,
    UPDATE_COLUMNS,
    Coalesced,
    rows_of,
)

SEGMENTS = (
    "orders", "order_updates", "positions", "marks", "limits", "trading_states", "executions", "check_events",
    "alerts",
)  # fmt: skip
_COLUMNAR = frozenset({"orders", "order_updates", "executions", "check_events", "alerts"})

Row = dict[str, Any]  # column name (as the table names it) -> a plain Python value


def size(b: Coalesced) -> int:
    """Rows ``b`` writes (each coalesced key or audit record is one row)."""
    return sum(_length(b, name) for name in SEGMENTS)


def halves(b: Coalesced) -> tuple[Coalesced, Coalesced]:
    """The first half of ``b``'s rows and the rest, in write order; both keep ``b.seqs``."""
    n = size(b)
    if n < 2:
        raise ValueError("a part of fewer than two rows cannot be cut")
    return take(b, 0, n // 2), take(b, n // 2, n)


def take(b: Coalesced, start: int, stop: int) -> Coalesced:
    """Rows ``start`` to ``stop`` (exclusive) of ``b``'s write order, as a flush of their own."""
    out = Coalesced(seqs=b.seqs)
    offset = 0
    for name in SEGMENTS:
        n = _length(b, name)
        lo, hi = max(start - offset, 0), min(stop - offset, n)
        if lo < hi:
            part = getattr(b, name)
            if name in _COLUMNAR:
                setattr(out, name, {col: values[lo:hi] for col, values in part.items()})
            else:
                setattr(out, name, dict(islice(part.items(), lo, hi)))
        offset += n
    out.closes = sum(
        int(np.count_nonzero(cols["close_rank"] >= 0))
        for cols in (out.orders, out.order_updates)
        if cols is not None
    )
    return out


def only_row(b: Coalesced) -> tuple[str, str, Row]:
    """(table, action, row) of a one-row part: what the dead letter records of it."""
    if size(b) != 1:
        raise ValueError(f"expected a part of one row, got {size(b)}")
    if b.orders is not None:
        return "orders", "insert", _order_row(b.orders, 0, ORDER_COLUMNS, b.seqs)
    if b.order_updates is not None:
        return update_row(b, 0)
    if b.positions:
        (((account, symbol), quantity),) = b.positions.items()
        return "positions", "upsert", {"account": account, "symbol": symbol, "quantity": quantity}
    if b.marks:
        ((symbol, (price, fill)),) = b.marks.items()
        return "marks", "upsert", {"symbol": symbol, "price": price, "last_fill_price": fill}
    if b.limits:
        ((limit_id, lim),) = b.limits.items()
        if lim is None:
            return "limits", "delete", {"limit_id": limit_id}
        fields = (
            "limit_id",
            "kind",
            "account",
            "symbol",
            "threshold",
            "warn_fraction",
            "disabled",
            "description",
            "template",
            "reference_volatility",
            "min_scale",
        )
        return "limits", "upsert", {name: getattr(lim, name) for name in fields}
    if b.trading_states:
        ((account, (state, reason, when)),) = b.trading_states.items()
        return (
            "trading_states",
            "upsert",
            {"account": account, "state": state, "reason": reason, "updated_at": when},
        )
    if b.executions is not None:
        return "executions", "insert", _audit_row(b.executions, EXECUTION_COLUMNS)
    if b.alerts is not None:
        row = _audit_row(b.alerts, ALERT_COLUMNS)
        row["check_kind"] = row.pop("check")
        row["ts"] = row.pop("time")
        return "alerts", "insert", row
    assert b.check_events is not None
    row = _audit_row(b.check_events, CHECK_EVENT_COLUMNS)
    row["check_kind"] = row.pop("check")
    return "check_events", "insert", row


def update_row(b: Coalesced, i: int) -> tuple[str, str, Row]:
    """Row ``i`` of ``b.order_updates`` as the dead letter records it."""
    assert b.order_updates is not None
    return "orders", "update", _order_row(b.order_updates, i, UPDATE_COLUMNS, b.seqs)


def _length(b: Coalesced, name: str) -> int:
    part = getattr(b, name)
    return rows_of(part) if name in _COLUMNAR else len(part)


def _order_row(cols: dict[str, np.ndarray], i: int, names: tuple[str, ...], seqs: np.ndarray | None) -> Row:
    row: Row = {}
    for name in names:
        value = _plain(cols[name][i])
        if name == "close_rank":  # closed_seq is only known once the flush's seqs are
            row["closed_seq"] = int(seqs[value]) if value >= 0 and seqs is not None else None
        elif name.endswith("_at"):
            row[name] = _when(value)
        else:
            row[name] = value
    return row


def _audit_row(cols: dict[str, np.ndarray], names: tuple[str, ...]) -> Row:
    row = {name: _plain(cols[name][0]) for name in names}
    row["ts"] = _when(row["ts"])
    return row


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _when(ts: float) -> datetime | float:
    """Unix seconds as a UTC datetime; the number itself when no datetime can hold it."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        return ts
