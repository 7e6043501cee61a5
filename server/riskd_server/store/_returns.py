"""Daily returns in PostgreSQL: the ImportReturns upsert and the window the risk model is built from.

Import (constant memory on the server): one transaction on one pool connection; each validated
chunk is COPYed (binary, built by _copybin in a worker thread) into a temporary table that is
dropped at commit; at the end one INSERT ... ON CONFLICT moves it into ``returns`` (the last row
wins when a key repeats within one import; a row whose value is unchanged is not rewritten) and
the transaction commits. An error anywhere rolls everything back: all or nothing.

Read: the last ``window`` distinct days present, then every return on those days as a binary COPY
of (symbol index, day, ret), parsed by _copyparse and laid into a dense float64 matrix
(symbols x days, NaN where missing) in a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from psycopg import AsyncConnection, IsolationLevel, sql

from ..risk.build import ReturnsWindow
from ..risk.returns import ReturnsChunk
from ._copybin import encode
from ._copyparse import FLOAT, INT, copy_out, parse_copy

_TEMP = """CREATE TEMP TABLE returns_in (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    symbol text NOT NULL,
    day bigint NOT NULL,
    ret double precision NOT NULL
) ON COMMIT DROP"""
_COPY_IN = "COPY returns_in (symbol, day, ret) FROM STDIN (FORMAT BINARY)"
_UPSERT = """INSERT INTO returns (symbol, day, ret)
SELECT DISTINCT ON (symbol, day) symbol, day::integer, ret FROM returns_in ORDER BY symbol, day, seq DESC
ON CONFLICT (symbol, day) DO UPDATE SET ret = excluded.ret
WHERE returns.ret IS DISTINCT FROM excluded.ret"""
_IMPORTED = "SELECT count(DISTINCT symbol), coalesce(min(day), 0), coalesce(max(day), 0) FROM returns_in"
_DAYS = "SELECT day FROM (SELECT DISTINCT day FROM returns) d ORDER BY day DESC LIMIT %s"
_SYMBOLS = "SELECT DISTINCT symbol FROM returns WHERE day >= %s ORDER BY symbol"
_ROWS = """COPY (
    SELECT s.i - 1, r.day, r.ret
    FROM returns r JOIN unnest({symbols}::text[]) WITH ORDINALITY AS s(symbol, i) USING (symbol)
    WHERE r.day >= {first}
) TO STDOUT (FORMAT BINARY)"""
_ROW_KINDS = (INT, INT, FLOAT)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import changed: rows inserted or changed, and what it carried."""

    upserted: int
    rows: int  # rows received
    symbols: int
    first_day: int
    last_day: int


class ReturnsImport:
    """One import on one connection inside a transaction (see the module docstring)."""

    def __init__(self, conn: AsyncConnection, timeout: float, finish_timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout
        self._finish_timeout = finish_timeout
        self._started = False
        self.rows = 0

    async def add(self, chunk: ReturnsChunk) -> None:
        """COPY one validated chunk into the temporary table."""
        if not len(chunk):
            return
        data = await asyncio.to_thread(
            encode, ("text", "int8", "float8"), (chunk.symbol, chunk.day, chunk.ret), (None, None, None)
        )
        async with asyncio.timeout(self._timeout):
            if not self._started:
                await self._conn.execute(_TEMP)
                self._started = True
            async with self._conn.cursor() as cur, cur.copy(_COPY_IN) as copy:
                view = memoryview(data)
                for i in range(0, len(view), 1 << 20):
                    await copy.write(view[i : i + (1 << 20)])
        self.rows += len(chunk)

    async def finish(self) -> ImportResult:
        """Upsert everything received (the caller commits by leaving the transaction)."""
        if not self._started:
            return ImportResult(0, 0, 0, 0, 0)
        async with asyncio.timeout(self._finish_timeout), self._conn.cursor() as cur:
            await cur.execute(_UPSERT)
            upserted = max(cur.rowcount, 0)
            await cur.execute(_IMPORTED)
            row = await cur.fetchone()
        assert row is not None
        return ImportResult(upserted, self.rows, int(row[0]), int(row[1]), int(row[2]))


async def read_window(conn: AsyncConnection, window: int) -> ReturnsWindow:
    """The last ``window`` distinct days of returns as a dense matrix (one consistent snapshot)."""
    saved = conn.isolation_level, conn.read_only
    await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
    await conn.set_read_only(True)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL client_encoding TO 'UTF8'")
            cur = await conn.execute(_DAYS, (window,))
            days = np.array(sorted(int(r[0]) for r in await cur.fetchall()), dtype=np.int32)
            if not days.shape[0]:
                return ReturnsWindow((), days, np.zeros((0, 0)))
            first = int(days[0])
            cur = await conn.execute(_SYMBOLS, (first,))
            symbols = tuple(str(r[0]) for r in await cur.fetchall())
            query = sql.SQL(_ROWS).format(symbols=sql.Literal(list(symbols)), first=sql.Literal(first))
            data = await copy_out(conn, query)
    finally:
        await conn.set_isolation_level(saved[0])
        await conn.set_read_only(saved[1])
    matrix = await asyncio.to_thread(_dense, data, len(symbols), days)
    return ReturnsWindow(symbols, days, matrix)


def _dense(data: np.ndarray, n: int, days: np.ndarray) -> np.ndarray:
    """(symbol index, day, ret) rows -> float64[n, d], NaN where no row."""
    cols = parse_copy(data, _ROW_KINDS)
    matrix = np.full((n, days.shape[0]), np.nan)
    sym, day = cols.ints[0], cols.ints[1]
    matrix[sym, np.searchsorted(days, day)] = cols.floats[0]
    return matrix
