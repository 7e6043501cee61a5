"""The MAX_VAR check in the kernel: order-checks/s with MAX_VAR on, against the same kernel without
it and against the naive way, all in one run, in-process (no transport, no database).

* ``kernel, no model``: bench/kernel_bench.py's raw ``check_batch`` rounds over the workload (5,000
  symbols, 1,000 accounts, every other limit kind), batches of 1,000: the plain check.
* ``kernel, MAX_VAR on``: the same after installing a factor model (k = 20 over the 5,000 symbols)
  and a firm-wide MAX_VAR limit (so every order is priced, and every accepted order and every
  cancel moves its account's terms); target >= 2 M order-checks/s.
* ``naive``: what the old module did per order, in numpy: keep the account's dense exposure vector
  w and recompute wᵀ Sigma w for w + d e_s (the VaR after) per order; with Sigma the dense 5,000 x
  5,000 matrix (``naive dense``, 200 MB) and, more charitably, in factor form B (Bᵀw) + spec w
  (``naive factor``). Timed on a sample of orders (it is slow), reported per order.

    python -m bench.var_kernel_bench [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from riskd_server.engine import Engine
from riskd_server.limits import MAX_VAR, Limit
from riskd_server.risk.model import FACTOR, ModelSummary, RiskModel
from riskd_server.warm import warm_up

from .kernel_bench import ThroughputResult, bench_kernel
from .workload import Workload

TARGET_PER_S = 2e6
N_SYMBOLS = 5_000
K = 20
Z99 = 2.3263478740408408


def factor_model(symbols: list[str], k: int = K, seed: int = 7) -> RiskModel:
    """A statistical-factor-like model: k factors of decreasing strength plus specific variance."""
    rng = np.random.default_rng(seed)
    n = len(symbols)
    loadings = rng.normal(0.0, 1.0, (n, k)) * (0.012 / np.sqrt(np.arange(1, k + 1)))
    specific = rng.uniform(0.5, 2.0, n) * 1e-4
    vol = np.sqrt(np.einsum("ij,ij->i", loadings, loadings) + specific)
    summary = ModelSummary(FACTOR, n, 250, 0, 0, k, 0.0, (), 8 * n * (k + 2), 0.99, 1.0, Z99)
    return RiskModel(
        version=f"bench-factor-{n}x{k}",
        kind=FACTOR,
        symbols=tuple(symbols),
        vol=vol,
        specific=specific,
        loadings=loadings,
        covariance=None,
        z=Z99,
        horizon_days=1.0,
        confidence=0.99,
        default_vol=0.02,
        summary=summary,
        built_at=time.time(),
    )


@dataclass(slots=True)
class NaiveResult:
    name: str
    orders: int
    per_s: float
    us_per_order: float


def bench_naive(
    engine: Engine, workload: Workload, model: RiskModel, orders: int, dense: bool
) -> NaiveResult:
    """Per order: the account's dense w (kept up to date, untimed) and VaR after recomputed from
    scratch in numpy; the rule applied; accepted orders update w."""
    n = len(model.symbols)
    assert model.loadings is not None
    b, spec = model.loadings, model.specific
    sigma = b @ b.T + np.diag(spec) if dense else None
    w_by_account: dict[int, np.ndarray] = {}
    sid = np.array([model.index[s] for s in workload.symbols])
    a_idx, s_idx, side, qty, price = workload.orders(orders, np.random.default_rng(9))
    marks = workload.marks
    threshold = 1e12
    t0 = time.perf_counter()
    for i in range(orders):
        a = int(a_idx[i])
        w = w_by_account.get(a)
        if w is None:
            w = w_by_account[a] = np.zeros(n)
        p = price[i] if price[i] > 0 else marks[s_idx[i]]
        d = (qty[i] if side[i] == 1 else -qty[i]) * p
        col = sid[s_idx[i]]
        before = model.scale * np.sqrt(w @ (sigma @ w)) if sigma is not None else 0.0
        w[col] += d
        if sigma is not None:
            after = model.scale * np.sqrt(w @ (sigma @ w))
        else:
            f = b.T @ w
            after = model.scale * np.sqrt(f @ f + spec @ (w * w))
        if after > threshold and after > before:
            w[col] -= d
    dt = time.perf_counter() - t0
    name = "naive dense wᵀΣw (numpy, per order)" if dense else "naive factor Bᵀw (numpy, per order)"
    return NaiveResult(name, orders, orders / dt, dt / orders * 1e6)


@dataclass(slots=True)
class VarBenchReport:
    plain: ThroughputResult
    var_on: ThroughputResult
    naive_factor: NaiveResult
    naive_dense: NaiveResult
    install_ms: float
    k: int
    symbols: int


def run(quick: bool = False) -> VarBenchReport:
    warm_up()
    workload = Workload(n_symbols=N_SYMBOLS)
    engine = Engine()
    workload.load_into(engine)
    batches, rounds = (20, 3) if quick else (100, 5)
    plain = bench_kernel(engine, workload, batch=1_000, batches=batches, rounds=rounds)
    plain.name = "kernel check_batch, no model"
    model = factor_model(workload.symbols)
    t0 = time.perf_counter()
    engine.set_risk_model(model)
    install_ms = (time.perf_counter() - t0) * 1e3
    vars_ = [engine.account_var(a)[0] for a in workload.accounts]
    # Firm-wide, above every account's VaR now so the orders mostly pass: each one is priced.
    engine.upsert_limits(
        [Limit(limit_id="any-var", kind=MAX_VAR, threshold=2.0 * max(vars_), warn_fraction=0.9)]
    )
    var_on = bench_kernel(engine, workload, batch=1_000, batches=batches, rounds=rounds)
    var_on.name = "kernel check_batch, MAX_VAR on"
    naive_factor = bench_naive(engine, workload, model, 2_000 if quick else 20_000, dense=False)
    naive_dense = bench_naive(engine, workload, model, 50 if quick else 300, dense=True)
    return VarBenchReport(plain, var_on, naive_factor, naive_dense, install_ms, K, N_SYMBOLS)


def print_report(rep: VarBenchReport) -> None:
    print(
        f"MAX_VAR kernel bench: {rep.symbols:,} symbols, factor model k = {rep.k}, batches of 1,000, no database"
    )
    print(f"  model install (tables + every account's terms): {rep.install_ms:.1f} ms")
    for t in (rep.plain, rep.var_on):
        print(
            f"  {t.name:<34} {t.per_s / 1e6:6.2f} M order-checks/s (median of {len(t.rounds_per_s)} rounds, "
            f"best {t.best_per_s / 1e6:.2f}; accepted {t.accepted_fraction:.1%})"
        )
    print(
        f"  MAX_VAR on / target {TARGET_PER_S / 1e6:.0f} M/s: {rep.var_on.per_s / TARGET_PER_S:.2f}; "
        f"MAX_VAR on / no model: {rep.var_on.per_s / rep.plain.per_s:.2f}"
    )
    for nv in (rep.naive_factor, rep.naive_dense):
        print(
            f"  {nv.name:<40} {nv.per_s:10,.0f} orders/s ({nv.us_per_order:8.1f} µs an order); "
            f"kernel is {rep.var_on.per_s / nv.per_s:,.0f}x faster"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    rep = run(args.quick)
    print_report(rep)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(asdict(rep), fh, indent=2)


if __name__ == "__main__":
    main()
