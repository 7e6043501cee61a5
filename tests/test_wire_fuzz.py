"""Fuzzing the production raw-bytes handlers (CheckOrders, CheckOrderStream, ReportExecutions).

Inputs are random bytes and valid requests mutated: bit flips, truncation, cut and duplicated
byte runs, fields duplicated, dropped or swapped, varints of edge values and overlong ones, and
lengths far past the end. Every input must get a reply or INVALID_ARGUMENT, never another error,
and the same answer as the protobuf handlers on a twin engine. ``make test-boundscheck`` runs this
with numba's bounds checking on, so a kernel reading out of bounds fails here.
"""

from __future__ import annotations

import asyncio

import grpc
import hypothesis.strategies as st
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from oracle_servicer import ProtobufServicer as RiskServicer
from test_wire import (
    _Aborted,
    _batches,
    _Context,
    _encode,
    _encode_executions,
    _engine,
    _executions,
    _one_order,
    _Stream,
    _varint,
)

from riskd.v1 import risk_pb2 as pb

_EDGE_VARINTS = [0, 1, 127, 128, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
_ODD_VARINTS = [b"\x80" * 9 + b"\x01", b"\xff" * 9 + b"\x7f", b"\x80" * 10 + b"\x01", b"\x80" * 11, b"\xff"]
_HUGE_LENGTHS = [2**31 - 1, 2**31, 2**32, 2**62, 2**63, 2**64 - 1]


def _fields(data: bytes) -> list[bytes] | None:
    """data split into its top-level fields (each with its tag), or None if it does not parse."""
    out: list[bytes] = []
    pos = 0

    def varint() -> int | None:
        nonlocal pos
        value = shift = 0
        while pos < len(data) and shift < 70:
            b = data[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
        return None

    while pos < len(data):
        start = pos
        tag = varint()
        if tag is None:
            return None
        wt = tag & 7
        if wt == 0:
            if varint() is None:
                return None
        elif wt == 1 or wt == 5:
            pos += 8 if wt == 1 else 4
        elif wt == 2:
            ln = varint()
            if ln is None:
                return None
            pos += ln
        else:
            return None
        if pos > len(data):
            return None
        out.append(data[start:pos])
    return out


@st.composite
def _mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """valid with zero to four mutations applied, byte-level or field-level (nested fields too)."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "cut", "dup", "varint", "huge", "fields", "nested"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "dup":
            end = min(len(data), pos + draw(st.integers(1, 32)))
            data[pos:pos] = data[draw(st.integers(0, pos)) : end]
        elif kind == "varint":
            tag = _varint(draw(st.integers(0, 8)) << 3 | draw(st.sampled_from([0, 0, 1, 2, 3, 4, 5, 6, 7])))
            value = draw(
                st.one_of(st.sampled_from(_EDGE_VARINTS).map(_varint), st.sampled_from(_ODD_VARINTS))
            )
            data[pos:pos] = draw(st.sampled_from([tag + value, value]))
        elif kind == "huge":
            field = draw(st.integers(1, 8))
            data[pos:pos] = _varint(field << 3 | 2) + _varint(draw(st.sampled_from(_HUGE_LENGTHS))) + b"xy"
        else:
            outer = _fields(bytes(data))
            if not outer:
                continue
            if kind == "nested":  # edit the fields inside one length-delimited field (the batch)
                k = draw(st.integers(0, len(outer) - 1))
                split = _len_payload(outer[k])
                inner = None if split is None else _fields(split[1])
                if not inner:
                    continue
                payload = b"".join(_field_edit(draw, inner))
                outer[k] = split[0] + _varint(len(payload)) + payload  # type: ignore[index]
            else:
                outer = _field_edit(draw, outer)
            data = bytearray(b"".join(outer))
    return bytes(data)


def _len_payload(field: bytes) -> tuple[bytes, bytes] | None:
    """(tag bytes, payload) of one length-delimited field, None for another wire type."""
    tag_end = next((i + 1 for i, b in enumerate(field) if b < 0x80), 0)
    if not tag_end or field[0] & 7 != 2:
        return None
    length_end = next((i + 1 for i in range(tag_end, len(field)) if field[i] < 0x80), 0)
    return (field[:tag_end], field[length_end:]) if length_end else None


def _field_edit(draw: st.DrawFn, fields: list[bytes]) -> list[bytes]:
    i = draw(st.integers(0, len(fields) - 1))
    j = draw(st.integers(0, len(fields) - 1))
    op = draw(st.sampled_from(["duplicate", "drop", "swap", "move"]))
    fields = list(fields)
    if op == "duplicate":
        fields.insert(j, fields[i])
    elif op == "drop":
        del fields[i]
    elif op == "swap":
        fields[i], fields[j] = fields[j], fields[i]
    else:
        fields.insert(j, fields.pop(i))
    return fields


_check_requests = st.one_of(
    st.binary(max_size=600),
    st.tuples(_batches(), st.booleans(), st.integers(0, 2), st.booleans(), st.integers(0, 2**32))
    .map(lambda t: _encode(*t))
    .flatmap(_mutated),
    st.tuples(_one_order(), st.booleans(), st.integers(0, 2**32))
    .map(lambda t: _encode(t[0], t[1], 0, False, t[2]))
    .flatmap(_mutated),
)
_execution_requests = st.one_of(
    st.binary(max_size=600),
    st.tuples(_executions(), st.booleans(), st.integers(0, 2), st.integers(0, 2**32))
    .map(lambda t: _encode_executions(*t))
    .flatmap(_mutated),
)


def _twins(limits: int, sink: bool) -> tuple[RiskServicer, RiskServicer]:
    """A production (raw-bytes) servicer and a protobuf one on equal engines with open orders."""
    engines = _engine(limits, sink, clock=lambda: 1.0), _engine(limits, sink, clock=lambda: 1.0)
    ids = [f"o{i}" for i in range(12)]
    for eng in engines:
        eng.check_orders(ids, ["A"] * 12, ["T"] * 12, [1] * 12, [2.0] * 12, [0.0] * 12, now=1.0)
    return RiskServicer(engines[0]), RiskServicer(engines[1])


def _outcome(call) -> bytes | grpc.StatusCode:
    """A handler's reply bytes, or the status it aborted with; any other exception propagates."""
    context = _Context()
    try:
        reply = asyncio.run(call(context))
    except _Aborted:
        assert context.code == grpc.StatusCode.INVALID_ARGUMENT, context.details
        return context.code
    return reply if isinstance(reply, bytes) else reply.SerializeToString()


def _protobuf(message_type, handler, data: bytes):
    """The generated handler's path: grpc parses the bytes (a DecodeError is INVALID_ARGUMENT)."""

    async def call(context):
        try:
            request = message_type.FromString(data)
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed")
        return await handler(request, context)

    return call


def _fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@_fuzz(400)
@given(
    requests=st.lists(_check_requests, min_size=1, max_size=4),
    limits=st.sampled_from([0, 4]),
    sink=st.booleans(),
)
def test_check_orders_raw_answers_every_input(requests: list[bytes], limits: int, sink: bool) -> None:
    raw, ref = _twins(limits, sink)
    for data in requests:
        got = _outcome(lambda c, d=data: raw.CheckOrdersRaw(d, c))
        if isinstance(got, bytes):
            pb.CheckOrdersResponse.FromString(got)
        assert got == _outcome(_protobuf(pb.CheckOrdersRequest, ref.CheckOrders, data))
    assert raw._engine.stats() == ref._engine.stats()


@_fuzz(150)
@given(messages=st.lists(_check_requests, min_size=1, max_size=6), sink=st.booleans())
def test_check_order_stream_raw_answers_every_message(messages: list[bytes], sink: bool) -> None:
    """A reply per message in order, until a bad message ends the stream with INVALID_ARGUMENT."""
    raw, ref = _twins(4, sink)
    context = _Context()
    replies: list[bytes] = []

    async def run() -> None:
        async for reply in raw.CheckOrderStreamRaw(_Stream(messages), context):  # type: ignore[arg-type]
            replies.append(reply)

    try:
        asyncio.run(run())
        ended = None
    except _Aborted:
        assert context.code == grpc.StatusCode.INVALID_ARGUMENT, context.details
        assert context.details.startswith(f"message[{len(replies)}]"), context.details
        ended = len(replies)
    want: list[bytes] = []
    for data in messages:
        got = _outcome(_protobuf(pb.CheckOrderStreamRequest, _stream_one(ref), data))
        if not isinstance(got, bytes):
            break
        want.append(got)
    assert replies == want
    assert ended == (len(want) if len(want) < len(messages) else None)


def _stream_one(servicer: RiskServicer):
    async def handler(request: pb.CheckOrderStreamRequest, context) -> bytes:
        async def one():
            yield request

        async for reply in servicer.CheckOrderStream(one(), context):  # type: ignore[arg-type]
            return reply.SerializeToString()
        raise AssertionError("no reply")

    return handler


@_fuzz(300)
@given(requests=st.lists(_execution_requests, min_size=1, max_size=4), sink=st.booleans())
def test_report_executions_raw_answers_every_input(requests: list[bytes], sink: bool) -> None:
    raw, ref = _twins(2, sink)
    for data in requests:
        got = _outcome(lambda c, d=data: raw.ReportExecutionsRaw(d, c))
        if isinstance(got, bytes):
            pb.ReportExecutionsResponse.FromString(got)
        assert got == _outcome(_protobuf(pb.ReportExecutionsRequest, ref.ReportExecutions, data))
    assert raw._engine.stats() == ref._engine.stats()


def test_the_mutations_reach_the_parser_and_protobuf_alike() -> None:
    """The fuzzer's inputs are not all rejected up front: a field split and rejoined is the same
    request, and a huge length or an overlong varint is INVALID_ARGUMENT from both paths."""
    data = _encode(
        {
            "client_order_id": ["a"],
            "account": ["A"],
            "symbol": ["S"],
            "side": [1],
            "quantity": [1.0],
            "price": [0.0],
        },
        True,
        0,
        False,
        1,
    )
    fields = _fields(data)
    assert fields is not None and b"".join(fields) == data
    raw = _twins(0, False)[0]
    for bad in (data + b"\x22" + _varint(2**62) + b"xy", data[:-3], b"\x0a" + b"\x80" * 10 + b"\x01"):
        assert _outcome(lambda c, d=bad: raw.CheckOrdersRaw(d, c)) == grpc.StatusCode.INVALID_ARGUMENT
    ok = _outcome(lambda c: raw.CheckOrdersRaw(data, c))
    assert isinstance(ok, bytes) and pb.CheckOrdersResponse.FromString(ok).result.accepted == [True]
