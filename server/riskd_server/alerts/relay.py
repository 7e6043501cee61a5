"""`riskd relay`: the SubscribeAlerts fan-out in processes of its own, fed by one subscription.

Writing one alert to 10,000 grpc.aio streams costs most of a second of CPU (tens of µs a write:
README, "Following alerts live"). Done on the server's event loop, that second is taken from the
checks. A relay takes it elsewhere: it holds ONE SubscribeAlerts stream to the risk server (any
filter) and serves ``riskd.v1.RiskService/SubscribeAlerts`` itself, with the server's own fan-out
code (alerts.fanout.AlertHub: filter groups, bounded per-subscriber rings, ``dropped``, resume) and
its own history ring for ``after_seq`` replays. The risk server then writes each alert once per
relay, whatever the number of dashboards. Several relays may listen on one port (SO_REUSEPORT:
the kernel spreads connections over them), so the fan-out tier scales by processes, on other
cores, like `riskd dashboard`.

Nothing is re-encoded: each ``alerts`` entry of an upstream response is cut out of the bytes as
received and forwarded as is (decoded once, for the filters and the history's indexes).

Gaps: the relay resumes upstream from the last seq it holds (``after_seq``), after a reconnect and
also when the server reports it ``dropped`` entries for the relay (too slow for a moment), so the
server's history fills the gap. What the server no longer holds (``missed``) is logged and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import sys
from dataclasses import dataclass, replace

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from riskd.v1 import risk_pb2 as pb

from .fanout import SEQ_HEADER, AlertHub
from .history import AlertHistory
from .model import Alert

log = logging.getLogger("riskd.relay")

SERVICE = "riskd.v1.RiskService"
SUBSCRIBE_METHOD_NAME = "SubscribeAlerts"
SUBSCRIBE_PATH = f"/{SERVICE}/{SUBSCRIBE_METHOD_NAME}"
BANNER = "riskd relay serving on"
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0


class WireError(ValueError):
    """An upstream response this relay cannot cut into entries."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def split_response(data: bytes) -> tuple[list[bytes], int, int]:
    """A serialised SubscribeAlertsResponse -> (its ``alerts`` entries as bytes, each tag, length and
    Alert bytes; dropped; missed). Unknown fields are skipped (a newer server)."""
    entries: list[bytes] = []
    dropped = missed = 0
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        key, pos = _varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise WireError("truncated length-delimited field")
            pos += size
            if field == 1:
                entries.append(data[start:pos])
        elif wire_type == 0:
            value, pos = _varint(data, pos)
            if field == 2:
                dropped = value
            elif field == 3:
                missed = value
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
    if pos != end:
        raise WireError("truncated fixed-width field")
    return entries, dropped, missed


def alert_of(entry: bytes) -> Alert:
    """An ``alerts`` entry (tag, length, Alert bytes) -> the Alert, carrying the entry as its wire."""
    _, pos = _varint(entry, 0)
    _, pos = _varint(entry, pos)
    return replace(Alert.from_pb(pb.Alert.FromString(entry[pos:])), wire=entry)


@dataclass(frozen=True, slots=True)
class RelayConfig:
    target: str  # the risk server
    listen: str = "127.0.0.1:50052"
    history: int = 100_000  # alerts held for resumed subscriptions
    queue_size: int = 256  # per subscriber
    max_subscribers: int = 20_000
    max_pending_requests: int = 3_000
    uvloop: bool = True


@dataclass(slots=True)
class FeedStats:
    connects: int = 0
    received: int = 0  # alerts taken from upstream
    resumes: int = 0  # resubscriptions to fill a gap the server reported as dropped
    missed: int = 0  # alerts the server no longer held when the relay resumed


class RelayFeed:
    """The one upstream subscription: every alert goes into the relay's history and its hub, in
    seq order, once."""

    def __init__(self, target: str, history: AlertHistory, hub: AlertHub) -> None:
        self.target = target
        self.history = history
        self.hub = hub
        self.stats = FeedStats()
        self.connected = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self.history.last_seq

    def take(self, data: bytes) -> int:
        """Apply one upstream response; returns the ``dropped`` it reports (0: no gap)."""
        entries, dropped, missed = split_response(data)
        if missed:
            self.stats.missed += missed
            log.warning("relay: %d alert(s) no longer held by the server were skipped", missed)
        fresh: list[Alert] = []
        last = self.last_seq
        for entry in entries:
            alert = alert_of(entry)
            if alert.seq > last:  # else held already (a replay overlapping what a resume asked for)
                last = alert.seq
                fresh.append(alert)
        for alert in fresh:
            self.history.append(alert)
        if fresh:
            self.stats.received += len(fresh)
            self.hub.publish(fresh)
        return dropped

    def _renumbered(self, newest: int) -> None:
        """The server's newest seq is below what this relay holds: its numbering started again (a
        new database). Forget the old history, or every new alert would look held already."""
        log.warning(
            "relay: the server's alert seq went back from %d to %d; starting a fresh history",
            self.last_seq,
            newest,
        )
        self.history = AlertHistory(self.history.capacity)
        self.hub.reset(self.history)

    async def run(self) -> None:
        """Subscribe, apply, resume after a gap or a failure (jittered backoff); until cancelled."""
        backoff = BACKOFF_FIRST
        options = [("grpc.max_receive_message_length", 64 * 2**20), ("grpc.max_reconnect_backoff_ms", 5_000)]
        async with grpc.aio.insecure_channel(self.target, options=options) as channel:
            subscribe: grpc.aio.UnaryStreamMultiCallable = channel.unary_stream(SUBSCRIBE_PATH)  # raw bytes
            while True:
                after = self.last_seq or 1  # 1: take what the server holds, to fill the history
                request = pb.SubscribeAlertsRequest(after_seq=after).SerializeToString()
                call = subscribe(request)
                try:
                    newest = _seq_header(await call.initial_metadata())
                    if newest is not None and newest < self.last_seq:
                        self._renumbered(newest)
                        call.cancel()
                        continue
                    self.stats.connects += 1
                    self.connected.set()
                    log.info("relay: subscribed to %s after seq %d", self.target, after)
                    backoff = BACKOFF_FIRST
                    async for data in call:
                        if self.take(data):
                            self.stats.resumes += 1
                            log.warning(
                                "relay: the server dropped alerts for this relay; resuming after %d",
                                self.last_seq,
                            )
                            call.cancel()
                            break
                    else:
                        log.warning("relay: the server ended the alert stream; resubscribing")
                except asyncio.CancelledError:
                    call.cancel()
                    raise
                except grpc.aio.AioRpcError as exc:
                    self.connected.clear()
                    log.warning(
                        "relay: alert stream from %s: %s %s", self.target, exc.code().name, exc.details()
                    )
                except WireError as exc:
                    log.error("relay: malformed response from %s: %s", self.target, exc)
                    call.cancel()
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, BACKOFF_MAX)


def _seq_header(metadata: object) -> int | None:
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == SEQ_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None


@dataclass(slots=True)
class RunningRelay:
    port: int
    server: grpc.aio.Server
    hub: AlertHub
    feed: RelayFeed
    task: asyncio.Task[None]

    async def stop(self, grace: float = 0.5) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.server.stop(grace)


async def start_relay(cfg: RelayConfig) -> RunningRelay:
    """Bind, serve SubscribeAlerts (and health), start the upstream feed."""
    history = AlertHistory(cfg.history)
    hub = AlertHub(history, cfg.queue_size, cfg.max_subscribers)
    feed = RelayFeed(cfg.target, history, hub)
    server = grpc.aio.server(
        options=[
            ("grpc.server.max_pending_requests", cfg.max_pending_requests),
            ("grpc.so_reuseport", 1),  # several relays on one port
            ("grpc.max_send_message_length", 64 * 2**20),
        ]
    )
    handlers: dict[str, grpc.RpcMethodHandler] = {
        SUBSCRIBE_METHOD_NAME: grpc.unary_stream_rpc_method_handler(hub.stream)
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(cfg.listen)
    if port == 0:
        raise OSError(f"cannot listen on {cfg.listen}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    task = asyncio.create_task(feed.run(), name="relay-feed")
    return RunningRelay(port, server, hub, feed, task)


async def _serve(cfg: RelayConfig) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    relay = await start_relay(cfg)
    host = cfg.listen.rpartition(":")[0]
    print(f"{BANNER} {host}:{relay.port} (from {cfg.target})", flush=True)
    await stop.wait()
    await relay.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = RelayConfig(target="")
    parser.add_argument("--target", required=True, help="the risk server, HOST:PORT")
    parser.add_argument("--listen", default=d.listen, help=f"HOST:PORT to serve on (default {d.listen})")
    parser.add_argument(
        "--history", type=int, default=d.history, help="alerts held for resumed subscriptions"
    )
    parser.add_argument("--queue", type=int, default=d.queue_size, help="alerts queued per subscriber")
    parser.add_argument("--max-subscribers", type=int, default=d.max_subscribers)
    parser.add_argument("--max-pending-requests", type=int, default=d.max_pending_requests)
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--log-level", default="info")


def config_of(args: argparse.Namespace) -> RelayConfig:
    for name in ("history", "queue", "max_subscribers", "max_pending_requests"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    return RelayConfig(
        target=args.target,
        listen=args.listen,
        history=args.history,
        queue_size=args.queue,
        max_subscribers=args.max_subscribers,
        max_pending_requests=args.max_pending_requests,
        uvloop=not args.no_uvloop,
    )


def run(cfg: RelayConfig, log_level: str = "info") -> int:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    runner = asyncio.run
    if cfg.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    try:
        runner(_serve(cfg))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"riskd relay: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """`riskd relay`, through the ``riskd.commands`` entry point (the client CLI never imports us)."""
    parser = subparsers.add_parser(
        "relay",
        help="serve SubscribeAlerts to many subscribers from one subscription to the server",
        description=__doc__.splitlines()[0],
    )
    add_arguments(parser)
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    try:
        cfg = config_of(args)
    except ValueError as exc:
        print(f"riskd relay: {exc}", file=sys.stderr)
        return 2
    return run(cfg, args.log_level)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="riskd relay", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_of(args)
    except ValueError as exc:
        parser.error(str(exc))
    return run(cfg, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
