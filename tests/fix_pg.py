"""pytest plugin: a real PostgreSQL for the tests.

``pg_server_dsn`` (session) is ``RISKD_TEST_DSN`` when set, otherwise an embedded cluster started
once per session; ``fresh_dsn`` (function) is a brand-new empty UTF8 database on it, dropped
afterwards.
``run(coro)`` runs a coroutine to completion for tests (no pytest-asyncio here).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

T = TypeVar("T")
RUN_TIMEOUT = 120.0


def run(coro: Coroutine[Any, Any, T], timeout: float = RUN_TIMEOUT) -> T:
    """asyncio.run with an overall timeout, so a hung test fails instead of hanging the suite."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def admin(dsn: str, **changes: Any) -> psycopg.Connection:
    """An autocommit connection for test set-up and assertions (use as a context manager)."""
    return psycopg.connect(make_conninfo(dsn, **changes), autocommit=True, connect_timeout=10)


def embedded_dir(prefix: str = "riskd-pg-") -> Path:
    """A private temp dir for an embedded cluster.

    Not under pytest's basetemp: every pytest run (ours or a colleague's, as the same user) resets
    /tmp/pytest-of-<user> to mode 0700, which locks the cluster's system user out of its own data
    directory mid-session (PANIC in the checkpointer).
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    dsn = os.environ.get("RISKD_TEST_DSN")
    if dsn:
        yield dsn
        return
    from riskd_server.embedded_pg import start_embedded

    folder = embedded_dir()
    pg = start_embedded(folder)
    try:
        yield pg.dsn
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_dsn(pg_server_dsn: str) -> Iterator[str]:
    name = f"riskd_t_{uuid.uuid4().hex}"
    with admin(pg_server_dsn, dbname="postgres") as conn:
        # UTF8 whatever the server's default (RISKD_TEST_DSN): names round-trip byte for byte.
        conn.execute(
            sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name))
        )
    try:
        yield make_conninfo(pg_server_dsn, dbname=name)
    finally:
        with admin(pg_server_dsn, dbname="postgres") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
