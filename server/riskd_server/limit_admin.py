"""Limit administration for the servicer: upserts, deletes, imports and templates serialised by an
asyncio.Lock, with the limit tables compiled in a worker thread off the event loop.

The engine stages (validates, interns) and installs on the event loop, synchronously; only the
compile, a pure function of the staged limits, runs in the thread. The lock keeps two admin calls
from staging against the same book, so the second's stage sees the first's install. Every change
carries who made it and how (``LimitsChanged.who``/``action``) for the limits' history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from . import changes as ch
from .engine import Engine
from .limit_io import Diff, Plan
from .limits import Limit

# Plans of at most this many upserts (and no deletes) take the upsert's path (engine.stage_upsert);
# bigger ones intern their distinct names and compile the plan's whole set.
SMALL_CHANGE = 10_000


class LimitAdmin:
    """UpsertLimits, DeleteLimits, ImportLimits and ApplyTemplate over an Engine (one per servicer)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()

    async def upsert(self, limits: Sequence[Limit], *, who: str = "", action: str = "upsert") -> int:
        """Engine.upsert_limits, compiling in a worker thread; returns the new limits version."""
        eng = self._engine
        async with self._lock:
            merged, version = eng.stage_upsert(limits)
            book = await asyncio.to_thread(eng.compile_limits, merged, version)
            change = ch.LimitsChanged(tuple(limits), (), version, who, action, time.time())
            return eng.install_limits(book, change)

    async def delete(
        self, limit_ids: Iterable[str], *, who: str = "", action: str = "delete"
    ) -> tuple[int, list[str], int]:
        """Engine.delete_limits, compiling in a worker thread: (deleted, not found, version)."""
        eng = self._engine
        async with self._lock:
            merged, deleted, missing = eng.stage_delete(limit_ids)
            if not deleted:
                return 0, missing, eng.limits.version
            version = eng.limits.version + 1
            book = await asyncio.to_thread(eng.compile_limits, merged, version)
            change = ch.LimitsChanged((), tuple(deleted), version, who, action, time.time())
            return len(deleted), missing, eng.install_limits(book, change)

    async def apply(
        self, plan_of: Callable[[Mapping[str, Limit]], Plan], *, who: str, action: str
    ) -> tuple[Diff, int]:
        """Plan against the set in force (in a thread), then install the plan's new set in one swap:
        (diff, limits version). A dry run or a plan that changes nothing installs nothing."""
        eng = self._engine
        async with self._lock:
            plan = await asyncio.to_thread(plan_of, eng.limits.limits)
            if plan.merged is None:
                return plan.diff, eng.limits.version
            if not plan.deleted and len(plan.upserted) <= SMALL_CHANGE:  # the upsert's path
                merged, version = eng.stage_upsert(plan.upserted)
                book = await asyncio.to_thread(eng.compile_limits, merged, version)
                change = ch.LimitsChanged(plan.upserted, (), version, who, action, time.time())
                return plan.diff, eng.install_limits(book, change)
            accounts, symbols = await asyncio.to_thread(_names, plan.upserted)
            eng.stage_names(accounts, symbols, len(plan.upserted) + len(plan.deleted))
            version = eng.limits.version + 1
            book = await asyncio.to_thread(eng.compile_limits, plan.merged, version)
            change = ch.LimitsChanged(plan.upserted, plan.deleted, version, who, action, time.time())
            return plan.diff, eng.install_limits(book, change)


def _names(limits: Iterable[Limit]) -> tuple[set[str], set[str]]:
    """Distinct accounts and symbols (interned on the event loop: a few thousand, not a million)."""
    limits = list(limits)
    return {lim.account for lim in limits}, {lim.symbol for lim in limits}
