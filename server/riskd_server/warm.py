"""Kernel warm-up: compile (or load from numba's cache) every kernel before the first RPC, and say so
when it compiles.

numba compiles a kernel on its first call, about a minute for all of them on a 2-core machine, and
caches the machine code beside the kernel sources (``__pycache__``; ``NUMBA_CACHE_DIR`` moves it).
``make venv`` runs ``python -m riskd_server.warm`` after installing, so the first start of a fresh
clone loads every kernel in about a second. A start that does compile (an install that skipped the
warm step, a changed kernel, another CPU) logs it through :class:`CompileLog`, so a slow start is
never a silent one.

numba drops a cached kernel when its own source file changes, but not when a file it calls into or
takes constants from changes (checked with numba 0.68: a kernel calling a changed helper in another
file kept returning the old result). Here that would be a kernel indexing the state with
``kernel/layout.py``'s old column numbers. :func:`refresh_cache` therefore fingerprints each kernel
module with the package modules it imports, transitively, and drops that module's cached kernels
when the fingerprint moves.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import logging
import sys
import time
from pathlib import Path
from types import TracebackType

from numba.core import event
from numba.core.dispatcher import Dispatcher

log = logging.getLogger("riskd.warm")
PACKAGE = "riskd_server"
_refreshed: set[str] = set()  # modules refresh_cache checked in this process
# The modules whose warm_up functions together call every kernel the server runs.
WARM_MODULES = ("riskd_server.servicer", "riskd_server.store._copybin", "riskd_server.engine")


def dispatchers(package: str = PACKAGE) -> list[Dispatcher]:
    """Every numba function with an on-disk cache defined in one of package's loaded modules."""
    found: dict[int, Dispatcher] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == package or name.startswith(package + ".")):
            continue
        for value in vars(module).values():
            if (
                isinstance(value, Dispatcher)
                and value.py_func.__module__ == name
                and value.stats.cache_path is not None
            ):
                found[id(value)] = value
    return list(found.values())


def _imports(module: str, path: Path, package: str) -> set[str]:
    """The package's modules that module imports (``from .layout import X``, ``from . import x``)."""
    parent = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), parent)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        out.update(n for n in names if n.split(".")[0] == package and _is_module(n))
    return out


def _is_module(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # e.g. "pkg.layout.C_BOOKS": a name, not a submodule
        return False


def kernel_sources(module: str, package: str = PACKAGE) -> dict[str, Path]:
    """The source files of module and of every package module it imports, transitively: whatever
    numba may have compiled into module's kernels (callees, folded constants) lives in one of them."""
    todo, files = [module], {}
    while todo:
        name = todo.pop()
        spec = None if name in files else importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        files[name] = Path(spec.origin)
        todo.extend(_imports(name, files[name], package) - files.keys())
    return files


def fingerprint(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return digest.hexdigest()


def refresh_cache(package: str = PACKAGE) -> list[str]:
    """Empty the cache of every kernel module whose sources (its own or an imported module's) changed
    since its cache was written; returns those modules. Call it before the process's first kernel
    call (start-up, tests): a kernel already loaded keeps running its loaded code. Each module is
    checked once per process."""
    if package == PACKAGE:
        for name in WARM_MODULES:  # every kernel module the server uses, loaded to be found
            importlib.import_module(name)
    by_module: dict[str, list[Dispatcher]] = {}
    for d in dispatchers(package):
        if d.py_func.__module__ not in _refreshed:
            by_module.setdefault(d.py_func.__module__, []).append(d)
    dropped = []
    for module, kernels in sorted(by_module.items()):
        _refreshed.add(module)
        try:
            digest = fingerprint(kernel_sources(module, package))
        except (OSError, SyntaxError, ValueError) as exc:  # sources not readable: leave it to numba
            log.warning("cannot fingerprint the sources of %s: %s", module, exc)
            continue
        stamp = Path(kernels[0].stats.cache_path) / f"{module}.sha256"  # one cache folder per source file
        try:
            previous = stamp.read_text().strip()
        except OSError:
            previous = ""  # no cache yet, or one from before stamps: nothing says it is current
        if previous == digest:
            continue
        for d in kernels:
            d._cache.flush()  # numba's "remove all entries": an empty index, so the next call compiles
        if previous:
            dropped.append(module)
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(digest + "\n")
        except OSError as exc:  # a read-only cache folder: numba does not save there either
            log.debug("cannot write %s: %s", stamp, exc)
    if dropped:
        log.info("kernel sources changed, cached kernels dropped: %s", ", ".join(dropped))
    return dropped


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
    """Compile or load every kernel the server calls (servicer codecs, the COPY layout, the engine);
    returns the seconds taken."""
    started = time.perf_counter()
    refresh_cache()
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
