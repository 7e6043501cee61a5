"""The returns and risk-model RPCs' translations: the ImportReturns stream into a store import,
a RiskModel into GetRiskModel's reply. No decisions here (risk.returns validates, risk.service
builds); the servicer maps the errors raised here to gRPC statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from riskd.v1 import risk_pb2 as pb

from ..store._returns import ImportResult
from .model import RiskModel
from .returns import validate_chunk

if TYPE_CHECKING:
    from ..store import Store


async def import_stream(store: Store, requests: AsyncIterator[pb.ImportReturnsRequest]) -> ImportResult:
    """Validate and COPY every chunk, then upsert them all in the same transaction (all or
    nothing); raises ReturnsInputError (nothing changed) or a database/timeout error."""
    async with store.returns_import() as imp:
        chunk = 0
        async for request in requests:
            cols = validate_chunk(request.symbol, request.day, request.ret, chunk, imp.rows)
            await imp.add(cols)
            chunk += 1
        return await imp.finish()


def import_response(result: ImportResult) -> pb.ImportReturnsResponse:
    return pb.ImportReturnsResponse(
        upserted=result.upserted,
        symbols=result.symbols,
        first_day=result.first_day,
        last_day=result.last_day,
    )


def model_response(model: RiskModel | None, include_symbols: bool) -> pb.GetRiskModelResponse:
    """GetRiskModel's reply; an empty version (and no summary) when no model exists yet."""
    if model is None:
        return pb.GetRiskModelResponse()
    s = model.summary
    built = Timestamp()
    built.FromNanoseconds(int(model.built_at * 1e9))
    reply = pb.GetRiskModelResponse(
        model_version=model.version,
        summary=pb.RiskModelSummary(
            model=s.kind,
            symbols=s.symbols,
            days=s.days,
            first_day=s.first_day,
            last_day=s.last_day,
            factors=s.factors,
            explained_variance=s.explained_variance,
            defaulted_symbols=s.defaulted_symbols,
            memory_bytes=s.memory_bytes,
            confidence=s.confidence,
            horizon_days=s.horizon_days,
            z=s.z,
        ),
        built_at=built,
    )
    if include_symbols:
        reply.symbols.extend(model.symbols)
        reply.volatility.extend(model.vol.tolist())
    return reply
