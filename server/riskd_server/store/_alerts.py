"""Alerts read back from PostgreSQL: the newest ones at start-up (the ring and the seq continue where
the last run stopped) and pages older than the ring holds (QueryAlerts past its end)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from ..alerts.model import Alert, AlertFilter

_COLUMNS = (
    "seq, extract(epoch from ts)::float8, severity, kind, check_kind, account, symbol, limit_id, message,"
    " observed, threshold, count, summary, client_order_id"
)


def _alert(row: tuple[Any, ...]) -> Alert:
    return Alert(*row)


async def recent_alerts(conn: AsyncConnection, limit: int) -> tuple[list[Alert], int]:
    """The newest ``limit`` alerts oldest first, and the highest seq ever written (0: none)."""
    cur = await conn.execute("SELECT coalesce(max(seq), 0) FROM alerts")
    row = await cur.fetchone()
    last = int(row[0]) if row else 0
    if limit <= 0 or not last:
        return [], last
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM alerts ORDER BY seq DESC LIMIT %s",
        (limit,),
    )
    rows = await cur.fetchall()
    return [_alert(r) for r in reversed(rows)], last


async def query_alerts(
    conn: AsyncConnection, flt: AlertFilter, before_seq: int, page_size: int
) -> list[Alert]:
    """Alerts matching ``flt`` with seq < before_seq, newest first (at most page_size)."""
    where: list[sql.Composable] = [sql.SQL("seq < %s")]
    params: list[Any] = [before_seq]
    if flt.min_severity:
        where.append(sql.SQL("severity >= %s"))
        params.append(flt.min_severity)
    for column, values in (
        ("account", flt.accounts),
        ("symbol", flt.symbols),
        ("kind", flt.kinds),
        ("check_kind", flt.checks),
    ):
        if values:
            where.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)))
            params.append(sorted(values))
    query = sql.SQL("SELECT {} FROM alerts WHERE {} ORDER BY seq DESC LIMIT %s").format(
        sql.SQL(_COLUMNS), sql.SQL(" AND ").join(where)
    )
    params.append(page_size)
    cur = await conn.execute(query, params)
    return [_alert(r) for r in await cur.fetchall()]
