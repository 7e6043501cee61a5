"""Where rows PostgreSQL refuses go: the dead_letter table, else a JSON-lines file, always the log.

A refused row must neither block every later write nor vanish. It is recorded in the
``dead_letter`` table (migration 003) with its error; when the database refuses that too, it is
appended to a JSON-lines file (rotated at ``max_bytes``, ``backups`` old files kept, so the file
cannot fill the disk). Every row is also logged at ERROR, which is the record of last resort when
the file cannot be written either.

Row values are made JSON-safe: timestamps become ISO 8601 strings, NaN and infinities the
strings "NaN", "Infinity", "-Infinity", and every string is ASCII-escaped (so a NUL or a lone
surrogate in a refused id survives into PostgreSQL json and into the file unchanged).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

log = logging.getLogger("riskd.store")

DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_BACKUPS = 3

_INSERT = (
    "INSERT INTO dead_letter (failed_at, table_name, action, row_data, sqlstate, error)"
    " VALUES (%s, %s, %s, %s::json, %s, %s)"
)


@dataclass(frozen=True, slots=True)
class DeadRow:
    """A row the database refused, with why."""

    table: str  # the table it was meant for
    action: str  # insert, update, upsert or delete
    row: dict[str, Any]  # column -> value, as the table names them
    sqlstate: str | None  # None: the refusal did not come with a SQLSTATE
    error: str
    failed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row_json(self) -> str:
        return json.dumps({k: _jsonable(v) for k, v in self.row.items()})

    def line(self, dead_letter_error: str) -> str:
        """One JSON line for the file: the row, its error, and why the table did not take it."""
        return json.dumps(
            {
                "failed_at": self.failed_at.isoformat(),
                "table": self.table,
                "action": self.action,
                "row": {k: _jsonable(v) for k, v in self.row.items()},
                "sqlstate": self.sqlstate,
                "error": _safe_text(self.error),
                "dead_letter_error": _safe_text(dead_letter_error),
            }
        )


async def insert(conn: AsyncConnection, rows: list[DeadRow]) -> None:
    """Record ``rows`` in the dead_letter table, all or none."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            _INSERT,
            [(r.failed_at, r.table, r.action, r.row_json(), r.sqlstate, _safe_text(r.error)) for r in rows],
        )


class DeadLetterFile:
    """Append-only JSON lines, fsynced, rotated at ``max_bytes`` (path.1 is the newest old file).

    Blocking I/O: call ``append`` from a worker thread.
    """

    def __init__(
        self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS
    ) -> None:
        if max_bytes < 1 or backups < 0:
            raise ValueError("max_bytes must be > 0 and backups >= 0")
        self.path = Path(path)
        self._max_bytes = max_bytes
        self._backups = backups

    def append(self, rows: list[DeadRow], dead_letter_error: str) -> None:
        data = "".join(r.line(dead_letter_error) + "\n" for r in rows).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            current = self.path.stat().st_size
        except FileNotFoundError:
            current = 0
        if current and current + len(data) > self._max_bytes:
            self._rotate()
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{self._backups}")
        if self._backups == 0 or oldest.exists():
            log.warning("dead-letter file full: dropping %s", oldest if self._backups else self.path)
        for i in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self._backups:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _safe_text(text: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates: escape them (messages can quote values)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
