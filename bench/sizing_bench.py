"""SizePositions at 5,000 symbols: server time through a real gRPC server, its parts in process, and
the naive way (per symbol a fresh wᵀ Sigma w and Sigma w, as the old sizing module did) in the same
run, with the ratio.

One engine with marks for every symbol and one account holding --held of them (a full book by
default); the factor model (k = --factors) and the sample model (n x n) are installed in turn. The
server is RiskServicer over that engine on a grpc.aio server in this process (its own loop thread),
called with the blocking RiskClient; server time is the response's server_micros (read the
account, size, build the response; serialising it is grpc's).

Between two calls --moves of the account's positions change (LoadPositions on the server's loop),
as when it trades: the sample model's Sigma @ w is then updated from those rows (risk.sigma_cache);
the first call after a model is installed computes it whole (reported apart). "size ms" is the
sizing alone in process without that cache.

The naive way is timed on --naive-symbols symbols and scaled to all of them (per-symbol cost is
constant: each recomputes the whole product), because the sample model would take minutes.

    python -m bench.sizing_bench [--symbols 5000] [--held 5000] [--factors 20] [--reps 30] [--moves 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import grpc
import numpy as np

from riskd_client import RiskClient
from riskd_server.engine import Engine, EngineConfig
from riskd_server.risk.model import FACTOR, SAMPLE, ModelSummary, RiskModel
from riskd_server.risk.sizer import Sizer, compute
from riskd_server.risk.sizing import largest_move
from riskd_server.risk.sizing_wire import SizesWire
from riskd_server.server import StreamCloser
from riskd_server.servicer import RiskServicer, add_risk_service
from riskd_server.warm import warm_up


def build_model(kind: str, symbols: list[str], factors: int, seed: int = 1) -> RiskModel:
    """A random model of the shape riskd builds: factor (B n x k + specific) or sample (n x n)."""
    rng = np.random.default_rng(seed)
    n = len(symbols)
    b = rng.normal(0.0, 0.006, size=(n, factors))
    spec = rng.uniform(0.005, 0.02, size=n) ** 2
    cov = b @ b.T + np.diag(spec) if kind == SAMPLE else None
    vol = np.sqrt(np.einsum("ij,ij->i", b, b) + spec)
    z = NormalDist().inv_cdf(0.99)
    summary = ModelSummary(kind, n, 250, 0, 0, factors if kind == FACTOR else 0, 0.5, (), 0, 0.99, 1.0, z)
    return RiskModel(
        f"bench-{kind}", kind, tuple(symbols), vol, spec if kind == FACTOR else np.zeros(n),
        b if kind == FACTOR else None, cov, z, 1.0, 0.99, 0.02, summary, 0.0,
    )  # fmt: skip


def naive_sizes(model: RiskModel, w: np.ndarray, price: np.ndarray, budget: float, rows: range) -> None:
    """The old way: per symbol, the VaR from a fresh wᵀ Sigma w and the symbol's Sigma w row from a
    fresh Sigma @ w, then the same root (so only the repeated products differ)."""
    scale = model.scale
    for s in rows:
        v = model.variance(w)
        g = model.sigma_times(w)[s]
        e = np.eye(1, len(w), s)[0]
        ss = model.variance(e)
        k = max((budget / scale) ** 2 - v, 0.0)
        largest_move(np.array([g]), np.array([ss]), k)[0] / price[s]
        largest_move(np.array([-g]), np.array([ss]), k)[0] / price[s]


def _times(fn: Callable[[], object], reps: int) -> list[float]:
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _p(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


class _Server:
    """RiskServicer over engine on a grpc.aio server in a loop thread."""

    def __init__(self, engine: Engine) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        async def start() -> tuple[grpc.aio.Server, int]:
            server = grpc.aio.server(
                options=[
                    ("grpc.max_send_message_length", 64 << 20),
                    ("grpc.max_receive_message_length", 64 << 20),
                ]
            )
            add_risk_service(RiskServicer(engine), StreamCloser().registrar(server))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return server, port

        self.server, self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(60)

    def run(self, fn: Callable[[], object]) -> object:
        async def call() -> object:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0.5), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@dataclass(frozen=True, slots=True)
class Row:
    model: str
    cold_ms: float  # the first call after the model is installed (sample: no Sigma @ w cached)
    server_p50_ms: float
    server_p99_ms: float
    rtt_p50_ms: float
    gather_ms: float
    compute_ms: float
    encode_ms: float
    naive_ms: float
    naive_measured: int


def run(symbols: int, held: int, factors: int, reps: int, naive_symbols: int, moves: int) -> list[Row]:
    warm_up()
    names = [f"S{i:05d}" for i in range(symbols)]
    rng = np.random.default_rng(7)
    eng = Engine(EngineConfig(max_open_orders=10_000, closed_order_retention=1_000, max_batch=symbols))
    prices = rng.uniform(5.0, 500.0, size=symbols)
    eng.update_prices(names, prices)
    held_idx = np.sort(rng.choice(symbols, size=held, replace=False))
    qty = np.round(rng.normal(0.0, 2_000.0, size=held))
    eng.load_positions(["ACC"] * held, [names[i] for i in held_idx], qty)
    w = np.zeros(symbols)
    w[held_idx] = qty * prices[held_idx]
    server = _Server(eng)
    rows = []
    try:
        with RiskClient(f"127.0.0.1:{server.port}", timeout=60) as client:
            for kind in (FACTOR, SAMPLE):
                model = build_model(kind, names, factors)
                server.run(lambda m=model: eng.set_risk_model(m))
                budget = 2.0 * model.var(w)
                cold = client.size_positions("ACC", var_budget=budget, apply_limits=True).server_micros
                server_us: list[float] = []
                rtts: list[float] = []
                for _ in range(reps):
                    # between two calls the account trades: --moves of its positions change
                    moved = rng.choice(held_idx, size=moves, replace=False)
                    server.run(
                        lambda mv=moved: eng.load_positions(  # type: ignore[misc]
                            ["ACC"] * mv.shape[0],
                            [names[i] for i in mv],
                            np.round(rng.normal(0, 2_000, mv.shape[0])),
                        )
                    )
                    t0 = time.perf_counter()
                    r = client.size_positions("ACC", var_budget=budget, apply_limits=True)
                    rtts.append(time.perf_counter() - t0)
                    server_us.append(r.server_micros)
                assert len(r) == symbols
                sizer = Sizer(eng)
                gather = _times(lambda s=sizer, b=budget: s.gather("ACC", (), b, True), reps)  # type: ignore[misc]
                inputs = sizer.gather("ACC", (), budget, True)
                comp = _times(lambda i=inputs: compute(i), reps)  # type: ignore[misc]
                result = compute(inputs)
                wire = SizesWire()  # as the servicer keeps it: the model's symbol column encoded once
                enc = _times(lambda res=result, wr=wire: wr.encode(res), reps)  # type: ignore[misc]
                m = min(naive_symbols, symbols)
                t0 = time.perf_counter()
                naive_sizes(model, w, prices, budget, range(m))
                naive_ms = (time.perf_counter() - t0) * 1e3 * symbols / m
                rows.append(
                    Row(
                        cold_ms=cold / 1e3,
                        model=f"{kind} (k = {factors})"
                        if kind == FACTOR
                        else f"{kind} ({symbols} x {symbols})",
                        server_p50_ms=_p(server_us, 0.5) / 1e3,
                        server_p99_ms=_p(server_us, 0.99) / 1e3,
                        rtt_p50_ms=_p(rtts, 0.5) * 1e3,
                        gather_ms=statistics.median(gather) * 1e3,
                        compute_ms=statistics.median(comp) * 1e3,
                        encode_ms=statistics.median(enc) * 1e3,
                        naive_ms=naive_ms,
                        naive_measured=m,
                    )
                )
                server.run(lambda: eng.set_risk_model(None))
                del model
    finally:
        server.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=5_000)
    ap.add_argument("--held", type=int, default=5_000, help="symbols the account holds")
    ap.add_argument("--factors", type=int, default=20)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--naive-symbols", type=int, default=200, help="symbols the naive way is timed on")
    ap.add_argument("--moves", type=int, default=10, help="positions changed between two calls")
    args = ap.parse_args(argv)
    held = min(args.held, args.symbols)
    moves = min(args.moves, held)
    rows = run(args.symbols, held, args.factors, args.reps, args.naive_symbols, moves)
    print(
        f"SizePositions of all {args.symbols} symbols, account holding {held}, apply_limits, "
        f"{moves} positions changed between calls, {args.reps} calls"
    )
    print(
        "| model | server p50 / p99 ms | first call ms | round trip p50 ms | read engine ms "
        "| size ms (uncached) | response ms | naive ms (timed on N symbols) | naive / server p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.model} | {r.server_p50_ms:.2f} / {r.server_p99_ms:.2f} | {r.cold_ms:.2f} | "
            f"{r.rtt_p50_ms:.2f} | {r.gather_ms:.2f} | {r.compute_ms:.2f} | {r.encode_ms:.2f} | "
            f"{r.naive_ms:,.0f} ({r.naive_measured}) | {r.naive_ms / r.server_p50_ms:,.0f}x |"
        )


if __name__ == "__main__":
    main()
