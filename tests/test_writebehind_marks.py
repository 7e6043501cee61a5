"""WriteBehind journal marks on a real PostgreSQL: a flush ends only at a mark (past max_flush_rows
if it must) and sets journal_applied in the same transaction; a flush whose mark is already there
(a COMMIT whose outcome was lost) writes nothing twice; another writer's mark stops this one; a
refused batch sets journal_applied only with the part that completes it."""

from __future__ import annotations

import asyncio

import psycopg
from fix_pg import run
from test_store import accepted, executions, open_store, query, refuse, wait_for

from riskd_server.store import WriteBehind


def applied(dsn: str) -> int:
    return int(query(dsn, "SELECT seq FROM journal_applied")[0][0])


def test_the_migration_starts_journal_applied_at_zero_and_the_snapshot_reads_it(fresh_dsn: str) -> None:
    async def main() -> tuple[int, int]:
        store = await open_store(fresh_dsn)
        try:
            before = await store.journal_applied()
            with psycopg.connect(fresh_dsn, autocommit=True) as conn:
                conn.execute("UPDATE journal_applied SET seq = 42")
            snap = await store.load_snapshot(10)
            assert await store.journal_applied() == 42
            return before, snap.journal_seq
        finally:
            await store.close()

    assert run(main()) == (0, 42)
    # one row at most
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        try:
            conn.execute("INSERT INTO journal_applied (seq) VALUES (1)")
            raise AssertionError("a second row was accepted")
        except psycopg.errors.UniqueViolation:
            pass


def test_flushes_end_at_marks_and_set_journal_applied_with_their_rows(fresh_dsn: str) -> None:
    seen: list[tuple[int, int]] = []

    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(
                max_pending_rows=10_000, flush_interval=0.01, max_flush_rows=3, applied_seq=0
            )
            # record 1: 5 rows (more than max_flush_rows: one flush takes it whole)
            writer.put(accepted([f"a{i}" for i in range(5)]))
            writer.mark_applied(1)
            # record 2: 2 changes; record 3: none; record 4: 1 row, not marked yet
            writer.put(accepted(["b0"]))
            writer.put(executions(["b0"]))
            writer.mark_applied(2)
            writer.mark_applied(3)
            writer.put(executions(["c0"]))
            await writer.start()
            await wait_for(lambda: writer.stats().applied_seq == 3)
            await asyncio.sleep(0.1)
            seen.append((applied(fresh_dsn), int(query(fresh_dsn, "SELECT count(*) FROM orders")[0][0])))
            assert writer.stats().pending_rows == 1  # record 4's row waits for its mark
            assert query(fresh_dsn, "SELECT count(*) FROM executions WHERE client_order_id = 'c0'") == [(0,)]
            writer.mark_applied(4)
            await writer.barrier(5.0)
            writer.mark_applied(5)  # a record without rows still moves journal_applied
            await writer.barrier(5.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    writer = run(main())
    assert seen == [(3, 6)]
    assert applied(fresh_dsn) == 5 and writer.stats().applied_seq == 5
    assert query(fresh_dsn, "SELECT count(*) FROM executions") == [(2,)]
    assert writer.stats().flushed_changes == 4


def test_a_flush_already_committed_is_not_written_twice(fresh_dsn: str) -> None:
    """What a COMMIT whose outcome was lost looks like on the retry: the mark is already there."""

    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01, applied_seq=6)
            query_exec(fresh_dsn, "UPDATE journal_applied SET seq = 7")
            writer.put(executions(["x"]))
            writer.mark_applied(7)
            await writer.start()
            await writer.barrier(5.0)
            writer.put(executions(["y"]))
            writer.mark_applied(8)
            await writer.barrier(5.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    writer = run(main())
    assert [r[0] for r in query(fresh_dsn, "SELECT client_order_id FROM executions")] == ["y"]
    assert applied(fresh_dsn) == 8 and writer.failed is None


def query_exec(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def test_another_writers_mark_stops_this_writer_before_it_writes_twice(fresh_dsn: str) -> None:
    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01, applied_seq=0)
            query_exec(fresh_dsn, "UPDATE journal_applied SET seq = 5")  # another feeder got to 5
            writer.put(executions(["x"]))
            writer.mark_applied(3)
            await writer.start()
            await wait_for(lambda: writer.failed is not None)
            await writer.stop(1.0)
            return writer
        finally:
            await store.close()

    writer = run(main())
    assert "another feeder" in str(writer.failed)
    assert query(fresh_dsn, "SELECT count(*) FROM executions") == [(0,)]
    assert applied(fresh_dsn) == 5
    assert writer.stats().pending_rows == 1


def test_without_applied_seq_journal_applied_only_moves_forward(fresh_dsn: str) -> None:
    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01)
            writer.put(executions(["x"]))
            writer.mark_applied(3)
            await writer.start()
            await writer.barrier(5.0)
            writer.put(executions(["y"]))
            writer.mark_applied(4)
            await writer.barrier(5.0)
            await writer.stop(1.0)
            return writer
        finally:
            await store.close()

    writer = run(main())
    assert applied(fresh_dsn) == 4 and writer.failed is None
    assert query(fresh_dsn, "SELECT count(*) FROM executions") == [(2,)]


def test_a_refused_batch_sets_journal_applied_with_its_last_part_only(fresh_dsn: str) -> None:
    applied_during: list[tuple[int, int]] = []

    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        refuse(fresh_dsn, "ALTER TABLE orders ADD CONSTRAINT no_bad_account CHECK (account <> 'BAD')")
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01, applied_seq=0)
            for i in range(8):  # records 1..8, record 5 holds the refused order
                writer.put(accepted([f"g{i}"], account="BAD" if i == 4 else "A"))
                writer.put(executions([f"e{i}"]))
                writer.mark_applied(i + 1)
            await writer.start()
            while writer.stats().pending_rows:
                applied_during.append(
                    query(
                        fresh_dsn, "SELECT (SELECT seq FROM journal_applied), (SELECT count(*) FROM orders)"
                    )[0]
                )
                await asyncio.sleep(0.002)
            await writer.barrier(10.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    writer = run(main())
    # Parts are committed one by one; journal_applied moves only with the part that completes it.
    assert {seq for seq, _ in applied_during} <= {0, 8}
    assert any(seq == 0 and orders > 0 for seq, orders in applied_during)
    assert all(orders == 7 for seq, orders in applied_during if seq == 8)
    assert applied(fresh_dsn) == 8
    assert writer.stats().dead_letter_rows == 1
    assert query(fresh_dsn, "SELECT count(*) FROM orders") == [(7,)]
    assert query(fresh_dsn, "SELECT count(*) FROM executions") == [(8,)]


def test_a_refused_last_row_is_dead_lettered_then_the_mark_written_alone(fresh_dsn: str) -> None:
    async def main() -> WriteBehind:
        store = await open_store(fresh_dsn)
        refuse(fresh_dsn, "ALTER TABLE orders ADD CONSTRAINT no_bad_account CHECK (account <> 'BAD')")
        try:
            writer = store.write_behind(max_pending_rows=1_000, flush_interval=0.01, applied_seq=0)
            writer.put(accepted(["bad"], account="BAD"))
            writer.mark_applied(1)
            await writer.start()
            await writer.barrier(10.0)
            await writer.stop(5.0)
            return writer
        finally:
            await store.close()

    writer = run(main())
    assert applied(fresh_dsn) == 1 and writer.stats().dead_letter_rows == 1
    assert query(fresh_dsn, "SELECT count(*) FROM orders") == [(0,)]
