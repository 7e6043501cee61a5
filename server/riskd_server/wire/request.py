"""Request bytes -> the parsed input the engine checks: the raw-bytes fast path, with protobuf as
the fallback for anything the numba parser leaves to it (which raises DecodeError on bad bytes).

A request becomes one of three values, so the engine never sees bytes it must hand back:

* ``OneOrder``: exactly one ASCII order (a stream message), parsed to scalars and spans;
* ``SpanOrders``: an ASCII batch as columns whose strings are spans of the request;
* ``StrOrders``: protobuf's decoding (non-ASCII names, a repeated ``orders`` field, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from riskd.v1 import risk_pb2 as pb

from ._hash import SEED
from .parse import FALLBACK, OK, parse_check_orders, parse_executions, parse_one
from .spans import Utf8Spans

# Batches up to this size pass protobuf's repeated fields through (see decode_batch).
SMALL_BATCH = 8
# The one-order parser is tried on requests up to this size (one order with three 128-character
# names is ~420 bytes).
ONE_ORDER_BYTES = 512


class OneOrder:
    """One ASCII order: the request and parse_one's tuple ``fields`` (status OK, id key, (offset,
    length) spans of id, account and symbol in ``data``, side, quantity, price).

    The tuple is passed to the check kernel whole: numba types a plain tuple of scalars in C, where
    eleven separate arguments or a NamedTuple cost more (measured ~1.5 us on the one-order path).
    """

    __slots__ = ("data", "fields")

    def __init__(self, data: bytes, fields: tuple) -> None:
        self.data = data
        self.fields = fields

    @property
    def key(self) -> int:
        return self.fields[1]

    @property
    def side(self) -> int:
        return self.fields[8]

    @property
    def quantity(self) -> float:
        return self.fields[9]

    @property
    def price(self) -> float:
        return self.fields[10]


@dataclass(frozen=True, slots=True)
class SpanOrders:
    """An ASCII batch: per-column counts (they may differ; the engine reports it), string spans
    ``off[c]``/``length[c]`` for id (0), account (1) and symbol (2), id keys and numeric columns."""

    data: bytes
    buf: np.ndarray
    counts: list[int]
    off: np.ndarray
    length: np.ndarray
    keys: np.ndarray
    side: np.ndarray
    quantity: np.ndarray
    price: np.ndarray


@dataclass(frozen=True, slots=True)
class StrOrders:
    """A batch protobuf decoded: Engine.check_orders' columns (see decode_batch)."""

    columns: tuple


Orders = OneOrder | SpanOrders | StrOrders


def decode_batch(batch: pb.OrderBatch) -> tuple:
    """OrderBatch -> check_orders columns.

    Each access to a protobuf repeated string builds a new str (UTF-8 decode, no cached hash), and
    the engine reads the id, account and symbol columns more than once: materialising them as lists
    once cost 35 us per 1,000 strings and made the later dict lookups and hashes ~2.5x cheaper
    (measured: 370 -> 230 us per 1,000-order batch). Numeric columns go through numpy's buffer
    path. Tiny batches skip both (the conversions cost more than they save there).
    """
    if len(batch.client_order_id) <= SMALL_BATCH:
        return batch.client_order_id, batch.account, batch.symbol, batch.side, batch.quantity, batch.price
    return (
        list(batch.client_order_id),
        list(batch.account),
        list(batch.symbol),
        np.asarray(batch.side, dtype=np.int64),
        np.asarray(batch.quantity, dtype=np.float64),
        np.asarray(batch.price, dtype=np.float64),
    )


def parse_check_request(data: bytes) -> Orders:
    """A serialized CheckOrdersRequest (or CheckOrderStreamRequest: same layout) -> parsed orders.

    Raises protobuf's DecodeError for bytes neither parser accepts.
    """
    if len(data) <= ONE_ORDER_BYTES:
        parsed = parse_one(data, SEED)
        status = parsed[0]
        if status == OK:
            return OneOrder(data, parsed)
        if status == FALLBACK:
            return StrOrders(decode_batch(pb.CheckOrdersRequest.FromString(data).orders))
    buf = np.frombuffer(data, dtype=np.uint8)
    status, counts, off, length, keys, side, quantity, price = parse_check_orders(buf, SEED)
    if status != OK:
        return StrOrders(decode_batch(pb.CheckOrdersRequest.FromString(data).orders))
    return SpanOrders(data, buf, counts.tolist(), off, length, keys, side, quantity, price)


def one_order_strs(order: OneOrder) -> tuple[str, str, str]:
    """(client_order_id, account, symbol) of a OneOrder (ASCII: one decode, then slices)."""
    text = order.data.decode("latin-1")
    _, _, io, il, ao, al, so, sl, _, _, _ = order.fields
    return text[io : io + il], text[ao : ao + al], text[so : so + sl]


@dataclass(frozen=True, slots=True)
class Reports:
    """Engine.report_executions' columns (account, symbol, side empty when not given)."""

    client_order_id: Sequence[str]
    type: Sequence[int] | np.ndarray
    quantity: Sequence[float] | np.ndarray
    price: Sequence[float] | np.ndarray
    account: Sequence[str] = ()
    symbol: Sequence[str] = ()
    side: Sequence[int] | np.ndarray = ()


def reports_from_pb(request: pb.ReportExecutionsRequest) -> Reports:
    ids: Sequence[str] = request.client_order_id
    # One list of strs, read by the hash and (with a store) again by the write-behind record.
    ids = list(ids) if len(ids) > SMALL_BATCH else ids
    return Reports(
        ids, request.type, request.quantity, request.price, request.account, request.symbol, request.side
    )


def parse_report_request(data: bytes) -> Reports:
    """A serialized ReportExecutionsRequest -> columns: parsed in numba, the ids passed as spans of
    the request with their keys (no protobuf message, no Python strs unless a sink records them); a
    request the parser hands back goes through protobuf (may raise DecodeError), as does one with
    the optional account, symbol and side columns (wire.parse)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    status, _, off, length, keys, types, quantity, price = parse_executions(buf, SEED)
    if status != OK:
        return reports_from_pb(pb.ReportExecutionsRequest.FromString(data))
    ids = cast(Sequence[str], Utf8Spans(data, off[0], length[0], keys))  # a lazy sequence of strs
    return Reports(ids, types, quantity, price)
