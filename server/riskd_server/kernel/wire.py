"""CheckOrdersRequest wire bytes -> order columns, and the 64-bit key of a name's UTF-8 bytes.

The CheckOrders handler receives the serialized request and parses it here instead of building a
protobuf message (whose repeated strings become one Python str per access): ids, accounts and
symbols stay (offset, length) spans into the request buffer, ids are hashed to their order-table
key and names are looked up in a byte-verified numba index beside each Interner.

Anything this parser does not handle exactly like upb (a non-ASCII string, which upb must
UTF-8-validate; a repeated top-level ``orders`` field, which protobuf merges; groups, a bad field
number, a truncated or overlong field) makes it return ``FALLBACK``: the caller then parses the
request with protobuf, which either handles it or raises the same error it always did.

Wire format (riskd.v1): CheckOrdersRequest.orders = 1 (OrderBatch). OrderBatch: client_order_id=1,
account=2, symbol=3 (repeated string), side=4 (repeated enum), quantity=5, price=6 (repeated
double); the numeric fields may come packed or unpacked (proto3 parsers accept both).
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit

from ._hashtable import EMPTY, ht_find, ht_put

OK = 0
FALLBACK = 1

# Per-process salt of the id and name keys (a client cannot precompute colliding ids).
SEED = np.uint64(int.from_bytes(os.urandom(8), "little"))

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_U0 = np.uint64(0)
_U8 = np.uint64(8)
_U23 = np.uint64(23)
_U27 = np.uint64(27)
_U31 = np.uint64(31)
_U33 = np.uint64(33)
_U41 = np.uint64(41)
_U37 = np.uint64(37)
_U64 = np.uint64(64)


@njit(cache=True, nogil=True, inline="always")
def _rotl(x: np.uint64, r: np.uint64) -> np.uint64:
    return (x << r) | (x >> (_U64 - r))


@njit(cache=True, nogil=True, inline="always")
def _load64(buf: np.ndarray, pos: np.int64, count: np.int64) -> np.uint64:
    """count (<= 8) bytes at pos as a little-endian integer."""
    w = _U0
    for j in range(count):
        w |= np.uint64(buf[pos + j]) << np.uint64(8 * j)
    return w


@njit(cache=True, nogil=True)
def hash_span(buf: np.ndarray, start: np.int64, length: np.int64, seed: np.uint64) -> np.int64:
    """Salted 64-bit hash of buf[start:start+length] (xxh64-style rounds, murmur3 finaliser).

    Never returns EMPTY (the tables' free-bucket key).
    """
    h = seed ^ (np.uint64(length) * _P1)
    i = 0
    while i + 8 <= length:
        w = _load64(buf, start + i, 8)
        h ^= _rotl(w * _P2, _U31) * _P1
        h = _rotl(h, _U27) * _P1 + _P4
        i += 8
    if i < length:
        w = _load64(buf, start + i, length - i)
        h ^= w * _P1
        h = _rotl(h, _U23) * _P2 + _P3
    h ^= h >> _U33
    h *= _M1
    h ^= h >> _U33
    h *= _M2
    h ^= h >> _U33
    key = np.int64(h)
    return key if key != EMPTY else np.int64(1)


@njit(cache=True, nogil=True)
def hash_spans(buf: np.ndarray, off: np.ndarray, length: np.ndarray, seed: np.uint64) -> np.ndarray:
    """hash_span of each (off[i], length[i])."""
    n = off.shape[0]
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = hash_span(buf, off[i], length[i], seed)
    return out


def hash_bytes(data: bytes) -> int:
    """The key of one name's UTF-8 bytes (hash_span over all of them)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    return int(hash_span(buf, 0, buf.shape[0], SEED))


def hash_strs(names) -> np.ndarray:
    """Keys of strs: their UTF-8 bytes joined into one buffer and hashed in one kernel call.

    All-ASCII input (the common case) is joined and encoded once, its lengths in characters being
    its lengths in bytes; otherwise each str is encoded on its own.
    """
    n = len(names)
    joined = "".join(names)
    data = joined.encode("utf-8", "surrogatepass")
    if len(data) == len(joined):
        length = np.fromiter(map(len, names), dtype=np.int64, count=n)
    else:
        enc = [s.encode("utf-8", "surrogatepass") for s in names]
        length = np.fromiter(map(len, enc), dtype=np.int64, count=n)
        data = b"".join(enc)
    off = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(length[:-1], out=off[1:])
    return hash_spans(np.frombuffer(data, dtype=np.uint8), off, length, SEED)


# ---------------------------------------------------------------------------------------- parser


@njit(cache=True, nogil=True, inline="always")
def _varint(buf: np.ndarray, pos: np.int64, end: np.int64) -> tuple[np.uint64, np.int64]:
    """(value, position after it); position -1 if truncated or longer than 10 bytes."""
    if pos < end and buf[pos] < 0x80:  # one byte: tags, lengths, enums (most varints here)
        return np.uint64(buf[pos]), pos + 1
    result = _U0
    shift = 0
    while pos < end:
        b = buf[pos]
        pos += 1
        if shift < 64:
            result |= np.uint64(b & 0x7F) << np.uint64(shift)
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            return result, np.int64(-1)
    return result, np.int64(-1)


@njit(cache=True, nogil=True)
def _skip(buf: np.ndarray, pos: np.int64, end: np.int64, wire_type: np.int64) -> np.int64:
    """Position after a field's value of wire_type, or -1 (groups and bad types: fall back)."""
    if wire_type == 0:
        _, pos = _varint(buf, pos, end)
        return pos
    if wire_type == 1:
        return pos + 8 if pos + 8 <= end else np.int64(-1)
    if wire_type == 5:
        return pos + 4 if pos + 4 <= end else np.int64(-1)
    if wire_type == 2:
        ln, pos = _varint(buf, pos, end)
        if pos < 0 or ln > np.uint64(end - pos):
            return np.int64(-1)
        return pos + np.int64(ln)
    return np.int64(-1)


@njit(cache=True, nogil=True)
def _batch_span(buf: np.ndarray) -> tuple[np.int64, np.int64, np.int64]:
    """(status, start, end) of the OrderBatch inside a CheckOrdersRequest."""
    end = buf.shape[0]
    pos = np.int64(0)
    start = np.int64(0)
    stop = np.int64(0)
    seen = 0
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        if pos < 0 or (tag >> np.uint64(3)) == _U0 or tag > np.uint64(0xFFFFFFFF):
            return FALLBACK, start, stop
        field = np.int64(tag >> np.uint64(3))
        wt = np.int64(tag & np.uint64(7))
        if field == 1 and wt == 2:
            ln, pos = _varint(buf, pos, end)
            if pos < 0 or ln > np.uint64(end - pos):
                return FALLBACK, start, stop
            seen += 1
            if seen > 1:
                return FALLBACK, start, stop  # protobuf merges repeated sub-messages
            start = pos
            stop = pos + np.int64(ln)
            pos = stop
        else:
            pos = _skip(buf, pos, end, wt)
            if pos < 0:
                return FALLBACK, start, stop
    return OK, start, stop


@njit(cache=True, nogil=True)
def _walk(buf, start, stop, counts, str_off, str_len, side, qty, px, fill):
    """One pass over an OrderBatch: count the elements of each column, and store them if fill.

    counts: int64[6] (ids, accounts, symbols, sides, quantities, prices). Returns the status.
    """
    pos = start
    f64 = np.empty(1, dtype=np.uint64)
    as_f64 = f64.view(np.float64)
    while pos < stop:
        tag, pos = _varint(buf, pos, stop)
        if pos < 0 or (tag >> np.uint64(3)) == _U0 or tag > np.uint64(0xFFFFFFFF):
            return FALLBACK
        field = np.int64(tag >> np.uint64(3))
        wt = np.int64(tag & np.uint64(7))
        if 1 <= field <= 3 and wt == 2:
            ln, pos = _varint(buf, pos, stop)
            if pos < 0 or ln > np.uint64(stop - pos):
                return FALLBACK
            col = field - 1
            k = counts[col]
            if fill:
                length = np.int64(ln)
                high = np.uint8(0)
                for j in range(pos, pos + length):
                    high |= buf[j]
                if high >= 0x80:
                    return FALLBACK  # non-ASCII: let upb validate the UTF-8
                str_off[col, k] = pos
                str_len[col, k] = length
            counts[col] = k + 1
            pos += np.int64(ln)
        elif field == 4 and (wt == 0 or wt == 2):
            if wt == 0:
                v, pos = _varint(buf, pos, stop)
                if pos < 0:
                    return FALLBACK
                if fill:
                    side[counts[3]] = np.int64(np.int32(v & np.uint64(0xFFFFFFFF)))
                counts[3] += 1
            else:
                ln, pos = _varint(buf, pos, stop)
                if pos < 0 or ln > np.uint64(stop - pos):
                    return FALLBACK
                end = pos + np.int64(ln)
                if not fill:  # each varint ends in the one byte of it below 0x80
                    if end > pos and buf[end - 1] >= 0x80:
                        return FALLBACK
                    for j in range(pos, end):
                        counts[3] += buf[j] < 0x80
                    pos = end
                while pos < end:
                    v, pos = _varint(buf, pos, end)
                    if pos < 0:
                        return FALLBACK
                    if fill:
                        side[counts[3]] = np.int64(np.int32(v & np.uint64(0xFFFFFFFF)))
                    counts[3] += 1
        elif (field == 5 or field == 6) and (wt == 1 or wt == 2):
            col = field - 1
            if wt == 1:
                if pos + 8 > stop:
                    return FALLBACK
                m = 1
            else:
                ln, pos = _varint(buf, pos, stop)
                if pos < 0 or ln > np.uint64(stop - pos) or ln % np.uint64(8) != _U0:
                    return FALLBACK
                m = np.int64(ln) // 8
            if fill:
                out = qty if field == 5 else px
                k = counts[col]
                for j in range(m):
                    f64[0] = _load64(buf, pos + 8 * j, 8)
                    out[k + j] = as_f64[0]
            counts[col] += m
            pos += 8 * m
        else:
            pos = _skip(buf, pos, stop, wt)
            if pos < 0:
                return FALLBACK
    return OK


@njit(cache=True, nogil=True)
def parse_check_orders(buf: np.ndarray):
    """CheckOrdersRequest bytes -> (status, counts[6], str_off[3, n], str_len[3, n], side, qty, px).

    counts are the per-column lengths (they may differ: the caller reports the mismatch); n is the
    longest string column.
    """
    counts = np.zeros(6, dtype=np.int64)
    str_off = np.empty((3, 0), dtype=np.int64)
    str_len = np.empty((3, 0), dtype=np.int64)
    side = np.empty(0, dtype=np.int64)
    qty = np.empty(0, dtype=np.float64)
    px = np.empty(0, dtype=np.float64)
    status, start, stop = _batch_span(buf)
    if status != OK:
        return status, counts, str_off, str_len, side, qty, px
    status = _walk(buf, start, stop, counts, str_off, str_len, side, qty, px, False)
    if status != OK:
        return status, counts, str_off, str_len, side, qty, px
    n = max(counts[0], counts[1], counts[2])
    str_off = np.empty((3, n), dtype=np.int64)
    str_len = np.empty((3, n), dtype=np.int64)
    side = np.empty(counts[3], dtype=np.int64)
    qty = np.empty(counts[4], dtype=np.float64)
    px = np.empty(counts[5], dtype=np.float64)
    counts[:] = 0
    status = _walk(buf, start, stop, counts, str_off, str_len, side, qty, px, True)
    return status, counts, str_off, str_len, side, qty, px


# ---------------------------------------------------------------------------------------- names


@njit(cache=True, nogil=True)
def lookup_names(buf, off, length, n, table, arena, arena_off, seed, out) -> np.int64:
    """out[i] = id of the name at buf[off[i]:off[i]+length[i]], or -1; returns the -1 count.

    The table maps a name's key to its id; the id's bytes in the arena are compared before the id
    is used, so a key collision can only send a name to the slow path, never to another id.
    """
    misses = 0
    for i in range(n):
        o = off[i]
        ln = length[i]
        v = ht_find(table, hash_span(buf, o, ln, seed))
        if v >= 0:
            a = arena_off[v]
            if arena_off[v + 1] - a == ln:
                same = True
                for j in range(ln):
                    if arena[a + j] != buf[o + j]:
                        same = False
                        break
                if same:
                    out[i] = v
                    continue
        out[i] = -1
        misses += 1
    return misses


@njit(cache=True, nogil=True)
def insert_names(table, arena, arena_off, first, last, seed) -> None:
    """Index ids first..last-1 (their bytes already in the arena); a colliding key keeps its id."""
    for v in range(first, last):
        a = arena_off[v]
        key = hash_span(arena, a, arena_off[v + 1] - a, seed)
        if ht_find(table, key) < 0:
            ht_put(table, key, v)
