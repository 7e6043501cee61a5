"""Names holding a control character (Unicode Cc) are invalid on every path (riskd_server.names).

An order naming one is INVALID_ORDER and nothing else; an admin request naming one is
INVALID_ARGUMENT naming the field and index; an execution report for one is for an unknown
order. tests/test_names_roundtrip.py shows why: the names that are accepted come back from
PostgreSQL byte for byte.
"""

from __future__ import annotations

import asyncio
import unicodedata

import grpc
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from oracle_servicer import check_wire
from test_wire import _Aborted, _Context, _encode, _engine

from riskd.v1 import risk_pb2 as pb
from riskd_server import wire
from riskd_server.engine import BatchError
from riskd_server.interning import Interner
from riskd_server.kernel import layout as L
from riskd_server.limits import Limit, LimitValidationError
from riskd_server.names import control_flags, has_control
from riskd_server.servicer import RiskServicer

INVALID = 1 << 20
CONTROLS = ["\x00", "\x01", "\t", "\n", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]
NOT_CONTROLS = [" ", "~", "\xa0", "é", "\u2028", "\ufeff", "😀"]  # other categories (Zs, Zl, Cf, So, ...)


def test_the_rule_is_unicode_category_cc() -> None:
    for cp in range(0x110000):
        ch = chr(cp)
        if 0xD800 <= cp < 0xE000:
            continue
        assert has_control(f"a{ch}b") == (unicodedata.category(ch) == "Cc"), hex(cp)
    assert control_flags(["a", "b"]) is None and control_flags([]) is None
    assert control_flags(["a", "b\x7f", "", "\x85"]).tolist() == [False, True, False, True]  # type: ignore[union-attr]
    for c in map(chr, range(0x100)):  # the ASCII fast path and the regex agree with has_control
        for names in (["ok", f"x{c}"], ["ok", f"\u00e9{c}"]):
            flags = control_flags(names)
            assert (flags is not None and bool(flags[1])) == has_control(c), repr(c)


def test_the_interner_refuses_them() -> None:
    interner = Interner("account", 10)
    for c in CONTROLS:
        assert interner.intern(f"A{c}") == -1 and interner.get(f"A{c}") == -1
    assert len(interner) == 0
    assert [interner.intern(f"A{c}") for c in NOT_CONTROLS] == list(range(len(NOT_CONTROLS)))


def _orders(bad_field: str, name: str) -> dict[str, list]:
    cols = {
        "client_order_id": ["ok1", "bad", "ok2"],
        "account": ["A", "A", "A"],
        "symbol": ["S", "S", "S"],
        "side": [1, 1, 2],
        "quantity": [1.0, 1.0, 1.0],
        "price": [0.0, 0.0, 0.0],
    }
    cols[bad_field][1] = name
    return cols


def _answers(out) -> list[tuple[bool, int]]:
    return list(zip(out.accepted.tolist(), out.reject_mask.tolist(), strict=True))


@pytest.mark.parametrize("field", ["client_order_id", "account", "symbol"])
@pytest.mark.parametrize("control", CONTROLS)
def test_an_order_naming_one_is_invalid_on_every_path(field: str, control: str) -> None:
    """Batch and one-order, strs and raw bytes: INVALID_ORDER alone, the neighbours unaffected.
    (A limit that would reject every order shows nothing else is evaluated.)"""
    name = {"client_order_id": "x", "account": "A", "symbol": "S"}[field] + control + "y"
    cols = _orders(field, name)
    want = [(True, 0), (False, INVALID), (True, 0)]
    paths = {
        "strs": lambda eng: eng.check_orders(*cols.values(), now=1.0),
        "wire": lambda eng: (
            check_wire(eng, _encode(cols, True, 1, False, 3), now=1.0)
            or eng.check_orders(*pb_columns(_encode(cols, True, 1, False, 3)), now=1.0)
        ),
    }
    for path, check in paths.items():
        eng = _engine(0, True)
        out = check(eng)
        assert _answers(out) == want, path
        assert out.violations.check.tolist() == [20] and out.violations.order_index.tolist() == [1]
        assert eng.stats()["accounts"] == 1 and eng.stats()["symbols"] == 2  # A; S, T (_engine's marks)
    one = {k: [v[1]] for k, v in cols.items()}
    for raw in (False, True):
        eng = _engine(1, False)
        eng.upsert_limits([Limit(limit_id="none", kind=1, threshold=0.0)])  # rejects every order
        if raw:
            reply = asyncio.run(RiskServicer(eng).CheckOrdersRaw(_encode(one, True, 0, False, 5), _Context()))  # type: ignore[arg-type]
            result = pb.CheckOrdersResponse.FromString(reply).result
            assert list(result.reject_mask) == [INVALID] and [v.check for v in result.violations] == [20]
        else:
            out = eng.check_orders(*one.values(), now=1.0)
            assert _answers(out) == [(False, INVALID)] and out.violations.check.tolist() == [20]


def pb_columns(data: bytes) -> tuple:
    batch = pb.CheckOrdersRequest.FromString(data).orders
    return (batch.client_order_id, batch.account, batch.symbol, batch.side, batch.quantity, batch.price)


@pytest.mark.parametrize("name", NOT_CONTROLS)
def test_names_of_other_categories_are_accepted(name: str) -> None:
    eng = _engine(0, False)
    out = eng.check_orders([f"i{name}"], [f"A{name}"], [f"S{name}"], [1], [1.0], [5.0], now=1.0)
    assert _answers(out) == [(True, 0)]


_ascii = st.text(alphabet=st.characters(max_codepoint=127), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids=st.lists(_ascii, min_size=1, max_size=3), account=_ascii, symbol=_ascii)
def test_the_parser_leaves_exactly_the_control_bytes_to_the_str_path(ids, account, symbol) -> None:
    """wire.parse checks 8 bytes at a time: it falls back iff some ASCII byte is < 0x20 or 0x7F,
    at any position of a string of any length, in any string column."""
    n = len(ids)
    cols = {
        "client_order_id": ids,
        "account": [account] * n,
        "symbol": [symbol] * n,
        "side": [1] * n,
        "quantity": [1.0] * n,
        "price": [0.0] * n,
    }
    data = _encode(cols, True, 0, False, 1)
    status = wire.parse_check_orders(np.frombuffer(data, np.uint8), wire.SEED)[0]
    control = any(has_control(s) for s in [*ids, account, symbol])
    assert status == (wire.FALLBACK if control else wire.OK)
    if n == 1:
        assert wire.parse_one(data, wire.SEED)[0] == (wire.FALLBACK if control else wire.OK)
    execs = pb.ReportExecutionsRequest(client_order_id=ids, type=[2] * n).SerializeToString()
    status = wire.parse_executions(np.frombuffer(execs, np.uint8), wire.SEED)[0]
    assert status == (wire.FALLBACK if any(map(has_control, ids)) else wire.OK)


def _abort_details(call) -> str:
    context = _Context()
    with pytest.raises(_Aborted):
        asyncio.run(call(context))
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    return context.details


def test_admin_requests_naming_one_are_invalid_argument() -> None:
    """UpdatePrices, LoadPositions, SetTradingState, UpsertLimits: the field and index named."""
    eng = _engine(0, False)
    before = eng.stats()
    servicer = RiskServicer(eng)
    prices = pb.UpdatePricesRequest(symbol=["S", "T\x00"], price=[1.0, 2.0])
    assert _abort_details(lambda c: servicer.UpdatePrices(prices, c)).startswith("symbol[1]: ")
    positions = pb.LoadPositionsRequest(
        account=["A", "A", "B\x85"], symbol=["S", "T", "S"], quantity=[1, 2, 3]
    )
    assert _abort_details(lambda c: servicer.LoadPositions(positions, c)).startswith("account[2]: ")
    positions = pb.LoadPositionsRequest(account=["A"], symbol=["\x7f"], quantity=[1])
    assert "control character" in _abort_details(lambda c: servicer.LoadPositions(positions, c))
    state = pb.SetTradingStateRequest(account="H\n", state=3)
    assert _abort_details(lambda c: servicer.SetTradingState(state, c)).startswith("account: ")
    for field in ("limit_id", "account", "symbol"):
        spec = {"limit_id": "L", "kind": 1, "threshold": 1.0, field: "x\x1f"}
        limits = pb.UpsertLimitsRequest(limits=[pb.Limit(limit_id="ok", kind=1), pb.Limit(**spec)])  # type: ignore[arg-type]
        details = _abort_details(lambda c, r=limits: servicer.UpsertLimits(r, c))
        assert f"limits[1].{field}: holds a control character" in details
    with pytest.raises(LimitValidationError):
        eng.upsert_limits([Limit(limit_id="a\x00", kind=1)])
    with pytest.raises(BatchError, match="control character"):
        eng.update_prices(["\x9f"], [1.0])
    after = eng.stats()
    assert after.pop("accounts") == 1  # "A" of the second LoadPositions (its symbol is refused)
    assert after == {k: v for k, v in before.items() if k != "accounts"}  # nothing applied


def test_execution_reports_for_them_are_for_unknown_orders() -> None:
    eng = _engine(0, False)
    eng.check_orders(["a"], ["A"], ["S"], [1], [1.0], [0.0], now=1.0)
    out = eng.report_executions(["a\x00", "a", "\x7fa"], [1, 2, 2], [1.0, 0.0, 0.0], [5.0, 0.0, 0.0])
    assert out.status.tolist() == [L.X_UNKNOWN, L.X_APPLIED, L.X_UNKNOWN]  # type: ignore[union-attr]
    reply = asyncio.run(
        RiskServicer(eng).ReportExecutionsRaw(
            pb.ReportExecutionsRequest(
                client_order_id=["a\x00"], type=[1], quantity=[1.0], price=[5.0]
            ).SerializeToString(),
            _Context(),  # type: ignore[arg-type]
        )
    )
    assert pb.ReportExecutionsResponse.FromString(reply).applied == [False]
