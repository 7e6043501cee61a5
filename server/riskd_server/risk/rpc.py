"""The returns and risk-model RPCs' translations: the ImportReturns stream into a store import,
a RiskModel into GetRiskModel's reply. No decisions here (risk.returns validates, risk.service
builds); the servicer maps the errors raised here to gRPC statuses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from riskd.v1 import risk_pb2 as pb

from ..store._returns import ImportResult
from .model import RiskModel
from .returns import validate_chunk

if TYPE_CHECKING:
    from ..store import Store


IDLE_TIMEOUT = 60.0  # seconds an import may wait for its next chunk (it holds a connection)


class ImportBusy(RuntimeError):
    """Another ImportReturns is running (one at a time: each holds a pool connection and a
    transaction, and the write-behind must keep one)."""


class ImportIdle(TimeoutError):
    """The client sent no chunk for IDLE_TIMEOUT seconds."""


class ReturnsImporter:
    """Runs ImportReturns streams, one at a time."""

    def __init__(self, store: Store, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._store = store
        self._idle = idle_timeout
        self._busy = False

    async def run(self, stream: AsyncIterable[pb.ImportReturnsRequest]) -> ImportResult:
        """Validate and COPY every chunk, then upsert them all in the same transaction (all or
        nothing); raises ReturnsInputError (nothing changed), ImportBusy, ImportIdle or a
        database/timeout error."""
        if self._busy:
            raise ImportBusy("another ImportReturns is running; retry when it is done")
        self._busy = True
        requests = aiter(stream)
        try:
            async with self._store.returns_import() as imp:
                chunk = 0
                while True:
                    try:
                        async with asyncio.timeout(self._idle):
                            request = await anext(requests)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        raise ImportIdle(
                            f"no chunk for {self._idle:g}s after chunk[{chunk - 1}]; nothing imported"
                        ) from None
                    # ~1-2 ms per 10,000 rows: in a worker thread, as the COPY encoding (store)
                    cols = await asyncio.to_thread(
                        validate_chunk, request.symbol, request.day, request.ret, chunk, imp.rows
                    )
                    await imp.add(cols)
                    chunk += 1
                return await imp.finish()
        finally:
            self._busy = False
            close = getattr(requests, "aclose", None)
            if close is not None:  # an abandoned async generator would be finalised later, noisily
                with contextlib.suppress(Exception):
                    await close()


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
