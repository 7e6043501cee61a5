"""The protobuf-path handlers of the hot RPCs, as the tests' oracle for the raw-bytes ones.

Production registers CheckOrders, CheckOrderStream and ReportExecutions on raw bytes
(servicer.risk_handlers); these take protobuf messages, decode them with protobuf and encode the
reply as a message, the way the generated servicer would. Tests compare the raw answers with
these, so a fast-path bug shows as a difference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import grpc

from riskd.v1 import risk_pb2 as pb
from riskd_server.engine import Backpressure, BatchError, CheckOutcome, Engine
from riskd_server.servicer import RiskServicer, _abort
from riskd_server.wire.encode import encode_executions, encode_into
from riskd_server.wire.request import decode_batch, parse_check_request, reports_from_pb

_Response = TypeVar("_Response", pb.CheckOrdersResponse, pb.CheckOrderStreamResponse)


class ProtobufServicer(RiskServicer):
    """RiskServicer plus protobuf-message handlers of the hot RPCs (never registered in production)."""

    def _check(self, batch: pb.OrderBatch, response: _Response) -> _Response:
        encode_into(response.result, self._engine.check_orders(*decode_batch(batch)))
        return response

    async def CheckOrders(self, request: pb.CheckOrdersRequest, context: grpc.aio.ServicerContext):
        try:
            return self._check(request.orders, pb.CheckOrdersResponse())
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc, "orders.")

    async def CheckOrderStream(
        self, request_iterator: AsyncIterator[pb.CheckOrderStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CheckOrderStreamResponse]:
        index = 0
        async for request in request_iterator:
            try:
                response = self._check(request.orders, pb.CheckOrderStreamResponse())
            except (BatchError, Backpressure) as exc:
                await _abort(context, exc, f"message[{index}].orders.")
            yield response
            index += 1

    async def ReportExecutions(self, request: pb.ReportExecutionsRequest, context: grpc.aio.ServicerContext):
        try:
            r = reports_from_pb(request)
            out = self._engine.report_executions(
                r.client_order_id,
                r.type,
                r.quantity,
                r.price,
                account=r.account,
                symbol=r.symbol,
                side=r.side,
            )
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        return encode_executions(out.applied, out.error, out.state_version, out.status)


def check_wire(engine: Engine, data: bytes, now: float | None = None) -> CheckOutcome:
    """A serialized CheckOrdersRequest through the production path: wire.request's parse, then
    Engine.check_parsed (DecodeError for bytes protobuf refuses too)."""
    return engine.check_parsed(parse_check_request(data), now)
