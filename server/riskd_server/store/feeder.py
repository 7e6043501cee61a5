"""`riskd feeder`: PostgreSQL fed from the journal, exactly once, at its own pace.

The server answers from memory and journals every state-changing input (journal.records); this
process keeps PostgreSQL, the queryable system of record, up with the journal:

1. restore a replica Engine from PostgreSQL (Store.load_snapshot + Engine.restore, as the server
   does), built on a ReplayClock, and read journal_applied in the same snapshot;
2. follow the journal from journal_applied + 1 (journal.tail: the end of the written data is
   waited on, never an error);
3. apply each record with engine.replay.apply_input; the replica's sink is a WriteBehind, so it
   produces exactly the rows the server used to write; after each record ``mark_applied(seq)``,
   so every flush transaction also sets journal_applied to the last record it holds, and a
   record's rows never straddle two transactions. After a crash of either side the next feeder
   resumes after journal_applied: every record's rows land exactly once.

Backpressure: before each record it waits for room in the write-behind, so with PostgreSQL slow or
down the feeder just stops reading and the journal grows (the server keeps trading until
journal_max_bytes). It runs niced (``feeder_nice``, default 19) and renices its PostgreSQL
backends when they are local processes of this user (the embedded cluster), so under load it
takes idle CPU only. Every ``feeder_lag_interval`` s it logs how far PostgreSQL is behind (records
and seconds), and INFO once it has caught up. SIGTERM: the current flush (everything applied)
is finished, then it exits 0; a record applied but not flushed is simply applied again next time.
It exits by itself when the server that started it is gone (``--parent-pid``).

Exit codes: 0 stopped; 2 the journal is damaged or holds a record this code cannot apply;
3 journal_applied moved under it (another feeder writes to the database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings, SettingsError, add_arguments, load_settings
from ..engine import Backpressure, BatchError, Engine
from ..engine.replay import ReplayClock, apply_input
from ..journal import JournalDamage
from ..journal import records as rec
from ..journal.format import Record
from ..journal.format import growth as journal_growth
from ..journal.records import RecordError
from ..journal.tail import JournalTail, journal_end
from ._store import Store, set_idle
from ._writebehind import WriteBehind

log = logging.getLogger("riskd.feeder")

EXIT_DAMAGE = 2
EXIT_CONFLICT = 3
POLL = 0.010  # seconds between looks at the journal's end, and for room in the write-behind
READ_RECORDS = 256  # records read per poll
# Seconds of applying records between turns of the loop (the flush task, signals): a turn per
# record cost a poll() each, a fifth of a one-order record's replay.
SLICE = 0.002
QUIET = 0.1  # seconds without a journal append: the server is quiet, the feeder need not defer
DEFER_POLL = 0.02  # seconds between looks while deferring
HURRY = 1.0  # seconds a hurry (a barrier waits: touch_hurry) lifts the deferral
HURRY_FILE = "feeder.hurry"  # in the journal folder: its mtime is the last hurry
RETRY = 1.0  # seconds between attempts to reach PostgreSQL at start
# The settings a feeder shares with its server (FeederProcess passes them on as flags).
SHARED_SETTINGS = (
    "data_dir",
    "dead_letter_file",
    "max_batch",
    "max_accounts",
    "max_symbols",
    "max_open_orders",
    "closed_order_retention",
    "max_order_notional",
    "dynamic_min_scale",
    "vol_ewma_lambda",
    "dynamic_min_returns",
    "dynamic_tolerance",
    "flush_interval_ms",
    "max_pending_rows",
    "limit_history",
    "db_timeout",
    "log_level",
    "feeder_nice",
    "feeder_idle",
    "feeder_lag_interval",
    "feeder_defer",
    "uvloop",
)


@dataclass(frozen=True, slots=True)
class Lag:
    """How far PostgreSQL is behind the journal."""

    records: int  # journal records whose rows are not committed yet
    seconds: float  # age of the oldest of them (0: none)


class LagClock:
    """Wall clocks of the records applied but not committed yet (oldest first), for Lag."""

    def __init__(self) -> None:
        self._walls: deque[tuple[int, float]] = deque()
        self.last_committed_wall = 0.0

    def applied(self, seq: int, wall: float) -> None:
        self._walls.append((seq, wall))

    def lag(self, journal_last: int, committed: int, now: float) -> Lag:
        walls = self._walls
        while walls and walls[0][0] <= committed:
            self.last_committed_wall = walls.popleft()[1]
        behind = max(0, journal_last - committed)
        if not behind:
            return Lag(0, 0.0)
        # Not applied yet (read behind): the newest committed record's age bounds it from above.
        oldest = walls[0][1] if walls else self.last_committed_wall
        return Lag(behind, max(0.0, now - oldest) if oldest else 0.0)


def touch_hurry(journal: Path) -> None:
    """Tell the feeder following ``journal`` to stop deferring for a moment (feeder_defer): the
    server waits for PostgreSQL. Never raises: a hurry that fails only leaves the wait longer."""
    path = journal / HURRY_FILE
    try:
        path.touch()
        os.utime(path)
    except OSError as exc:
        log.debug("cannot touch %s: %s", path, exc)


def lower_priority(nice: int, idle: bool = False) -> str:
    """Raise this process's niceness to ``nice`` (never lowers it) and, with ``idle``, switch it to
    SCHED_IDLE (where Linux has it): the threads running now (imports start some), and those started
    later inherit it. Returns what it is now, for the log."""
    current = os.nice(0)
    if nice > current:
        with contextlib.suppress(OSError):
            current = os.nice(nice - current)
    if idle and all([set_idle(tid) for tid in _threads()]):
        return f"nice {current}, SCHED_IDLE"
    return f"nice {current}"


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: this thread only
        return [0]


class Feeder:
    """One run: restore, then apply the journal into PostgreSQL until ``stop`` is set."""

    def __init__(self, settings: Settings, journal: Path, *, parent_pid: int = 0) -> None:
        self.settings = settings
        self.journal = Path(journal)
        self.parent_pid = parent_pid
        self.stop = asyncio.Event()
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.writer: WriteBehind | None = None
        self.tail: JournalTail | None = None
        self._growth: tuple[int, int] = (0, 0)
        self._grew_at = 0.0
        self._free_until = 0.0  # monotonic time until which records are applied without a look
        self.clock = ReplayClock()
        self.lags = LagClock()
        self.started_seq = 0
        self._lagging_since = 0.0  # monotonic time the current lag was first reported (0: none)

    # ------------------------------------------------------------------ start

    async def _open(self) -> bool:
        """Store, replica and write-behind, retrying while PostgreSQL is unreachable; False when
        stopped first."""
        s = self.settings
        while not self.stop.is_set():
            try:
                self.store = await Store.open(
                    s.dsn,
                    min_size=1,
                    max_size=2,
                    timeout=s.db_timeout,
                    backend_nice=s.feeder_nice,
                    backend_idle=s.feeder_idle,
                )
                break
            except Exception as exc:  # unreachable, starting up, refusing: wait for it
                log.warning("PostgreSQL not reachable (%s: %s); retrying", type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY):
                        await self.stop.wait()
        if self.store is None:
            return False
        from ..server import engine_config  # the server's own mapping of settings to EngineConfig

        while not self.stop.is_set():
            try:
                snapshot = await self.store.load_snapshot(s.closed_order_retention)
                break
            except Exception as exc:
                log.warning(
                    "cannot read the state from PostgreSQL (%s: %s); retrying", type(exc).__name__, exc
                )
                await asyncio.sleep(RETRY)
        else:
            return False
        engine = Engine(engine_config(s), clock=self.clock.now, wall_clock=self.clock.wall)
        started = time.perf_counter()
        await asyncio.to_thread(engine.restore, snapshot)
        self.started_seq = snapshot.journal_seq
        log.info(
            "replica restored in %.3fs at journal seq %d: %s",
            time.perf_counter() - started,
            self.started_seq,
            engine.stats(),
        )
        del snapshot
        from ..server import dead_letter_path

        self.writer = self.store.write_behind(
            max_pending_rows=s.max_pending_rows,
            flush_interval=s.flush_interval_ms / 1000.0,
            write_timeout=s.db_timeout,
            dead_letter_path=dead_letter_path(s),
            limit_history=s.limit_history,
            applied_seq=self.started_seq,
            admit_when_empty=True,
        )
        await self.writer.start()
        engine.sink = self.writer
        self.engine = engine
        self.tail = JournalTail(self.journal, self.started_seq + 1)
        return True

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        """Follow the journal until stopped; the exit code."""
        try:
            if not await self._open():
                return 0
            return await self._follow()
        finally:
            await self._close()

    async def _follow(self) -> int:
        assert self.tail is not None and self.writer is not None and self.engine is not None
        tail, writer, engine = self.tail, self.writer, self.engine
        reporter = asyncio.create_task(self._report(), name="riskd-feeder-lag")
        try:
            while not self.stop.is_set():
                if writer.failed is not None:
                    return EXIT_CONFLICT
                try:
                    batch = tail.poll(READ_RECORDS)
                except JournalDamage as exc:
                    log.error("cannot follow the journal: %s", exc)
                    return EXIT_DAMAGE
                slice_end = time.monotonic() + SLICE
                for record in batch:
                    await self._turn(record)
                    while not writer.has_room(1) and not self.stop.is_set() and writer.failed is None:
                        await asyncio.sleep(POLL)  # backpressure: PostgreSQL behind; the journal grows
                    if self.stop.is_set() or writer.failed is not None:
                        break  # records read but not applied are read again by the next feeder
                    if not await self._apply(engine, record.seq, record.type, record.payload):
                        return EXIT_DAMAGE
                    if self.stop.is_set() or writer.failed is not None:
                        break
                    writer.mark_applied(record.seq)
                    self.lags.applied(record.seq, self.clock.wall())
                    if time.monotonic() >= slice_end:  # the flush task and signals run between slices
                        await asyncio.sleep(0)
                        slice_end = time.monotonic() + SLICE
                if not batch:
                    self._note_caught_up()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL):
                            await self.stop.wait()
            return EXIT_CONFLICT if writer.failed is not None else 0
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter

    def _hurried(self) -> bool:
        """A barrier touched HURRY_FILE in the last HURRY seconds (touch_hurry; a file and not a
        signal: a signal before the feeder's handler exists, during its start, would kill it)."""
        try:
            return time.time() - os.stat(self.journal / HURRY_FILE).st_mtime < HURRY
        except OSError:
            return False

    async def _turn(self, record: Record) -> None:
        """Wait while deferring ``record`` (feeder_defer): the server is busy and it is younger
        than feeder_defer seconds. Busy: the journal grew in the last QUIET seconds."""
        defer = self.settings.feeder_defer
        wall = rec.wall_of(record.type, record.payload) if defer > 0 else None
        if wall is None:
            return
        if time.monotonic() < self._free_until:  # found quiet (or hurried) a moment ago
            return
        while not self.stop.is_set():
            mono = time.monotonic()
            if time.time() - wall >= defer:
                return
            growth = journal_growth(self.journal)  # the newest segment: the tail may be far behind
            if growth != self._growth:
                self._growth, self._grew_at = growth, mono
            if self._hurried() or mono - self._grew_at >= QUIET:
                # Looked at most every DEFER_POLL s: a catch-up does not scan the folder a record.
                self._free_until = mono + DEFER_POLL
                return
            await asyncio.sleep(DEFER_POLL)

    async def _report(self) -> None:
        """Every feeder_lag_interval s: the lag when there is one; stop when the server is gone."""
        writer = self.writer
        assert writer is not None
        end = journal_end(self.journal)
        while True:
            await asyncio.sleep(self.settings.feeder_lag_interval)
            stats = writer.stats()
            lag = self.lags.lag(await asyncio.to_thread(end.last_seq), stats.applied_seq, time.time())
            if lag.records:
                self._lagging_since = self._lagging_since or time.monotonic()
                log.info(
                    "PostgreSQL is %d journal record(s), %.1f s behind (%d rows pending, breaker %s)",
                    lag.records,
                    lag.seconds,
                    stats.pending_rows,
                    stats.breaker_state,
                )
            if self.parent_pid and os.getppid() != self.parent_pid:
                log.warning("the server (pid %d) is gone; stopping", self.parent_pid)
                self.stop.set()

    async def _apply(self, engine: Engine, seq: int, type_: int, payload: bytes) -> bool:
        """Apply one record; False when this code cannot (the caller stops: nothing skipped)."""
        writer = self.writer
        assert writer is not None
        while True:
            try:
                apply_input(engine, self.clock, type_, payload, seq=seq, side_dir=self.journal)
                return True
            except Backpressure:
                # Nothing changed: the record needs more rows than are free. Let the backlog drain
                # whole, then it fits (an empty backlog takes any record: admit_when_empty).
                while writer.stats().pending_rows and not self.stop.is_set() and writer.failed is None:
                    await asyncio.sleep(POLL)
                if self.stop.is_set() or writer.failed is not None:
                    return True  # not applied nor marked: the caller stops before marking
            except BatchError as exc:
                # The server accepted this request; the replica refuses it: it has diverged. Its
                # rows are lost to PostgreSQL, the rest goes on (stopping would stop them all).
                log.error("journal record %d refused by the replica, its rows not written: %s", seq, exc)
                return True
            except RecordError as exc:
                log.error("%s", exc)
                return False

    # ------------------------------------------------------------------ stop

    def _note_caught_up(self) -> None:
        """Say once that PostgreSQL caught up, when it was behind and holds everything read."""
        tail, writer = self.tail, self.writer
        if tail is None or writer is None or not self._lagging_since:
            return
        if writer.stats().applied_seq == tail.next_seq - 1:
            log.info(
                "PostgreSQL caught up with the journal at seq %d after %.1f s behind",
                tail.next_seq - 1,
                time.monotonic() - self._lagging_since,
            )
            self._lagging_since = 0.0

    async def _close(self) -> None:
        if self.tail is not None:
            self.tail.close()
        if self.writer is not None:
            await self.writer.stop(timeout=max(self.settings.db_timeout, 1.0))
            self._note_caught_up()  # a stop right after the last flush: before any empty poll said so
            stats = self.writer.stats()
            log.info("stopped at journal seq %d (%d rows not written)", stats.applied_seq, stats.pending_rows)
        if self.store is not None:
            await self.store.close()


# ---------------------------------------------------------------------- process entry points


def add_feeder_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal-dir", dest="journal_dir", required=True, metavar="DIR", help="the journal folder to follow"
    )
    parser.add_argument(
        "--parent-pid", type=int, default=0, help="exit when this process (the server) is gone (0: never)"
    )
    add_arguments(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "feeder",
        help="feed PostgreSQL from riskd's journal (riskd serve starts it)",
        description=__doc__.splitlines()[0],
    )
    add_feeder_arguments(parser)
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args)
    except SettingsError as exc:
        print(f"riskd feeder: {exc}", file=sys.stderr)
        return 1
    if not settings.dsn:
        print("riskd feeder: --dsn (or RISKD_DSN) is required", file=sys.stderr)
        return 1
    return run(settings, Path(args.journal_dir), args.parent_pid)


def run(settings: Settings, journal: Path, parent_pid: int = 0) -> int:
    """Blocking: niced, SIGTERM/SIGINT stop it cleanly."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    priority = lower_priority(settings.feeder_nice, settings.feeder_idle)
    log.info("riskd feeder pid %d following %s (%s)", os.getpid(), journal, priority)

    async def main() -> int:
        feeder = Feeder(settings, journal, parent_pid=parent_pid)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, feeder.stop.set)
        return await feeder.run()

    runner: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run
    if settings.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    return runner(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="riskd feeder", description=__doc__.splitlines()[0])
    add_feeder_arguments(parser)
    return _command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
