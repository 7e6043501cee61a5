"""Durability.barrier (the admin RPCs' "persisted" wait) against a real PostgreSQL's journal_applied."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fix_pg import admin, run

from riskd_server.durable import APPLIED_POLL, Durability
from riskd_server.engine import Engine
from riskd_server.journal.records import CHECK
from riskd_server.journal.tap import JournalTap
from riskd_server.journal.writer import Journal
from riskd_server.store import Store


def test_many_waiting_barriers_share_one_read_of_journal_applied(fresh_dsn: str, tmp_path: Path) -> None:
    """50 barriers wait for the same seq: they return together once the database has it, and the
    database was read about once per poll interval, not once per waiter and interval; a barrier
    for a seq the database never reaches returns False at its timeout."""
    journal = Journal(tmp_path / "journal", fsync="none")
    journal.open()
    journal.append([(CHECK, b"x")])

    async def main() -> tuple[list[bool], int, float, bool]:
        store = await Store.open(fresh_dsn, min_size=1, max_size=2, timeout=5.0)
        try:
            durability = Durability(
                journal,
                JournalTap(journal),
                tmp_path / "checkpoints",
                Engine(),
                store.journal_applied,
                60.0,
                1 << 30,
            )
            waiters = [asyncio.create_task(durability.barrier(10.0)) for _ in range(50)]
            await asyncio.sleep(0.3)
            assert not any(w.done() for w in waiters)
            with admin(fresh_dsn) as conn:
                conn.execute("UPDATE journal_applied SET seq = %s", (journal.last_seq,))
            started = time.monotonic()
            done = await asyncio.gather(*waiters)
            waited = 0.3 + time.monotonic() - started
            reads = durability.reads
            journal.append([(CHECK, b"y")])  # never applied
            late = await durability.barrier(0.2)
            await durability.stop()
            return done, reads, waited, late
        finally:
            await store.close()

    done, reads, waited, late = run(main())
    assert done == [True] * 50
    assert reads <= waited / APPLIED_POLL + 5  # one poller: at most one read per interval (and slack)
    assert late is False
