"""The write-behind queue: the engine's ChangeSink, flushed to PostgreSQL by one background task.

``put`` is synchronous and never blocks, so the engine can emit changes from inside its
run-to-completion methods. Every ``flush_interval`` the task takes the queue (up to
``max_flush_rows``), coalesces it and writes it in one transaction through a circuit breaker and
a timeout. A failed batch goes back to the front of the queue and is retried with backoff: it is
never dropped, so a long outage ends in backpressure (``has_room`` false), not in lost state.
A commit whose outcome is unknown (timeout during COMMIT) is retried too: state rows are upserts
and come out the same, audit rows may then appear twice (at-least-once).

A batch PostgreSQL refuses for its data (``_errors.is_data_error``) would fail forever, so it is
resolved instead: cut in halves (``_split``), each written in its own transaction, a refused half
cut again, until each refused row is alone; that row goes to the dead letter (``_deadletter``)
and everything else is written. One step (one transaction) per turn of the flush task, so the
event loop runs between steps; a transient failure mid-way retries the current part with backoff
and loses nothing. The batch counts as committed (barrier, backlog) once every part is written
or dead-lettered.

**Journal marks** (the feeder, store.feeder): ``mark_applied(seq)`` after the changes of journal
record ``seq`` were put. A flush transaction then also sets ``journal_applied`` to the last mark its
batch holds, and a batch ends only at a mark (past ``max_flush_rows`` if it must), so a record's
rows are never split over two transactions: after a crash of either side the feeder resumes at
journal_applied + 1 and every record's rows land exactly once. ``applied_seq`` (what the database
held when the feeder started) makes each flush check that journal_applied still holds what this
writer last wrote: a second writer fails the check and this one stops (``failed``) instead of
writing rows twice; a flush whose COMMIT outcome was lost and which did commit is recognised by
its own mark already being there. A refused batch is resolved in several transactions (above):
only the one that completes it sets journal_applied, so a crash in the middle of resolving leaves
the earlier parts written and the batch's records applied again after the restart (their state
rows are upserts and come out the same; their audit rows, and rows dead-lettered, appear twice).
Without marks (the server's alert write-behind) nothing of this applies.

**The next flush is prepared while one writes** when the queue holds more than ``_THREAD_ROWS``
rows (a backlog: the feeder catching up): its batch is taken, coalesced, given its closed_seq
values and encoded into COPY streams in a task, so PostgreSQL goes from one flush's COMMIT to the
next flush's COPY without waiting for the client. It is written only after the flush before it
committed; when that one fails, the prepared batch goes back to the queue behind it and is
prepared again later (its closed_seq values become a gap), so close order and the one-flush-at-a-
time order of commits are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
from aiobreaker import CircuitBreaker
from psycopg_pool import AsyncConnectionPool

from .. import changes as ch
from . import _copybin, _deadletter, _split, _write
from ._coalesce import Coalesced, change_rows, coalesce
from ._deadletter import DeadLetterFile, DeadRow
from ._errors import describe, is_data_error, needs_operator, sqlstate
from ._write import AlreadyApplied, AppliedConflict

log = logging.getLogger("riskd.store")
_monotonic = time.monotonic

# Flushes at least this big (an import) are logged with their time.
_BIG_FLUSH = 100_000
# Coalesce in a worker thread above this many rows, so a big flush does not stall the event loop.
_THREAD_ROWS = 2_000
# Seconds a flush is allowed per row on top of write_timeout (measured ~50 us per limit row with
# its history on a busy 2-core machine; twice that).
ROW_ALLOWANCE = 1e-4
# Where refused rows go when the dead_letter table refuses them too (the default data_dir's).
DEFAULT_DEAD_LETTER_FILE = Path(".riskd") / "dead-letter.jsonl"
_NO_ORDER = "no such order: its insert was refused or lost, so this update was not applied"


class _Item(NamedTuple):
    seq: int  # put order, 1-based
    change: ch.Change | None  # None: a journal mark
    rows: int
    put_at: float  # time.monotonic() when queued (the backlog's age, for metrics)
    mark: int = 0  # the journal seq whose changes all precede this item (0: a change, not a mark)


@dataclass(slots=True)
class _Next:
    """The batch after the one being written, taken from the queue and being prepared (see the
    module docstring); in flight, not queued."""

    batch: list[_Item]
    rows: int
    task: asyncio.Task[Coalesced]


def _retrieve(task: asyncio.Task) -> None:
    """A dropped preparation's outcome is not needed: read it so asyncio does not log it."""
    if not task.cancelled():
        task.exception()


def _last_mark(batch: list[_Item]) -> int:
    for item in reversed(batch):
        if item.mark:
            return item.mark
    return 0


def _changes(batch: list[_Item]) -> list[ch.Change]:
    return [item.change for item in batch if item.change is not None]


@dataclass(frozen=True, slots=True)
class WriteBehindStats:
    pending_rows: int  # queued plus being written
    pending_changes: int
    flushed_rows: int
    flushed_changes: int
    flushes: int
    failures: int
    consecutive_failures: int
    breaker_state: str  # "closed", "open" or "half_open"
    last_flush_seconds: float
    last_error: str
    dead_letter_rows: int = 0  # rows refused by the database: dead_letter table, file or log
    dead_letter_file_rows: int = 0  # of which the dead_letter table refused too (in the file)
    resolving: bool = False  # a refused batch is being cut down to its refused rows
    oldest_pending_seconds: float = 0.0  # age of the oldest change not yet committed (0: none)
    max_pending_rows: int = 0  # the backlog bound (has_room is false past it)
    applied_seq: int = 0  # the last journal mark committed (0: none)


@dataclass(slots=True)
class _Resolving:
    """A refused batch being written part by part (front part first)."""

    batch: list[_Item]
    rows: int
    started: float
    parts: deque[tuple[Coalesced, Exception | None]] = field(default_factory=deque)  # error: known refused
    transactions: int = 0
    dead: int = 0
    mark: int = 0  # the batch's journal mark: set by the transaction that completes the batch


class WriteBehind:
    """Bounded, ordered, coalescing write-behind of engine changes (see the module docstring)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        max_pending_rows: int,
        flush_interval: float = 0.05,
        write_timeout: float = 10.0,
        max_flush_rows: int = 50_000,  # one flush blocks the event loop ~10 ms at most (bench.store_bench)
        fail_max: int = 5,
        reset_timeout: float = 5.0,
        max_backoff: float = 1.0,
        dead_letter_path: Path | str | None = None,
        dead_letter_max_bytes: int = _deadletter.DEFAULT_MAX_BYTES,
        dead_letter_backups: int = _deadletter.DEFAULT_BACKUPS,
        limit_history: int = 20,
        applied_seq: int | None = None,
        admit_when_empty: bool = False,
    ) -> None:
        if max_pending_rows < 1 or flush_interval <= 0 or write_timeout <= 0 or max_flush_rows < 1:
            raise ValueError("max_pending_rows, flush_interval, write_timeout and max_flush_rows must be > 0")
        self._pool = pool
        self._history_keep = limit_history  # versions kept per limit (limit_history table)
        self._max_pending = max_pending_rows
        self._interval = flush_interval
        self._write_timeout = write_timeout
        self._max_flush_rows = max_flush_rows
        self._max_backoff = max(max_backoff, flush_interval)
        self._applied = applied_seq  # journal_applied as this writer last wrote (or found) it
        # The feeder's: an empty backlog takes one change of any size (a journaled import past
        # max_pending_rows was acknowledged already; refusing it would stop the feed for good).
        self._admit_when_empty = admit_when_empty
        self._marked = False  # mark_applied was called: batches end at marks
        self._tail_waiting = False  # the queue holds only changes of a record not marked yet
        self._failed_for: Exception | None = None
        # A refused row proves the database is up: data errors do not count toward opening.
        self._breaker = CircuitBreaker(
            fail_max=fail_max,
            timeout_duration=timedelta(seconds=reset_timeout),
            exclude=[is_data_error, AlreadyApplied, AppliedConflict],
            name="riskd.store",
        )
        path = Path(dead_letter_path or DEFAULT_DEAD_LETTER_FILE).expanduser().resolve()
        self._dead_file = DeadLetterFile(path, max_bytes=dead_letter_max_bytes, backups=dead_letter_backups)
        self._resolving: _Resolving | None = None
        self._dead_rows = 0
        self._dead_file_rows = 0
        self._queue: deque[_Item] = deque()
        self._pending_rows = 0  # queued + in flight
        self._inflight_rows = 0  # the batch being written and the next one being prepared
        self._inflight_at = 0.0  # put_at of the in-flight batch's first change
        self._next: _Next | None = None
        self._dropped: set[asyncio.Task] = set()  # preparations of a batch that went back to the queue
        self._put_seq = 0
        self._committed_seq = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._flushed_rows = 0
        self._flushed_changes = 0
        self._flushes = 0
        self._failures = 0
        self._consecutive = 0
        self._last_flush_seconds = 0.0
        self._last_error = ""

    # ------------------------------------------------------------------ ChangeSink (synchronous)

    def has_room(self, rows: int = 0) -> bool:
        """True when ``rows`` more rows fit under max_pending_rows (the engine asks before mutating),
        or, with admit_when_empty, when nothing is pending."""
        return self._pending_rows + rows <= self._max_pending or (
            self._admit_when_empty and self._pending_rows == 0
        )

    def put(self, change: ch.Change) -> None:
        """Queue a change; never blocks, never refuses.

        The bound is enforced by ``has_room`` before the engine mutates its state; by the time
        ``put`` runs the change has happened, so refusing it would only lose it. The backlog can
        therefore overshoot the bound by one request's rows.
        """
        rows = change_rows(change)
        self._put_seq += 1
        self._queue.append(_Item(self._put_seq, change, rows, _monotonic()))
        self._pending_rows += rows

    def mark_applied(self, seq: int) -> None:
        """Journal record ``seq``'s changes are all put: a flush may end here and set journal_applied."""
        self._put_seq += 1
        self._queue.append(_Item(self._put_seq, None, 0, _monotonic(), seq))
        self._marked = True

    @property
    def failed(self) -> Exception | None:
        """Why the flush task stopped for good (AppliedConflict), or None."""
        return self._failed_for

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._task is None:
            # Compile (or load) the jitted COPY layout now, not inside the first flush.
            await asyncio.to_thread(_copybin.warm_up)
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="riskd-write-behind")

    async def stop(self, timeout: float) -> None:
        """Flush everything queued, then end the task; after ``timeout`` give up and log what is lost."""
        task = self._task
        if task is None:
            if self._queue:
                log.error("write-behind never started; %d rows not written", self._pending_rows)
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.error(
                "write-behind stopped after %.1fs with %d rows (%d changes) not written: %s",
                timeout,
                self._pending_rows,
                self.stats().pending_changes,
                self._last_error or "timeout",
            )
        finally:
            self._task = None
            if self._dropped:  # their closed_seqs calls: let them end before the pool closes
                await asyncio.wait(set(self._dropped), timeout=self._write_timeout)

    async def barrier(self, timeout: float) -> None:
        """Return once every change put before this call is committed; TimeoutError otherwise."""
        target = self._put_seq
        if self._committed_seq >= target:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        self._wake.set()  # flush now rather than at the next tick
        try:
            async with asyncio.timeout(timeout):
                await fut
        finally:
            self._waiters = [(t, f) for t, f in self._waiters if not f.done()]

    def oldest_pending_seconds(self) -> float:
        """Age of the oldest change not yet committed (in flight, being resolved or queued); 0 when
        there is none. The queue is FIFO and a failed batch goes back to its front, so the oldest
        is the first item in flight, else the queue's head."""
        if self._resolving is not None:
            oldest = self._resolving.batch[0].put_at
        elif self._inflight_at:
            oldest = self._inflight_at
        elif self._queue:
            oldest = self._queue[0].put_at
        else:
            return 0.0
        return max(0.0, _monotonic() - oldest)

    def stats(self) -> WriteBehindStats:
        return WriteBehindStats(
            pending_rows=self._pending_rows,
            pending_changes=len(self._queue) + (len(self._resolving.batch) if self._resolving else 0),
            flushed_rows=self._flushed_rows,
            flushed_changes=self._flushed_changes,
            flushes=self._flushes,
            failures=self._failures,
            consecutive_failures=self._consecutive,
            breaker_state=self._breaker.current_state.name.lower(),
            last_flush_seconds=self._last_flush_seconds,
            last_error=self._last_error,
            dead_letter_rows=self._dead_rows,
            dead_letter_file_rows=self._dead_file_rows,
            resolving=self._resolving is not None,
            oldest_pending_seconds=self.oldest_pending_seconds(),
            max_pending_rows=self._max_pending,
            applied_seq=self._applied or 0,
        )

    # ------------------------------------------------------------------ the flush task

    async def _run(self) -> None:
        while True:
            try:
                ok = await self._flush_once()
            except AppliedConflict as exc:
                self._failed_for = exc
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.error("write-behind stopped, %d rows not written: %s", self._pending_rows, exc)
                return
            queued = self._pending_rows - self._inflight_rows
            resolving = self._resolving is not None
            prepared = self._next is not None
            if (
                ok
                and self._stopping
                and (not self._queue or self._tail_waiting)
                and not resolving
                and not prepared
            ):
                if self._tail_waiting:
                    log.warning("stopping with the changes of a record not marked applied: not written")
                return
            busy = resolving or prepared or (queued >= self._max_flush_rows and not self._tail_waiting)
            if ok and ((self._stopping and not self._tail_waiting) or busy):
                continue  # draining a backlog or resolving a refused batch: no pause between steps
            if ok and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._wake.wait()
                self._wake.clear()
            else:  # failing: back off, and do not let barrier() hammer a database that is down
                await asyncio.sleep(min(self._interval * 2**self._consecutive, self._max_backoff))

    async def _flush_once(self) -> bool:
        """Write one batch from the front of the queue, or take one step resolving a refused batch.

        False on failure: the batch goes back to the queue (or the refused batch keeps its part).
        """
        if self._resolving is not None:
            return await self._resolve_step(self._resolving)
        nxt, self._next = self._next, None
        if nxt is not None:  # taken and prepared while the last flush wrote
            batch, rows = nxt.batch, nxt.rows
        else:
            if not self._queue:
                return True
            batch, rows = self._take_batch()
            if not batch:
                return True
            self._inflight_rows = rows
        mark = _last_mark(batch)
        self._inflight_at = batch[0].put_at
        started = time.perf_counter()
        data: Coalesced | None = None
        try:
            if nxt is not None:
                data = await nxt.task
            else:
                changes = _changes(batch)
                data = (
                    await asyncio.to_thread(coalesce, changes) if rows > _THREAD_ROWS else coalesce(changes)
                )
            self._prepare_next()
            missing = await self._breaker.call_async(self._write, data, mark)
        except AlreadyApplied:
            log.warning("flush up to journal seq %d had committed before its outcome was lost", mark)
            self._committed(batch, rows, started)
            return True
        except AppliedConflict:
            self._requeue(batch)
            raise
        except BaseException as exc:
            if data is not None and isinstance(exc, Exception) and is_data_error(exc):
                self._requeue([])  # the prepared next batch waits until this one is resolved
                self._resolve(batch, rows, started, data, exc)
                return True
            self._requeue(batch)
            if not isinstance(exc, Exception):
                raise  # cancelled: the batch stays queued for whoever looks next
            self._failed(exc, rows)
            return False
        if missing:
            await self._dead_letter(missing)
        self._committed(batch, rows, started)
        return True

    def _prepare_next(self) -> None:
        """With a backlog, take the next batch now and prepare it in a task while this flush writes
        (see the module docstring); small flushes stay one step at a time."""
        if self._pending_rows - self._inflight_rows <= _THREAD_ROWS:
            return
        batch, rows = self._take_batch()
        if not batch:
            return
        self._inflight_rows += rows
        task = asyncio.create_task(self._prepare(batch), name="riskd-write-behind-prepare")
        self._next = _Next(batch, rows, task)

    async def _prepare(self, batch: list[_Item]) -> Coalesced:
        """Coalesce, closed_seq values, COPY streams: everything a write does before its COPYs."""
        data = await asyncio.to_thread(coalesce, _changes(batch))
        seqs = np.empty(0, dtype=np.int64)
        if data.closes:
            seqs = await self._breaker.call_async(self._allocate_seqs, data.closes)
        data.seqs = seqs
        data.encoded = await asyncio.to_thread(_write.encode_all, data, seqs)
        return data

    def _requeue(self, batch: list[_Item]) -> None:
        """A flush did not commit: its batch goes back to the queue's front, with the prepared next
        one (if any) behind it, both to be taken and coalesced again."""
        nxt, self._next = self._next, None
        if nxt is not None:
            self._queue.extendleft(reversed(nxt.batch))
            self._inflight_rows -= nxt.rows
            self._dropped.add(nxt.task)
            nxt.task.add_done_callback(self._dropped.discard)
            nxt.task.add_done_callback(_retrieve)
        if batch:
            self._queue.extendleft(reversed(batch))
            self._inflight_rows = 0
            self._inflight_at = 0.0

    def _take_batch(self) -> tuple[list[_Item], int]:
        """The next batch from the queue's front: up to max_flush_rows, and with marks in use on to
        the next mark (a record's rows never split); the unmarked tail stays queued."""
        batch: list[_Item] = []
        rows = 0
        queue = self._queue
        while queue and (not batch or rows + queue[0].rows <= self._max_flush_rows):
            item = queue.popleft()
            batch.append(item)
            rows += item.rows
        if self._marked and not batch[-1].mark:
            while queue and not batch[-1].mark:  # on to the record's end
                item = queue.popleft()
                batch.append(item)
                rows += item.rows
            while batch and not batch[-1].mark:  # a record still being put: leave it queued
                item = batch.pop()
                queue.appendleft(item)
                rows -= item.rows
        self._tail_waiting = not batch and bool(queue)
        return batch, rows

    def _committed(self, batch: list[_Item], rows: int, started: float) -> None:
        nxt = self._next
        self._inflight_rows = nxt.rows if nxt is not None else 0
        self._inflight_at = nxt.batch[0].put_at if nxt is not None else 0.0
        self._pending_rows -= rows
        self._committed_seq = batch[-1].seq
        mark = _last_mark(batch)
        if mark:
            self._applied = mark
        self._flushes += 1
        self._flushed_rows += rows
        self._flushed_changes += sum(1 for item in batch if item.change is not None)
        self._last_flush_seconds = time.perf_counter() - started
        if rows >= _BIG_FLUSH:
            log.info("flushed %d rows (%d changes) in %.1fs", rows, len(batch), self._last_flush_seconds)
        if self._consecutive:
            log.info("flushing again after %d failed attempts", self._consecutive)
            self._consecutive = 0
        self._release_waiters()

    async def _write(self, data: Coalesced, mark: int = 0) -> list[DeadRow]:
        """Write ``data`` in one transaction, with journal_applied = ``mark`` when one is given;
        returns the order updates that found no order."""
        applied = (mark, self._applied) if mark else None
        if not data and applied is None:
            return []
        # A flush of a million rows (an import) takes a minute, not db_timeout: allow for its size.
        timeout = self._write_timeout + _split.size(data) * ROW_ALLOWANCE
        async with asyncio.timeout(timeout), self._pool.connection(self._write_timeout) as conn:
            missing = await _write.write(conn, data, self._history_keep, applied)
        if missing is None:
            return []
        return [
            DeadRow(*_split.update_row(data, int(i)), None, _NO_ORDER) for i in missing.nonzero()[0].tolist()
        ]

    # ------------------------------------------------------------------ a refused batch

    def _resolve(
        self, batch: list[_Item], rows: int, started: float, data: Coalesced, exc: Exception
    ) -> None:
        """Start resolving a refused batch: it stays in flight, cut down part by part."""
        self._resolving = _Resolving(batch, rows, started, deque([(data, exc)]), mark=_last_mark(batch))
        self._inflight_rows = rows
        log.error(
            "flush of %d rows refused by the database (%s); cutting it down to the refused rows",
            _split.size(data),
            describe(exc),
        )

    async def _resolve_step(self, res: _Resolving) -> bool:
        """One step: cut the refused front part, dead-letter it if it is one row, or write it (the
        last part together with the batch's journal mark; when the last part was dead-lettered,
        the mark is written alone)."""
        if not res.parts:
            try:
                await self._breaker.call_async(self._write, Coalesced(), res.mark)
            except AlreadyApplied:
                pass
            except AppliedConflict:
                raise
            except Exception as exc:
                self._failed(exc, res.rows)
                return False
            res.mark = 0
        elif res.parts[0][1] is not None and _split.size(res.parts[0][0]) == 1:
            part, refused = res.parts.popleft()
            assert refused is not None
            await self._dead_letter([DeadRow(*_split.only_row(part), sqlstate(refused), describe(refused))])
            res.dead += 1
        elif res.parts[0][1] is not None:
            part = res.parts[0][0]
            if part.seqs is None and part.closes:
                # Fix the closed_seq values once, so every part keeps the batch's close order.
                try:
                    part.seqs = await self._breaker.call_async(self._allocate_seqs, part.closes)
                except Exception as exc:
                    self._failed(exc, res.rows)
                    return False
            n = _split.size(part)
            left, right = (
                await asyncio.to_thread(_split.halves, part) if n > _THREAD_ROWS else _split.halves(part)
            )
            res.parts.popleft()
            res.parts.extendleft([(right, None), (left, None)])
        else:
            part = res.parts[0][0]
            res.transactions += 1
            last = len(res.parts) == 1
            try:
                missing = await self._breaker.call_async(self._write, part, res.mark if last else 0)
            except AlreadyApplied:
                missing = []
            except AppliedConflict:
                raise
            except Exception as exc:
                if not is_data_error(exc):
                    self._failed(exc, res.rows)
                    return False
                res.parts[0] = (part, exc)
                return True
            res.parts.popleft()
            if last:
                res.mark = 0
            if missing:
                await self._dead_letter(missing)
        if not res.parts and not res.mark:
            self._resolving = None
            log.error(
                "refused flush of %d rows resolved in %d transactions and %.3fs: %d rows dead-lettered",
                res.rows,
                res.transactions,
                time.perf_counter() - res.started,
                res.dead,
            )
            self._committed(res.batch, res.rows, res.started)
        return True

    async def _allocate_seqs(self, count: int) -> np.ndarray:
        async with asyncio.timeout(self._write_timeout), self._pool.connection(self._write_timeout) as conn:
            return await _write.closed_seqs(conn, count)

    async def _dead_letter(self, rows: list[DeadRow]) -> None:
        """Record refused rows: the dead_letter table, else the file, and always the log at ERROR.

        Never raises and never waits for a database that is down: a refused row must not block the
        rows behind it.
        """
        self._dead_rows += len(rows)
        for r in rows:
            log.error("dead letter: %s %s refused (%s): %s", r.action, r.table, r.error, r.row_json())
        try:
            async with (
                asyncio.timeout(self._write_timeout),
                self._pool.connection(self._write_timeout) as conn,
            ):
                await _deadletter.insert(conn, rows)
            return
        except Exception as exc:
            why = describe(exc)
        log.error(
            "dead_letter table refused %d rows (%s); appending them to %s",
            len(rows),
            why,
            self._dead_file.path,
        )
        try:
            await asyncio.to_thread(self._dead_file.append, rows, why)
        except OSError as exc:
            log.error(
                "cannot write %s (%s): the rows above are recorded only in this log",
                self._dead_file.path,
                exc,
            )
            return
        self._dead_file_rows += len(rows)

    def _failed(self, exc: Exception, rows: int) -> None:
        self._failures += 1
        self._consecutive += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        level = logging.WARNING if self._consecutive == 1 or self._consecutive % 10 == 0 else logging.DEBUG
        if needs_operator(exc) and level == logging.WARNING:
            level = logging.ERROR  # the schema or the privileges are wrong: retrying will not end it
        log.log(
            level,
            "flush of %d rows failed (attempt %d, breaker %s, %d rows pending): %s",
            rows,
            self._consecutive,
            self._breaker.current_state.name.lower(),
            self._pending_rows,
            self._last_error,
        )

    def _release_waiters(self) -> None:
        done = self._committed_seq
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for target, fut in self._waiters:
            if fut.done():
                continue
            if target <= done:
                fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters = keep
