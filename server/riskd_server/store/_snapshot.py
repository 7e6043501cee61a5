"""Read the state the engine restores at start-up, in one consistent read-only snapshot."""

from __future__ import annotations

import math
from typing import LiteralString

from psycopg import AsyncConnection, IsolationLevel
from psycopg.rows import dict_row, tuple_row

from .. import changes as ch
from ..limits import Limit

_LIMITS = """
SELECT limit_id, kind, account, symbol, threshold, warn_fraction, disabled, description
FROM limits ORDER BY limit_id
"""
_TRADING_STATES = "SELECT account, state FROM trading_states ORDER BY account"
_MARKS = "SELECT symbol, price, last_fill_price FROM marks ORDER BY symbol"
_POSITIONS = "SELECT account, symbol, quantity FROM positions WHERE quantity <> 0 ORDER BY account, symbol"
_OPEN_ORDERS = """
SELECT client_order_id, account, symbol, side, open_quantity, price
FROM orders WHERE status = 1 ORDER BY accepted_at, client_order_id
"""
# The newest `retention` closed orders, returned oldest first (the engine's ring order).
_RECENT_CLOSED = """
SELECT client_order_id, account, symbol, side, open_quantity, price FROM (
    SELECT client_order_id, account, symbol, side, open_quantity, price, closed_seq
    FROM orders WHERE closed_seq IS NOT NULL ORDER BY closed_seq DESC LIMIT %s
) AS recent ORDER BY closed_seq
"""


def _nan_null(x: float | None) -> float:
    return math.nan if x is None else x


async def load_snapshot(conn: AsyncConnection, closed_retention: int) -> ch.Snapshot:
    """Everything Engine.restore needs; all queries see the same committed state."""
    saved = conn.isolation_level, conn.read_only
    await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
    await conn.set_read_only(True)
    try:
        async with conn.transaction():
            limits = tuple(Limit(**row) for row in await _fetch(conn, _LIMITS, as_dict=True))
            states = tuple((acct, int(state)) for acct, state in await _fetch(conn, _TRADING_STATES))
            marks = tuple(
                (sym, _nan_null(px), _nan_null(fill)) for sym, px, fill in await _fetch(conn, _MARKS)
            )
            positions = tuple(tuple(row) for row in await _fetch(conn, _POSITIONS))
            open_orders = tuple(ch.OpenOrderRow(*row) for row in await _fetch(conn, _OPEN_ORDERS))
            recent = tuple(
                ch.OpenOrderRow(*row)
                for row in await _fetch(conn, _RECENT_CLOSED, (max(0, closed_retention),))
            )
    finally:
        await conn.set_isolation_level(saved[0])
        await conn.set_read_only(saved[1])
    return ch.Snapshot(
        limits=limits,
        trading_states=states,
        marks=marks,
        positions=positions,  # type: ignore[arg-type]
        open_orders=open_orders,
        recent_closed=recent,
    )


async def _fetch(
    conn: AsyncConnection, query: LiteralString, params: tuple = (), *, as_dict: bool = False
) -> list:
    async with conn.cursor(row_factory=dict_row if as_dict else tuple_row) as cur:
        await cur.execute(query, params or None)
        return await cur.fetchall()
