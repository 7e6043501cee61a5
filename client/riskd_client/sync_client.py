"""RiskClient: the blocking client an OMS thread calls before sending an order out.

Every unary call has a deadline (the client's ``timeout`` unless overridden), so a stalled server
turns into a RiskdError instead of a stuck order path. Encoding and decoding live in _columns so
the async client behaves the same.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
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

log = logging.getLogger("riskd.client")

DEFAULT_TARGET = "127.0.0.1:50051"
# Match the server's limits: a max-size batch with long ids fits well inside 64 MiB.
# The channel's own reconnect backoff is capped at 5 s (gRPC's default cap is 120 s): after a long
# outage a client, a subscriber or a relay is back within seconds of the server, not minutes.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)


class RiskClient:
    """Blocking riskd client; use as a context manager or call close().

    One client may be shared by many threads (gRPC channels are thread-safe). Pass ``channel`` to
    share one you manage (it is then not closed by the client).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = 5.0,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._owns_channel = channel is None
        self._channel = channel or grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.RiskServiceStub(self._channel)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> RiskClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the channel connects; RiskdError(UNAVAILABLE) if it does not within timeout."""
        future = grpc.channel_ready_future(self._channel)
        try:
            future.result(timeout=self.timeout if timeout is None else timeout)
        except grpc.FutureTimeoutError:
            future.cancel()
            raise RiskdError(
                "wait_ready", self.target, grpc.StatusCode.UNAVAILABLE, "channel not ready in time"
            ) from None

    # ------------------------------------------------------------------ plumbing

    def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as exc:
            raise RiskdError.from_rpc(exc, method, self.target) from exc

    def _unary_persisted(self, method: str, request: Any, timeout: float | None) -> tuple[Any, bool | None]:
        """Admin calls: also read the trailer that says whether the change is already durable."""
        try:
            response, call = getattr(self._stub, method).with_call(
                request, timeout=self.timeout if timeout is None else timeout
            )
        except grpc.RpcError as exc:
            raise RiskdError.from_rpc(exc, method, self.target) from exc
        return response, col.persisted_flag(call.trailing_metadata())

    # ------------------------------------------------------------------ pre-trade checks

    def check(self, orders: Any, *, timeout: float | None = None) -> CheckResults:
        """Check a batch: Order values, dicts, tuples, objects with the same attributes, or a dict of columns."""
        batch, ids = col.encode_orders(orders)
        response = self._unary("CheckOrders", pb.CheckOrdersRequest(orders=batch), timeout)
        return CheckResults(response.result, ids)

    def check_columns(
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
        """Check a batch given as columns (lists or numpy arrays); price defaults to market orders."""
        columns = col.order_columns(client_order_id, account, symbol, side, quantity, price)
        return self.check(columns, timeout=timeout)

    def check_stream(self, batches: Iterable[Any], *, timeout: float | None = None) -> Iterator[CheckResults]:
        """Check batches over one CheckOrderStream call; yields one CheckResults per batch, in order.

        The stream has no deadline unless ``timeout`` is given. A batch that cannot be encoded ends
        the stream after the batches before it are answered, then raises its ValueError here.
        Closing the returned iterator early cancels the call.
        """
        pending: collections.deque[list[str]] = collections.deque()
        failure: list[BaseException] = []

        def requests() -> Iterator[pb.CheckOrderStreamRequest]:
            try:
                for batch in batches:
                    encoded, ids = col.encode_orders(batch)
                    pending.append(ids)
                    yield pb.CheckOrderStreamRequest(orders=encoded)
            except Exception as exc:  # surfaced to the caller below, not lost in grpc's request thread
                failure.append(exc)

        call = self._stub.CheckOrderStream(requests(), timeout=timeout)
        try:
            for response in call:
                yield CheckResults(response.result, pending.popleft())
        except grpc.RpcError as exc:
            if failure:
                raise failure[0] from None
            raise RiskdError.from_rpc(exc, "CheckOrderStream", self.target) from exc
        finally:
            call.cancel()  # no-op when the call already finished
        if failure:
            raise failure[0]

    # ------------------------------------------------------------------ executions, prices, positions

    def report_executions(self, executions: Any, *, timeout: float | None = None) -> ExecutionResults:
        """Apply fills, cancels, venue rejects and expiries (Execution values, dicts or columns).

        A fill that names its account, symbol and side moves that position even when the server
        does not know the order (see Execution).
        """
        request = col.encode_executions(executions)
        response = self._unary("ReportExecutions", request, timeout)
        return ExecutionResults(
            client_order_id=tuple(request.client_order_id),
            applied=tuple(response.applied),
            errors=tuple(response.error),
            state_version=response.state_version,
        )

    def update_prices(
        self, prices: Mapping[str, float] | Any, price: Any = None, *, timeout: float | None = None
    ) -> StateChange:
        """Set marks: update_prices({"AAPL": 187.5}) or update_prices(symbols, prices)."""
        response = self._unary("UpdatePrices", col.encode_prices(prices, price), timeout)
        return StateChange(response.updated, response.state_version)

    def load_positions(self, positions: Any, *, timeout: float | None = None) -> StateChange:
        """Replace positions: Position values, (account, symbol, quantity) tuples, dicts or columns."""
        response, persisted = self._unary_persisted("LoadPositions", col.encode_positions(positions), timeout)
        return StateChange(response.loaded, response.state_version, persisted)

    # ------------------------------------------------------------------ limits

    def upsert_limits(self, limits: Any, *, timeout: float | None = None) -> LimitsChange:
        """Insert or replace limits by id; the server validates all of them or applies none."""
        response, persisted = self._unary_persisted("UpsertLimits", col.encode_limits(limits), timeout)
        return LimitsChange(response.upserted, response.limits_version, (), persisted)

    def delete_limits(self, limit_ids: str | Iterable[str], *, timeout: float | None = None) -> LimitsChange:
        request = pb.DeleteLimitsRequest(limit_ids=col.limit_ids(limit_ids))
        response, persisted = self._unary_persisted("DeleteLimits", request, timeout)
        return LimitsChange(response.deleted, response.limits_version, tuple(response.not_found), persisted)

    def list_limits(
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
        response = self._unary("ListLimits", request, timeout)
        return LimitListing(tuple(col.decode_limit(m) for m in response.limits), response.limits_version)

    def list_templates(self, *, timeout: float | None = None) -> list[TemplateInfo]:
        """The limit templates the server knows, by name."""
        response = self._unary("ListTemplates", pb.ListTemplatesRequest(), timeout)
        return [lio.decode_template(t) for t in response.templates]

    def apply_template(
        self,
        account: str,
        template: str,
        *,
        scale: float = 1.0,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> TemplateApplied:
        """Expand a template for an account (thresholds x scale) and upsert it; dry_run only diffs.
        Applying it again changes nothing (its limit ids are ACCOUNT:TEMPLATE:SUFFIX)."""
        request = pb.ApplyTemplateRequest(
            account=account, template=template, scale=lio.valid_scale(scale), dry_run=dry_run
        )
        response, persisted = self._unary_persisted("ApplyTemplate", request, timeout)
        return TemplateApplied(
            tuple(col.decode_limit(m) for m in response.limits),
            response.upserted,
            response.limits_version,
            lio.decode_diff(response.diff),
            persisted,
        )

    def export_limit_chunks(
        self,
        *,
        account: str = "",
        symbol: str = "",
        kind: str | int | None = None,
        template: str = "",
        chunk_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[pb.ExportLimitsResponse]:
        """The export's raw chunks (for writers that want the messages, e.g. write_jsonl)."""
        call = self._stub.ExportLimits(
            lio.export_request(account, symbol, kind, template, chunk_size), timeout=timeout
        )
        try:
            yield from call
        except grpc.RpcError as exc:
            raise RiskdError.from_rpc(exc, "ExportLimits", self.target) from exc
        finally:
            call.cancel()

    def export_limits(
        self,
        *,
        account: str = "",
        symbol: str = "",
        kind: str | int | None = None,
        template: str = "",
        chunk_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[LimitSpec]:
        """Every limit (filtered as list_limits) in limit_id order, streamed in chunks from one
        limit-set version; no deadline unless ``timeout`` is given."""
        for chunk in self.export_limit_chunks(
            account=account,
            symbol=symbol,
            kind=kind,
            template=template,
            chunk_size=chunk_size,
            timeout=timeout,
        ):
            yield from map(col.decode_limit, chunk.limits)

    def import_limits(
        self,
        limits: Any,
        *,
        dry_run: bool = False,
        replace: bool = False,
        max_changes: int = 0,
        chunk_size: int = lio.DEFAULT_CHUNK,
        timeout: float | None = None,
    ) -> ImportResult:
        """Import limits (a JSON Lines path or open file, or an iterable of LimitSpec/dicts), streamed
        in chunks: upsert by limit_id, all or nothing; replace also deletes the limits not given;
        dry_run returns the diff and changes nothing. A bad record raises RiskdError naming its
        line (or position) and field; a file that is not valid JSON Lines raises ValueError."""
        source = _Capture(lio.import_source(limits))
        requests = lio.import_requests(
            source, dry_run=dry_run, replace=replace, max_changes=max_changes, chunk_size=chunk_size
        )
        try:
            response, call = self._stub.ImportLimits.with_call(requests, timeout=timeout)
        except grpc.RpcError as exc:
            source.reraise()
            raise RiskdError.from_rpc(exc, "ImportLimits", self.target) from exc
        return ImportResult(
            lio.decode_diff(response.diff),
            response.limits_version,
            response.records,
            response.dry_run,
            col.persisted_flag(call.trailing_metadata()),
        )

    def limit_history(self, limit_id: str, *, timeout: float | None = None) -> list[LimitVersionInfo]:
        """The stored versions of a limit (the server's limit_history setting), newest first."""
        response = self._unary("LimitHistory", pb.LimitHistoryRequest(limit_id=limit_id), timeout)
        return [lio.decode_version(v) for v in response.versions]

    # ------------------------------------------------------------------ trading state

    def set_trading_state(
        self, state: str | int, account: str = "", reason: str = "", *, timeout: float | None = None
    ) -> TradingStateChange:
        """Set an account's state ("ACTIVE", "REDUCING", "HALTED"); account "" means firm-wide."""
        request = pb.SetTradingStateRequest(
            account=account,
            state=col.parse_trading_state(state),  # type: ignore[arg-type]
            reason=reason,
        )
        response, persisted = self._unary_persisted("SetTradingState", request, timeout)
        return TradingStateChange(col.state_name(response.previous), response.state_version, persisted)

    def halt(
        self, account: str = "", reason: str = "", *, timeout: float | None = None
    ) -> TradingStateChange:
        return self.set_trading_state("HALTED", account, reason, timeout=timeout)

    def reduce_only(
        self, account: str = "", reason: str = "", *, timeout: float | None = None
    ) -> TradingStateChange:
        return self.set_trading_state("REDUCING", account, reason, timeout=timeout)

    def resume(
        self, account: str = "", reason: str = "", *, timeout: float | None = None
    ) -> TradingStateChange:
        return self.set_trading_state("ACTIVE", account, reason, timeout=timeout)

    # ------------------------------------------------------------------ alerts

    def query_alerts(
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
        return al.decode_page(self._unary("QueryAlerts", request, timeout))

    def alert_stats(self, top: int = 10, *, timeout: float | None = None) -> AlertStatsReport:
        """Alert occurrences over the last 1 min, 15 min and 1 h: per check and the ``top``
        offending accounts."""
        request = pb.GetAlertStatsRequest(top=top)
        return al.decode_stats(self._unary("GetAlertStats", request, timeout))

    def subscribe_alerts(
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
    ) -> Generator[AlertBatch, None, None]:
        """Live alerts, as AlertBatch values (alerts oldest first, dropped, missed); close the
        generator (or leave the for loop) to unsubscribe.

        Filters: ``min_severity`` ("INFO", "WARNING", "CRITICAL"), ``accounts``, ``symbols``,
        ``kinds`` ("CHECK_REJECT", "TRADING_STATE", ...) and ``checks`` ("MAX_POSITION", ...),
        names in any case or numbers; empty means any. With ``after_seq`` the server first replays
        what its history still holds after that seq (``missed`` counts what it no longer holds).
        With ``reconnect`` (the default) a broken stream, a restarting server or a refusal
        (UNAVAILABLE, RESOURCE_EXHAUSTED ...) is retried with jittered exponential backoff up to
        ``max_backoff`` seconds, resuming after the last seq seen; other errors raise RiskdError.
        Without it the first error raises. Batches carry ``dropped`` when this reader was too slow.
        """
        flt = al.alert_filter(min_severity, accounts, symbols, kinds, checks)
        resume = al.Resume(after_seq)
        backoff = al.Backoff(max_backoff)
        while True:
            request = pb.SubscribeAlertsRequest(filter=flt, after_seq=resume.after_seq)
            call = self._stub.SubscribeAlerts(request, wait_for_ready=reconnect or None)
            try:
                if resume.connected(call.initial_metadata()):
                    backoff.reset()
                for response in call:
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
            time.sleep(delay)

    # ------------------------------------------------------------------ VaR sizing

    def size_positions(
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
        return col.decode_sizes(self._unary("SizePositions", request, timeout))

    # ------------------------------------------------------------------ risk snapshots

    def risk_snapshot(
        self, accounts: str | Iterable[str] = (), *, timeout: float | None = None
    ) -> RiskSnapshot:
        """Accounts' exposure, open orders, positions, trading state and closest limits now.

        accounts: one name or several; none means every account the server knows. Unknown
        accounts are left out of the result (compare with what you asked for).
        """
        request = pb.GetRiskSnapshotRequest(accounts=col.account_names(accounts))
        return col.decode_snapshot(self._unary("GetRiskSnapshot", request, timeout))

    def stream_risk_snapshots(
        self,
        accounts: str | Iterable[str] = (),
        min_interval_ms: int = 250,
        *,
        timeout: float | None = None,
    ) -> Iterator[RiskSnapshot]:
        """Follow accounts' risk: first every account asked for (none: all), then only the accounts
        that changed, at most one RiskSnapshot per min_interval_ms (0: the server's 250; at least
        10), nothing while nothing changes. The stream has no deadline unless ``timeout`` is
        given; closing the returned iterator cancels the call.
        """
        request = pb.StreamRiskSnapshotsRequest(
            accounts=col.account_names(accounts), min_interval_ms=min_interval_ms
        )
        call = self._stub.StreamRiskSnapshots(request, timeout=timeout)
        try:
            for response in call:
                yield col.decode_snapshot(response)
        except grpc.RpcError as exc:
            raise RiskdError.from_rpc(exc, "StreamRiskSnapshots", self.target) from exc
        finally:
            call.cancel()

    # ------------------------------------------------------------------ returns and the risk model

    def import_returns(
        self, source: Any, *, chunk_rows: int = rt.CHUNK_ROWS, timeout: float | None = None
    ) -> ReturnsImported:
        """Upsert daily returns (symbol, day YYYYMMDD, simple return) over one ImportReturns stream.

        source: a CSV path (header symbol,day,ret; streamed in chunks of chunk_rows, constant
        memory) or an iterable of chunks (mappings of the columns symbol/day/ret, or
        (symbols, days, rets) triples). All or nothing: a bad row (ReturnsFileError naming the
        line, or RiskdError INVALID_ARGUMENT naming chunk, field and row) imports none of it.
        No deadline unless ``timeout`` is given (a large file takes a while).
        """
        tally = [0]
        failure: list[BaseException] = []
        started = threading.Event()
        holder: list[grpc.Future] = []

        def requests() -> Iterator[pb.ImportReturnsRequest]:
            try:
                yield from rt.counted(rt.chunks_of(source, chunk_rows), tally)
            except Exception as exc:  # cancel the call: ending the stream would commit what was sent
                failure.append(exc)
                started.wait(10)
                if holder:
                    holder[0].cancel()

        future = self._stub.ImportReturns.future(requests(), timeout=timeout)
        holder.append(future)
        started.set()
        try:
            response = future.result()
        except grpc.FutureCancelledError:
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

    def refresh_risk_model(self, *, timeout: float | None = 600.0) -> ModelRefreshed:
        """Rebuild the risk model from the stored returns now (the server builds in a worker
        thread; seconds at 5,000 symbols) and swap it in."""
        response = self._unary("RefreshRiskModel", pb.RefreshRiskModelRequest(), timeout)
        return ModelRefreshed(response.model_version, response.build_seconds)

    def get_risk_model(self, include_symbols: bool = False, *, timeout: float | None = None) -> RiskModelInfo:
        """The risk model in force (model_version empty: none yet); with include_symbols also
        every symbol and its daily volatility."""
        request = pb.GetRiskModelRequest(include_symbols=include_symbols)
        return rt.decode_model(self._unary("GetRiskModel", request, timeout))


class _Capture:
    """Wraps a request source: gRPC swallows an exception raised while it reads requests (the call
    just fails), so keep it and raise it instead of the RPC error."""

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._items
        except Exception as exc:
            self.error = exc
            raise

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error
