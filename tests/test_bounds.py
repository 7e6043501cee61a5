"""Every long-lived map is bounded: names past the interner capacity and orders past the open-order
bound are rejected, never stored, and what is already known keeps working."""

from __future__ import annotations

import numpy as np

from riskd_server import wire
from riskd_server.engine import Engine, EngineConfig
from riskd_server.kernel import layout as L
from riskd_server.kernel.executions import apply_executions
from riskd_server.limitbook import CAPACITY_LIMIT_ID

INVALID = 1 << 20
OPEN_ORDERS = 1 << 8
DUPLICATE = 1 << 21


def test_accounts_and_symbols_past_capacity_are_invalid_orders() -> None:
    engine = Engine(EngineConfig(max_accounts=2, max_symbols=2))
    engine.update_prices(["S1", "S2"], [1.0, 1.0])
    out = engine.check_orders(
        ["a", "b", "c", "d", "e"],
        ["A1", "A2", "A3", "A1", "A2"],
        ["S1", "S2", "S1", "S3", "S2"],
        [1] * 5,
        [1.0] * 5,
        [0.0] * 5,
        now=0.0,
    )
    assert out.accepted.tolist() == [True, True, False, False, True]
    assert out.reject_mask.tolist()[2:4] == [INVALID, INVALID]
    assert len(engine.accounts) == 2 and len(engine.symbols) == 2


def test_orders_past_the_open_order_bound_are_refused_on_capacity() -> None:
    engine = Engine(EngineConfig(max_open_orders=3, closed_order_retention=0, initial_order_slots=1))
    engine.update_prices(["S"], [1.0])
    out = engine.check_orders(
        [f"o{i}" for i in range(5)], ["A"] * 5, ["S"] * 5, [1] * 5, [1.0] * 5, [0.0] * 5
    )
    assert out.accepted.tolist() == [True, True, True, False, False]
    assert out.reject_mask.tolist()[3:] == [OPEN_ORDERS, OPEN_ORDERS]
    assert set(out.violations.limit_id.tolist()) == {CAPACITY_LIMIT_ID}
    assert engine.open_orders() == 3
    # A cancel frees a slot (retention 0 forgets the id at once): the next order fits again.
    engine.report_executions(["o0"], [2], [0.0], [0.0])
    again = engine.check_orders(["o9"], ["A"], ["S"], [1], [1.0], [0.0])
    assert again.accepted.tolist() == [True]
    assert engine.open_orders() == 3


def test_the_open_order_bound_is_exact_whatever_the_retention() -> None:
    """Retained closed ids hold no order slot, so they neither lend open orders room nor take it."""
    engine = Engine(EngineConfig(max_open_orders=3, closed_order_retention=5, initial_order_slots=1))
    engine.update_prices(["S"], [1.0])
    out = engine.check_orders(
        [f"o{i}" for i in range(5)], ["A"] * 5, ["S"] * 5, [1] * 5, [1.0] * 5, [0.0] * 5
    )
    assert out.accepted.tolist() == [True, True, True, False, False]
    assert engine.open_orders() == 3
    engine.report_executions(["o0", "o1", "o2"], [2] * 3, [0.0] * 3, [0.0] * 3)
    assert engine.stats()["retained_closed_orders"] == 3
    again = engine.check_orders(
        [f"n{i}" for i in range(4)] + ["o1"], ["A"] * 5, ["S"] * 5, [1] * 5, [1.0] * 5, [0.0] * 5
    )
    assert again.accepted.tolist() == [True, True, True, False, False]
    assert again.reject_mask.tolist()[3:] == [OPEN_ORDERS, OPEN_ORDERS | DUPLICATE]


def test_a_ring_without_headroom_evicts_on_the_spot_instead_of_overwriting() -> None:
    """The engine gives the retention ring room for one batch; a kernel call past it stays exact."""
    engine = Engine(EngineConfig(max_open_orders=8, closed_order_retention=2, max_batch=3))
    engine.update_prices(["S"], [1.0])
    ids = [f"o{i}" for i in range(8)]

    def check(chunk: list[str]) -> list[bool]:
        k = len(chunk)
        return engine.check_orders(
            chunk, ["A"] * k, ["S"] * k, [1] * k, [1.0] * k, [0.0] * k
        ).accepted.tolist()

    assert [ok for c in (ids[:3], ids[3:6], ids[6:]) for ok in check(c)] == [True] * 8
    s = engine._s
    n = len(ids)  # 8 closes in one kernel call, into a ring of 2 + 3
    status, books, open_after = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float64)
    apply_executions(
        wire.hash_strs(ids), np.full(n, 2), np.zeros((n, 2)), np.full((0, 3), -1), *s.groups(), s.var_group(), 1e15,
        status, books, open_after,
    )  # fmt: skip
    assert status.tolist() == [L.X_APPLIED] * n and engine.open_orders() == 0
    assert engine.stats()["retained_closed_orders"] == 2
    # Only the newest two ids are remembered: the others are new orders again.
    assert [ok for c in (ids[:3], ids[3:6], ids[6:]) for ok in check(c)] == [True] * 6 + [False] * 2


def test_the_kernel_groups_hold_their_arrays_in_the_named_order() -> None:
    """The engine passes the kernels plain tuples (kernel.state): each in its NamedTuple's order."""
    from riskd_server.kernel.state import Accounts, Books, LimitTables, Orders, Symbols

    engine = Engine()
    s = engine._s
    for group, cls in zip(s.groups(), (Accounts, Symbols, Books, Orders), strict=True):
        assert type(group) is tuple and len(group) == len(cls._fields)
        assert all(part is getattr(s, name) for part, name in zip(group, cls._fields, strict=True))
    limits = engine.limits.tables
    assert type(limits) is tuple and limits[3] == engine.limits.version
    assert all(
        part is getattr(engine.limits, name) for part, name in zip(limits, LimitTables._fields, strict=True)
    )
    from riskd_server.kernel.state import VarState

    var = s.var_group()
    assert type(var) is tuple and len(var) == len(VarState._fields)
    assert all(part is getattr(s, name) for part, name in zip(var, VarState._fields, strict=True))
