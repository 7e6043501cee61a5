"""`riskd serve --alert-relays N`: the server starts N `riskd relay` processes and keeps them up.

Each relay (alerts.relay) holds one SubscribeAlerts stream to this server and serves
SubscribeAlerts to its own subscribers; all N listen on one port (SO_REUSEPORT), so the kernel
spreads dashboards over them and over the machine's cores, and the server's event loop writes each
alert N times instead of once per dashboard. A relay that dies is started again (after a pause
that doubles up to a minute while it keeps dying); at shutdown they get SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass, field

from .relay import BANNER

log = logging.getLogger("riskd.relays")

START_TIMEOUT = 60.0
RESTART_FIRST = 1.0
RESTART_MAX = 60.0


class RelayStartError(RuntimeError):
    """A relay did not come up (its port in use, say)."""


def relay_listen(listen: str, server_listen: str) -> str:
    """The relays' address: as set, else the server's host with its port + 1 (0 stays 0: a free one)."""
    if listen:
        return listen
    host, _, port = server_listen.rpartition(":")
    return f"{host}:{int(port) + 1 if port.isdigit() and int(port) else 0}"


def loopback_target(server_listen: str, port: int) -> str:
    """Where a relay on this machine reaches the server (a wildcard address is not a destination)."""
    host = server_listen.rpartition(":")[0]
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


@dataclass(slots=True)
class RelayProcesses:
    """The relays a server runs: the port they share and their processes."""

    target: str
    listen: str
    count: int
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    _procs: list[asyncio.subprocess.Process | None] = field(default_factory=list)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: bool = False
    restarts: int = 0

    async def start(self) -> int:
        """Start them (the first picks the port when it is 0; the rest join it); returns the port."""
        try:
            self._procs.append(await self._spawn(self.listen))
            for _ in range(1, self.count):
                self._procs.append(await self._spawn(self._shared()))
        except BaseException:
            await self.stop()
            raise
        for i in range(self.count):
            self._watchers.append(asyncio.create_task(self._watch(i), name=f"relay-{i}"))
        return self.port

    def _shared(self) -> str:
        return f"{self.listen.rpartition(':')[0]}:{self.port}"

    async def _spawn(self, listen: str) -> asyncio.subprocess.Process:
        cmd = [
            sys.executable,
            "-m",
            "riskd_server.alerts.relay",
            "--target",
            self.target,
            "--listen",
            listen,
            *self.extra_args,
        ]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        text = line.decode(errors="replace").strip()
        if not text.startswith(BANNER):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RelayStartError(
                f"alert relay on {listen} did not start (exit {proc.returncode}; see its log above)"
            )
        port = int(text[len(BANNER) :].split()[0].rpartition(":")[2])
        if not self.port:
            self.port = port
        log.info("alert relay pid %d serving on port %d", proc.pid, port)
        return proc

    async def _watch(self, i: int) -> None:
        pause = RESTART_FIRST
        while True:
            proc = self._procs[i]
            assert proc is not None
            code = await proc.wait()
            if self._stopping:
                return
            log.error("alert relay pid %d exited with %s; starting another in %.0f s", proc.pid, code, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX)
            try:
                self._procs[i] = await self._spawn(self._shared())
                self.restarts += 1
            except (RelayStartError, OSError) as exc:
                log.error("%s", exc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None and p.returncode is None]

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        procs = [p for p in self._procs if p is not None and p.returncode is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
