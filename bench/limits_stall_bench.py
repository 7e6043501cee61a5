"""Event-loop stalls around limit changes at 1 M limits (issue 10), in-process, no database.

An asyncio ticker (sleep 1 ms, record the gap) runs beside ``LimitAdmin`` on one event loop, as
in the server: the longest gap while ``LimitAdmin.upsert`` loads all N limits, then the longest
gaps around 100 one-limit upserts with N loaded (each followed by 50 ms of idle loop, so a dynamic
refresh the upsert schedules lands in its window), and what a full ``gc.collect()`` costs once the
N limits are in (the collector frozen or not).

    python -m bench.limits_stall_bench [--limits N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from pathlib import Path

from riskd_server.limit_admin import LimitAdmin
from riskd_server.limits import MAX_POSITION, Limit

from .limits_scale_bench import N_ACCOUNTS, N_SYMBOLS, _engine, scale_limits, small_limits
from .workload import Workload


async def _run(n: int) -> dict[str, float]:
    wl = Workload(n_symbols=N_SYMBOLS, n_accounts=N_ACCOUNTS)
    eng = _engine(wl, small_limits(wl))
    big = scale_limits(wl, n)
    gc.collect()
    gc.freeze()  # as the server does after recovery
    admin = LimitAdmin(eng)
    gaps: list[float] = []
    ends: list[float] = []
    phases: dict[str, tuple[float, float]] = {}
    for name in ("prepare_upsert", "stage_upsert", "build_limits", "install_limits"):
        _timed(eng, name, phases)
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last - 0.001)
            ends.append(now)
            last = now

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    await admin.upsert(big)
    load_s = time.perf_counter() - t0
    at = max(range(len(gaps)), key=gaps.__getitem__)
    load_gap, gap_end = gaps[at], ends[at]
    where = [f"{name} {a - t0:.2f}-{b - t0:.2f}s" for name, (a, b) in phases.items()]
    print(f"  longest gap during the load: ends at {gap_end - t0:.2f}s; phases: {', '.join(where)}")
    del big
    t0 = time.perf_counter()
    gc.collect()
    collect_s = time.perf_counter() - t0
    worst: list[float] = []
    upsert_ms: list[float] = []
    for i in range(100):
        lim = Limit(limit_id=f"one-{i % 7}", kind=MAX_POSITION, account=wl.accounts[i], symbol=wl.symbols[i],
                    threshold=1e6 + i, reference_volatility=0.02 if i % 10 == 0 else 0.0)  # fmt: skip
        await asyncio.sleep(0.05)
        gaps.clear()
        t0 = time.perf_counter()
        await admin.upsert([lim])
        upsert_ms.append((time.perf_counter() - t0) * 1e3)
        await asyncio.sleep(0.05)  # a refresh the upsert scheduled runs in here
        worst.append(max(gaps) * 1e3)
    done = True
    await tick
    ends.clear()
    worst.sort()
    upsert_ms.sort()
    return {
        "limits": n,
        "load_s": load_s,
        "load_longest_gap_ms": load_gap * 1e3,
        "gc_collect_after_load_s": collect_s,
        "one_upsert_p50_ms": upsert_ms[50],
        "one_upsert_max_ms": upsert_ms[-1],
        "one_upsert_gap_p50_ms": worst[50],
        "one_upsert_gap_p99_ms": worst[98],
        "one_upsert_gap_max_ms": worst[-1],
    }


def _timed(eng: object, name: str, phases: dict[str, tuple[float, float]]) -> None:
    """Record when eng.name last ran (start, end), to place the longest gap."""
    f = getattr(eng, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            phases[name] = (t, time.perf_counter())

    setattr(eng, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=int, default=1_000_000)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    rep = asyncio.run(_run(args.limits))
    for key, value in rep.items():
        print(f"  {key:<28} {value:,.3f}" if isinstance(value, float) else f"  {key:<28} {value:,}")
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
