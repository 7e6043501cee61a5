"""The PostgreSQL store: a connection pool, the schema, the start-up snapshot and the write-behind."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psutil
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from .. import changes as ch
from ..alerts.model import Alert, AlertFilter
from ..risk.build import ReturnsWindow
from . import _alerts, _history, _returns, _snapshot, _write
from ._migrations import apply_migrations
from ._snapshot import load_snapshot
from ._writebehind import WriteBehind

log = logging.getLogger("riskd.store")


class Store:
    """Owns the pool; create with ``await Store.open(dsn, ...)`` and end with ``await close()``."""

    def __init__(self, pool: AsyncConnectionPool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 10.0,
        migrate_timeout: float | None = None,
        backend_nice: int | None = None,
        backend_idle: bool = False,
    ) -> Store:
        """Connect (waiting up to ``timeout`` for min_size connections) and bring the schema up to date.

        ``backend_nice``: renice each connection's PostgreSQL backend to it when that backend is a
        local postgres process of this user (the embedded cluster), so its work takes idle CPU only;
        ``backend_idle``: also SCHED_IDLE there.
        """
        pool = AsyncConnectionPool(
            dsn,
            kwargs={"client_encoding": "UTF8"},  # binary COPY sends text as UTF-8 bytes (_copybin)
            min_size=min_size,
            max_size=max(min_size, max_size),
            timeout=timeout,
            open=False,
            configure=_write.prepare if backend_nice is None else _reniced(backend_nice, backend_idle),
            name="riskd",
        )
        try:
            await pool.open(wait=True, timeout=timeout)
            async with asyncio.timeout(migrate_timeout or max(timeout, 60.0)), pool.connection() as conn:
                await _require_utf8(conn)
                applied = await apply_migrations(conn)
        except BaseException:
            await pool.close(timeout=timeout)
            raise
        if applied:
            log.info("schema migrated: %s", ", ".join(applied))
        return cls(pool, timeout)

    async def load_snapshot(self, closed_retention: int, *, timeout: float | None = None) -> ch.Snapshot:
        """Latest state, open orders and the newest ``closed_retention`` closed orders (oldest first)."""
        async with asyncio.timeout(timeout or max(self._timeout, 60.0)), self._pool.connection() as conn:
            return await load_snapshot(conn, closed_retention)

    async def journal_applied(self, *, timeout: float | None = None) -> int:
        """The last journal seq whose rows PostgreSQL holds (0: none); the feeder resumes after it."""
        async with asyncio.timeout(timeout or self._timeout), self._pool.connection() as conn:
            cur = await conn.execute(_snapshot.JOURNAL_APPLIED)
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def recent_alerts(self, limit: int) -> tuple[list[Alert], int]:
        """The newest ``limit`` persisted alerts, oldest first, and the highest seq ever written."""
        async with asyncio.timeout(max(self._timeout, 60.0)), self._pool.connection() as conn:
            return await _alerts.recent_alerts(conn, limit)

    async def query_alerts(self, flt: AlertFilter, before_seq: int, page_size: int) -> list[Alert]:
        """Persisted alerts matching ``flt`` with seq < before_seq, newest first."""
        async with asyncio.timeout(self._timeout), self._pool.connection() as conn:
            return await _alerts.query_alerts(conn, flt, before_seq, page_size)

    async def limit_history(self, limit_id: str, keep: int) -> list[ch.LimitVersion]:
        """The newest ``keep`` stored versions of a limit, newest first."""
        async with asyncio.timeout(self._timeout), self._pool.connection() as conn:
            return await _history.limit_history(conn, limit_id, keep)

    @asynccontextmanager
    async def returns_import(
        self, *, finish_timeout: float | None = None
    ) -> AsyncIterator[_returns.ReturnsImport]:
        """One ImportReturns: a pool connection (waited for up to the store's timeout) holding one
        transaction; leaving the block normally commits, an exception rolls everything back.
        Each chunk's COPY gets the store's timeout, the final upsert ``finish_timeout`` (default
        max(timeout, 120 s)) plus 100 us a row."""
        async with self._pool.connection(timeout=self._timeout) as conn, conn.transaction():
            yield _returns.ReturnsImport(conn, self._timeout, finish_timeout or max(self._timeout, 120.0))

    async def read_returns(self, window: int, *, timeout: float | None = None) -> ReturnsWindow:
        """The last ``window`` days of returns as a dense symbols x days matrix (NaN: missing)."""
        async with asyncio.timeout(timeout or max(self._timeout, 120.0)), self._pool.connection() as conn:
            return await _returns.read_window(conn, window)

    def write_behind(
        self,
        *,
        max_pending_rows: int,
        flush_interval: float = 0.05,
        write_timeout: float = 10.0,
        **tuning: Any,
    ) -> WriteBehind:
        """A write-behind sink over this store's pool; ``await start()`` it before use."""
        return WriteBehind(
            self._pool,
            max_pending_rows=max_pending_rows,
            flush_interval=flush_interval,
            write_timeout=write_timeout,
            **tuning,
        )

    async def close(self) -> None:
        await self._pool.close(timeout=self._timeout)

    def get_stats(self) -> dict[str, int]:
        """The pool's counters (psycopg_pool ``get_stats``)."""
        return self._pool.get_stats()


def _reniced(nice: int, idle: bool) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def configure(conn: AsyncConnection) -> None:
        await _write.prepare(conn)
        async with conn.transaction():
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        if row:
            renice_backend(int(row[0]), nice, idle)

    return configure


def renice_backend(pid: int, nice: int, idle: bool = False) -> bool:
    """Lower the CPU priority of PostgreSQL backend ``pid`` to ``nice`` (and SCHED_IDLE with
    ``idle``) if it is a postgres process of this user on this machine, or any local postgres
    process when riskd runs as root (the embedded
    cluster then runs as its own system user); a remote server's pid names some unrelated local
    process: left alone. False when it was not or could not be reniced (EPERM, gone)."""
    try:
        proc = psutil.Process(pid)
        mine = proc.uids().real == os.getuid() or os.geteuid() == 0
        if not mine or not proc.name().startswith("postgres"):
            return False
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
    except (psutil.Error, OSError):
        return False
    return not idle or set_idle(pid)


def set_idle(pid: int) -> bool:
    """SCHED_IDLE for ``pid`` (0: this thread): it runs only when a core has nothing else to run,
    and a woken normal task takes the core from it at once. False where the platform has no
    SCHED_IDLE or refuses."""
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None:
        return False
    try:
        os.sched_setscheduler(pid, policy, os.sched_param(0))
    except OSError:
        return False
    return True


async def _require_utf8(conn: AsyncConnection) -> None:
    """Refuse a database that cannot store every name byte for byte (riskd_server.names): in
    SQL_ASCII or a single-byte encoding a non-ASCII id would be refused or come back altered."""
    row = await (await conn.execute("SHOW server_encoding")).fetchone()
    encoding = row[0] if row else "?"
    if encoding.upper() not in ("UTF8", "UTF-8"):
        raise psycopg.NotSupportedError(
            f"database encoding is {encoding}; riskd needs UTF8 so names round-trip byte for byte "
            "(CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"
        )
