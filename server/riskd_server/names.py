"""What makes an id, account or symbol name valid beyond its length: no control characters.

A name holding a Unicode control character (category Cc: U+0000-U+001F, U+007F-U+009F) is
invalid everywhere: an order naming one is INVALID_ORDER, an admin request INVALID_ARGUMENT.
PostgreSQL text cannot hold NUL, so such a name could not come back from the database as it was
sent; rejecting the whole category keeps every stored name byte-exact across a restart (README,
"Check semantics"). The raw-bytes parser (kernel.wire) hands requests holding one to this path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# Unicode category Cc: C0 controls, DEL, C1 controls.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")
_ASCII_CONTROLS = bytes(range(0x20)) + b"\x7f"  # the Cc characters an ASCII string can hold


def has_control(name: str) -> bool:
    """Whether name holds a Unicode control character (category Cc)."""
    return CONTROL_CHARS.search(name) is not None


def control_flags(names: Sequence[str] | np.ndarray) -> np.ndarray | None:
    """bool per name: holds a control character; None when none does (the common case costs one
    join and one regex scan in C, no Python step per name)."""
    if not len(names):
        return None
    joined = "".join(names)
    if joined.isascii():  # the common case: bytes.translate is ~7x faster than the regex scan
        raw = joined.encode("ascii")
        if len(raw.translate(None, _ASCII_CONTROLS)) == len(raw):
            return None
    elif CONTROL_CHARS.search(joined) is None:
        return None
    return np.fromiter(map(has_control, names), dtype=bool, count=len(names))
