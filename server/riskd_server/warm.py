"""Kernel warm-up: compile (or load from numba's cache) every kernel before the first RPC, and say so
when it compiles.

numba compiles a kernel on its first call, about a minute for all of them on a 2-core machine, and
caches the machine code beside the kernel sources (``__pycache__``; ``NUMBA_CACHE_DIR`` moves it).
``make venv`` runs ``python -m riskd_server.warm`` after installing, so the first start of a fresh
clone loads every kernel in about a second. A start that does compile (an install that skipped the
warm step, a changed kernel, another CPU) logs it through :class:`CompileLog`, so a slow start is
never a silent one.

Which cache folder: riskd_server._numba_cache keys it by every kernel source, so a change in a
file a kernel imports (numba alone misses it) starts a fresh cache.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import time
from types import TracebackType

from numba.core import event

log = logging.getLogger("riskd.warm")
PACKAGE = "riskd_server"
# The modules whose warm_up functions together call every kernel the server runs.
WARM_MODULES = (
    "riskd_server.wire.encode",
    "riskd_server.store._copybin",
    "riskd_server.store._copyparse",
    "riskd_server.store._snapshot",
    "riskd_server.journal.syncer",
    "riskd_server.warm_engine",
)


class CompileLog(event.Listener):
    """Logs numba compilations while entered: a first line that says why start-up is slow, then one
    progress line per compiled kernel (its callees compile inside it). Nothing when every kernel
    loads from the cache: numba reports only real compilations (``numba:compile`` events)."""

    def __init__(
        self, logger: logging.Logger = log, intro: str = "compiling kernels, first start only"
    ) -> None:
        self._log = logger
        self._intro = intro
        self._depth = 0
        self._started = 0.0
        self._first = 0.0
        self._installed = False
        self.compiled = 0

    def on_start(self, ev: event.Event) -> None:
        # numba compiles under one global lock: events come from one thread at a time, nested.
        if self._depth == 0:
            self._started = time.perf_counter()
            if not self.compiled:
                self._first = self._started
                stats = getattr(ev.data["dispatcher"], "stats", None)
                where = getattr(stats, "cache_path", None) or "numba's cache"
                self._log.info("%s (about a minute; cached in %s for later starts)", self._intro, where)
        self._depth += 1

    def on_end(self, ev: event.Event) -> None:
        self._depth = max(self._depth - 1, 0)  # 0: installed while a compilation was under way
        if self._depth == 0:  # (not ev.is_failed: numba 0.68 inverts it; a failed compile raises anyway)
            self.compiled += 1
            took = time.perf_counter() - self._started
            self._log.info("compiled %d: %s (%.1f s)", self.compiled, _name(ev.data["dispatcher"]), took)

    def install(self) -> CompileLog:
        if not self._installed:
            event.register("numba:compile", self)
            self._installed = True
        return self

    def remove(self) -> None:
        """Stop listening (idempotent); logs a summary when anything compiled."""
        if self._installed:
            event.unregister("numba:compile", self)
            self._installed = False
            if self.compiled:
                took = time.perf_counter() - self._first
                self._log.info("compiled %d kernels in %.1f s", self.compiled, took)

    def __enter__(self) -> CompileLog:
        return self.install()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()


def _name(dispatcher: object) -> str:
    """``checks.check_batch``: module (last part) and qualified name of a compiled function."""
    func = getattr(dispatcher, "py_func", None)
    if func is None:
        return repr(dispatcher)
    return f"{func.__module__.rpartition('.')[2]}.{func.__qualname__}"


def warm_up() -> float:
    """Compile or load every kernel the server calls (reply codecs, the COPY layout, the engine);
    returns the seconds taken."""
    started = time.perf_counter()
    for name in WARM_MODULES:
        importlib.import_module(name).warm_up()
    return time.perf_counter() - started


def main() -> int:
    """``python -m riskd_server.warm``: build the kernel cache (``make venv`` runs it)."""
    logging.basicConfig(level=logging.INFO, format="riskd warm: %(message)s")
    with CompileLog(intro="compiling kernels into numba's cache, once"):
        seconds = warm_up()
    log.info("kernels ready in %.1f s", seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
