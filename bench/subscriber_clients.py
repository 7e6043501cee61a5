"""Alert subscribers in their own processes: thousands of SubscribeAlerts streams each, over a few
channels, recording for every marked alert the delay from when it was raised to its arrival.

A marked alert carries ``client_order_id`` = ``MARK_PREFIX`` + the round number; its delay is the
wall clock at arrival minus ``Alert.time`` (both ``time.time()`` on this machine, so one clock).
Responses are read as raw bytes, stamped first, then decoded.

Each process opens its streams in waves (``wave`` calls, then waits for each one's initial
metadata: riskd's hub and the holder send it once the subscriber is registered), so the server's
core never sees more new calls at once than its ``max_pending_requests``; a call refused anyway
(CANCELLED / UNAVAILABLE / RESOURCE_EXHAUSTED) is retried in a later wave and counted.

The parent (``SubscriberPool``) drives the processes through queues: ``ready`` once every stream
is open, ``got`` when a round's marked alert reached all of a process's streams, ``stats`` on
demand, and ``result`` (the delays) when told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import queue
import resource
import sys
import threading
import time
from dataclasses import dataclass, field

import grpc
import numpy as np

from riskd.v1 import risk_pb2 as pb

from .echo_server import run_loop

SUBSCRIBE = "/riskd.v1.RiskService/SubscribeAlerts"
MARK_PREFIX = "sbmark-"
RETRYABLE = {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    target: str
    streams: int  # in this process
    channels: int = 4
    wave: int = 250  # new calls in flight at once, per process
    attempts: int = 20  # per stream, before it counts as failed
    request: bytes = b""  # a serialised SubscribeAlertsRequest (b"": any alert)
    uvloop: bool = True


def raise_fd_limit() -> tuple[int, int]:
    """RLIMIT_NOFILE up to its hard limit (each channel is one socket, but be generous)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


@dataclass(slots=True)
class _State:
    open: int = 0
    refused: int = 0  # refused attempts (retried)
    failed: int = 0  # streams never opened
    ended: int = 0  # streams the server ended (error or EOF) after they opened
    end_error: str = ""
    responses: int = 0
    alerts: int = 0
    dropped: int = 0  # the responses' ``dropped`` fields, summed
    delays: dict[int, list[float]] = field(default_factory=dict)  # round -> seconds


class _Worker:
    def __init__(self, cfg: ClientConfig, wid: int, out_q) -> None:
        self.cfg = cfg
        self.wid = wid
        self.out_q = out_q
        self.st = _State()
        self.calls: list[grpc.aio.UnaryStreamCall] = []
        self.readers: set[asyncio.Task[None]] = set()

    async def _open_one(self, method) -> grpc.aio.UnaryStreamCall | None:
        call = method(self.cfg.request)
        await call.initial_metadata()
        if call.done():  # refused before it was registered
            code = await call.code()
            if code in RETRYABLE:
                self.st.refused += 1
                return None
            raise RuntimeError(f"SubscribeAlerts failed: {code.name}: {await call.details()}")
        return call

    async def _read(self, call: grpc.aio.UnaryStreamCall) -> None:
        st = self.st
        delays = st.delays
        try:
            while True:
                raw = await call.read()
                now = time.time()
                if raw is grpc.aio.EOF:
                    st.ended += 1
                    return
                msg = pb.SubscribeAlertsResponse.FromString(raw)
                st.responses += 1
                st.alerts += len(msg.alerts)
                st.dropped += msg.dropped
                for alert in msg.alerts:
                    coid = alert.client_order_id
                    if coid.startswith(MARK_PREFIX):
                        r = int(coid[len(MARK_PREFIX) :])
                        got = delays.setdefault(r, [])
                        got.append(now - (alert.time.seconds + alert.time.nanos / 1e9))
                        if len(got) == st.open:  # this process's last stream to see the round
                            self.out_q.put(("got", self.wid, r, len(got), max(got)))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                st.ended += 1
                st.end_error = st.end_error or f"{exc.code().name}: {exc.details()}"

    async def open_all(self) -> None:
        opts = [
            ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        self.channels = [
            grpc.aio.insecure_channel(self.cfg.target, options=opts) for _ in range(self.cfg.channels)
        ]
        for ch in self.channels:
            await asyncio.wait_for(ch.channel_ready(), timeout=30)
        methods = [ch.unary_stream(SUBSCRIBE) for ch in self.channels]
        tries: dict[int, int] = {}
        todo = list(range(self.cfg.streams))
        while todo:
            wave, todo = todo[: self.cfg.wave], todo[self.cfg.wave :]
            opened = await asyncio.gather(
                *(self._open_one(methods[i % len(methods)]) for i in wave), return_exceptions=True
            )
            for i, call in zip(wave, opened, strict=True):
                if isinstance(call, BaseException):
                    raise call
                if call is None:
                    tries[i] = tries.get(i, 0) + 1
                    if tries[i] >= self.cfg.attempts:
                        self.st.failed += 1
                    else:
                        todo.append(i)
                    continue
                self.calls.append(call)
                self.st.open += 1
                task = asyncio.create_task(self._read(call))
                self.readers.add(task)
            if any(c is None for c in opened):
                await asyncio.sleep(0.05)  # let the server's queue drain before the retries

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        if self.readers:
            await asyncio.wait(self.readers, timeout=30)
        for ch in self.channels:
            await ch.close()

    def stats(self) -> dict:
        st = self.st
        return {
            "wid": self.wid,
            "open": st.open,
            "refused": st.refused,
            "failed": st.failed,
            "ended": st.ended,
            "end_error": st.end_error,
            "responses": st.responses,
            "alerts": st.alerts,
            "dropped": st.dropped,
        }


async def _worker_main(cfg: ClientConfig, wid: int, cmd_q, out_q) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple] = asyncio.Queue()

    def pump() -> None:  # a blocking queue read, off the loop
        while True:
            cmd = cmd_q.get()
            loop.call_soon_threadsafe(commands.put_nowait, cmd)
            if cmd[0] == "stop":
                return

    threading.Thread(target=pump, daemon=True).start()
    worker = _Worker(cfg, wid, out_q)
    t0 = time.perf_counter()
    await worker.open_all()
    out_q.put(("ready", wid, worker.stats(), time.perf_counter() - t0))
    while True:
        cmd = await commands.get()
        if cmd[0] == "stats":
            out_q.put(("stats", wid, worker.stats()))
        elif cmd[0] == "stop":
            stats = worker.stats()
            delays = {r: np.asarray(d, dtype=np.float64) for r, d in worker.st.delays.items()}
            await worker.close()
            out_q.put(("result", wid, stats, delays))
            return


def _worker(cfg: ClientConfig, wid: int, cmd_q, out_q) -> None:
    raise_fd_limit()
    try:
        run_loop(_worker_main(cfg, wid, cmd_q, out_q), use_uvloop=cfg.uvloop)
    except BaseException as exc:
        out_q.put(("fatal", wid, repr(exc)))
        sys.exit(1)  # the parent reports it: no traceback per process


@dataclass(slots=True)
class Delays:
    """One server's delivery delays for the marked alerts, seconds."""

    per_round: dict[int, np.ndarray]
    expected: int  # streams open, i.e. deliveries expected per round


class SubscriberPool:
    """``procs`` subscriber processes holding ``total`` streams between them."""

    def __init__(
        self,
        target: str,
        total: int,
        procs: int,
        channels: int = 4,
        wave: int = 250,
        request: bytes = b"",
        uvloop: bool = True,
    ) -> None:
        procs = max(1, min(procs, total)) if total else 0
        ctx = mp.get_context("spawn")  # grpc and fork do not mix
        self.out_q = ctx.Queue()
        self.cmd_qs = [ctx.Queue() for _ in range(procs)]
        shares = [total // procs + (1 if i < total % procs else 0) for i in range(procs)] if procs else []
        self.procs = [
            ctx.Process(
                target=_worker,
                args=(
                    ClientConfig(
                        target=target,
                        streams=n,
                        channels=max(1, min(channels, n)),
                        wave=wave,
                        request=request,
                        uvloop=uvloop,
                    ),
                    wid,
                    self.cmd_qs[wid],
                    self.out_q,
                ),
                daemon=True,
            )
            for wid, n in enumerate(shares)
        ]
        self.total = total
        self.open_seconds = 0.0
        self.ready: list[dict] = []
        self._stashed: list[tuple] = []

    def _get(self, kind: str, timeout: float) -> tuple:
        """The next message of ``kind`` (others are kept for later); RuntimeError on a fatal one."""
        for i, msg in enumerate(self._stashed):
            if msg[0] == kind:
                return self._stashed.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind!r} message from the subscriber processes in {timeout:g} s")
            try:
                msg = self.out_q.get(timeout=min(left, 1.0))
            except queue.Empty:
                dead = [p.pid for p in self.procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise RuntimeError(f"subscriber process(es) {dead} died") from None
                continue
            if msg[0] == "fatal":
                raise RuntimeError(f"subscriber process {msg[1]} failed: {msg[2]}")
            if msg[0] == kind:
                return msg
            self._stashed.append(msg)

    def start(self, timeout: float = 600.0) -> dict:
        """Start the processes; return once every one holds its streams (totals of their stats)."""
        t0 = time.perf_counter()
        for p in self.procs:
            p.start()
        self.ready = [self._get("ready", timeout)[2] for _ in self.procs]
        self.open_seconds = time.perf_counter() - t0
        return self._sum(self.ready)

    @staticmethod
    def _sum(stats: list[dict]) -> dict:
        keys = ("open", "refused", "failed", "ended", "responses", "alerts", "dropped")
        out: dict = {k: sum(s[k] for s in stats) for k in keys}
        out["end_error"] = next((s["end_error"] for s in stats if s["end_error"]), "")
        return out

    @property
    def open(self) -> int:
        return sum(s["open"] for s in self.ready)

    def wait_round(self, r: int, timeout: float) -> bool:
        """True once every process has the round's marked alert on all its open streams."""
        waiting = {i for i, s in enumerate(self.ready) if s["open"]}
        deadline = time.monotonic() + timeout
        while waiting:
            try:
                msg = self._get("got", max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                return False
            if msg[2] == r:
                waiting.discard(msg[1])
        return True

    def stats(self, timeout: float = 60.0) -> dict:
        for q in self.cmd_qs:
            q.put(("stats",))
        return self._sum([self._get("stats", timeout)[2] for _ in self.procs])

    def stop(self, timeout: float = 120.0) -> tuple[dict, Delays]:
        """Cancel every stream, end the processes; (their stats, the delays by round)."""
        for q in self.cmd_qs:
            q.put(("stop",))
        stats, per_round = [], {}
        try:
            for _ in self.procs:
                _, _, st, delays = self._get("result", timeout)
                stats.append(st)
                for r, d in delays.items():
                    per_round.setdefault(r, []).append(d)
        finally:
            self.kill()
        merged = {r: np.concatenate(parts) for r, parts in sorted(per_round.items())}
        return self._sum(stats), Delays(merged, self.open)

    def kill(self, grace: float = 10.0) -> None:
        for p in self.procs:
            p.join(timeout=grace)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
