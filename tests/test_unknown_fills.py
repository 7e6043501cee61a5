"""Fills of orders riskd does not know, naming their account, symbol and side (Engine._origin and
apply_executions' X_UNKNOWN_FILLED): what they move, what they record, and what they refuse."""

from __future__ import annotations

import numpy as np
import pytest
from recording_sink import RecordingSink

from riskd_server import changes as ch
from riskd_server.engine import BatchError, Engine, EngineConfig
from riskd_server.kernel import layout as L
from riskd_server.limits import Limit


def _engine(**config) -> Engine:
    eng = Engine(EngineConfig(**config), sink=RecordingSink(), wall_clock=lambda: 0.0)
    eng.update_prices(["S"], [10.0])
    return eng


def test_a_forgotten_order_fill_moves_the_named_book_and_records_no_order_update() -> None:
    """o1 is closed and forgotten past a retention of 1; its late venue fill, named, moves A/S like a
    late fill: position, last fill price, exposure and the write-behind records, but no order row
    (the database still holds o1's old row, which must not come back as recently closed)."""
    eng = _engine(closed_order_retention=1)
    assert eng.check_orders(
        ["o1", "o2"], ["A", "A"], ["S", "S"], [1, 1], [1.0, 1.0], [10.0, 10.0]
    ).accepted.all()
    eng.report_executions(["o1"], [2], [0.0], [0.0])
    eng.report_executions(["o2"], [2], [0.0], [0.0])  # o1 leaves the retention
    sink = eng.sink
    assert isinstance(sink, RecordingSink)
    sink.changes.clear()
    out = eng.report_executions(
        ["o1", "o2"], [1, 1], [4.0, 1.0], [12.0, 12.0], account=["A", "B"], symbol=["S", "T"], side=[2, 1]
    )
    assert out.status.tolist() == [L.X_UNKNOWN_FILLED, L.X_LATE_FILL]  # o2's own book wins over B/T
    assert out.applied.tolist() == [True, True] and out.error[0] == "unknown order: position updated"
    assert eng.position("A", "S") == -3.0 and eng.position("B", "T") == 0.0
    assert (
        eng.accounts.get("B") == -1 and eng.symbols.get("T") == -1
    )  # a known order's names are not interned
    (updated,) = sink.of(ch.OrdersUpdated)
    assert updated.client_order_id.tolist() == ["o2"]
    (positions,) = sink.of(ch.PositionsChanged)
    assert list(zip(positions.account, positions.symbol, positions.quantity, strict=True)) == [
        ("A", "S", -3.0),
        ("A", "S", -3.0),
    ]
    (marks,) = sink.of(ch.MarksChanged)
    assert marks.symbol.tolist() == ["S"] and marks.last_fill_price.tolist() == [12.0]
    (audit,) = sink.of(ch.ExecutionsReported)
    assert audit.applied.tolist() == [True, True] and audit.error[0] == "unknown order: position updated"


def test_an_unknown_fill_opens_a_book_that_exposure_checks_see() -> None:
    eng = _engine()
    eng.upsert_limits([Limit(limit_id="g", kind=4, account="V", threshold=1_005.0)])
    out = eng.report_executions(["venue-1"], [1], [100.0], [9.0], account=["V"], symbol=["S"], side=[1])
    assert out.status.tolist() == [L.X_UNKNOWN_FILLED] and eng.position("V", "S") == 100.0
    assert eng.stats()["books"] == 1
    # Gross exposure 100 * 10 (S's UpdatePrices mark wins over the fill price) + 10 > 1,005.
    check = eng.check_orders(["v1", "v2"], ["V", "V"], ["S", "S"], [1, 2], [1.0, 0.5], [10.0, 10.0], now=0.0)
    assert check.accepted.tolist() == [False, True]


@pytest.mark.parametrize(
    ("account", "symbol", "side", "status"),
    [
        ("", "", 0, L.X_UNKNOWN),  # names nothing: as without the columns
        ("V", "S", 0, L.X_BAD_ORIGIN),
        ("V", "", 1, L.X_BAD_ORIGIN),
        ("", "S", 2, L.X_BAD_ORIGIN),
        ("V", "S", 7, L.X_BAD_ORIGIN),
        ("x" * 129, "S", 1, L.X_BAD_ORIGIN),
        ("V", "S", 1, L.X_UNKNOWN_FILLED),
    ],
)
def test_a_fill_must_name_all_of_account_symbol_and_side(
    account: str, symbol: str, side: int, status: int
) -> None:
    eng = _engine()
    out = eng.report_executions(["gone"], [1], [2.0], [10.0], account=[account], symbol=[symbol], side=[side])
    assert out.status.tolist() == [status]
    assert out.applied.tolist() == [status == L.X_UNKNOWN_FILLED]
    assert eng.position("V", "S") == (2.0 if status == L.X_UNKNOWN_FILLED else 0.0)
    assert len(eng.accounts) == (1 if status == L.X_UNKNOWN_FILLED else 0)


def test_only_valid_fills_of_unknown_ids_apply_and_intern() -> None:
    """Cancels of unknown ids and invalid fills apply nothing and intern no name."""
    eng = _engine()
    out = eng.report_executions(
        ["g1", "g2", "g3", "g4"],
        [2, 9, 1, 1],
        [1.0, 1.0, 0.0, 1.0],
        [1.0, 1.0, 1.0, float("nan")],
        account=["V"] * 4,
        symbol=["S"] * 4,
        side=[1] * 4,
    )
    assert out.status.tolist() == [L.X_UNKNOWN, L.X_UNKNOWN, L.X_BAD_FILL, L.X_BAD_FILL]
    assert not out.applied.any() and len(eng.accounts) == 0 and eng.stats()["books"] == 0


def test_names_past_the_capacity_are_refused_per_report() -> None:
    eng = _engine(max_accounts=1, max_symbols=2)
    out = eng.report_executions(
        ["g1", "g2", "g3", "g4"],
        [1] * 4,
        [1.0] * 4,
        [10.0] * 4,
        account=["V", "W", "V", "V"],
        symbol=["S", "S", "T", "U"],
        side=[1, 1, 2, 1],
    )
    assert out.status.tolist() == [L.X_UNKNOWN_FILLED, L.X_ORIGIN_FULL, L.X_UNKNOWN_FILLED, L.X_ORIGIN_FULL]
    assert "capacity" in out.error[1]
    assert (eng.position("V", "S"), eng.position("V", "T")) == (1.0, -1.0)


def test_named_columns_need_one_entry_per_report() -> None:
    eng = _engine()
    for account, symbol, side, bad in (
        (["V"], [], [], "symbol"),
        (["V"], ["S", "S"], [1], "symbol"),
        ([], [], [1], "account"),
        (["V"], ["S"], [1, 2], "side"),
    ):
        with pytest.raises(BatchError) as info:
            eng.report_executions(
                ["g1"], [1], [1.0], [1.0], account=account, symbol=symbol, side=np.array(side)
            )
        assert info.value.field == bad, (account, symbol, side)
    assert eng.state_version == 1  # only the update_prices: nothing applied
