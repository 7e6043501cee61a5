"""Limit administration for the servicer: upserts, deletes and dynamic-threshold refreshes
serialised by an asyncio.Lock, with the next limit book built in a worker thread off the event loop.

The engine stages (validates, interns) and installs on the event loop, synchronously; only the
build, a pure function of the current book and the change, runs in the thread. The lock keeps two
changes from building on the same book, so the second's build sees the first's install (a book's
row buffers are appended to by the version built from it: two builds from one book would collide). Imports and templates
install a planned change the same way; every change carries who made it and how
(``LimitsChanged.who``/``action``) for the limits' history.

A large change (``freeze_at`` limits or more: an import, a bulk upsert) pauses the cyclic garbage
collector while it plans and builds, and freezes (``gc.freeze``) what is alive once it is
installed: the new book's million ``Limit`` objects are long-lived, and a collection walking them
costs 25 ms per full pass on a quiet machine, 0.17 s on a busy one; a pass landing in the worker thread's build holds the GIL, so the event loop
stalls for it (measured: the two longest stalls of a 1 M-limit upsert, 0.27 and 0.42 s, were
collector passes). The price: cyclic garbage
made during the change (by anything the server does meanwhile) is frozen with it, never reclaimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

from . import changes as ch
from .engine import Engine
from .limit_io import Diff, Plan
from .limitbook import LimitBook, retire
from .limits import Limit

log = logging.getLogger("riskd.limits")
_INLINE_MAX = 256  # limits validated on the event loop; more are validated in the worker thread
FREEZE_AT = 50_000  # limits in one change from which the collector is paused, then the result frozen


class LimitAdmin:
    """UpsertLimits and DeleteLimits over an Engine (one per servicer), and the refresh of dynamic
    thresholds the engine asks for when prices, positions or the risk model move."""

    def __init__(self, engine: Engine, refresh_interval: float = 0.2, freeze_at: int = FREEZE_AT) -> None:
        self._engine = engine
        self._freeze_at = freeze_at
        self._lock = asyncio.Lock()
        self._interval = refresh_interval
        self._pending = False
        self._last_refresh = 0.0
        self._tasks: set[asyncio.Task] = set()
        engine.vol_listener = self.poke
        # Called with a change before it is installed (journal.tap.JournalTap.prepare: a large
        # change goes to a side file off the event loop); None without a journal.
        self.prepare: Callable[[ch.LimitsChanged], Awaitable[None]] | None = None

    async def upsert(self, limits: Sequence[Limit], *, who: str = "", action: str = "upsert") -> int:
        """Engine.upsert_limits, building in a worker thread; returns the new limits version."""
        eng = self._engine
        async with self._lock:
            with self._large(len(limits)):
                names = None
                if len(limits) > _INLINE_MAX:  # validating a million limits takes seconds: not on the loop
                    names = await asyncio.to_thread(eng.prepare_upsert, limits)
                version = eng.stage_upsert(limits, names)
                book, dynamic = await asyncio.to_thread(_build, eng, limits, (), version)
                change = ch.LimitsChanged(tuple(limits), (), version, who, action, time.time())
                version = await self._install(book, change)
        if dynamic:  # a new dynamic limit takes the vols of the last refresh: bring them up to date
            self.poke()
        return version

    async def delete(
        self, limit_ids: Iterable[str], *, who: str = "", action: str = "delete"
    ) -> tuple[int, list[str], int]:
        """Engine.delete_limits, building in a worker thread: (deleted, not found, version)."""
        eng = self._engine
        async with self._lock:
            deleted, missing = eng.stage_delete(limit_ids)
            if not deleted:
                return 0, missing, eng.limits.version
            book = await asyncio.to_thread(eng.build_limits, (), deleted, eng.limits.version + 1)
            change = ch.LimitsChanged((), tuple(deleted), eng.limits.version + 1, who, action, time.time())
            return len(deleted), missing, await self._install(book, change)

    async def apply(
        self, plan_of: Callable[[Mapping[str, Limit]], Plan], *, who: str, action: str, size: int = 0
    ) -> tuple[Diff, int]:
        """Plan against the set in force (in a thread), then install the plan's changes in one swap:
        (diff, limits version). A dry run or a plan that changes nothing installs nothing. size: the
        records planned (a large change pauses the collector, see the module doc)."""
        eng = self._engine
        async with self._lock:
            with self._large(size):
                plan = await asyncio.to_thread(plan_of, eng.limits.limits)
                if not plan.changes_anything:
                    return plan.diff, eng.limits.version
                accounts, symbols = await asyncio.to_thread(_names, plan.upserted)
                eng.stage_names(accounts, symbols, len(plan.upserted) + len(plan.deleted))
                version = eng.limits.version + 1
                book, dynamic = await asyncio.to_thread(_build, eng, plan.upserted, plan.deleted, version)
                change = ch.LimitsChanged(plan.upserted, plan.deleted, version, who, action, time.time())
                version = await self._install(book, change)
        if dynamic:
            self.poke()
        return plan.diff, version

    async def _install(self, book: LimitBook, change: ch.LimitsChanged) -> int:
        """Engine.install_limits; a replaced version that shares nothing with the new one (a
        recompile) is freed in a worker thread, a slice at a time (limitbook.retire)."""
        eng = self._engine
        if self.prepare is not None:
            await self.prepare(change)
        old = [eng.limits]
        version = eng.install_limits(book, change)
        if old[0].buffers is not book.buffers:
            await asyncio.to_thread(retire, old)
        return version

    @contextlib.contextmanager
    def _large(self, size: int) -> Iterator[None]:
        """For a change of freeze_at limits or more: the collector paused meanwhile, and what is
        alive afterwards (the new book) frozen out of its reach (see the module doc)."""
        if size < self._freeze_at or not gc.isenabled():
            yield
            return
        gc.disable()
        try:
            yield
        finally:
            gc.freeze()  # also resets the young generation's count: no collection of it follows
            gc.enable()

    # ------------------------------------------------------------------ dynamic thresholds

    def poke(self) -> None:
        """Volatilities or weights may have moved: schedule one refresh (at most one pending, at
        most one per refresh_interval). Does nothing without dynamic limits or a running loop."""
        if self._pending or not self._dynamic():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pending = True
        delay = max(0.0, self._last_refresh + self._interval - time.monotonic())
        loop.call_later(delay, self._start_refresh)

    def _dynamic(self) -> bool:
        return self._engine.limits.dynamic > 0

    def _start_refresh(self) -> None:
        task = asyncio.ensure_future(self.refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh(self) -> bool:
        """Recompute the dynamic thresholds in a worker thread and swap them in if any moved by
        more than the tolerance; True if a new version was installed."""
        eng = self._engine
        async with self._lock:
            self._pending = False
            self._last_refresh = time.monotonic()
            try:
                book = await asyncio.to_thread(eng.build_refresh)
            except Exception:  # a refresh must never take the server down; the next poke retries
                log.exception("dynamic limit refresh failed")
                return False
            return book is not None and eng.install_refresh(book)


def _build(
    eng: Engine, upserts: Sequence[Limit], deletes: Sequence[str], version: int
) -> tuple[LimitBook, bool]:
    """(the next book, whether the change adds or replaces a dynamic limit) in a worker thread."""
    book = eng.build_limits(upserts, deletes, version)
    return book, any(lim.reference_volatility > 0 for lim in upserts)


def _names(limits: Iterable[Limit]) -> tuple[set[str], set[str]]:
    """Distinct accounts and symbols (interned on the event loop: a few thousand, not a million)."""
    limits = list(limits)
    return {lim.account for lim in limits}, {lim.symbol for lim in limits}
