"""The engine's input records in the journal: what each state-changing RPC appends before it replies.

The hot path journals what it already holds: the request's bytes exactly as they came off the
wire, and for checks the reply's bytes (the outcome: accepted flags, reject masks, violations).
Nothing is re-encoded or decoded on the request's path; replay (engine.replay) parses the bytes
with the same wire parsers and applies them to an engine with the recorded outcome forced.

Every payload starts with HEAD: the engine's monotonic clock (``now``: rate buckets, retention)
and the wall clock (``wall``: the timestamps of the rows PostgreSQL gets) the request was applied
at, so a replay reproduces both.

    CHECK          HEAD | u32 len(request) | request (CheckOrdersRequest) | reply (CheckOrdersResponse)
    EXECUTIONS     HEAD | ReportExecutionsRequest
    PRICES         HEAD | UpdatePricesRequest
    POSITIONS      HEAD | LoadPositionsRequest
    TRADING_STATE  HEAD | SetTradingStateRequest
    LIMITS         HEAD | journal.codec's LimitsChanged payload (version, who, action, ts included)
    LIMITS_FILE    HEAD | a large LimitsChanged's side file reference (journal.limitfiles)

A CheckOrderStream message has CheckOrdersRequest's layout and its reply CheckOrdersResponse's, so
a stream message is a CHECK record too. Type numbers are stable and never reused (journal files
outlive code versions); they start at 100 so they cannot be mistaken for journal.codec's change
record numbers.
"""

from __future__ import annotations

import datetime as _dt
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass

from riskd.v1 import risk_pb2 as pb

CHECK = 100
EXECUTIONS = 101
PRICES = 102
POSITIONS = 103
TRADING_STATE = 104
LIMITS = 105
LIMITS_FILE = 106

NAMES: dict[int, str] = {
    CHECK: "CHECK",
    EXECUTIONS: "EXECUTIONS",
    PRICES: "PRICES",
    POSITIONS: "POSITIONS",
    TRADING_STATE: "TRADING_STATE",
    LIMITS: "LIMITS",
    LIMITS_FILE: "LIMITS_FILE",
}

HEAD = struct.Struct("<dd")  # now (engine clock), wall (time.time)
_CHECK_HEAD = struct.Struct("<ddI")  # HEAD + the request's length


class RecordError(ValueError):
    """A payload too short for its type's layout (damage the CRC did not catch, or a bug)."""


def check_parts(now: float, wall: float, request: bytes, reply: bytes) -> tuple[bytes, bytes, bytes]:
    """check_payload's pieces, for Journal.append_parts (joined once, into the record itself)."""
    return (_CHECK_HEAD.pack(now, wall, len(request)), request, reply)


def input_parts(now: float, wall: float, body: bytes) -> tuple[bytes, bytes]:
    """input_payload's pieces, for Journal.append_parts."""
    return (HEAD.pack(now, wall), body)


def check_payload(now: float, wall: float, request: bytes, reply: bytes) -> bytes:
    """A CHECK payload in one piece (tools, tests; the server appends check_parts)."""
    return b"".join(check_parts(now, wall, request, reply))


def input_payload(now: float, wall: float, body: bytes) -> bytes:
    """Any other type's payload: HEAD then the body (a request's bytes, or a codec payload)."""
    return b"".join(input_parts(now, wall, body))


@dataclass(frozen=True, slots=True)
class Input:
    """A decoded input record: its clocks, the request (or codec) bytes and, for CHECK, the reply."""

    type: int
    now: float
    wall: float
    body: bytes
    reply: bytes = b""


def wall_of(type_: int, payload: bytes) -> float | None:
    """The wall clock an input record was journaled at (every input type starts with HEAD), None
    for another type or a payload too short (decode says why)."""
    if type_ not in NAMES or len(payload) < HEAD.size:
        return None
    return float(HEAD.unpack_from(payload)[1])


def decode(type_: int, payload: bytes) -> Input:
    """Split a payload into its parts (views are not kept: bytes, since records outlive buffers)."""
    if type_ == CHECK:
        if len(payload) < _CHECK_HEAD.size:
            raise RecordError(f"CHECK payload of {len(payload)} bytes is shorter than its header")
        now, wall, n = _CHECK_HEAD.unpack_from(payload)
        start = _CHECK_HEAD.size
        if start + n > len(payload):
            raise RecordError(f"CHECK request of {n} bytes runs past its {len(payload)}-byte payload")
        return Input(type_, now, wall, payload[start : start + n], payload[start + n :])
    if type_ not in NAMES:
        raise RecordError(f"unknown input record type {type_}")
    if len(payload) < HEAD.size:
        raise RecordError(f"{NAMES[type_]} payload of {len(payload)} bytes is shorter than its header")
    now, wall = HEAD.unpack_from(payload)
    return Input(type_, now, wall, payload[HEAD.size :])


__all__ = [
    "CHECK",
    "EXECUTIONS",
    "HEAD",
    "LIMITS",
    "LIMITS_FILE",
    "NAMES",
    "POSITIONS",
    "PRICES",
    "TRADING_STATE",
    "Input",
    "RecordError",
    "check_parts",
    "check_payload",
    "decode",
    "input_parts",
    "input_payload",
]


def describe(type_: int, payload: bytes) -> str:
    """One line for ``riskd journal inspect``: the clocks and what the request holds."""
    try:
        rec = decode(type_, payload)
        when = _dt.datetime.fromtimestamp(rec.wall, _dt.UTC).isoformat(timespec="microseconds")
        if type_ == CHECK:
            request = pb.CheckOrdersRequest.FromString(rec.body)
            reply = pb.CheckOrdersResponse.FromString(rec.reply)
            n = len(request.orders.client_order_id)
            accepted = sum(reply.result.accepted)
            what = f"{n} order(s), {accepted} accepted, {n - accepted} rejected"
        elif type_ == EXECUTIONS:
            what = f"{len(pb.ReportExecutionsRequest.FromString(rec.body).client_order_id)} execution(s)"
        elif type_ == PRICES:
            what = f"{len(pb.UpdatePricesRequest.FromString(rec.body).symbol)} price(s)"
        elif type_ == POSITIONS:
            what = f"{len(pb.LoadPositionsRequest.FromString(rec.body).account)} position(s)"
        elif type_ == TRADING_STATE:
            msg = pb.SetTradingStateRequest.FromString(rec.body)
            what = f"account {msg.account!r} -> {pb.TradingState.Name(msg.state)}"
        elif type_ == LIMITS_FILE:
            what = f"side file {rec.body.decode(errors='replace')}"
        else:
            from .codec import describe as describe_change

            what = describe_change(8, rec.body)  # journal.codec's LimitsChanged
    except Exception as exc:  # a description never fails inspect
        return f"({type(exc).__name__}: {exc})"
    return f"{when}  {what}"


def register_inspect(names: dict[int, str], describers: dict[int, Callable[[bytes], str]]) -> None:
    """Teach ``riskd journal inspect`` the input record types."""
    for number, name in NAMES.items():
        names[number] = name
        describers[number] = functools.partial(describe, number)
