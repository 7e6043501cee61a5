"""Write one coalesced flush in one transaction: COPY into staging tables, then upsert.

The staging tables are session temp tables created once per pooled connection (``prepare``) and
emptied at every commit, so a flush costs no catalog churn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from psycopg import AsyncConnection

from ._coalesce import Coalesced

_STAGING = (
    """CREATE TEMP TABLE IF NOT EXISTS riskd_orders_in (
        client_order_id text, account text, symbol text, side smallint, quantity float8,
        open_quantity float8, price float8, status smallint, accepted_at timestamptz,
        updated_at timestamptz, closed_seq bigint) ON COMMIT DELETE ROWS""",
    """CREATE TEMP TABLE IF NOT EXISTS riskd_order_updates_in (
        client_order_id text, open_quantity float8, status smallint, updated_at timestamptz,
        closed_seq bigint) ON COMMIT DELETE ROWS""",
    """CREATE TEMP TABLE IF NOT EXISTS riskd_positions_in (
        account text, symbol text, quantity float8) ON COMMIT DELETE ROWS""",
    """CREATE TEMP TABLE IF NOT EXISTS riskd_marks_in (
        symbol text, price float8, last_fill_price float8) ON COMMIT DELETE ROWS""",
)

_UPSERT_ORDERS = """
INSERT INTO orders AS o (client_order_id, account, symbol, side, quantity, open_quantity, price, status,
                         accepted_at, updated_at, closed_seq)
SELECT client_order_id, account, symbol, side, quantity, open_quantity, price, status,
       accepted_at, updated_at, closed_seq
FROM riskd_orders_in
ON CONFLICT (client_order_id) DO UPDATE SET
    account = EXCLUDED.account, symbol = EXCLUDED.symbol, side = EXCLUDED.side,
    quantity = EXCLUDED.quantity, open_quantity = EXCLUDED.open_quantity, price = EXCLUDED.price,
    status = EXCLUDED.status, accepted_at = EXCLUDED.accepted_at, updated_at = EXCLUDED.updated_at,
    closed_seq = EXCLUDED.closed_seq
"""
_UPDATE_ORDERS = """
UPDATE orders AS o SET open_quantity = u.open_quantity, status = u.status, updated_at = u.updated_at,
                       closed_seq = u.closed_seq
FROM riskd_order_updates_in AS u
WHERE o.client_order_id = u.client_order_id
"""
_UPSERT_POSITIONS = """
INSERT INTO positions (account, symbol, quantity)
SELECT account, symbol, quantity FROM riskd_positions_in
ON CONFLICT (account, symbol) DO UPDATE SET quantity = EXCLUDED.quantity, updated_at = now()
"""
_UPSERT_MARKS = """
INSERT INTO marks (symbol, price, last_fill_price)
SELECT symbol, price, last_fill_price FROM riskd_marks_in
ON CONFLICT (symbol) DO UPDATE SET
    price = EXCLUDED.price, last_fill_price = EXCLUDED.last_fill_price, updated_at = now()
"""
_UPSERT_LIMIT = """
INSERT INTO limits (limit_id, kind, account, symbol, threshold, warn_fraction, disabled, description)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (limit_id) DO UPDATE SET
    kind = EXCLUDED.kind, account = EXCLUDED.account, symbol = EXCLUDED.symbol,
    threshold = EXCLUDED.threshold, warn_fraction = EXCLUDED.warn_fraction,
    disabled = EXCLUDED.disabled, description = EXCLUDED.description, updated_at = now()
"""
_UPSERT_TRADING_STATE = """
INSERT INTO trading_states (account, state, reason, updated_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (account) DO UPDATE SET
    state = EXCLUDED.state, reason = EXCLUDED.reason, updated_at = EXCLUDED.updated_at
"""
_EXECUTIONS = "executions (ts, client_order_id, exec_type, quantity, price, applied, error)"
_CHECK_EVENTS = (
    "check_events (ts, client_order_id, account, symbol, check_kind, limit_id, observed, threshold, warning)"
)
# Binary COPY needs every column's type up front (about a third faster than text here).
_ORDER_TYPES = (
    "text", "text", "text", "int2", "float8", "float8", "float8", "int2", "timestamptz", "timestamptz", "int8"
)  # fmt: skip
_UPDATE_TYPES = ("text", "float8", "int2", "timestamptz", "int8")
_EXECUTION_TYPES = ("timestamptz", "text", "int2", "float8", "float8", "bool", "text")
_CHECK_EVENT_TYPES = ("timestamptz", "text", "text", "text", "int2", "text", "float8", "float8", "bool")


async def prepare(conn: AsyncConnection) -> None:
    """Pool ``configure`` hook: create this session's staging tables."""
    async with conn.transaction():
        for ddl in _STAGING:
            await conn.execute(ddl)


async def write(conn: AsyncConnection, b: Coalesced) -> None:
    """Write everything in ``b`` atomically (the caller bounds it with a timeout)."""
    async with conn.transaction():
        seq = await _closed_seqs(conn, list(b.closes))
        if b.orders:
            rows = ([oid, *row, seq.get(oid)] for oid, row in b.orders.items())
            await _copy(conn, "riskd_orders_in", _ORDER_TYPES, rows)
            await conn.execute(_UPSERT_ORDERS)
        if b.order_updates:
            rows = ((oid, *upd, seq.get(oid)) for oid, upd in b.order_updates.items())
            await _copy(conn, "riskd_order_updates_in", _UPDATE_TYPES, rows)
            await conn.execute(_UPDATE_ORDERS)
        if b.positions:
            rows = ((a, s, q) for (a, s), q in b.positions.items())
            await _copy(conn, "riskd_positions_in", ("text", "text", "float8"), rows)
            await conn.execute(_UPSERT_POSITIONS)
        if b.marks:
            rows = ((sym, px, fill) for sym, (px, fill) in b.marks.items())
            await _copy(conn, "riskd_marks_in", ("text", "float8", "float8"), rows)
            await conn.execute(_UPSERT_MARKS)
        await _write_limits(conn, b)
        if b.trading_states:
            async with conn.cursor() as cur:
                await cur.executemany(
                    _UPSERT_TRADING_STATE, [(acct, *rest) for acct, rest in b.trading_states.items()]
                )
        if b.executions:
            await _copy(conn, _EXECUTIONS, _EXECUTION_TYPES, b.executions)
        if b.check_events:
            await _copy(conn, _CHECK_EVENTS, _CHECK_EVENT_TYPES, b.check_events)


async def _closed_seqs(conn: AsyncConnection, closed: list[str]) -> dict[str, int]:
    """closed_seq values for orders closed in this flush, increasing in close order."""
    if not closed:
        return {}
    cur = await conn.execute(
        "SELECT nextval('orders_closed_seq') FROM generate_series(1, %s)", (len(closed),)
    )
    values = sorted(row[0] for row in await cur.fetchall())
    return dict(zip(closed, values, strict=True))


async def _write_limits(conn: AsyncConnection, b: Coalesced) -> None:
    if not b.limits:
        return
    deleted = [limit_id for limit_id, lim in b.limits.items() if lim is None]
    upserted = [
        (lim.limit_id, lim.kind, lim.account, lim.symbol, lim.threshold, lim.warn_fraction, lim.disabled,
         lim.description)
        for lim in b.limits.values()
        if lim is not None
    ]  # fmt: skip
    if deleted:
        await conn.execute("DELETE FROM limits WHERE limit_id = ANY(%s)", (deleted,))
    if upserted:
        async with conn.cursor() as cur:
            await cur.executemany(_UPSERT_LIMIT, upserted)


async def _copy(conn: AsyncConnection, target: str, types: Sequence[str], rows: Iterable[Sequence]) -> None:
    statement = f"COPY {target} FROM STDIN (FORMAT BINARY)"
    async with conn.cursor() as cur, cur.copy(statement.encode()) as copy:
        copy.set_types(types)
        for row in rows:
            await copy.write_row(row)
