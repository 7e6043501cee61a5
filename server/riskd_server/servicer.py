"""The gRPC servicer: translates protobuf <-> engine columns and engine errors <-> gRPC statuses.

It holds no state and makes no decisions. Mutating calls run synchronously on the event loop (no
await between reading and writing the state), which serialises them; admin calls then wait for
the write-behind to commit so an acknowledged limit or halt survives a crash.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import numpy as np

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc

from .engine import Backpressure, BatchError, CheckOutcome, Engine
from .limits import Limit, LimitValidationError

log = logging.getLogger("riskd.servicer")

Barrier = Callable[[], Awaitable[bool]]


async def _no_barrier() -> bool:
    return True


def encode_result(out: CheckOutcome) -> pb.CheckResult:
    """Engine outcome -> CheckResult; loop-free for accepted orders, one step per violation."""
    result = pb.CheckResult(
        accepted=out.accepted.tolist(),
        reject_mask=out.reject_mask.tolist(),
        state_version=out.state_version,
    )
    v = out.violations
    if len(v):
        result.violations.extend(
            pb.Violation(order_index=o, check=c, limit_id=lid, observed=ob, threshold=t, warning=w)
            for o, c, lid, ob, t, w in zip(
                v.order_index.tolist(),
                v.check.tolist(),
                v.limit_id.tolist(),
                v.observed.tolist(),
                v.threshold.tolist(),
                v.warning.tolist(),
                strict=True,
            )
        )
    return result


_SMALL_BATCH = 8


def decode_batch(batch: pb.OrderBatch) -> tuple:
    """OrderBatch -> check_orders columns.

    Each access to a protobuf repeated string builds a new str (UTF-8 decode, no cached hash), and
    the engine reads the id, account and symbol columns more than once: materialising them as lists
    once cost 35 us per 1,000 strings and made the later dict lookups and hashes ~2.5x cheaper
    (measured: 370 -> 230 us per 1,000-order batch). Numeric columns go through numpy's buffer
    path. Tiny batches skip both (the conversions cost more than they save there).
    """
    if len(batch.client_order_id) <= _SMALL_BATCH:
        return batch.client_order_id, batch.account, batch.symbol, batch.side, batch.quantity, batch.price
    return (
        list(batch.client_order_id),
        list(batch.account),
        list(batch.symbol),
        np.asarray(batch.side, dtype=np.int64),
        np.asarray(batch.quantity, dtype=np.float64),
        np.asarray(batch.price, dtype=np.float64),
    )


def limit_from_pb(msg: pb.Limit) -> Limit:
    return Limit(
        limit_id=msg.limit_id,
        kind=msg.kind,
        account=msg.account,
        symbol=msg.symbol,
        threshold=msg.threshold,
        warn_fraction=msg.warn_fraction,
        disabled=msg.disabled,
        description=msg.description,
    )


def limit_to_pb(lim: Limit) -> pb.Limit:
    return pb.Limit(
        limit_id=lim.limit_id,
        kind=lim.kind,  # type: ignore[arg-type]
        account=lim.account,
        symbol=lim.symbol,
        threshold=lim.threshold,
        warn_fraction=lim.warn_fraction,
        disabled=lim.disabled,
        description=lim.description,
    )


class RiskServicer(pb_grpc.RiskServiceServicer):
    """riskd.v1.RiskService over an Engine."""

    def __init__(self, engine: Engine, barrier: Barrier = _no_barrier) -> None:
        self._engine = engine
        self._barrier = barrier

    def _check(self, batch: pb.OrderBatch) -> pb.CheckResult:
        return encode_result(self._engine.check_orders(*decode_batch(batch)))

    async def CheckOrders(self, request: pb.CheckOrdersRequest, context: grpc.aio.ServicerContext):
        try:
            return pb.CheckOrdersResponse(result=self._check(request.orders))
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc, "orders.")

    async def CheckOrderStream(
        self, request_iterator: AsyncIterator[pb.CheckOrderStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CheckOrderStreamResponse]:
        index = 0
        async for request in request_iterator:
            try:
                result = self._check(request.orders)
            except (BatchError, Backpressure) as exc:
                await _abort(context, exc, f"message[{index}].orders.")
            yield pb.CheckOrderStreamResponse(result=result)
            index += 1

    async def ReportExecutions(self, request: pb.ReportExecutionsRequest, context: grpc.aio.ServicerContext):
        try:
            out = self._engine.report_executions(
                request.client_order_id, request.type, request.quantity, request.price
            )
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        return pb.ReportExecutionsResponse(
            applied=out.applied.tolist(), error=out.error, state_version=out.state_version
        )

    async def UpdatePrices(self, request: pb.UpdatePricesRequest, context: grpc.aio.ServicerContext):
        try:
            updated = self._engine.update_prices(request.symbol, np.asarray(request.price, dtype=np.float64))
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        return pb.UpdatePricesResponse(updated=updated, state_version=self._engine.state_version)

    async def LoadPositions(self, request: pb.LoadPositionsRequest, context: grpc.aio.ServicerContext):
        try:
            loaded = self._engine.load_positions(request.account, request.symbol, request.quantity)
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        await self._durable(context)
        return pb.LoadPositionsResponse(loaded=loaded, state_version=self._engine.state_version)

    async def UpsertLimits(self, request: pb.UpsertLimitsRequest, context: grpc.aio.ServicerContext):
        limits = [limit_from_pb(msg) for msg in request.limits]
        try:
            version = await self._engine.upsert_limits_async(limits)
        except (BatchError, Backpressure, LimitValidationError) as exc:
            await _abort(context, exc)
        await self._durable(context)
        return pb.UpsertLimitsResponse(upserted=len(limits), limits_version=version)

    async def DeleteLimits(self, request: pb.DeleteLimitsRequest, context: grpc.aio.ServicerContext):
        try:
            deleted, missing, version = await self._engine.delete_limits_async(list(request.limit_ids))
        except Backpressure as exc:
            await _abort(context, exc)
        await self._durable(context)
        return pb.DeleteLimitsResponse(deleted=deleted, not_found=missing, limits_version=version)

    async def ListLimits(self, request: pb.ListLimitsRequest, context: grpc.aio.ServicerContext):
        book = self._engine.limits
        limits = self._engine.list_limits(request.account, request.symbol, request.kind)
        return pb.ListLimitsResponse(limits=[limit_to_pb(lim) for lim in limits], limits_version=book.version)

    async def SetTradingState(self, request: pb.SetTradingStateRequest, context: grpc.aio.ServicerContext):
        try:
            previous = self._engine.set_trading_state(request.account, request.state, request.reason)
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        await self._durable(context)
        return pb.SetTradingStateResponse(previous=previous, state_version=self._engine.state_version)  # type: ignore[arg-type]

    async def _durable(self, context: grpc.aio.ServicerContext) -> None:
        """Wait for the change to be committed; tell the caller (trailer) if it is only queued."""
        persisted = await self._barrier()
        context.set_trailing_metadata((("riskd-persisted", "true" if persisted else "false"),))


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, prefix: str = "") -> None:
    if isinstance(exc, Backpressure):
        log.warning("refusing work: %s", exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, LimitValidationError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, prefix + str(exc))
