"""SizePositionsResponse as bytes, straight from the sizing columns.

Filling nine repeated double fields of 5,000 entries through protobuf (``.tolist()`` then the
message's lists) took ~2.7 ms, more than reading the account and sizing it together; a packed
repeated double is its tag, a varint length and the little-endian float64 bytes, which numpy
hands over as they are (~0.1 ms). The symbol column of a whole-model answer is encoded once per
model and reused. tests/test_sizing_wire.py parses these bytes with protobuf and compares.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from .sizer import SizingResult

_F64 = np.dtype("<f8")


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _packed(field: int, column: np.ndarray) -> bytes:
    """A packed repeated double (wire type 2); nothing for an empty column (proto3 default)."""
    if not column.shape[0]:
        return b""
    data = np.ascontiguousarray(column, dtype=_F64).tobytes()
    return bytes((field << 3 | 2,)) + varint(len(data)) + data


def encode_strings(field: int, names: Sequence[str]) -> bytes:
    """A repeated string field: per name its tag, length and UTF-8 bytes. ASCII names shorter than
    128 bytes (one-byte lengths) are laid out with numpy in one pass; others one by one."""
    n = len(names)
    if not n:
        return b""
    tag = field << 3 | 2
    joined = "".join(names)
    lengths = np.fromiter(map(len, names), dtype=np.int64, count=n)
    if joined.isascii() and int(lengths.max()) < 0x80:
        raw = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        starts = np.cumsum(lengths + 2) - (lengths + 2)
        out = np.empty(int(lengths.sum()) + 2 * n, dtype=np.uint8)
        out[starts] = tag
        out[starts + 1] = lengths
        seg = np.repeat(np.arange(n, dtype=np.int64), lengths)
        out[np.arange(raw.shape[0], dtype=np.int64) + 2 * (seg + 1)] = raw
        return out.tobytes()
    head = bytes((tag,))
    parts = []
    for name in names:
        b = name.encode("utf-8")
        parts.append(head + varint(len(b)) + b)
    return b"".join(parts)


class SizesWire:
    """Encodes SizingResults; keeps the symbol column of the last whole-model answer (one entry:
    keyed by the model's symbols tuple, which a new model replaces)."""

    __slots__ = ("_symbols", "_symbols_bytes")

    def __init__(self) -> None:
        self._symbols: Sequence[str] | None = None
        self._symbols_bytes = b""

    def _symbol_column(self, symbols: Sequence[str]) -> bytes:
        if symbols is self._symbols:
            return self._symbols_bytes
        encoded = encode_strings(1, symbols)
        if isinstance(symbols, tuple):  # a model's (immutable): worth keeping
            self._symbols, self._symbols_bytes = symbols, encoded
        return encoded

    def encode(self, r: SizingResult) -> bytes:
        """The serialised SizePositionsResponse but server_micros (fields in number order, as
        protobuf writes them); append server_micros_field(...) once the time is known."""
        sizes = b"".join(
            (
                self._symbol_column(r.symbols),
                _packed(2, r.max_buy),
                _packed(3, r.max_sell),
                _packed(4, r.marginal),
                _packed(5, r.component),
                _packed(6, r.price),
                _packed(7, r.exposure),
                _packed(8, r.limit_buy) if r.limit_buy is not None else b"",
                _packed(9, r.limit_sell) if r.limit_sell is not None else b"",
            )
        )
        version = r.model_version.encode("utf-8")
        parts = []
        if r.var != 0.0:
            parts.append(b"\x09" + struct.pack("<d", r.var))
        if r.budget != 0.0:
            parts.append(b"\x11" + struct.pack("<d", r.budget))
        if version:
            parts.append(b"\x1a" + varint(len(version)) + version)
        parts.append(b"\x22" + varint(len(sizes)) + sizes)
        return b"".join(parts)


def server_micros_field(micros: float) -> bytes:
    """SizePositionsResponse.server_micros (field 5, double); a field appended to a serialised
    message is read as if written in place."""
    return b"\x29" + struct.pack("<d", micros)
