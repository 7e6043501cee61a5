"""Read a whole binary COPY stream ("COPY ... TO STDOUT (FORMAT BINARY)") into numpy columns.

Recovery reads millions of rows. psycopg's row-at-a-time API costs microseconds a row in Python;
here the raw stream is drained message by message (``copy_out``: one C call and one append per
row, no objects per field) and parsed in one jitted pass (``parse_copy``): text fields stay
(offset, length) spans into the stream's buffer, numbers are decoded into typed columns.

Format (PostgreSQL docs, "COPY", binary format): an 11-byte signature, an int32 flags word (bits 16-31:
OIDs included or critical extensions, none of which riskd asks for), an int32 header-extension length and that many bytes;
per row an int16 field count, then per field an int32 byte length (-1 = NULL) and the bytes,
all big-endian; an int16 -1 trailer. The parser checks every length against the buffer (numba
does not bounds-check), so a malformed stream is an error, never a read out of bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from psycopg import AsyncConnection
from psycopg.abc import Query

# Column kinds (the ``kinds`` argument of parse_copy).
TEXT = 0  # text, varchar, bytea: (offset, length) span; NULL -> length -1
INT = 1  # int2, int4, int8 (by field width): int64; NULL -> INT_NULL
FLOAT = 2  # float8: float64; NULL -> NaN
INT_NULL = np.iinfo(np.int64).min
_NAN_BITS = np.int64(0x7FF8000000000000)

_SIGNATURE = np.frombuffer(b"PGCOPY\n\xff\r\n\x00", dtype=np.uint8)
_TRAILER = b"\xff\xff"
# PostgreSQL sends each row as one message, the header with the first row and the trailer alone;
# with no rows, header and trailer come as one message of this size (no header extension).
_EMPTY_STREAM = _SIGNATURE.shape[0] + 8 + 2

_OK = 0
_BAD_HEADER = 1
_TRUNCATED = 2
_BAD_FIELD_COUNT = 3
_BAD_WIDTH = 4
_TRAILING_BYTES = 5
_ERRORS = {
    _BAD_HEADER: "not a binary COPY header (or OIDs included)",
    _TRUNCATED: "truncated",
    _BAD_FIELD_COUNT: "unexpected field count",
    _BAD_WIDTH: "unexpected field length",
    _TRAILING_BYTES: "bytes after the trailer",
}


@dataclass(frozen=True, slots=True)
class CopyColumns:
    """Parsed rows: ``text[k]`` = (offset, length) int64 arrays of the k-th TEXT column (spans into
    ``buf``), ``ints[k]``/``floats[k]`` the k-th INT/FLOAT column, in the order of ``kinds``."""

    buf: np.ndarray  # uint8, the whole stream
    rows: int
    text_off: np.ndarray  # int64[text columns, rows]
    text_len: np.ndarray  # int64[text columns, rows]
    ints: np.ndarray  # int64[int columns, rows]
    floats: np.ndarray  # float64[float columns, rows]


@njit(cache=True, nogil=True, inline="always")
def _be(buf: np.ndarray, p: np.int64, width: np.int64) -> np.int64:
    """Signed big-endian integer of width (2, 4 or 8) bytes at buf[p]; the caller checked the bounds.

    Indexed unsigned (numba wraps a signed index that may be negative: a compare per load).
    """
    u = np.uint64(p)
    v = np.uint64(0)
    for k in range(width):
        v = (v << np.uint64(8)) | np.uint64(buf[u + np.uint64(k)])
    shift = np.uint64(64 - 8 * width)
    return np.int64(v << shift) >> np.int64(shift)  # sign-extend


@njit(cache=True, nogil=True)
def _walk(buf, kinds, slot, text_off, text_len, ints, floats) -> tuple[np.int64, np.int64, np.int64]:
    """Parse every row into the output columns (sized for the most rows buf can hold); returns
    (status, rows, byte position of the error or the end)."""
    end = buf.shape[0]
    m = kinds.shape[0]
    sig = _SIGNATURE.shape[0]
    if end < sig + 8:
        return _BAD_HEADER, 0, 0
    for k in range(sig):
        if buf[k] != _SIGNATURE[k]:
            return _BAD_HEADER, 0, k
    if (_be(buf, sig, 4) >> 16) != 0:  # OIDs included, or a critical flag this reader does not know
        return _BAD_HEADER, 0, sig
    ext = _be(buf, sig + 4, 4)
    p = sig + 8 + ext
    if ext < 0 or p > end:
        return _BAD_HEADER, 0, sig + 4
    n = np.int64(0)
    while True:
        if p + 2 > end:
            return _TRUNCATED, n, p
        count = _be(buf, p, 2)
        p += 2
        if count == -1:
            break
        if count != m or n >= text_off.shape[1]:
            return _BAD_FIELD_COUNT, n, p - 2
        for j in range(m):
            if p + 4 > end:
                return _TRUNCATED, n, p
            size = _be(buf, p, 4)
            p += 4
            if size > end - p:
                return _TRUNCATED, n, p - 4
            kind = kinds[j]
            c = slot[j]
            if kind == TEXT:
                if size < -1:
                    return _BAD_WIDTH, n, p - 4
                text_off[c, n] = p
                text_len[c, n] = size
            elif size == -1:
                if kind == INT:
                    ints[c, n] = INT_NULL
                else:
                    floats[c, n] = _NAN_BITS
            elif size == 8 or (kind == INT and (size == 2 or size == 4)):
                if kind == INT:
                    ints[c, n] = _be(buf, p, size)
                else:  # the float's bits; parse_copy views them as float64
                    floats[c, n] = _be(buf, p, 8)
            else:
                return _BAD_WIDTH, n, p - 4
            if size > 0:
                p += size
        n += 1
    if p != end:
        return _TRAILING_BYTES, n, p
    return _OK, n, p


def parse_copy(buf: np.ndarray, kinds: Sequence[int]) -> CopyColumns:
    """Parse a complete binary COPY stream whose rows have the given column kinds.

    One pass: the output columns are allocated for the most rows the buffer could hold (a row
    takes at least 2 + 4 bytes per column); pages of them never written are never touched.
    """
    kinds_arr = np.asarray(kinds, dtype=np.int64)
    m = kinds_arr.shape[0]
    slot = np.zeros(m, dtype=np.int64)
    counts = [0, 0, 0]
    for j, kind in enumerate(kinds):
        slot[j] = counts[kind]
        counts[kind] += 1
    cap = buf.shape[0] // (2 + 4 * m) + 1
    text_off = np.empty((counts[TEXT], cap), dtype=np.int64)
    text_len = np.empty((counts[TEXT], cap), dtype=np.int64)
    ints = np.empty((counts[INT], cap), dtype=np.int64)
    float_bits = np.empty((counts[FLOAT], cap), dtype=np.int64)
    status, rows, pos = _walk(buf, kinds_arr, slot, text_off, text_len, ints, float_bits)
    if status != _OK:
        raise ValueError(f"binary COPY stream: {_ERRORS[int(status)]} at byte {int(pos)} (row {int(rows)})")
    n = int(rows)
    return CopyColumns(
        buf, n, text_off[:, :n], text_len[:, :n], ints[:, :n], float_bits[:, :n].view(np.float64)
    )


async def copy_out(conn: AsyncConnection, query: Query) -> np.ndarray:
    """The whole binary COPY stream of ``query`` ("COPY (...) TO STDOUT (FORMAT BINARY)").

    PostgreSQL sends one CopyData message per row (see _EMPTY_STREAM). psycopg's ``AsyncCopy.read`` returns one message
    per await (~7 us a row measured with 2 M rows, ~2 us with the sync API), so messages libpq
    already holds are taken straight from the connection (``PGconn.get_copy_data`` without
    waiting: one C call each, ~0.5 us a row), and ``read`` is awaited only when that buffer is
    empty: it waits for the socket without blocking the event loop. The stream ends with the
    binary trailer; one more ``read`` then consumes the end of the COPY.
    """
    out = bytearray()
    async with conn.cursor() as cur, cur.copy(query) as copy:
        get = conn.pgconn.get_copy_data
        while True:
            nbytes, data = get(1)  # async mode: never waits; 0 = nothing buffered, < 0 = COPY over
            if nbytes == 0:
                data = await copy.read()
                nbytes = len(data)
            if nbytes <= 0:  # no trailer: parse_copy reports the stream as truncated
                break
            first = not out
            out += data
            if nbytes == 2 and bytes(data) == _TRAILER:  # a row is never 2 bytes of 0xff
                break
            if first and nbytes == _EMPTY_STREAM and bytes(data[-2:]) == _TRAILER:  # no rows
                break
        if await copy.read():  # the end of the COPY (nothing follows the trailer)
            raise ValueError("binary COPY stream: data after the trailer")
    return np.frombuffer(out, dtype=np.uint8)


def warm_up() -> None:
    """Compile (or load from numba's cache) the parser before recovery needs it (riskd_server.warm)."""
    empty = np.concatenate([_SIGNATURE, np.zeros(8, dtype=np.uint8), np.frombuffer(_TRAILER, np.uint8)])
    assert parse_copy(empty, (TEXT, INT, FLOAT)).rows == 0
