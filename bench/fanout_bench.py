"""SubscribeAlerts at scale: N streams held open, alerts fanned out, against a bare grpc.aio holder.

Two servers in turn, each in its own process on the event loop riskd uses (uvloop when
installed), with the clients in separate processes:

- ``riskd``: RiskServicer over an in-memory Engine with an AlertHub, registered exactly as
  ``riskd serve`` registers it (raw-bytes SubscribeAlerts through the StreamCloser);
- ``holder``: the floor, a server-streaming method that writes one prepared message to every
  open stream when told to (one shared future; no filters, queues or accounting).

For each: the server's RSS before and after the streams open (KB per stream), then ``--alerts``
alerts published ``--interval`` seconds apart; each client records when each message arrived,
and the delay is arrival minus the moment the server published (one machine, one clock). The
server also reports the time publish() took on its loop.

    python -m bench.fanout_bench --streams 10000 --clients 4 --alerts 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import grpc

from riskd_server.alerts.fanout import WAKE_SLICE

SUBSCRIBE = "/riskd.v1.RiskService/SubscribeAlerts"
SERVER_OPTIONS = [("grpc.server.max_pending_requests", 3_000), ("grpc.so_reuseport", 0)]


# ---------------------------------------------------------------------------------------- servers


def _loop_runner():
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run


class _Holder:
    """The floor: every stream waits on one future, then writes the one prepared message."""

    def __init__(self) -> None:
        self.generation: asyncio.Future[bytes] | None = None

    async def hold(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        await context.send_initial_metadata(())
        loop = asyncio.get_running_loop()
        while True:
            if self.generation is None:
                self.generation = loop.create_future()
            # shielded: a cancelled stream must not cancel the future every stream shares
            await context.write(await asyncio.shield(self.generation))

    def publish(self, message: bytes) -> None:
        if self.generation is not None:
            generation, self.generation = self.generation, None
            generation.set_result(message)


async def _serve(mode: str, wake_slice: int) -> None:
    from riskd.v1 import risk_pb2 as pb

    server = grpc.aio.server(options=SERVER_OPTIONS)
    seq = 0
    if mode == "riskd":
        from riskd_server.alerts.fanout import AlertHub
        from riskd_server.alerts.history import AlertHistory
        from riskd_server.alerts.model import Alert
        from riskd_server.engine import Engine
        from riskd_server.server import StreamCloser
        from riskd_server.servicer import RiskServicer, add_risk_service

        history = AlertHistory()
        hub = AlertHub(history, max_subscribers=100_000, wake_slice=wake_slice)
        add_risk_service(RiskServicer(Engine(), alert_hub=hub), StreamCloser().registrar(server))

        def publish() -> float:
            nonlocal seq
            seq += 1
            alert = Alert(
                seq=0,
                time=time.time(),
                severity=pb.SEVERITY_CRITICAL,
                kind=pb.ALERT_KIND_TRADING_STATE,
                account="ACC-0042",
                message="account ACC-0042 HALTED (was ACTIVE): bench",
            ).numbered(seq)
            history.append(alert)
            started = time.perf_counter()
            hub.publish([alert])
            return time.perf_counter() - started

    else:
        holder = _Holder()
        handler = grpc.unary_stream_rpc_method_handler(holder.hold)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("riskd.v1.RiskService", {"SubscribeAlerts": handler}),)
        )

        def publish() -> float:
            nonlocal seq
            seq += 1
            msg = pb.Alert(
                seq=seq,
                severity=pb.SEVERITY_CRITICAL,
                kind=pb.ALERT_KIND_TRADING_STATE,
                account="ACC-0042",
                message="account ACC-0042 HALTED (was ACTIVE): bench",
            )
            msg.time.GetCurrentTime()
            message = pb.SubscribeAlertsResponse(alerts=[msg]).SerializeToString()
            started = time.perf_counter()
            holder.publish(message)
            return time.perf_counter() - started

    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def command(line: str) -> None:
        if line == "publish":
            at = time.time()
            took = publish()
            print(json.dumps({"published": at, "publish_s": took}), flush=True)
        elif line == "rss":
            print(json.dumps({"rss_kb": _rss_kb(os.getpid())}), flush=True)
        else:
            done.set()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(command, line.strip())
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=read_stdin, daemon=True).start()
    print(json.dumps({"port": port}), flush=True)
    await done.wait()
    await server.stop(0)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------- clients


async def _client(target: str, streams: int, alerts: int, channels: int) -> None:
    chans = [grpc.aio.insecure_channel(target) for _ in range(channels)]
    arrivals: list[list[float]] = [[] for _ in range(alerts)]

    opening = asyncio.Semaphore(200)  # below the server's pending-call limit, like a real fleet

    async def one(i: int) -> grpc.aio.UnaryStreamCall:
        async with opening:
            while True:
                call = chans[i % channels].unary_stream(SUBSCRIBE)(b"", wait_for_ready=True)
                await call.initial_metadata()
                if await _open(call):
                    return call
                await asyncio.sleep(0.05)

    calls = await asyncio.gather(*(one(i) for i in range(streams)))
    print(json.dumps({"ready": streams}), flush=True)

    async def read(call: grpc.aio.UnaryStreamCall) -> None:
        n = 0
        async for _ in call:
            arrivals[n].append(time.time())
            n += 1
            if n == alerts:
                return

    await asyncio.gather(*(read(c) for c in calls))
    print(json.dumps({"arrivals": arrivals}), flush=True)
    for c in calls:
        c.cancel()
    for ch in chans:
        await ch.close()


async def _open(call: grpc.aio.UnaryStreamCall) -> bool:
    """True once the call is established (refused calls end at once with a status)."""
    if call.done():
        return await call.code() is grpc.StatusCode.OK
    return True


# ---------------------------------------------------------------------------------------- driver


@dataclass(frozen=True, slots=True)
class Result:
    mode: str
    streams: int
    kb_per_stream: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    publish_ms: float  # the longest publish() call on the server's loop
    received: int


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.fanout_bench", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _read(proc: subprocess.Popen[str]) -> dict:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"bench process {proc.args} ended early")
    return json.loads(line)


def _ask(proc: subprocess.Popen[str], command: str) -> dict:
    assert proc.stdin is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return _read(proc)


def run_mode(
    mode: str, streams: int, clients: int, alerts: int, interval: float, wake_slice: int = WAKE_SLICE
) -> Result:
    server = _spawn("serve", mode, str(wake_slice))
    try:
        target = f"127.0.0.1:{_read(server)['port']}"
        time.sleep(0.5)
        before = _ask(server, "rss")["rss_kb"]
        per = [streams // clients + (1 if i < streams % clients else 0) for i in range(clients)]
        procs = [_spawn("client", target, str(n), str(alerts)) for n in per]
        for p in procs:
            _read(p)  # ready
        time.sleep(1.0)
        after = _ask(server, "rss")["rss_kb"]
        published, publish_s = [], []
        for _ in range(alerts):
            reply = _ask(server, "publish")
            published.append(reply["published"])
            publish_s.append(reply["publish_s"])
            time.sleep(interval)
        delays = []
        for p in procs:
            arrivals = _read(p)["arrivals"]
            for i, times in enumerate(arrivals):
                delays += [(t - published[i]) * 1e3 for t in times]
            p.wait(30)
        delays.sort()
        return Result(
            mode=mode,
            streams=streams,
            kb_per_stream=(after - before) / streams,
            p50_ms=statistics.median(delays),
            p99_ms=delays[min(len(delays) - 1, int(len(delays) * 0.99))],
            max_ms=delays[-1],
            publish_ms=max(publish_s) * 1e3,
            received=len(delays),
        )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        _loop_runner()(_serve(args[1], int(args[2])))
        return 0
    if args and args[0] == "client":
        target, streams, alerts = args[1], int(args[2]), int(args[3])
        _loop_runner()(_client(target, streams, alerts, channels=max(1, streams // 100)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--alerts", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between alerts")
    parser.add_argument("--wake-slice", type=int, default=WAKE_SLICE, help="AlertHub's wake_slice")
    opts = parser.parse_args(args)
    results = [
        run_mode(m, opts.streams, opts.clients, opts.alerts, opts.interval, opts.wake_slice)
        for m in ("holder", "riskd")
    ]
    print(
        f"{'server':8} {'streams':>8} {'KB/stream':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'publish ms':>11}"
    )
    for r in results:
        print(
            f"{r.mode:8} {r.streams:>8,} {r.kb_per_stream:>10.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
            f"{r.max_ms:>8.1f} {r.publish_ms:>11.2f}"
        )
        assert r.received == r.streams * opts.alerts, (
            f"{r.mode}: {r.received} of {r.streams * opts.alerts} arrived"
        )
    holder, riskd = results
    print(
        f"riskd / holder: p99 {riskd.p99_ms / holder.p99_ms:.2f}x, "
        f"memory per stream {riskd.kb_per_stream / holder.kb_per_stream:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
