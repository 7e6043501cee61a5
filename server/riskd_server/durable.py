"""Journal-first persistence of a running server: recovery, the journal tap, checkpoints, pruning.

Every change is appended to the local journal before its reply (journal.tap); a separate feeder
process (store.feeder) applies the journal to PostgreSQL at its own pace, recording the last
applied seq in the same transaction as the rows. This module ties it together for server.start:

- **Recovery**: the newest valid checkpoint (engine.checkpoint) and the journal after its seq;
  without one, the database (whose state is the journal's up to ``journal_applied``) and the
  journal after that. The replay (engine.replay) applies each record with the clocks it was
  applied at.
- **Checkpoints** every snapshot_interval, or after snapshot_journal_bytes of journal, and at a
  graceful stop: captured on the event loop, written in a worker thread.
- **Pruning**: segments whose records are all at or below min(newest checkpoint, journal_applied)
  are deleted, so the journal's disk use is bounded by what PostgreSQL and the checkpoints still
  need.
- **Barrier**: the admin RPCs' "persisted" wait: journal_applied reaching the change's seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .engine import Engine
from .engine import checkpoint as cp
from .engine.replay import ReplayClock, replay_journal
from .journal import limitfiles
from .journal.format import segments
from .journal.reader import JournalDamage
from .journal.tap import JournalTap
from .journal.writer import Journal, delete_segments

log = logging.getLogger("riskd.durable")

APPLIED_POLL = 0.01  # seconds between reads of journal_applied while a barrier waits
HURRY_EVERY = 0.5  # seconds between hurry() calls while a barrier waits (the feeder's lasts 1 s)
HOUSEKEEPING = 1.0  # seconds between checkpoint/prune looks


class RecoveryError(RuntimeError):
    """The journal, the checkpoints and the database do not fit together (riskd refuses to start)."""


@dataclass(frozen=True, slots=True)
class Recovered:
    """Where recovery started and what it replayed."""

    source: str  # "checkpoint" or "database"
    base_seq: int  # the seq the checkpoint or the database reflected
    replayed: int  # journal records applied after it
    seconds: float


def replay_into(engine: Engine, directory: Path, from_seq: int) -> int:
    """Apply the journal's records from ``from_seq`` to ``engine`` with their own clocks (worker
    thread, at start-up: nothing else touches the engine); the last seq applied (from_seq - 1
    when there was none)."""
    clock = ReplayClock()
    saved = engine._clock, engine._wall
    engine._clock, engine._wall = clock.now, clock.wall
    try:
        return replay_journal(engine, clock, directory, from_seq)
    finally:
        engine._clock, engine._wall = saved


@dataclass(slots=True)
class Durability:
    """The running server's journal, tap, checkpoints and the database's applied seq."""

    journal: Journal
    tap: JournalTap
    checkpoints: Path
    engine: Engine
    read_applied: Callable[[], Awaitable[int]]
    snapshot_interval: float
    snapshot_bytes: int
    applied_seq: int = 0
    checkpoint_seq: int = 0
    _checkpoint_at: float = field(default_factory=time.monotonic)
    _checkpoint_bytes: int = 0  # journal.bytes_appended when the last checkpoint was taken
    _task: asyncio.Task[None] | None = None
    feeder: object | None = None  # the FeederProcess (stats, tests), None for a task or none
    hurry: Callable[[], None] | None = None  # lifts the feeder's deferral (feeder_defer) a moment
    # The barrier's one poller: while any barrier waits it reads journal_applied every
    # APPLIED_POLL and pulses _advanced when it moved (waiters share the reads, so a hundred
    # admin RPCs waiting are one query every 10 ms, not a hundred).
    _waiting: int = 0
    _poller: asyncio.Task[None] | None = None
    _advanced: asyncio.Event | None = None
    reads: int = 0  # journal_applied reads the barrier's poller made (tests count them)

    # ------------------------------------------------------------------ barrier

    async def barrier(self, timeout: float) -> bool:
        """True once PostgreSQL holds every change journaled before this call; False after
        ``timeout`` (the change is journaled, only not yet in the database)."""
        target = self.journal.last_seq
        if self.applied_seq >= target:
            return True
        deadline = time.monotonic() + timeout
        self._waiting += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll_applied(), name="riskd-barrier-poll")
            while self.applied_seq < target:
                advanced = self._advanced
                if advanced is None:
                    advanced = self._advanced = asyncio.Event()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(advanced.wait(), left)
            return True
        finally:
            self._waiting -= 1

    async def _poll_applied(self) -> None:
        """Read journal_applied every APPLIED_POLL while a barrier waits (hurrying the feeder every
        HURRY_EVERY, as it may defer), waking the waiters when it moved; ends when none waits."""
        hurried = 0.0
        woken = self.applied_seq  # the waiters have been woken for this much
        while self._waiting:
            now = time.monotonic()
            if self.hurry is not None and now - hurried >= HURRY_EVERY:
                self.hurry()
                hurried = now
            await asyncio.sleep(APPLIED_POLL)
            self.reads += 1
            with contextlib.suppress(Exception):  # the database is away: the waiters time out
                self.applied_seq = max(self.applied_seq, await self.read_applied())
            # (housekeeping may have moved applied_seq too: compared with what was woken for)
            if self.applied_seq > woken and self._advanced is not None:
                woken = self.applied_seq
                advanced, self._advanced = self._advanced, None
                advanced.set()

    # ------------------------------------------------------------------ checkpoints and pruning

    def start(self) -> None:
        self._task = asyncio.create_task(self._housekeeping(), name="riskd-checkpoints")

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING)
            try:
                with contextlib.suppress(Exception):
                    self.applied_seq = max(self.applied_seq, await self.read_applied())
                if self._due():
                    await self.checkpoint()
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # housekeeping must never stop: the next round retries
                log.exception("checkpoint or journal pruning failed")

    def _due(self) -> bool:
        if self.journal.last_seq <= self.checkpoint_seq:
            return False
        return (
            time.monotonic() - self._checkpoint_at >= self.snapshot_interval
            or self.journal.bytes_appended - self._checkpoint_bytes >= self.snapshot_bytes
        )

    async def checkpoint(self) -> Path | None:
        """Capture the engine now (on the loop) and write it in a worker thread."""
        seq = self.journal.last_seq
        if seq <= self.checkpoint_seq:
            return None
        started = time.perf_counter()
        captured = cp.capture(self.engine, seq)
        captured_in = time.perf_counter() - started
        path = await asyncio.to_thread(cp.write, captured, self.checkpoints)
        await asyncio.to_thread(cp.prune, self.checkpoints)
        self.checkpoint_seq = seq
        self._checkpoint_at = time.monotonic()
        self._checkpoint_bytes = self.journal.bytes_appended
        log.info(
            "checkpoint at seq %d: captured in %.1f ms on the event loop, written in %.2fs (%s)",
            seq,
            captured_in * 1e3,
            time.perf_counter() - started,
            path.name,
        )
        return path

    async def prune(self) -> int:
        """Delete the segments nothing needs any more (below the checkpoint and the database), in a
        worker thread: unlinking a 64 MiB segment blocked the event loop for up to tens of ms, and
        a catch-up frees dozens at once (a 275 ms stall was measured)."""
        upto = min(self.checkpoint_seq, self.applied_seq)
        old = self.journal.prunable(upto)
        if not old:
            return 0
        deleted, error = await asyncio.to_thread(delete_segments, old)
        self.journal.pruned(deleted)
        if deleted:
            first = self.journal.stats().first_seq
            await asyncio.to_thread(limitfiles.prune, self.journal.directory, first)
            log.info("pruned %d journal segment(s) up to seq %d", len(deleted), upto)
        if error is not None:
            raise error
        return len(deleted)

    async def stop(self) -> None:
        """At a graceful stop, after the last RPC: a final checkpoint, then close the journal."""
        for task in (self._task, self._poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._poller = None
        try:
            await self.checkpoint()
        except Exception:
            log.exception("final checkpoint failed (the next start replays the journal instead)")
        await asyncio.to_thread(self.journal.close)


def journal_of(settings: Settings) -> Journal:
    """The server's journal under DATA_DIR/journal, sized and synced by the settings (not opened)."""
    return Journal(
        data_path(settings) / "journal",
        segment_bytes=settings.journal_segment_bytes,
        max_bytes=settings.journal_max_bytes,
        fsync=settings.journal_fsync,
        fsync_interval=settings.journal_fsync_interval_ms / 1000.0,
    )


def _renumbered(settings: Settings, journal: Journal, next_seq: int) -> Journal:
    """A journal holding nothing the state and PostgreSQL lack, emptied and reopened at next_seq."""
    journal.close()
    for _, path in segments(journal.directory):
        path.unlink()
    limitfiles.prune(journal.directory, next_seq, pending=True)
    fresh = journal_of(settings)
    fresh.open(start_seq=next_seq)
    log.info("journal renumbered: it continues at seq %d (what it held is in PostgreSQL)", next_seq)
    return fresh


def data_path(settings: Settings) -> Path:
    return Path(settings.data_dir).expanduser().resolve()


def checkpoints_of(settings: Settings) -> Path:
    return data_path(settings) / "checkpoints"


def load_checkpoint(settings: Settings, engine: Engine) -> int | None:
    """The newest usable checkpoint into a freshly built engine (worker thread, right after
    Engine(): it adopts the checkpoint's id-hash salt, see engine.checkpoint); its seq or None."""
    return cp.load_latest(checkpoints_of(settings), engine)


async def open_durable(
    settings: Settings,
    engine: Engine,
    checkpoint_seq: int | None,
    recover_database: Callable[[], Awaitable[None]],
    read_applied: Callable[[], Awaitable[int]],
    on_fill: Callable[[str], None] | None = None,
) -> tuple[Durability, Recovered]:
    """Recover the engine (the checkpoint load_checkpoint restored, else the database; then the
    journal after it) and open the journal for appending; RecoveryError when they do not fit
    together (see the module doc)."""
    started = time.perf_counter()
    journal = journal_of(settings)
    checkpoints = checkpoints_of(settings)
    applied = await read_applied()
    base = checkpoint_seq
    source = "checkpoint"
    if base is None:
        await recover_database()
        source, base = "database", applied
    try:
        opened = await asyncio.to_thread(journal.open, max(base, applied) + 1, settings.journal_repair)
    except JournalDamage as exc:
        raise RecoveryError(
            f"{exc}; start with --journal-repair to cut the journal there (the records after it are lost)"
        ) from None
    if opened.lost_records:
        log.error("journal repaired: %d record(s) after the damage are lost", opened.lost_records)
    first = journal.stats().first_seq
    empty = journal.last_seq < first
    problem = ""
    if source == "checkpoint" and applied > base and (empty or first > base + 1):
        problem = (
            f"the database is at journal seq {applied}, past the newest checkpoint's {base}, and the journal "
            f"no longer holds the records between them: remove {checkpoints} to recover from the database"
        )
    elif not empty and first > base + 1:
        problem = (
            f"the journal starts at seq {first} but the {source} reflects seq {base}: the records between "
            "them are missing (was the journal folder replaced or a checkpoint copied in?)"
        )
    elif empty or journal.last_seq <= min(base, applied):
        if journal.next_seq != max(base, applied) + 1:
            # Everything the journal holds is in the state and in PostgreSQL (a repair cut it, or a
            # new journal on an old database): number on after them, or the feeder, waiting for
            # journal_applied + 1, would never see what comes next.
            journal = await asyncio.to_thread(_renumbered, settings, journal, max(base, applied) + 1)
    elif journal.last_seq < base:
        problem = (
            f"the journal ends at seq {journal.last_seq} but the checkpoint reflects seq {base} and PostgreSQL "
            f"only {applied}: PostgreSQL cannot be fed the records between them"
        )
    if problem:
        journal.close()
        raise RecoveryError(problem)
    last = await asyncio.to_thread(replay_into, engine, journal.directory, base + 1)
    await asyncio.to_thread(cp.BUFFERS.prepare, engine)  # the first capture then pays no first touch
    limitfiles.prune(journal.directory, first, pending=True)
    tap = JournalTap(journal, on_fill=on_fill)
    durability = Durability(
        journal,
        tap,
        checkpoints,
        engine,
        read_applied,
        settings.snapshot_interval,
        settings.snapshot_journal_bytes,
        applied_seq=applied,
        checkpoint_seq=base if source == "checkpoint" else 0,
    )
    recovered = Recovered(source, base, max(0, last - base), time.perf_counter() - started)
    log.info(
        "recovered from the %s at seq %d and %d journal record(s) in %.2fs; journal continues at seq %d",
        recovered.source,
        recovered.base_seq,
        recovered.replayed,
        recovered.seconds,
        journal.next_seq,
    )
    return durability, recovered
