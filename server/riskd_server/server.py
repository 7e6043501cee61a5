"""Wiring: settings -> PostgreSQL (embedded or DSN) -> recovered engine -> gRPC server, and shutdown.

Start-up order matters: bind the ports first (gRPC, then the metrics endpoint when
``metrics_listen`` is set: a taken port fails before any database work), then
recover state and warm every kernel before the port reports SERVING, so the first RPC is as fast
as the millionth. Anything start() built is released again when a later step fails or start-up
is cancelled (SIGTERM while starting). Shutdown is the reverse: NOT_SERVING, stop accepting, end
idle streams, let in-flight RPCs finish, flush the write-behind, close the pool, stop the
embedded cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import psycopg
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from psycopg.conninfo import conninfo_to_dict

from riskd.v1 import risk_pb2

from .alerts.dedupe import Deduper
from .alerts.fanout import AlertHub
from .alerts.history import AlertHistory
from .alerts.mailer import DigestMailer, MailerConfig
from .alerts.model import Alert, AlertFilter
from .alerts.pipeline import AlertPipeline
from .alerts.probes import backlog_probe, breaker_probe, journal_failed_probe, journal_probe
from .alerts.relays import RelayProcesses, RelayStartError, loopback_target, relay_listen
from .alerts.stats import AlertStats
from .changes import LimitVersion
from .config import Settings, parse_addresses
from .durable import Durability, RecoveryError, load_checkpoint, open_durable
from .engine import Engine, EngineConfig
from .metrics.rpc import RpcTimings
from .metrics.sources import (
    watch_alerts,
    watch_engine,
    watch_journal,
    watch_mailer,
    watch_store,
    watch_subscribers,
    watch_write_behind,
)
from .reflection import enable_reflection
from .risk.build import BuildParams
from .risk.rpc import ReturnsImporter
from .risk.service import RiskModelService
from .servicer import RiskServicer, add_risk_service
from .snapshots import SnapshotHub
from .store import Store, WriteBehind
from .store._writebehind import ROW_ALLOWANCE
from .store.feeder import Feeder, touch_hurry
from .store.feeder_process import FeederProcess
from .templates import TemplateError, load_templates
from .warm import CompileLog, warm_up

if TYPE_CHECKING:
    from .metrics.exporter import Metrics

log = logging.getLogger("riskd.server")
SERVICE_NAME = risk_pb2.DESCRIPTOR.services_by_name["RiskService"].full_name
SHUTDOWN_DETAILS = "riskd is shutting down"
T = TypeVar("T")
Cleanup = Callable[[], Awaitable[None] | None]


class StartupError(RuntimeError):
    """start() could not bring the server up; the message is one line a person can act on."""


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        max_batch=settings.max_batch,
        max_accounts=settings.max_accounts,
        max_symbols=settings.max_symbols,
        max_open_orders=settings.max_open_orders,
        closed_order_retention=settings.closed_order_retention,
        max_order_notional=settings.max_order_notional,
        dynamic_min_scale=settings.dynamic_min_scale,
        vol_ewma_lambda=settings.vol_ewma_lambda,
        dynamic_min_returns=settings.dynamic_min_returns,
        dynamic_tolerance=settings.dynamic_tolerance,
    )


def email_config(settings: Settings) -> MailerConfig | None:
    """The digest mailer's configuration, or None when email is off (no smtp_host)."""
    if not settings.smtp_host:
        return None
    return MailerConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        timeout=settings.smtp_timeout,
        starttls=settings.smtp_starttls,
        username=settings.smtp_user,
        password=settings.smtp_password,
        sender=settings.email_from.strip(),
        sender_address=parse_addresses(settings.email_from)[0],
        recipients=parse_addresses(settings.email_to),
        min_severity=risk_pb2.Severity.Value("SEVERITY_" + settings.email_min_severity.upper()),
        interval=settings.email_interval,
        outbox=settings.email_outbox,
    )


def build_params(settings: Settings) -> BuildParams:
    """The risk model's parameters from the settings."""
    return BuildParams(
        kind=settings.risk_model,
        window=settings.var_window,
        factors=settings.var_factors,
        min_days=settings.var_min_days,
        default_vol=settings.var_default_vol,
        confidence=settings.var_confidence,
        horizon_days=settings.var_horizon_days,
    )


def grpc_options(settings: Settings) -> list[tuple[str, int]]:
    # A batch of max_batch orders with long ids fits well inside 64 MiB.
    return [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.server.max_pending_requests", settings.max_pending_requests),
        ("grpc.so_reuseport", 0),
    ]


# ---------------------------------------------------------------------------------------- streams


class StreamCloser:
    """Ends streaming RPCs at shutdown, so ``server.stop(grace)`` waits for work, not for idle streams.

    Without it an open CheckOrderStream (or a health Watch) that is waiting for its next message
    holds the server for the whole grace period and is then cut with "Cancelling all calls". With
    it, a stream waiting for input is cancelled at once and a stream busy with a message finishes
    that message; both then end with UNAVAILABLE and a reason, so clients reconnect elsewhere.
    Handlers are wrapped once at registration, so unary RPCs pay nothing.

    "Waiting for input" is any time the wrapped generator is asked for its next response: right
    for handlers that only await the next request or event between answers (CheckOrderStream,
    reflection, health Watch). A streaming handler that awaits real work between answers (a
    database commit, say) would be cancelled in the middle of it and must not be wrapped as is.
    """

    def __init__(self) -> None:
        self.closing = False
        self._idle: set[asyncio.Task[Any]] = set()

    def close(self) -> int:
        """Start refusing streams and cancel the ones waiting for input; returns how many."""
        self.closing = True
        idle = list(self._idle)
        for task in idle:
            task.cancel()
        return len(idle)

    def registrar(self, server: grpc.aio.Server, timings: RpcTimings | None = None) -> _Registrar:
        """Pass this instead of the server to generated ``add_*Servicer_to_server`` functions;
        with ``timings`` (metrics on) every handler is timed or counted too."""
        return _Registrar(server, self, timings)

    def wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_stream is not None:
            behavior, kind = handler.unary_stream, "unary_stream"
        elif handler.stream_stream is not None:
            behavior, kind = handler.stream_stream, "stream_stream"
        else:
            return handler  # unary responses: nothing endless to end
        if inspect.isasyncgenfunction(behavior):
            wrapped = self._wrap_generator(behavior)
        elif inspect.iscoroutinefunction(behavior) and kind == "unary_stream":
            wrapped = self._wrap_watcher(behavior)  # type: ignore[assignment]  # e.g. health Watch
        else:
            return handler
        return handler._replace(**{kind: wrapped})  # type: ignore[attr-defined]  # a NamedTuple at run time

    async def _end(self, context: grpc.aio.ServicerContext, cancelled: asyncio.CancelledError | None) -> None:
        """Finish the call with UNAVAILABLE (AbortError unwinds the handler), or re-raise the cancel."""
        task = asyncio.current_task()
        if cancelled is not None and task is not None:
            task.uncancel()
        try:
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_DETAILS)
        except asyncio.CancelledError:
            raise
        except Exception:
            if cancelled is None:
                raise
            raise cancelled from None  # the call is gone already; let gRPC see the cancellation

    def _wrap_generator(
        self, behavior: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        idle = self._idle

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            task = asyncio.current_task()
            assert task is not None
            if self.closing:
                await self._end(context, None)
            inner = behavior(request, context)
            try:
                while True:
                    idle.add(task)  # the handler now waits for the next request or event
                    try:
                        response = await anext(inner)
                    except StopAsyncIteration:
                        return
                    except asyncio.CancelledError as exc:
                        if not self.closing:
                            raise  # the client went away: re-raise (grpc/grpc#43360)
                        await self._end(context, exc)
                        raise
                    finally:
                        idle.discard(task)
                    yield response
                    if self.closing:
                        await self._end(context, None)
            finally:
                await inner.aclose()  # type: ignore[attr-defined]  # an async generator

        return handler

    def _wrap_watcher(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        idle = self._idle

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            task = asyncio.current_task()
            assert task is not None
            if self.closing:
                await self._end(context, None)
            idle.add(task)
            try:
                return await behavior(request, context)
            except asyncio.CancelledError as exc:
                if not self.closing:
                    raise
                idle.discard(task)
                await self._end(context, exc)
                raise
            finally:
                idle.discard(task)

        return handler


class _Registrar:
    """Stands in for the server in generated registration code and wraps streaming handlers (and,
    with metrics on, every handler in its timing: metrics.rpc, inside the closer's wrapper)."""

    def __init__(
        self, server: grpc.aio.Server, closer: StreamCloser, timings: RpcTimings | None = None
    ) -> None:
        self._server = server
        self._closer = closer
        self._timings = timings

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: generated code passes the same handlers to add_registered_method_handlers."""

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        timings = self._timings
        if timings is not None:
            handlers = {name: timings.wrap(service, name, h) for name, h in handlers.items()}
        wrapped = {name: self._closer.wrap(h) for name, h in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self._server.add_registered_method_handlers(service, wrapped)


# ---------------------------------------------------------------------------------------- lifecycle


async def _run_cleanup(cleanup: list[Cleanup]) -> None:
    """Undo start-up steps in reverse; every step runs even when an earlier one fails."""
    while cleanup:
        fn = cleanup.pop()
        try:
            result = fn()
            if result is not None:
                await result
        except Exception:
            log.exception("cleanup step failed")


async def _in_thread(fn: Callable[[], T]) -> T:
    """fn() in a worker thread, waited for even when cancelled (a thread cannot be interrupted, and
    what it builds registers its own cleanup); the cancellation is re-raised afterwards."""
    future = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.wait([future])
        raise


async def _recover(store: Store, engine: Engine, closed_retention: int) -> None:
    """Load the snapshot and restore the engine from it; the snapshot (the COPY buffers, hundreds of
    MB with millions of orders) is freed on return, not kept until the server stops starting."""
    snapshot = await store.load_snapshot(closed_retention)
    start = time.perf_counter()
    await _in_thread(lambda: engine.restore(snapshot))
    log.info("recovered state in %.3fs: %s", time.perf_counter() - start, engine.stats())


async def _open_durable(
    settings: Settings, store: Store, engine: Engine, checkpoint_seq: int | None, cleanup: list[Cleanup]
) -> Durability:
    """Recover through the journal (durable.open_durable) and keep it: checkpoints, pruning and
    the final checkpoint at a graceful stop (cleanup, before the pool closes)."""
    try:
        durability, _ = await open_durable(
            settings,
            engine,
            checkpoint_seq,
            lambda: _recover(store, engine, settings.closed_order_retention),
            store.journal_applied,
        )
    except RecoveryError as exc:
        raise StartupError(str(exc)) from None
    durability.start()
    cleanup.append(durability.stop)
    return durability


async def _start_feeder(settings: Settings, dsn: str, durability: Durability, cleanup: list[Cleanup]) -> None:
    """PostgreSQL fed from the journal (store.feeder): a `riskd feeder` process, or a task on this
    loop (settings.feeder = task). At a graceful stop it first gets db_timeout to catch up with
    the journal, so a stopped server leaves everything in the database when it can."""
    journal_dir = durability.journal.directory
    if settings.feeder == "task":
        feeder = Feeder(replace(settings, dsn=dsn, feeder_nice=0, feeder_idle=False), journal_dir)
        task = asyncio.create_task(feeder.run(), name="riskd-feeder")

        async def end() -> None:
            feeder.stop.set()
            await task

    else:
        process = FeederProcess(settings, journal_dir, dsn)
        await process.start()
        durability.feeder = process

        async def end() -> None:
            await process.stop(timeout=max(settings.db_timeout, 1.0))

    durability.hurry = partial(touch_hurry, journal_dir)

    async def stop() -> None:
        if not await durability.barrier(settings.db_timeout):
            log.warning("stopping with PostgreSQL behind the journal (the next start feeds the rest)")
        await end()

    cleanup.append(stop)


def describe_dsn(dsn: str) -> str:
    """host:port/dbname of a DSN for messages; never the password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparsable DSN"
    host = parts.get("host") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or '?'}"


async def _probe_database(dsn: str, timeout: float) -> None:
    """Connect once (retrying until timeout) so an unreachable database is one clear error, not a
    pool timeout after a stream of pool warnings."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=max(1, round(left)))
        except psycopg.ProgrammingError as exc:  # a malformed DSN does not get better with retries
            raise StartupError(f"invalid PostgreSQL DSN: {str(exc).strip().splitlines()[-1]}") from exc
        except psycopg.Error as exc:
            if time.monotonic() + 0.25 >= deadline:
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                raise StartupError(
                    f"cannot connect to PostgreSQL at {describe_dsn(dsn)} within {timeout:g}s: {reason}"
                ) from exc
            await asyncio.sleep(0.25)
            continue
        await conn.close()
        return


def _serve_metrics(settings: Settings, timings: RpcTimings, cleanup: list[Cleanup]) -> Metrics:
    """Bind the metrics endpoint now (a taken port fails before any database work); the sources
    are added as start() builds them."""
    from .metrics.exporter import Metrics, MetricsBindError

    metrics = Metrics(asyncio.get_running_loop(), timings)
    host, _, port = settings.metrics_listen.rpartition(":")
    try:
        metrics.serve(host, int(port))
    except MetricsBindError as exc:
        raise StartupError(
            f"cannot serve metrics on {settings.metrics_listen}: address in use or not available "
            f"({exc.strerror})"
        ) from exc
    cleanup.append(lambda: asyncio.to_thread(metrics.close))
    return metrics


def _bind(server: grpc.aio.Server, listen: str) -> int:
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {listen}: address in use or not available") from exc
    if port == 0:
        raise StartupError(f"cannot listen on {listen}")
    return port


@dataclass(slots=True)
class RunningServer:
    """A started riskd: what tests and the CLI need to talk to it and to stop it."""

    port: int
    engine: Engine
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    store: Store
    writer: WriteBehind
    settings: Settings
    streams: StreamCloser = field(default_factory=StreamCloser)
    alerts: AlertPipeline | None = None
    alert_hub: AlertHub | None = None
    _cleanup: list[Cleanup] = field(default_factory=list)
    _stopped: bool = False
    snapshots: SnapshotHub | None = None  # StreamRiskSnapshots' subscribers (stats, tests)
    mailer: DigestMailer | None = None  # alert digests by email; None when smtp_host is empty
    metrics: Metrics | None = None  # the Prometheus endpoint (settings.metrics_listen), or None
    risk_models: RiskModelService | None = None  # builds and swaps the VaR risk model
    relays: RelayProcesses | None = None  # settings.alert_relays processes, or None
    durability: Durability | None = None  # the journal, checkpoints and feeder; None with journal off

    @property
    def metrics_port(self) -> int | None:
        return self.metrics.port if self.metrics is not None else None

    async def stop(self) -> None:
        """Graceful stop: NOT_SERVING, finish in-flight RPCs, flush state, release resources."""
        if self._stopped:
            return
        self._stopped = True
        log.info("stopping: grace %.1fs", self.settings.grace)
        try:
            await self.health.enter_graceful_shutdown()
            stopping = asyncio.ensure_future(self.server.stop(self.settings.grace))
            await asyncio.sleep(0)  # the core stops accepting calls before idle streams are ended
            ended = self.streams.close()
            if ended:
                log.info("ended %d idle stream(s)", ended)
            await stopping
        finally:
            await _run_cleanup(self._cleanup)  # flush the write-behind, close the pool, stop PostgreSQL
        log.info("stopped")


def alert_pipeline(settings: Settings, engine: Engine) -> AlertPipeline:
    """The alert path over the engine's names, sized by the settings (started later)."""
    return AlertPipeline(
        engine.accounts,
        engine.symbols,
        AlertHistory(settings.alert_history),
        Deduper(settings.alert_dedupe_window, settings.alert_dedupe_keys),
        AlertStats(),
        intake_capacity=settings.alert_intake,
    )


def dead_letter_path(settings: Settings) -> Path:
    """Where refused rows go when the dead_letter table refuses them too."""
    return (
        Path(settings.dead_letter_file or Path(settings.data_dir) / "dead-letter.jsonl")
        .expanduser()
        .resolve()
    )


async def start(settings: Settings) -> RunningServer:
    """Start riskd and return once it is SERVING; on failure or cancellation release what was built."""
    cleanup: list[Cleanup] = []
    server = grpc.aio.server(options=grpc_options(settings))
    writer: WriteBehind | None = None
    store: Store | None = None
    durability: Durability | None = None

    async def older_alerts(flt: AlertFilter, before_seq: int, page_size: int) -> list[Alert]:
        if store is None:
            return []
        return await store.query_alerts(flt, before_seq, page_size)

    metrics: Metrics | None = None
    timings = RpcTimings() if settings.metrics_listen else None

    async def barrier(rows: int = 0) -> bool:
        """Wait for the commit of everything queued: db_timeout, plus the write-behind's allowance
        for a change of ``rows`` rows (an import). With the journal: until the feeder has applied
        everything journaled so far."""
        if durability is not None:
            return await durability.barrier(settings.db_timeout + 2 * rows * ROW_ALLOWANCE)
        assert writer is not None
        try:
            await writer.barrier(timeout=settings.db_timeout + 2 * rows * ROW_ALLOWANCE)  # + history rows
        except TimeoutError:
            log.warning("change acknowledged before it was committed (database slow or down)")
            return False
        return True

    try:
        templates = load_templates(settings.templates_file)
    except TemplateError as exc:
        raise StartupError(str(exc)) from None

    async def limit_history(limit_id: str) -> list[LimitVersion]:
        if store is None:
            return []
        return await store.limit_history(limit_id, settings.limit_history)

    # Kernels compile (first start, changed kernels) in the servicer, the recovery, the write-behind
    # and warm_up: log it from the first to the last, else a minute passes without a word.
    compiling = CompileLog(log).install()
    try:
        engine = Engine(engine_config(settings))
        # A checkpoint first, into the fresh engine: it adopts the file's id-hash salt, which every
        # reader built below must see (engine.checkpoint).
        checkpoint_seq = (
            await _in_thread(lambda: load_checkpoint(settings, engine)) if settings.journal else None
        )
        pipeline = alert_pipeline(settings, engine)
        streams = StreamCloser()
        registrar: Any = streams.registrar(server, timings)
        alert_hub = AlertHub(
            pipeline.history,
            queue_size=settings.alert_subscriber_queue,
            max_subscribers=settings.max_alert_subscribers,
            on_drop=lambda peer, n: pipeline.raise_fault(
                risk_pb2.ALERT_KIND_SUBSCRIBER_DROPPED,
                f"alert subscriber {peer} too slow: {n} alert(s) dropped",
                float(n),
            ),
        )
        pipeline.add_output(alert_hub.publish)
        servicer = RiskServicer(
            engine,
            barrier,
            alerts=pipeline,
            older_alerts=older_alerts,
            alert_hub=alert_hub,
            templates=templates,
            limit_history=limit_history,
        )
        add_risk_service(servicer, registrar)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
        enable_reflection(registrar, [SERVICE_NAME, health.SERVICE_NAME])
        port = _bind(server, settings.listen)
        if timings is not None:
            metrics = _serve_metrics(settings, timings, cleanup)
            watch_engine(metrics, engine)

        dsn = settings.dsn
        if not dsn:
            from .embedded_pg import start_embedded

            data_dir = Path(settings.data_dir).expanduser().resolve()
            data_dir.mkdir(parents=True, exist_ok=True)

            def start_pg() -> str:
                pg = start_embedded(data_dir)
                cleanup.append(lambda: asyncio.to_thread(pg.stop))
                return pg.dsn

            dsn = await _in_thread(start_pg)
            log.info("embedded PostgreSQL under %s", data_dir)
        log.info("connecting to PostgreSQL at %s", describe_dsn(dsn))
        await _probe_database(dsn, settings.db_timeout)
        store = await Store.open(
            dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max, timeout=settings.db_timeout
        )
        cleanup.append(store.close)
        if metrics is not None:
            watch_store(metrics, store)
        if settings.journal:
            durability = await _open_durable(settings, store, engine, checkpoint_seq, cleanup)
            servicer.set_journal(durability.tap)
        else:
            await _recover(store, engine, settings.closed_order_retention)
        if durability is not None:
            await _start_feeder(settings, dsn, durability, cleanup)
        pipeline.restore(*await store.recent_alerts(settings.alert_history))
        writer = store.write_behind(
            max_pending_rows=settings.max_pending_rows,
            flush_interval=settings.flush_interval_ms / 1000.0,
            write_timeout=settings.db_timeout,
            dead_letter_path=dead_letter_path(settings),
            limit_history=settings.limit_history,
        )
        await writer.start()
        cleanup.append(lambda: writer.stop(timeout=max(settings.db_timeout, 1.0)))
        if metrics is not None:
            watch_write_behind(metrics, writer)
        if durability is None:
            engine.sink = writer  # else the feeder persists the engine's changes from the journal
        mailer = await _start_mailer(settings, cleanup)
        if mailer is not None:
            mailer.on_breaker_open = lambda why: pipeline.raise_fault(
                risk_pb2.ALERT_KIND_BREAKER_OPEN, f"email breaker open: {why}"
            )
            pipeline.add_output(mailer.offer_all)
        if metrics is not None:
            watch_alerts(metrics, pipeline.stats_snapshot)
            watch_subscribers(metrics, alert_hub.stats)
            if mailer is not None:
                watch_mailer(metrics, mailer.stats)
        pipeline.sink = writer
        pipeline.add_probe(backlog_probe(writer, settings.max_pending_rows))
        pipeline.add_probe(breaker_probe("database", lambda: writer.stats().breaker_state))
        if durability is not None:
            journal = durability.journal
            pipeline.add_probe(journal_probe(lambda: journal.bytes_used, journal.max_bytes))
            tap = durability.tap
            pipeline.add_probe(journal_failed_probe(lambda: tap.failed))
            if metrics is not None:
                watch_journal(metrics, durability)
        engine.alert_intake = pipeline.intake
        pipeline.start()
        cleanup.append(pipeline.stop)  # before the write-behind's final flush (cleanup runs last first)
        risk_models = _risk_models(settings, store, engine)
        cleanup.append(risk_models.stop)  # before the pool closes
        servicer.returns_importer = ReturnsImporter(store)
        servicer.risk_models = risk_models
        seconds = await _in_thread(warm_up)
        compiling.remove()
        log.info("kernels warm in %.3fs", seconds)
        # The recovered state and start-up objects live as long as the server: move them out of
        # the collector's reach so a full collection never walks them (measured: 40-44 ms for a
        # gen-2 pass over ~114k tracked objects, on the event loop).
        gc.collect()
        gc.freeze()

        await server.start()
        relays = await _start_relays(settings, port, cleanup)
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        risk_models.start()  # the first build runs in the background: SERVING does not wait for it
    except BaseException:
        compiling.remove()
        with contextlib.suppress(Exception):
            await server.stop(None)
        await _run_cleanup(cleanup)
        raise
    return RunningServer(
        port,
        engine,
        server,
        health_servicer,
        store,
        writer,
        settings,
        streams,
        alerts=pipeline,
        alert_hub=alert_hub,
        snapshots=servicer.snapshots,
        mailer=mailer,
        metrics=metrics,
        risk_models=risk_models,
        relays=relays,
        durability=durability,
        _cleanup=cleanup,
    )


def _risk_models(settings: Settings, store: Store, engine: Engine) -> RiskModelService:
    """The VaR risk model holder over the store's returns and the engine's model slot."""
    return RiskModelService(
        store.read_returns,
        engine.set_risk_model,
        build_params(settings),
        refresh=settings.risk_model_refresh,
        current=lambda: engine.risk_model,
    )


async def _start_relays(settings: Settings, port: int, cleanup: list[Cleanup]) -> RelayProcesses | None:
    """settings.alert_relays `riskd relay` processes on one port, fed by this server (alerts.relays)."""
    if settings.alert_relays <= 0:
        return None
    relays = RelayProcesses(
        target=loopback_target(settings.listen, port),
        listen=relay_listen(settings.alert_relay_listen, settings.listen),
        count=settings.alert_relays,
        extra_args=[
            "--history",
            str(settings.alert_history),
            "--queue",
            str(settings.alert_subscriber_queue),
            "--max-subscribers",
            str(max(settings.max_alert_subscribers, 1)),
            "--max-pending-requests",
            str(settings.max_pending_requests),
            "--log-level",
            settings.log_level.lower(),
            *([] if settings.uvloop else ["--no-uvloop"]),
        ],
    )
    try:
        await relays.start()
    except RelayStartError as exc:
        raise StartupError(str(exc)) from exc
    cleanup.append(relays.stop)
    return relays


async def _start_mailer(settings: Settings, cleanup: list[Cleanup]) -> DigestMailer | None:
    """Email digests when smtp_host is set; stopped (one last digest, bounded by smtp_timeout)
    before the write-behind and the store close."""
    config = email_config(settings)
    if config is None:
        return None
    mailer = DigestMailer(config)
    await mailer.start()

    async def stop_mailer() -> None:
        await mailer.stop(timeout=settings.smtp_timeout)

    cleanup.append(stop_mailer)
    return mailer


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully; a signal during start-up undoes the start."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    starting = asyncio.ensure_future(start(settings))

    def on_signal() -> None:
        stop.set()
        if not starting.done():
            starting.cancel()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    try:
        try:
            running = await starting
        except asyncio.CancelledError:
            if stop.is_set() and starting.cancelled():
                log.info("stopped during start-up")
                return
            raise
        host = settings.listen.rpartition(":")[0]
        print(f"riskd serving on {host}:{running.port}", flush=True)
        if running.metrics_port is not None:
            metrics_host = settings.metrics_listen.rpartition(":")[0]
            print(f"riskd metrics on http://{metrics_host}:{running.metrics_port}/metrics", flush=True)
        if running.relays is not None:
            relay_host = running.relays.listen.rpartition(":")[0]
            print(
                f"riskd alert relays on {relay_host}:{running.relays.port} ({running.relays.count} processes)",
                flush=True,
            )
        await stop.wait()
        await running.stop()
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def run(settings: Settings) -> int:
    """Blocking entry point for `riskd serve`: 0 after a clean stop, 1 when start-up failed."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    runner: Callable[..., Any] = asyncio.run
    if settings.uvloop:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            log.info("uvloop not installed; using asyncio's default loop")
    return _run(settings, runner)


def _run(settings: Settings, runner: Callable[..., Any]) -> int:
    try:
        runner(serve(settings))
    except KeyboardInterrupt:
        return 130
    except StartupError as exc:
        print(f"riskd serve: {exc}", file=sys.stderr, flush=True)
        return 1
    except (OSError, psycopg.Error, TimeoutError) as exc:
        print(f"riskd serve: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
