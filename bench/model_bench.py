"""Risk model build time and memory: the pure build (risk.build.build_model, no database read) at
1,000 and 5,000 symbols x 250 days, both models, on a correlated data set (5 factors plus noise,
2 % of the returns missing).

    python -m bench.model_bench [--symbols 1000 5000] [--days 250] [--repeat 3]

Prints one row per (symbols, model): the best of --repeat builds, the bytes the model holds
(sample: n² x 8 + 2n x 8; factor: n x k x 8 + 2n x 8) and the peak of numpy allocations during
one build (tracemalloc; the model included). OpenBLAS uses every core unless
OPENBLAS_NUM_THREADS is set: run it both ways on a shared machine (see the README figures).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from riskd_server.risk.build import BuildParams, ReturnsWindow, build_model
from riskd_server.risk.model import FACTOR, SAMPLE


def data(n: int, d: int, seed: int = 1) -> ReturnsWindow:
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 0.01, (n, 5)) @ rng.normal(0, 1, (5, d)) + rng.normal(0, 0.015, (n, d))
    m[rng.random((n, d)) < 0.02] = np.nan
    return ReturnsWindow(
        tuple(f"S{i:05d}" for i in range(n)), np.arange(20250101, 20250101 + d, dtype=np.int32), m
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--days", type=int, default=250)
    ap.add_argument("--factors", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"pure build (no database read), {args.days} days, best of {args.repeat}, BLAS threads: {blas}")
    print(
        f"{'symbols':>8}  {'model':<7} {'build ms':>9}  {'model MB':>9}  {'peak MB':>8}  {'factors':>7}  "
        f"{'explained':>9}"
    )
    for n in args.symbols:
        window = data(n, args.days)
        for kind in (FACTOR, SAMPLE):
            params = BuildParams(kind=kind, factors=args.factors)
            best = float("inf")
            model = None
            for _ in range(args.repeat):
                start = time.perf_counter()
                model = build_model(window, params)
                best = min(best, time.perf_counter() - start)
                del model
            tracemalloc.start()
            model = build_model(window, params)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            s = model.summary
            print(
                f"{n:>8}  {kind:<7} {best * 1e3:>9.1f}  {s.memory_bytes / 1e6:>9.2f}  {peak / 1e6:>8.1f}  "
                f"{s.factors:>7}  {s.explained_variance:>9.1%}"
            )
            del model


if __name__ == "__main__":
    main()
