"""Kernel throughput and single-order server time, in-process (no transport).

* ``engine``: order-checks/s through ``Engine.check_orders`` for batches of 1,000 orders over 10,000
  symbols and 1,000 accounts (the workload's limits, marks and positions loaded); target >= 20 M/s.
* ``kernel``: the same batches through the raw numba ``check_batch`` (inputs pre-translated, so only
  the jitted pass is timed).
* ``cancels``: the raw numba ``apply_executions`` pass over batches of 10,000 cancels of accepted
  orders, with the closed-order retention ring full (each close then evicts the oldest closed id,
  the steady state of a long session); informational, no target.
* ``server time``: one single-order CheckOrders the way the RPC handler does it, minus the
  transport: request bytes -> ``RiskServicer._check_wire`` (numba parse of the bytes,
  ``wire.request``'s one-order parse, ``Engine.check_parsed``, reply encoded as bytes) -> reply bytes; p50/p99
  over ``--calls`` calls; target p50 <= 15 µs. ``--breakdown`` also times the steps of the
  protobuf fallback path (``FromString`` -> ``Engine.check_orders`` -> ``encode_result`` ->
  ``SerializeToString``) and the pieces of ``Engine.check_orders`` separately.

Between timed rounds every order is canceled (``Engine.report_executions``, untimed), so the open
order count and the closed-order retention stay bounded as in a live session.

    python -m bench.kernel_bench [--quick] [--breakdown]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from riskd.v1 import risk_pb2 as pb
from riskd_server.engine import NO_ORIGIN, Engine
from riskd_server.engine.names import bad_names, hash_ids
from riskd_server.kernel import layout as L
from riskd_server.kernel.checks import check_batch
from riskd_server.kernel.executions import apply_executions
from riskd_server.servicer import RiskServicer
from riskd_server.warm import warm_up
from riskd_server.wire.encode import encode_result

from .workload import EXEC_CANCELED, Columns, IdSource, RequestBuilder, Workload

KERNEL_TARGET_PER_S = 20e6
SERVER_TIME_TARGET_US = 15.0


@dataclass(slots=True)
class ThroughputResult:
    name: str
    batch: int
    orders: int
    seconds: float
    per_s: float  # median over rounds
    best_per_s: float
    rounds_per_s: list[float]
    accepted_fraction: float


@dataclass(slots=True)
class LatencyResult:
    name: str
    calls: int
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    mean_us: float
    accepted_fraction: float
    steps_p50_us: dict[str, float] = field(default_factory=dict)


def make_engine(workload: Workload) -> Engine:
    warm_up()
    engine = Engine()
    workload.load_into(engine)
    return engine


def _cancel(engine: Engine, ids: list[str]) -> None:
    n = len(ids)
    for i in range(0, n, 10_000):
        chunk = ids[i : i + 10_000]
        k = len(chunk)
        engine.report_executions(chunk, np.full(k, EXEC_CANCELED), np.zeros(k), np.zeros(k))


def _rounds(workload: Workload, rounds: int, batches: int, batch: int, seed: int) -> list[list[Columns]]:
    rng = np.random.default_rng(seed)
    ids = IdSource()
    return [[workload.columns(batch, ids, rng) for _ in range(batches)] for _ in range(rounds)]


def bench_engine(
    engine: Engine, workload: Workload, batch: int = 1_000, batches: int = 100, rounds: int = 7
) -> ThroughputResult:
    """Engine.check_orders over pre-built columns; rounds of ``batches`` batches, cancel in between."""
    data = _rounds(workload, rounds, batches, batch, seed=1)
    per_round: list[float] = []
    accepted = total = 0
    for cols in data:
        gc.collect()
        t0 = time.perf_counter()
        outs = [engine.check_orders(*c.args()) for c in cols]
        dt = time.perf_counter() - t0
        per_round.append(batch * batches / dt)
        accepted += sum(int(o.accepted.sum()) for o in outs)
        total += batch * batches
        _cancel(engine, [i for c in cols for i in c.client_order_id])
    return ThroughputResult(
        "engine.check_orders",
        batch,
        total,
        sum(batch * batches / r for r in per_round),
        float(np.median(per_round)),
        max(per_round),
        per_round,
        accepted / total,
    )


def bench_kernel(
    engine: Engine, workload: Workload, batch: int = 1_000, batches: int = 100, rounds: int = 7
) -> ThroughputResult:
    """The raw check_batch pass over the engine's state (inputs translated to dense ids beforehand)."""
    data = _rounds(workload, rounds, batches, batch, seed=2)
    # The bench passes the engine's state arrays directly: only the kernel is timed.
    per_round: list[float] = []
    accepted = total = 0
    mv = batch * L.MAX_VIOLATIONS_PER_ORDER
    for cols in data:
        inputs = []
        for c in cols:
            oi = np.empty((batch, L.IN_I_FIELDS), dtype=np.int64)
            oi[:, L.IN_ACCOUNT] = engine.accounts.lookup_many(c.account)
            oi[:, L.IN_SYMBOL] = engine.symbols.lookup_many(c.symbol)
            oi[:, L.IN_SIDE] = c.side
            oi[:, L.IN_KEY] = hash_ids(c.client_order_id)
            of = np.empty((batch, L.IN_F_FIELDS), dtype=np.float64)
            of[:, L.IN_QTY] = c.quantity
            of[:, L.IN_PRICE] = c.price
            inputs.append((oi, of, np.empty(batch, np.uint32), np.empty((mv, L.V_FIELDS), np.int64)))
        vf = np.empty((mv, 2), dtype=np.float64)
        engine._fit_books(batch * batches)  # capacity for the whole round, as check_orders does per batch
        engine._fit_slots(batch * batches)
        gc.collect()
        now = time.monotonic()
        t0 = time.perf_counter()
        state = engine._kernel_args()
        for oi, of, mask, vi in inputs:
            check_batch(oi, of, now, mask, vi, vf, *state)
        dt = time.perf_counter() - t0
        per_round.append(batch * batches / dt)
        accepted += sum(int((mask == 0).sum()) for _, _, mask, _ in inputs)
        total += batch * batches
        _cancel(engine, [i for c in cols for i in c.client_order_id])
    return ThroughputResult(
        "kernel check_batch",
        batch,
        total,
        sum(batch * batches / r for r in per_round),
        float(np.median(per_round)),
        max(per_round),
        per_round,
        accepted / total,
    )


class _DenseOrders:
    """Kernel input rows for the workload's orders with random id keys (no strings: fast to make)."""

    def __init__(self, engine: Engine, workload: Workload, seed: int) -> None:
        self.engine = engine
        self.workload = workload
        self.rng = np.random.default_rng(seed)
        self.account_ids = engine.accounts.lookup_many(workload.accounts)
        self.symbol_ids = engine.symbols.lookup_many(workload.symbols)

    def accept(self, n: int) -> np.ndarray:
        """Check n orders through check_batch; the keys of the accepted ones."""
        a, s, side, qty, price = self.workload.orders(n, self.rng)
        oi = np.empty((n, L.IN_I_FIELDS), dtype=np.int64)
        oi[:, L.IN_ACCOUNT] = self.account_ids[a]
        oi[:, L.IN_SYMBOL] = self.symbol_ids[s]
        oi[:, L.IN_SIDE] = side
        oi[:, L.IN_KEY] = self.rng.integers(1, 1 << 62, n)
        of = np.empty((n, L.IN_F_FIELDS), dtype=np.float64)
        of[:, L.IN_QTY] = qty
        of[:, L.IN_PRICE] = price
        engine = self.engine
        engine._fit_books(n)
        engine._fit_slots(n)
        mask = np.empty(n, dtype=np.uint32)
        vi, vf = engine._violation_scratch(n)
        check_batch(oi, of, time.monotonic(), mask, vi, vf, *engine._kernel_args())
        return oi[mask == 0, L.IN_KEY].copy()

    def cancel(self, keys: np.ndarray) -> tuple[float, int]:
        """Cancel keys in one apply_executions pass; (seconds, cancels applied)."""
        n = keys.shape[0]
        s = self.engine._s
        types = np.full(n, EXEC_CANCELED, dtype=np.int64)
        xf = np.zeros((n, 2), dtype=np.float64)
        status = np.empty(n, dtype=np.int64)
        books = np.empty(n, dtype=np.int64)
        open_after = np.empty(n, dtype=np.float64)
        t0 = time.perf_counter()
        apply_executions(
            keys, types, xf, NO_ORIGIN, *s.groups(), s.var_group(), 1e15, status, books, open_after,
        )  # fmt: skip
        dt = time.perf_counter() - t0
        return dt, int((status == L.X_APPLIED).sum())


def bench_cancels(
    engine: Engine, workload: Workload, batch: int = 10_000, batches: int = 10, rounds: int = 7
) -> ThroughputResult:
    """The raw apply_executions pass on cancels, closed-order ring full (every close evicts one).

    Orders are accepted through check_batch (untimed) with random id keys, then canceled in batches
    of ``batch``; the ring is first filled the same way, so the rounds see the steady state.
    """
    orders = _DenseOrders(engine, workload, seed=4)
    s = engine._s
    while int(s.ctr[L.C_RING_COUNT]) < int(s.ctr[L.C_RING_KEEP]):
        orders.cancel(orders.accept(batch))
    per_round: list[float] = []
    applied = total = 0
    elapsed = 0.0
    for _ in range(rounds):
        gc.collect()
        seconds = 0.0
        n = 0
        for _ in range(batches):
            keys = orders.accept(batch)
            dt, ok = orders.cancel(keys)
            seconds += dt
            n += keys.shape[0]
            applied += ok
        total += n
        elapsed += seconds
        per_round.append(n / seconds)
    return ThroughputResult(
        "kernel apply_executions",
        batch,
        total,
        elapsed,
        float(np.median(per_round)),
        max(per_round),
        per_round,
        applied / total,
    )


def _check(servicer: RiskServicer, request: bytes) -> bytes:
    """What RiskServicer.CheckOrdersRaw does for one request, minus the transport."""
    return servicer._check_wire(request)


def bench_server_time(
    engine: Engine, workload: Workload, calls: int = 20_000, breakdown: bool = False
) -> LatencyResult:
    builder = RequestBuilder(workload, 1, pool=4_096, seed=3)
    servicer = RiskServicer(engine)
    warm = [builder.request() for _ in range(1_000)]
    for req, _ in warm:
        _check(servicer, req)
    requests = [builder.request() for _ in range(calls)]
    lat = np.empty(calls, dtype=np.int64)
    accepted = 0
    clock = time.perf_counter_ns
    for i, (req, _) in enumerate(requests):
        t0 = clock()
        reply = _check(servicer, req)
        lat[i] = clock() - t0
        if i & 7 == 0:
            accepted += pb.CheckOrdersResponse.FromString(reply).result.accepted[0]
    ids = [pb.CheckOrdersRequest.FromString(r).orders.client_order_id[0] for r, _ in warm + requests]
    _cancel(engine, ids)
    us = lat / 1e3
    pct = np.percentile(us, [50, 90, 99, 99.9])
    result = LatencyResult(
        "server time, 1-order CheckOrders",
        calls,
        float(pct[0]),
        float(pct[1]),
        float(pct[2]),
        float(pct[3]),
        float(us.mean()),
        accepted / len(range(0, calls, 8)),
    )
    if breakdown:
        result.steps_p50_us = server_time_breakdown(engine, builder, min(calls, 10_000))
    return result


def _p50(fn, n: int) -> float:
    """Median µs of fn() over n calls (each timed alone)."""
    clock = time.perf_counter_ns
    lat = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        fn()
        lat[i] = clock() - t0
    return float(np.median(lat)) / 1e3


def server_time_breakdown(engine: Engine, builder: RequestBuilder, n: int) -> dict[str, float]:
    """p50 of each step of the single-order path, and of the pieces inside Engine.check_orders."""
    steps: dict[str, float] = {}
    reqs = [builder.request()[0] for _ in range(n)]
    msgs = [pb.CheckOrdersRequest.FromString(r) for r in reqs]
    it = iter(reqs)
    steps["decode CheckOrdersRequest.FromString"] = _p50(
        lambda: pb.CheckOrdersRequest.FromString(next(it)), n
    )
    it_m = iter(msgs)
    outs = []

    def check() -> None:
        b = next(it_m).orders
        outs.append(engine.check_orders(b.client_order_id, b.account, b.symbol, b.side, b.quantity, b.price))

    steps["Engine.check_orders (whole)"] = _p50(check, n)
    it_o = iter(outs)
    results: list[pb.CheckResult] = []
    steps["wire.encode.encode_result"] = _p50(lambda: results.append(encode_result(next(it_o))), n)
    it_r = iter(results)
    steps["CheckOrdersResponse(...).SerializeToString"] = _p50(
        lambda: pb.CheckOrdersResponse(result=next(it_r)).SerializeToString(), n
    )
    _cancel(engine, [m.orders.client_order_id[0] for m in msgs])

    # Pieces of Engine.check_orders for one order (each mirrors one line or call of it).
    b = msgs[0].orders
    lb = engine.limits
    ids, acc, sym = b.client_order_id, b.account, b.symbol
    oi = np.empty((1, L.IN_I_FIELDS), dtype=np.int64)
    oi[0] = (engine.accounts.get(acc[0]), engine.symbols.get(sym[0]), b.side[0], 12345, -1)
    of = np.array([[b.quantity[0], b.price[0]]])
    mask = np.empty(1, dtype=np.uint32)
    vi = np.empty((L.MAX_VIOLATIONS_PER_ORDER, L.V_FIELDS), dtype=np.int64)
    vf = np.empty((L.MAX_VIOLATIONS_PER_ORDER, 2), dtype=np.float64)
    engine._fit_books(n)
    engine._fit_slots(n)
    keys = iter(range(1, 10 * n))

    state = engine._kernel_args()

    def kernel() -> None:
        oi[0, L.IN_KEY] = next(keys)  # fresh key: a new order each call, like the real path
        check_batch(oi, of, 1.0, mask, vi, vf, *state)

    steps["  check_batch kernel call (state arrays, n=1)"] = _p50(kernel, n)
    steps["  _batch_len (6 len() + dict)"] = _p50(
        lambda: engine._batch_len(
            "orders",
            client_order_id=ids,
            account=acc,
            symbol=sym,
            side=b.side,
            quantity=b.quantity,
            price=b.price,
        ),
        n,
    )
    steps["  accounts+symbols lookup_many"] = _p50(
        lambda: (engine.accounts.lookup_many(acc), engine.symbols.lookup_many(sym)), n
    )
    steps["  hash_ids + bad_names"] = _p50(lambda: (hash_ids(ids), bad_names(ids)), n)
    steps["  _fit_books + _fit_slots (ht_grow numba call)"] = _p50(
        lambda: (engine._fit_books(1), engine._fit_slots(1)), n
    )

    def alloc() -> None:
        o = np.empty((1, L.IN_I_FIELDS), dtype=np.int64)
        o[:, L.IN_ACCOUNT] = 0
        o[:, L.IN_SYMBOL] = 0
        o[:, L.IN_SIDE] = b.side
        o[:, L.IN_KEY] = 1
        f = np.empty((1, L.IN_F_FIELDS), dtype=np.float64)
        f[:, L.IN_QTY] = b.quantity
        f[:, L.IN_PRICE] = b.price
        np.empty(1, dtype=np.uint32)
        np.empty((L.MAX_VIOLATIONS_PER_ORDER, L.V_FIELDS), dtype=np.int64)
        np.empty((L.MAX_VIOLATIONS_PER_ORDER, 2), dtype=np.float64)

    steps["  input/output array allocation + column fills"] = _p50(alloc, n)
    steps["  Violations build (slices, astype, limit_ids)"] = _p50(
        lambda: (
            vi[:0, L.V_ORDER].astype(np.uint32),
            vi[:0, L.V_CHECK].astype(np.int32),
            lb.limit_ids(vi[:0, L.V_LIMIT]),
            vi[:0, L.V_WARNING].astype(bool),
            (vi[:0, L.V_LIMIT] == L.LIMIT_CAPACITY).any(),
            mask == 0,
        ),
        n,
    )
    return steps


@dataclass(slots=True)
class KernelReport:
    engine: ThroughputResult
    kernel: ThroughputResult
    cancels: ThroughputResult
    server_time: LatencyResult
    engine_batch1_per_s: float


def run(quick: bool = False, breakdown: bool = True, calls: int = 20_000) -> KernelReport:
    workload = Workload()
    engine = make_engine(workload)
    rounds, batches = (3, 50) if quick else (7, 100)
    eng = bench_engine(engine, workload, batches=batches, rounds=rounds)
    ker = bench_kernel(engine, workload, batches=batches, rounds=rounds)
    cx = bench_cancels(engine, workload, rounds=3 if quick else 7)
    one = bench_engine(engine, workload, batch=1, batches=5_000, rounds=1)
    # Last: the breakdown leaves up to 10,000 kernel-opened orders (keys without ids) open.
    st = bench_server_time(engine, workload, calls=5_000 if quick else calls, breakdown=breakdown)
    return KernelReport(eng, ker, cx, st, one.per_s)


def print_report(rep: KernelReport) -> None:
    for t in (rep.engine, rep.kernel):
        print(
            f"{t.name:<24} batch {t.batch:>5}: {t.per_s / 1e6:7.2f} M orders/s median "
            f"(best {t.best_per_s / 1e6:.2f}; target {KERNEL_TARGET_PER_S / 1e6:.0f}), "
            f"{t.orders:,} orders, accepted {t.accepted_fraction:.1%}"
        )
    c = rep.cancels
    print(
        f"{c.name:<24} batch {c.batch:>5}: {c.per_s / 1e6:7.2f} M cancels/s median "
        f"({1e9 / c.per_s:.0f} ns a cancel; best {c.best_per_s / 1e6:.2f}), closed-order ring full, "
        f"applied {c.accepted_fraction:.1%}"
    )
    print(f"engine.check_orders      batch     1: {rep.engine_batch1_per_s / 1e3:7.1f} k orders/s")
    s = rep.server_time
    print(
        f"{s.name}: p50 {s.p50_us:.1f} µs, p90 {s.p90_us:.1f}, p99 {s.p99_us:.1f}, p99.9 {s.p999_us:.1f} "
        f"(target p50 <= {SERVER_TIME_TARGET_US:.0f} µs), accepted {s.accepted_fraction:.1%}"
    )
    for step, us in s.steps_p50_us.items():
        print(f"    {step:<52} p50 {us:6.2f} µs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rep = run(quick=args.quick, breakdown=not args.no_breakdown, calls=args.calls)
    if args.json:
        print(json.dumps(asdict(rep), indent=2))
    else:
        print_report(rep)


if __name__ == "__main__":
    main()
