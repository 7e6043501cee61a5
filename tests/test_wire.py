"""The raw-bytes CheckOrders path (wire.request + Engine.check_parsed) against the protobuf path."""

from __future__ import annotations

import asyncio
import math
import random
import struct
import time
from collections.abc import Callable

import grpc
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from oracle_servicer import ProtobufServicer as RiskServicer
from oracle_servicer import check_wire
from recording_sink import RecordingSink

from riskd.v1 import risk_pb2 as pb
from riskd_server import changes as ch
from riskd_server import wire
from riskd_server.engine import BatchError, Engine, EngineConfig
from riskd_server.kernel import layout as L
from riskd_server.limits import Limit
from riskd_server.wire.encode import encode_result
from riskd_server.wire.request import decode_batch

# ------------------------------------------------------------------ a hand-rolled encoder


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _unknown(number: int, wire_type: int, rnd: random.Random) -> bytes:
    tag = _varint(number << 3 | wire_type)
    if wire_type == 0:
        return tag + _varint(rnd.randrange(1 << 64))
    if wire_type == 1:
        return tag + rnd.randbytes(8)
    if wire_type == 5:
        return tag + rnd.randbytes(4)
    return tag + _varint(3) + b"xyz"


def _column_chunks(number: int, values: list, kind: str, packed: bool, rnd: random.Random) -> list[bytes]:
    """The wire chunks of one repeated field, in order (packed columns may come in several runs)."""
    if kind == "str":
        return [_len_field(number, v.encode()) for v in values]
    if kind == "enum":
        if not packed:
            return [_varint(number << 3) + _varint(v) for v in values]
        enc = [_varint(v) for v in values]
    else:
        if not packed:
            return [_varint(number << 3 | 1) + struct.pack("<d", v) for v in values]
        enc = [struct.pack("<d", v) for v in values]
    if not enc:
        return []
    cut = rnd.randrange(len(enc) + 1)
    return [_len_field(number, b"".join(part)) for part in (enc[:cut], enc[cut:]) if part]


def _fields(spec: tuple, columns: dict, packed: bool, unknown: int, rnd: random.Random) -> list[bytes]:
    """The columns of spec ((field number, name, kind), ...) as wire chunks, plus ``unknown``
    unknown fields numbered past spec's, in a random interleaving that keeps each column's order."""
    queues = [_column_chunks(num, columns[name], kind, packed, rnd) for num, name, kind in spec]
    first_unknown = len(spec) + 1
    queues.append(
        [_unknown(rnd.randrange(first_unknown, 40), rnd.choice((0, 1, 2, 5)), rnd) for _ in range(unknown)]
    )
    chunks: list[bytes] = []
    while any(queues):
        q = rnd.choice([q for q in queues if q])
        chunks.append(q.pop(0))
    return chunks


def _encode(columns: dict, packed: bool, unknown: int, split_top: bool, seed: int) -> bytes:
    rnd = random.Random(seed)
    spec = (
        (1, "client_order_id", "str"),
        (2, "account", "str"),
        (3, "symbol", "str"),
        (4, "side", "enum"),
        (5, "quantity", "double"),
        (6, "price", "double"),
    )
    chunks = _fields(spec, columns, packed, unknown, rnd)
    top = _unknown(rnd.randrange(2, 40), rnd.choice((0, 1, 2, 5)), rnd) if unknown else b""
    if split_top and len(chunks) > 1:  # two top-level `orders` fields: protobuf merges them
        cut = rnd.randrange(1, len(chunks))
        return _len_field(1, b"".join(chunks[:cut])) + top + _len_field(1, b"".join(chunks[cut:]))
    return top + _len_field(1, b"".join(chunks))


# ------------------------------------------------------------------ engines


def _canon(change: ch.Change) -> tuple:
    return (type(change).__name__, repr({k: np.asarray(v).tolist() for k, v in vars_of(change).items()}))


def vars_of(obj) -> dict:
    names = getattr(obj, "__dataclass_fields__", {})
    return {name: getattr(obj, name) for name in names}


def _engine(
    limits: int,
    sink: bool,
    clock: Callable[[], float] = time.monotonic,
    slots: int = 4_096,
    max_open: int = 64,
) -> Engine:
    eng = Engine(
        EngineConfig(
            max_open_orders=max_open,
            closed_order_retention=16,
            max_accounts=6,
            max_symbols=6,
            initial_order_slots=slots,
            initial_books=1,
        ),
        sink=RecordingSink() if sink else None,
        clock=clock,
        wall_clock=lambda: 0.0,
    )
    book = [
        Limit(limit_id="qty", kind=1, account="A", symbol="S", threshold=40, warn_fraction=0.5),
        Limit(limit_id="gross", kind=4, account="A", threshold=5_000),
        Limit(limit_id="collar", kind=6, symbol="S", threshold=0.2),
        Limit(limit_id="open", kind=8, threshold=20),
    ]
    eng.upsert_limits(book[:limits])
    eng.update_prices(["S", "T"], [100.0, 7.5])
    return eng


def _check_raw(eng: Engine, data: bytes):
    out = check_wire(eng, data, now=1.0)
    if out is None:
        return eng.check_orders(*decode_batch(pb.CheckOrdersRequest.FromString(data).orders), now=1.0)
    return out


def _check_pb(eng: Engine, data: bytes):
    return eng.check_orders(*decode_batch(pb.CheckOrdersRequest.FromString(data).orders), now=1.0)


def _outcome(fn, eng: Engine, data: bytes) -> bytes | str:
    try:
        return encode_result(fn(eng, data)).SerializeToString()
    except BatchError as exc:
        return f"BatchError: {exc}"


_ascii_names = st.one_of(
    st.sampled_from(["A", "B", "S", "T", "", "x" * 128, "x" * 129, "A\x00", "\x1fS", "T\x7f"]),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=6),
)
_unicode_names = st.one_of(
    _ascii_names,
    st.sampled_from(["é", "ÅÅ", "é" * 128, "é" * 129, "é\x85", "\x9fA"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
)
_floats = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 5.0, 30.0, 100.0, 101.0, -3.0, math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
)
_sides = st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(-(2**31), 2**31 - 1))


@st.composite
def _batches(draw) -> dict:
    n = draw(st.integers(0, 24))
    names = _unicode_names if draw(st.integers(0, 3)) == 0 else _ascii_names  # non-ASCII: protobuf path
    cols = {}
    for name, elem in (
        ("client_order_id", st.one_of(st.sampled_from([f"o{i}" for i in range(12)]), names)),
        ("account", names),
        ("symbol", names),
        ("side", _sides),
        ("quantity", _floats),
        ("price", _floats),
    ):
        size = n if draw(st.integers(0, 9)) else draw(st.integers(0, 26))  # sometimes a wrong length
        cols[name] = draw(st.lists(elem, min_size=size, max_size=size))
    return cols


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(_batches(), min_size=1, max_size=3),
    packed=st.booleans(),
    unknown=st.integers(0, 3),
    split_top=st.booleans(),
    limits=st.sampled_from([0, 2, 4]),
    sink=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_raw_path_answers_like_the_protobuf_path(
    batches, packed, unknown, split_top, limits, sink, seed
) -> None:
    raw, ref = _engine(limits, sink), _engine(limits, sink)
    for cols in batches:
        data = _encode(cols, packed, unknown, split_top, seed)
        assert _outcome(_check_raw, raw, data) == _outcome(_check_pb, ref, data)
    assert raw.stats() == ref.stats()
    if sink:
        assert [_canon(c) for c in raw.sink.changes] == [_canon(c) for c in ref.sink.changes]  # type: ignore[union-attr]


@st.composite
def _one_order(draw) -> dict:
    """One order's columns (a one-order request takes kernel.single.check_one_order)."""
    return {
        "client_order_id": [draw(st.one_of(st.sampled_from([f"o{i}" for i in range(40)]), _ascii_names))],
        "account": [draw(st.one_of(st.sampled_from(["A", "B", "C"]), _ascii_names))],
        "symbol": [draw(st.one_of(st.sampled_from(["S", "T", "U"]), _ascii_names))],
        "side": [draw(st.one_of(st.sampled_from([1, 2]), _sides))],
        "quantity": [draw(st.one_of(st.sampled_from([1.0, 5.0, 30.0]), _floats))],
        "price": [draw(st.one_of(st.sampled_from([0.0, 7.5, 100.0, 101.0]), _floats))],
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orders=st.lists(_one_order(), min_size=1, max_size=30),
    packed=st.booleans(),
    limits=st.sampled_from([0, 4]),
    sink=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_one_order_requests_answer_like_the_protobuf_path(orders, packed, limits, sink, seed) -> None:
    """Sequences of one-order requests: new names, new books and slot top-ups on the way."""
    raw, ref = _engine(limits, sink, slots=1), _engine(limits, sink, slots=1)
    for cols in orders:
        data = _encode(cols, packed, 0, False, seed)
        assert _outcome(_check_raw, raw, data) == _outcome(_check_pb, ref, data)
    assert raw.stats() == ref.stats()
    for account in ("A", "B", "C"):
        for symbol in ("S", "T", "U"):
            assert raw.position(account, symbol) == ref.position(account, symbol)
    assert [raw.open_quantity(f"o{i}") for i in range(40)] == [ref.open_quantity(f"o{i}") for i in range(40)]
    if sink:
        assert [_canon(c) for c in raw.sink.changes] == [_canon(c) for c in ref.sink.changes]  # type: ignore[union-attr]


def test_one_order_requests_fill_the_slots_up_to_the_bound() -> None:
    """From one free slot the stack is topped up (by doubling) as one-order requests need, to the bound."""
    eng = _engine(0, False, slots=1, max_open=3)
    cols = {"account": ["A"], "symbol": ["S"], "side": [1], "quantity": [1.0], "price": [0.0]}
    answers = []
    for i in range(4):
        out = check_wire(eng, _encode(dict(cols, client_order_id=[f"o{i}"]), True, 0, False, i), now=1.0)
        assert out is not None
        answers.append((bool(out.accepted[0]), int(out.reject_mask[0])))
    assert answers == [(True, 0)] * 3 + [(False, 1 << 8)]


def test_one_order_requests_grow_the_book_table_first() -> None:
    """Every new (account, symbol) pair opens a book: the rows grow before the kernel writes one."""
    eng = _engine(0, False, max_open=64)
    for i, (account, symbol) in enumerate((a, s) for a in "ABC" for s in "STU"):
        cols = {"client_order_id": [f"o{i}"], "account": [account], "symbol": [symbol], "side": [1]}
        data = _encode(dict(cols, quantity=[1.0], price=[5.0]), True, 0, False, i)
        out = check_wire(eng, data, now=1.0)
        assert out is not None and out.accepted.tolist() == [True]
        books = int(eng._s.ctr[L.C_BOOKS])
        assert books == i + 1 and eng._s.book.shape[0] >= books + 1  # + check_batch's spare row


def test_ascii_batches_take_the_raw_parser() -> None:
    cols = {
        "client_order_id": ["a1", "a2", "a3"],
        "account": ["A", "A", "B"],
        "symbol": ["S", "T", "S"],
        "side": [1, 2, -5],
        "quantity": [1.0, 2.0, 3.0],
        "price": [0.0, 7.5, 101.0],
    }
    for packed in (False, True):
        data = _encode(cols, packed, unknown=2, split_top=False, seed=7)
        buf = np.frombuffer(data, np.uint8)
        status, counts, off, length, keys, side, qty, px = wire.parse_check_orders(buf, wire.SEED)
        assert status == wire.OK and counts.tolist() == [3] * 6
        assert keys.tolist() == wire.hash_strs(cols["client_order_id"]).tolist()
        assert [data[o : o + ln].decode() for o, ln in zip(off[1], length[1], strict=True)] == cols["account"]
        assert (
            side.tolist() == [1, 2, -5] and qty.tolist() == cols["quantity"] and px.tolist() == cols["price"]
        )
    for odd in ("é", "split"):
        c = dict(cols, account=["A", odd, "B"])
        data = _encode(c, True, 0, split_top=odd == "split", seed=1)
        assert wire.parse_check_orders(np.frombuffer(data, np.uint8), wire.SEED)[0] == wire.FALLBACK


def test_wire_key_matches_the_str_paths_and_survives_restore() -> None:
    """An id checked from wire bytes is the order report_executions, open_quantity and restore find."""
    eng = _engine(0, False)
    ids = [f"ord-{i}" for i in range(20)]
    req = pb.CheckOrdersRequest(
        orders=pb.OrderBatch(
            client_order_id=ids,
            account=["A"] * 20,
            symbol=["T"] * 20,
            side=[1] * 20,
            quantity=[2.0] * 20,
            price=[0.0] * 20,
        )
    )
    out = check_wire(eng, req.SerializeToString(), now=1.0)
    assert out is not None and out.accepted.all()
    assert eng.open_quantity("ord-3") == 2.0
    got = eng.report_executions(["ord-3", "ord-4"], [1, 1], [1.0, 2.0], [7.5, 7.5])
    assert got.applied.tolist() == [True, True] and got.error == ["", ""]
    assert eng.open_quantity("ord-3") == 1.0 and eng.open_quantity("ord-4") == 0.0
    # Recovery rebuilds keys from the ids' bytes: a raw-path duplicate of a recovered id is found.
    restored = _engine(0, False)
    row = ch.OpenOrderRow(
        client_order_id="ord-3", account="A", symbol="T", side=1, open_quantity=1.0, price=7.5
    )
    restored.restore(ch.Snapshot(orders=ch.RecoveredOrders.of(open_=(row,))))
    again = check_wire(restored, req.SerializeToString(), now=2.0)
    assert again is not None
    assert again.accepted.tolist() == [i != 3 for i in range(20)]
    assert restored.open_quantity("ord-3") == 1.0


def test_hash_is_stable_across_paths() -> None:
    names = ["", "a", "abcdefgh", "abcdefghi", "é", "x" * 129]
    keys = wire.hash_strs(names)
    assert keys.tolist() == [wire.hash_bytes(s.encode()) for s in names]
    assert len(set(keys.tolist())) == len(names) and 0 not in keys.tolist()


class _Aborted(Exception):
    pass


class _Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise _Aborted

    def peer(self) -> str:  # who changed a limit (the limit history)
        return "ipv4:127.0.0.1:1"


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05\x0a\x03ab",
        b"\x0a\x02\x0a\xff",
        b"\x0a" + b"\x80" * 11,
        b"\x0a\x04\x0a\x02\xc3\x28" + b"\x00" * 600,
    ],
)
def test_malformed_request_is_invalid_argument(data: bytes) -> None:
    servicer = RiskServicer(_engine(0, False))
    context = _Context()
    with pytest.raises(_Aborted):
        asyncio.run(servicer.CheckOrdersRaw(data, context))  # type: ignore[arg-type]
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT


def test_column_mismatch_names_the_column() -> None:
    servicer = RiskServicer(_engine(0, False))
    n = 100
    batch = pb.OrderBatch(
        client_order_id=[f"i{k}" for k in range(n)],
        account=["A"] * n,
        symbol=["S"] * n,
        side=[1] * n,
        quantity=[1.0] * n,
        price=[1.0] * (n - 1),
    )
    context = _Context()
    with pytest.raises(_Aborted):
        asyncio.run(servicer.CheckOrdersRaw(pb.CheckOrdersRequest(orders=batch).SerializeToString(), context))  # type: ignore[arg-type]
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.details.startswith("orders.price: has 99 entries")


# ------------------------------------------------------------------ one order, streams, executions, replies


def test_parse_one_takes_exactly_one_ascii_order() -> None:
    one = {
        "client_order_id": ["id-1"],
        "account": ["A"],
        "symbol": ["S"],
        "side": [-7],
        "quantity": [2.5],
        "price": [101.0],
    }
    for packed in (False, True):
        data = _encode(one, packed, unknown=2, split_top=False, seed=3)
        status, key, io, il, ao, al, so, sl, side, qty, px = wire.parse_one(data, wire.SEED)
        assert status == wire.OK
        assert (data[io : io + il], data[ao : ao + al], data[so : so + sl]) == (b"id-1", b"A", b"S")
        assert (side, qty, px) == (-7, 2.5, 101.0) and key == wire.hash_strs(["id-1"])[0]
    two = {name: values * 2 for name, values in one.items()}
    assert wire.parse_one(_encode(two, True, 0, False, 1), wire.SEED)[0] == wire.MANY
    short = dict(one, price=[])
    assert wire.parse_one(_encode(short, True, 0, False, 1), wire.SEED)[0] == wire.MANY
    odd = dict(one, account=["é"])
    assert wire.parse_one(_encode(odd, True, 0, False, 1), wire.SEED)[0] == wire.FALLBACK
    for bad in (b"\x0a\x05\x0a\x03ab", b"\x0a\x02\x20", b"\x0a" + b"\x80" * 11):
        assert wire.parse_one(bad, wire.SEED)[0] == wire.FALLBACK


def test_hash_strs_matches_one_by_one_hashing() -> None:
    names = ["a", "", "x\0y", "é", "abcdefghij" * 3, "\ud800"]
    for strs in (names, names[:2], [names[3]], [], ["only-ascii"] * 5):
        keys = wire.hash_strs(strs)
        assert keys.tolist() == [wire.hash_bytes(s.encode("utf-8", "surrogatepass")) for s in strs]
    data = b"..abc..defg"
    spans = wire.Utf8Spans(data, np.array([2, 7]), np.array([3, 4]))
    assert list(spans) == ["abc", "defg"] and spans[1] == "defg" and len(spans) == 2
    assert wire.hash_strs(spans).tolist() == wire.hash_strs(["abc", "defg"]).tolist()


@given(st.lists(st.text(max_size=12), max_size=40), st.data())
def test_utf8_spans_take_decodes_like_one_by_one(strs: list[str], data) -> None:
    """Utf8Spans.take (the write-behind's decode of a batch's ids) equals decoding each span on its
    own: ASCII, NUL, non-ASCII and empty strs, any subset in any order."""
    parts = [b"\x0a" + bytes([len(s.encode())]) + s.encode() for s in strs]
    encoded = [s.encode() for s in strs]
    off = np.cumsum([0] + [len(p) for p in parts])[:-1].astype(np.int64) + 2
    length = np.array([len(e) for e in encoded], dtype=np.int64)
    spans = wire.Utf8Spans(b"".join(parts), off, length)
    assert list(spans) == strs
    idx = np.array(data.draw(st.lists(st.integers(0, max(len(strs) - 1, 0)), max_size=len(strs) * 2))
                   if strs else [], dtype=np.int64)  # fmt: skip
    assert spans.take(idx).tolist() == [strs[i] for i in idx.tolist()]


class _Stream:
    """An async iterator over request bytes (what grpc.aio hands a stream handler)."""

    def __init__(self, messages: list[bytes]) -> None:
        self._messages = iter(messages)

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self._messages)
        except StopIteration:
            raise StopAsyncIteration from None


def _stream(servicer: RiskServicer, messages: list[bytes], context: _Context) -> list[bytes]:
    async def run() -> list[bytes]:
        replies = []
        async for reply in servicer.CheckOrderStreamRaw(_Stream(messages), context):  # type: ignore[arg-type]
            replies.append(reply)
        return replies

    return asyncio.run(run())


def _timed_engine() -> Engine:
    return _engine(4, True, clock=lambda: 1.0)  # the same now for the raw and the protobuf twin


def test_raw_stream_answers_every_message_in_order_like_protobuf() -> None:
    """One order (the scalar path), several, none, non-ASCII (protobuf fallback), unpacked: each
    reply equals the protobuf handler's serialized reply on a twin engine, in order."""
    cols = {
        "client_order_id": ["s1", "s2", "s3"],
        "account": ["A", "A", "B"],
        "symbol": ["S", "T", "S"],
        "side": [1, 2, 1],
        "quantity": [1.0, 45.0, 3.0],
        "price": [100.0, 7.5, 150.0],
    }
    one = {name: values[:1] for name, values in cols.items()}
    messages = [
        _encode(one, True, 0, False, 1),
        _encode(cols, True, 1, False, 2),
        _encode({name: [] for name in cols}, True, 0, False, 3),
        _encode(dict(one, client_order_id=["é1"]), True, 0, False, 4),
        _encode(dict(one, client_order_id=["s4"]), False, 2, False, 5),
        _encode(dict(one, client_order_id=["s1"]), True, 0, False, 6),  # a duplicate: rejected
    ]
    raw, ref = RiskServicer(_timed_engine()), RiskServicer(_timed_engine())
    replies = _stream(raw, messages, _Context())
    want = [
        ref._check(pb.CheckOrderStreamRequest.FromString(m).orders, pb.CheckOrderStreamResponse())
        for m in messages
    ]
    assert replies == [w.SerializeToString() for w in want]
    assert [len(pb.CheckOrderStreamResponse.FromString(r).result.accepted) for r in replies] == [
        1,
        3,
        0,
        1,
        1,
        1,
    ]
    assert not pb.CheckOrderStreamResponse.FromString(replies[-1]).result.accepted[0]
    assert raw._engine.sink.changes and [_canon(c) for c in raw._engine.sink.changes] == [  # type: ignore[union-attr]
        _canon(c)
        for c in ref._engine.sink.changes  # type: ignore[union-attr]
    ]


@pytest.mark.parametrize(
    ("bad", "code", "details"),
    [
        (b"\x0a\x05\x0a\x03ab", grpc.StatusCode.INVALID_ARGUMENT, "message[2]: malformed"),
        (
            pb.CheckOrderStreamRequest(
                orders=pb.OrderBatch(
                    client_order_id=["x"], account=["A"], symbol=["S"], side=[1], quantity=[1.0]
                )
            ).SerializeToString(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "message[2].orders.price: has 0 entries",
        ),
    ],
)
def test_raw_stream_ends_with_invalid_argument_naming_the_message(
    bad: bytes, code: grpc.StatusCode, details: str
) -> None:
    ok = pb.CheckOrderStreamRequest(
        orders=pb.OrderBatch(
            client_order_id=["o"], account=["A"], symbol=["S"], side=[1], quantity=[1.0], price=[0.0]
        )
    )
    messages = [ok.SerializeToString()]
    ok.orders.client_order_id[0] = "p"
    messages += [ok.SerializeToString(), bad, ok.SerializeToString()]
    context = _Context()
    servicer = RiskServicer(_engine(0, False))
    replies: list[bytes] = []

    async def run() -> None:
        async for reply in servicer.CheckOrderStreamRaw(_Stream(messages), context):  # type: ignore[arg-type]
            replies.append(reply)

    with pytest.raises(_Aborted):
        asyncio.run(run())
    assert len(replies) == 2 and context.code == code and context.details.startswith(details)


_ids = st.one_of(st.sampled_from([f"o{i}" for i in range(12)] + ["", "é", "x\0y"]), _ascii_names)


@st.composite
def _executions(draw) -> dict:
    """Columns of a ReportExecutionsRequest; in half of them the optional account, symbol and
    side columns (the order of a fill riskd does not know), else those are empty."""
    n = draw(st.integers(0, 30))
    named = draw(st.booleans())
    cols = {}
    for name, elem in (
        ("client_order_id", _ids),
        ("type", st.one_of(st.sampled_from([0, 1, 1, 2, 3, 4]), st.integers(-(2**31), 2**31 - 1))),
        ("quantity", _floats),
        ("price", _floats),
        ("account", st.one_of(st.sampled_from(["A", "B", "N1", "N2"]), _unicode_names)),
        ("symbol", st.one_of(st.sampled_from(["S", "T", "U"]), _unicode_names)),
        ("side", _sides),
    ):
        if name in ("account", "symbol", "side") and not named:
            cols[name] = []
            continue
        size = n if draw(st.integers(0, 9)) else draw(st.integers(0, 32))
        cols[name] = draw(st.lists(elem, min_size=size, max_size=size))
    return cols


def _encode_executions(cols: dict, packed: bool, unknown: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    spec = (
        (1, "client_order_id", "str"),
        (2, "type", "enum"),
        (3, "quantity", "double"),
        (4, "price", "double"),
        (5, "account", "str"),
        (6, "symbol", "str"),
        (7, "side", "enum"),
    )
    return b"".join(_fields(spec, cols, packed, unknown, rnd))


def _report(servicer: RiskServicer, data: bytes, raw: bool) -> bytes | str:
    context = _Context()
    try:
        if raw:
            return asyncio.run(servicer.ReportExecutionsRaw(data, context))  # type: ignore[arg-type]
        request = pb.ReportExecutionsRequest.FromString(data)
        return asyncio.run(servicer.ReportExecutions(request, context)).SerializeToString()  # type: ignore[arg-type]
    except _Aborted:
        return f"{context.code}: {context.details}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reports=st.lists(_executions(), min_size=1, max_size=3),
    packed=st.booleans(),
    unknown=st.integers(0, 2),
    sink=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_raw_report_executions_answers_like_protobuf(reports, packed, unknown, sink, seed) -> None:
    """ReportExecutions on bytes (numba parse, ids as spans with their keys) against the protobuf
    handler: same replies, errors, state and write-behind records."""
    engines = _engine(2, sink), _engine(2, sink)
    raw, ref = (RiskServicer(e) for e in engines)
    ids = [f"o{i}" for i in range(12)]
    for eng in engines:
        eng.check_orders(ids, ["A"] * 12, ["T"] * 12, [1] * 12, [2.0] * 12, [0.0] * 12, now=1.0)
    for cols in reports:
        data = _encode_executions(cols, packed, unknown, seed)
        assert _report(raw, data, True) == _report(ref, data, False)
    assert engines[0].stats() == engines[1].stats()
    if sink:
        assert [_canon(c) for c in engines[0].sink.changes] == [_canon(c) for c in engines[1].sink.changes]  # type: ignore[union-attr]


def test_named_executions_take_protobuf_and_move_unknown_positions() -> None:
    """The raw parser hands a request with account, symbol or side (fields 5-7) to protobuf
    instead of skipping them, so an unknown order's fill moves the position on both paths."""
    request = pb.ReportExecutionsRequest(
        client_order_id=["gone", "o1"], type=[1, 2], quantity=[3.0, 0.0], price=[7.5, 0.0]
    )
    plain = request.SerializeToString()
    assert wire.parse_executions(np.frombuffer(plain, np.uint8), wire.SEED)[0] == wire.OK
    for field in ("account", "symbol", "side"):
        one = pb.ReportExecutionsRequest()
        one.CopyFrom(request)
        getattr(one, field).extend([1, 0] if field == "side" else ["A", ""])
        status = wire.parse_executions(np.frombuffer(one.SerializeToString(), np.uint8), wire.SEED)[0]
        assert status == wire.FALLBACK, field
    request.account.extend(["N1", ""])
    request.symbol.extend(["T", ""])
    request.side.extend([pb.SIDE_SELL, pb.SIDE_UNSPECIFIED])
    eng = _engine(0, False)
    eng.check_orders(["o1"], ["A"], ["T"], [1], [2.0], [0.0], now=1.0)
    reply = pb.ReportExecutionsResponse.FromString(
        _report(RiskServicer(eng), request.SerializeToString(), raw=True)  # type: ignore[arg-type]
    )
    assert list(reply.applied) == [True, True]
    assert list(reply.error) == ["unknown order: position updated", ""]
    assert eng.position("N1", "T") == -3.0 and eng.open_quantity("o1") == 0.0


def test_raw_report_executions_malformed_is_invalid_argument() -> None:
    context = _Context()
    with pytest.raises(_Aborted):
        asyncio.run(RiskServicer(_engine(0, False)).ReportExecutionsRaw(b"\x0a\x05ab", context))  # type: ignore[arg-type]
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in context.details


def test_a_column_longer_than_the_first_guess_is_walked_again() -> None:
    """The parser sizes its arrays for equally long columns; a lopsided request still parses whole."""
    cols = {
        "client_order_id": [str(i) for i in range(300)],
        "account": ["A"],
        "symbol": [],
        "side": [],
        "quantity": [],
        "price": [2.0] * 40,
    }
    buf = np.frombuffer(_encode(cols, True, 0, False, 9), np.uint8)
    status, counts, off, length, keys, _, _, px = wire.parse_check_orders(buf, wire.SEED)
    assert status == wire.OK and counts.tolist() == [300, 1, 0, 0, 0, 40]
    assert [buf[o : o + n].tobytes().decode() for o, n in zip(off[0], length[0], strict=True)] == cols[
        "client_order_id"
    ]
    assert keys.tolist() == wire.hash_strs(cols["client_order_id"]).tolist() and px.tolist() == [2.0] * 40
    execs = pb.ReportExecutionsRequest(client_order_id=[""] * 500, type=[2]).SerializeToString()
    status, counts, *_ = wire.parse_executions(np.frombuffer(execs, np.uint8), wire.SEED)
    assert status == wire.OK and counts.tolist() == [500, 1, 0, 0]
