"""The `riskd feeder` process beside `riskd serve` (store.feeder): started, kept up, stopped.

Like the alert relays (alerts.relays): a feeder that dies is started again after a pause that
doubles up to a minute while it keeps dying (reset once one has run a minute); at shutdown it gets
SIGTERM (it finishes its current flush and exits), then SIGKILL after ``timeout``. Whatever it had
not flushed is applied again by the next one: journal_applied says where PostgreSQL is.
The DSN goes through the environment (RISKD_DSN), not the command line, so ``ps`` never shows a
password; the shared settings (store.feeder.SHARED_SETTINGS) go as flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from .feeder import SHARED_SETTINGS

log = logging.getLogger("riskd.feeder")

RESTART_FIRST = 1.0
RESTART_MAX = 60.0
HEALTHY_AFTER = 60.0  # a feeder that ran this long resets the pause


def feeder_command(settings: Settings, journal: Path, parent_pid: int) -> list[str]:
    """The feeder's command line: the shared settings as flags (the DSN is not one of them)."""
    cmd = [sys.executable, "-m", "riskd_server.store.feeder", "--journal-dir", str(journal)]
    cmd += ["--parent-pid", str(parent_pid)]
    for name in SHARED_SETTINGS:
        value, flag = getattr(settings, name), name.replace("_", "-")
        if isinstance(value, bool):  # argparse.BooleanOptionalAction: --flag / --no-flag
            cmd.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            cmd += [f"--{flag}", str(value)]
    return cmd


@dataclass(slots=True)
class FeederProcess:
    """One feeder for a server: ``await start()``, ``await stop()``."""

    settings: Settings
    journal: Path
    dsn: str  # the resolved DSN (the embedded cluster's when settings.dsn is empty)
    restarts: int = 0
    _proc: asyncio.subprocess.Process | None = None
    _watcher: asyncio.Task[None] | None = None
    _stopping: bool = False
    _started_at: float = 0.0
    exit_codes: list[int] = field(default_factory=list)

    async def start(self) -> None:
        self._stopping = False
        self._proc = await self._spawn()
        self._watcher = asyncio.create_task(self._watch(), name="riskd-feeder-watch")

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = {**os.environ, "RISKD_DSN": self.dsn}
        proc = await asyncio.create_subprocess_exec(
            *feeder_command(self.settings, self.journal, os.getpid()),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )
        self._started_at = time.monotonic()
        log.info("feeder pid %d started", proc.pid)
        return proc

    async def _watch(self) -> None:
        pause = RESTART_FIRST
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            if self._stopping:
                return
            self.exit_codes.append(code)
            if time.monotonic() - self._started_at >= HEALTHY_AFTER:
                pause = RESTART_FIRST
            log.error("feeder pid %d exited with %s; starting another in %.0f s", proc.pid, code, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX)
            try:
                self._proc = await self._spawn()
                self.restarts += 1
            except OSError as exc:
                log.error("cannot start the feeder: %s", exc)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the feeder flushes what it applied), SIGKILL after ``timeout``."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.error("feeder pid %d did not stop in %.0f s; killing it", proc.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
