"""Limits at scale (issue 10), in-process, no database: compile time and one-upsert time at 1 M
limits, and check throughput at 100 vs 1 M limits, in the same run.

* ``compile``: ``Engine.compile_limits`` of the whole set (what LimitAdmin runs in a worker thread for
  a recompile: columns out of the Limit objects, the numba table build); target <= 2 s. Also the
  event loop's longest stall while ``LimitAdmin.upsert`` of the whole set runs (staging on the
  loop: validation and interning; the compile in the thread).
* ``one upsert``: ``Engine.stage_upsert`` + ``build_limits`` + ``install_limits`` of one limit (a
  changed exact limit, a new one, a delete) at 1 M limits; p50 / p99 / max; target <= 10 ms. Run
  after a ``gc.collect()``: a full collection of the cyclic GC costs ~0.1 s with a million limits
  alive, wherever it lands (see the README on ``gc.freeze``).
* ``dynamic refresh``: ``Engine.build_refresh`` (every dynamic limit's effective threshold from the
  current volatilities, the new version built) once every symbol has a known volatility.
* ``checks``: ``Engine.check_orders`` throughput over the same batches of 1,000 orders (fresh ids,
  the same accounts and symbols every round) on an engine with 100 limits and one with 1 M, rounds
  interleaved, per wall second and per CPU second of the checking thread (the machine is shared);
  target: within 10 %.

10,000 accounts, 5,000 symbols; the 1 M limits: 8 firm-wide, 6 per account (gross, net, rate, open
orders, quantity, notional), 2 per symbol (quantity, collar), the rest (account, symbol) position
and notional limits over each account's traded symbols, a tenth of the position limits dynamic.

    python -m bench.limits_scale_bench [--limits N] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time

import numpy as np

from riskd_server.engine import Engine
from riskd_server.limit_admin import LimitAdmin
from riskd_server.limits import (
    MAX_GROSS_EXPOSURE,
    MAX_NET_EXPOSURE,
    MAX_OPEN_ORDERS,
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_QUANTITY,
    MAX_ORDER_RATE,
    MAX_POSITION,
    PRICE_COLLAR,
    Limit,
)
from riskd_server.warm import warm_up

from .kernel_bench import _cancel, _rounds
from .workload import UNIVERSE, Workload

N_ACCOUNTS = 10_000
N_SYMBOLS = 5_000
COMPILE_TARGET_S = 2.0
UPSERT_TARGET_MS = 10.0


def firm_limits() -> list[Limit]:
    return [
        Limit(limit_id="any-qty", kind=MAX_ORDER_QUANTITY, threshold=10_000),
        Limit(limit_id="any-notional", kind=MAX_ORDER_NOTIONAL, threshold=1e6, warn_fraction=0.9),
        Limit(limit_id="any-position", kind=MAX_POSITION, threshold=1e6),
        Limit(limit_id="any-gross", kind=MAX_GROSS_EXPOSURE, threshold=1e12),
        Limit(limit_id="any-net", kind=MAX_NET_EXPOSURE, threshold=1e12),
        Limit(limit_id="any-collar", kind=PRICE_COLLAR, threshold=0.2),
        Limit(limit_id="any-rate", kind=MAX_ORDER_RATE, threshold=1e9),
        Limit(limit_id="any-open", kind=MAX_OPEN_ORDERS, threshold=1e6),
    ]


def small_limits(wl: Workload, n: int = 100) -> list[Limit]:
    """n limits: the firm-wide ones and account-level ones on the first accounts."""
    out = firm_limits()
    for i in range(n - len(out)):
        out.append(
            Limit(limit_id=f"acct-gross-{i}", kind=MAX_GROSS_EXPOSURE, account=wl.accounts[i], threshold=1e11)
        )
    return out


def scale_limits(wl: Workload, n: int) -> list[Limit]:
    """n limits in the mix of the module doc (generous thresholds: the checks accept as with 100)."""
    acc, sym = wl.accounts, wl.symbols
    out = firm_limits()
    for a in acc:
        out += [
            Limit(
                limit_id=f"{a}-gross", kind=MAX_GROSS_EXPOSURE, account=a, threshold=1e11, warn_fraction=0.8
            ),
            Limit(limit_id=f"{a}-net", kind=MAX_NET_EXPOSURE, account=a, threshold=1e11),
            Limit(limit_id=f"{a}-rate", kind=MAX_ORDER_RATE, account=a, threshold=1e9),
            Limit(limit_id=f"{a}-open", kind=MAX_OPEN_ORDERS, account=a, threshold=1e6),
            Limit(limit_id=f"{a}-qty", kind=MAX_ORDER_QUANTITY, account=a, threshold=5_000),
            Limit(limit_id=f"{a}-notional", kind=MAX_ORDER_NOTIONAL, account=a, threshold=1e7),
        ]
    for s in sym:
        out += [
            Limit(limit_id=f"{s}-qty", kind=MAX_ORDER_QUANTITY, symbol=s, threshold=8_000),
            Limit(limit_id=f"{s}-collar", kind=PRICE_COLLAR, symbol=s, threshold=0.5),
        ]
    rest = max(n - len(out), 0)
    per_account = -(-rest // len(acc))
    kinds = (MAX_POSITION, MAX_ORDER_NOTIONAL)
    for i, a in enumerate(acc):
        for j in range(min(per_account, rest)):
            s = sym[wl.universe[i, (j // 2) % UNIVERSE]]
            kind = kinds[j % 2]
            dynamic = kind == MAX_POSITION and j % 20 == 0
            out.append(
                Limit(
                    limit_id=f"{a}-{s}-{j}",
                    kind=kind,
                    account=a,
                    symbol=s,
                    threshold=1e6 if kind == MAX_POSITION else 1e7,
                    reference_volatility=0.02 if dynamic else 0.0,
                )
            )
        rest -= min(per_account, rest)
    return out[:n] if n >= len(firm_limits()) else out


def _engine(wl: Workload, limits: list[Limit]) -> Engine:
    eng = Engine()
    eng.update_prices(wl.symbols, wl.marks)  # names interned in the workload's order
    eng.upsert_limits(limits)
    eng.load_positions(*wl.positions())
    return eng


async def _upsert_on_loop(eng: Engine, limits: list[Limit]) -> tuple[float, float]:
    """(seconds, longest event-loop stall in seconds) of LimitAdmin.upsert(limits)."""
    admin = LimitAdmin(eng)
    stall = 0.0
    done = False

    async def ticker() -> None:
        nonlocal stall
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stall = max(stall, now - last - 0.001)
            last = now

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    await admin.upsert(limits)
    dt = time.perf_counter() - t0
    done = True
    await tick
    return dt, stall


def bench_upserts(eng: Engine, wl: Workload, k: int = 200) -> dict[str, float]:
    """One-limit changes at the engine's size: a changed threshold, a new limit, a delete, in turn."""
    rng = np.random.default_rng(7)
    times: list[float] = []
    existing = [f"{wl.accounts[i]}-{wl.symbols[wl.universe[i, 0]]}-0" for i in range(len(wl.accounts))]
    for n in range(k):
        i = int(rng.integers(0, len(wl.accounts)))
        a = wl.accounts[i]
        s = wl.symbols[wl.universe[i, int(rng.integers(0, UNIVERSE))]]
        t0 = time.perf_counter()
        if n % 3 == 2:
            deleted, _ = eng.stage_delete([f"new-{n - 1}"])
            book = eng.build_limits((), deleted, eng.limits.version + 1)
            eng.install_limits(book, _change((), tuple(deleted)))
        else:
            lim = (
                Limit(limit_id=existing[i], kind=MAX_POSITION, account=a, symbol=wl.symbols[wl.universe[i, 0]],
                      threshold=float(rng.integers(5e5, 1e6)))
                if n % 3 == 0
                else Limit(limit_id=f"new-{n}", kind=MAX_POSITION, account=a, symbol=s, threshold=9e5)
            )  # fmt: skip
            version = eng.stage_upsert([lim])
            book = eng.build_limits([lim], (), version)
            eng.install_limits(book, _change((lim,), ()))
        times.append(time.perf_counter() - t0)
    ms = sorted(t * 1e3 for t in times)
    return {
        "first_ms": [t * 1e3 for t in times[:5]],
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[int(0.99 * (len(ms) - 1))],
        "max_ms": ms[-1],
        "count": len(ms),
    }


def bench_refresh(eng: Engine, wl: Workload) -> float:
    """Seconds of Engine.build_refresh once every symbol has a known EWMA volatility (mark moves of
    ~3 %), i.e. the worker-thread part of a dynamic-threshold refresh."""
    rng = np.random.default_rng(11)
    marks = wl.marks.copy()
    for _ in range(eng.config.dynamic_min_returns + 1):
        marks = np.round(marks * np.exp(rng.normal(0, 0.03, marks.shape[0])), 4)
        eng.update_prices(wl.symbols, marks)
    t0 = time.perf_counter()
    book = eng.build_refresh()
    dt = time.perf_counter() - t0
    assert book is not None and eng.install_refresh(book)
    eng.update_prices(wl.symbols, wl.marks)  # back to the marks the check rounds were built on
    return dt


def _check_round(eng: Engine, wl: Workload, batches: int = 20, batch: int = 1_000) -> tuple[float, float]:
    """(orders per wall second, orders per CPU second of this thread) of Engine.check_orders over
    one round of the fixed order stream; the orders are cancelled afterwards (untimed)."""
    (cols,) = _rounds(wl, 1, batches, batch, seed=1)
    gc.collect()
    w0, c0 = time.perf_counter(), time.thread_time()
    for c in cols:
        eng.check_orders(*c.args())
    wall, thread = time.perf_counter() - w0, time.thread_time() - c0
    _cancel(eng, [i for c in cols for i in c.client_order_id])
    n = batches * batch
    return n / wall, n / max(thread, 1e-9)


def _change(upserted: tuple, deleted: tuple):
    from riskd_server import changes as ch

    return ch.LimitsChanged(upserted, deleted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limits", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warm_up()
    wl = Workload(n_symbols=N_SYMBOLS, n_accounts=N_ACCOUNTS)
    t0 = time.perf_counter()
    big = scale_limits(wl, args.limits)
    made = time.perf_counter() - t0
    small = _engine(wl, small_limits(wl))
    eng = Engine()
    eng.update_prices(wl.symbols, wl.marks)
    gc.collect()
    gc.freeze()  # the 1 M Limit objects are long-lived: keep the collector from rescanning them
    load_s, stall_s = asyncio.run(_upsert_on_loop(eng, big))
    eng.load_positions(*wl.positions())
    n_limits = len(eng.limits.limits)
    merged = dict(eng.limits.limits)
    compiles = []
    for _ in range(3):
        t0 = time.perf_counter()
        eng.compile_limits(merged, eng.limits.version + 1)
        compiles.append(time.perf_counter() - t0)
    del merged
    gc.collect()  # the compiles above leave a full collection due, which would land in the first upsert
    upserts = bench_upserts(eng, wl)
    refresh_s = bench_refresh(eng, wl)
    # Throughput, interleaved rounds on the two engines over the same order stream (the same
    # accounts and symbols every round, fresh ids): a first untimed round opens the books.
    rates: dict[str, list[float]] = {"100": [], "1M": []}
    cpu: dict[str, list[float]] = {"100": [], "1M": []}
    for r in range(args.rounds + 1):
        for name, e in (("100", small), ("1M", eng)) if r % 2 == 0 else (("1M", eng), ("100", small)):
            wall, thread = _check_round(e, wl)
            if r:
                rates[name].append(wall)
                cpu[name].append(thread)
    med = {k: statistics.median(v) for k, v in rates.items()}
    best = {k: max(v) for k, v in rates.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    # Each round of one engine next to the other's in the same pair: the median of those ratios
    # is the figure least moved by the machine's other load.
    paired = statistics.median(b / s for b, s in zip(cpu["1M"], cpu["100"], strict=True))
    result = {
        "limits": n_limits,
        "accounts": N_ACCOUNTS,
        "symbols": N_SYMBOLS,
        "make_limit_objects_s": made,
        "compile_s": {
            "best": min(compiles),
            "median": statistics.median(compiles),
            "target": COMPILE_TARGET_S,
        },
        "initial_upsert_via_admin_s": load_s,
        "event_loop_longest_stall_s": stall_s,
        "one_upsert": upserts | {"target_ms": UPSERT_TARGET_MS},
        "dynamic_refresh_s": refresh_s,
        "checks_per_s": {k: {"median": med[k], "rounds": v} for k, v in rates.items()},
        "ratio_1M_to_100": med["1M"] / med["100"],
        "ratio_best_1M_to_100": best["1M"] / best["100"],
        "checks_per_cpu_s": cpu_med,
        "ratio_cpu_1M_to_100": cpu_med["1M"] / cpu_med["100"],
        "ratio_paired_cpu_1M_to_100": paired,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"limits: {result['limits']:,} over {N_ACCOUNTS:,} accounts and {N_SYMBOLS:,} symbols (no database)"
    )
    print(f"compile (worker-thread part): best {min(compiles):.2f} s, median {statistics.median(compiles):.2f} s "
          f"(target <= {COMPILE_TARGET_S} s)")  # fmt: skip
    print(
        f"first UpsertLimits of all of them via LimitAdmin: {load_s:.2f} s; longest event-loop stall {stall_s * 1e3:.0f} ms"
    )
    print(f"one upsert/delete at that size: p50 {upserts['p50_ms']:.2f} ms, p99 {upserts['p99_ms']:.2f} ms, "
          f"max {upserts['max_ms']:.2f} ms over {upserts['count']} (target <= {UPSERT_TARGET_MS} ms)")  # fmt: skip
    print(f"dynamic refresh (every dynamic limit's effective threshold recomputed, new version built): "
          f"{refresh_s * 1e3:.0f} ms in the worker thread")  # fmt: skip
    print(f"check_orders median: 100 limits {med['100'] / 1e6:.2f} M/s, 1 M limits {med['1M'] / 1e6:.2f} M/s "
          f"(ratio {result['ratio_1M_to_100']:.3f}); best round {best['100'] / 1e6:.2f} vs {best['1M'] / 1e6:.2f} M/s "
          f"(ratio {result['ratio_best_1M_to_100']:.3f})")  # fmt: skip
    print(f"check_orders per CPU second of the checking thread (median): 100 limits {cpu_med['100'] / 1e6:.2f} M, "
          f"1 M limits {cpu_med['1M'] / 1e6:.2f} M (ratio {result['ratio_cpu_1M_to_100']:.3f}; "
          f"median of the paired rounds' ratios {paired:.3f})")  # fmt: skip
    print(f"  rounds (M/s) 100: {[round(x / 1e6, 2) for x in rates['100']]}")
    print(f"  rounds (M/s) 1 M: {[round(x / 1e6, 2) for x in rates['1M']]}")
    print(f"  one-upsert times, first five (ms): {[round(x, 2) for x in upserts['first_ms']]}")


if __name__ == "__main__":
    main()
