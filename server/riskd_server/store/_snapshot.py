"""Read the state the engine restores at start-up, in one consistent read-only snapshot.

Orders and positions, which can number millions, are read with binary COPY and parsed into
columns in numba (``_copyparse``); limits, trading states and marks are few and read as rows.

Which orders: every open one, and the newest ``closed_order_retention`` closed ones, oldest close
first. ``orders`` has no index on ``closed_seq`` (a close would no longer be a HOT update, see
migration 002), so nothing can hand PostgreSQL the newest N without a sort of every closed row.
Instead one sequential scan returns the open orders and the closed ones with
``closed_seq > last_value - 2 * N`` (closed_seq comes from a sequence, so that is about the newest
2 N closes), and numpy picks the newest N and orders them. Sequence values lost to rolled-back
flushes leave gaps; if fewer than N closed orders come back although older ones may exist, the
scan is repeated without the bound (it then returns every closed order), so the result is exact.
"""

from __future__ import annotations

import logging
import math
import time
from typing import LiteralString

import numpy as np
from psycopg import AsyncConnection, IsolationLevel, sql
from psycopg.rows import dict_row, tuple_row

from .. import changes as ch
from ..limits import Limit
from ._copyparse import FLOAT, INT, INT_NULL, TEXT, CopyColumns, copy_out, parse_copy

log = logging.getLogger("riskd.store")

_LIMITS = """
SELECT limit_id, kind, account, symbol, threshold, warn_fraction, disabled, description,
       template, reference_volatility, min_scale
FROM limits ORDER BY limit_id
"""
JOURNAL_APPLIED = "SELECT seq FROM journal_applied"
_LIMITS_VERSION = "SELECT coalesce(max(version), 0) FROM limits_version"
_TRADING_STATES = "SELECT account, state FROM trading_states ORDER BY account"
_MARKS = "SELECT symbol, price, last_fill_price FROM marks ORDER BY symbol"
_POSITIONS = (
    "COPY (SELECT account, symbol, quantity FROM positions WHERE quantity <> 0) TO STDOUT (FORMAT BINARY)"
)
_POSITION_KINDS = (TEXT, TEXT, FLOAT)
_CLOSED_SEQ = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM orders_closed_seq"
# Open orders and the closed ones closed after closed_seq {floor}, in table order (no sort).
_ORDERS = """
COPY (
    SELECT client_order_id, account, symbol, side, open_quantity, price, closed_seq FROM orders
    WHERE status = 1 OR closed_seq > {floor}
) TO STDOUT (FORMAT BINARY)
"""
_ORDER_KINDS = (TEXT, TEXT, TEXT, INT, FLOAT, FLOAT, INT)


def _nan_null(x: float | None) -> float:
    return math.nan if x is None else x


async def load_snapshot(conn: AsyncConnection, closed_retention: int) -> ch.Snapshot:
    """Everything Engine.restore needs; all queries see the same committed state."""
    saved = conn.isolation_level, conn.read_only
    await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
    await conn.set_read_only(True)
    retention = max(0, closed_retention)
    read = parse = 0.0
    try:
        async with conn.transaction():
            start = time.perf_counter()
            # Text arrives in the client encoding: the engine keys names by their UTF-8 bytes.
            await conn.execute("SET LOCAL client_encoding TO 'UTF8'")
            limits = tuple(Limit(**row) for row in await _fetch(conn, _LIMITS, as_dict=True))
            journal_seq = sum(int(seq) for (seq,) in await _fetch(conn, JOURNAL_APPLIED))  # one row
            ((limits_version,),) = await _fetch(conn, _LIMITS_VERSION)
            states = tuple((acct, int(state)) for acct, state in await _fetch(conn, _TRADING_STATES))
            marks = tuple(
                (sym, _nan_null(px), _nan_null(fill)) for sym, px, fill in await _fetch(conn, _MARKS)
            )
            position_bytes = await copy_out(conn, _POSITIONS)
            ((last_seq,),) = await _fetch(conn, _CLOSED_SEQ)
            floor = max(0, int(last_seq) - 2 * retention) if retention else int(last_seq)
            order_bytes = await copy_out(conn, _orders_query(floor))
            read += time.perf_counter() - start
            start = time.perf_counter()
            positions = _positions(parse_copy(position_bytes, _POSITION_KINDS))
            cols = parse_copy(order_bytes, _ORDER_KINDS)
            closed_rows = int(np.count_nonzero(cols.ints[1] != INT_NULL))
            parse += time.perf_counter() - start
            if retention and floor > 0 and closed_rows < retention:  # gaps: read every closed order
                log.info("fewer than %d closed orders after closed_seq %d: reading all", retention, floor)
                start = time.perf_counter()
                order_bytes = await copy_out(conn, _orders_query(0))
                read += time.perf_counter() - start
                start = time.perf_counter()
                cols = parse_copy(order_bytes, _ORDER_KINDS)
                parse += time.perf_counter() - start
            start = time.perf_counter()
            orders = _orders(cols, retention)
            parse += time.perf_counter() - start
    finally:
        await conn.set_isolation_level(saved[0])
        await conn.set_read_only(saved[1])
    log.info(
        "snapshot read in %.3fs, parsed in %.3fs: %d open and %d closed orders, %d positions",
        read,
        parse,
        len(orders) - orders.closed,
        orders.closed,
        len(positions),
    )
    return ch.Snapshot(
        limits=limits,
        limits_version=int(limits_version),
        trading_states=states,
        marks=marks,
        positions=positions,
        orders=orders,
        journal_seq=journal_seq,
    )


def _orders_query(floor: int) -> sql.Composed:
    return sql.SQL(_ORDERS).format(floor=sql.Literal(floor))


def _positions(cols: CopyColumns) -> ch.RecoveredPositions:
    return ch.RecoveredPositions(
        ch.TextColumn(cols.buf, cols.text_off[0], cols.text_len[0]),
        ch.TextColumn(cols.buf, cols.text_off[1], cols.text_len[1]),
        cols.floats[0],
    )


def _orders(cols: CopyColumns, retention: int) -> ch.RecoveredOrders:
    """Rows in the engine's order: the newest ``retention`` closed ones oldest first, then the open."""
    seq = cols.ints[1]
    closed = np.flatnonzero(seq != INT_NULL)
    drop = closed.shape[0] - retention
    if drop > 0:  # keep the newest retention
        closed = closed[np.argpartition(seq[closed], drop)[drop:]] if retention else closed[:0]
    closed = closed[np.argsort(seq[closed])]  # closed_seq values are unique
    order = np.concatenate([closed, np.flatnonzero(seq == INT_NULL)])

    def text(k: int) -> ch.TextColumn:
        return ch.TextColumn(cols.buf, cols.text_off[k][order], cols.text_len[k][order])

    return ch.RecoveredOrders(
        text(0),
        text(1),
        text(2),
        cols.ints[0][order],
        cols.floats[0][order],
        cols.floats[1][order],
        int(closed.shape[0]),
    )


async def _fetch(
    conn: AsyncConnection, query: LiteralString, params: tuple = (), *, as_dict: bool = False
) -> list:
    async with conn.cursor(row_factory=dict_row if as_dict else tuple_row) as cur:
        await cur.execute(query, params or None)
        return await cur.fetchall()


def warm_up() -> None:
    """Compile (or load) the whole recovery path with the types a restart has: binary COPY bytes as
    copy_out returns them -> parse_copy -> the snapshot's columns -> Engine.restore (name lookups,
    distinct names, the restore kernel). A Snapshot built from Python values types some of these
    arrays differently, and a restart would then compile them (tests/test_serve_process.py)."""
    from ..engine import Engine, EngineConfig
    from ._copybin import encode

    def stream(types: tuple[str, ...], columns: tuple, nulls: tuple) -> np.ndarray:
        return np.frombuffer(bytearray(encode(types, columns, nulls)), dtype=np.uint8)

    names = np.array(["WA", "WB", "WC"], dtype=object)
    positions = stream(
        ("text", "text", "float8"), (names[:2], names[1:], np.array([1.0, -2.0])), (None, None, None)
    )
    seq = np.array([0, 7, 8], dtype=np.int64)
    orders = stream(
        ("text", "text", "text", "int2", "float8", "float8", "int8"),
        (names, names, names, np.array([1, 2, 1], np.int16), np.ones(3), np.full(3, 10.0), seq),
        (None, None, None, None, None, None, seq == 0),
    )
    snap = ch.Snapshot(
        marks=(("WB", 10.0, math.nan),),
        positions=_positions(parse_copy(positions, _POSITION_KINDS)),
        orders=_orders(parse_copy(orders, _ORDER_KINDS), 1),
    )
    Engine(EngineConfig(max_open_orders=8, closed_order_retention=1, initial_order_slots=2)).restore(snap)
