"""The raw-bytes parser's idea of the hot requests (wire.parse *_FIELDS) is riskd.v1's.

The parser skips a field it does not know, as protobuf skips an unknown field, so a field added
to CheckOrdersRequest, OrderBatch or ReportExecutionsRequest, or renumbered, would pass the fast
path unseen while the protobuf path read it. These tests compare the parser's fields with the
generated descriptors (names, numbers, wire types, repeated) and read every descriptor field of a
fully set message back through the parser, so such a proto change fails here until the parser
reads the new field.
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor as FD

from riskd.v1 import risk_pb2 as pb
from riskd_server import wire

# Wire type of each field type the parser reads; any other type is a field it cannot read.
_WIRE_TYPES = {FD.TYPE_STRING: wire.WT_LEN, FD.TYPE_MESSAGE: wire.WT_LEN, FD.TYPE_ENUM: wire.WT_VARINT}
_WIRE_TYPES[FD.TYPE_DOUBLE] = wire.WT_I64

PARSED = [
    (pb.CheckOrdersRequest, wire.CHECK_ORDERS_FIELDS),
    (pb.CheckOrderStreamRequest, wire.CHECK_ORDERS_FIELDS),
    (pb.OrderBatch, wire.ORDER_BATCH_FIELDS),
    (pb.ReportExecutionsRequest, wire.EXECUTIONS_FIELDS + wire.EXECUTIONS_FALLBACK_FIELDS),
]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def _repeated(field: FD) -> bool:
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == FD.LABEL_REPEATED


@pytest.mark.parametrize(("message", "fields"), PARSED, ids=lambda x: getattr(x, "__name__", ""))
def test_parser_fields_are_the_descriptor_fields(message, fields) -> None:
    descriptor = message.DESCRIPTOR
    declared = {}
    for f in descriptor.fields:
        assert f.type in _WIRE_TYPES, f"{descriptor.name}.{f.name}: a type the raw parser cannot read"
        declared[f.name] = (f.number, _WIRE_TYPES[f.type])
    known = {name: (number, wt) for name, number, wt in fields}
    assert declared == known, (
        f"{descriptor.name}'s fields differ from what wire.parse parses: teach wire.parse (and "
        f"the engine) the new fields, then update its *_FIELDS"
    )
    for f in descriptor.fields:  # top-level messages hold one batch, batches are columns
        assert _repeated(f) == (f.type != FD.TYPE_MESSAGE), f.name
        if f.type == FD.TYPE_MESSAGE:
            assert f.message_type is pb.OrderBatch.DESCRIPTOR


def _columns(data: bytes, fields: tuple, parse) -> dict[str, list]:
    """The parser's reading of data, by field name (strings, then the enum and the doubles)."""
    status, counts, off, length, _keys, enum, first, second = parse(np.frombuffer(data, np.uint8), wire.SEED)
    assert status == wire.OK
    strings = [name for name, _, wt in fields if wt == wire.WT_LEN]
    out: dict[str, list] = {
        name: [
            data[o : o + n].decode() for o, n in zip(off[i, : counts[i]], length[i, : counts[i]], strict=True)
        ]
        for i, name in enumerate(strings)
    }
    rest = [name for name, _, wt in fields if wt != wire.WT_LEN]
    out.update(zip(rest, (enum.tolist(), first.tolist(), second.tolist()), strict=True))
    return out


def _fill(message, n: int) -> None:
    """Set every field of a columnar message: n distinct values per column."""
    for f in message.DESCRIPTOR.fields:
        column = getattr(message, f.name)
        if f.type == FD.TYPE_STRING:
            column.extend(f"{f.name}-{i}" for i in range(n))
        elif f.type == FD.TYPE_ENUM:
            column.extend((1 + i % 2) for i in range(n))
        elif f.type == FD.TYPE_DOUBLE:
            column.extend(f.number + i / 4 for i in range(n))
        else:
            raise AssertionError(f"{f.name}: unexpected type {f.type}")


@pytest.mark.parametrize("n", [1, 3])
def test_every_field_of_a_full_request_reads_back_through_the_parser(n: int) -> None:
    """Every descriptor field set, serialized by protobuf, is read by the parser to the same
    values: a field the parser skips, or takes at another number, fails here."""
    batch = pb.OrderBatch()
    _fill(batch, n)
    for top in (pb.CheckOrdersRequest(orders=batch), pb.CheckOrderStreamRequest(orders=batch)):
        got = _columns(top.SerializeToString(), wire.ORDER_BATCH_FIELDS, wire.parse_check_orders)
        for f in pb.OrderBatch.DESCRIPTOR.fields:
            assert got.get(f.name) == list(getattr(batch, f.name)), f.name
    executions = pb.ReportExecutionsRequest()
    _fill(executions, n)
    for name, _, _ in wire.EXECUTIONS_FALLBACK_FIELDS:  # each one alone hands the request to protobuf
        alone = pb.ReportExecutionsRequest()
        getattr(alone, name).extend(getattr(executions, name))
        status = wire.parse_executions(np.frombuffer(alone.SerializeToString(), np.uint8), wire.SEED)[0]
        assert status == wire.FALLBACK, name
        executions.ClearField(name)
    got = _columns(executions.SerializeToString(), wire.EXECUTIONS_FIELDS, wire.parse_executions)
    for f in pb.ReportExecutionsRequest.DESCRIPTOR.fields:
        if f.name not in {name for name, _, _ in wire.EXECUTIONS_FALLBACK_FIELDS}:
            assert got.get(f.name) == list(getattr(executions, f.name)), f.name


def test_unknown_fields_are_skipped_like_protobuf_skips_them() -> None:
    """The design: a field number the request does not declare is skipped (protobuf keeps it as
    an unknown field that changes nothing), so a newer client's extra field does not cost the fast
    path; the descriptor tests above are what keep the parser's known fields complete."""
    batch = pb.OrderBatch()
    _fill(batch, 2)
    plain = pb.CheckOrdersRequest(orders=batch).SerializeToString()
    extra = (
        b"\x78\x05" + b"\x81\x01" + bytes(8) + b"\x8a\x01\x02ab" + b"\x95\x01" + bytes(4)
    )  # 15, 16, 17, 18
    inner = batch.SerializeToString() + extra
    with_unknown = (
        pb.CheckOrdersRequest(orders=batch).SerializeToString()[:1]
        + _varint(len(inner))
        + inner
        + extra.replace(b"\x78", b"\x10", 1)
    )
    parsed = pb.CheckOrdersRequest.FromString(with_unknown)
    parsed.DiscardUnknownFields()  # kept, but they change no field
    assert parsed.orders == batch
    want = _columns(plain, wire.ORDER_BATCH_FIELDS, wire.parse_check_orders)
    assert _columns(with_unknown, wire.ORDER_BATCH_FIELDS, wire.parse_check_orders) == want
