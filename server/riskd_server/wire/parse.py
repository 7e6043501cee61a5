"""riskd.v1 request bytes -> columns for the hot RPCs (CheckOrders, CheckOrderStream,
ReportExecutions), in numba; see the package doc for what falls back to protobuf.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._hash import _P1, _U0, _byte, _finish, _mix, _mix_tail, _word

OK = 0
FALLBACK = 1

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
