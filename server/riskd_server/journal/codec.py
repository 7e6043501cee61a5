"""Change records (riskd_server.changes) <-> journal payloads: columnar, exact, no pickle.

Each change type has a record type number and a schema: its fields in order, each one of

- ``f64``: a float scalar;
- ``i64``: an int scalar;
- ``str``: a str scalar;
- an array dtype (``<f8``, ``<i8``, ``|i1``, ``<i2``, ``|b1``): u32 count, then the raw values;
- ``strs``: an object array of str: u32 count, u32 byte lengths, then the UTF-8 bytes
  (surrogatepass, as the engine encodes names: every name round-trips).

``LimitsChanged`` holds Limit values, rare and small: it is JSON (with its version, who, action
and ts, which the limits' history keeps and a replayed LIMITS record must reproduce). Floats keep every bit (NaN
included); a payload that does not parse, or leaves bytes over, raises CodecError.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import changes as ch
from ..limits import Limit

_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_I64 = struct.Struct("<q")

SCALARS = ("f64", "i64", "str")


class CodecError(ValueError):
    """A payload that is not a change record this codec wrote."""


# Record types: stable numbers, never reused (journal files outlive code versions).
TYPES: dict[type, int] = {
    ch.OrdersAccepted: 1,
    ch.OrdersUpdated: 2,
    ch.ExecutionsReported: 3,
    ch.PositionsChanged: 4,
    ch.MarksChanged: 5,
    ch.CheckEvents: 6,
    ch.AlertsRaised: 7,
    ch.LimitsChanged: 8,
    ch.TradingStateChanged: 9,
}
BY_NUMBER: dict[int, type] = {n: t for t, n in TYPES.items()}
NAMES: dict[int, str] = {n: t.__name__ for t, n in TYPES.items()}

SCHEMAS: dict[type, tuple[tuple[str, str], ...]] = {
    ch.OrdersAccepted: (
        ("ts", "f64"),
        ("client_order_id", "strs"),
        ("account", "strs"),
        ("symbol", "strs"),
        ("side", "|i1"),
        ("quantity", "<f8"),
        ("price", "<f8"),
    ),
    ch.OrdersUpdated: (
        ("ts", "f64"),
        ("client_order_id", "strs"),
        ("open_quantity", "<f8"),
        ("status", "|i1"),
    ),
    ch.ExecutionsReported: (
        ("ts", "f64"),
        ("client_order_id", "strs"),
        ("exec_type", "|i1"),
        ("quantity", "<f8"),
        ("price", "<f8"),
        ("applied", "|b1"),
        ("error", "strs"),
    ),
    ch.PositionsChanged: (("account", "strs"), ("symbol", "strs"), ("quantity", "<f8")),
    ch.MarksChanged: (("symbol", "strs"), ("price", "<f8"), ("last_fill_price", "<f8")),
    ch.CheckEvents: (
        ("ts", "f64"),
        ("client_order_id", "strs"),
        ("account", "strs"),
        ("symbol", "strs"),
        ("check", "<i2"),
        ("limit_id", "strs"),
        ("observed", "<f8"),
        ("threshold", "<f8"),
        ("warning", "|b1"),
    ),
    ch.AlertsRaised: (
        ("seq", "<i8"),
        ("time", "<f8"),
        ("severity", "<i2"),
        ("kind", "<i2"),
        ("check", "<i2"),
        ("account", "strs"),
        ("symbol", "strs"),
        ("limit_id", "strs"),
        ("message", "strs"),
        ("observed", "<f8"),
        ("threshold", "<f8"),
        ("count", "<i8"),
        ("summary", "|b1"),
        ("client_order_id", "strs"),
    ),
    ch.TradingStateChanged: (("ts", "f64"), ("account", "str"), ("state", "i64"), ("reason", "str")),
}


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _put(out: list[bytes], kind: str, value: Any) -> None:
    if kind == "f64":
        out.append(_F64.pack(value))
    elif kind == "i64":
        out.append(_I64.pack(value))
    elif kind == "str":
        b = _utf8(value)
        out.append(_U32.pack(len(b)))
        out.append(b)
    elif kind == "strs":
        enc = [_utf8(v) for v in value]
        out.append(_U32.pack(len(enc)))
        out.append(np.fromiter(map(len, enc), dtype="<u4", count=len(enc)).tobytes())
        out.append(b"".join(enc))
    else:
        arr = np.ascontiguousarray(value, dtype=kind)
        out.append(_U32.pack(arr.shape[0]))
        out.append(arr.tobytes())


def encode(change: ch.Change) -> tuple[int, bytes]:
    """(record type, payload) for a change record."""
    kind = type(change)
    number = TYPES.get(kind)
    if number is None:
        raise CodecError(f"no record type for {kind.__name__}")
    if kind is ch.LimitsChanged:
        assert isinstance(change, ch.LimitsChanged)
        doc = {
            "upserted": [dataclasses.asdict(lim) for lim in change.upserted],
            "deleted": list(change.deleted),
            "version": change.version,
            "who": change.who,
            "action": change.action,
            "ts": change.ts,
        }
        return number, json.dumps(doc, allow_nan=True, separators=(",", ":")).encode()
    out: list[bytes] = []
    for name, fkind in SCHEMAS[kind]:
        _put(out, fkind, getattr(change, name))
    return number, b"".join(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise CodecError("payload cut short")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def get(self, kind: str) -> Any:
        if kind == "f64":
            return _F64.unpack(self.take(8))[0]
        if kind == "i64":
            return _I64.unpack(self.take(8))[0]
        if kind == "str":
            return self.take(self.u32()).decode("utf-8", "surrogatepass")
        n = self.u32()
        if kind == "strs":
            lengths = np.frombuffer(self.take(4 * n), dtype="<u4").astype(np.int64)
            blob = self.take(int(lengths.sum()))
            out = np.empty(n, dtype=object)
            if n:
                ends = np.cumsum(lengths).tolist()
                starts = [0, *ends[:-1]]
                out[:] = [
                    blob[s:e].decode("utf-8", "surrogatepass") for s, e in zip(starts, ends, strict=True)
                ]
            return out
        dtype = np.dtype(kind)
        return np.frombuffer(self.take(n * dtype.itemsize), dtype=dtype).astype(dtype.newbyteorder("="))


def _limit(doc: dict) -> Limit:
    fields = {f.name for f in dataclasses.fields(Limit)}
    unknown = set(doc) - fields
    if unknown:
        raise CodecError(f"limit fields this code does not know: {sorted(unknown)}")
    return Limit(**doc)


def decode(number: int, payload: bytes) -> ch.Change:
    """The change record a (type, payload) pair holds; CodecError when it is not one."""
    kind = BY_NUMBER.get(number)
    if kind is None:
        raise CodecError(f"unknown record type {number}")
    if kind is ch.LimitsChanged:
        try:
            doc = json.loads(payload)
            return ch.LimitsChanged(
                upserted=tuple(_limit(d) for d in doc["upserted"]),
                deleted=tuple(doc["deleted"]),
                # absent from payloads written before the history fields were journaled
                version=int(doc.get("version", 0)),
                who=str(doc.get("who", "")),
                action=str(doc.get("action", "")),
                ts=float(doc.get("ts", 0.0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CodecError(f"bad LimitsChanged payload: {exc}") from None
    r = _Reader(payload)
    try:
        values = {name: r.get(fkind) for name, fkind in SCHEMAS[kind]}
    except (struct.error, UnicodeDecodeError) as exc:
        raise CodecError(f"bad {kind.__name__} payload: {exc}") from None
    if r.pos != len(payload):
        raise CodecError(f"{len(payload) - r.pos} byte(s) left over after a {kind.__name__}")
    change: ch.Change = kind(**values)
    return change


def describe(number: int, payload: bytes) -> str:
    """One line for ``riskd journal inspect``: the rows a record holds."""
    try:
        change = decode(number, payload)
    except CodecError as exc:
        return f"({exc})"
    if isinstance(change, ch.LimitsChanged):
        return f"{len(change.upserted)} upserted, {len(change.deleted)} deleted"
    if isinstance(change, ch.TradingStateChanged):
        return f"account {change.account!r} -> state {change.state} ({change.reason})"
    first = SCHEMAS[type(change)][1 if SCHEMAS[type(change)][0][1] in SCALARS else 0][0]
    rows = len(getattr(change, first))
    return f"{rows} row(s)"


def register_inspect(names: dict[int, str], describers: dict[int, Callable[[bytes], str]]) -> None:
    """Teach ``riskd journal inspect`` the change record types."""
    for number, name in NAMES.items():
        names[number] = name
        describers[number] = functools.partial(describe, number)


def same_change(a: ch.Change, b: ch.Change) -> bool:
    """Field by field equality with NaN equal to NaN (tests)."""
    if type(a) is not type(b):
        return False
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            if x.dtype == object:
                if x.tolist() != list(y):
                    return False
            elif not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                return False
        elif isinstance(x, float):
            if not (x == y or (math.isnan(x) and math.isnan(y))):
                return False
        elif x != y:
            return False
    return True
