"""Daily returns for ImportReturns: chunks from columns or a CSV file (streamed, constant memory),
demo data, and the risk model's reply decoded. Plain Python: the client needs no numpy.

CSV: a header naming ``symbol``, ``day`` and ``ret`` (any order, other columns refused); day as
YYYYMMDD or YYYY-MM-DD; ret a simple daily return (0.01 = +1 %). Rows are checked as the server
checks them, so a bad row is reported with its line before anything is sent past it (and the
server, which imports all or nothing, then imports none of the file).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from riskd.v1 import risk_pb2 as pb

from ._types import RiskModelInfo

CHUNK_ROWS = 10_000
FIELDS = ("symbol", "day", "ret")
MAX_NAME_LEN = 128
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class ReturnsFileError(ValueError):
    """A returns file that cannot be imported; the message names the file and line."""


# ---------------------------------------------------------------------------------------- chunks


def encode_chunk(chunk: Any) -> pb.ImportReturnsRequest:
    """One ImportReturnsRequest from a request, a mapping of columns (symbol, day, ret) or a
    (symbols, days, rets) triple."""
    if isinstance(chunk, pb.ImportReturnsRequest):
        return chunk
    if isinstance(chunk, Mapping):
        missing = [f for f in FIELDS if f not in chunk]
        if missing:
            raise ValueError(f"returns chunk: missing column(s) {', '.join(missing)}")
        symbol, day, ret = (chunk[f] for f in FIELDS)
    else:
        symbol, day, ret = chunk
    lengths = {len(symbol), len(day), len(ret)}
    if len(lengths) != 1:
        raise ValueError(f"returns chunk: columns of unequal length ({len(symbol)}, {len(day)}, {len(ret)})")
    return pb.ImportReturnsRequest(
        symbol=[str(s) for s in symbol], day=[int(d) for d in day], ret=[float(r) for r in ret]
    )


def is_path(source: Any) -> bool:
    return isinstance(source, str | os.PathLike)


def chunks_of(source: Any, chunk_rows: int = CHUNK_ROWS) -> Iterator[pb.ImportReturnsRequest]:
    """Requests from a CSV path or an iterable of chunks (see encode_chunk)."""
    if is_path(source):
        yield from read_csv_chunks(os.fspath(source), chunk_rows)
    else:
        for chunk in source:
            yield encode_chunk(chunk)


def parse_day(text: str) -> int:
    """YYYYMMDD or YYYY-MM-DD -> int YYYYMMDD, a real calendar date; ValueError otherwise."""
    text = text.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        text = text[:4] + text[5:7] + text[8:]
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"day {text!r} is not YYYYMMDD")
    day = int(text)
    y = day // 10000
    if not 1900 <= y <= 2999:
        raise ValueError(f"day {text!r} is outside 1900..2999")
    try:
        dt.date(y, day // 100 % 100, day % 100)
    except ValueError:
        raise ValueError(f"day {text!r} is not a calendar date") from None
    return day


def parse_ret(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"ret {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"ret {text.strip()!r} is not finite")
    if not -1.0 <= value <= 1000.0:
        raise ValueError(f"ret {value!r} is outside [-1, 1000] (a simple return, 0.01 = +1 %)")
    return value


def check_symbol(symbol: str) -> str:
    if not symbol:
        raise ValueError("symbol is empty")
    if len(symbol) > MAX_NAME_LEN:
        raise ValueError(f"symbol is longer than {MAX_NAME_LEN} characters")
    if _CONTROL.search(symbol):
        raise ValueError(f"symbol {symbol!r} holds a control character")
    return symbol


def read_csv_chunks(path: str, chunk_rows: int = CHUNK_ROWS) -> Iterator[pb.ImportReturnsRequest]:
    """Stream a returns CSV ("-" = stdin) as requests of chunk_rows rows; ReturnsFileError names
    the line of the first bad row. Holds one chunk at a time."""
    import sys

    if path == "-":
        yield from _csv_chunks(sys.stdin, "<stdin>", chunk_rows)
        return
    try:
        f = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below, also when abandoned
    except OSError as exc:
        raise ReturnsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        yield from _csv_chunks(f, path, chunk_rows)


def _csv_chunks(f: TextIO, name: str, chunk_rows: int) -> Iterator[pb.ImportReturnsRequest]:
    reader = csv.reader(f)
    header = [h.strip().lower() for h in next(reader, [])]
    if sorted(header) != sorted(FIELDS):
        raise ReturnsFileError(f"{name}: line 1: header must be symbol,day,ret (any order); got {header}")
    cs, cd, cr = (header.index(f) for f in FIELDS)
    symbols: list[str] = []
    days: list[int] = []
    rets: list[float] = []
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        line = reader.line_num
        if len(row) != 3:
            raise ReturnsFileError(f"{name}: line {line}: expected 3 fields, got {len(row)}")
        try:
            symbols.append(check_symbol(row[cs].strip()))
            days.append(parse_day(row[cd]))
            rets.append(parse_ret(row[cr]))
        except ValueError as exc:
            raise ReturnsFileError(f"{name}: line {line}: {exc}") from None
        if len(symbols) >= chunk_rows:
            yield pb.ImportReturnsRequest(symbol=symbols, day=days, ret=rets)
            symbols, days, rets = [], [], []
    if symbols:
        yield pb.ImportReturnsRequest(symbol=symbols, day=days, ret=rets)


# ---------------------------------------------------------------------------------------- demo data


def business_days(count: int, last: dt.date) -> list[int]:
    """The ``count`` weekdays up to ``last`` (inclusive) as YYYYMMDD, oldest first."""
    out: list[int] = []
    day = last
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day.year * 10000 + day.month * 100 + day.day)
        day -= dt.timedelta(days=1)
    return out[::-1]


def demo_rows(
    symbols: int, days: int, *, factors: int = 4, seed: int = 7, last: dt.date | None = None
) -> Iterator[tuple[str, int, float]]:
    """A realistic correlated returns set, one (symbol, day, ret) at a time (constant memory).

    Each symbol has a market beta (~1), loadings on a few sector/style factors and its own noise
    (about 1-3 % daily vol in all, average pairwise correlation about 0.25); factor returns are
    drawn per day, so symbols co-move like equities.
    Deterministic for a seed. Rows come day by day, symbol by symbol within a day.
    """
    rng = random.Random(seed)
    names = [f"SYM{i:0{max(4, len(str(symbols - 1)))}d}" for i in range(symbols)]
    vols = [0.01] + [0.006] * (factors - 1) if factors else []
    betas = [
        [rng.gauss(1.0, 0.3)] + [rng.gauss(0.0, 0.8) for _ in range(max(factors - 1, 0))] if factors else []
        for _ in range(symbols)
    ]
    noise = [rng.uniform(0.008, 0.02) for _ in range(symbols)]
    drift = [rng.gauss(0.0003, 0.0002) for _ in range(symbols)]
    last = last or dt.date.today() - dt.timedelta(days=1)
    for day in business_days(days, last):
        f = [rng.gauss(0.0, v) for v in vols]
        for i, name in enumerate(names):
            r = drift[i] + sum(b * x for b, x in zip(betas[i], f, strict=True)) + rng.gauss(0.0, noise[i])
            yield name, day, max(r, -0.95)


def write_demo_csv(out: TextIO, symbols: int, days: int, *, seed: int = 7) -> int:
    """Write demo_rows as a returns CSV; returns the rows written."""
    out.write("symbol,day,ret\n")
    n = 0
    lines: list[str] = []
    for name, day, ret in demo_rows(symbols, days, seed=seed):
        lines.append(f"{name},{day},{ret:.6g}\n")
        if len(lines) >= 10_000:
            out.write("".join(lines))
            n += len(lines)
            lines = []
    out.write("".join(lines))
    return n + len(lines)


# ---------------------------------------------------------------------------------------- model


def decode_model(response: pb.GetRiskModelResponse) -> RiskModelInfo:
    s = response.summary
    return RiskModelInfo(
        model_version=response.model_version,
        model=s.model,
        symbol_count=s.symbols,
        days=s.days,
        first_day=s.first_day,
        last_day=s.last_day,
        factors=s.factors,
        explained_variance=s.explained_variance,
        defaulted_symbols=tuple(s.defaulted_symbols),
        memory_bytes=s.memory_bytes,
        confidence=s.confidence,
        horizon_days=s.horizon_days,
        z=s.z,
        built_at=response.built_at.seconds + response.built_at.nanos / 1e9,
        symbols=tuple(response.symbols),
        volatility=tuple(response.volatility),
    )


def counted(
    requests: Iterable[pb.ImportReturnsRequest], tally: list[int]
) -> Iterator[pb.ImportReturnsRequest]:
    """Pass requests through, adding their rows to tally[0]."""
    for request in requests:
        tally[0] += len(request.symbol)
        yield request
