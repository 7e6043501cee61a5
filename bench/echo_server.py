"""The transport ceiling: riskd.v1.RiskService answering every call with a prepared reply, no checks.

Fair to the real server in what it must do anyway: it decodes each request with risk_pb2 (so it
knows the batch size n, as the real servicer does) and answers with n results, every order accepted.
Replies are serialized once per n and written as raw bytes (generic handlers with no serializer).

    python -m bench.echo_server --listen 127.0.0.1:0      # prints "listening 127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable

import grpc

from riskd.v1 import risk_pb2 as pb

SERVICE = "riskd.v1.RiskService"
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.server.max_pending_requests", 3_000),
    ("grpc.so_reuseport", 0),
]


class _Replies:
    """Prepared reply bytes by batch size (bounded: sizes come from clients)."""

    def __init__(self, build: Callable[[int], bytes], limit: int = 4_096) -> None:
        self._build = build
        self._cache: dict[int, bytes] = {}
        self._limit = limit

    def __call__(self, n: int) -> bytes:
        reply = self._cache.get(n)
        if reply is None:
            reply = self._build(n)
            if len(self._cache) >= self._limit:
                self._cache.clear()
            self._cache[n] = reply
        return reply


def _check_result(n: int) -> pb.CheckResult:
    return pb.CheckResult(accepted=[True] * n, reject_mask=[0] * n, state_version=1)


_check_reply = _Replies(lambda n: pb.CheckOrdersResponse(result=_check_result(n)).SerializeToString())
_stream_reply = _Replies(lambda n: pb.CheckOrderStreamResponse(result=_check_result(n)).SerializeToString())
_exec_reply = _Replies(
    lambda n: pb.ReportExecutionsResponse(
        applied=[True] * n, error=[""] * n, state_version=1
    ).SerializeToString()
)


async def _check_orders(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return _check_reply(len(pb.CheckOrdersRequest.FromString(request).orders.client_order_id))


async def _check_order_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    async for request in requests:
        yield _stream_reply(len(pb.CheckOrderStreamRequest.FromString(request).orders.client_order_id))


async def _report_executions(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return _exec_reply(len(pb.ReportExecutionsRequest.FromString(request).client_order_id))


def _simple(message: type, reply: bytes) -> Callable:
    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        message.FromString(request)
        return reply

    return handler


def echo_handler() -> grpc.GenericRpcHandler:
    """A generic handler for the whole RiskService (raw bytes in and out)."""
    handlers = {
        "CheckOrders": grpc.unary_unary_rpc_method_handler(_check_orders),
        "CheckOrderStream": grpc.stream_stream_rpc_method_handler(_check_order_stream),
        "ReportExecutions": grpc.unary_unary_rpc_method_handler(_report_executions),
    }
    for name, request_type, response in (
        ("UpdatePrices", pb.UpdatePricesRequest, pb.UpdatePricesResponse(state_version=1)),
        ("LoadPositions", pb.LoadPositionsRequest, pb.LoadPositionsResponse(state_version=1)),
        ("UpsertLimits", pb.UpsertLimitsRequest, pb.UpsertLimitsResponse(limits_version=1)),
        ("DeleteLimits", pb.DeleteLimitsRequest, pb.DeleteLimitsResponse(limits_version=1)),
        ("ListLimits", pb.ListLimitsRequest, pb.ListLimitsResponse(limits_version=1)),
        ("SetTradingState", pb.SetTradingStateRequest, pb.SetTradingStateResponse(state_version=1)),
    ):
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            _simple(request_type, response.SerializeToString())
        )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def start_echo(listen: str = "127.0.0.1:0") -> tuple[grpc.aio.Server, int]:
    """Start the echo server on the running loop; returns (server, bound port)."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((echo_handler(),))
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    return server, port


async def serve_until_signal(start: Callable, banner: str) -> None:
    """Start a server with ``start()``, print ``listening HOST:PORT``, run until SIGTERM/SIGINT."""
    server, host, port = await start()
    print(f"listening {host}:{port} {banner}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def run_loop(main, use_uvloop: bool = True) -> None:
    """asyncio.run, on uvloop when installed and wanted (the real server does the same)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's default loop")
    args = parser.parse_args(argv)

    async def start() -> tuple[grpc.aio.Server, str, int]:
        server, port = await start_echo(args.listen)
        return server, args.listen.rpartition(":")[0], port

    run_loop(serve_until_signal(start, "echo"), use_uvloop=not args.no_uvloop)


if __name__ == "__main__":
    main()
