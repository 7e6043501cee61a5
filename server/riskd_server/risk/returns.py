"""ImportReturns chunks validated as whole columns (no Python step per row but the name checks'
one C-level pass), before any of them reaches PostgreSQL.

A chunk is three equal-length columns: symbol (a name as everywhere in riskd: 1..128 characters,
no control character), day (a real calendar date as YYYYMMDD, 1900-01-01..2999-12-31, the
returns table's CHECK) and ret (a simple daily return: finite, >= -1 since a price cannot fall
below zero, <= 1000 as the table's CHECK). Errors name the chunk, the field and the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..engine.names import bad_names
from ..limits import MAX_NAME_LEN

MAX_CHUNK_ROWS = 200_000  # rows per ImportReturns message (the client sends ~10,000)
MIN_DAY, MAX_DAY = 19000101, 29991231
MIN_RET, MAX_RET = -1.0, 1000.0
_SHOWN = 5  # problems listed per error (then "... and N more")
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


class ReturnsInputError(ValueError):
    """A chunk that cannot be imported; the message names chunk, field and row."""


@dataclass(frozen=True, slots=True)
class ReturnsChunk:
    """A validated chunk, ready for COPY."""

    symbol: np.ndarray  # object[n] of str
    day: np.ndarray  # int64[n]
    ret: np.ndarray  # float64[n]

    def __len__(self) -> int:
        return int(self.day.shape[0])


def valid_days(day: np.ndarray) -> np.ndarray:
    """bool per YYYYMMDD: a real calendar date within MIN_DAY..MAX_DAY (leap years included)."""
    day = np.asarray(day, dtype=np.int64)
    y, m, d = day // 10000, day // 100 % 100, day % 100
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_len = _MONTH_DAYS[np.clip(m, 0, 12)] + ((m == 2) & leap)
    return (day >= MIN_DAY) & (day <= MAX_DAY) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= month_len)


def validate_chunk(
    symbol: Sequence[str], day: Sequence[int], ret: Sequence[float], chunk: int, first_row: int = 0
) -> ReturnsChunk:
    """The chunk as arrays, or ReturnsInputError naming ``chunk[i].field[row]`` (and the row's
    position in the whole stream, ``first_row`` + row) for up to a few problems."""
    where = f"chunk[{chunk}]"
    n = len(symbol)
    if len(day) != n or len(ret) != n:
        raise ReturnsInputError(
            f"{where}: columns of unequal length (symbol {n}, day {len(day)}, ret {len(ret)})"
        )
    if n > MAX_CHUNK_ROWS:
        raise ReturnsInputError(f"{where}: {n} rows, at most {MAX_CHUNK_ROWS} per message")
    symbols = np.empty(n, dtype=object)
    symbols[:] = list(symbol)
    days = np.asarray(day, dtype=np.int64)
    rets = np.asarray(ret, dtype=np.float64)
    problems: list[tuple[int, str]] = []
    bad = np.flatnonzero(bad_names(symbols)) if n else np.zeros(0, dtype=np.int64)
    for i in bad[:_SHOWN]:
        problems.append((int(i), f"symbol[{i}]: {_name_problem(symbols[i])}"))
    count = bad.shape[0]
    bad = np.flatnonzero(~valid_days(days))
    for i in bad[:_SHOWN]:
        problems.append((int(i), f"day[{i}]: {int(days[i])} is not a date YYYYMMDD in {MIN_DAY}..{MAX_DAY}"))
    count += bad.shape[0]
    finite = np.isfinite(rets)
    bad = np.flatnonzero(~finite | (rets < MIN_RET) | (rets > MAX_RET))
    for i in bad[:_SHOWN]:
        why = "is not finite" if not finite[i] else f"is outside [{MIN_RET:g}, {MAX_RET:g}]"
        problems.append((int(i), f"ret[{i}]: {float(rets[i])!r} {why}"))
    count += bad.shape[0]
    if problems:
        problems.sort()
        shown = problems[:_SHOWN]
        text = "; ".join(f"{where}.{p} (row {first_row + i} of the stream)" for i, p in shown)
        more = count - len(shown)
        raise ReturnsInputError(text + (f"; ... and {more} more" if more > 0 else ""))
    return ReturnsChunk(symbols, days, rets)


def _name_problem(name: str) -> str:
    if not name:
        return "empty"
    if len(name) > MAX_NAME_LEN:
        return f"longer than {MAX_NAME_LEN} characters"
    return f"{name!r} holds a control character (U+0000-U+001F, U+007F-U+009F)"
