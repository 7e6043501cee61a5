"""Start a bench server (echo or real) in its own process and find its port."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
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
    name: str, data_dir: Path, args: list[str] | None = None, timeout: float = 300.0
) -> ServerProcess:
    """Run ``riskd serve --listen 127.0.0.1:0 --data-dir DATA_DIR ARGS`` (embedded PostgreSQL under
    DATA_DIR unless ARGS hold --dsn) and wait for its ``riskd serving on HOST:PORT`` line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / f"{name}.log"
    cmd = [*riskd_command(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *(args or [])]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + timeout
    while reader.is_alive() and time.monotonic() < deadline and proc.poll() is None:
        reader.join(0.1)
    first = line[0].strip() if line else ""
    if not first.startswith("riskd serving on "):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        tail = log_path.read_text()[-2_000:]
        raise RuntimeError(f"{name}: riskd serve did not start (stdout {first!r}); stderr tail:\n{tail}")
    return ServerProcess(name, proc, first.rsplit(" ", 1)[1], " ".join(cmd[1:]), log_path)


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
