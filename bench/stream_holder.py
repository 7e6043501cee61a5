"""The grpc.aio floor for alert subscribers: a bare server that holds SubscribeAlerts streams open and,
on demand, writes one prepared SubscribeAlertsResponse to every one of them.

It serves ``riskd.v1.RiskService/SubscribeAlerts`` with the real method name and message types, as
a raw-bytes generic handler (no deserializer, no serializer), with the real server's grpc options
(``echo_server.SERVER_OPTIONS``: the same ``grpc.server.max_pending_requests``) and loop (uvloop).
A stream registers, sends its initial metadata (as riskd's hub does once a subscriber is
registered, so a client knows it is held) and waits on one shared future. ``Fire`` stamps an
Alert with the current time (the moment it is "raised"), serialises the response once and wakes
every stream, each of which ``await context.write``s the same bytes: the least work any fan-out
can do, so riskd's subscriber figures are measured against this in the same run.

Two side RPCs (``bench.StreamHolder``, raw bytes): ``Fire`` (request: the marker
``client_order_id``; reply: the number of streams woken, as ASCII) and ``Count`` (open streams).

    python -m bench.stream_holder --listen 127.0.0.1:0     # prints "listening 127.0.0.1:PORT holder"
"""

from __future__ import annotations

import argparse
import asyncio
import time

import grpc

from riskd.v1 import risk_pb2 as pb

from .echo_server import SERVER_OPTIONS, run_loop, serve_until_signal

SUBSCRIBE = "SubscribeAlerts"
HOLDER_SERVICE = "bench.StreamHolder"
FIRE = f"/{HOLDER_SERVICE}/Fire"
COUNT = f"/{HOLDER_SERVICE}/Count"


def prepared_response(marker: str, raised: float, seq: int) -> bytes:
    """One SubscribeAlertsResponse holding one alert shaped like riskd's MAX_ORDER_QUANTITY reject."""
    alert = pb.Alert(
        seq=seq,
        severity=pb.SEVERITY_WARNING,
        kind=pb.ALERT_KIND_CHECK_REJECT,
        check=pb.RISK_CHECK_MAX_ORDER_QUANTITY,
        account="SBMARK",
        symbol=f"SBM{seq}",
        limit_id="subbench-mark",
        message=f"MAX_ORDER_QUANTITY: order {marker} SBMARK SBM{seq} quantity 1,000 > limit 10",
        observed=1000.0,
        threshold=10.0,
        count=1,
        client_order_id=marker,
    )
    seconds = int(raised)
    alert.time.seconds = seconds
    alert.time.nanos = min(999_999_999, round((raised - seconds) * 1e9))
    return pb.SubscribeAlertsResponse(alerts=[alert]).SerializeToString()


class Holder:
    """Open streams wait on one shared future; ``fire`` resolves it with the prepared bytes."""

    def __init__(self) -> None:
        self.streams = 0
        self.fired = 0
        self._next: asyncio.Future[bytes] | None = None

    def _future(self) -> asyncio.Future[bytes]:
        if self._next is None or self._next.done():
            self._next = asyncio.get_running_loop().create_future()
        return self._next

    async def subscribe(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        pb.SubscribeAlertsRequest.FromString(request)  # as riskd must: know the filter
        self.streams += 1
        try:
            await context.send_initial_metadata((("riskd-alert-seq", str(self.fired)),))
            while True:
                data = await self._future()
                await context.write(data)
        finally:  # cancellation propagates (grpc/grpc#43360): nothing swallowed here
            self.streams -= 1

    async def fire(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raised = time.time()
        self.fired += 1
        data = prepared_response(request.decode(), raised, self.fired)
        woken = self.streams
        self._future().set_result(data)
        return str(woken).encode()

    async def count(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return str(self.streams).encode()


def holder_handlers(holder: Holder) -> tuple[grpc.GenericRpcHandler, ...]:
    return (
        grpc.method_handlers_generic_handler(
            "riskd.v1.RiskService", {SUBSCRIBE: grpc.unary_stream_rpc_method_handler(holder.subscribe)}
        ),
        grpc.method_handlers_generic_handler(
            HOLDER_SERVICE,
            {
                "Fire": grpc.unary_unary_rpc_method_handler(holder.fire),
                "Count": grpc.unary_unary_rpc_method_handler(holder.count),
            },
        ),
    )


async def start_holder(listen: str = "127.0.0.1:0") -> tuple[grpc.aio.Server, int, Holder]:
    holder = Holder()
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers(holder_handlers(holder))
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    return server, port, holder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's default loop")
    args = parser.parse_args(argv)

    async def start() -> tuple[grpc.aio.Server, str, int]:
        server, port, _ = await start_holder(args.listen)
        return server, args.listen.rpartition(":")[0], port

    run_loop(serve_until_signal(start, "holder"), use_uvloop=not args.no_uvloop)


if __name__ == "__main__":
    main()
