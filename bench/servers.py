"""Start a bench server (echo or real) in its own process and find its port."""

from __future__ import annotations

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
