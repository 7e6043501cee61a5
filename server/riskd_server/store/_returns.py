"""Daily returns in PostgreSQL: the ImportReturns upsert and the window the risk model is built from.

Import (constant memory on the server): one transaction on one pool connection; each validated
chunk is COPYed (binary, built by _copybin in a worker thread) into a temporary table that is
dropped at commit; at the end one INSERT ... ON CONFLICT moves it into ``returns`` (the last row
wins when a key repeats within one import; a row whose value is unchanged is not rewritten) and
the transaction commits. An error anywhere rolls everything back: all or nothing.

Read: the last ``window`` distinct days present, then every return on those days as a binary COPY
of one row per symbol (its days and returns packed by PostgreSQL: 5,000 messages instead of
1.25 million), parsed by _copyparse and laid into a dense float64 matrix (symbols x days, NaN
where missing) in a worker thread, without a Python step per return.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
from psycopg import AsyncConnection, IsolationLevel, sql

from ..risk.build import ReturnsWindow
from ..risk.returns import ReturnsChunk
from ._copybin import encode
from ._copyparse import TEXT, copy_out, parse_copy

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
# The last N distinct days by walking the day index down (one probe per day, not a scan of every row).
_DAYS = """WITH RECURSIVE d(day) AS (
    SELECT max(day) FROM returns
    UNION ALL
    SELECT (SELECT max(r.day) FROM returns r WHERE r.day < d.day) FROM d WHERE d.day IS NOT NULL
)
SELECT day FROM d WHERE day IS NOT NULL LIMIT %s"""
# One row per symbol: its days and returns as packed big-endian int4 and float8 (both aggregates
# see the group's rows in the same order), so the stream is a message per symbol, not per return.
_ROWS = """COPY (
    SELECT symbol, string_agg(int4send(day), ''::bytea), string_agg(float8send(ret), ''::bytea)
    FROM returns WHERE day >= {first} GROUP BY symbol ORDER BY symbol
) TO STDOUT (FORMAT BINARY)"""
_ROW_KINDS = (TEXT, TEXT, TEXT)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import changed: rows inserted or changed, and what it carried."""

    upserted: int
    rows: int  # rows received
    symbols: int
    first_day: int
    last_day: int
    copy_seconds: float = 0.0  # validating excluded: COPY into the temporary table
    upsert_seconds: float = 0.0


class ReturnsImport:
    """One import on one connection inside a transaction (see the module docstring)."""

    def __init__(self, conn: AsyncConnection, timeout: float, finish_timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout
        self._finish_timeout = finish_timeout
        self._started = False
        self.rows = 0
        self.copy_seconds = 0.0

    async def add(self, chunk: ReturnsChunk) -> None:
        """COPY one validated chunk into the temporary table."""
        if not len(chunk):
            return
        start = time.perf_counter()
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
        self.copy_seconds += time.perf_counter() - start

    async def finish(self) -> ImportResult:
        """Upsert everything received (the caller commits by leaving the transaction)."""
        if not self._started:
            return ImportResult(0, 0, 0, 0, 0)
        start = time.perf_counter()
        # The upsert grows with the rows (measured 13-36 us a row on a busy 2-core VM): allow 100.
        async with asyncio.timeout(self._finish_timeout + self.rows * 1e-4), self._conn.cursor() as cur:
            await cur.execute(_UPSERT)
            upserted = max(cur.rowcount, 0)
            await cur.execute(_IMPORTED)
            row = await cur.fetchone()
        assert row is not None
        return ImportResult(
            upserted,
            self.rows,
            int(row[0]),
            int(row[1]),
            int(row[2]),
            self.copy_seconds,
            time.perf_counter() - start,
        )


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
            data = await copy_out(conn, sql.SQL(_ROWS).format(first=sql.Literal(first)))
    finally:
        await conn.set_isolation_level(saved[0])
        await conn.set_read_only(saved[1])
    symbols, matrix = await asyncio.to_thread(_dense, data, days)
    return ReturnsWindow(symbols, days, matrix)


def _dense(data: np.ndarray, days: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """(symbol, packed days, packed returns) rows -> symbols and float64[n, d], NaN where missing."""
    cols = parse_copy(data, _ROW_KINDS)
    buf = cols.buf
    symbols = tuple(
        bytes(buf[o : o + n]).decode("utf-8")
        for o, n in zip(cols.text_off[0].tolist(), cols.text_len[0].tolist(), strict=True)
    )
    day, count = _unpack(buf, cols.text_off[1], cols.text_len[1], 4, ">i4")
    ret, _ = _unpack(buf, cols.text_off[2], cols.text_len[2], 8, ">f8")
    matrix = np.full((len(symbols), days.shape[0]), np.nan)
    matrix[np.repeat(np.arange(len(symbols)), count), np.searchsorted(days, day)] = ret
    return symbols, matrix


def _unpack(
    buf: np.ndarray, off: np.ndarray, length: np.ndarray, width: int, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """Every span's packed fixed-width values back to back (one gather, no loop over spans),
    and how many each span holds."""
    count = length // width
    before = np.cumsum(count) - count  # values in the spans before each one
    start = np.repeat(off - width * before, count) + width * np.arange(int(count.sum()))
    raw = buf[start[:, None] + np.arange(width)]
    return raw.reshape(-1).view(dtype).astype(np.dtype(dtype).newbyteorder("=")), count
