"""Write one coalesced flush in one transaction: COPY into staging tables, then upsert.

The staging tables are session temp tables created once per pooled connection (``prepare``) and
emptied at every commit, so a flush costs no catalog churn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from psycopg import AsyncConnection, errors

from ._coalesce import (
    ALERT_COLUMNS,
    CHECK_EVENT_COLUMNS,
    EXECUTION_COLUMNS,
    LIMIT_FIELDS,
    LIMIT_HISTORY_COLUMNS,
    ORDER_COLUMNS,
    UPDATE_COLUMNS,
    Coalesced,
    Columns,
    limit_columns,
    rows_of,
    text,
)
from ._copybin import HEADER_BYTES, TRAILER_BYTES, encode

log = logging.getLogger("riskd.store")

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
    """CREATE TEMP TABLE IF NOT EXISTS riskd_limits_in (
        limit_id text, kind smallint, account text, symbol text, threshold float8, warn_fraction float8,
        disabled boolean, description text, template text, reference_volatility float8,
        min_scale float8) ON COMMIT DELETE ROWS""",
    """CREATE TEMP TABLE IF NOT EXISTS riskd_limit_ids_in (limit_id text) ON COMMIT DELETE ROWS""",
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
# Updates whose order is not in the table (its insert was dead-lettered): found only when the
# UPDATE's row count says some exist.
_MISSING_ORDERS = """
SELECT u.client_order_id FROM riskd_order_updates_in AS u
WHERE NOT EXISTS (SELECT 1 FROM orders AS o WHERE o.client_order_id = u.client_order_id)
"""
# The staging tables are never analyzed, so the planner would hash the whole (ever growing) orders
# table to join a flush's updates; an index probe per updated order is what scales.
_NO_HASH_JOIN = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
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
_LIMIT_COLUMNS = (
    "limit_id, kind, account, symbol, threshold, warn_fraction, disabled, description, template,"
    " reference_volatility, min_scale"
)
_UPSERT_LIMITS = f"""
INSERT INTO limits ({_LIMIT_COLUMNS})
SELECT {_LIMIT_COLUMNS} FROM riskd_limits_in
ON CONFLICT (limit_id) DO UPDATE SET
    kind = EXCLUDED.kind, account = EXCLUDED.account, symbol = EXCLUDED.symbol,
    threshold = EXCLUDED.threshold, warn_fraction = EXCLUDED.warn_fraction,
    disabled = EXCLUDED.disabled, description = EXCLUDED.description, template = EXCLUDED.template,
    reference_volatility = EXCLUDED.reference_volatility, min_scale = EXCLUDED.min_scale, updated_at = now()
"""
# The highest limits_version recorded (migration 008): recovery starts the limit book there.
_RAISE_VERSION = "UPDATE limits_version SET version = greatest(version, %s)"
_DELETE_LIMITS = "DELETE FROM limits AS l USING riskd_limit_ids_in AS d WHERE l.limit_id = d.limit_id"
# Keep the newest ``keep`` history rows of each limit this flush touched: one index range per
# limit finds the older rows, deleted by their row address (the table has no key index to keep up).
_PRUNE_HISTORY = """
DELETE FROM limit_history WHERE ctid = ANY(ARRAY(
    SELECT old.ctid
    FROM (SELECT limit_id FROM riskd_limits_in UNION ALL SELECT limit_id FROM riskd_limit_ids_in) AS t
    CROSS JOIN LATERAL (
        SELECT h.ctid FROM limit_history AS h WHERE h.limit_id = t.limit_id ORDER BY h.id DESC OFFSET %s
    ) AS old
))
"""
_UPSERT_TRADING_STATE = """
INSERT INTO trading_states (account, state, reason, updated_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (account) DO UPDATE SET
    state = EXCLUDED.state, reason = EXCLUDED.reason, updated_at = EXCLUDED.updated_at
"""
_ORDERS = (
    "orders (client_order_id, account, symbol, side, quantity, open_quantity, price, status, accepted_at,"
    " updated_at, closed_seq)"
)
_EXECUTIONS = "executions (ts, client_order_id, exec_type, quantity, price, applied, error)"
_CHECK_EVENTS = (
    "check_events (ts, client_order_id, account, symbol, check_kind, limit_id, observed, threshold, warning)"
)
_ALERTS = (
    "alerts (seq, ts, severity, kind, check_kind, account, symbol, limit_id, message, observed, threshold,"
    " count, summary, client_order_id)"
)
# Binary COPY needs every column's type up front (about a third faster than text here).
_ORDER_TYPES = (
    "text", "text", "text", "int2", "float8", "float8", "float8", "int2", "timestamptz", "timestamptz", "int8"
)  # fmt: skip
_UPDATE_TYPES = ("text", "float8", "int2", "timestamptz", "int8")
_EXECUTION_TYPES = ("timestamptz", "text", "int2", "float8", "float8", "bool", "text")
_CHECK_EVENT_TYPES = ("timestamptz", "text", "text", "text", "int2", "text", "float8", "float8", "bool")
_LIMIT_HISTORY = f"limit_history ({', '.join(LIMIT_HISTORY_COLUMNS)})"
_LIMIT_TYPES = (
    "text", "int2", "text", "text", "float8", "float8", "bool", "text", "text", "float8", "float8",
)  # fmt: skip
_LIMIT_HISTORY_TYPES = ("text", "int8", "text", "timestamptz", "text", "bool", *_LIMIT_TYPES[1:])
_ALERT_TYPES = (
    "int8", "timestamptz", "int2", "int2", "int2", "text", "text", "text", "text", "float8", "float8", "int8",
    "bool", "text",
)  # fmt: skip


async def prepare(conn: AsyncConnection) -> None:
    """Pool ``configure`` hook: create this session's staging tables."""
    async with conn.transaction():
        for ddl in _STAGING:
            await conn.execute(ddl)


class AlreadyApplied(Exception):
    """journal_applied already holds this flush's mark: an earlier attempt whose outcome was lost
    (a timeout during COMMIT) committed it. Nothing was written now; the flush is done."""


class AppliedConflict(RuntimeError):
    """journal_applied is not what this writer last wrote: another feeder writes to this database
    (or it was restored). Writing on would put rows twice; the writer stops instead."""


_SET_APPLIED = b"UPDATE journal_applied SET seq = %s, updated_at = now() WHERE seq = %s"
_ADVANCE_APPLIED = b"UPDATE journal_applied SET seq = %s, updated_at = now() WHERE seq < %s"


async def set_applied(conn: AsyncConnection, seq: int, expected: int | None) -> None:
    """Set journal_applied to ``seq`` in the current transaction, if it holds ``expected`` (None:
    if it is below ``seq``). Locks the row first thing, so two writers serialise here and the
    second one finds the first's value: AlreadyApplied (it is ``seq``) or AppliedConflict."""
    cur = await conn.execute(
        _SET_APPLIED if expected is not None else _ADVANCE_APPLIED,
        (seq, expected if expected is not None else seq),
    )
    if cur.rowcount == 1:
        return
    row = await (await conn.execute(b"SELECT seq FROM journal_applied")).fetchone()
    found = int(row[0]) if row else None
    if found == seq:
        raise AlreadyApplied(seq)
    raise AppliedConflict(
        f"journal_applied is {found}, this writer expected {'below ' + str(seq) if expected is None else expected}"
        f" before writing up to {seq}: is another feeder writing to this database?"
    )


async def write(
    conn: AsyncConnection, b: Coalesced, history_keep: int = 20, applied: tuple[int, int | None] | None = None
) -> np.ndarray | None:
    """Write everything in ``b`` atomically (the caller bounds it with a timeout).

    ``applied`` = (seq, expected): also set journal_applied to seq in the same transaction
    (``set_applied``), so the rows and the journal position commit together or not at all.

    The big COPY buffers are built in a worker thread (they need this flush's closed_seq values
    first), so the event loop only forwards bytes. Nothing is locked while they are built. A flush
    prepared while the one before it wrote arrives with them built (``b.encoded``).
    Returns, when some order updates found no order to update, a mask over ``b.order_updates``
    of those rows (written nowhere: the caller dead-letters them); None otherwise.
    """
    missing = None
    async with conn.transaction():
        if applied is not None:
            await set_applied(conn, *applied)
        encoded = b.encoded
        if encoded is None:
            seqs = b.seqs if b.seqs is not None else await closed_seqs(conn, b.closes)
            encoded = await asyncio.to_thread(encode_all, b, seqs)
        orders, updates, executions, events, alerts = encoded
        if orders is not None:
            await _write_orders(conn, orders, rows_of(b.orders))
        if updates is not None:
            await _copy_bytes(conn, "riskd_order_updates_in", updates)
            await conn.execute(_NO_HASH_JOIN.encode())
            cur = await conn.execute(_UPDATE_ORDERS)
            if cur.rowcount < rows_of(b.order_updates):
                missing = await _missing_orders(conn, b)
        if b.positions:
            rows = ((a, s, q) for (a, s), q in b.positions.items())
            await _copy(conn, "riskd_positions_in", ("text", "text", "float8"), rows)
            await conn.execute(_UPSERT_POSITIONS)
        if b.marks:
            marks = ((sym, px, fill) for sym, (px, fill) in b.marks.items())
            await _copy(conn, "riskd_marks_in", ("text", "float8", "float8"), marks)
            await conn.execute(_UPSERT_MARKS)
        await _write_limits(conn, b, history_keep)
        if b.trading_states:
            async with conn.cursor() as cur:
                await cur.executemany(
                    _UPSERT_TRADING_STATE, [(acct, *rest) for acct, rest in b.trading_states.items()]
                )
        if executions is not None:
            await _copy_bytes(conn, _EXECUTIONS, executions)
        if events is not None:
            await _copy_bytes(conn, _CHECK_EVENTS, events)
        if alerts is not None:
            await _copy_bytes(conn, _ALERTS, alerts)
    return missing


async def _missing_orders(conn: AsyncConnection, b: Coalesced) -> np.ndarray:
    assert b.order_updates is not None
    cur = await conn.execute(_MISSING_ORDERS)
    missing = {row[0] for row in await cur.fetchall()}
    ids = text(b.order_updates["client_order_id"])  # as the COPY wrote them
    return np.fromiter((i in missing for i in ids), dtype=bool, count=len(ids))


def encode_all(b: Coalesced, seqs: np.ndarray) -> tuple[bytes | None, ...]:
    """Binary COPY streams for orders, order updates, executions, check events and alerts (None = no
    rows)."""
    return (
        _encode_orders(b.orders, ORDER_COLUMNS, _ORDER_TYPES, seqs),
        _encode_orders(b.order_updates, UPDATE_COLUMNS, _UPDATE_TYPES, seqs),
        _encode(b.executions, EXECUTION_COLUMNS, _EXECUTION_TYPES),
        _encode(b.check_events, CHECK_EVENT_COLUMNS, _CHECK_EVENT_TYPES),
        _encode(b.alerts, ALERT_COLUMNS, _ALERT_TYPES),
    )


def _encode_orders(
    cols: Columns | None, names: tuple[str, ...], types: Sequence[str], seqs: np.ndarray
) -> bytes | None:
    """The last column, close_rank, becomes closed_seq: the rank-th value of ``seqs``, or NULL."""
    if cols is None:
        return None
    rank = cols["close_rank"]
    is_open = rank < 0
    closed_seq = seqs[np.maximum(rank, 0)] if seqs.shape[0] else np.zeros(rank.shape[0], dtype=np.int64)
    columns = [cols[name] for name in names[:-1]] + [closed_seq]
    nulls: list[np.ndarray | None] = [None] * (len(names) - 1)
    return encode(types, columns, [*nulls, is_open])


def _encode(cols: Columns | None, names: tuple[str, ...], types: Sequence[str]) -> bytes | None:
    if cols is None:
        return None
    return encode(types, [cols[name] for name in names], [None] * len(names))


async def _write_orders(conn: AsyncConnection, data: bytes, n: int) -> None:
    """Orders accepted in this flush: straight COPY into orders, upsert only if an id is reused.

    An id is accepted again only after it left the closed-order retention window, so a conflict
    is rare; a plain COPY skips the staging copy and the speculative insertion of ON CONFLICT.
    """
    try:
        async with conn.transaction():  # a savepoint: a conflict undoes only this COPY
            await _copy_bytes(conn, _ORDERS, data)
        return
    except errors.UniqueViolation:
        log.debug("reused client_order_id in a flush of %d orders; upserting", n)
    await _copy_bytes(conn, "riskd_orders_in", data)
    await conn.execute(_UPSERT_ORDERS)


async def closed_seqs(conn: AsyncConnection, count: int) -> np.ndarray:
    """``count`` closed_seq values, increasing: the i-th close of this flush gets the i-th.

    Sequences are not transactional: a failed flush only leaves a gap, and its retry takes new,
    larger values, so close order is still kept.
    """
    if not count:
        return np.empty(0, dtype=np.int64)
    cur = await conn.execute(
        "SELECT array_agg(v ORDER BY v) FROM (SELECT nextval('orders_closed_seq') AS v"
        " FROM generate_series(1, %s)) AS s",
        (count,),
    )
    row = await cur.fetchone()
    assert row is not None
    return np.asarray(row[0], dtype=np.int64)


# Rows per COPY slice of limits and their history: an import of a million limits is written
# without its whole COPY stream in memory (each slice is encoded in a worker thread).
COPY_SLICE = 50_000
Slice = Callable[[int, int], tuple[Sequence[np.ndarray], Sequence[np.ndarray | None]]]


async def _write_limits(conn: AsyncConnection, b: Coalesced, keep: int) -> None:
    """Limits through staging tables (COPY, then one statement each: a million rows in one flush is
    an import), then their history rows, pruned to the newest ``keep`` per limit touched."""
    if not b.limits and b.limit_history is None:
        return
    await conn.execute(_NO_HASH_JOIN.encode())  # index probes per touched limit, never a full scan
    upserted = [lim for lim in b.limits.values() if lim is not None]
    deleted = np.array([limit_id for limit_id, lim in b.limits.items() if lim is None] or [""], dtype=object)
    if len(upserted) < len(b.limits):
        await _copy_sliced(conn, "riskd_limit_ids_in", ("text",), len(b.limits) - len(upserted),
                           lambda i, j: ((deleted[i:j],), (None,)))  # fmt: skip
        await conn.execute(_DELETE_LIMITS)
    if upserted:

        def limit_slice(i: int, j: int) -> tuple[list[np.ndarray], list[None]]:
            cols = limit_columns(upserted[i:j])
            return [cols[name] for name in LIMIT_FIELDS], [None] * len(LIMIT_FIELDS)

        await _copy_sliced(conn, "riskd_limits_in", _LIMIT_TYPES, len(upserted), limit_slice)
        await conn.execute(_UPSERT_LIMITS)
    h = b.limit_history
    if h is not None:

        def history_slice(i: int, j: int) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
            gone = h["deleted"][i:j]
            nulls: list[np.ndarray | None] = [None] * 6 + [gone] * (len(LIMIT_HISTORY_COLUMNS) - 6)
            return [h[name][i:j] for name in LIMIT_HISTORY_COLUMNS], nulls

        await _copy_sliced(conn, _LIMIT_HISTORY, _LIMIT_HISTORY_TYPES, rows_of(h), history_slice)
        await conn.execute(_PRUNE_HISTORY, (keep,))
        await conn.execute(_RAISE_VERSION, (int(h["limits_version"].max()),))


async def _copy_sliced(conn: AsyncConnection, target: str, types: Sequence[str], n: int, part: Slice) -> None:
    """One binary COPY of ``n`` rows, encoded ``COPY_SLICE`` rows at a time in a worker thread."""
    statement = f"COPY {target} FROM STDIN (FORMAT BINARY)"
    async with conn.cursor() as cur, cur.copy(statement.encode()) as copy:
        for i in range(0, n, COPY_SLICE):
            j = min(n, i + COPY_SLICE)
            await copy.write(await asyncio.to_thread(_encode_slice, types, part, i, j, i == 0, j == n))


def _encode_slice(types: Sequence[str], part: Slice, i: int, j: int, first: bool, last: bool) -> bytes:
    columns, nulls = part(i, j)
    data = encode(types, columns, nulls)
    return data[0 if first else HEADER_BYTES : len(data) if last else len(data) - TRAILER_BYTES]


async def _copy_bytes(conn: AsyncConnection, target: str, data: bytes, chunk: int = 1 << 20) -> None:
    """Send a complete binary COPY stream in chunks (each write lets the event loop run)."""
    statement = f"COPY {target} FROM STDIN (FORMAT BINARY)"
    view = memoryview(data)
    async with conn.cursor() as cur, cur.copy(statement.encode()) as copy:
        for i in range(0, len(view), chunk):
            await copy.write(view[i : i + chunk])


async def _copy(conn: AsyncConnection, target: str, types: Sequence[str], rows: Iterable[Sequence]) -> None:
    statement = f"COPY {target} FROM STDIN (FORMAT BINARY)"
    async with conn.cursor() as cur, cur.copy(statement.encode()) as copy:
        copy.set_types(types)
        for row in rows:
            await copy.write_row(row)
