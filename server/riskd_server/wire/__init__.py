"""riskd.v1 wire bytes <-> columns for the hot RPCs, and the 64-bit key of a name's UTF-8 bytes.

Modules: ``_hash`` (keys), ``spans`` (strs as UTF-8 spans), ``parse`` (the numba request parser),
``request`` (bytes -> the parsed input the engine checks, protobuf as fallback), ``names`` (the
interners' byte index), ``reply`` (numba reply encoders) and ``encode`` (engine outcomes -> replies).

The CheckOrders, CheckOrderStream and ReportExecutions handlers receive serialized requests and
parse them here instead of building protobuf messages (whose repeated strings become one Python str
per access): ids, accounts and symbols stay (offset, length) spans into the request buffer, ids are
hashed to their order-table key while parsed and names are looked up in a byte-verified numba index
beside each Interner. A one-order request (a stream message) parses to scalars (``parse_one``).
Replies are encoded here too (``encode``, ``reply``).

Anything the parser does not handle exactly like upb (a non-ASCII string, which upb must
UTF-8-validate; a string holding a control character, which makes its order invalid (names.py)
and is rare enough to leave to the str path; a repeated top-level ``orders`` field, which protobuf merges; groups, a bad field
number, a truncated or overlong field) makes it return ``FALLBACK``: ``request`` then parses the
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

from ._hash import SEED, hash_bytes, hash_span, hash_spans
from .names import insert_names, lookup_names
from .parse import (
    CHECK_ORDERS_FIELDS,
    EXECUTIONS_FALLBACK_FIELDS,
    EXECUTIONS_FIELDS,
    FALLBACK,
    MANY,
    OK,
    ORDER_BATCH_FIELDS,
    WT_I64,
    WT_LEN,
    WT_VARINT,
    parse_check_orders,
    parse_executions,
    parse_one,
)
from .reply import encode_check_response, join_pieces
from .spans import Utf8Spans, hash_strs, utf8_spans

__all__ = [
    "CHECK_ORDERS_FIELDS",
    "EXECUTIONS_FALLBACK_FIELDS",
    "EXECUTIONS_FIELDS",
    "FALLBACK",
    "MANY",
    "OK",
    "ORDER_BATCH_FIELDS",
    "SEED",
    "WT_I64",
    "WT_LEN",
    "WT_VARINT",
    "Utf8Spans",
    "encode_check_response",
    "hash_bytes",
    "hash_span",
    "hash_spans",
    "hash_strs",
    "insert_names",
    "join_pieces",
    "lookup_names",
    "parse_check_orders",
    "parse_executions",
    "parse_one",
    "utf8_spans",
]
