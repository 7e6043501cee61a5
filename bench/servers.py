"""Start a bench server (echo or real) in its own process and find its port."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass(slots=True)
class ServerProcess:
    name: str
    proc: subprocess.Popen
    target: str  # 127.0.0.1:PORT
    banner: str
    log_path: Path
    lines: list[str] = field(default_factory=list)  # stdout lines up to the banner

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: the server stops gracefully
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def alive(self) -> bool:
        return self.proc.poll() is None


def spawn_server(
    name: str, module: str, args: list[str] | None = None, timeout: float = 180.0
) -> ServerProcess:
    """Run ``python -m module --listen 127.0.0.1:0 ARGS`` and wait for its ``listening HOST:PORT`` line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / f"{name}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--listen", "127.0.0.1:0", *(args or [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    log.close()
    line: list[str] = []

    def read_first_line() -> None:
        assert proc.stdout is not None
        line.append(proc.stdout.readline())

    reader = threading.Thread(target=read_first_line, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while reader.is_alive() and time.monotonic() < deadline and proc.poll() is None:
        reader.join(0.1)
    first = line[0].strip() if line else ""
    if not first.startswith("listening "):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        tail = log_path.read_text()[-2_000:]
        raise RuntimeError(f"{name} server did not start (stdout {first!r}); stderr tail:\n{tail}")
    _, target, *banner = first.split(" ")
    return ServerProcess(name, proc, target, " ".join(banner), log_path)


def riskd_command() -> list[str]:
    """`riskd` as installed next to this interpreter (the console script a user runs)."""
    riskd = Path(sys.executable).with_name("riskd")
    return [str(riskd) if riskd.exists() else shutil.which("riskd") or "riskd"]


def spawn_riskd(
    name: str,
    data_dir: Path,
    args: list[str] | None = None,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Run ``riskd serve --listen 127.0.0.1:0 --data-dir DATA_DIR ARGS`` (embedded PostgreSQL under
    DATA_DIR unless ARGS hold --dsn) and wait for its ``riskd serving on HOST:PORT`` line; what it
    prints on stdout (``riskd metrics on URL`` …) keeps landing in ``lines``. ``env`` is added to
    this process's environment (RISKD_* settings)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / f"{name}.log"
    cmd = [*riskd_command(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *(args or [])]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, **env} if env else None,
        )
    lines: list[str] = []
    serving = threading.Event()

    def read_stdout() -> None:  # to the end: lines after the banner (metrics URL) land in ``lines``
        assert proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # stop() closes the pipe
            for line in proc.stdout:
                lines.append(line.strip())
                if line.startswith("riskd serving on "):
                    serving.set()

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not serving.is_set() and time.monotonic() < deadline and proc.poll() is None:
        serving.wait(0.1)
    last = next((x for x in lines if x.startswith("riskd serving on ")), "")
    if not last:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        tail = log_path.read_text()[-2_000:]
        raise RuntimeError(f"{name}: riskd serve did not start (stdout {lines!r}); stderr tail:\n{tail}")
    return ServerProcess(name, proc, last.rsplit(" ", 1)[1], " ".join(cmd[1:]), log_path, lines)


def rss_bytes(pid: int) -> int:
    """A process's resident set size now (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
