"""The model holder: builds the risk model off the event loop and swaps it into the engine whole.

Builds happen at start (in the background: SERVING does not wait; until the first model exists
MAX_VAR has none), every ``refresh`` seconds (0: never on a timer) and on RefreshRiskModel. The
returns are read through the store's pool (awaited I/O, parsed in a worker thread) and the model
is computed in a worker thread (numpy BLAS releases the GIL); the swap itself is one assignment
on the event loop (Engine.set_risk_model), so every check sees either the old or the new model.

Concurrent refreshes coalesce: a caller waits for the first build that *started* after it asked
(a build already running may predate its import), and every caller waiting behind a running
build shares the one build that follows it. A failed build is logged and the old model stays.
A build whose version equals the model in force (same data, same parameters) is not swapped in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .build import BuildParams, ReturnsWindow, build_model
from .model import RiskModel
from .var_tables import FactorForm, VarModelTooLarge, factor_form

log = logging.getLogger("riskd.risk")

ReadReturns = Callable[[int], Awaitable[ReturnsWindow]]


class NoReturns(RuntimeError):
    """No returns are stored: nothing to build a model from."""


class ModelBuildError(RuntimeError):
    """A build failed (the model in force, if any, stays)."""


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The outcome of a refresh: the model in force and what its build took."""

    model: RiskModel
    build_seconds: float
    swapped: bool  # False: the build equalled the model in force


class RiskModelService:
    """Owns building and swapping; ``start()`` launches the timer, ``stop()`` ends it."""

    def __init__(
        self,
        read_returns: ReadReturns,
        install: Callable[[RiskModel, FactorForm | None], None],
        params: BuildParams,
        *,
        refresh: float = 0.0,
        current: Callable[[], RiskModel | None] = lambda: None,
    ) -> None:
        self._read = read_returns
        self._install = install
        self._current = current
        self.params = params
        self.refresh_interval = refresh
        self._lock = asyncio.Lock()
        self._asked = 0  # refresh requests so far
        self._served = 0  # requests covered by the last finished build
        self._outcome: Refreshed | BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self.builds = 0
        self.failures = 0

    def start(self) -> None:
        """Build now and then every refresh_interval, in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="riskd-risk-model")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except NoReturns:
                log.info("no returns stored yet: no risk model (import some with `riskd returns import`)")
            except ModelBuildError:
                pass  # logged where it failed
            if self.refresh_interval <= 0:
                return
            await asyncio.sleep(self.refresh_interval)

    async def refresh(self) -> Refreshed:
        """Build from the returns stored now and swap the result in; raises NoReturns or
        ModelBuildError (then the old model stays)."""
        self._asked += 1
        ticket = self._asked
        async with self._lock:
            if self._served < ticket:  # no build started after this request yet: run one
                self._served = self._asked
                build = asyncio.ensure_future(self._build())
                try:
                    self._outcome = await asyncio.shield(build)
                except asyncio.CancelledError:  # the caller went away: the build still counts
                    with contextlib.suppress(Exception):
                        await asyncio.wait([build])
                    self._outcome = build.result() if not build.cancelled() else self._outcome
                    raise
            outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome

    async def _build(self) -> Refreshed | BaseException:
        start = time.perf_counter()
        try:
            window = await self._read(self.params.window)
            if not window.symbols:
                return NoReturns("no returns stored")
            model = await asyncio.to_thread(build_model, window, self.params)
            # The kernel's factor form (a pivoted Cholesky for a sample model: ~0.5 s at 5,000
            # symbols) in the worker thread too, so installing it on the loop takes milliseconds.
            form = await asyncio.to_thread(factor_form, model)
        except Exception as exc:
            self.failures += 1
            log.exception("risk model build failed; keeping the model in force")
            return ModelBuildError(f"risk model build failed: {type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - start
        self.builds += 1
        current = self._current()
        if current is not None and current.version == model.version:
            log.info("risk model unchanged (%s); rebuilt in %.3fs", model.version, seconds)
            return Refreshed(current, seconds, False)
        try:
            self._install(model, form)
        except VarModelTooLarge as exc:
            self.failures += 1
            log.error("risk model %s not installed: %s; keeping the model in force", model.version, exc)
            return ModelBuildError(f"risk model not installed: {exc}")
        s = model.summary
        log.info(
            "risk model %s in force: %d symbols (%d defaulted), %d days, %d factors, %.1f MB, built in %.3fs",
            model.version,
            s.symbols,
            len(s.defaulted_symbols),
            s.days,
            s.factors,
            s.memory_bytes / 1e6,
            seconds,
        )
        return Refreshed(model, seconds, True)
