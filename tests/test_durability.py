"""Recovery through the journal on the full in-process server (real PostgreSQL, real gRPC):

- the three ways back give the same engine: the newest checkpoint; an older checkpoint plus the
  journal after it; the database alone (a new machine);
- damage in the middle of the journal refuses to start, naming the file and offset, and
  journal_repair cuts there;
- segments below the checkpoint and PostgreSQL's applied seq are deleted while it runs.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fix_server import RiskdServer

from riskd_client import Execution, LimitSpec, Order, RiskClient
from riskd_server.engine import checkpoint as cp
from riskd_server.journal.format import RECORD_HEADER, segments
from riskd_server.server import StartupError


def activity(target: str, start: int, n: int = 300) -> None:
    """Checks (some rejected), fills, cancels, prices, a limit, a trading state, non-ASCII names."""
    with RiskClient(target, timeout=30.0) as c:
        c.update_prices({"S": 10.0 + start, "Ä": 3.0})
        c.upsert_limits(LimitSpec(f"q{start}", "MAX_ORDER_QUANTITY", 50.0, account="B"))
        orders = [
            Order(
                f"o{start + i}",
                ("A", "B", "Ç")[i % 3],
                ("S", "Ä")[i % 2],
                "BUY" if i % 4 else "SELL",
                1 + i % 60,
                10.0,
            )
            for i in range(n)
        ]
        result = c.check(orders)
        execs = []
        for order, r in zip(orders, result, strict=True):
            if r.accepted and int(order.client_order_id[1:]) % 3 == 0:
                execs.append(Execution(order.client_order_id, "FILL", order.quantity / 2, 9.5))
            elif r.accepted and int(order.client_order_id[1:]) % 3 == 1:
                execs.append(Execution(order.client_order_id, "CANCELED"))
        c.report_executions(execs)
        c.set_trading_state("REDUCING" if start % 2 else "ACTIVE", "Ç", "test")


def state_of(server: RiskdServer) -> dict[str, Any]:
    """What a user can observe of the engine, plus its own summary."""
    running = server.running
    assert running is not None

    def read() -> dict[str, Any]:
        eng = running.engine
        accounts = ("A", "B", "Ç")
        stats = dict(eng.stats())
        return {
            "stats": stats,
            "exposure": {a: eng.exposure(a) for a in accounts},
            "positions": {(a, s): eng.position(a, s) for a in accounts for s in ("S", "Ä")},
            "open": {f"o{i}": eng.open_quantity(f"o{i}") for i in range(0, 900, 7)},
            "limits": sorted((lim.limit_id, lim.threshold) for lim in eng.list_limits()),
            "states": {a: eng.trading_state(a) for a in accounts},
        }

    return server.call(read)


def restart_from(server: RiskdServer, *, keep_checkpoints: int) -> dict[str, Any]:
    """Stop, keep only the oldest ``keep_checkpoints`` checkpoint files (0: none), start, read."""
    server.stop()
    folder = Path(server.settings.data_dir) / "checkpoints"
    files = [path for _, path in cp.checkpoints(folder)]
    for path in files[keep_checkpoints:]:
        path.unlink()
    server.start()
    return state_of(server)


@pytest.fixture
def riskd_settings() -> dict[str, Any]:
    return {"snapshot_interval": 3600.0}  # checkpoints only at a graceful stop: the test decides


def test_checkpoint_checkpoint_plus_journal_and_database_alone_recover_the_same(
    riskd_server: RiskdServer,
) -> None:
    activity(riskd_server.target, 0)
    riskd_server.restart()  # checkpoint 1, at a graceful stop
    activity(riskd_server.target, 300)
    expected = state_of(riskd_server)
    riskd_server.stop()  # checkpoint 2; the feeder caught up: the database is at the same seq
    folder = Path(riskd_server.settings.data_dir) / "checkpoints"
    saved = Path(riskd_server.settings.data_dir) / "saved"
    shutil.copytree(folder, saved)
    assert len(cp.checkpoints(folder)) == 2
    riskd_server.start()
    got = state_of(riskd_server)
    assert got["stats"] == expected["stats"]
    assert got == expected  # the newest checkpoint
    shutil.rmtree(folder)
    shutil.copytree(saved, folder)
    # The older checkpoint and the journal after it (the second round's records replayed).
    older = restart_from(riskd_server, keep_checkpoints=1)
    assert older["stats"] == expected["stats"]
    assert older == expected
    # No checkpoint: the database (what the feeder wrote) and the journal after journal_applied.
    database = restart_from(riskd_server, keep_checkpoints=0)
    # state_version counts changes since this process's state was built; the database does not keep it.
    database["stats"].pop("state_version")
    expected["stats"].pop("state_version")
    assert database == expected


def test_mid_journal_damage_refuses_to_start_and_repair_cuts_there(riskd_server: RiskdServer) -> None:
    for k in range(3):
        activity(riskd_server.target, 1000 * k, n=50)
    riskd_server.stop()
    journal = Path(riskd_server.settings.data_dir) / "journal"
    shutil.rmtree(Path(riskd_server.settings.data_dir) / "checkpoints")  # replay the whole journal
    (_, path), *_ = segments(journal)
    data = bytearray(path.read_bytes())
    offset = 16 + RECORD_HEADER.size + 4  # inside the first record's payload: records follow it
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StartupError, match=rf"{path.name}.*offset|offset.*{path.name}") as err:
        riskd_server.start()
    assert "--journal-repair" in str(err.value)
    riskd_server.settings = replace(riskd_server.settings, journal_repair=True)
    riskd_server.start()  # cut at the damage: every record is gone, but PostgreSQL had them all
    with RiskClient(riskd_server.target) as c:
        assert {lim.limit_id for lim in c.list_limits().limits} == {"q0", "q1000", "q2000"}
        assert c.check(Order("after-repair", "A", "S", "BUY", 1, 10.0)).all_accepted
    riskd_server.stop()  # the journal numbered on after what PostgreSQL holds, so the order is fed
    with psycopg.connect(riskd_server.settings.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM orders WHERE client_order_id = 'after-repair'").fetchone()
    assert row == (1,)


@pytest.mark.parametrize(
    "riskd_settings", [{"journal_segment_bytes": 2**20, "snapshot_interval": 1.0, "max_batch": 2_000}]
)
def test_segments_below_the_checkpoint_and_the_database_are_deleted(riskd_server: RiskdServer) -> None:
    journal = Path(riskd_server.settings.data_dir) / "journal"
    with RiskClient(riskd_server.target, timeout=30.0) as c:
        for k in range(40):  # ~2 MB of journal: three 1 MiB segments or more
            orders = [Order(f"s{k}-{i}-{'x' * 20}", "A", "S", "BUY", 1, 10.0) for i in range(1_000)]
            assert c.check(orders).all_accepted
            c.report_executions([Execution(o.client_order_id, "CANCELED") for o in orders])
    made = len(segments(journal))
    deadline = time.monotonic() + 30
    while len(segments(journal)) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)  # a checkpoint every second, then the prune
    assert made >= 3 and len(segments(journal)) == 1
    durability = riskd_server.running.durability  # type: ignore[union-attr]
    assert durability is not None and durability.journal.stats().first_seq > 1
    # Deleted in a worker thread, the segments stopped counting toward journal_max_bytes too.
    assert durability.journal.stats().bytes == sum(p.stat().st_size for _, p in segments(journal))
