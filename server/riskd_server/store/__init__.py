"""PostgreSQL persistence: schema migrations, the start-up snapshot and the write-behind sink."""

from __future__ import annotations

from ._store import Store
from ._writebehind import WriteBehind, WriteBehindStats

__all__ = ["Store", "WriteBehind", "WriteBehindStats"]
