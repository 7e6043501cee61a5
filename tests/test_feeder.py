"""`riskd feeder` end to end: real processes, a real PostgreSQL, a journal written as the servicer
writes it.

Engine A plays the server: serialized requests handled as the servicer handles them
(parse_check_request + check_parsed + encode_response for checks, its engine calls for the rest,
stage/build/install for limits), each journaled with journal.records. The feeder process follows
that journal into PostgreSQL; then the database restored into a fresh engine must equal A's state,
and every audit row A emitted must be in PostgreSQL exactly once, also after kill -9 of the feeder
and while PostgreSQL refuses connections for a while.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pytest
from fix_pg import admin, run
from recording_sink import RecordingSink
from test_store import _set_connections

from riskd.v1 import risk_pb2 as pb
from riskd_server import changes as ch
from riskd_server.config import load_settings
from riskd_server.engine import Engine, EngineConfig
from riskd_server.journal import codec
from riskd_server.journal import records as rec
from riskd_server.journal.writer import Journal
from riskd_server.limits import MAX_ORDER_QUANTITY, MAX_POSITION, Limit
from riskd_server.store import Store
from riskd_server.store.feeder import LagClock
from riskd_server.store.feeder_process import FeederProcess
from riskd_server.wire.encode import encode_response
from riskd_server.wire.request import parse_check_request, parse_report_request

CONFIG = EngineConfig(max_batch=300, max_open_orders=5_000, closed_order_retention=2_000)
ACCOUNTS = ["ACC1", "ACC2", "ACC3", "accé"]
SYMBOLS = ["S1", "S2", "S3", "Søk"]
FLAGS = {
    "max_batch": "300",
    "max_open_orders": "5000",
    "closed_order_retention": "2000",
    "flush_interval_ms": "5",
    "max_pending_rows": "2000",  # small: backpressure is exercised
    "db_timeout": "2",
    "feeder_lag_interval": "0.3",
    "feeder_nice": "5",
}


class Server:
    """Engine A, handled and journaled as the servicer does."""

    def __init__(self, journal: Journal, seed: int) -> None:
        self.t = 100.0
        self.sink = RecordingSink()
        self.engine = Engine(CONFIG, sink=self.sink, clock=lambda: self.t, wall_clock=lambda: 1.7e9 + self.t)
        self.journal = journal
        self.rng = random.Random(seed)
        self.ids: list[str] = []
        self.next_id = 0

    def _journal(self, type_: int, body: bytes, reply: bytes | None = None) -> None:
        now, wall = self.t, 1.7e9 + self.t
        payload = (
            rec.check_payload(now, wall, body, reply)
            if reply is not None
            else rec.input_payload(now, wall, body)
        )
        self.journal.append([(type_, payload)])
        self.t += 0.001

    def limits(self, limits: list[Limit]) -> None:
        eng = self.engine
        version = eng.stage_upsert(limits)
        change = ch.LimitsChanged(tuple(limits), (), version, "test", "upsert", 1.7e9 + self.t)
        eng.install_limits(eng.build_limits(limits, (), version), change)
        self._journal(rec.LIMITS, codec.encode(change)[1])

    def check(self) -> None:
        r = self.rng
        n = r.choice([1, 1, 1, 5, 20, 60])
        ids = []
        for _ in range(n):
            if self.ids and r.random() < 0.05:
                ids.append(r.choice(self.ids))  # a duplicate
            else:
                self.next_id += 1
                ids.append(f"o{self.next_id}" if r.random() < 0.8 else f"ö{self.next_id}")
        self.ids.extend(ids)
        body = pb.CheckOrdersRequest(
            orders=pb.OrderBatch(
                client_order_id=ids,
                account=[r.choice(ACCOUNTS) for _ in ids],
                symbol=[r.choice(SYMBOLS) for _ in ids],
                side=[r.choice([1, 2]) for _ in ids],
                quantity=[r.choice([1.0, 5.0, 10.0, 40.0, 150.0]) for _ in ids],
                price=[r.choice([99.0, 100.0, 101.0]) for _ in ids],
            )
        ).SerializeToString()
        reply = encode_response(self.engine.check_parsed(parse_check_request(body)))
        self._journal(rec.CHECK, body, reply)

    def report(self) -> None:
        r = self.rng
        ids, types, qtys, prices = [], [], [], []
        for _ in range(r.choice([1, 3, 10])):
            i = r.choice(self.ids) if self.ids else "none"
            open_qty = self.engine.open_quantity(i)
            t = r.choice([1, 1, 2])
            ids.append(i)
            types.append(t)
            qtys.append(r.choice([open_qty, open_qty / 2, 1.0]) if t == 1 else 0.0)
            prices.append(100.0 if t == 1 else 0.0)
        body = pb.ReportExecutionsRequest(
            client_order_id=ids, type=types, quantity=qtys, price=prices
        ).SerializeToString()
        x = parse_report_request(body)
        self.engine.report_executions(
            x.client_order_id, x.type, x.quantity, x.price, account=x.account, symbol=x.symbol, side=x.side
        )
        self._journal(rec.EXECUTIONS, body)

    def prices(self) -> None:
        req = pb.UpdatePricesRequest(
            symbol=SYMBOLS, price=[self.rng.choice([98.0, 100.0, 102.0]) for _ in SYMBOLS]
        )
        self.engine.update_prices(req.symbol, np.asarray(req.price, dtype=np.float64))
        self._journal(rec.PRICES, req.SerializeToString())

    def positions(self) -> None:
        req = pb.LoadPositionsRequest(
            account=["ACC3"], symbol=["S2"], quantity=[self.rng.choice([0.0, 7.0, -3.0])]
        )
        self.engine.load_positions(req.account, req.symbol, req.quantity)
        self._journal(rec.POSITIONS, req.SerializeToString())

    def trading_state(self) -> None:
        req = pb.SetTradingStateRequest(account="ACC2", state=self.rng.choice([1, 2]), reason="test")
        self.engine.set_trading_state(req.account, req.state, req.reason)
        self._journal(rec.TRADING_STATE, req.SerializeToString())

    def session(self, steps: int) -> None:
        for _ in range(steps):
            x = self.rng.random()
            if x < 0.7:
                self.check()
            elif x < 0.9:
                self.report()
            elif x < 0.95:
                self.prices()
            elif x < 0.97:
                self.positions()
            elif x < 0.98:
                self.trading_state()
            else:
                self.limits(
                    [Limit(limit_id="qty", kind=MAX_ORDER_QUANTITY, threshold=self.rng.choice([50.0, 100.0]))]
                )

    # what PostgreSQL must hold, from the change records A emitted
    def rows(self, kind: type) -> int:
        return sum(len(c.client_order_id) for c in self.sink.of(kind))


def start_server(tmp_path: Path, seed: int = 7, segment_bytes: int = 64 * 1024) -> Server:
    journal = Journal(tmp_path / "journal", fsync="none", segment_bytes=segment_bytes, max_bytes=1 << 30)
    journal.open()
    server = Server(journal, seed)
    server.limits(
        [
            Limit(limit_id="qty", kind=MAX_ORDER_QUANTITY, threshold=100.0, warn_fraction=0.3),
            Limit(limit_id="pos", kind=MAX_POSITION, account="ACC1", threshold=500.0, warn_fraction=0.5),
        ]
    )
    return server


def feeder_cmd(journal: Path, data_dir: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "riskd_server.store.feeder",
        "--journal-dir",
        str(journal),
        "--data-dir",
        str(data_dir),
    ]
    for name, value in FLAGS.items():
        cmd += [f"--{name.replace('_', '-')}", value]
    return cmd


@pytest.fixture
def feeders(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def spawn(procs: list, dsn: str, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "RISKD_DSN": dsn}
    log = (tmp_path / f"feeder{len(procs)}.log").open("wb")
    p = subprocess.Popen(
        feeder_cmd(tmp_path / "journal", tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    procs.append(p)
    return p


def applied(dsn: str) -> int:
    with admin(dsn) as conn:
        try:
            row = conn.execute("SELECT seq FROM journal_applied").fetchone()
        except psycopg.errors.UndefinedTable:  # the feeder has not migrated the database yet
            return 0
    return int(row[0]) if row else 0


def wait_applied(dsn: str, seq: int, timeout: float = 120.0, procs: list | None = None) -> None:
    deadline = time.monotonic() + timeout
    while applied(dsn) < seq:
        if procs and procs[-1].poll() is not None:
            raise AssertionError(f"feeder exited with {procs[-1].returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"journal_applied {applied(dsn)} < {seq} after {timeout}s")
        time.sleep(0.05)


def counts(dsn: str) -> dict[str, tuple]:
    with admin(dsn) as conn:
        return {
            "executions": conn.execute("SELECT count(*) FROM executions").fetchone(),
            "check_events": conn.execute("SELECT count(*) FROM check_events").fetchone(),
            "orders": conn.execute("SELECT count(*), count(DISTINCT client_order_id) FROM orders").fetchone(),
        }


def assert_database_is(server: Server, dsn: str) -> None:
    """PostgreSQL restored into a fresh engine equals A; every audit row is there exactly once."""
    a = server.engine
    got = counts(dsn)
    assert got["executions"] == (server.rows(ch.ExecutionsReported),)
    assert got["check_events"] == (server.rows(ch.CheckEvents),)
    accepted = {i for c in server.sink.of(ch.OrdersAccepted) for i in c.client_order_id.tolist()}
    assert got["orders"] == (len(accepted), len(accepted))

    async def restored() -> Engine:
        store = await Store.open(dsn, min_size=1, max_size=1, timeout=5.0)
        try:
            snap = await store.load_snapshot(CONFIG.closed_order_retention)
        finally:
            await store.close()
        b = Engine(CONFIG)
        b.restore(snap)
        return b

    b = run(restored())
    assert b.open_orders() == a.open_orders()
    for i in set(server.ids):
        assert b.open_quantity(i) == a.open_quantity(i), i
    for account in [*ACCOUNTS, ""]:
        assert b.trading_state(account) == a.trading_state(account)
        assert b.exposure(account) == a.exposure(account), account
        for symbol in SYMBOLS:
            assert b.position(account, symbol) == a.position(account, symbol)
    assert b.list_limits() == a.list_limits()


def test_the_feeder_writes_the_journal_into_postgresql_exactly_once(
    fresh_dsn: str, tmp_path: Path, feeders: list
) -> None:
    server = start_server(tmp_path)
    server.session(300)
    p = spawn(feeders, fresh_dsn, tmp_path)
    wait_applied(fresh_dsn, server.journal.last_seq, procs=feeders)
    assert psutil.Process(p.pid).nice() == max(5, os.nice(0))  # feeder_nice
    if hasattr(os, "SCHED_IDLE"):  # feeder_idle (default on): every thread, inherited from the first
        threads = [t.id for t in psutil.Process(p.pid).threads()]
        assert len(threads) > 1
        assert {os.sched_getscheduler(t) for t in threads} == {os.SCHED_IDLE}
    server.session(300)  # while it follows the journal
    wait_applied(fresh_dsn, server.journal.last_seq, procs=feeders)
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    server.journal.close()
    assert_database_is(server, fresh_dsn)
    log = (tmp_path / "feeder0.log").read_text()
    assert "caught up" in log or "behind" not in log
    assert f"stopped at journal seq {server.journal.last_seq}" in log


def test_kill_9_mid_way_then_a_restart_neither_doubles_nor_loses_a_row(
    fresh_dsn: str, tmp_path: Path, feeders: list
) -> None:
    server = start_server(tmp_path, seed=11)
    server.session(1500)
    last = server.journal.last_seq
    for _ in range(3):
        p = spawn(feeders, fresh_dsn, tmp_path)
        deadline = time.monotonic() + 120
        start = applied(fresh_dsn)
        while applied(fresh_dsn) <= start + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        p.kill()  # kill -9 mid-way
        p.wait()
        assert applied(fresh_dsn) < last, "the feeder finished before it could be killed"
    spawn(feeders, fresh_dsn, tmp_path)
    wait_applied(fresh_dsn, last, procs=feeders)
    server.journal.close()
    assert_database_is(server, fresh_dsn)


def test_postgresql_refusing_connections_for_a_while_then_back(
    fresh_dsn: str, tmp_path: Path, feeders: list
) -> None:
    server = start_server(tmp_path, seed=23)
    server.session(200)
    p = spawn(feeders, fresh_dsn, tmp_path)
    wait_applied(fresh_dsn, server.journal.last_seq, procs=feeders)
    _set_connections(fresh_dsn, False)
    try:
        server.session(400)  # the server keeps trading: the journal grows
        time.sleep(2.0)
        assert p.poll() is None
    finally:
        _set_connections(fresh_dsn, True)
    wait_applied(fresh_dsn, server.journal.last_seq, procs=feeders)
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    server.journal.close()
    assert_database_is(server, fresh_dsn)
    log = (tmp_path / "feeder0.log").read_text()
    assert "failed" in log and "caught up" in log


def test_a_feeder_started_while_postgresql_is_unreachable_waits_for_it(
    fresh_dsn: str, tmp_path: Path, feeders: list
) -> None:
    server = start_server(tmp_path, seed=5)
    server.session(100)
    run(_migrate(fresh_dsn))
    _set_connections(fresh_dsn, False)
    try:
        p = spawn(feeders, fresh_dsn, tmp_path)
        time.sleep(2.0)
        assert p.poll() is None
    finally:
        _set_connections(fresh_dsn, True)
    wait_applied(fresh_dsn, server.journal.last_seq, procs=feeders)
    server.journal.close()
    assert_database_is(server, fresh_dsn)


async def _migrate(dsn: str) -> None:
    store = await Store.open(dsn, min_size=1, max_size=1, timeout=5.0)
    await store.close()


def test_feeder_process_restarts_a_feeder_that_dies_and_stops_it(fresh_dsn: str, tmp_path: Path) -> None:
    server = start_server(tmp_path, seed=3)
    server.session(200)
    settings = load_settings({**FLAGS, "data_dir": str(tmp_path)}, environ={})

    async def main() -> FeederProcess:
        fp = FeederProcess(settings, tmp_path / "journal", fresh_dsn)
        await fp.start()
        try:
            pid = fp.pid
            assert pid is not None
            await asyncio.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            async with asyncio.timeout(30):
                while fp.pid in (None, pid):
                    await asyncio.sleep(0.05)
            async with asyncio.timeout(120):
                while await asyncio.to_thread(applied, fresh_dsn) < server.journal.last_seq:
                    await asyncio.sleep(0.05)
        finally:
            await fp.stop(timeout=30)
        return fp

    fp = run(main(), timeout=200)
    assert fp.restarts == 1 and fp.exit_codes == [-signal.SIGKILL] and fp.pid is None
    server.journal.close()
    assert_database_is(server, fresh_dsn)


def test_lag_counts_records_and_the_age_of_the_oldest_uncommitted() -> None:
    lags = LagClock()
    assert lags.lag(0, 0, 100.0).records == 0
    for seq in range(1, 6):
        lags.applied(seq, 10.0 + seq)
    lag = lags.lag(journal_last=8, committed=2, now=20.0)
    assert (lag.records, lag.seconds) == (6, 7.0)  # record 3 (wall 13) is the oldest not committed
    lag = lags.lag(journal_last=8, committed=5, now=20.0)
    assert (lag.records, lag.seconds) == (3, 5.0)  # not read yet: bounded by the last committed's age
    assert lags.lag(journal_last=5, committed=5, now=30.0).records == 0


@pytest.mark.parametrize("idle", [True, False])
def test_the_feeder_command_carries_every_shared_setting(tmp_path: Path, idle: bool) -> None:
    """The flags the server passes its feeder parse back to the same settings (a bool becomes
    --flag / --no-flag, which argparse's BooleanOptionalAction takes; "True" it refused)."""
    import argparse

    from riskd_server.store.feeder import SHARED_SETTINGS, add_feeder_arguments
    from riskd_server.store.feeder_process import feeder_command

    settings = load_settings({**FLAGS, "data_dir": str(tmp_path), "feeder_idle": idle}, environ={})
    cmd = feeder_command(settings, tmp_path / "journal", 1234)
    parser = argparse.ArgumentParser()
    add_feeder_arguments(parser)
    args = parser.parse_args(cmd[cmd.index("--journal-dir") :])
    parsed = load_settings(args, environ={})
    assert args.parent_pid == 1234
    for name in SHARED_SETTINGS:
        assert getattr(parsed, name) == getattr(settings, name), name


def test_a_busy_journal_defers_the_feeder_until_it_is_quiet_or_hurried(
    fresh_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """feeder_defer: while records keep coming (the server is busy) the feeder leaves records
    younger than feeder_defer alone; touch_hurry (a barrier waits) lifts that for a moment; once the
    journal is quiet it applies everything. QUIET is widened so a stalled test thread on a loaded
    machine does not look like a quiet server."""
    from dataclasses import replace

    from riskd_server.store import feeder as feeder_module

    monkeypatch.setattr(feeder_module, "QUIET", 2.0)
    server = start_server(tmp_path, segment_bytes=4096)  # the busy records fill several segments:
    server.session(50)  # the deferred tail sits in one while the writer appends to later ones
    settings = load_settings({**FLAGS, "data_dir": str(tmp_path), "feeder_defer": "30"}, environ={})
    settings = replace(settings, dsn=fresh_dsn, feeder_nice=0, feeder_idle=False)

    def busy(seconds: float) -> None:
        """A check journaled every 20 ms at today's wall clock (server.t drives both clocks)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            server.t = time.time() - 1.7e9
            server.check()
            time.sleep(0.02)

    async def main() -> tuple[int, int]:
        feeder = feeder_module.Feeder(settings, tmp_path / "journal")
        task = asyncio.create_task(feeder.run())
        try:
            before = server.journal.last_seq
            async with asyncio.timeout(60):
                while await asyncio.to_thread(applied, fresh_dsn) < before:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(busy, 1.5)
            deferred = await asyncio.to_thread(applied, fresh_dsn)
            assert deferred == before, "a busy server's fresh records were applied"
            feeder_module.touch_hurry(tmp_path / "journal")  # what a barrier in the server does
            await asyncio.to_thread(busy, 1.0)  # still busy, but hurried
            hurried = await asyncio.to_thread(applied, fresh_dsn)
            last = server.journal.last_seq
            async with asyncio.timeout(60):  # quiet now: everything, without waiting 30 s
                while await asyncio.to_thread(applied, fresh_dsn) < last:
                    await asyncio.sleep(0.05)
            return before, hurried
        finally:
            feeder.stop.set()
            await task

    before, hurried = run(main(), timeout=200)
    assert hurried > before, "touch_hurry did not lift the deferral"
    server.journal.close()
    assert_database_is(server, fresh_dsn)
