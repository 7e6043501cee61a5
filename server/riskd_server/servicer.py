"""The gRPC servicer: translates protobuf <-> engine columns and engine errors <-> gRPC statuses.

It holds no state and makes no decisions: requests are parsed and replies encoded by the wire
package (riskd_server.wire), limit upserts and deletes go through a LimitAdmin. Mutating calls run synchronously on the event loop (no
await between reading and writing the state), which serialises them; admin calls then wait for
the write-behind to commit so an acknowledged limit or halt survives a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import NoReturn

import grpc
import numpy as np
import psycopg
from google.protobuf.message import DecodeError, Message

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc

from .alerts.fanout import AlertHub, EmptyHistory, SubscribeError, alert_filter
from .alerts.model import varint, wire_of
from .alerts.pipeline import AlertPipeline
from .alerts.queries import Older, OlderUnavailable, QueryError, query_alerts, top_of
from .changes import LimitVersion
from .engine import Backpressure, BatchError, Engine, ExecOutcome
from .journal import records as jrec
from .journal.tap import JournalTap
from .limit_admin import LimitAdmin
from .limit_io import (
    DEFAULT_MAX_CHANGES,
    MAX_LISTED_CHANGES,
    Diff,
    ExportFilter,
    ImportStager,
    LimitImportError,
    chunk_size,
    next_chunk,
    plan_import,
    record_errors,
    sorted_ids,
)
from .limits import Limit, LimitValidationError, limit_errors, validate_limits
from .risk import rpc as risk_rpc
from .risk.returns import ReturnsInputError
from .risk.service import ModelBuildError, NoReturns, RiskModelService
from .risk.sizer import Sizer, SizingError
from .risk.sizing_wire import SizesWire, server_micros_field
from .snapshots import IntervalError, SnapshotHub, interval_of
from .templates import BUILTINS, TemplateSet
from .wire.encode import encode_response, executions_wire, warm_up
from .wire.request import parse_check_request, parse_report_request
from .wire.snapshot import SnapshotTooLarge, SnapshotWire

log = logging.getLogger("riskd.servicer")

Barrier = Callable[..., Awaitable[bool]]  # (rows: int = 0): committed in time?
# The stored versions of a limit, newest first (store.Store.limit_history).
HistoryReader = Callable[[str], Awaitable[list[LimitVersion]]]
SERVICE = "riskd.v1.RiskService"


async def _no_barrier(rows: int = 0) -> bool:
    return True


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
        template=msg.template,
        reference_volatility=msg.reference_volatility,
        min_scale=msg.min_scale,
    )


def limit_to_pb(lim: Limit, effective_threshold: float | None = None) -> pb.Limit:
    """The wire Limit; effective_threshold is what the checks enforce (LimitBook.effective_threshold),
    the configured threshold when not given."""
    return pb.Limit(
        limit_id=lim.limit_id,
        kind=lim.kind,  # type: ignore[arg-type]
        account=lim.account,
        symbol=lim.symbol,
        threshold=lim.threshold,
        warn_fraction=lim.warn_fraction,
        disabled=lim.disabled,
        description=lim.description,
        template=lim.template,
        reference_volatility=lim.reference_volatility,
        min_scale=lim.min_scale,
        effective_threshold=lim.threshold if effective_threshold is None else effective_threshold,
    )


def import_record_errors(msg: pb.Limit, lim: Limit, line: int) -> list[str]:
    """The exact problems of one imported record, as ``field: why``: an upsert's rules, so when
    the upsert accepts more (dynamic limits), the import does too."""
    return record_errors(limit_errors(lim, 0), 0)


def diff_to_pb(diff: Diff) -> pb.LimitDiff:
    return pb.LimitDiff(
        added=diff.added,
        changed=diff.changed,
        deleted=diff.deleted,
        unchanged=diff.unchanged,
        changes=[
            pb.LimitChange(
                limit_id=c.limit_id,
                old=limit_to_pb(c.old) if c.old is not None else None,
                new=limit_to_pb(c.new) if c.new is not None else None,
            )
            for c in diff.changes
        ],
        changes_omitted=diff.omitted,
    )


def _export_chunk(
    ids, limits, keep: ExportFilter, size: int, version: int, effective: Callable[[Limit], float]
) -> pb.ExportLimitsResponse | None:
    chunk = next_chunk(ids, limits, keep, size)
    if not chunk:
        return None
    return pb.ExportLimitsResponse(
        limits=[limit_to_pb(lim, effective(lim)) for lim in chunk], limits_version=version
    )


def _stage_chunk(stager: ImportStager, request: pb.ImportLimitsRequest) -> bool:
    return stager.add(request.limits, request.first_line)


class RiskServicer(pb_grpc.RiskServiceServicer):
    """riskd.v1.RiskService over an Engine."""

    def __init__(
        self,
        engine: Engine,
        barrier: Barrier = _no_barrier,
        *,
        alerts: AlertPipeline | None = None,
        older_alerts: Older | None = None,
        alert_hub: AlertHub | None = None,
        snapshots: SnapshotHub | None = None,
        templates: TemplateSet | None = None,
        limit_history: HistoryReader | None = None,
        journal: JournalTap | None = None,
    ) -> None:
        self._engine = engine
        # The local journal (journal.tap): every change is appended before its reply; None = off.
        self._journal = journal
        self._limits = LimitAdmin(engine)
        self._templates = templates or TemplateSet(dict(BUILTINS))
        self._history = limit_history
        self._barrier = barrier
        self._alerts = alerts
        self._older_alerts = older_alerts
        # Without the alert path (tests, tools) SubscribeAlerts still works: live only, nothing held.
        self.alert_hub = alert_hub if alert_hub is not None else AlertHub(EmptyHistory())
        self.snapshots = snapshots or SnapshotHub(engine)
        self._poke = self.snapshots.poke  # after every change: O(1), see snapshots.SnapshotHub
        self._snapshot_wire = SnapshotWire()
        # Set by the server once the store is open (None: ImportReturns and RefreshRiskModel are
        # refused FAILED_PRECONDITION, e.g. on an engine-only server).
        self.returns_importer: risk_rpc.ReturnsImporter | None = None
        self.risk_models: RiskModelService | None = None
        self._sizer = Sizer(engine)
        self._sizes_wire = SizesWire()
        warm_up()

    def _check_wire(self, request: bytes) -> bytes:
        """Serialized CheckOrdersRequest -> serialized CheckOrdersResponse (or the stream's, alike).

        wire.request parses the bytes (numba; protobuf for what it leaves, which may raise
        DecodeError) and the engine checks the parsed orders.
        """
        tap = self._journal
        if tap is None:
            reply = encode_response(self._engine.check_parsed(parse_check_request(request)))
        else:
            tap.require_room(2 * len(request))
            now = self._engine.now()
            reply = encode_response(self._engine.check_parsed(parse_check_request(request), now))
            tap.check(now, request, reply)
        self._poke()
        return reply

    async def CheckOrdersRaw(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """CheckOrders on the serialized request (registered with no (de)serializer, see risk_handlers)."""
        try:
            return self._check_wire(request)
        except DecodeError as exc:
            await _invalid(context, f"malformed CheckOrdersRequest: {exc}")
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc, "orders.")

    async def CheckOrderStreamRaw(
        self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """CheckOrderStream on serialized messages: one reply per message, in order.

        A stream message has CheckOrdersRequest's layout (and its reply CheckOrdersResponse's), so
        each takes the raw CheckOrders path; a one-order message parses to scalars there. An error
        ends the stream with INVALID_ARGUMENT naming message[index].
        """
        index = 0
        check = self._check_wire
        async for request in request_iterator:
            try:
                reply = check(request)
            except DecodeError as exc:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"message[{index}]: malformed CheckOrderStreamRequest: {exc}",
                )
            except (BatchError, Backpressure) as exc:
                await _abort(context, exc, f"message[{index}].orders.")
            yield reply
            index += 1

    def _report_wire(self, request: bytes) -> ExecOutcome:
        """ReportExecutions on the serialized request (parsed by wire.request.parse_report_request)."""
        tap = self._journal
        if tap is not None:
            tap.require_room(len(request))
        r = parse_report_request(request)
        out = self._engine.report_executions(
            r.client_order_id, r.type, r.quantity, r.price, account=r.account, symbol=r.symbol, side=r.side
        )
        if tap is not None:
            tap.input(jrec.EXECUTIONS, self._engine.now(), request)
        self._poke()
        return out

    async def ReportExecutionsRaw(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """ReportExecutions on bytes, answered with bytes joined from prepared pieces."""
        try:
            out = self._report_wire(request)
        except DecodeError as exc:
            await _invalid(context, f"malformed ReportExecutionsRequest: {exc}")
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        return executions_wire(out.applied, out.error, out.state_version, out.status)

    async def UpdatePrices(self, request: pb.UpdatePricesRequest, context: grpc.aio.ServicerContext):
        try:
            with self._journaled(jrec.PRICES, request):
                updated = self._engine.update_prices(
                    request.symbol, np.asarray(request.price, dtype=np.float64)
                )
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        self._poke()
        return pb.UpdatePricesResponse(updated=updated, state_version=self._engine.state_version)

    async def LoadPositions(self, request: pb.LoadPositionsRequest, context: grpc.aio.ServicerContext):
        try:
            with self._journaled(jrec.POSITIONS, request):
                loaded = self._engine.load_positions(request.account, request.symbol, request.quantity)
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        self.snapshots.touch(request.account)  # a position without a mark moves no exposure sum
        await self._durable(context)
        return pb.LoadPositionsResponse(loaded=loaded, state_version=self._engine.state_version)

    async def UpsertLimits(self, request: pb.UpsertLimitsRequest, context: grpc.aio.ServicerContext):
        limits = [limit_from_pb(msg) for msg in request.limits]
        try:
            version = await self._limits.upsert(limits, who=context.peer())
        except (BatchError, Backpressure, LimitValidationError) as exc:
            await _abort(context, exc)
        self._poke()
        await self._durable(context)
        return pb.UpsertLimitsResponse(upserted=len(limits), limits_version=version)

    async def DeleteLimits(self, request: pb.DeleteLimitsRequest, context: grpc.aio.ServicerContext):
        try:
            deleted, missing, version = await self._limits.delete(list(request.limit_ids), who=context.peer())
        except Backpressure as exc:
            await _abort(context, exc)
        self._poke()
        await self._durable(context)
        return pb.DeleteLimitsResponse(deleted=deleted, not_found=missing, limits_version=version)

    async def ListLimits(self, request: pb.ListLimitsRequest, context: grpc.aio.ServicerContext):
        book = self._engine.limits
        limits = self._engine.list_limits(request.account, request.symbol, request.kind)
        if request.template:
            limits = [lim for lim in limits if lim.template == request.template]
        return pb.ListLimitsResponse(
            limits=[limit_to_pb(lim, self._engine.effective_threshold(lim)) for lim in limits],
            limits_version=book.version,
        )

    # ------------------------------------------------------------------ templates, import, export, history

    async def ListTemplates(self, request: pb.ListTemplatesRequest, context: grpc.aio.ServicerContext):
        return pb.ListTemplatesResponse(
            templates=[
                pb.LimitTemplate(
                    name=t.name,
                    description=t.description,
                    limits=[limit_to_pb(lim) for lim in t.limits],
                    source=t.source,
                )
                for t in self._templates.sorted()
            ]
        )

    async def ApplyTemplate(self, request: pb.ApplyTemplateRequest, context: grpc.aio.ServicerContext):
        template = self._templates.get(request.template)
        if template is None:
            known = ", ".join(sorted(self._templates.templates))
            await _invalid(context, f"template: unknown template {request.template!r} (known: {known})")
        if not request.account:
            await _invalid(context, "account: required")
        scale = request.scale or 1.0
        if not math.isfinite(scale) or scale <= 0:
            await _invalid(context, f"scale: must be finite and > 0, got {request.scale}")
        limits = template.expand(request.account, scale)
        staged = {lim.limit_id: lim for lim in limits}
        try:
            validate_limits(limits)
            diff, version = await self._limits.apply(
                lambda current: plan_import(
                    current, staged, max_changes=len(limits), dry_run=request.dry_run
                ),
                who=context.peer(),
                action="template",
            )
        except (BatchError, Backpressure, LimitValidationError) as exc:
            await _abort(context, exc)
        changed = not request.dry_run and not diff.empty
        if changed:
            self._poke()
            await self._durable(context)
        return pb.ApplyTemplateResponse(
            limits=[limit_to_pb(lim) for lim in limits],
            upserted=diff.added + diff.changed if changed else 0,
            limits_version=version,
            diff=diff_to_pb(diff),
        )

    async def ExportLimits(self, request: pb.ExportLimitsRequest, context: grpc.aio.ServicerContext):
        """The limit set in force at the call, in limit_id order, chunk by chunk: the book is
        immutable, so the export is consistent however long the client takes; each chunk is built
        in a worker thread, so the event loop serves other calls in between."""
        book = self._engine.limits
        f = request.filter
        keep = ExportFilter(f.account, f.symbol, f.kind, f.template)
        size = chunk_size(request.chunk_size)
        ids = await asyncio.to_thread(sorted_ids, book.limits)
        accounts, symbols = self._engine.accounts.by_name, self._engine.symbols.by_name

        def effective(lim: Limit) -> float:  # as of the book exported
            return book.effective_threshold(lim, accounts, symbols)

        sent = False
        while True:
            chunk = await asyncio.to_thread(
                _export_chunk, ids, book.limits, keep, size, book.version, effective
            )
            if chunk is None:
                break
            sent = True
            yield chunk
        if not sent:
            yield pb.ExportLimitsResponse(limits_version=book.version)

    async def ImportLimits(self, request_iterator, context: grpc.aio.ServicerContext):
        """Stage every chunk (converted and validated in a worker thread as it arrives), then plan
        against the set in force and swap the new set in once; all or nothing."""
        started = time.perf_counter()
        stager = ImportStager(import_record_errors, self._engine.limits.limits)
        first: pb.ImportLimitsRequest | None = None
        async for request in request_iterator:
            first = first or request
            if not await asyncio.to_thread(_stage_chunk, stager, request):
                break  # the import is refused already: stop reading
        dry_run = bool(first and first.dry_run)
        replace = bool(first and first.replace)
        max_changes = min((first.max_changes if first else 0) or DEFAULT_MAX_CHANGES, MAX_LISTED_CHANGES)
        try:
            staged = stager.result()
        except LimitImportError as exc:
            await _invalid(context, str(exc))
        records = stager.records
        staged_at = time.perf_counter()
        try:
            diff, version = await self._limits.apply(
                lambda current: plan_import(
                    current, staged, replace=replace, max_changes=max_changes, dry_run=dry_run
                ),
                who=context.peer(),
                action="import",
                size=records,
            )
        except (BatchError, Backpressure, LimitValidationError) as exc:
            await _abort(context, exc)
        installed_at = time.perf_counter()
        if not dry_run and not diff.empty:
            self._poke()
            await self._durable(context, diff.added + diff.changed + diff.deleted)
        log.info(
            "import from %s: %d records read and checked in %.1fs, planned%s in %.1fs, committed in %.1fs:"
            " %d added, %d changed, %d deleted, %d unchanged%s",
            context.peer(),
            records,
            staged_at - started,
            "" if dry_run or diff.empty else " and installed",
            installed_at - staged_at,
            time.perf_counter() - installed_at,
            diff.added,
            diff.changed,
            diff.deleted,
            diff.unchanged,
            " (dry run)" if dry_run else "",
        )
        return pb.ImportLimitsResponse(
            diff=diff_to_pb(diff), limits_version=version, records=records, dry_run=dry_run
        )

    async def LimitHistory(self, request: pb.LimitHistoryRequest, context: grpc.aio.ServicerContext):
        if not request.limit_id:
            await _invalid(context, "limit_id: required")
        if self._history is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "limit history needs the database")
        await self._barrier()  # the latest change is committed (or the wait timed out)
        try:
            versions = await self._history(request.limit_id)
        except Exception as exc:
            log.warning("reading limit history failed: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"limit history unavailable: {exc}")
        out = []
        for v in versions:
            msg = pb.LimitVersion(limits_version=v.limits_version, who=v.who, action=v.action)
            if v.limit is not None:
                msg.limit.CopyFrom(limit_to_pb(v.limit))
            msg.time.FromNanoseconds(round(v.ts * 1e9))
            out.append(msg)
        return pb.LimitHistoryResponse(versions=out)

    async def SetTradingState(self, request: pb.SetTradingStateRequest, context: grpc.aio.ServicerContext):
        try:
            with self._journaled(jrec.TRADING_STATE, request):
                previous = self._engine.set_trading_state(request.account, request.state, request.reason)
        except (BatchError, Backpressure) as exc:
            await _abort(context, exc)
        self._poke()
        await self._durable(context)
        return pb.SetTradingStateResponse(previous=previous, state_version=self._engine.state_version)  # type: ignore[arg-type]

    async def SubscribeAlertsRaw(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        """SubscribeAlerts on the serialised request; responses are written as prepared bytes."""
        await self.alert_hub.stream(request, context)

    # ------------------------------------------------------------------ alerts

    def _alert_pipeline(self) -> AlertPipeline:
        if self._alerts is None:
            raise QueryError("alerts are not enabled on this server")
        return self._alerts

    async def QueryAlertsRaw(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """QueryAlerts answered from the alerts' wire entries (each serialised once, when raised)."""
        try:
            msg = pb.QueryAlertsRequest.FromString(request)
            flt = alert_filter(msg.filter)
            page = await query_alerts(
                self._alert_pipeline().history, flt, msg.before_seq, msg.page_size, self._older_alerts
            )
        except DecodeError as exc:
            await _invalid(context, f"malformed QueryAlertsRequest: {exc}")
        except (QueryError, SubscribeError) as exc:
            await _invalid(context, str(exc))
        except OlderUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        parts = [wire_of(a) for a in page.alerts]
        if page.next_before_seq:
            parts.append(b"\x10" + varint(page.next_before_seq))
        return b"".join(parts)

    async def GetAlertStats(self, request: pb.GetAlertStatsRequest, context: grpc.aio.ServicerContext):
        try:
            top = top_of(request.top)
            pipeline = self._alert_pipeline()
        except QueryError as exc:
            await _invalid(context, str(exc))
        windows = pipeline.stats.snapshot(pipeline.clock(), top)
        totals = pipeline.stats_snapshot()
        return pb.GetAlertStatsResponse(
            windows=[
                pb.AlertStatsWindow(
                    seconds=w.seconds,
                    total=w.total,
                    by_check=[pb.CheckCount(check=c, count=n) for c, n in w.by_check],  # type: ignore[arg-type]
                    top_accounts=[pb.AccountCount(account=a, count=n) for a, n in w.top_accounts],
                    accounts=w.accounts,
                )
                for w in windows
            ],
            raised=totals.raised,
            occurrences=totals.occurrences,
            lost=totals.lost_occurrences,
            last_seq=totals.last_seq,
        )

    async def GetRiskSnapshotRaw(
        self, request: pb.GetRiskSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """GetRiskSnapshot, answered with bytes (wire.snapshot; registered without a serializer)."""
        try:
            return await self._snapshot_wire.encode(self.snapshots.read(request.accounts))
        except SnapshotTooLarge as exc:
            await _too_large(context, exc)

    async def StreamRiskSnapshotsRaw(
        self, request: pb.StreamRiskSnapshotsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """StreamRiskSnapshots: every account asked for, then the ones that changed, each response
        at least min_interval_ms after the previous one (snapshots.SnapshotHub)."""
        try:
            interval = interval_of(request.min_interval_ms)
        except IntervalError as exc:
            await _invalid(context, f"min_interval_ms: {exc}")
        hub = self.snapshots
        sub = hub.subscribe(request.accounts, interval)
        try:
            while True:
                yield await self._snapshot_wire.encode(await hub.next(sub))
        except SnapshotTooLarge as exc:
            await _too_large(context, exc)
        finally:  # cancelled (re-raised: grpc/grpc#43360) or ended: nothing of it stays
            hub.unsubscribe(sub)

    # ------------------------------------------------------------------ returns and the risk model

    async def ImportReturns(
        self, request_iterator: AsyncIterator[pb.ImportReturnsRequest], context: grpc.aio.ServicerContext
    ):
        """Stream chunks of (symbol, day, ret) into PostgreSQL, all or nothing (risk.rpc)."""
        importer = self.returns_importer
        if importer is None:
            await _precondition(context, "ImportReturns needs the database (not available on this server)")
        try:
            result = await importer.run(request_iterator)
        except ReturnsInputError as exc:
            await _invalid(context, str(exc))
        except risk_rpc.ImportBusy as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except risk_rpc.ImportIdle as exc:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
        except (TimeoutError, psycopg.Error) as exc:
            log.warning("ImportReturns failed: %s: %s", type(exc).__name__, exc)
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"ImportReturns: database error, nothing imported: {type(exc).__name__}: {exc}".strip(),
            )
        log.info(
            "imported %d returns (%d new or changed), %d symbols; COPY %.3fs, upsert %.3fs",
            result.rows,
            result.upserted,
            result.symbols,
            result.copy_seconds,
            result.upsert_seconds,
        )
        return risk_rpc.import_response(result)

    async def RefreshRiskModel(self, request: pb.RefreshRiskModelRequest, context: grpc.aio.ServicerContext):
        """Rebuild the risk model now (a worker thread) and swap it in."""
        models = self.risk_models
        if models is None:
            await _precondition(context, "RefreshRiskModel needs the database (not available on this server)")
        try:
            done = await models.refresh()
        except NoReturns:
            await _precondition(
                context, "no returns stored: import some first (riskd returns import FILE.csv)"
            )
        except ModelBuildError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"{exc}; the previous model stays in force")
        return pb.RefreshRiskModelResponse(model_version=done.model.version, build_seconds=done.build_seconds)

    async def GetRiskModel(self, request: pb.GetRiskModelRequest, context: grpc.aio.ServicerContext):
        return risk_rpc.model_response(self._engine.risk_model, request.include_symbols)

    # ------------------------------------------------------------------ VaR sizing

    async def SizePositionsRaw(
        self, request: pb.SizePositionsRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """SizePositions, answered with bytes (risk.sizing_wire). The account is read on the loop
        (the engine is not thread-safe); the sizing runs on the loop for a few symbols and in a
        worker thread past SIZING_INLINE (measured: ~1 ms of work there; bench/sizing_bench.py)."""
        start = time.perf_counter()
        try:
            inputs = self._sizer.gather(
                request.account, request.symbols, request.var_budget, request.apply_limits
            )
        except SizingError as exc:
            await context.abort(grpc.StatusCode[exc.code], str(exc))
        if inputs.ask_row.shape[0] + inputs.held_row.shape[0] > SIZING_INLINE:
            result = await asyncio.to_thread(self._sizer.compute, inputs)
        else:
            result = self._sizer.compute(inputs)
        body = self._sizes_wire.encode(result)
        return body + server_micros_field((time.perf_counter() - start) * 1e6)

    def set_journal(self, tap: JournalTap) -> None:
        """Journal every change from now on (server start, after recovery): the servicer's
        requests, and the engine's limit installs through on_install_limits."""
        self._journal = tap
        self._limits.prepare = tap.prepare
        engine = self._engine
        engine.on_install_limits = lambda change, version: tap.limits(change, version, engine.now())

    @contextlib.contextmanager
    def _journaled(self, type_: int, request: Message) -> Iterator[None]:
        """Room in the journal before the body changes the engine; the request appended after it
        succeeded (journal.records' ``type_``). Off without a journal."""
        tap = self._journal
        if tap is None:
            yield
            return
        body = request.SerializeToString()
        tap.require_room(len(body))
        yield
        tap.input(type_, self._engine.now(), body)

    async def _durable(self, context: grpc.aio.ServicerContext, rows: int = 0) -> None:
        """Wait for the change to be committed (a big one, of ``rows`` rows, longer); tell the
        caller (trailer) if it is only queued."""
        persisted = await self._barrier(rows) if rows else await self._barrier()
        context.set_trailing_metadata((("riskd-persisted", "true" if persisted else "false"),))


# Asked plus held symbols past which SizePositions computes in a worker thread (above ~1 ms).
SIZING_INLINE = 1_000


def risk_handlers(servicer: RiskServicer) -> dict[str, grpc.RpcMethodHandler]:
    """RiskService's method handlers: the generated ones, except that the hot calls (CheckOrders,
    CheckOrderStream, ReportExecutions), SubscribeAlerts and QueryAlerts take or return raw bytes
    (RiskServicer has no protobuf handlers for them; tests/oracle_servicer.py adds the hot ones as the
    tests' reference), and the snapshot calls and SizePositions return bytes (wire.snapshot,
    risk.sizing_wire)."""
    capture = _Capture()
    pb_grpc.add_RiskServiceServicer_to_server(servicer, capture)
    handlers = dict(capture.handlers)
    handlers["CheckOrders"] = grpc.unary_unary_rpc_method_handler(servicer.CheckOrdersRaw)
    handlers["CheckOrderStream"] = grpc.stream_stream_rpc_method_handler(servicer.CheckOrderStreamRaw)
    handlers["ReportExecutions"] = grpc.unary_unary_rpc_method_handler(servicer.ReportExecutionsRaw)
    handlers["QueryAlerts"] = grpc.unary_unary_rpc_method_handler(servicer.QueryAlertsRaw)
    handlers["SubscribeAlerts"] = grpc.unary_stream_rpc_method_handler(servicer.SubscribeAlertsRaw)
    handlers["SizePositions"] = grpc.unary_unary_rpc_method_handler(
        servicer.SizePositionsRaw, request_deserializer=pb.SizePositionsRequest.FromString
    )
    handlers["GetRiskSnapshot"] = grpc.unary_unary_rpc_method_handler(
        servicer.GetRiskSnapshotRaw, request_deserializer=pb.GetRiskSnapshotRequest.FromString
    )
    handlers["StreamRiskSnapshots"] = grpc.unary_stream_rpc_method_handler(
        servicer.StreamRiskSnapshotsRaw, request_deserializer=pb.StreamRiskSnapshotsRequest.FromString
    )
    return handlers


def add_risk_service(servicer: RiskServicer, server) -> None:
    """Register RiskService on server (or a registrar) like the generated add_*_to_server does."""
    handlers = risk_handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


class _Capture:
    """Records the handlers generated registration code passes to a server."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        assert service == SERVICE
        self.handlers.update(handlers)


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, prefix: str = "") -> NoReturn:
    if isinstance(exc, Backpressure):
        log.warning("refusing work: %s", exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, LimitValidationError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, prefix + str(exc))
    raise AssertionError("unreachable: context.abort raises")


async def _too_large(context: grpc.aio.ServicerContext, exc: SnapshotTooLarge) -> NoReturn:
    log.warning("refusing a snapshot: %s", exc)
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    raise AssertionError("unreachable: context.abort raises")


async def _precondition(context: grpc.aio.ServicerContext, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, message)
    raise AssertionError("unreachable: context.abort raises")


async def _invalid(context: grpc.aio.ServicerContext, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("unreachable: context.abort raises")
