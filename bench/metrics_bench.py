"""What metrics cost on the hot path, measured against the code without them in the same run.

* ``engine A/B``: ``Engine.check_parsed`` (the RPC handlers' call) on one-order requests and on
  1,000-order batches of the bench workload, through two engines loaded alike, one with the
  check counters and one with ``Uncounted``'s ``_check_columns`` and ``_one_outcome`` (the code
  before the counters, copied below); the engines take turns at counting and at running first.
  Each request is timed alone; a round reports its median. Also a one-order set where every
  order is rejected (a restricted symbol), the path that counts violations.
* ``counting ops``: the added statements alone, timed in a loop (more precise than the A/B, whose
  difference is inside the machine's noise).
* ``rpc wrappers``: a unary handler called bare, through ``metrics.rpc``'s wrapper (perf_counter_ns,
  bisect, list increment) and through a wrapper calling prometheus_client's ``Histogram.observe``
  (the alternative the wrapper was chosen against); a bidi stream's per-message cost, bare and
  wrapped.
* ``write-behind put``: the put's added ``time.monotonic()`` (the backlog's age).
* ``scrape``: ``Metrics.snapshot()`` on the loop (what a scrape costs the event loop) and the whole
  exposition in the scrape thread.

    python -m bench.metrics_bench [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import timeit
import types
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import numpy as np
from numba import njit
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from riskd.v1 import risk_pb2 as pb
from riskd_server.engine import Engine
from riskd_server.engine.checking import NO_VIOLATIONS
from riskd_server.kernel import layout as L
from riskd_server.kernel.checks import check_batch
from riskd_server.kernel.rows import violation_columns
from riskd_server.metrics.exporter import Metrics
from riskd_server.metrics.rpc import RpcTimings
from riskd_server.outcomes import ACCEPTED_ONE, MASK_ZERO_ONE, CheckOutcome, Violations
from riskd_server.warm import warm_up
from riskd_server.wire.request import parse_check_request

from .workload import EXEC_CANCELED, RequestBuilder, Workload


@njit(nogil=True)
def violation_columns_uncounted(vi, vf, nv, capacity_threshold):
    """kernel.rows.violation_columns as it was before it counted (the A/B's baseline)."""
    order = np.empty(nv, dtype=np.uint32)
    check = np.empty(nv, dtype=np.int32)
    limit = np.empty(nv, dtype=np.int64)
    observed = np.empty(nv, dtype=np.float64)
    threshold = np.empty(nv, dtype=np.float64)
    warning = np.empty(nv, dtype=np.bool_)
    for k in range(nv):
        order[k] = vi[k, L.V_ORDER]
        check[k] = vi[k, L.V_CHECK]
        limit[k] = vi[k, L.V_LIMIT]
        warning[k] = vi[k, L.V_WARNING] != 0
        observed[k] = vf[k, 0]
        threshold[k] = capacity_threshold if limit[k] == L.LIMIT_CAPACITY else vf[k, 1]
    return order, check, limit, observed, threshold, warning


class Uncounted(Engine):
    """Engine as it was before the check counters: the three methods that count, as they were."""

    def _violations(self, vi: np.ndarray, vf: np.ndarray, nv: int) -> Violations:
        order, check, limit, observed, threshold, warning = violation_columns_uncounted(
            vi, vf, nv, float(self.config.max_open_orders)
        )
        return Violations(order, check, self._limits.limit_ids(limit), observed, threshold, warning)

    def _check_columns(self, oi, of, aid, sid, now) -> CheckOutcome:
        n = oi.shape[0]
        self._fit_books(n)
        self._fit_slots(n)
        mask = np.empty(n, dtype=np.uint32)
        vi, vf = self._violation_scratch(n)
        nv = check_batch(oi, of, self._now(now), mask, vi, vf, *self._kernel_args())
        violations = self._violations(vi, vf, nv) if nv else NO_VIOLATIONS
        accepted = mask == 0
        self._state_version += 1
        return CheckOutcome(accepted, mask, violations, self._state_version)

    def _one_outcome(self, nv: int) -> CheckOutcome:
        one = self._one
        self._state_version += 1
        if nv == 0:
            return CheckOutcome(ACCEPTED_ONE, MASK_ZERO_ONE, NO_VIOLATIONS, self._state_version)
        mask = one.mask.copy()
        return CheckOutcome(mask == 0, mask, self._violations(one.vi, one.vf, nv), self._state_version)


@dataclass(slots=True)
class AB:
    name: str
    unit: str
    without: float  # median over rounds
    with_: float
    rounds: int
    without_rounds: list[float] = field(default_factory=list)
    with_rounds: list[float] = field(default_factory=list)

    @property
    def added(self) -> float:
        return self.with_ - self.without

    def line(self) -> str:
        pct = 100.0 * self.added / self.without if self.without else 0.0
        return (
            f"{self.name:<46} without {self.without:9.3f} {self.unit}  with {self.with_:9.3f} {self.unit}"
            f"  added {self.added:+8.3f} {self.unit} ({pct:+.1f} %)  [{self.rounds} rounds]"
        )


def _cancel(engine: Engine, ids: list[str]) -> None:
    for i in range(0, len(ids), 10_000):
        chunk = ids[i : i + 10_000]
        k = len(chunk)
        engine.report_executions(chunk, np.full(k, EXEC_CANCELED), np.zeros(k), np.zeros(k))


def _ids(requests: list[bytes]) -> list[str]:
    return [i for r in requests for i in pb.CheckOrdersRequest.FromString(r).orders.client_order_id]


def _time_each(engine: Engine, parsed: list[Any]) -> np.ndarray:
    """ns of check_parsed for each request, each timed alone."""
    clock = time.perf_counter_ns
    check = engine.check_parsed
    lat = np.empty(len(parsed), dtype=np.int64)
    for i, p in enumerate(parsed):
        t0 = clock()
        check(p)
        lat[i] = clock() - t0
    return lat


def set_counting(engine: Engine, on: bool) -> None:
    """Give ``engine`` the counting methods (Engine's) or the ones before them (Uncounted's).

    Both engines of the A/B take turns, so neither the state's memory layout nor which one ran
    first favours a side. (An instance attribute is found as fast as the class's method: if
    anything the uncounted side is favoured, so the difference is not understated.)
    """
    for name in ("_check_columns", "_one_outcome", "_violations"):
        if on:
            engine.__dict__.pop(name, None)
        else:
            engine.__dict__[name] = types.MethodType(getattr(Uncounted, name), engine)


def _ab(
    name: str,
    engines: tuple[Engine, Engine],
    make: Callable[[], list[bytes]],
    rounds: int,
    unit_div: float,
    unit: str,
) -> AB:
    """Rounds of the same fresh requests through both engines, one counting and one not, taking
    turns at which engine counts and which runs first; ids canceled after each round (untimed) so
    the state stays bounded. Reports the median per request of each round, and of those the
    median."""
    without: list[float] = []
    with_: list[float] = []
    for r in range(rounds):
        requests = make()
        parsed = [parse_check_request(b) for b in requests]
        counting = r % 2  # which engine counts this round
        for i, e in enumerate(engines):
            set_counting(e, i == counting)
        order = (0, 1) if (r // 2) % 2 == 0 else (1, 0)
        gc.collect()
        for which in order:
            lat = _time_each(engines[which], parsed)
            (with_ if which == counting else without).append(float(np.median(lat)) / unit_div)
        ids = _ids(requests)
        for e in engines:
            _cancel(e, ids)
    return AB(name, unit, statistics.median(without), statistics.median(with_), rounds, without, with_)


def _restricted_requests(workload: Workload, n: int, seq: list[int]) -> list[bytes]:
    """One-order requests for a symbol restricted for everyone (workload.limits: S00011)."""
    out = []
    for _ in range(n):
        seq[0] += 1
        b = pb.OrderBatch(
            client_order_id=[f"rx{seq[0]:09d}"],
            account=[workload.accounts[seq[0] % workload.n_accounts]],
            symbol=[workload.symbols[11]],
            side=[1],
            quantity=[10.0],
            price=[0.0],
        )
        out.append(pb.CheckOrdersRequest(orders=b).SerializeToString())
    return out


def bench_engine(quick: bool) -> list[AB]:
    warm_up()
    workload = Workload()
    engines: tuple[Engine, Engine] = (Engine(), Engine())
    for e in engines:
        workload.load_into(e)
        e.index_names()
    rounds = 7 if quick else 15
    one = RequestBuilder(workload, 1, pool=4_096, seed=3)
    batch = RequestBuilder(workload, 1_000, pool=32, seed=4)
    seq = [0]
    # warm both
    for e in engines:
        warm = [one.request()[0] for _ in range(500)] + [batch.request()[0] for _ in range(5)]
        for b in warm:
            e.check_parsed(parse_check_request(b))
        _cancel(e, _ids(warm))
    n_one = 2_000 if quick else 5_000
    n_batch = 10 if quick else 30
    results = [
        _ab(
            "check_parsed, 1-order request (median per call)",
            engines,
            lambda: [one.request()[0] for _ in range(n_one)],
            rounds,
            1.0,
            "ns",
        ),
        _ab(
            "check_parsed, 1-order rejected (median per call)",
            engines,
            lambda: _restricted_requests(workload, n_one // 2, seq),
            rounds,
            1.0,
            "ns",
        ),
        _ab(
            "check_parsed, 1,000-order batch (median per batch)",
            engines,
            lambda: [batch.request()[0] for _ in range(n_batch)],
            rounds,
            1_000.0,
            "µs",
        ),
    ]
    counted = engines[0].check_counter.snapshot()  # it counted every other round
    print(
        f"  (workload: {counted.checked:,} orders counted by one engine, "
        f"{counted.rejected / max(counted.checked, 1):.1%} rejected, "
        f"{sum(counted.warnings.values()):,} warnings)"
    )
    return results


def bench_counting_ops() -> dict[str, float]:
    """ns the added work costs alone, in a tight loop (the loop's own cost subtracted)."""
    engine = Engine()
    counts = engine.check_counter.counts
    vi1 = np.zeros((L.MAX_VIOLATIONS_PER_ORDER, L.V_FIELDS), dtype=np.int64)
    vi1[0, L.V_CHECK] = 9
    vf1 = np.zeros((L.MAX_VIOLATIONS_PER_ORDER, 2))
    rng = np.random.default_rng(1)
    vi40 = np.zeros((40, L.V_FIELDS), dtype=np.int64)  # a batch's 40 violations over 30 orders
    vi40[:, L.V_ORDER] = np.sort(rng.integers(0, 30, 40))
    vi40[:, L.V_CHECK] = rng.choice([1, 2, 6, 9], 40)
    vi40[:, L.V_WARNING] = rng.random(40) < 0.3
    vf40 = np.zeros((40, 2))
    g = {
        "engine": engine, "counts": counts, "vi1": vi1, "vf1": vf1, "vi40": vi40, "vf40": vf40,
        "counted": violation_columns, "uncounted": violation_columns_uncounted, "_m": time.monotonic,
    }  # fmt: skip
    for fn in (violation_columns, violation_columns_uncounted):
        fn(vi1, vf1, 1, 1.0, counts) if fn is violation_columns else fn(vi1, vf1, 1, 1.0)
    n = 100_000

    def t(stmt: str) -> float:
        return min(timeit.repeat(stmt, number=n, repeat=7, globals=g)) / n * 1e9

    out = {}
    base = t("pass")
    out["engine.check_counter.checked += 1 (every request)"] = t("engine.check_counter.checked += 1") - base
    for label, with_, without in (
        (
            "violation_columns: counting, 1 violation (a rejected one-order request)",
            "counted(vi1, vf1, 1, 1.0, counts)",
            "uncounted(vi1, vf1, 1, 1.0)",
        ),
        (
            "violation_columns: counting, 40 violations (a 1,000-order batch's)",
            "counted(vi40, vf40, 40, 1.0, counts)",
            "uncounted(vi40, vf40, 40, 1.0)",
        ),
    ):
        a, b = [], []
        for _ in range(5):
            a.append(t(without))
            b.append(t(with_))
        out[label] = statistics.median(b) - statistics.median(a)
    out["time.monotonic() (write-behind put, once per change record)"] = t("_m()") - base
    return {k: round(v, 1) for k, v in out.items()}


async def _drive_unary(handler: Callable[..., Any], n: int) -> float:
    """ns per call of awaiting handler(request, None) n times (no transport)."""
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await handler(b"x", None)
    return (time.perf_counter_ns() - t0) / n


async def _drive_bidi(handler: Callable[..., Any], n: int) -> float:
    async def requests() -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"x"

    t0 = time.perf_counter_ns()
    async for _ in handler(requests(), None):
        pass
    return (time.perf_counter_ns() - t0) / n


def bench_rpc_wrappers(quick: bool) -> list[AB]:
    async def behavior(request: bytes, context: Any) -> bytes:
        return request

    async def stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for r in requests:
            yield r

    timings = RpcTimings()
    wrapped = timings.wrap("svc", "M", grpc.unary_unary_rpc_method_handler(behavior)).unary_unary
    wrapped_bidi = timings.wrap("svc", "S", grpc.stream_stream_rpc_method_handler(stream)).stream_stream

    registry = CollectorRegistry()
    hist = Histogram("h_seconds", "h", ["method"], registry=registry)
    child = hist.labels("M")

    async def with_histogram(request: bytes, context: Any) -> bytes:
        t0 = time.perf_counter_ns()
        try:
            return await behavior(request, context)
        finally:
            child.observe((time.perf_counter_ns() - t0) / 1e9)

    n = 50_000 if quick else 200_000
    rounds = 5 if quick else 11

    async def main() -> list[AB]:
        bare_u, ours_u, prom_u, bare_b, ours_b = [], [], [], [], []
        for _ in range(rounds):
            bare_u.append(await _drive_unary(behavior, n))
            ours_u.append(await _drive_unary(wrapped, n))
            prom_u.append(await _drive_unary(with_histogram, n))
            bare_b.append(await _drive_bidi(stream, n))
            ours_b.append(await _drive_bidi(wrapped_bidi, n))
        med = statistics.median
        return [
            AB("unary handler: metrics.rpc wrapper", "ns", med(bare_u), med(ours_u), rounds, bare_u, ours_u),
            AB(
                "unary handler: Histogram.observe wrapper",
                "ns",
                med(bare_u),
                med(prom_u),
                rounds,
                bare_u,
                prom_u,
            ),
            AB(
                "bidi stream, per message: metrics.rpc",
                "ns",
                med(bare_b),
                med(ours_b),
                rounds,
                bare_b,
                ours_b,
            ),
        ]

    return asyncio.run(main())


def bench_scrape() -> dict[str, float]:
    """µs a scrape costs the loop (Metrics.snapshot) and the whole exposition (in the scrape thread)."""
    workload = Workload(n_symbols=100, n_accounts=10)
    engine = Engine()
    workload.load_into(engine)
    loop = asyncio.new_event_loop()
    try:
        timings = RpcTimings()

        async def behavior(request: bytes, context: Any) -> bytes:
            return request

        for i in range(20):
            timings.wrap("svc", f"M{i}", grpc.unary_unary_rpc_method_handler(behavior))
        metrics = Metrics(loop, timings)
        from riskd_server.metrics.sources import watch_engine

        watch_engine(metrics, engine)
        n = 2_000
        t0 = time.perf_counter_ns()
        for _ in range(n):
            metrics.snapshot()
        snap_us = (time.perf_counter_ns() - t0) / n / 1e3

        async def expose() -> float:
            t0 = time.perf_counter_ns()
            for _ in range(200):
                generate_latest(metrics.registry)
            return (time.perf_counter_ns() - t0) / 200 / 1e3

        full_us = loop.run_until_complete(expose())  # on the loop: collect() snapshots directly
    finally:
        loop.close()
    return {
        "Metrics.snapshot() on the loop (20 methods)": round(snap_us, 1),
        "whole exposition": round(full_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    print("engine A/B (Uncounted vs Engine, same requests, alternating):")
    eng = bench_engine(args.quick)
    for r in eng:
        print("  " + r.line())
    report["engine"] = [asdict(r) for r in eng]
    print("counting ops alone (ns):")
    ops = bench_counting_ops()
    for k, v in ops.items():
        print(f"  {v:8.1f}  {k}")
    report["ops_ns"] = ops
    print("rpc wrappers (no transport):")
    rpc = bench_rpc_wrappers(args.quick)
    for r in rpc:
        print("  " + r.line())
    report["rpc"] = [asdict(r) for r in rpc]
    print("scrape (µs):")
    sc = bench_scrape()
    for k, v in sc.items():
        print(f"  {v:8.1f}  {k}")
    report["scrape_us"] = sc
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
