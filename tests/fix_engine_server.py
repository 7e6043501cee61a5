"""pytest plugin: a real riskd gRPC server over an in-memory Engine (no database), on a loopback port.

The server runs on its own event loop in a background thread, so tests can drive it with the
blocking client from the test thread (and with asyncio.run for the async client). It registers
RiskService exactly as ``riskd serve`` does (``add_risk_service`` through a ``StreamCloser``
registrar: the raw-bytes CheckOrders, CheckOrderStream and ReportExecutions handlers), not the
generated protobuf handlers, so the client and CLI tests exercise the production path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from fix_server import LoopThread

from riskd_server.engine import Engine
from riskd_server.server import StreamCloser
from riskd_server.servicer import RiskServicer, add_risk_service
from riskd_server.warm import warm_up

T = TypeVar("T")


@dataclass(slots=True)
class EngineServer:
    """What a test needs: where to connect, the engine behind it, and a way to touch it safely."""

    target: str
    port: int
    engine: Engine
    _loop: LoopThread

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the server's loop thread (the engine is not thread-safe)."""

        async def invoke() -> T:
            return fn(*args)

        return self._loop.run(invoke())


@pytest.fixture(scope="session")
def warm_kernels() -> None:
    """Compile every kernel once, as the real server does before SERVING: on a fresh clone (no
    numba cache) the first call would otherwise spend seconds compiling inside an RPC deadline."""
    warm_up()


@pytest.fixture
def engine_server(warm_kernels: None) -> Iterator[EngineServer]:
    loop = LoopThread(name="engine-server")
    engine = Engine()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        add_risk_service(RiskServicer(engine), StreamCloser().registrar(server))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    try:
        server, port = loop.run(start())
    except BaseException:
        loop.close()
        raise
    try:
        yield EngineServer(target=f"127.0.0.1:{port}", port=port, engine=engine, _loop=loop)
    finally:
        try:
            loop.run(server.stop(grace=1.0))
        finally:
            loop.close()
