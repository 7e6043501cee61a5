"""Where numba keeps the compiled kernels: a folder named by a hash of every numba source.

numba checks a cached function against its own file's timestamp only. A kernel that inlines or
calls a helper from another module (``checks.check_batch`` inlines ``exposure.dd_add``) keeps its
stale machine code when only the helper's file changes: after a ``git pull`` that touched the
helper, the old arithmetic would silently run on. So all of riskd's numba code caches into one
folder named by a hash of the sources of every module compiled code can come from (all of
``kernel/``, whose ``layout`` constants are folded into the machine code, and any module importing
numba), of numba's, llvmlite's and
Python's versions and of the flags that change the generated code (``NUMBA_BOUNDSCHECK``); any
change starts a fresh folder, and older folders beside it with the same flags are removed but for
the newest one (the cache is bounded: two generations per set of flags, so a process still running
the previous sources keeps its folder, and ``make test-boundscheck`` keeps its own).

The folder is ``riskd_server/__pycache__/numba-<hash>`` when the package folder is writable (an
editable install, ``make venv`` fills it), else ``$XDG_CACHE_HOME/riskd`` (``~/.cache/riskd``). A
``NUMBA_CACHE_DIR`` set by the user is kept as the parent folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
_GENERATION = re.compile("numba-(boundscheck-)?[0-9a-f]{16}")
KEEP = 2  # generations kept per flag set: this one and the one before it


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


_JIT_PACKAGES = ("kernel", "wire")  # every module in them may be compiled into machine code
_USES_NUMBA = re.compile(rb"^\s*(from|import) (numba|llvmlite)\b", re.MULTILINE)


def _numba_sources() -> list[Path]:
    """Every module compiled code may come from, in a stable order: all of kernel/ and wire/
    (layout's constants are folded into the machine code of the kernels that import them) and
    every other module that imports numba or llvmlite."""
    return [
        path
        for path in sorted(_ROOT.rglob("*.py"))
        if "__pycache__" not in path.parts
        and (path.parent.name in _JIT_PACKAGES or _USES_NUMBA.search(path.read_bytes()))
    ]


def cache_key() -> str:
    import llvmlite
    import numba

    digest = hashlib.sha256()
    digest.update(f"{numba.__version__} {llvmlite.__version__} {sys.version}".encode())
    digest.update(f"boundscheck={os.environ.get('NUMBA_BOUNDSCHECK', '')}".encode())
    for path in _numba_sources():
        digest.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _parent() -> Path:
    user = os.environ.get("NUMBA_CACHE_DIR")
    if user:
        # A generation folder is one a parent riskd process chose (tests start servers, the
        # servers inherit the variable): its parent is the parent, not a folder to nest in.
        return Path(user).parent if _GENERATION.fullmatch(Path(user).name) else Path(user)
    in_tree = _ROOT / "__pycache__"
    if _writable(in_tree):
        return in_tree
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "riskd"


_configured: list[Path] = []  # the folder chosen by this process (configure is idempotent)


def configure() -> Path:
    """Point numba's cache at this source generation's folder (before any kernel is decorated)."""
    from numba.core import config

    if _configured:
        return _configured[0]
    parent = _parent()
    prefix = "numba-boundscheck-" if os.environ.get("NUMBA_BOUNDSCHECK", "") not in ("", "0") else "numba-"
    folder = parent / (prefix + cache_key())
    if _writable(folder):
        folder.touch()  # newest generation by mtime
        generation = re.compile(re.escape(prefix) + "[0-9a-f]{16}")
        others = [p for p in parent.iterdir() if p != folder and generation.fullmatch(p.name) and p.is_dir()]
        others.sort(key=_mtime, reverse=True)
        for old in others[KEEP - 1 :]:  # a process still running older sources keeps its folder
            shutil.rmtree(old, ignore_errors=True)
    os.environ["NUMBA_CACHE_DIR"] = str(folder)  # numba re-reads its config from the environment
    config.CACHE_DIR = str(folder)
    _configured.append(folder)
    return folder
