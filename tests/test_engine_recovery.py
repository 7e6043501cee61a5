"""Engine recovery and capacity edge cases: restore at any size, honest write-behind room, no regrowth."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from riskd_server import changes as ch
from riskd_server.engine import Backpressure, Engine, EngineConfig
from riskd_server.kernel import layout as L
from riskd_server.limits import Limit


def _snapshot(
    positions: tuple = (), open_orders: tuple = (), recent_closed: tuple = (), limits: tuple = ()
) -> ch.Snapshot:
    return ch.Snapshot(
        limits=limits,
        trading_states=(),
        marks=(("X", 10.0, float("nan")),),
        positions=ch.RecoveredPositions.of(positions),
        orders=ch.RecoveredOrders.of(recent_closed, open_orders),
    )


def _order(i: int, qty: float = 1.0) -> ch.OpenOrderRow:
    return ch.OpenOrderRow(f"o{i}", "A", "X", 1, qty, 10.0)


def test_restore_loads_more_positions_than_one_batch() -> None:
    positions = tuple(("A", f"S{i}", float(i + 1)) for i in range(25))
    engine = Engine(EngineConfig(max_batch=10))
    engine.restore(_snapshot(positions=positions))
    assert [engine.position("A", f"S{i}") for i in range(25)] == [float(i + 1) for i in range(25)]


def test_restore_keeps_open_orders_beyond_a_smaller_bound(caplog: pytest.LogCaptureFixture) -> None:
    """Restarted with --max-open-orders below the recovered count: every order and its exposure survive."""
    engine = Engine(EngineConfig(max_open_orders=3, closed_order_retention=2, initial_order_slots=1))
    closed = tuple(_order(100 + i) for i in range(4))
    with caplog.at_level(logging.WARNING, logger="riskd.engine"):
        engine.restore(_snapshot(open_orders=tuple(_order(i, 2.0) for i in range(8)), recent_closed=closed))
    assert "recovered 8 open orders" in caplog.text
    assert engine.open_orders() == 8
    assert [engine.open_quantity(f"o{i}") for i in range(8)] == [2.0] * 8
    stats = engine.stats()
    assert stats["order_slots"] == 8 and stats["retained_closed_orders"] == 2  # closed orders: no slot
    # Every slot holds a recovered order: new orders are refused on capacity, known ids also as duplicates.
    out = engine.check_orders(["o102", "o103", "o100", "n1"], *_cols(4), now=0.0)
    assert out.accepted.tolist() == [False] * 4
    assert out.reject_mask.tolist() == [1 << 8 | 1 << 21, 1 << 8 | 1 << 21, 1 << 8, 1 << 8]
    engine.report_executions([f"o{i}" for i in range(8)], [2] * 8, [0.0] * 8, [0.0] * 8)
    assert engine.open_orders() == 0
    out = engine.check_orders([f"n{i}" for i in range(9)], *_cols(9), now=0.0)
    assert out.accepted.tolist() == [True] * 8 + [False]  # the 8 slots raised for the recovered orders


def _cols(n: int) -> tuple:
    return ["A"] * n, ["X"] * n, [1] * n, [1.0] * n, [10.0] * n


class _Sink:
    def __init__(self, room: int) -> None:
        self.room = room
        self.asked: list[int] = []
        self.rows = 0

    def has_room(self, rows: int = 0) -> bool:
        self.asked.append(rows)
        return rows <= self.room

    def put(self, change: ch.Change) -> None:
        self.rows += len(getattr(change, "client_order_id", ()))


def test_check_orders_asks_room_for_every_row_it_can_write() -> None:
    """An order can write a CheckEvents row per failing check: the room asked covers the worst case."""
    sink = _Sink(room=10**9)
    engine = Engine(sink=sink)
    kinds = range(1, 10)
    engine.upsert_limits([Limit(limit_id=f"L{k}", kind=k, threshold=0.0) for k in kinds])
    engine.set_trading_state("", 3)
    before = sink.rows
    engine.check_orders(["a", "b"], ["A", "A"], ["X", "X"], [1, 2], [5.0, 5.0], [0.0, 0.0], now=0.0)
    written = sink.rows - before
    assert written > 2 * 2  # more than the old n * 2 estimate
    assert sink.asked[-1] >= written
    engine.check_orders(["c"], ["A"], ["X"], [1], [5.0], [0.0], now=0.0)  # the one-order path too
    assert sink.asked[-1] >= L.MAX_VIOLATIONS_PER_ORDER
    sink.room = 2 * L.MAX_VIOLATIONS_PER_ORDER - 1
    with pytest.raises(Backpressure):
        engine.check_orders(["d", "e"], *_cols(2), now=0.0)


def test_order_arrays_are_allocated_once_at_the_bound() -> None:
    """Growing the open-order count never reallocates or rehashes the order arrays (no stalls)."""
    engine = Engine(EngineConfig(max_open_orders=5_000, closed_order_retention=0, initial_order_slots=2))
    s = engine._s
    arrays = (s.ordf, s.ordi, s.ord_ht, s.free)
    for start in range(0, 5_000, 1_000):
        ids = [f"o{i}" for i in range(start, start + 1_000)]
        assert engine.check_orders(ids, *_cols(1_000), now=0.0).accepted.all()
    assert all(a is b for a, b in zip(arrays, (s.ordf, s.ordi, s.ord_ht, s.free), strict=True))
    out = engine.check_orders(["over"], *_cols(1), now=0.0)
    assert out.reject_mask.tolist() == [1 << 8]
    assert out.violations.limit_id.tolist() == ["server:max-open-orders"]


def test_one_order_outcome_does_not_alias_the_next() -> None:
    """The one-order path reuses scratch arrays: earlier outcomes must not change afterwards."""
    engine = Engine()
    engine.upsert_limits([Limit(limit_id="q", kind=1, threshold=5.0)])
    first = engine.check_orders(["a"], ["A"], ["X"], [1], [9.0], [1.0], now=0.0)
    second = engine.check_orders(["b"], ["A"], ["X"], [1], [1.0], [1.0], now=0.0)
    engine.check_orders(["c"], ["A"], ["X"], [1], [7.0], [1.0], now=0.0)
    assert first.accepted.tolist() == [False] and first.violations.observed.tolist() == [9.0]
    assert second.accepted.tolist() == [True] and len(second.violations) == 0
    with pytest.raises(ValueError):
        second.accepted[0] = False
    assert np.array_equal(first.reject_mask, [1 << 1])


def test_recovered_closed_orders_keep_their_book_and_side_for_late_fills() -> None:
    """A retained closed order holds no slot; its id still knows the book and side a late fill moves."""
    engine = Engine(EngineConfig(max_open_orders=4, closed_order_retention=4, initial_order_slots=1))
    closed = (
        ch.OpenOrderRow("buy-a", "A", "X", 1, 0.0, 10.0),
        ch.OpenOrderRow("sell-b", "B", "Y", 2, 0.0, 10.0),
    )
    engine.restore(_snapshot(open_orders=(_order(1, 3.0),), recent_closed=closed))
    assert engine.stats()["order_slots"] == 1  # only the open order
    out = engine.report_executions(
        ["sell-b", "buy-a", "sell-b"], [1, 1, 2], [2.0, 5.0, 0.0], [11.0, 12.0, 0.0]
    )
    assert out.applied.tolist() == [True, True, False]
    assert out.status.tolist() == [L.X_LATE_FILL, L.X_LATE_FILL, L.X_CLOSED]
    assert (engine.position("B", "Y"), engine.position("A", "X")) == (-2.0, 5.0)
    assert engine.open_quantity("o1") == 3.0 and engine.open_orders() == 1
    dup = engine.check_orders(
        ["buy-a", "sell-b"], ["A", "B"], ["X", "Y"], [1, 2], [1.0, 1.0], [10.0, 10.0], now=0.0
    )
    assert dup.reject_mask.tolist() == [1 << 21, 1 << 21]
