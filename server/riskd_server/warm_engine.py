"""The engine's warm-up: every engine kernel called once with its production signatures, on a tiny
engine (riskd_server.warm runs it with the other warm-ups)."""

from __future__ import annotations

import math
import struct
import time

import numpy as np

from . import changes as ch
from .engine import Engine, EngineConfig, Violations
from .engine.snapshot import SnapshotReader
from .engine.snapshot_changes import ChangeTracker
from .limits import MAX_VAR, Limit
from .risk.model import FACTOR, ModelSummary, RiskModel
from .risk.sizer import warm_sizing
from .wire.request import OneOrder, SpanOrders, parse_check_request
from .wire.snapshot import encode_snapshot


def _sample_request(n: int = 2, first: int = 3) -> bytes:
    """A serialized CheckOrdersRequest of n orders (ids w<first>.., accounts WA, WB, ..., symbol WS;
    packed numeric columns) for warm_up."""

    def field(number: int, payload: bytes) -> bytes:
        return bytes((number << 3 | 2, len(payload))) + payload

    ids = b"".join(field(1, f"w{first + i}".encode()) for i in range(n))
    names = b"".join(field(2, b"W" + bytes((65 + i,))) for i in range(n)) + field(3, b"WS") * n
    numbers = field(5, struct.pack(f"<{n}d", *[1.0] * n)) + field(6, struct.pack(f"<{n}d", *[0.0, 1.0][:n]))
    batch = ids + names + field(4, bytes(1 + i % 2 for i in range(n))) + numbers
    return field(1, batch)


def _tiny_model() -> RiskModel:
    """A one-factor model of WS, for the VaR paths of the kernels."""
    summary = ModelSummary(FACTOR, 1, 0, 0, 0, 1, 1.0, (), 0, 0.99, 1.0, 2.33)
    return RiskModel(
        version="warm", kind=FACTOR, symbols=("WS",), vol=np.array([0.02]), specific=np.array([1e-4]),
        loadings=np.array([[0.017]]), covariance=None, z=2.33, horizon_days=1.0, confidence=0.99,
        default_vol=0.02, summary=summary, built_at=0.0,
    )  # fmt: skip


def warm_up() -> float:
    """Compile (or load from cache) every kernel with the production signatures; returns seconds."""
    start = time.perf_counter()
    eng = Engine(EngineConfig(max_open_orders=8, closed_order_retention=2, initial_order_slots=2))
    recovered = (
        ch.OpenOrderRow("r0", "WA", "WS", 1, 1.0, 100.0),
        ch.OpenOrderRow("r1", "WB", "WS", 2, 1.0, 100.0),
    )
    eng.restore(  # the recovery kernels, for a process that builds the kernel cache
        ch.Snapshot(
            positions=ch.RecoveredPositions.of([("WA", "WS", 0.0)]),
            orders=ch.RecoveredOrders.of(recovered[:1], recovered[1:]),
        )
    )
    eng.report_executions(["r1"], [2], [0.0], [0.0])
    eng.upsert_limits(
        [
            Limit(limit_id="w-exact", kind=1, account="WA", symbol="WS", threshold=10),
            Limit(limit_id="w-acct", kind=7, account="WA", threshold=100, warn_fraction=0.5),
            Limit(limit_id="w-sym", kind=6, symbol="WS", threshold=0.1),
            Limit(limit_id="w-any", kind=4, threshold=1e9),
        ]
    )
    eng.update_prices(["WS"], [100.0])
    eng.load_positions(["WA"], ["WS"], [1.0])
    out = eng.check_orders(
        ["w1", "w2", ""],
        ["WA", "WA", "WA"],
        ["WS", "WS", "WS"],
        [1, 2, 1],
        [1.0, 1.0, 1.0],
        [0.0, 101.0, 1.0],
    )
    eng.report_executions(["w1", "w2", "w9"], [1, 2, 1], [1.0, 0.0, 1.0], [100.0, 0.0, 1.0])
    eng.report_executions(["w8"], [1], [1.0], [100.0], account=["WA"], symbol=["WS"], side=[2])  # unknown
    batch = parse_check_request(_sample_request())
    assert isinstance(batch, SpanOrders)
    eng.check_parsed(batch, now=0.0)  # the raw CheckOrders path
    for first in (5, 6):  # one order: the general path (WA not in the byte index yet), then one call
        one = parse_check_request(_sample_request(1, first))
        assert isinstance(one, OneOrder)
        eng.check_parsed(one, now=0.0)
    eng.set_risk_model(_tiny_model())  # the VaR paths: check, fills, cancels, marks, positions
    eng.upsert_limits([Limit(limit_id="w-var", kind=MAX_VAR, account="WA", threshold=1e9)])
    eng.check_orders(["v1", "v2"], ["WA", "WA"], ["WS", "WS"], [1, 2], [1.0, 1.0], [100.0, 100.0])
    eng.report_executions(["v1", "v2"], [1, 2], [1.0, 0.0], [99.0, 0.0])
    eng.update_prices(["WS"], [101.0])
    eng.load_positions(["WA"], ["WS"], [2.0])
    eng.check_parsed(parse_check_request(_sample_request(1, 7)), now=0.0)
    # A journaled check replayed with its outcome forced (engine.replay): one accepted, one rejected.
    ones = np.ones(1)
    rejected = Violations(
        ones.astype(np.uint32),
        ones.astype(np.int32) * 20,
        np.array([""], dtype=object),
        ones,
        ones,
        ones == 0,
    )
    eng.replay_check(
        parse_check_request(_sample_request(2, 30)), np.array([0, 1 << 20], dtype=np.uint32), rejected, 0.0
    )
    eng.recompute_exposure()
    eng.delete_limits(["w-any"])
    # Incremental limit changes (kernel.limittables: an account table copied, a slot set and
    # cleared), the marks' EWMA and a dynamic refresh.
    eng.upsert_limits(
        [Limit(limit_id="w-dyn", kind=3, account="WA", symbol="WS", threshold=5, reference_volatility=0.01)]
    )
    eng.update_prices(["WS"], [101.0])
    eng.refresh_dynamic()
    eng.delete_limits(["w-dyn"])
    reader = SnapshotReader(eng)  # risk snapshots: the book lists, the ranking, the encoder
    encode_snapshot(reader.columns(reader.all_ids()))
    ChangeTracker(eng).detect()
    warm_sizing(eng)  # VaR sizing: limit resolution and the sample model's row sum
    assert out.accepted.shape[0] == 3 and math.isfinite(eng.position("WA", "WS"))
    return time.perf_counter() - start
