"""The `riskd` command's input: order tokens on the command line, CSV and JSON files (cli.py)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _columns as col


class UsageError(Exception):
    """Bad input found after argparse (a malformed order, an unreadable file): exit code 2."""


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_records(path: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Rows from a CSV file with a header or a JSON list of objects / object of columns ("-" = stdin)."""
    text = _read_text(path)
    is_json = path.lower().endswith(".json") or (path == "-" and text.lstrip()[:1] in ("[", "{"))
    if is_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: invalid JSON: {exc}") from None
        if isinstance(data, dict):
            if not all(isinstance(v, list) for v in data.values()):
                raise UsageError(f"{path}: an object of columns needs a list per column")
            lengths = {k: len(v) for k, v in data.items()}
            if len(set(lengths.values())) > 1:
                raise UsageError(f"{path}: columns have different lengths {lengths}")
            n = next(iter(lengths.values()), 0)
            data = [{k: v[i] for k, v in data.items()} for i in range(n)]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise UsageError(f"{path}: expected a list of objects or an object of columns")
        rows = data
    else:
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in reader.fieldnames or ()]
        unknown = [h for h in header if h not in fields]
        if unknown or not header:
            raise UsageError(f"{path}: CSV header must name columns from {', '.join(fields)}; got {header}")
        reader.fieldnames = header
        rows = [{k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""} for row in reader]
    for i, row in enumerate(rows):
        unknown = [k for k in row if k not in fields]
        if unknown:
            raise UsageError(f"{path}: record {i}: unknown field(s) {unknown}; expected {', '.join(fields)}")
    return rows


def parse_number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what}: {value!r} is not a number") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_side(token: str) -> bool:
    return token.upper() in ("BUY", "SELL")


def parse_order_args(tokens: Sequence[str]) -> list[dict[str, Any]]:
    """ID ACCOUNT SYMBOL SIDE QTY [PRICE], repeated.

    PRICE is optional, so a numeric token after QTY is taken as a price unless that would leave the
    next order without BUY/SELL in its side position. Use --file for anything less regular.
    """
    orders: list[dict[str, Any]] = []
    i, n = 0, len(tokens)
    while i < n:
        if n - i < 5:
            raise UsageError(
                f"order {len(orders) + 1}: expected ID ACCOUNT SYMBOL BUY|SELL QTY [PRICE], got {list(tokens[i:])}"
            )
        oid, account, symbol, side, qty = tokens[i : i + 5]
        if not _is_side(side):
            raise UsageError(f"order {oid}: side must be BUY or SELL, got {side!r}")
        order: dict[str, Any] = {
            "client_order_id": oid,
            "account": account,
            "symbol": symbol,
            "side": side,
            "quantity": parse_number(qty, f"order {oid} quantity"),
        }
        i += 5
        orders.append(order)
        if i == n:
            break
        # Either tokens[i] is this order's PRICE (then the next order's side is at i + 4) or it is
        # the next order's ID (side at i + 3).
        priced = _is_number(tokens[i]) and (i + 1 == n or (i + 4 < n and _is_side(tokens[i + 4])))
        unpriced = i + 3 < n and _is_side(tokens[i + 3])
        if priced == unpriced:
            problem = "ambiguous" if priced else "cannot parse"
            raise UsageError(
                f"after order {oid}: {problem} {list(tokens[i : i + 6])} as [PRICE] ID ACCOUNT SYMBOL "
                "BUY|SELL QTY; use --file"
            )
        if priced:
            order["price"] = float(tokens[i])
            i += 1
    return orders


def orders_from_records(records: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    orders = []
    for i, rec in enumerate(records):
        missing = [f for f in col.ORDER_FIELDS[:5] if f not in rec]
        if missing:
            raise UsageError(f"{source}: order {i}: missing {', '.join(missing)}")
        order = {
            **rec,
            "client_order_id": str(rec["client_order_id"]),
            "quantity": parse_number(rec["quantity"], f"{source}: order {i} quantity"),
        }
        if "price" in rec:
            order["price"] = parse_number(rec["price"], f"{source}: order {i} price")
        orders.append(order)
    return orders
