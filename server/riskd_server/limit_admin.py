"""Limit administration for the servicer: upserts and deletes serialised by an asyncio.Lock, with
the limit tables compiled in a worker thread off the event loop.

The engine stages (validates, interns) and installs on the event loop, synchronously; only the
compile, a pure function of the staged limits, runs in the thread. The lock keeps two admin calls
from staging against the same book, so the second's stage sees the first's install.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from . import changes as ch
from .engine import Engine
from .limits import Limit


class LimitAdmin:
    """UpsertLimits and DeleteLimits over an Engine (one per servicer)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()

    async def upsert(self, limits: Sequence[Limit]) -> int:
        """Engine.upsert_limits, compiling in a worker thread; returns the new limits version."""
        eng = self._engine
        async with self._lock:
            merged, version = eng.stage_upsert(limits)
            book = await asyncio.to_thread(eng.compile_limits, merged, version)
            return eng.install_limits(book, ch.LimitsChanged(tuple(limits), ()))

    async def delete(self, limit_ids: Iterable[str]) -> tuple[int, list[str], int]:
        """Engine.delete_limits, compiling in a worker thread: (deleted, not found, version)."""
        eng = self._engine
        async with self._lock:
            merged, deleted, missing = eng.stage_delete(limit_ids)
            if not deleted:
                return 0, missing, eng.limits.version
            book = await asyncio.to_thread(eng.compile_limits, merged, eng.limits.version + 1)
            return len(deleted), missing, eng.install_limits(book, ch.LimitsChanged((), tuple(deleted)))
