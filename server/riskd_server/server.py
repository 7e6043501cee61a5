"""Wiring: settings -> PostgreSQL (embedded or DSN) -> recovered engine -> gRPC server, and shutdown.

Start-up order matters: recover state and warm every kernel before the port reports SERVING, so
the first RPC is as fast as the millionth. Shutdown is the reverse: NOT_SERVING, stop accepting,
let in-flight RPCs finish, flush the write-behind, close the pool, stop the embedded cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from riskd.v1 import risk_pb2, risk_pb2_grpc

from .config import Settings
from .engine import Engine, EngineConfig, warm_up
from .reflection import enable_reflection
from .servicer import RiskServicer
from .store import Store, WriteBehind

log = logging.getLogger("riskd.server")
SERVICE_NAME = risk_pb2.DESCRIPTOR.services_by_name["RiskService"].full_name


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        max_batch=settings.max_batch,
        max_accounts=settings.max_accounts,
        max_symbols=settings.max_symbols,
        max_open_orders=settings.max_open_orders,
        closed_order_retention=settings.closed_order_retention,
    )


def grpc_options(settings: Settings) -> list[tuple[str, int]]:
    # A batch of max_batch orders with long ids fits well inside 64 MiB.
    return [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.server.max_pending_requests", settings.max_pending_requests),
        ("grpc.so_reuseport", 0),
    ]


@dataclass(slots=True)
class RunningServer:
    """A started riskd: what tests and the CLI need to talk to it and to stop it."""

    port: int
    engine: Engine
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    store: Store
    writer: WriteBehind
    settings: Settings
    _cleanup: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)

    async def stop(self) -> None:
        """Graceful stop: NOT_SERVING, finish in-flight RPCs, flush state, release resources."""
        log.info("stopping: grace %.1fs", self.settings.grace)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.grace)
        await self.writer.stop(timeout=max(self.settings.db_timeout, 1.0))
        await self.store.close()
        for fn in reversed(self._cleanup):
            result = fn()
            if result is not None:
                await result
        log.info("stopped")


async def start(settings: Settings) -> RunningServer:
    """Start riskd and return once it is SERVING."""
    cleanup: list[Callable[[], Awaitable[None] | None]] = []
    dsn = settings.dsn
    if not dsn:
        from .embedded_pg import start_embedded

        data_dir = Path(settings.data_dir).expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        pg = await asyncio.to_thread(start_embedded, data_dir)
        cleanup.append(lambda: asyncio.to_thread(pg.stop))
        dsn = pg.dsn
        log.info("embedded PostgreSQL under %s", data_dir)
    store = await Store.open(
        dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max, timeout=settings.db_timeout
    )
    engine = Engine(engine_config(settings))
    snapshot = await store.load_snapshot(settings.closed_order_retention)
    await asyncio.to_thread(engine.restore, snapshot)
    log.info("recovered state: %s", engine.stats())
    writer = store.write_behind(
        max_pending_rows=settings.max_pending_rows,
        flush_interval=settings.flush_interval_ms / 1000.0,
        write_timeout=settings.db_timeout,
    )
    await writer.start()
    engine.sink = writer
    seconds = await asyncio.to_thread(warm_up)
    log.info("kernels warm in %.3fs", seconds)

    server = grpc.aio.server(options=grpc_options(settings))

    async def barrier() -> bool:
        try:
            await writer.barrier(timeout=settings.db_timeout)
        except TimeoutError:
            log.warning("change acknowledged before it was committed (database slow or down)")
            return False
        return True

    risk_pb2_grpc.add_RiskServiceServicer_to_server(RiskServicer(engine, barrier), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(server, [SERVICE_NAME, health.SERVICE_NAME])
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(port, engine, server, health_servicer, store, writer, settings, cleanup)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    running = await start(settings)
    host = settings.listen.rpartition(":")[0]
    print(f"riskd serving on {host}:{running.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()


def run(settings: Settings) -> int:
    """Blocking entry point for `riskd serve`."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if settings.uvloop:
        try:
            import uvloop

            return _run(settings, uvloop.run)
        except ImportError:
            log.info("uvloop not installed; using asyncio's default loop")
    return _run(settings, asyncio.run)


def _run(settings: Settings, runner: Callable) -> int:
    try:
        runner(serve(settings))
    except KeyboardInterrupt:
        return 130
    return 0
