"""This machine's cost of one random cache line, by table size: the floor under the check kernel.

The kernel touches, per order, one line of each of its big tables at a random place (order-id
table, book table, book row) with the same software prefetch it uses. This loop does only that
(read-modify-write one line per step, prefetched ``ahead`` steps before), so the figures say what
the memory system charges per random line once a table outgrows the caches and the TLB.

    python -m bench.memory_bench
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from riskd_server.kernel._prefetch import prefetch

SIZES_MB = (1, 4, 8, 16, 32, 64, 256)
_LINE = 8  # float64 per 64-byte line


@njit(nogil=True, cache=True)
def _touch(rows: np.ndarray, table: np.ndarray, ahead: int) -> float:
    total = 0.0
    n = rows.shape[0]
    for k in range(n + ahead):
        if k < n:
            prefetch(table, rows[k], 0)
        i = k - ahead
        if i >= 0:
            r = rows[i]
            table[r, 0] += 1.0
            total += table[r, 1]
    return total


def ns_per_line(size_mb: int, steps: int = 2_000_000, ahead: int = 16, repeat: int = 3) -> float:
    """Best-of-repeat ns per random line in a table of size_mb (written in full first)."""
    n_rows = size_mb * 1024 * 1024 // (_LINE * 8)
    table = np.full((n_rows, _LINE), 0.0)
    rows = np.random.default_rng(0).integers(0, n_rows, size=steps)
    _touch(rows[:64], table, ahead)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        _touch(rows, table, ahead)
        best = min(best, time.perf_counter() - t0)
    return best / steps * 1e9


def run() -> dict[int, float]:
    return {mb: ns_per_line(mb) for mb in SIZES_MB}


def main() -> None:
    for mb, ns in run().items():
        print(f"random line (read-modify-write, prefetched) in a {mb:>4} MB table: {ns:5.1f} ns")


if __name__ == "__main__":
    main()
