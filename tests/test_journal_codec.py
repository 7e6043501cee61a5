"""Change records through the journal codec and back, exactly (hypothesis), and what it refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd_server import changes as ch
from riskd_server.journal.codec import (
    NAMES,
    SCHEMAS,
    TYPES,
    CodecError,
    decode,
    describe,
    encode,
    same_change,
)
from riskd_server.limits import Limit

names = st.text(max_size=12) | st.sampled_from(["", "ACC\u00e9", "\ud800lone", "x" * 200])
floats = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def column(draw: st.DrawFn, kind: str, n: int) -> object:
    if kind == "f64":
        return draw(floats)
    if kind == "i64":
        return draw(st.integers(-(2**63), 2**63 - 1))
    if kind == "str":
        return draw(names)
    if kind == "strs":
        out = np.empty(n, dtype=object)
        out[:] = draw(st.lists(names, min_size=n, max_size=n))
        return out
    dtype = np.dtype(kind)
    if dtype.kind == "f":
        return np.array(draw(st.lists(floats, min_size=n, max_size=n)), dtype=dtype)
    if dtype.kind == "b":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=dtype)
    info = np.iinfo(dtype)
    return np.array(draw(st.lists(st.integers(info.min, info.max), min_size=n, max_size=n)), dtype=dtype)


@st.composite
def changes(draw: st.DrawFn) -> ch.Change:
    kind = draw(st.sampled_from(list(TYPES)))
    if kind is ch.LimitsChanged:
        limits = draw(
            st.lists(
                st.builds(
                    Limit,
                    limit_id=names,
                    kind=st.integers(1, 10),
                    account=names,
                    symbol=names,
                    threshold=st.floats(0, 1e12),
                    warn_fraction=st.floats(0, 0.99),
                    disabled=st.booleans(),
                    description=names,
                    template=names,
                    reference_volatility=st.floats(0, 1),
                    min_scale=st.floats(0, 1),
                ),
                max_size=4,
            )
        )
        return ch.LimitsChanged(
            upserted=tuple(limits),
            deleted=tuple(draw(st.lists(names, max_size=3))),
            version=draw(st.integers(0, 2**53)),
            who=draw(names),
            action=draw(st.sampled_from(["", "upsert", "delete", "import", "template"])),
            ts=draw(st.floats(0, 2e9)),
        )
    n = draw(st.integers(0, 6))
    return kind(**{name: draw(column(fkind, n)) for name, fkind in SCHEMAS[kind]})


@settings(max_examples=300, deadline=None)
@given(changes())
def test_every_change_round_trips_exactly(change: ch.Change) -> None:
    number, payload = encode(change)
    assert NAMES[number] == type(change).__name__
    back = decode(number, payload)
    assert same_change(back, change), (change, back)
    assert not describe(number, payload).startswith("(")  # describes, not an error


def accepted(n: int = 3) -> ch.OrdersAccepted:
    ids = np.array([f"o{i}" for i in range(n)], dtype=object)
    return ch.OrdersAccepted(
        ts=1.5,
        client_order_id=ids,
        account=np.array(["A"] * n, dtype=object),
        symbol=np.array(["S"] * n, dtype=object),
        side=np.ones(n, np.int8),
        quantity=np.full(n, math.nan),
        price=np.arange(n, dtype=np.float64),
    )


def test_decode_refuses_what_it_did_not_write() -> None:
    number, payload = encode(accepted())
    with pytest.raises(CodecError, match="cut short"):
        decode(number, payload[:-1])
    with pytest.raises(CodecError, match="left over"):
        decode(number, payload + b"\x00")
    with pytest.raises(CodecError, match="unknown record type 99"):
        decode(99, payload)
    with pytest.raises(CodecError, match="LimitsChanged"):
        decode(TYPES[ch.LimitsChanged], b"{not json")
    with pytest.raises(CodecError, match="does not know"):
        decode(
            TYPES[ch.LimitsChanged], b'{"upserted":[{"limit_id":"x","kind":1,"colour":"red"}],"deleted":[]}'
        )
    assert describe(99, b"") == "(unknown record type 99)"


def test_decoded_arrays_are_native_and_writable_copies_are_possible() -> None:
    back = decode(*encode(accepted(2)))
    assert isinstance(back, ch.OrdersAccepted)
    assert back.quantity.dtype == np.float64 and back.side.dtype == np.int8
    assert back.client_order_id.dtype == object and back.client_order_id.tolist() == ["o0", "o1"]
