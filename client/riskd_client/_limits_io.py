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


_KIND_CACHE: dict[str, int] = {}


def record_fields(rec: Any, where: str) -> dict[str, Any]:
    """A JSON object (limit_to_record's shape) as pb.Limit keyword arguments; ValueError naming
    ``where`` and the field. effective_threshold is accepted and ignored (the server computes it)."""
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if not rec.keys() <= _FIELDS:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(set(rec) - _FIELDS))}")
    try:
        kind_name = rec["kind"]
        rec["threshold"]
        rec["limit_id"]
    except KeyError as exc:
        raise ValueError(f"{where}: {exc.args[0]}: required") from None
    kind = _KIND_CACHE.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        kind = parse_check(kind_name, f"{where}: kind")
        if isinstance(kind_name, str) and len(_KIND_CACHE) < 64:
            _KIND_CACHE[kind_name] = kind
    fields = dict(rec)
    fields.pop("effective_threshold", None)
    fields["kind"] = kind
    for name, value in fields.items():
        if name in _FLOATS:
            if type(value) is not float and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"{where}: {name}: expected a number, got {value!r}")
        elif name in _TEXT:
            if type(value) is not str:
                raise ValueError(f"{where}: {name}: expected a string, got {value!r}")
        elif name == "disabled" and not isinstance(value, bool):
            raise ValueError(f"{where}: disabled: expected true or false, got {value!r}")
    return fields


def record_to_limit(rec: Any, where: str) -> pb.Limit:
    """A JSON object as a Limit (record_fields' checks)."""
    return pb.Limit(**record_fields(rec, where))


def _nan_to_error(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


Item = tuple[int, "pb.Limit | dict[str, Any]"]  # (line number or 0, a Limit or its keyword arguments)


def read_jsonl(path: str | os.PathLike[str] | IO[str]) -> Iterator[Item]:
    """(line number, pb.Limit keyword arguments) per non-blank line; ValueError naming the file,
    line and field."""
    if isinstance(path, str | os.PathLike):
        name = str(path)
        with Path(path).open(encoding="utf-8") as f:
            yield from _lines(f, name)
    else:
        yield from _lines(path, getattr(path, "name", "<stream>"))


def _lines(f: IO[str], name: str) -> Iterator[Item]:
    decode = json.JSONDecoder(parse_constant=_nan_to_error).decode
    for number, line in enumerate(f, 1):
        try:
            rec = decode(line)
        except ValueError as exc:
            if not line.strip():
                continue
            raise ValueError(f"{name}: line {number}: not JSON: {exc}") from None
        yield number, record_fields(rec, f"{name}: line {number}")


def numbered(limits: Iterable[LimitSpec | Mapping[str, Any] | pb.Limit]) -> Iterator[Item]:
    """Limits given as values: numbered 0 (the server then names records by their position)."""
    for i, lim in enumerate(limits):
        yield 0, lim if isinstance(lim, pb.Limit) else encode_limit(lim, i)


def import_source(limits: Any) -> Iterator[Item]:
    """A JSON Lines path (str or Path) or open text file, else an iterable of limits."""
    if isinstance(limits, str | os.PathLike) or hasattr(limits, "readline"):
        return read_jsonl(limits)
    if isinstance(limits, LimitSpec | Mapping):
        limits = [limits]
    return numbered(limits)


def import_requests(
    items: Iterable[Item],
    *,
    dry_run: bool = False,
    replace: bool = False,
    max_changes: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
) -> Iterator[pb.ImportLimitsRequest]:
    """Chunks of at most chunk_size limits; a chunk holds consecutive lines only (so the server's
    first_line + index is the file's line). Options ride on the first chunk; an empty import is
    one empty chunk."""
    req = pb.ImportLimitsRequest(dry_run=dry_run, replace=replace, max_changes=max_changes)
    n = expected = 0
    sent = False
    add, append = req.limits.add, req.limits.append
    for line, msg in items:
        if n and (n >= chunk_size or (line and line != expected)):
            yield req
            sent, req = True, pb.ImportLimitsRequest()
            add, append, n = req.limits.add, req.limits.append, 0
        if not n:
            req.first_line = line
        if isinstance(msg, dict):
            add(**msg)
        else:
            append(msg)
        n += 1
        expected = line + 1 if line else 0
    if n or not sent:
        yield req


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
