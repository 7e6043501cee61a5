"""AsyncRiskClient: the asyncio twin of RiskClient, for OMSes built on an event loop.

Same methods, same arguments, same results; only the waiting differs. Create it inside the event
loop that will use it (grpc.aio channels belong to one loop).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

import grpc

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc

from . import _alerts as al
from . import _columns as col
from . import _limits_io as lio
from . import _returns as rt
from ._types import (
    AlertBatch,
    AlertPage,
    AlertStatsReport,
    ExecutionResults,
    ImportResult,
    LimitListing,
    LimitsChange,
    LimitSpec,
    LimitVersionInfo,
    ModelRefreshed,
    PositionSizing,
    ReturnsImported,
    RiskdError,
    RiskModelInfo,
    RiskSnapshot,
    StateChange,
    TemplateApplied,
    TemplateInfo,
    TradingStateChange,
)
from .results import CheckResults
from .sync_client import CHANNEL_OPTIONS, DEFAULT_TARGET, _Capture

log = logging.getLogger("riskd.client")


class AsyncRiskClient:
    """asyncio riskd client; use ``async with`` or await close().

    Pass ``channel`` to share a grpc.aio channel you manage (it is then not closed by the client).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = 5.0,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._owns_channel = channel is None
        self._channel = channel or grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.RiskServiceStub(self._channel)

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncRiskClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the channel connects; RiskdError(UNAVAILABLE) if it does not within timeout."""
        try:
            await asyncio.wait_for(
                self._channel.channel_ready(), self.timeout if timeout is None else timeout
            )
        except TimeoutError:
            raise RiskdError(
                "wait_ready", self.target, grpc.StatusCode.UNAVAILABLE, "channel not ready in time"
            ) from None

    # ------------------------------------------------------------------ plumbing

    async def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, timeout=self.timeout if timeout is None else timeout
            )
        except grpc.RpcError as exc:
            raise RiskdError.from_rpc(exc, method, self.target) from exc

    async def _unary_persisted(
        self, method: str, request: Any, timeout: float | None
    ) -> tuple[Any, bool | None]:
        try:
            call = getattr(self._stub, method)(request, timeout=self.timeout if timeout is None else timeout)
            response = await call
            trailers = await call.trailing_metadata()
        except grpc.RpcError as exc:
            raise RiskdError.from_rpc(exc, method, self.target) from exc
        return response, col.persisted_flag(trailers)

    # ------------------------------------------------------------------ pre-trade checks

    async def check(self, orders: Any, *, timeout: float | None = None) -> CheckResults:
        """Check a batch: Order values, dicts, tuples, objects with the same attributes, or a dict of columns."""
        batch, ids = col.encode_orders(orders)
        response = await self._unary("CheckOrders", pb.CheckOrdersRequest(orders=batch), timeout)
        return CheckResults(response.result, ids)

    async def check_columns(
        self,
        *,
        client_order_id: Any,
        account: Any,
        symbol: Any,
        side: Any,
        quantity: Any,
        price: Any = None,
        timeout: float | None = None,
    ) -> CheckResults:
        columns = col.order_columns(client_order_id, account, symbol, side, quantity, price)
        return await self.check(columns, timeout=timeout)

    async def check_stream(
        self, batches: Iterable[Any] | AsyncIterable[Any], *, timeout: float | None = None
    ) -> AsyncIterator[CheckResults]:
        """Check batches over one CheckOrderStream call; yields one CheckResults per batch, in order.

        Same contract as RiskClient.check_stream; ``batches`` may also be an async iterable.
        """
        pending: collections.deque[list[str]] = collections.deque()
        failure: list[BaseException] = []

        async def requests() -> AsyncIterator[pb.CheckOrderStreamRequest]:
            try:
                async for batch in _aiter(batches):
                    encoded, ids = col.encode_orders(batch)
                    pending.append(ids)
                    yield pb.CheckOrderStreamRequest(orders=encoded)
            except Exception as exc:  # raised to the caller after the earlier batches are answered
                failure.append(exc)

        call = self._stub.CheckOrderStream(requests(), timeout=timeout)
        try:
            async for response in call:
                yield CheckResults(response.result, pending.popleft())
        except grpc.RpcError as exc:
            if failure:
                raise failure[0] from None
            raise RiskdError.from_rpc(exc, "CheckOrderStream", self.target) from exc
        finally:
            call.cancel()
        if failure:
            raise failure[0]

    # ------------------------------------------------------------------ executions, prices, positions

    async def report_executions(self, executions: Any, *, timeout: float | None = None) -> ExecutionResults:
        request = col.encode_executions(executions)
        response = await self._unary("ReportExecutions", request, timeout)
        return ExecutionResults(
            client_order_id=tuple(request.client_order_id),
            applied=tuple(response.applied),
            errors=tuple(response.error),
            state_version=response.state_version,
        )

    async def update_prices(
        self, prices: Mapping[str, float] | Any, price: Any = None, *, timeout: float | None = None
    ) -> StateChange:
        response = await self._unary("UpdatePrices", col.encode_prices(prices, price), timeout)
        return StateChange(response.updated, response.state_version)

    async def load_positions(self, positions: Any, *, timeout: float | None = None) -> StateChange:
        response, persisted = await self._unary_persisted(
            "LoadPositions", col.encode_positions(positions), timeout
        )
        return StateChange(response.loaded, response.state_version, persisted)

    # ------------------------------------------------------------------ limits

    async def upsert_limits(self, limits: Any, *, timeout: float | None = None) -> LimitsChange:
        response, persisted = await self._unary_persisted("UpsertLimits", col.encode_limits(limits), timeout)
        return LimitsChange(response.upserted, response.limits_version, (), persisted)

    async def delete_limits(
        self, limit_ids: str | Iterable[str], *, timeout: float | None = None
    ) -> LimitsChange:
        request = pb.DeleteLimitsRequest(limit_ids=col.limit_ids(limit_ids))
        response, persisted = await self._unary_persisted("DeleteLimits", request, timeout)
        return LimitsChange(response.deleted, response.limits_version, tuple(response.not_found), persisted)

    async def list_limits(
        self,
        *,
        account: str = "",
        symbol: str = "",
        kind: str | int | None = None,
        template: str = "",
        timeout: float | None = None,
    ) -> LimitListing:
        request = pb.ListLimitsRequest(
            account=account,
            symbol=symbol,
            kind=col.parse_check(kind) if kind is not None else 0,  # type: ignore[arg-type]
            template=template,
        )
        response = await self._unary("ListLimits", request, timeout)
        return LimitListing(tuple(col.decode_limit(m) for m in response.limits), response.limits_version)

    async def list_templates(self, *, timeout: float | None = None) -> list[TemplateInfo]:
        response = await self._unary("ListTemplates", pb.ListTemplatesRequest(), timeout)
        return [lio.decode_template(t) for t in response.templates]

    async def apply_template(
        self,
        account: str,
        template: str,
        *,
        scale: float = 1.0,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> TemplateApplied:
        request = pb.ApplyTemplateRequest(
            account=account, template=template, scale=lio.valid_scale(scale), dry_run=dry_run
        )
        response, persisted = await self._unary_persisted("ApplyTemplate", request, timeout)
        return TemplateApplied(
            tuple(col.decode_limit(m) for m in response.limits),
            response.upserted,
            response.limits_version,
            lio.decode_diff(response.diff),
            persisted,
        )

    async def export_limit_chunks(
        self,
        *,
        account: str = "",
        symbol: str = "",
        kind: str | int | None = None,
        template: str = "",
        chunk_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[pb.ExportLimitsResponse]:
        call = self._stub.ExportLimits(
            lio.export_request(account, symbol, kind, template, chunk_size), timeout=timeout
        )
        try:
            async for chunk in call:
                yield chunk
        except grpc.RpcError as exc:
            raise RiskdError.from_rpc(exc, "ExportLimits", self.target) from exc
        finally:
            call.cancel()

    async def export_limits(
        self,
        *,
        account: str = "",
        symbol: str = "",
        kind: str | int | None = None,
        template: str = "",
        chunk_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[LimitSpec]:
        async for chunk in self.export_limit_chunks(
            account=account,
            symbol=symbol,
            kind=kind,
            template=template,
            chunk_size=chunk_size,
            timeout=timeout,
        ):
            for msg in chunk.limits:
                yield col.decode_limit(msg)

    async def import_limits(
        self,
        limits: Any,
        *,
        dry_run: bool = False,
        replace: bool = False,
        max_changes: int = 0,
        chunk_size: int = lio.DEFAULT_CHUNK,
        timeout: float | None = None,
    ) -> ImportResult:
        """As RiskClient.import_limits (a file is read on the event loop, a chunk at a time)."""
        source = _Capture(lio.import_source(limits))
        requests = lio.import_requests(
            source, dry_run=dry_run, replace=replace, max_changes=max_changes, chunk_size=chunk_size
        )
        call = self._stub.ImportLimits(_aiter(requests), timeout=timeout)
        try:
            response = await call
            trailers = await call.trailing_metadata()
        except grpc.RpcError as exc:
            source.reraise()
            raise RiskdError.from_rpc(exc, "ImportLimits", self.target) from exc
        return ImportResult(
            lio.decode_diff(response.diff),
            response.limits_version,
            response.records,
            response.dry_run,
            col.persisted_flag(trailers),
        )

    async def limit_history(self, limit_id: str, *, timeout: float | None = None) -> list[LimitVersionInfo]:
        response = await self._unary("LimitHistory", pb.LimitHistoryRequest(limit_id=limit_id), timeout)
        return [lio.decode_version(v) for v in response.versions]

    # ------------------------------------------------------------------ trading state

    async def set_trading_state(
        self, state: str | int, account: str = "", reason: str = "", *, timeout: float | None = None
    ) -> TradingStateChange:
        request = pb.SetTradingStateRequest(
            account=account,
            state=col.parse_trading_state(state),  # type: ignore[arg-type]
            reason=reason,
        )
        response, persisted = await self._unary_persisted("SetTradingState", request, timeout)
        return TradingStateChange(col.state_name(response.previous), response.state_version, persisted)

    async def halt(
        self, account: str = "", reason: str = "", *, timeout: float | None = None
    ) -> TradingStateChange:
        return await self.set_trading_state("HALTED", account, reason, timeout=timeout)

    async def reduce_only(
        self, account: str = "", reason: str = "", *, timeout: float | None = None
    ) -> TradingStateChange:
        return await self.set_trading_state("REDUCING", account, reason, timeout=timeout)

    async def resume(
        self, account: str = "", reason: str = "", *, timeout: float | None = None
    ) -> TradingStateChange:
        return await self.set_trading_state("ACTIVE", account, reason, timeout=timeout)

    # ------------------------------------------------------------------ alerts

    async def query_alerts(
        self,
        *,
        min_severity: str | int | None = None,
        accounts: str | Iterable[str] = (),
        symbols: str | Iterable[str] = (),
        kinds: Any = (),
        checks: Any = (),
        before_seq: int = 0,
        page_size: int = 100,
        timeout: float | None = None,
    ) -> AlertPage:
        """One page of the alert history, newest first, matching the filters (as for
        subscribe_alerts); only alerts with seq < ``before_seq`` (0: from the newest). Pass the
        page's ``next_before_seq`` as ``before_seq`` for the next one; past what the server holds in
        memory it continues from PostgreSQL."""
        request = pb.QueryAlertsRequest(
            filter=al.alert_filter(min_severity, accounts, symbols, kinds, checks),
            before_seq=before_seq,
            page_size=page_size,
        )
        return al.decode_page(await self._unary("QueryAlerts", request, timeout))

    async def alert_stats(self, top: int = 10, *, timeout: float | None = None) -> AlertStatsReport:
        """Alert occurrences over the last 1 min, 15 min and 1 h: per check and the ``top``
        offending accounts."""
        request = pb.GetAlertStatsRequest(top=top)
        return al.decode_stats(await self._unary("GetAlertStats", request, timeout))

    async def subscribe_alerts(
        self,
        *,
        min_severity: str | int | None = None,
        accounts: str | Iterable[str] = (),
        symbols: str | Iterable[str] = (),
        kinds: Any = (),
        checks: Any = (),
        after_seq: int = 0,
        reconnect: bool = True,
        max_backoff: float = al.DEFAULT_MAX_BACKOFF,
    ) -> AsyncGenerator[AlertBatch, None]:
        """Live alerts, as AlertBatch values (alerts oldest first, dropped, missed), until closed.

        Same contract as RiskClient.subscribe_alerts: filters take names or numbers (empty: any);
        with ``after_seq`` the server first replays what it still holds after that seq. With
        ``reconnect`` (the default) a broken stream, a restarting server or a refusal
        (UNAVAILABLE, RESOURCE_EXHAUSTED ...) is retried with jittered exponential backoff up to
        ``max_backoff`` seconds, resuming after the last seq seen, so nothing is lost silently:
        what the server no longer held is counted in ``missed``. Other errors raise RiskdError.
        """
        flt = al.alert_filter(min_severity, accounts, symbols, kinds, checks)
        resume = al.Resume(after_seq)
        backoff = al.Backoff(max_backoff)
        while True:
            request = pb.SubscribeAlertsRequest(filter=flt, after_seq=resume.after_seq)
            call = self._stub.SubscribeAlerts(request, wait_for_ready=reconnect or None)
            try:
                if resume.connected(await call.initial_metadata()):
                    backoff.reset()
                async for response in call:
                    batch = al.decode_batch(response)
                    resume.saw(batch)
                    yield batch
                reason = "the server ended the stream"
            except grpc.RpcError as exc:
                if not reconnect or not al.retryable(exc):
                    raise RiskdError.from_rpc(exc, "SubscribeAlerts", self.target) from exc
                reason = RiskdError.from_rpc(exc, "SubscribeAlerts", self.target).describe()
            finally:
                call.cancel()
            if not reconnect:
                return
            delay = backoff.next()
            log.info("alert stream: %s; resuming after seq %d in %.2fs", reason, resume.after_seq, delay)
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ VaR sizing

    async def size_positions(
        self,
        account: str,
        symbols: str | Iterable[str] = (),
        *,
        var_budget: float = 0.0,
        apply_limits: bool = False,
        timeout: float | None = None,
    ) -> PositionSizing:
        """How much of each symbol the account may still buy or sell under its VaR budget.

        symbols: one or several; none sizes every symbol of the server's risk model. var_budget 0
        uses the account's MAX_VAR limit (FAILED_PRECONDITION when none applies). apply_limits
        also reports the largest orders the quantity, notional, position, gross and net limits
        accept (SymbolSize.limit_buy/limit_sell; SymbolSize.buy/sell take the smaller of both).
        """
        request = col.size_request(account, symbols, var_budget, apply_limits)
        return col.decode_sizes(await self._unary("SizePositions", request, timeout))

    # ------------------------------------------------------------------ risk snapshots

    async def risk_snapshot(
        self, accounts: str | Iterable[str] = (), *, timeout: float | None = None
    ) -> RiskSnapshot:
        """Accounts' risk now (see RiskClient.risk_snapshot)."""
        request = pb.GetRiskSnapshotRequest(accounts=col.account_names(accounts))
        return col.decode_snapshot(await self._unary("GetRiskSnapshot", request, timeout))

    async def stream_risk_snapshots(
        self,
        accounts: str | Iterable[str] = (),
        min_interval_ms: int = 250,
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[RiskSnapshot]:
        """Follow accounts' risk (see RiskClient.stream_risk_snapshots); closing the async
        iterator (or breaking out of ``async for``) cancels the call."""
        request = pb.StreamRiskSnapshotsRequest(
            accounts=col.account_names(accounts), min_interval_ms=min_interval_ms
        )
        call = self._stub.StreamRiskSnapshots(request, timeout=timeout)
        try:
            async for response in call:
                yield col.decode_snapshot(response)
        except grpc.RpcError as exc:
            raise RiskdError.from_rpc(exc, "StreamRiskSnapshots", self.target) from exc
        finally:
            call.cancel()

    # ------------------------------------------------------------------ returns and the risk model

    async def import_returns(
        self, source: Any, *, chunk_rows: int = rt.CHUNK_ROWS, timeout: float | None = None
    ) -> ReturnsImported:
        """Upsert daily returns (see RiskClient.import_returns); source may also be an async
        iterable of chunks. A CSV file is read on the event loop, a chunk at a time."""
        tally = [0]
        failure: list[BaseException] = []
        calls: list[Any] = []

        async def requests() -> AsyncIterator[pb.ImportReturnsRequest]:
            try:
                if rt.is_path(source):
                    chunks: Any = rt.chunks_of(source, chunk_rows)
                else:
                    chunks = (rt.encode_chunk(c) async for c in _aiter(source))
                async for request in _aiter(chunks):
                    tally[0] += len(request.symbol)
                    yield request
            except Exception as exc:  # cancel the call: ending the stream would commit what was sent
                failure.append(exc)
                calls[0].cancel()

        call = self._stub.ImportReturns(requests(), timeout=timeout)
        calls.append(call)  # requests() first runs once the call is awaited
        try:
            response = await call
        except asyncio.CancelledError:
            if failure:
                raise failure[0] from None
            raise
        except grpc.RpcError as exc:
            if failure:
                raise failure[0] from None
            raise RiskdError.from_rpc(exc, "ImportReturns", self.target) from exc
        if failure:
            raise failure[0]
        return ReturnsImported(
            tally[0], response.upserted, response.symbols, response.first_day, response.last_day
        )

    async def refresh_risk_model(self, *, timeout: float | None = 600.0) -> ModelRefreshed:
        """Rebuild the risk model now (see RiskClient.refresh_risk_model)."""
        response = await self._unary("RefreshRiskModel", pb.RefreshRiskModelRequest(), timeout)
        return ModelRefreshed(response.model_version, response.build_seconds)

    async def get_risk_model(
        self, include_symbols: bool = False, *, timeout: float | None = None
    ) -> RiskModelInfo:
        """The risk model in force (see RiskClient.get_risk_model)."""
        request = pb.GetRiskModelRequest(include_symbols=include_symbols)
        return rt.decode_model(await self._unary("GetRiskModel", request, timeout))


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
