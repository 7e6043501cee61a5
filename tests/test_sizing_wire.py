"""risk.sizing_wire against protobuf: the bytes it writes parse to the message protobuf would build
from the same columns (and serialise to the same bytes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd.v1 import risk_pb2 as pb
from riskd_server.risk.sizer import SizingResult
from riskd_server.risk.sizing_wire import SizesWire, encode_strings, server_micros_field


def reference(r: SizingResult, server_micros: float) -> pb.SizePositionsResponse:
    """The same response built field by field through protobuf."""
    sizes = pb.PositionSizes(
        symbol=list(r.symbols),
        max_buy_quantity=r.max_buy.tolist(),
        max_sell_quantity=r.max_sell.tolist(),
        marginal_var=r.marginal.tolist(),
        component_var=r.component.tolist(),
        price=r.price.tolist(),
        exposure=r.exposure.tolist(),
    )
    if r.limit_buy is not None and r.limit_sell is not None:
        sizes.limit_buy_quantity.extend(r.limit_buy.tolist())
        sizes.limit_sell_quantity.extend(r.limit_sell.tolist())
    return pb.SizePositionsResponse(
        var=r.var,
        var_budget=r.budget,
        model_version=r.model_version,
        sizes=sizes,
        server_micros=server_micros,
    )


def _result(
    symbols, values: np.ndarray, limits: bool, var: float = 12.5, version: str = "v1"
) -> SizingResult:
    n = len(symbols)
    col = [
        values[(i * n) % values.shape[0] :][:n] if values.shape[0] >= n else np.resize(values, n)
        for i in range(8)
    ]
    return SizingResult(
        var=var, budget=max(var, 3.0), model_version=version, symbols=symbols,
        max_buy=col[0], max_sell=col[1], marginal=col[2], component=col[3], price=col[4], exposure=col[5],
        limit_buy=col[6] if limits else None, limit_sell=col[7] if limits else None,
    )  # fmt: skip


def _same(raw: bytes, expect: pb.SizePositionsResponse) -> None:
    got = pb.SizePositionsResponse.FromString(raw)
    assert got.SerializeToString() == expect.SerializeToString()
    assert raw == expect.SerializeToString()  # byte for byte: fields in number order, packed doubles


_ascii = st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=130)  # past 127: 2-byte lengths
_unicode = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.one_of(_ascii, _unicode), max_size=20),
    values=st.lists(st.floats(allow_nan=False), min_size=1, max_size=30),
    limits=st.booleans(),
    micros=st.floats(min_value=0.0, max_value=1e9),
)
def test_bytes_match_protobuf(names: list[str], values: list[float], limits: bool, micros: float) -> None:
    r = _result(names, np.asarray(values, dtype=np.float64), limits)
    raw = SizesWire().encode(r) + server_micros_field(micros)
    got = pb.SizePositionsResponse.FromString(raw)
    assert got == reference(r, micros)


@pytest.mark.parametrize("limits", [False, True])
def test_a_model_sized_whole_reuses_its_symbol_column(limits: bool) -> None:
    symbols = (*(f"S{i}" for i in range(300)), "Ünïcode", "x" * 128)
    values = np.linspace(-1e6, 1e6, 302)
    values[3] = math.inf
    wire = SizesWire()
    r = _result(symbols, values, limits)
    first = wire.encode(r) + server_micros_field(7.0)
    _same(first, reference(r, 7.0))
    assert wire.encode(r) + server_micros_field(7.0) == first  # from the cached column
    other = _result(list(symbols[:5]), values, limits)  # a list: encoded afresh, not cached
    _same(wire.encode(other) + server_micros_field(7.0), reference(other, 7.0))
    assert encode_strings(1, []) == b""


def test_empty_answer() -> None:
    r = _result([], np.zeros(1), True, var=0.0, version="")
    _same(SizesWire().encode(r) + server_micros_field(1.0), reference(r, 1.0))


def test_every_response_field_is_written() -> None:
    """A field added to the proto fails here until sizing_wire writes it (as test_wire_schema does
    for the parsers)."""
    sizes = [f.name for f in pb.PositionSizes.DESCRIPTOR.fields]
    assert sizes == [
        "symbol", "max_buy_quantity", "max_sell_quantity", "marginal_var", "component_var", "price",
        "exposure", "limit_buy_quantity", "limit_sell_quantity",
    ]  # fmt: skip
    assert [f.number for f in pb.PositionSizes.DESCRIPTOR.fields] == list(range(1, 10))
    top = [(f.name, f.number) for f in pb.SizePositionsResponse.DESCRIPTOR.fields]
    assert top == [("var", 1), ("var_budget", 2), ("model_version", 3), ("sizes", 4), ("server_micros", 5)]
    r = _result(["A"], np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), True)
    got = pb.SizePositionsResponse.FromString(SizesWire().encode(r) + server_micros_field(3.0))
    assert all(len(getattr(got.sizes, name)) == 1 for name in sizes)
