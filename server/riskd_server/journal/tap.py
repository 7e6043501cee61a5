"""The server's side of the journal: room before an RPC changes the engine, one append after it.

The servicer asks ``require_room`` before it hands a request to the engine (a full journal refuses
the call with UNAVAILABLE and nothing changes), then appends the input record (journal.records)
before it replies, so every acknowledged change is in the page cache when the reply leaves: a
kill -9 of riskd loses nothing it acknowledged. The fsync policy (journal.writer) bounds what a
power loss can take.

An append that fails after the engine applied the change (disk error, disk full) leaves the state
ahead of the journal: the tap then refuses every further change until riskd is restarted (which
recovers the journal's state), and says so at CRITICAL. Fill past ``warn_fraction`` of
journal_max_bytes is logged at ERROR (and reported to ``on_fill``: the alert path) once per
crossing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from .. import changes as ch
from ..outcomes import Backpressure
from . import codec, limitfiles
from . import records as rec
from .writer import Journal, JournalFull

log = logging.getLogger("riskd.journal")

# Bytes kept free for the record of a request already admitted (a batch of max_batch orders and
# its reply is ~1 MB; a limits change of an import can be larger and is admitted by its own size).
RESERVE = 16 * 2**20


class JournalFailed(Backpressure):
    """The journal could not take a record: no change is accepted until riskd is restarted."""


class JournalTap:
    """Appends input records for the servicer and the engine's limit installs (see module doc)."""

    def __init__(
        self,
        journal: Journal,
        *,
        warn_fraction: float = 0.8,
        on_fill: Callable[[str], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self._warn_bytes = int((journal.max_bytes - RESERVE) * warn_fraction)  # of what is usable
        self._warned = False
        self._failed = ""
        self.on_fill = on_fill
        self._wall = wall
        self._prepared: tuple[ch.LimitsChanged, Path] | None = None  # prepare()'s side file

    # ------------------------------------------------------------------ before: room

    def require_room(self, nbytes: int = 0) -> None:
        """Backpressure (UNAVAILABLE) when the journal is broken or cannot take ``nbytes`` more."""
        if self._failed:
            raise JournalFailed(self._failed)
        j = self.journal
        if j.sync_error:
            self._fail(f"{j.sync_error}, so riskd refuses every change until it is restarted")
        used = j.bytes_used
        if used > self._warn_bytes:
            if not self._warned:
                self._warned = True
                message = (
                    f"journal {used / j.max_bytes:.0%} full ({used:,} of {j.max_bytes:,} bytes): "
                    "PostgreSQL is not keeping up or is down; changes are refused when it is full"
                )
                log.error("%s", message)
                if self.on_fill is not None:
                    self.on_fill(message)
        elif self._warned and used < self._warn_bytes * 0.9:
            self._warned = False
            log.info("journal back under %.0f%% full", 100 * self._warn_bytes / j.max_bytes)
        if used + nbytes + RESERVE > j.max_bytes:
            raise Backpressure(
                f"journal full: {used:,} of {j.max_bytes:,} bytes (journal_max_bytes); PostgreSQL is "
                "behind or down and no checkpoint let older segments go"
            )

    # ------------------------------------------------------------------ after: append

    def check(self, now: float, request: bytes, reply: bytes) -> int:
        """A checked request (batch or stream message) and its reply; returns the record's seq."""
        return self._append(rec.CHECK, rec.check_parts(now, self._wall(), request, reply))

    def input(self, type_: int, now: float, body: bytes) -> int:
        """Any other input record (journal.records' types) with its body."""
        return self._append(type_, rec.input_parts(now, self._wall(), body))

    async def prepare(self, change: ch.LimitsChanged) -> None:
        """Before a large change is installed (LimitAdmin): write it to a side file in a worker
        thread (journal.limitfiles), so the install's append is a small reference record and
        nothing of the size of the change is encoded on the event loop. Small changes: nothing."""
        if len(change.upserted) + len(change.deleted) <= limitfiles.INLINE_LIMITS:
            return
        self.require_room()
        path = await asyncio.to_thread(limitfiles.write_pending, self.journal.directory, change)
        self._prepared = (change, path)

    def limits(self, change: ch.LimitsChanged, version: int, now: float) -> int:
        """Engine.install_limits' hook: the change as installed (its version filled in when the
        caller left it 0), appended BEFORE the book is swapped in, so a refusal changes nothing."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] is change:
            self.require_room()
            name = limitfiles.commit(prepared[1], self.journal.next_seq)
            return self.input(rec.LIMITS_FILE, now, limitfiles.reference(name, change))
        if change.version != version:
            change = dataclasses.replace(change, version=version)
        _, payload = codec.encode(change)
        self.require_room(len(payload))
        return self.input(rec.LIMITS, now, payload)

    def _append(self, type_: int, parts: tuple[bytes, ...]) -> int:
        if self._failed:
            raise JournalFailed(self._failed)
        try:
            return self.journal.append_parts(type_, parts)
        except (JournalFull, OSError) as exc:
            self._fail(
                f"journal append failed ({exc}); the last change was applied but is not journaled, so "
                "riskd refuses every change until it is restarted",
                exc,
            )

    def _fail(self, why: str, cause: BaseException | None = None) -> NoReturn:
        """From now on every change is refused (UNAVAILABLE), said once at CRITICAL."""
        self._failed = why
        log.critical("%s", why)
        raise JournalFailed(why) from cause

    @property
    def failed(self) -> str:
        """Why the tap refuses everything ("" while healthy)."""
        return self._failed or self.journal.sync_error

    @property
    def last_seq(self) -> int:
        return self.journal.last_seq
