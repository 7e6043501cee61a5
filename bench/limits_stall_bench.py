"""Event-loop stalls around limit changes at 1 M limits (issue 10), in-process, no database.

An asyncio ticker (sleep 1 ms, record the gap) runs beside ``LimitAdmin`` on one event loop, as
in the server: the longest gap while ``LimitAdmin.upsert`` loads all N limits, then the longest
gaps around 100 one-limit upserts with N loaded (each followed by 50 ms of idle loop, so a dynamic
refresh the upsert schedules lands in its window), and what a full ``gc.collect()`` costs once the
N limits are in (the collector frozen or not).

With ``--server``: the same through a real ``riskd serve`` (embedded PostgreSQL), seen from outside:
a probe process calls ``ListTemplates`` (answered on the event loop, no I/O) back to back and
records each call's latency, while the CLI imports N limits (all added, then every threshold
changed) and then while 100 one-limit ``UpsertLimits`` run; a probe call's latency is at least the
loop's stall it met (plus the probe's own round trip: the idle figures).

    python -m bench.limits_stall_bench [--limits N] [--server] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time
from collections.abc import Callable
from multiprocessing import Event, Process, Queue
from pathlib import Path

import numpy as np

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


def _probe(target: str, stop: Event, out: Queue) -> None:
    """Back-to-back ListTemplates calls; puts the latencies (seconds) when stop is set."""
    from riskd_client import RiskClient

    lat: list[float] = []
    with RiskClient(target) as c:
        while not stop.is_set():
            t = time.perf_counter()
            c.list_templates()
            lat.append(time.perf_counter() - t)
    out.put(lat)


def _probed(target: str, work: Callable[[], object]) -> tuple[list[float], float]:
    """(probe latencies, seconds of work) while work() runs."""
    stop, out = Event(), Queue()
    proc = Process(target=_probe, args=(target, stop, out))
    proc.start()
    time.sleep(1.0)  # the probe connected and warm
    t = time.perf_counter()
    try:
        work()
    finally:
        seconds = time.perf_counter() - t
        stop.set()
        lat = out.get(timeout=60)
        proc.join()
    return lat, seconds


def _ms(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q)) * 1e3 if values else float("nan")


def run_server(n: int) -> dict[str, float]:
    from riskd_client import LimitSpec, RiskClient, RiskdError

    from .limits_io_bench import _cli, write_file
    from .servers import spawn_riskd

    tmp = Path(tempfile.mkdtemp(prefix="riskd-stall-"))
    source, changed = tmp / "limits.jsonl", tmp / "changed.jsonl"
    write_file(source, n)
    write_file(changed, n, bump=1.0)
    server = spawn_riskd("limits-stall", tmp / "data", ["--log-level", "INFO"])
    rep: dict[str, float] = {"limits": n}
    try:
        t, pid = server.target, server.proc.pid
        idle, _ = _probed(t, lambda: time.sleep(3.0))
        rep["idle_probe_p50_ms"], rep["idle_probe_max_ms"] = _ms(idle, 0.5), _ms(idle, 1.0)
        for name, path in (("import_added", source), ("import_changed", changed)):
            lat, secs = _probed(
                t, lambda path=path, name=name: _cli(name, t, ["import", str(path)], None, pid)
            )
            rep[f"{name}_s"], rep[f"{name}_probe_p99_ms"] = secs, _ms(lat, 0.99)
            rep[f"{name}_probe_max_ms"] = _ms(lat, 1.0)
        upserts: list[float] = []

        def one_upserts() -> None:
            with RiskClient(t) as c:
                for i in range(100):
                    dyn = 0.02 if i % 10 == 0 else 0.0
                    spec = LimitSpec(f"one-{i % 7}", "MAX_POSITION", 1e6 + i, account=f"ACC{i:05d}",
                                     symbol="SYM0004", reference_volatility=dyn)  # fmt: skip
                    while True:  # after a million-row import the write-behind may still be full
                        t0 = time.perf_counter()
                        try:
                            c.upsert_limits(spec)
                        except RiskdError as exc:
                            if exc.code != "UNAVAILABLE":
                                raise
                            time.sleep(1.0)
                            continue
                        upserts.append(time.perf_counter() - t0)
                        break
                    time.sleep(0.05)

        lat, _ = _probed(t, one_upserts)
        rep["one_upsert_p50_ms"], rep["one_upsert_max_ms"] = _ms(upserts, 0.5), _ms(upserts, 1.0)
        rep["one_upserts_probe_p99_ms"], rep["one_upserts_probe_max_ms"] = _ms(lat, 0.99), _ms(lat, 1.0)
    finally:
        server.stop(timeout=120)
        for p in (source, changed):
            p.unlink(missing_ok=True)
    return rep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=int, default=1_000_000)
    parser.add_argument(
        "--server", action="store_true", help="through a real riskd serve, probed from outside"
    )
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    rep = run_server(args.limits) if args.server else asyncio.run(_run(args.limits))
    for key, value in rep.items():
        print(f"  {key:<28} {value:,.3f}" if isinstance(value, float) else f"  {key:<28} {value:,}")
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
