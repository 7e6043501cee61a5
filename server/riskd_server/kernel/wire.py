"""riskd.v1 wire bytes <-> columns for the hot RPCs, and the 64-bit key of a name's UTF-8 bytes.

The CheckOrders, CheckOrderStream and ReportExecutions handlers receive serialized requests and
parse them here instead of building protobuf messages (whose repeated strings become one Python str
per access): ids, accounts and symbols stay (offset, length) spans into the request buffer, ids are
hashed to their order-table key while parsed and names are looked up in a byte-verified numba index
beside each Interner. A one-order request (a stream message) parses to scalars (``parse_one``).
Replies are encoded here too (``encode_check_response``, ``join_pieces``).

Anything the parser does not handle exactly like upb (a non-ASCII string, which upb must
UTF-8-validate; a string holding a control character, which makes its order invalid (names.py)
and is rare enough to leave to the str path; a repeated top-level ``orders`` field, which protobuf merges; groups, a bad field
number, a truncated or overlong field) makes it return ``FALLBACK``: the caller then parses the
request with protobuf, which either handles it or raises the same error it always did.

Wire format (riskd.v1): CheckOrdersRequest.orders = 1 (OrderBatch; CheckOrderStreamRequest is the
same). OrderBatch: client_order_id=1, account=2, symbol=3 (repeated string), side=4 (repeated
enum), quantity=5, price=6 (repeated double). ReportExecutionsRequest: client_order_id=1, type=2,
quantity=3, price=4; its optional account=5, symbol=6, side=7 send the request to protobuf (they
name the order of a fill riskd does not know, a rare report). Numeric fields may come packed or
unpacked (proto3 parsers accept both).

Loops here index with unsigned or loop-counter values and take array arguments only in their own
body or in straight-line inlined helpers: numba wraps a signed index that may be negative (a compare
per access, which also keeps LLVM from merging byte loads into words) and reference-counts an array
passed to an inlined helper that branches (atomic operations, ~8 ns a call).
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit

from ._hashtable import EMPTY, ht_bucket, ht_find, ht_put
from ._prefetch import prefetch

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
_U1, _U2, _U3, _U4, _U5, _U6, _U7 = (np.uint64(k) for k in range(1, 8))
_U8 = np.uint64(8)
_U16, _U24, _U32, _U40, _U48, _U56 = (np.uint64(k) for k in range(16, 64, 8))
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
def _finish(h: np.uint64) -> np.int64:
    """murmur3's finaliser; never EMPTY (the tables' free-bucket key)."""
    h ^= h >> _U33
    h *= _M1
    h ^= h >> _U33
    h *= _M2
    h ^= h >> _U33
    key = np.int64(h)
    return key if key != EMPTY else np.int64(1)


@njit(cache=True, nogil=True, inline="always")
def _byte(buf: np.ndarray, p: np.int64) -> np.uint8:
    """buf[p] through an unsigned index (see _word)."""
    return buf[np.uint64(p)]


@njit(cache=True, nogil=True, inline="always")
def _word(buf: np.ndarray, p: np.int64) -> np.uint64:
    """buf[p:p + 8] as a little-endian word, in one load.

    Straight-line (numba reference-counts an array passed to an inlined helper that branches) and
    indexed unsigned: a signed index is wrapped around if negative, a compare per byte that keeps
    LLVM from merging the eight loads (20x slower a word).
    """
    u = np.uint64(p)
    return (
        np.uint64(buf[u])
        | np.uint64(buf[u + _U1]) << _U8
        | np.uint64(buf[u + _U2]) << _U16
        | np.uint64(buf[u + _U3]) << _U24
        | np.uint64(buf[u + _U4]) << _U32
        | np.uint64(buf[u + _U5]) << _U40
        | np.uint64(buf[u + _U6]) << _U48
        | np.uint64(buf[u + _U7]) << _U56
    )


@njit(cache=True, nogil=True, inline="always")
def _mix(h: np.uint64, w: np.uint64) -> np.uint64:
    """One full 8-byte word into the hash state."""
    h ^= _rotl(w * _P2, _U31) * _P1
    return _rotl(h, _U27) * _P1 + _P4


@njit(cache=True, nogil=True, inline="always")
def _mix_tail(h: np.uint64, w: np.uint64) -> np.uint64:
    """The last 1..7 bytes (little-endian in w) into the hash state."""
    h ^= w * _P1
    return _rotl(h, _U23) * _P2 + _P3


@njit(cache=True, nogil=True)
def hash_span(buf: np.ndarray, start: np.int64, length: np.int64, seed: np.uint64) -> np.int64:
    """Salted 64-bit hash of buf[start:start+length] (xxh64-style rounds, murmur3 finaliser).

    Never returns EMPTY (the tables' free-bucket key). The hot loops (_walk, lookup_names) repeat
    its byte loads inline: numba reference-counts an array passed to an inlined helper that
    branches, and a call per name costs as much as the hash.
    """
    h = seed ^ (np.uint64(length) * _P1)
    p = start
    end = start + length
    while p + 8 <= end:
        h = _mix(h, _word(buf, p))
        p += 8
    if p < end:
        w = _U0
        for j in range(end - p):
            w |= np.uint64(buf[np.uint64(p + j)]) << np.uint64(8 * j)
        h = _mix_tail(h, w)
    return _finish(h)


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


def utf8_spans(strs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(buf, off, length): strs as UTF-8 in one buffer, str i at buf[off[i]:off[i] + length[i]].

    Joined with NULs, encoded once and split where the NULs are (UTF-8 has no other zero byte),
    with no Python step per str (10,000 ids, spans and hashes: 470 -> 290 us); only when a str
    holds a NUL itself is each one encoded on its own.
    """
    n = len(strs)
    if not n:
        return np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    buf = np.frombuffer("\0".join(strs).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    end = np.flatnonzero(buf == 0)
    if end.shape[0] == n - 1:  # no str holds a NUL
        end = np.append(end, buf.shape[0])
    else:
        enc = [s.encode("utf-8", "surrogatepass") for s in strs]
        buf = np.frombuffer(b"\0".join(enc), dtype=np.uint8)
        end = np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=n) + 1) - 1
    off = np.zeros(n, dtype=np.int64)
    off[1:] = end[:-1] + 1
    return buf, off, end - off


class Utf8Spans:
    """Strs held as (offset, length) spans of a request's bytes (ASCII, checked by the parser) and
    decoded only when read; ``keys``, when given, are their hash_strs keys.

    Stands in for a list of ids or names the engine may never read as strs: without a write-behind
    sink it only counts and hashes them, and hash_strs takes the keys from here (10,000 cancel ids:
    decode, list and hash 900 -> 0 us; the parse that found them hashed them).
    """

    __slots__ = ("_data", "_len", "_off", "keys")

    def __init__(
        self, data: bytes, off: np.ndarray, length: np.ndarray, keys: np.ndarray | None = None
    ) -> None:
        self._data, self._off, self._len, self.keys = data, off, length, keys

    def __len__(self) -> int:
        return int(self._off.shape[0])

    def __getitem__(self, i: int) -> str:
        o = int(self._off[i])
        return self._data[o : o + int(self._len[i])].decode()

    def __iter__(self):
        data = self._data
        return iter(
            [data[o : o + ln].decode() for o, ln in zip(self._off.tolist(), self._len.tolist(), strict=True)]
        )


def hash_strs(names) -> np.ndarray:
    """Keys of strs: their UTF-8 bytes in one buffer, hashed in one kernel call (or, for
    Utf8Spans, the keys the parser computed)."""
    if isinstance(names, Utf8Spans):
        if names.keys is None:
            names.keys = hash_spans(np.frombuffer(names._data, dtype=np.uint8), names._off, names._len, SEED)
        return names.keys
    return hash_spans(*utf8_spans(names), SEED)


# ---------------------------------------------------------------------------------------- parser

MANY = 2  # parse_one: a well-formed request that is not exactly one ASCII order

# The fields the parser reads, as (name, number, wire type) per message. _walk takes a message's
# fields by position: s repeated strings numbered 1..s, then a repeated enum (s + 1) and two
# repeated doubles (s + 2, s + 3), packed or not; any other field is skipped like an unknown one,
# as protobuf does. tests/test_wire_schema.py holds these equal to riskd.v1's descriptors, so a
# field added to or renumbered in the proto fails a test instead of being skipped here unseen.
WT_VARINT, WT_I64, WT_LEN = 0, 1, 2
CHECK_ORDERS_FIELDS = (("orders", 1, WT_LEN),)  # CheckOrdersRequest and CheckOrderStreamRequest
ORDER_BATCH_FIELDS = (
    ("client_order_id", 1, WT_LEN), ("account", 2, WT_LEN), ("symbol", 3, WT_LEN),
    ("side", 4, WT_VARINT), ("quantity", 5, WT_I64), ("price", 6, WT_I64),
)  # fmt: skip
EXECUTIONS_FIELDS = (
    ("client_order_id", 1, WT_LEN), ("type", 2, WT_VARINT), ("quantity", 3, WT_I64), ("price", 4, WT_I64),
)  # fmt: skip
# Fields of the message the walker does not read: a request carrying any of them is FALLBACK, so
# protobuf parses it (ReportExecutions' optional columns naming the order of an unknown fill).
EXECUTIONS_FALLBACK_FIELDS = (("account", 5, WT_LEN), ("symbol", 6, WT_LEN), ("side", 7, WT_VARINT))


def _string_columns(fields: tuple[tuple[str, int, int], ...]) -> int:
    """s for a message _walk reads (its string columns), after checking fields have its layout."""
    kinds = [wt for _, _, wt in fields]
    s = kinds.count(WT_LEN)
    if [n for _, n, _ in fields] != list(range(1, len(fields) + 1)) or kinds != [WT_LEN] * s + [
        WT_VARINT,
        WT_I64,
        WT_I64,
    ]:
        raise ValueError(f"_walk cannot read fields {fields}")
    return s


_ORDERS_FIELD = CHECK_ORDERS_FIELDS[0][1]
_ORDER_STRINGS = _string_columns(ORDER_BATCH_FIELDS)
_EXECUTION_STRINGS = _string_columns(EXECUTIONS_FIELDS)
# _walk's ``known``: field numbers up to it that it does not read are FALLBACK, not skipped.
_ORDER_KNOWN = len(ORDER_BATCH_FIELDS)
_EXECUTION_KNOWN = max(n for _, n, _ in EXECUTIONS_FIELDS + EXECUTIONS_FALLBACK_FIELDS)
# No order (execution) takes fewer bytes: six (four) fields, empty strings, packed numbers. The
# first guess at the column lengths, right for any request whose columns are equally long, so it is
# walked once.
_MIN_ORDER_BYTES = 23
_MIN_EXECUTION_BYTES = 19
_HIGH = np.uint64(0x8080808080808080)
_ONES = np.uint64(0x0101010101010101)
_SPACES = np.uint64(0x2020202020202020)
_TAG_MAX = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True)
def _varint(buf: np.ndarray, pos: np.int64, end: np.int64) -> tuple[np.uint64, np.int64]:
    """(value, position after it); position -1 if truncated or longer than 10 bytes.

    The walkers decode one-byte varints (tags, lengths, enums) themselves and call this only for
    longer ones: a call, or an inlined helper that takes an array, costs ~8 ns a field.
    """
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
    end = len(buf)
    pos = np.int64(0)
    start = np.int64(0)
    stop = np.int64(0)
    seen = 0
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        if pos < 0 or (tag >> np.uint64(3)) == _U0 or tag > _TAG_MAX:
            return FALLBACK, start, stop
        field = np.int64(tag >> np.uint64(3))
        wt = np.int64(tag & np.uint64(7))
        if field == _ORDERS_FIELD and wt == 2:
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
def _walk(buf, start, stop, seed, counts, str_off, str_len, keys, side, num, known) -> np.int64:
    """One pass over buf[start:stop]: every column's length into counts, elements while they fit.

    The message's fields are s repeated strings (s = str_off.shape[0]), then a repeated enum and two
    repeated doubles: OrderBatch (ids, accounts, symbols, sides, quantities, prices; s = 3) and
    ReportExecutionsRequest (ids, types, quantities, prices; s = 1). counts: int64[s + 3]. Strings
    are checked to be ASCII (else FALLBACK) and stored as spans, field 1 also as its keys; the enum
    goes to side, the doubles to num[0], num[1]. Elements past the arrays' capacity are counted,
    checked and dropped (the caller walks again with room). Fields past the last column up to
    ``known`` are the message's columns this walker does not parse: FALLBACK (protobuf parses them)
    rather than dropped. Returns the status.
    """
    cap = keys.shape[0]
    ns = str_off.shape[0]
    bits = num.view(np.uint64)
    pos = start
    while pos < stop:
        b = _byte(buf, pos)
        if b < 0x80:
            tag = np.uint64(b)
            pos += 1
        else:
            tag, pos = _varint(buf, pos, stop)
            if pos < 0 or tag > _TAG_MAX:
                return FALLBACK
        field = np.int64(tag >> np.uint64(3))
        wt = np.int64(tag & np.uint64(7))
        if field == 0:
            return FALLBACK
        if field <= ns + 3 and (wt == 2 or (field == ns + 1 and wt == 0) or (field > ns + 1 and wt == 1)):
            if wt == 2:
                if pos < stop and _byte(buf, pos) < 0x80:
                    ln = np.int64(_byte(buf, pos))
                    pos += 1
                else:
                    ln64, pos = _varint(buf, pos, stop)
                    if pos < 0 or ln64 > np.uint64(stop - pos):
                        return FALLBACK
                    ln = np.int64(ln64)
                if ln > stop - pos:
                    return FALLBACK
            else:
                ln = np.int64(0)
            k = counts[field - 1]
            if field <= ns:
                high = _U0
                ctl = _U0
                h = seed ^ (np.uint64(ln) * _P1)
                p = pos
                e = pos + ln
                while p + 8 <= e:  # hash_span's loop, plus the ASCII and control checks
                    w = _word(buf, p)
                    high |= w
                    # If every byte is ASCII, a byte's high bit is set here iff it is < 0x20
                    # (first term: "hasless" of Bit Twiddling Hacks) or 0x7F (second: no carries).
                    ctl |= ((w - _SPACES) & ~w) | (w + _ONES)
                    if field == 1:
                        h = _mix(h, w)
                    p += 8
                if p < e:
                    w = _U0
                    for j in range(e - p):
                        w |= np.uint64(buf[np.uint64(p + j)]) << np.uint64(8 * j)
                    high |= w
                    wc = w | (_SPACES << np.uint64(8 * (e - p)))  # the unused bytes pass as spaces
                    ctl |= ((wc - _SPACES) & ~wc) | (wc + _ONES)
                    if field == 1:
                        h = _mix_tail(h, w)
                if (high | ctl) & _HIGH:
                    # non-ASCII: let upb validate the UTF-8; a control character: the order is
                    # invalid (names.py), which the str path decides
                    return FALLBACK
                if k < cap:
                    str_off[field - 1, k] = pos
                    str_len[field - 1, k] = ln
                    if field == 1:
                        keys[k] = _finish(h)
                counts[field - 1] = k + 1
                pos += ln
            elif field == ns + 1:
                if wt == 0 and pos >= stop:
                    return FALLBACK  # a truncated varint
                end = pos + ln if wt == 2 else stop
                while pos < end:
                    b = _byte(buf, pos)
                    if b < 0x80:
                        v = np.uint64(b)
                        pos += 1
                    else:
                        v, pos = _varint(buf, pos, end)
                        if pos < 0:
                            return FALLBACK
                    if k < cap:
                        side[k] = np.int64(np.int32(v & _TAG_MAX))
                    k += 1
                    if wt == 0:
                        break
                counts[ns] = k
            else:
                if wt == 1:
                    if pos + 8 > stop:
                        return FALLBACK
                    ln = np.int64(8)
                elif ln % 8:
                    return FALLBACK
                row = field - ns - 2
                m = ln // 8
                for i in range(min(m, cap - k)):
                    bits[row, k + i] = _word(buf, pos + 8 * i)
                counts[field - 1] = k + m
                pos += ln
        else:
            if ns + 3 < field <= known:
                return FALLBACK
            pos = _skip(buf, pos, stop, wt)
            if pos < 0:
                return FALLBACK
    return OK


@njit(cache=True, nogil=True)
def _parse(buf, seed, status, start, stop, ns, min_bytes, known):
    """_walk over buf[start:stop] into arrays sized by a first guess, again if a column is longer.

    Returns (status, counts, str_off[ns, n], str_len[ns, n], keys, enum, doubles 0, doubles 1) with
    n the longest string column; on FALLBACK the counts are zero.
    """
    counts = np.zeros(ns + 3, dtype=np.int64)
    cap = (stop - start) // min_bytes + 1
    while True:
        str_off = np.empty((ns, cap), dtype=np.int64)
        str_len = np.empty((ns, cap), dtype=np.int64)
        keys = np.empty(cap, dtype=np.int64)
        side = np.empty(cap, dtype=np.int64)
        num = np.empty((2, cap), dtype=np.float64)
        if status == OK:
            counts[:] = 0
            status = _walk(buf, start, stop, seed, counts, str_off, str_len, keys, side, num, known)
        if status != OK or counts.max() <= cap:
            break
        cap = counts.max()  # unequal columns longer than the guess: walk again with room
    if status != OK:
        counts[:] = 0
    n = counts[:ns].max()
    return (
        status, counts, str_off[:, :n], str_len[:, :n], keys[: counts[0]], side[: counts[ns]],
        num[0, : counts[ns + 1]], num[1, : counts[ns + 2]],
    )  # fmt: skip


@njit(cache=True, nogil=True)
def parse_check_orders(buf: np.ndarray, seed: np.uint64):
    """CheckOrdersRequest bytes -> (status, counts[6], str_off[3, n], str_len[3, n], keys, side, qty, px).

    counts are the per-column lengths (they may differ: the caller reports the mismatch); n is the
    longest string column, keys[i] the hash_span key of id i.
    """
    status, start, stop = _batch_span(buf)
    return _parse(buf, seed, status, start, stop, _ORDER_STRINGS, _MIN_ORDER_BYTES, _ORDER_KNOWN)


@njit(cache=True, nogil=True)
def parse_executions(buf: np.ndarray, seed: np.uint64):
    """ReportExecutionsRequest bytes -> (status, counts[4], id_off[1, n], id_len[1, n], keys, type,
    quantity, price): like parse_check_orders, for the top-level message. A request carrying one
    of EXECUTIONS_FALLBACK_FIELDS (the optional account, symbol, side columns) is FALLBACK."""
    return _parse(buf, seed, OK, 0, buf.shape[0], _EXECUTION_STRINGS, _MIN_EXECUTION_BYTES, _EXECUTION_KNOWN)


@njit(cache=True, nogil=True)
def parse_one(buf: bytes, seed: np.uint64):
    """A request (bytes, or a uint8 array) of exactly one ASCII order -> (OK, key, id span, account
    span, symbol span, side, quantity, price) as scalars (a span is offset, length); status MANY or
    FALLBACK otherwise.

    The single-order stream path: scalars, not seven arrays to box and index from Python, and the
    bytes themselves (a uint8 array view costs as much as the parse).
    """
    counts = np.zeros(_ORDER_STRINGS + 3, dtype=np.int64)
    str_off = np.zeros((_ORDER_STRINGS, 1), dtype=np.int64)
    str_len = np.zeros((_ORDER_STRINGS, 1), dtype=np.int64)
    keys = np.zeros(1, dtype=np.int64)
    side = np.zeros(1, dtype=np.int64)
    num = np.zeros((2, 1), dtype=np.float64)
    status, start, stop = _batch_span(buf)
    if status == OK:
        status = _walk(buf, start, stop, seed, counts, str_off, str_len, keys, side, num, 6)
    if status == OK and (counts != 1).any():
        status = MANY
    return (
        status, keys[0], str_off[0, 0], str_len[0, 0], str_off[1, 0], str_len[1, 0],
        str_off[2, 0], str_len[2, 0], side[0], num[0, 0], num[1, 0],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- names


@njit(cache=True, nogil=True)
def lookup_names(buf, off, length, n, table, arena, arena_off, count, seed, out) -> np.int64:
    """out[i] = id of the name at buf[off[i]:off[i]+length[i]], or -1; returns the -1 count.

    (table, arena, arena_off, count) is an interning.NameIndex. The table maps a name's key to its
    id; the id's bytes in the arena are compared before the id is used, so a key collision can only
    send a name to the slow path, never to another id. An id >= count is a miss (NameIndex).
    Each step runs over all names and prefetches what the next step reads (bucket, then the id's
    arena offset, then its bytes), so a batch waits for its cache misses in parallel, not one by
    one: 1,000 of 10,000 symbols with the tables out of cache 108 -> 28 us.
    """
    mask = table.shape[0] - 1
    offsets = arena_off.reshape((-1, 1))
    chars = arena.reshape((-1, 1))
    keys = np.empty(n, dtype=np.int64)
    for i in range(n):
        h = seed ^ (np.uint64(length[i]) * _P1)
        p = off[i]
        end = p + length[i]
        while p + 8 <= end:  # hash_span, inline
            h = _mix(h, _word(buf, p))
            p += 8
        if p < end:
            w = _U0
            for j in range(end - p):
                w |= np.uint64(buf[np.uint64(p + j)]) << np.uint64(8 * j)
            h = _mix_tail(h, w)
        keys[i] = _finish(h)
        prefetch(table, ht_bucket(keys[i], mask), 0)
    for i in range(n):
        key = keys[i]
        b = ht_bucket(key, mask)
        v = np.int64(-1)
        while table[b, 0] != EMPTY:
            if table[b, 0] == key:
                if table[b, 1] < count:
                    v = table[b, 1]
                    prefetch(offsets, v, 0)
                break
            b = (b + 1) & mask
        out[i] = v
    for i in range(n):
        if out[i] >= 0:
            prefetch(chars, arena_off[out[i]], 0)
    misses = 0
    for i in range(n):
        v = out[i]
        if v >= 0:
            a = arena_off[v]
            ln = length[i]
            if arena_off[v + 1] - a == ln:
                o = off[i]
                same = True
                for j in range(ln):
                    if arena[np.uint64(a + j)] != buf[np.uint64(o + j)]:
                        same = False
                        break
                if same:
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


# ---------------------------------------------------------------------------------------- replies


@njit(cache=True, nogil=True, inline="always")
def _varint_len(v: np.uint64) -> np.int64:
    n = 1
    while v >= np.uint64(0x80):
        v >>= np.uint64(7)
        n += 1
    return n


@njit(cache=True, nogil=True)
def _put_varint(out: np.ndarray, pos: np.int64, v: np.uint64) -> np.int64:
    while v >= np.uint64(0x80):
        out[pos] = np.uint8((v & np.uint64(0x7F)) | np.uint64(0x80))
        v >>= np.uint64(7)
        pos += 1
    out[pos] = np.uint8(v)
    return pos + 1


@njit(cache=True, nogil=True)
def _put_double(out: np.ndarray, pos: np.int64, tag: np.uint8, bits: np.uint64) -> np.int64:
    out[pos] = tag
    for j in range(8):
        out[pos + 1 + j] = np.uint8((bits >> np.uint64(8 * j)) & np.uint64(0xFF))
    return pos + 9


@njit(cache=True, nogil=True)
def encode_check_response(accepted, mask, order, check, limit_ids, observed, threshold, warning, version):
    """A CheckOrdersResponse (or CheckOrderStreamResponse: same fields) as upb serializes it.

    accepted bool[n], mask uint32[n]; violation columns order uint32, check int32, observed and
    threshold float64, warning bool, and limit_ids: the ids' UTF-8 joined with NULs (bytes; no id
    may hold a NUL). Proto3 rules: zero scalars and empty strings are left out, ``result`` always
    present, fields in number order, a negative enum is ten bytes. Returns uint8[size].
    """
    n = accepted.shape[0]
    nv = order.shape[0]
    obs = observed.view(np.uint64)
    thr = threshold.view(np.uint64)
    mask_bytes = 0
    for i in range(n):
        mask_bytes += _varint_len(np.uint64(mask[i]))
    body = np.empty(nv, dtype=np.int64)
    lid_at = np.empty(nv + 1, dtype=np.int64)  # id k is limit_ids[lid_at[k]:lid_at[k + 1] - 1]
    lid_at[0] = 0
    size = 0
    if n:
        size += 1 + _varint_len(np.uint64(n)) + n + 1 + _varint_len(np.uint64(mask_bytes)) + mask_bytes
    for k in range(nv):
        end = lid_at[k]
        while end < len(limit_ids) and limit_ids[end] != 0:
            end += 1
        lid_at[k + 1] = end + 1
        ln = end - lid_at[k]
        b = 0
        if order[k]:
            b += 1 + _varint_len(np.uint64(order[k]))
        if check[k]:
            b += 1 + _varint_len(np.uint64(np.int64(check[k])))
        if ln:
            b += 1 + _varint_len(np.uint64(ln)) + ln
        b += 9 * np.int64(obs[k] != _U0) + 9 * np.int64(thr[k] != _U0) + 2 * np.int64(warning[k])
        body[k] = b
        size += 1 + _varint_len(np.uint64(b)) + b
    if version:
        size += 1 + _varint_len(np.uint64(version))
    out = np.empty(1 + _varint_len(np.uint64(size)) + size, dtype=np.uint8)
    out[0] = 0x0A
    pos = _put_varint(out, 1, np.uint64(size))
    if n:
        out[pos] = 0x0A
        pos = _put_varint(out, pos + 1, np.uint64(n))
        for i in range(n):
            out[pos + i] = accepted[i]
        out[pos + n] = 0x12
        pos = _put_varint(out, pos + n + 1, np.uint64(mask_bytes))
        for i in range(n):
            v = np.uint64(mask[i])
            while v >= np.uint64(0x80):
                out[pos] = np.uint8((v & np.uint64(0x7F)) | np.uint64(0x80))
                v >>= np.uint64(7)
                pos += 1
            out[pos] = np.uint8(v)
            pos += 1
    for k in range(nv):
        out[pos] = 0x1A
        pos = _put_varint(out, pos + 1, np.uint64(body[k]))
        if order[k]:
            out[pos] = 0x08
            pos = _put_varint(out, pos + 1, np.uint64(order[k]))
        if check[k]:
            out[pos] = 0x10
            pos = _put_varint(out, pos + 1, np.uint64(np.int64(check[k])))
        a = lid_at[k]
        ln = lid_at[k + 1] - 1 - a
        if ln:
            out[pos] = 0x1A
            pos = _put_varint(out, pos + 1, np.uint64(ln))
            for j in range(ln):
                out[pos + j] = limit_ids[a + j]
            pos += ln
        if obs[k] != _U0:
            pos = _put_double(out, pos, np.uint8(0x21), obs[k])
        if thr[k] != _U0:
            pos = _put_double(out, pos, np.uint8(0x29), thr[k])
        if warning[k]:
            out[pos] = 0x30
            out[pos + 1] = 1
            pos += 2
    if version:
        out[pos] = 0x20
        pos = _put_varint(out, pos + 1, np.uint64(version))
    return out


@njit(cache=True, nogil=True)
def join_pieces(pieces: np.ndarray, bounds: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """pieces[bounds[c]:bounds[c + 1]] for each c in codes, concatenated (prepared reply fields)."""
    size = 0
    for c in codes:
        size += bounds[c + 1] - bounds[c]
    out = np.empty(size, dtype=np.uint8)
    pos = 0
    for c in codes:
        for j in range(bounds[c], bounds[c + 1]):
            out[pos] = pieces[j]
            pos += 1
    return out
