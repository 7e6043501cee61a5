"""The PostgreSQL store against a real PostgreSQL: migrations, write-behind, recovery, failures."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import psutil
import psycopg
import pytest
from fix_pg import admin, embedded_dir, run
from hypothesis import given, settings
from psycopg import sql

from riskd_server import changes as ch
from riskd_server.engine import Backpressure, Engine, EngineConfig
from riskd_server.kernel import layout as L
from riskd_server.limits import DUPLICATE_ORDER_ID, Limit
from riskd_server.store import Store, WriteBehind
from riskd_server.store._migrations import apply_migrations, bundled_migrations

FILL, CANCELED = 1, 2
HALTED, REDUCING, ACTIVE = 3, 2, 1
NOW = 1_000.0


def objs(*values: str) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def accepted(ids: list[str], account: str = "A", symbol: str = "S", qty: float = 10.0) -> ch.OrdersAccepted:
    n = len(ids)
    return ch.OrdersAccepted(
        ts=time.time(),
        client_order_id=objs(*ids),
        account=objs(*[account] * n),
        symbol=objs(*[symbol] * n),
        side=np.ones(n, dtype=np.int8),
        quantity=np.full(n, qty),
        price=np.full(n, 100.0),
    )


def updated(ids: list[str], open_qty: list[float]) -> ch.OrdersUpdated:
    qty = np.asarray(open_qty, dtype=np.float64)
    status = np.where(qty > 0, ch.ORDER_OPEN, ch.ORDER_CLOSED).astype(np.int8)
    return ch.OrdersUpdated(ts=time.time(), client_order_id=objs(*ids), open_quantity=qty, status=status)


def executions(ids: list[str]) -> ch.ExecutionsReported:
    n = len(ids)
    return ch.ExecutionsReported(
        ts=time.time(),
        client_order_id=objs(*ids),
        exec_type=np.full(n, FILL, dtype=np.int8),
        quantity=np.ones(n),
        price=np.full(n, 100.0),
        applied=np.zeros(n, dtype=bool),
        error=objs(*["unknown"] * n),
    )


def query(dsn: str, statement: str, *params: object) -> list[tuple]:
    with admin(dsn) as conn:
        return conn.execute(statement, params or None).fetchall()  # type: ignore[arg-type]


async def open_store(dsn: str) -> Store:
    return await Store.open(dsn, min_size=1, max_size=2, timeout=5.0)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------- migrations


def test_migrations_apply_once_even_when_two_servers_race(fresh_dsn: str) -> None:
    async def main() -> None:
        stores = await asyncio.gather(open_store(fresh_dsn), open_store(fresh_dsn))
        for store in stores:
            await store.close()
        store = await open_store(fresh_dsn)  # a restart: nothing left to apply
        try:
            async with await psycopg.AsyncConnection.connect(fresh_dsn) as conn:
                assert await apply_migrations(conn) == []
        finally:
            await store.close()

    run(main())
    versions = [m.version for m in bundled_migrations()]
    assert versions and versions[0] == "001_init"
    assert [
        r[0] for r in query(fresh_dsn, "SELECT version FROM schema_migrations ORDER BY version")
    ] == versions
    tables = {r[0] for r in query(fresh_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {
        "limits",
        "trading_states",
        "marks",
        "positions",
        "orders",
        "executions",
        "check_events",
    } <= tables


# ---------------------------------------------------------------------- recovery round trip


async def build_state(eng: Engine, sync: Callable[[], Awaitable[None]]) -> list[str]:
    """Every kind of change, with ``sync()`` between steps; returns every client_order_id used."""
    eng.upsert_limits(
        [
            Limit(limit_id="qty", kind=1, threshold=1_000),
            Limit(limit_id="gone", kind=1, account="A9", threshold=1),
            # Warn on every order so the probe below sees exact positions and exposures.
            Limit(limit_id="w-pos", kind=3, threshold=1e12, warn_fraction=1e-12),
            Limit(limit_id="w-gross", kind=4, threshold=1e12, warn_fraction=1e-12),
            Limit(limit_id="w-net", kind=5, threshold=1e12, warn_fraction=1e-12),
            Limit(limit_id="w-open", kind=8, threshold=1e6, warn_fraction=1e-6, description="open orders"),
        ]
    )
    eng.set_trading_state("AH", HALTED, "ops")
    eng.set_trading_state("AR", REDUCING, "risk")
    eng.set_trading_state("AX", HALTED, "mistake")
    await sync()
    eng.set_trading_state("AX", ACTIVE, "fixed")
    eng.update_prices(["S1", "S2"], [100.0, 50.0])
    eng.load_positions(["A1", "A2", "AR"], ["S1", "S2", "S1"], [10.0, -5.0, 3.0])
    await sync()
    ids = [f"o{i}" for i in range(12)]
    accounts = ["A1", "A1", "A2", "A2", "A1", "A2", "A1", "A2", "A1", "A2", "AH", "A1"]
    symbols = ["S1", "S2", "S1", "S3", "S3", "S2", "S1", "S1", "S2", "S2", "S1", "S1"]
    sides = [1, 2, 1, 2, 1, 1, 2, 2, 1, 2, 1, 1]
    qty = [5, 7, 3, 4, 2, 6, 1, 8, 9, 2, 1, 5_000]  # o11 breaks "qty"; o10 is halted
    price = [101, 0, 99, 30, 31, 0, 100, 102, 49, 51, 100, 100]
    out = eng.check_orders(ids, accounts, symbols, sides, qty, price, now=NOW)
    assert out.accepted.tolist() == [True] * 10 + [False, False]
    await sync()
    eng.delete_limits(["gone"])
    # Partial fill, full fills, cancels; S3 gets a mark only from its fill; one unknown id.
    eng.report_executions(
        ["o0", "o1", "o2", "o3", "nope"],
        [FILL, FILL, CANCELED, FILL, FILL],
        [2, 7, 0, 4, 1],
        [100.5, 50, 0, 30, 1],
    )
    await sync()
    eng.report_executions(
        ["o4", "o5", "o6", "o7", "o0"],
        [CANCELED, FILL, FILL, CANCELED, FILL],
        [0, 6, 1, 0, 1],
        [0, 51, 99, 0, 101],
    )
    eng.update_prices(["S2"], [52.0])
    return ids


def nan_safe(values: np.ndarray) -> list[float | None]:
    """NaN compares unequal to itself; None does not."""
    return [None if np.isnan(x) else x for x in values.tolist()]


def probe(eng: Engine, ids: list[str]) -> tuple:
    """A batch whose outcome depends on every piece of recovered state; the engine is changed by it."""
    eng.sink = None
    batch = [*ids, "fresh1", "fresh2"]
    n = len(batch)
    accounts = ["A1", "A2", "AR", "AH", "AX", "A9"] * (n // 6 + 1)
    symbols = ["S1", "S2", "S3"] * (n // 3 + 1)
    out = eng.check_orders(
        batch, accounts[:n], symbols[:n], [1, 2] * (n // 2) + [1] * (n % 2), [1.0] * n, [0.0] * n, now=NOW + 1
    )
    v = out.violations
    return (
        out.accepted.tolist(),
        out.reject_mask.tolist(),
        v.order_index.tolist(),
        v.check.tolist(),
        v.limit_id.tolist(),
        nan_safe(v.observed),
        nan_safe(v.threshold),
        v.warning.tolist(),
    )


def observable(eng: Engine, ids: list[str]) -> dict:
    stats = eng.stats()
    marks = {}
    for sym in ("S1", "S2", "S3"):  # marks have no public getter: read the symbol table
        sid = eng.symbols.get(sym)
        marks[sym] = nan_safe(eng._s.sym[sid, [L.S_PRICE, L.S_FILL]]) if sid >= 0 else None
    return {
        "positions": {(a, s): eng.position(a, s) for a in ("A1", "A2", "AR") for s in ("S1", "S2", "S3")},
        "open": {oid: eng.open_quantity(oid) for oid in ids},
        "limits": eng.list_limits(),
        "states": {a: eng.trading_state(a) for a in ("", "AH", "AR", "AX", "A1")},
        "counts": (stats["open_orders"], stats["retained_closed_orders"], stats["limits"]),
        "marks": marks,
    }


@pytest.mark.parametrize("flush_between_steps", [True, False], ids=["many-flushes", "one-flush"])
def test_restore_from_write_behind_rebuilds_the_same_engine(
    fresh_dsn: str, flush_between_steps: bool
) -> None:
    retention = 4  # fewer than the 7 orders that close: recovery must keep the newest 4

    async def main() -> tuple[dict, tuple, dict, tuple, ch.Snapshot]:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(
                max_pending_rows=10_000, flush_interval=60.0 if not flush_between_steps else 0.01
            )
            await writer.start()
            eng = Engine(EngineConfig(closed_order_retention=retention), sink=writer)

            async def sync() -> None:
                if flush_between_steps:
                    await writer.barrier(5.0)

            ids = await build_state(eng, sync)
            flushes_before_stop = writer.stats().flushes
            await writer.stop(timeout=10.0)
            stats = writer.stats()
            assert stats.pending_rows == 0 and stats.failures == 0
            if not flush_between_steps:
                assert flushes_before_stop == 0 and stats.flushes == 1  # all of it coalesced in stop()
            snap = await store.load_snapshot(retention)
        finally:
            await store.close()
        restored = Engine(EngineConfig(closed_order_retention=retention))
        restored.restore(snap)
        before, after = observable(eng, ids), observable(restored, ids)
        return before, probe(eng, ids), after, probe(restored, ids), snap

    before, probe_before, after, probe_after, snap = run(main())
    assert after == before
    assert probe_after == probe_before
    # The probe really exercised duplicate detection: the open ids and the 4 newest closed ones
    # (o1, o2, o3 closed earlier and were forgotten; o10, o11 were rejected, never remembered).
    _, _, order_index, checks, *_ = probe_before
    assert {order_index[i] for i, c in enumerate(checks) if c == DUPLICATE_ORDER_ID} == {0, 4, 5, 6, 7, 8, 9}
    assert [r.client_order_id for r in snap.recent_closed] == ["o4", "o5", "o6", "o7"]
    assert {r.client_order_id: r.open_quantity for r in snap.open_orders} == {"o0": 2.0, "o8": 9.0, "o9": 2.0}
    assert dict(snap.trading_states) == {"AH": HALTED, "AR": REDUCING, "AX": ACTIVE}
    assert {lim.limit_id for lim in snap.limits} == {"qty", "w-pos", "w-gross", "w-net", "w-open"}
    marks = {sym: (px, fill) for sym, px, fill in snap.marks}
    assert marks["S2"][0] == 52.0 and marks["S3"][1] == 30.0 and np.isnan(marks["S3"][0])


# ---------------------------------------------------------------------- coalescing and ordering


def test_one_flush_applies_changes_in_order_and_keeps_close_order(fresh_dsn: str) -> None:
    async def main() -> tuple[ch.Snapshot, ch.Snapshot, ch.Snapshot, WriteBehind]:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=60.0)
            # Queued before start: the first flush sees all of it at once.
            writer.put(accepted(["a", "b", "c", "d"]))
            writer.put(updated(["c", "a", "b"], [0.0, 0.0, 4.0]))  # c closes before a; b partly filled
            writer.put(updated(["d"], [0.0]))
            await writer.start()
            await writer.barrier(5.0)
            assert writer.stats().flushes == 1
            two = await store.load_snapshot(2)
            # Second flush: b (accepted in an earlier flush) closes; "a" is accepted again after it
            # left retention, and then updated again, all in one flush.
            writer.put(updated(["b"], [0.0]))
            writer.put(accepted(["a"], qty=3.0))
            writer.put(updated(["a"], [1.0]))
            await writer.barrier(5.0)
            later = await store.load_snapshot(10)
            none = await store.load_snapshot(0)
            await writer.stop(5.0)
            return two, later, none, writer
        finally:
            await store.close()

    two, later, none, writer = run(main())
    assert [r.client_order_id for r in two.recent_closed] == ["a", "d"]  # c, a, d closed in that order
    assert [(r.client_order_id, r.open_quantity) for r in two.open_orders] == [("b", 4.0)]
    assert [r.client_order_id for r in later.recent_closed] == ["c", "d", "b"]
    assert [(r.client_order_id, r.open_quantity) for r in later.open_orders] == [("a", 1.0)]
    assert none.recent_closed == ()
    rows = query(fresh_dsn, "SELECT client_order_id, status, open_quantity, quantity FROM orders ORDER BY 1")
    assert rows == [("a", 1, 1.0, 3.0), ("b", 2, 0.0, 10.0), ("c", 2, 0.0, 10.0), ("d", 2, 0.0, 10.0)]
    assert writer.stats().flushed_rows == 4 + 3 + 1 + 1 + 1 + 1


# ---------------------------------------------------------------------- the backlog bound


def test_full_backlog_refuses_new_work_until_it_drains(fresh_dsn: str) -> None:
    async def main() -> None:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=4, flush_interval=60.0)
            eng = Engine(sink=writer)
            eng.update_prices(["S1", "S2", "S3"], [1.0, 2.0, 3.0])  # 3 rows queued, nothing flushing
            assert writer.has_room() and writer.has_room(1) and not writer.has_room(2)
            with pytest.raises(Backpressure):
                eng.update_prices(["S4", "S5"], [4.0, 5.0])
            assert eng.symbols.get("S4") < 0  # refused before any state changed
            assert writer.stats().pending_rows == 3
            await writer.start()
            await writer.barrier(5.0)
            assert writer.has_room(4) and writer.stats().pending_rows == 0
            eng.update_prices(["S4", "S5"], [4.0, 5.0])
            await writer.stop(5.0)
        finally:
            await store.close()

    run(main())
    assert query(fresh_dsn, "SELECT symbol, price FROM marks ORDER BY 1") == [
        ("S1", 1.0),
        ("S2", 2.0),
        ("S3", 3.0),
        ("S4", 4.0),
        ("S5", 5.0),
    ]


def test_put_past_the_bound_is_kept_not_dropped(fresh_dsn: str) -> None:
    async def main() -> None:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=2, flush_interval=60.0)
            writer.put(executions(["x1", "x2", "x3"]))  # has_room was not asked: accepted anyway
            assert not writer.has_room() and writer.stats().pending_rows == 3
            await writer.start()
            await writer.stop(5.0)
        finally:
            await store.close()

    run(main())
    assert query(fresh_dsn, "SELECT count(*) FROM executions") == [(3,)]


# ---------------------------------------------------------------------- failures


def _set_connections(dsn: str, allowed: bool) -> None:
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with admin(dsn, dbname="postgres") as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(str(name)), sql.Literal(allowed)
            )
        )
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (str(name),)
            )


def test_database_outage_keeps_every_change_and_recovers(fresh_dsn: str) -> None:
    async def main() -> tuple[set[str], WriteBehind]:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(
                max_pending_rows=1_000, flush_interval=0.01, write_timeout=0.3, fail_max=2, reset_timeout=0.3
            )
            await writer.start()
            writer.put(executions(["before"]))
            await writer.barrier(5.0)
            await asyncio.to_thread(_set_connections, fresh_dsn, False)
            seen: set[str] = set()
            for i in range(20):
                writer.put(executions([f"during{i}"]))
                writer.put(accepted([f"o{i}"]))
                seen.add(writer.stats().breaker_state)
                await asyncio.sleep(0.05)
            await wait_for(lambda: writer.stats().breaker_state == "open" or "open" in seen)
            with pytest.raises(TimeoutError):
                await writer.barrier(0.2)
            assert writer.stats().pending_rows == 40 and writer.stats().failures >= 2
            await asyncio.to_thread(_set_connections, fresh_dsn, True)
            await writer.barrier(30.0)  # the pool reconnects with its own backoff
            assert writer.stats().pending_rows == 0 and writer.stats().breaker_state == "closed"
            await writer.stop(5.0)
            return seen, writer
        finally:
            await store.close()

    _seen, writer = run(main())
    assert writer.stats().consecutive_failures == 0
    assert query(fresh_dsn, "SELECT count(*) FROM executions") == [(21,)]
    assert query(fresh_dsn, "SELECT count(*) FROM orders WHERE status = 1") == [(20,)]


def test_slow_database_times_out_then_writes_once(fresh_dsn: str) -> None:
    async def main(lock: psycopg.Connection) -> WriteBehind:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01, write_timeout=0.2)
            await writer.start()
            lock.execute("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")  # held until rollback
            writer.put(executions(["e1", "e2"]))
            with pytest.raises(TimeoutError):
                await writer.barrier(1.0)  # the write blocks on the lock and times out, repeatedly
            assert writer.stats().failures >= 1 and writer.stats().pending_rows == 2
            assert "Timeout" in writer.stats().last_error
            lock.rollback()
            await writer.barrier(10.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    with psycopg.connect(fresh_dsn) as lock:  # not autocommit: the LOCK stays in its transaction
        run(main(lock))
    assert query(fresh_dsn, "SELECT client_order_id FROM executions ORDER BY id") == [("e1",), ("e2",)]


def test_stop_gives_up_after_its_timeout_when_the_database_is_gone(fresh_dsn: str) -> None:
    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01, write_timeout=0.2)
            await writer.start()
            await asyncio.to_thread(_set_connections, fresh_dsn, False)
            writer.put(executions(["lost"]))
            started = time.monotonic()
            await writer.stop(0.5)
            assert time.monotonic() - started < 3.0
            return writer
        finally:
            await store.close()
            await asyncio.to_thread(_set_connections, fresh_dsn, True)

    writer = run(main())
    assert writer.stats().pending_rows == 1  # reported, not silently forgotten


# ---------------------------------------------------------------------- barrier and audit rows


def test_barrier_returns_once_committed_without_waiting_for_the_interval(fresh_dsn: str) -> None:
    async def main() -> None:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=60.0)
            await writer.start()
            await asyncio.sleep(0.05)  # let the task do its first (empty) flush and start waiting
            await writer.barrier(0.01)  # nothing pending: immediate
            eng = Engine(sink=writer)
            eng.set_trading_state("", HALTED, "close of day")
            assert query(fresh_dsn, "SELECT count(*) FROM trading_states") == [(0,)]
            started = time.monotonic()
            await writer.barrier(5.0)
            assert time.monotonic() - started < 2.0
            assert query(fresh_dsn, "SELECT account, state, reason FROM trading_states") == [
                ("", HALTED, "close of day")
            ]
            await writer.stop(5.0)
        finally:
            await store.close()

    run(main())


def test_flush_writes_audit_rows(fresh_dsn: str) -> None:
    async def main() -> None:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01)
            await writer.start()
            eng = Engine(sink=writer)
            eng.upsert_limits([Limit(limit_id="max-qty", kind=1, threshold=10, warn_fraction=0.5)])
            eng.update_prices(["S"], [100.0])
            out = eng.check_orders(
                ["ok", "warn", "big"], ["A"] * 3, ["S"] * 3, [1, 1, 1], [1, 6, 11], [0, 0, 0]
            )
            assert out.accepted.tolist() == [True, True, False]
            eng.report_executions(
                ["ok", "ghost", "bad\x00id"], [FILL, FILL, FILL], [1, 1, 1], [100, 100, 100]
            )
            await writer.barrier(5.0)
            await writer.stop(5.0)
        finally:
            await store.close()

    run(main())
    events = query(
        fresh_dsn,
        "SELECT client_order_id, account, symbol, check_kind, limit_id, observed, threshold, warning"
        " FROM check_events ORDER BY id",
    )
    assert events == [
        ("warn", "A", "S", 1, "max-qty", 6.0, 10.0, True),
        ("big", "A", "S", 1, "max-qty", 11.0, 10.0, False),
    ]
    execs = query(
        fresh_dsn, "SELECT client_order_id, exec_type, applied, error <> '' FROM executions ORDER BY id"
    )
    assert execs == [
        ("ok", FILL, True, False),
        ("ghost", FILL, False, True),
        ("bad\ufffdid", FILL, False, True),
    ]
    assert query(fresh_dsn, "SELECT quantity FROM positions") == [(1.0,)]


# ---------------------------------------------------------------------- embedded PostgreSQL


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    folder = embedded_dir("riskd-pg-restart-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_embedded_cluster_restarts_after_kill_9_leftovers(pg_dir: Path) -> None:
    from riskd_server.embedded_pg import start_embedded

    tmp_path = pg_dir
    pg = start_embedded(tmp_path)
    with admin(pg.dsn) as conn:
        conn.execute("CREATE TABLE kept (x int)")
    pg.stop()
    pgdata = tmp_path / "pg"
    assert not (pgdata / "postmaster.pid").exists()
    # What a kill -9 leaves: the dead process in the handle list, and a postmaster.pid whose pid
    # now belongs to another (live) process.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    (pgdata / ".handle_pids.json").write_text(json.dumps([int(dead.stdout)]))
    (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n0\n5432\n{pgdata}\n\n0 0\nready\n")
    pg = start_embedded(tmp_path)
    try:
        with admin(pg.dsn) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    finally:
        pg.stop()
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE


# ---------------------------------------------------------------------- columnar coalescing


def _reference_orders(changes: list) -> tuple[dict, dict, list[str]]:
    """The per-row dict semantics the columnar coalescing must reproduce."""
    orders: dict[str, list] = {}
    updates: dict[str, tuple] = {}
    closes: dict[str, None] = {}
    for c in changes:
        for i, oid in enumerate(c.client_order_id.tolist()):
            if isinstance(c, ch.OrdersAccepted):
                q = float(c.quantity[i])
                orders[oid] = [c.account[i], float(c.price[i]), q, q, ch.ORDER_OPEN, c.ts, c.ts]
                updates.pop(oid, None)
            else:
                q, st = float(c.open_quantity[i]), int(c.status[i])
                if oid in orders:
                    orders[oid][3:5], orders[oid][6] = [q, st], c.ts
                else:
                    updates[oid] = (q, st, c.ts)
            closes.pop(oid, None)
            if isinstance(c, ch.OrdersUpdated) and c.status[i] == ch.ORDER_CLOSED:
                closes[oid] = None
    return orders, updates, list(closes)


def test_columnar_coalescing_is_last_wins_in_change_order() -> None:
    from riskd_server.store import _coalesce

    rng = np.random.default_rng(5)
    changes: list = []
    for step in range(300):
        ids = [f"id{i}" for i in rng.integers(0, 80, rng.integers(1, 8))]
        if rng.random() < 0.4:  # ids 60..79 are never accepted here: updates of earlier flushes
            ids = [i for i in ids if int(i[2:]) < 60] or ["id0"]
            c = accepted(ids, account=f"A{step}", qty=float(step + 1))
            changes.append(
                ch.OrdersAccepted(**{**{f: getattr(c, f) for f in c.__slots__}, "ts": float(step)})
            )
        else:
            qty = rng.choice([0.0, 1.0, 2.0], len(ids)).tolist()
            c = updated(ids, qty)
            changes.append(ch.OrdersUpdated(**{**{f: getattr(c, f) for f in c.__slots__}, "ts": float(step)}))
    orders, updates, closes = _reference_orders(changes)
    out = _coalesce.coalesce(changes)
    assert out.orders is not None and out.order_updates is not None
    got_orders = {
        oid: [acct, price, qty, open_q, status, acc_at, upd_at]
        for oid, acct, price, qty, open_q, status, acc_at, upd_at in zip(
            *(out.orders[k].tolist() for k in _coalesce.ORDER_COLUMNS[:1]),
            out.orders["account"].tolist(),
            out.orders["price"].tolist(),
            out.orders["quantity"].tolist(),
            out.orders["open_quantity"].tolist(),
            out.orders["status"].tolist(),
            out.orders["accepted_at"].tolist(),
            out.orders["updated_at"].tolist(),
            strict=True,
        )
    }
    assert got_orders == orders
    u = out.order_updates
    got_updates = dict(
        zip(
            u["client_order_id"].tolist(),
            zip(u["open_quantity"].tolist(), u["status"].tolist(), u["updated_at"].tolist(), strict=True),
            strict=True,
        )
    )
    assert got_updates == updates
    ranks = {
        oid: r
        for cols in (out.orders, u)
        for oid, r in zip(cols["client_order_id"].tolist(), cols["close_rank"].tolist(), strict=True)
        if r >= 0
    }
    assert out.closes == len(closes) and sorted(ranks, key=ranks.__getitem__) == closes


def test_binary_copy_keeps_odd_text_and_many_flushes_keep_order(fresh_dsn: str) -> None:
    """Chunked text encoding (non-ASCII, NUL, empty) and a backlog split over many small flushes."""
    n = 40_000  # more than one encoding chunk
    ids = [f"ö{i}" if i % 7 else f"n\x00{i}" for i in range(n)]

    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=10 * n, flush_interval=0.01, max_flush_rows=15_000)
            writer.put(accepted(ids[: n // 2], account="Ä"))
            writer.put(updated(ids[: n // 4], [0.0] * (n // 4)))  # closes, in id order
            writer.put(accepted(ids[n // 2 :], account=""))
            writer.put(executions(ids[:10]))
            writer.put(updated(ids[n // 2 : n // 2 + 3][::-1], [0.0, 0.0, 5.0]))  # later closes, reversed
            await writer.start()
            await writer.barrier(60.0)
            assert writer.stats().flushes >= 4
            await writer.stop(10.0)
            return writer
        finally:
            await store.close()

    run(main())
    clean = [i.replace("\x00", "\ufffd") for i in ids]
    assert query(fresh_dsn, "SELECT count(*), count(DISTINCT account) FROM orders") == [(n, 2)]
    closed = [
        r[0]
        for r in query(fresh_dsn, "SELECT client_order_id FROM orders WHERE status = 2 ORDER BY closed_seq")
    ]
    assert closed == [*clean[: n // 4], clean[n // 2 + 2], clean[n // 2 + 1]]
    assert query(fresh_dsn, "SELECT open_quantity FROM orders WHERE client_order_id = %s", clean[n // 2]) == [
        (5.0,)
    ]
    assert [r[0] for r in query(fresh_dsn, "SELECT client_order_id FROM executions ORDER BY id")] == clean[
        :10
    ]


def _pipelined_backlog(writer: WriteBehind, ids: list[str]) -> None:
    """Flushes of 3,000, 3,000 and 1,000 rows (max_flush_rows 3,000); the second is prepared while
    the first writes. The first writes executions, the second closes 0..1999 in order, the third
    closes 2000..2999 in reverse."""
    writer.put(accepted(ids[:2000]))
    writer.put(executions(ids[:1000]))
    writer.put(updated(ids[:1000], [0.0] * 1000))
    writer.put(updated(ids[1000:2000], [0.0] * 1000))
    writer.put(accepted(ids[2000:3000]))
    writer.put(updated(ids[2000:3000][::-1], [0.0] * 1000))


def _closed_in_order(dsn: str) -> list[str]:
    rows = query(dsn, "SELECT client_order_id FROM orders WHERE status = 2 ORDER BY closed_seq")
    return [r[0] for r in rows]


def test_a_flush_failing_while_the_next_is_prepared_loses_repeats_and_reorders_nothing(
    fresh_dsn: str,
) -> None:
    """The next flush is coalesced, numbered and encoded while one writes; when that one fails
    (here: it waits on a locked table until its timeout), the prepared batch goes back behind it
    and both are written once, in order, when the table is free."""
    ids = [f"p{i}" for i in range(3000)]

    async def main(lock: psycopg.Connection) -> WriteBehind:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(
                max_pending_rows=100_000,
                flush_interval=0.01,
                write_timeout=0.2,
                max_flush_rows=3000,
                fail_max=1000,
            )
            lock.execute("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")  # held until rollback
            _pipelined_backlog(writer, ids)
            await writer.start()
            await wait_for(lambda: writer.stats().failures >= 2)
            assert writer.stats().pending_rows == 7000
            lock.rollback()
            await writer.barrier(30.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    with psycopg.connect(fresh_dsn) as lock:
        writer = run(main(lock))
    assert writer.stats().flushes == 3 and writer.stats().pending_rows == 0
    assert query(fresh_dsn, "SELECT count(*), count(DISTINCT client_order_id) FROM orders") == [(3000, 3000)]
    assert [r[0] for r in query(fresh_dsn, "SELECT client_order_id FROM executions ORDER BY id")] == ids[
        :1000
    ]
    assert _closed_in_order(fresh_dsn) == ids[:2000] + ids[2000:][::-1]
    # The dropped preparations took closed_seq values of their own (gaps), proving they ran.
    assert query(fresh_dsn, "SELECT max(closed_seq) > 3000 FROM orders") == [(True,)]


def test_a_refused_flush_is_resolved_before_the_prepared_next_one(fresh_dsn: str) -> None:
    ids = [f"r{i}" for i in range(3000)]
    ids[5] = "BAD"

    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        refuse(fresh_dsn, "ALTER TABLE orders ADD CONSTRAINT no_bad_id CHECK (client_order_id <> 'BAD')")
        try:
            writer = store.write_behind(max_pending_rows=100_000, flush_interval=0.01, max_flush_rows=3000)
            _pipelined_backlog(writer, ids)
            await writer.start()
            await writer.barrier(60.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    writer = run(main())
    stats = writer.stats()
    assert stats.pending_rows == 0 and not stats.resolving and stats.dead_letter_rows == 2  # insert, close
    assert query(fresh_dsn, "SELECT count(*) FROM orders") == [(2999,)]
    assert query(fresh_dsn, "SELECT count(*) FROM executions") == [(1000,)]
    good = [i for i in ids if i != "BAD"]
    assert _closed_in_order(fresh_dsn) == good[:1999] + ids[2000:][::-1]


# ---------------------------------------------------------------------- refused rows: the dead letter


def refuse(dsn: str, *statements: str) -> None:
    """Make PostgreSQL itself refuse some rows (constraints; nothing is mocked)."""
    with admin(dsn) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def test_data_errors_are_told_from_transient_ones() -> None:
    from psycopg import errors
    from psycopg_pool import PoolTimeout

    from riskd_server.store._errors import is_data_error, needs_operator

    data = ["22003", "22008", "22021", "22P02", "23502", "23505", "23514", "23503", "54000"]
    transient = [
        "08006",
        "08001",
        "40001",
        "40P01",
        "53100",
        "53200",
        "53300",
        "55P03",
        "57014",
        "57P01",
        "58030",
    ]
    operator = ["42P01", "42703", "42501", "0A000", "XX001"]
    for state in data:
        assert is_data_error(errors.lookup(state)("refused")), state
    for state in transient + operator:
        assert not is_data_error(errors.lookup(state)("retry")), state
    assert all(needs_operator(errors.lookup(s)("x")) for s in operator)
    assert not any(needs_operator(errors.lookup(s)("x")) for s in transient + data)
    # Without a SQLSTATE: psycopg's own DataError (raised before sending) and a string UTF-8
    # cannot hold are the data's fault; a lost connection, a timeout or a pool timeout are not.
    assert is_data_error(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    assert is_data_error(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    for exc in (
        psycopg.OperationalError("server closed the connection"),
        TimeoutError(),
        PoolTimeout("x"),
        OSError(),
    ):
        assert not is_data_error(exc)


def _coalesced_from(sizes: list[int]) -> tuple[object, list[tuple[str, str, object]]]:
    """A flush with ``sizes[k]`` rows in segment k, and its rows in write order (plain Python)."""
    from riskd_server.limits import Limit
    from riskd_server.store._coalesce import Coalesced

    b = Coalesced(seqs=np.arange(100, 200, dtype=np.int64))
    expected: list[tuple[str, str, object]] = []

    def cols(names: tuple[str, ...], n: int, prefix: str, ranks: list[int]) -> dict[str, np.ndarray]:
        out = {name: np.full(n, 1.0) for name in names}
        out["client_order_id"] = objs(*[f"{prefix}{i}" for i in range(n)])
        if "close_rank" in out:
            out["close_rank"] = np.asarray(ranks, dtype=np.int64)
        for name in ("account", "symbol", "limit_id", "error"):
            if name in out:
                out[name] = objs(*["x"] * n)
        return out

    from riskd_server.store import _coalesce as c

    ranks = iter(range(100))
    n = sizes[0]
    if n:
        r = [next(ranks) if i % 2 else -1 for i in range(n)]
        b.orders = cols(c.ORDER_COLUMNS, n, "o", r)
        expected += [("orders", "insert", (f"o{i}", 100 + r[i] if r[i] >= 0 else None)) for i in range(n)]
    n = sizes[1]
    if n:
        r = [next(ranks) if i % 3 == 0 else -1 for i in range(n)]
        b.order_updates = cols(c.UPDATE_COLUMNS, n, "u", r)
        expected += [("orders", "update", (f"u{i}", 100 + r[i] if r[i] >= 0 else None)) for i in range(n)]
    b.positions = {(f"a{i}", "s"): float(i) for i in range(sizes[2])}
    expected += [("positions", "upsert", f"a{i}") for i in range(sizes[2])]
    b.marks = {f"m{i}": (1.0, None) for i in range(sizes[3])}
    expected += [("marks", "upsert", f"m{i}") for i in range(sizes[3])]
    b.limits = {
        f"l{i}": (None if i % 2 else Limit(limit_id=f"l{i}", kind=1, threshold=1.0)) for i in range(sizes[4])
    }
    expected += [("limits", "delete" if i % 2 else "upsert", f"l{i}") for i in range(sizes[4])]
    b.trading_states = {f"t{i}": (1, "", datetime.now(UTC)) for i in range(sizes[5])}
    expected += [("trading_states", "upsert", f"t{i}") for i in range(sizes[5])]
    if sizes[6]:
        b.executions = cols(c.EXECUTION_COLUMNS, sizes[6], "e", [])
        expected += [("executions", "insert", f"e{i}") for i in range(sizes[6])]
    if sizes[7]:
        b.check_events = cols(c.CHECK_EVENT_COLUMNS, sizes[7], "c", [])
        expected += [("check_events", "insert", f"c{i}") for i in range(sizes[7])]
    b.closes = sum(1 for t in expected if t[0] == "orders" and t[2][1] is not None)  # type: ignore[index]
    return b, expected


def _key(table: str, action: str, row: dict) -> tuple[str, str, object]:
    if table == "orders":
        return table, action, (row["client_order_id"], row["closed_seq"])
    field = {"positions": "account", "marks": "symbol", "limits": "limit_id", "trading_states": "account"}
    return table, action, row[field.get(table, "client_order_id")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=8, max_size=8), st.data())
def test_cutting_a_flush_keeps_every_row_once_in_write_order(sizes: list[int], data: st.DataObject) -> None:
    from riskd_server.store import _split

    b, expected = _coalesced_from(sizes)
    n = _split.size(b)  # type: ignore[arg-type]
    assert n == len(expected)
    if n == 0:
        return
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    part = _split.take(b, start, stop)  # type: ignore[arg-type]
    assert _split.size(part) == stop - start and part.seqs is b.seqs  # type: ignore[attr-defined]
    # Cut down to single rows, first half first, as the write-behind does: every row once, in order,
    # each close still naming the closed_seq its rank had in the whole flush.
    singles, stack = [], [part]
    while stack:
        p = stack.pop()
        if _split.size(p) == 1:
            singles.append(_key(*_split.only_row(p)))
        else:
            left, right = _split.halves(p)
            assert _split.size(left) >= 1 and _split.size(right) >= 1
            assert _split.size(left) + _split.size(right) == _split.size(p)
            assert left.closes + right.closes == p.closes
            stack += [right, left]
    assert singles == expected[start:stop]


def test_dead_letter_file_rotates_and_keeps_its_bound(tmp_path: Path) -> None:
    from riskd_server.store._deadletter import DeadLetterFile, DeadRow

    path = tmp_path / "dl" / "dead.jsonl"
    sink = DeadLetterFile(path, max_bytes=600, backups=2)
    for i in range(40):
        sink.append(
            [
                DeadRow(
                    "orders", "insert", {"client_order_id": f"id{i}\x00", "q": float("inf")}, "23514", "no"
                )
            ],
            "down",
        )
    files = sorted(tmp_path.joinpath("dl").iterdir())
    assert [f.name for f in files] == ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2"]
    assert all(f.stat().st_size <= 600 for f in files)
    newest = [json.loads(line) for line in path.read_text().splitlines()]
    assert newest[-1]["row"] == {"client_order_id": "id39\x00", "q": "Infinity"}
    assert newest[-1]["sqlstate"] == "23514" and newest[-1]["dead_letter_error"] == "down"
    kept = [
        json.loads(line)["row"]["client_order_id"]
        for f in reversed(files)
        for line in f.read_text().splitlines()
    ]
    assert kept == [f"id{i}\x00" for i in range(40 - len(kept), 40)]  # the newest, in order, oldest dropped


def test_a_refused_row_is_dead_lettered_and_the_rest_is_written(fresh_dsn: str) -> None:
    """One order PostgreSQL refuses (a CHECK constraint) no longer blocks every write."""
    bound = 40 * 14 + 10  # the engine asks room for 14 rows an order checked

    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        refuse(fresh_dsn, "ALTER TABLE orders ADD CONSTRAINT no_bad_account CHECK (account <> 'BAD')")
        try:
            writer = store.write_behind(max_pending_rows=bound, flush_interval=60.0)  # no flush until start
            eng = Engine(sink=writer)
            eng.update_prices(["S"], [100.0])
            ids = [f"o{i}" for i in range(40)]
            accounts = ["BAD" if i == 0 else "A" for i in range(40)]
            out = eng.check_orders(ids, accounts, ["S"] * 40, [1] * 40, [2.0] * 40, [0.0] * 40, now=NOW)
            assert out.accepted.all()
            # o12, o3, o15 close in that order; the refused o0 is partly filled. o0 comes first in the
            # flush: the first five writes (cut after seq allocation) are all refused and must not
            # open the breaker.
            eng.report_executions(["o12", "o3", "o0", "o15"], [FILL] * 4, [2, 2, 1, 2], [100.0] * 4)
            more = [f"X{i}" for i in range(bound - writer.stats().pending_rows + 1)]
            with pytest.raises(Backpressure):
                eng.update_prices(more, [1.0] * len(more))
            await writer.start()
            await writer.barrier(20.0)
            stats = writer.stats()
            assert (stats.pending_rows, stats.dead_letter_rows, stats.dead_letter_file_rows) == (0, 1, 0)
            assert not stats.resolving and stats.failures == 0 and stats.breaker_state == "closed"
            assert writer.has_room(bound)
            eng.update_prices(more, [1.0] * len(more))  # mutating work is accepted again
            # A later close of the refused order finds no row to update: dead-lettered too, not lost.
            eng.report_executions(["o0"], [FILL], [1], [100.0])
            await writer.barrier(10.0)
            assert writer.stats().dead_letter_rows == 2
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    run(main())
    orders = [r[0] for r in query(fresh_dsn, "SELECT client_order_id FROM orders ORDER BY 1")]
    assert orders == sorted(f"o{i}" for i in range(40) if i != 0)
    closed = query(fresh_dsn, "SELECT client_order_id FROM orders WHERE status = 2 ORDER BY closed_seq")
    assert [r[0] for r in closed] == ["o12", "o3", "o15"]  # the flush's close order, across its parts
    assert [r[0] for r in query(fresh_dsn, "SELECT client_order_id FROM executions ORDER BY id")] == [
        "o12", "o3", "o0", "o15", "o0"
    ]  # fmt: skip
    assert query(fresh_dsn, "SELECT account, quantity FROM positions ORDER BY 1") == [
        ("A", 6.0),
        ("BAD", 2.0),
    ]
    dead = query(
        fresh_dsn,
        "SELECT table_name, action, row_data->>'client_order_id', row_data->>'account',"
        " (row_data->>'open_quantity')::float8, sqlstate, error FROM dead_letter ORDER BY id",
    )
    assert [d[:6] for d in dead] == [
        ("orders", "insert", "o0", "BAD", 1.0, "23514"),
        ("orders", "update", "o0", None, 0.0, None),
    ]
    assert "no_bad_account" in dead[0][6] and "no such order" in dead[1][6]


def test_dead_letter_falls_back_to_a_file_when_its_table_refuses_too(fresh_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "state" / "dead.jsonl"

    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        refuse(
            fresh_dsn,
            "ALTER TABLE orders ADD CONSTRAINT no_bad_account CHECK (account <> 'BAD')",
            "ALTER TABLE dead_letter ADD CONSTRAINT refuse_all CHECK (false) NOT VALID",
        )
        try:
            writer = store.write_behind(max_pending_rows=100, flush_interval=60.0, dead_letter_path=path)
            writer.put(accepted(["g1", "g2"]))
            writer.put(accepted(["b1"], account="BAD", qty=3.0))
            writer.put(executions(["g1", "b1"]))
            await writer.start()
            await writer.barrier(20.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    writer = run(main())
    stats = writer.stats()
    assert (stats.pending_rows, stats.dead_letter_rows, stats.dead_letter_file_rows) == (0, 1, 1)
    assert query(fresh_dsn, "SELECT client_order_id FROM orders ORDER BY 1") == [("g1",), ("g2",)]
    assert query(fresh_dsn, "SELECT count(*) FROM executions") == [(2,)]
    assert query(fresh_dsn, "SELECT count(*) FROM dead_letter") == [(0,)]
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert (record["table"], record["action"], record["sqlstate"]) == ("orders", "insert", "23514")
    assert record["row"]["client_order_id"] == "b1" and record["row"]["quantity"] == 3.0
    assert "no_bad_account" in record["error"] and "refuse_all" in record["dead_letter_error"]


def test_an_outage_while_resolving_a_refused_flush_loses_and_repeats_nothing(fresh_dsn: str) -> None:
    async def main(lock: psycopg.Connection) -> WriteBehind:
        store = await open_store(fresh_dsn)
        refuse(fresh_dsn, "ALTER TABLE orders ADD CONSTRAINT no_bad_account CHECK (account <> 'BAD')")
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01, write_timeout=0.2)
            # The orders COPY is refused before the executions COPY waits for the lock; the parts
            # holding executions then time out (transient) until the lock goes.
            lock.execute("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
            writer.put(accepted([f"g{i}" for i in range(10)]))
            writer.put(accepted(["b1"], account="BAD"))
            writer.put(executions([f"e{i}" for i in range(10)]))
            await writer.start()
            await wait_for(lambda: writer.stats().failures >= 2)
            assert writer.stats().resolving and writer.stats().pending_rows == 21
            assert "Timeout" in writer.stats().last_error
            lock.rollback()
            await writer.barrier(20.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    with psycopg.connect(fresh_dsn) as lock:
        writer = run(main(lock))
    assert writer.stats().dead_letter_rows == 1 and writer.stats().consecutive_failures == 0
    assert query(fresh_dsn, "SELECT count(*), count(DISTINCT client_order_id) FROM orders") == [(10, 10)]
    assert [r[0] for r in query(fresh_dsn, "SELECT client_order_id FROM executions ORDER BY id")] == [
        f"e{i}" for i in range(10)
    ]
    assert query(fresh_dsn, "SELECT row_data->>'client_order_id', sqlstate FROM dead_letter") == [
        ("b1", "23514")
    ]
