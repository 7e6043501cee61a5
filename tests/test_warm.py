"""Kernel warm-up: compilation is logged (and only then), and a kernel cache built from other
sources is dropped (riskd_server.warm)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fix_pg import run
from fix_server import server_settings
from numba import njit

from riskd_server import server as server_module
from riskd_server import warm

COMPILE_COPY_LAYOUT = """
import logging, sys
from riskd_server.store import _copybin
from riskd_server.warm import CompileLog
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
with CompileLog():
    _copybin.warm_up()
"""


def python(code: str, cwd: Path | None = None, **env: str) -> list[str]:
    """Run code in a fresh interpreter (nothing compiled in memory yet); its stdout lines."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={**os.environ, **env},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_compiling_is_logged_with_progress_and_a_cached_start_is_silent(tmp_path: Path) -> None:
    """One small kernel (the COPY layout, ~1 s) into an empty cache: the start-up lines; then again
    from the cache: not a word. (All kernels take a minute or two: too slow for a test.)"""
    cache = str(tmp_path / "numba-cache")
    lines = python(COMPILE_COPY_LAYOUT, NUMBA_CACHE_DIR=cache)
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"compiling kernels, first start only (about a minute; cached in {cache}")
    assert lines[1].startswith("compiled 1: _copybin._lay_out (") and lines[1].endswith(" s)")
    assert lines[2].startswith("compiled 1 kernels in ")
    assert python(COMPILE_COPY_LAYOUT, NUMBA_CACHE_DIR=cache) == []


def test_start_logs_a_compilation_until_warm(fresh_dsn: str, monkeypatch, caplog) -> None:
    """server.start listens from the first kernel call to the end of warm_up: a kernel compiled in
    warm_up (here a new function, as after a kernel change) is logged on riskd.server."""
    real_warm_up = server_module.warm_up

    @njit
    def changed_kernel(x: float) -> float:
        return x + 1.0

    def warm_up_compiling() -> float:
        seconds = real_warm_up()
        changed_kernel(1.0)
        return seconds

    monkeypatch.setattr(server_module, "warm_up", warm_up_compiling)
    caplog.set_level(logging.INFO, logger="riskd.server")

    async def start_stop() -> None:
        running = await server_module.start(server_settings(fresh_dsn))
        await running.stop()

    run(start_stop())
    lines = [r.getMessage() for r in caplog.records if r.name == "riskd.server"]
    compiling = [line for line in lines if line.startswith("compil")]
    assert compiling[0].startswith("compiling kernels, first start only (about a minute; cached in ")
    assert compiling[-2].startswith(
        f"compiled {len(compiling) - 2}: test_warm.{changed_kernel.py_func.__qualname__} ("
    )
    assert compiling[-1].startswith(f"compiled {len(compiling) - 2} kernels in ")
    assert lines.index(compiling[-1]) < next(i for i, line in enumerate(lines) if "kernels warm" in line)
    changed_kernel(1)  # a new signature, compiled after start-up: no longer logged
    assert len([r for r in caplog.records if r.getMessage().startswith("compil")]) == len(compiling)


def test_warm_main_builds_the_cache(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="riskd.warm")
    assert warm.main() == 0
    assert caplog.records[-1].getMessage().startswith("kernels ready in ")
