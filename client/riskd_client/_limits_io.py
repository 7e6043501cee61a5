"""Limits as JSON Lines, import chunks and the decoding of diffs, templates and versions.

Shared by RiskClient, AsyncRiskClient and the CLI. A JSON Lines file holds one limit per line
(``limit_to_record``); blank lines are skipped but counted, so a line number the server reports
is the file's. Everything here streams: one line or one chunk at a time.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from riskd.v1 import risk_pb2 as pb

from ._columns import check_name, decode_limit, encode_limit, parse_check
from ._types import (
    LimitChangeInfo,
    LimitDiffInfo,
    LimitSpec,
    LimitVersionInfo,
    TemplateInfo,
)

DEFAULT_CHUNK = 10_000
_TEXT = ("limit_id", "account", "symbol", "description", "template")
_FLOATS = ("threshold", "warn_fraction", "reference_volatility", "min_scale")
_FIELDS = frozenset({*_TEXT, *_FLOATS, "kind", "disabled", "effective_threshold"})
_OPTIONAL_DEFAULTS = (
    ("warn_fraction", 0.0),
    ("disabled", False),
    ("description", ""),
    ("template", ""),
    ("reference_volatility", 0.0),
    ("min_scale", 0.0),
)


def limit_to_record(msg: pb.Limit) -> dict[str, Any]:
    """One limit as a JSON object: kind by name; optional fields only when set."""
    rec: dict[str, Any] = {
        "limit_id": msg.limit_id,
        "kind": check_name(msg.kind),
        "account": msg.account,
        "symbol": msg.symbol,
        "threshold": msg.threshold,
    }
    for name, default in _OPTIONAL_DEFAULTS:
        value = getattr(msg, name)
        if value != default:
            rec[name] = value
    return rec


def record_to_limit(rec: Any, where: str) -> pb.Limit:
    """A JSON object (limit_to_record's shape) as a Limit; ValueError naming ``where`` and the field.

    effective_threshold is accepted and ignored (the server computes it)."""
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    unknown = sorted(set(rec) - _FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for name in ("limit_id", "kind", "threshold"):
        if name not in rec:
            raise ValueError(f"{where}: {name}: required")
    msg = pb.Limit()
    for name in _TEXT:
        if name in rec:
            if not isinstance(rec[name], str):
                raise ValueError(f"{where}: {name}: expected a string, got {rec[name]!r}")
            setattr(msg, name, rec[name])
    for name in _FLOATS:
        if name in rec:
            value = rec[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}: {name}: expected a number, got {value!r}")
            setattr(msg, name, float(value))
    if "disabled" in rec:
        if not isinstance(rec["disabled"], bool):
            raise ValueError(f"{where}: disabled: expected true or false, got {rec['disabled']!r}")
        msg.disabled = rec["disabled"]
    msg.kind = parse_check(rec["kind"], f"{where}: kind")  # type: ignore[assignment]
    return msg


def _nan_to_error(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


def read_jsonl(path: str | os.PathLike[str] | IO[str]) -> Iterator[tuple[int, pb.Limit]]:
    """(line number, Limit) per non-blank line; ValueError naming the file, line and field."""
    if isinstance(path, str | os.PathLike):
        name = str(path)
        with Path(path).open(encoding="utf-8") as f:
            yield from _lines(f, name)
    else:
        yield from _lines(path, getattr(path, "name", "<stream>"))


def _lines(f: IO[str], name: str) -> Iterator[tuple[int, pb.Limit]]:
    for number, line in enumerate(f, 1):
        if not line.strip():
            continue
        where = f"{name}: line {number}"
        try:
            rec = json.loads(line, parse_constant=_nan_to_error)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON: {exc}") from None
        yield number, record_to_limit(rec, where)


def numbered(limits: Iterable[LimitSpec | Mapping[str, Any] | pb.Limit]) -> Iterator[tuple[int, pb.Limit]]:
    """Limits given as values: numbered 0 (the server then names records by their position)."""
    for i, lim in enumerate(limits):
        yield 0, lim if isinstance(lim, pb.Limit) else encode_limit(lim, i)


def import_source(limits: Any) -> Iterator[tuple[int, pb.Limit]]:
    """A JSON Lines path (str or Path) or open text file, else an iterable of limits."""
    if isinstance(limits, str | os.PathLike) or hasattr(limits, "readline"):
        return read_jsonl(limits)
    if isinstance(limits, LimitSpec | Mapping):
        limits = [limits]
    return numbered(limits)


def import_requests(
    items: Iterable[tuple[int, pb.Limit]],
    *,
    dry_run: bool = False,
    replace: bool = False,
    max_changes: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
) -> Iterator[pb.ImportLimitsRequest]:
    """Chunks of at most chunk_size limits; a chunk holds consecutive lines only (so the server's
    first_line + index is the file's line). Options ride on the first chunk; an empty import is
    one empty chunk."""
    chunk: list[pb.Limit] = []
    first = expected = 0
    sent = False

    def request() -> pb.ImportLimitsRequest:
        req = pb.ImportLimitsRequest(limits=chunk, first_line=first)
        if not sent:
            req.dry_run, req.replace, req.max_changes = dry_run, replace, max_changes
        return req

    for line, msg in items:
        if chunk and (len(chunk) >= chunk_size or (line and line != expected)):
            yield request()
            sent, chunk = True, []
        if not chunk:
            first = line
        chunk.append(msg)
        expected = line + 1 if line else 0
    if chunk or not sent:
        yield request()


def write_jsonl(responses: Iterable[pb.ExportLimitsResponse], out: IO[str]) -> int:
    """Write every limit of an export as one JSON line; returns the count."""
    n = 0
    dumps = json.dumps
    for resp in responses:
        out.write("".join(dumps(limit_to_record(m), ensure_ascii=False) + "\n" for m in resp.limits))
        n += len(resp.limits)
    return n


# ---------------------------------------------------------------------------------------- decoding


def decode_diff(msg: pb.LimitDiff) -> LimitDiffInfo:
    return LimitDiffInfo(
        added=msg.added,
        changed=msg.changed,
        deleted=msg.deleted,
        unchanged=msg.unchanged,
        changes=tuple(
            LimitChangeInfo(
                c.limit_id,
                decode_limit(c.old) if c.HasField("old") else None,
                decode_limit(c.new) if c.HasField("new") else None,
            )
            for c in msg.changes
        ),
        omitted=msg.changes_omitted,
    )


def decode_template(msg: pb.LimitTemplate) -> TemplateInfo:
    return TemplateInfo(msg.name, msg.description, tuple(decode_limit(m) for m in msg.limits), msg.source)


def decode_version(msg: pb.LimitVersion) -> LimitVersionInfo:
    return LimitVersionInfo(
        decode_limit(msg.limit) if msg.HasField("limit") else None,
        msg.limits_version,
        msg.who,
        msg.time.seconds + msg.time.nanos / 1e9,
        msg.action,
    )


def export_request(
    account: str = "",
    symbol: str = "",
    kind: str | int | None = None,
    template: str = "",
    chunk_size: int = 0,
) -> pb.ExportLimitsRequest:
    return pb.ExportLimitsRequest(
        filter=pb.ListLimitsRequest(
            account=account,
            symbol=symbol,
            kind=parse_check(kind) if kind is not None else 0,  # type: ignore[arg-type]
            template=template,
        ),
        chunk_size=chunk_size,
    )


def valid_scale(scale: float) -> float:
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale: must be finite and > 0, got {scale}")
    return scale
