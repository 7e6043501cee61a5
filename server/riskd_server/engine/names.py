"""Ids and names as the engine keys and validates them: order-table keys of client_order_ids and
why a name is refused."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import wire
from ..interning import Interner
from ..limits import MAX_NAME_LEN
from ..names import control_flags, has_control


def hash_ids(ids: Sequence[str]) -> np.ndarray:
    """64-bit keys of client_order_ids: wire.hash_span of their UTF-8 bytes (never EMPTY).

    The same function keys the ids CheckOrders parses from wire bytes, so every path (strs,
    wire bytes, recovery) finds the same order.
    """
    return wire.hash_strs(ids)


def hash_id(client_order_id: str) -> int:
    """hash_ids for one id."""
    return wire.hash_bytes(client_order_id.encode("utf-8", "surrogatepass"))


def bad_names(names: Sequence[str] | np.ndarray) -> np.ndarray:
    """Invalid ids: empty, longer than MAX_NAME_LEN or holding a control character (names.py)."""
    lengths = np.fromiter(map(len, names), dtype=np.int64, count=len(names))
    bad = (lengths == 0) | (lengths > MAX_NAME_LEN)
    control = control_flags(names)
    return bad if control is None else bad | control


def name_problem(name: str, interner: Interner) -> str:
    """Why interner.intern(name) gave -1, for a BatchError."""
    if not name or len(name) > MAX_NAME_LEN:
        return f"invalid name {name!r}: must be 1..{MAX_NAME_LEN} characters"
    if has_control(name):
        return f"invalid name {name!r}: holds a control character (U+0000-U+001F, U+007F-U+009F)"
    return f"{interner.kind} capacity {interner.capacity} reached"
