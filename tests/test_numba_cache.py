"""The kernel cache folder is keyed by every numba source (riskd_server._numba_cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from riskd_server import _numba_cache


def test_every_numba_module_is_part_of_the_key() -> None:
    names = {p.relative_to(_numba_cache._ROOT).as_posix() for p in _numba_cache._numba_sources()}
    # A caller's cache must go stale when a module it inlines from changes (checks <- exposure).
    assert {
        "kernel/checks.py",
        "kernel/exposure.py",
        "kernel/executions.py",
        "kernel/layout.py",
        "store/_copybin.py",
    } <= names
    assert "servicer.py" not in names  # no numba there: editing it keeps the compiled kernels


def _configure(parent: Path, **env: str) -> str:
    code = "from riskd_server import _numba_cache; print(_numba_cache.configure())"
    environ = {k: v for k, v in os.environ.items() if "NUMBA" not in k}
    environ |= {"NUMBA_CACHE_DIR": str(parent), **env}
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_two_generations_per_flag_set_are_kept(tmp_path: Path) -> None:
    stale = tmp_path / "numba-0123456789abcdef"
    previous = tmp_path / "numba-1123456789abcdef"
    stale_checked = tmp_path / "numba-boundscheck-0123456789abcdef"
    mine = tmp_path / "numba-notmine"
    for age, folder in enumerate((stale, stale_checked, previous, mine)):
        folder.mkdir()
        os.utime(folder, (1_000_000 + age, 1_000_000 + age))
    current = Path(_configure(tmp_path))
    assert current.parent == tmp_path and current.name.startswith("numba-") and current.is_dir()
    assert previous.exists() and not stale.exists()  # the newest older generation stays
    assert stale_checked.exists() and mine.exists()
    checked = Path(_configure(tmp_path, NUMBA_BOUNDSCHECK="1"))
    assert checked.name.startswith("numba-boundscheck-") and stale_checked.exists()
    assert current.exists()  # the unchecked generations stay
    # A child of a riskd process inherits its folder and uses it, instead of nesting a new one.
    inherited = {"NUMBA_CACHE_DIR": str(current)}
    code = "from riskd_server import _numba_cache; print(_numba_cache.configure())"
    environ = {k: v for k, v in os.environ.items() if "NUMBA" not in k} | inherited
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(current)
