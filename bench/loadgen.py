"""Multi-process gRPC load generator for riskd.v1.RiskService (the real server or the echo baseline).

Each worker process has its own grpc.aio channel and event loop. Modes:

* ``unary``: closed loop, ``--concurrency`` CheckOrders calls in flight per process, ``--batch`` orders
  each.
* ``stream``: ``--concurrency`` CheckOrderStream calls per process, ``--batch`` orders per message,
  paced open-loop to ``--rate`` orders/s in total (0: ping-pong, one message in flight per stream);
  latency is per message, from just before the write to the matching response.

In both modes a worker cancels the orders it has had answered (one ReportExecutions every
``--cancel-every`` orders: 10,000 for batches of 100 or more, 500 otherwise; not counted in the
figures), so the server's open orders and exposure stay level through a run, as with an OMS. A
stream worker sends its cancels from a side task, so they do not delay its paced sends.

Workers start together after all connected, run ``--warmup`` seconds unmeasured, then measure for
``--duration`` seconds (or until ``--max-requests`` per process). Requests are built as bytes by
``workload.RequestBuilder`` (unique ids, ~70 µs per 1,000 orders) so the client stays cheap.

    python -m bench.loadgen --target 127.0.0.1:PORT --mode unary --batch 1000 --duration 10 --procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import queue
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field

import grpc
import numpy as np

from riskd.v1 import risk_pb2 as pb

from .echo_server import run_loop
from .workload import RequestBuilder, Workload

CHECK = "/riskd.v1.RiskService/CheckOrders"
STREAM = "/riskd.v1.RiskService/CheckOrderStream"
REPORT = "/riskd.v1.RiskService/ReportExecutions"
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadConfig:
    target: str
    mode: str = "unary"  # unary | stream
    batch: int = 1
    duration: float = 5.0
    warmup: float = 1.0
    procs: int = 2
    concurrency: int = 8  # unary: calls in flight per process; stream: streams per process
    rate: float = 0.0  # stream: total orders/s over all processes; 0 = ping-pong
    max_requests: int = 0  # per process; 0 = bounded by duration only
    cancel_every: int = -1  # orders per ReportExecutions cancel; -1 = auto, 0 = never
    # (account, symbol, quantity, price) of one more order in every request (not counted in the
    # figures), e.g. one a limit rejects, so every batch raises an alert occurrence of one key.
    extra_order: tuple[str, str, float, float] | None = None
    timeout: float = 10.0  # per call
    uvloop: bool = True

    def __post_init__(self) -> None:
        errors = []
        if self.mode not in ("unary", "stream"):
            errors.append(f"mode must be unary or stream, got {self.mode!r}")
        for name, low in (("batch", 1), ("procs", 1), ("concurrency", 1)):
            if getattr(self, name) < low:
                errors.append(f"{name} must be >= {low}")
        if self.duration <= 0 or self.warmup < 0 or self.rate < 0:
            errors.append("duration must be > 0, warmup and rate >= 0")
        if errors:
            raise ValueError("; ".join(errors))

    @property
    def cancel_orders(self) -> int:
        if self.cancel_every >= 0:
            return self.cancel_every
        return 10_000 if self.batch >= 100 else 500


@dataclass(slots=True)
class LoadResult:
    mode: str
    batch: int
    procs: int
    concurrency: int
    rate_target: float
    measured_s: float
    requests: int
    orders: int
    errors: int
    rps: float
    orders_per_s: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    accepted_fraction: float
    late_sends: int = 0  # stream: messages sent > 1 ms after their slot (client could not keep up)
    cancels: int = 0
    cancelled_orders: int = 0  # ids in ReportExecutions calls the server answered (all, tail included)
    error_codes: dict[str, int] = field(default_factory=dict)  # status name -> calls (measured window)
    first_error: str = ""
    top_rejections: list[tuple[str, int]] = field(default_factory=list)  # "check:limit_id", sampled
    server_cpu_us: float = math.nan  # the server's CPU per request, when the caller measured it

    def summary(self) -> str:
        rate = f" @ {self.rate_target:,.0f}/s" if self.rate_target else ""
        return (
            f"{self.mode} batch={self.batch}{rate} procs={self.procs}x{self.concurrency}: "
            f"{self.orders_per_s:,.0f} orders/s, {self.rps:,.0f} req/s, p50 {self.p50_us:,.0f} µs, "
            f"p99 {self.p99_us:,.0f} µs, errors {self.errors}, accepted {self.accepted_fraction:.1%}"
        )


@dataclass(slots=True)
class _WorkerStats:
    latencies_ns: list[int] = field(default_factory=list)
    requests: int = 0
    orders: int = 0
    accepted: int = 0
    decoded: int = 0
    errors: int = 0
    late: int = 0
    cancels: int = 0
    cancelled_orders: int = 0
    first_error: str = ""
    first_done: float = 0.0
    last_done: float = 0.0
    rejections: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        self.codes[exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__] += 1
        if not self.first_error:
            if isinstance(exc, grpc.aio.AioRpcError):
                self.first_error = f"{exc.code().name}: {exc.details()}"
            else:
                self.first_error = repr(exc)

    def done(self, start_ns: int, end_ns: int, n: int, reply: bytes | None, reply_type: type) -> None:
        self.latencies_ns.append(end_ns - start_ns)
        self.requests += 1
        self.orders += n
        if self.requests == 1:
            self.first_done = end_ns / 1e9
        self.last_done = end_ns / 1e9
        if reply is not None and (self.requests & 15) == 1:  # sample: decoding is client cost
            result = reply_type.FromString(reply).result
            self.accepted += sum(result.accepted)
            self.decoded += n
            if len(result.violations):
                self.rejections.update(f"{v.check}:{v.limit_id}" for v in result.violations if not v.warning)


async def _unary_worker(
    cfg: LoadConfig, builder: RequestBuilder, channel, t_measure: float, t_end: float, st
):
    check = channel.unary_unary(CHECK)  # no serializers: bytes in, bytes out
    report = channel.unary_unary(REPORT)
    pending: list[bytes] = []
    budget = cfg.max_requests
    while True:
        now = time.perf_counter()
        if now >= t_end or (budget and st.requests >= budget):
            break
        request, ids = builder.request()
        t0 = time.perf_counter_ns()
        try:
            reply = await check(request, timeout=cfg.timeout)
        except grpc.aio.AioRpcError as exc:
            if t0 / 1e9 >= t_measure:
                st.error(exc)
            continue
        t1 = time.perf_counter_ns()
        if t0 / 1e9 >= t_measure and t1 / 1e9 <= t_end:
            st.done(t0, t1, builder.k, reply, pb.CheckOrdersResponse)
        if cfg.cancel_orders:
            pending.append(ids)
            if len(pending) * builder.k >= cfg.cancel_orders:
                pending = await _cancel(cfg, builder, report, pending, st)
    if pending:  # leave no open orders behind for the next run (a refused cancel is retried)
        for _ in range(20):
            pending = await _cancel(cfg, builder, report, pending, st, count_errors=False)
            if not pending:
                break
            await asyncio.sleep(0.25)


async def _cancel(
    cfg: LoadConfig, builder: RequestBuilder, report, pending: list[bytes], st, count_errors: bool = True
) -> list[bytes]:
    """Cancel the pending orders, at most cancel_orders a call; returns what is still pending. A
    refused call (UNAVAILABLE: the server's persistence backlog is full) keeps its orders pending
    for the next try: dropping them would leave them open until max_open_orders rejects everything."""
    per_call = max(1, cfg.cancel_orders // builder.k)
    while pending:
        chunk = pending[:per_call]
        try:
            await report(builder.cancel_request(chunk), timeout=cfg.timeout)
        except grpc.aio.AioRpcError as exc:
            if count_errors:
                st.error(exc)
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return pending
            pending = pending[per_call:]  # refused for good: do not retry forever
            continue
        st.cancels += 1
        st.cancelled_orders += len(chunk) * builder.k
        pending = pending[per_call:]
    return pending


async def _stream_worker(
    cfg: LoadConfig, builder: RequestBuilder, channel, t_measure: float, t_end: float, st, index: int
):
    call = channel.stream_stream(STREAM)(timeout=cfg.warmup + cfg.duration + 30)
    report = channel.unary_unary(REPORT)
    sent: deque[tuple[int, bytes]] = deque()
    answered: list[bytes] = []  # ids of answered orders, not yet canceled
    cancels: set[asyncio.Task] = set()

    async def cancel(ids_wire: list[bytes]) -> None:
        try:
            await report(builder.cancel_request(ids_wire), timeout=cfg.timeout)
            st.cancels += 1
            st.cancelled_orders += len(ids_wire) * builder.k
        except grpc.aio.AioRpcError as exc:
            st.error(exc)

    per_stream = cfg.rate / (cfg.procs * cfg.concurrency) if cfg.rate else 0.0
    interval = builder.k / per_stream if per_stream else 0.0
    ready = asyncio.Event()  # ping-pong: one message in flight
    ready.set()

    async def receive() -> None:
        while True:
            reply = await call.read()
            if reply is grpc.aio.EOF:
                return
            t1 = time.perf_counter_ns()
            t0, ids = sent.popleft()
            if t0 / 1e9 >= t_measure and t1 / 1e9 <= t_end:
                st.done(t0, t1, builder.k, reply, pb.CheckOrderStreamResponse)
            ready.set()
            if cfg.cancel_orders:
                answered.append(ids)
                if len(answered) * builder.k >= cfg.cancel_orders:
                    task = asyncio.create_task(cancel(answered[:]))
                    cancels.add(task)
                    task.add_done_callback(cancels.discard)
                    answered.clear()

    reader = asyncio.create_task(receive())
    # Stagger the streams over one interval so paced sends do not all land on the same tick.
    start = time.perf_counter() + (interval * index / cfg.concurrency if interval else 0.0)
    m = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= t_end or (cfg.max_requests and st.requests >= cfg.max_requests) or reader.done():
                break
            if interval:
                due = start + m * interval
                if due > now:
                    await asyncio.sleep(due - now)
                elif now - due > 1e-3 and now >= t_measure:
                    st.late += 1
            else:
                await ready.wait()
                ready.clear()
            request, ids = builder.request()
            sent.append((time.perf_counter_ns(), ids))
            await call.write(request)
            m += 1
        await call.done_writing()
        await asyncio.wait_for(reader, timeout=cfg.timeout)
        if cancels:
            await asyncio.wait(cancels, timeout=cfg.timeout)
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError) as exc:
        st.error(exc)
    finally:
        if not reader.done():
            reader.cancel()
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            st.error(reader.exception())  # type: ignore[arg-type]


async def _worker_main(cfg: LoadConfig, wid: int, ready_q, go, result_q) -> None:
    workload = Workload()
    builder = RequestBuilder(workload, cfg.batch, seed=wid, extra_order=cfg.extra_order)
    st = _WorkerStats()
    async with grpc.aio.insecure_channel(cfg.target, options=CHANNEL_OPTIONS) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=15)
        ready_q.put(wid)
        while not go.is_set():  # a multiprocessing.Event: poll without blocking the loop
            await asyncio.sleep(0.005)
        t_measure = time.perf_counter() + cfg.warmup
        t_end = t_measure + cfg.duration
        if cfg.mode == "unary":
            tasks = [
                _unary_worker(cfg, builder, channel, t_measure, t_end, st) for _ in range(cfg.concurrency)
            ]
        else:
            tasks = [
                _stream_worker(cfg, builder, channel, t_measure, t_end, st, i) for i in range(cfg.concurrency)
            ]
        await asyncio.gather(*tasks)
    # The whole window: a worker stalled at its end (the server busy elsewhere) ran slower, it did
    # not run shorter. Only a request budget that ends a worker early shortens its window.
    if cfg.max_requests and st.requests >= cfg.max_requests:
        measured = max(min(t_end, st.last_done) - t_measure, 1e-9)
    else:
        measured = cfg.duration
    result_q.put(
        {
            "wid": wid,
            "latencies_ns": np.asarray(st.latencies_ns, dtype=np.int64),
            "requests": st.requests,
            "orders": st.orders,
            "accepted": st.accepted,
            "decoded": st.decoded,
            "errors": st.errors,
            "late": st.late,
            "cancels": st.cancels,
            "cancelled_orders": st.cancelled_orders,
            "codes": dict(st.codes),
            "first_error": st.first_error,
            "rejections": dict(st.rejections),
            "measured": measured,
        }
    )


def _worker(cfg: LoadConfig, wid: int, ready_q, go, result_q) -> None:
    try:
        run_loop(_worker_main(cfg, wid, ready_q, go, result_q), use_uvloop=cfg.uvloop)
    except BaseException as exc:
        result_q.put({"wid": wid, "fatal": repr(exc)})
        raise


def run_load(cfg: LoadConfig) -> LoadResult:
    """Run cfg.procs worker processes against cfg.target and aggregate their measurements."""
    ctx = mp.get_context("spawn")  # grpc and fork do not mix
    ready_q, result_q, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_worker, args=(cfg, wid, ready_q, go, result_q), daemon=True)
        for wid in range(cfg.procs)
    ]
    for p in procs:
        p.start()
    results: list[dict] = []
    try:
        for _ in procs:
            try:
                ready_q.get(timeout=60)
            except queue.Empty:
                while True:  # a worker that died before connecting left its reason
                    try:
                        results.append(result_q.get_nowait())
                    except queue.Empty:
                        break
                raise RuntimeError(f"load workers did not connect to {cfg.target}: {results}") from None
        go.set()
        deadline = time.monotonic() + cfg.warmup + cfg.duration + cfg.timeout + 30
        while len(results) < len(procs):
            results.append(result_q.get(timeout=max(deadline - time.monotonic(), 1)))
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    fatal = [r["fatal"] for r in results if "fatal" in r]
    if fatal:
        raise RuntimeError(f"load worker failed: {fatal[0]}")
    return aggregate(cfg, results)


def aggregate(cfg: LoadConfig, results: list[dict]) -> LoadResult:
    lat = np.concatenate([r["latencies_ns"] for r in results]) / 1e3 if results else np.zeros(0)
    pct = np.percentile(lat, [50, 90, 99, 99.9]) if lat.size else np.full(4, np.nan)
    requests = sum(r["requests"] for r in results)
    orders = sum(r["orders"] for r in results)
    decoded = sum(r["decoded"] for r in results)
    errors = [r["first_error"] for r in results if r["first_error"]]
    rejections: Counter = Counter()
    codes: Counter = Counter()
    for r in results:
        rejections.update(r["rejections"])
        codes.update(r["codes"])
    return LoadResult(
        mode=cfg.mode,
        batch=cfg.batch,
        procs=cfg.procs,
        concurrency=cfg.concurrency,
        rate_target=cfg.rate,
        measured_s=max((r["measured"] for r in results), default=0.0),
        requests=requests,
        orders=orders,
        errors=sum(r["errors"] for r in results),
        rps=sum(r["requests"] / r["measured"] for r in results),
        orders_per_s=sum(r["orders"] / r["measured"] for r in results),
        p50_us=float(pct[0]),
        p90_us=float(pct[1]),
        p99_us=float(pct[2]),
        p999_us=float(pct[3]),
        max_us=float(lat.max()) if lat.size else float("nan"),
        accepted_fraction=sum(r["accepted"] for r in results) / decoded if decoded else float("nan"),
        late_sends=sum(r["late"] for r in results),
        cancels=sum(r["cancels"] for r in results),
        cancelled_orders=sum(r["cancelled_orders"] for r in results),
        error_codes=dict(codes),
        first_error=errors[0] if errors else "",
        top_rejections=rejections.most_common(5),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT (use 127.0.0.1)")
    parser.add_argument("--mode", choices=("unary", "stream"), default="unary")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0, help="stream: total orders/s (0: ping-pong)")
    parser.add_argument("--max-requests", type=int, default=0)
    parser.add_argument("--cancel-every", type=int, default=-1)
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    cfg = LoadConfig(
        target=args.target,
        mode=args.mode,
        batch=args.batch,
        duration=args.duration,
        warmup=args.warmup,
        procs=args.procs,
        concurrency=args.concurrency,
        rate=args.rate,
        max_requests=args.max_requests,
        cancel_every=args.cancel_every,
        uvloop=not args.no_uvloop,
    )
    result = run_load(cfg)
    print(json.dumps(asdict(result), indent=2) if args.json else result.summary())


if __name__ == "__main__":
    main()
