"""Limit templates: named sets of per-account limits, expanded for one account with a scale factor.

Three are built in (``conservative``, ``standard``, ``aggressive``); more come from the TOML
``templates_file``, read once at start-up and kept (``TemplateSet`` is immutable). Every limit of
every template is validated at load exactly as an upsert would validate it, so a typo fails the
start naming the file, the template and the field, not the first ApplyTemplate weeks later.
Pure: no I/O beyond reading the file.

File format::

    [templates.desk]
    description = "prop desk"
    [[templates.desk.limits]]
    id = "qty"                      # limit_id suffix: ACCOUNT:desk:qty
    kind = "max-order-quantity"     # a RiskCheck name, any case, - or _
    threshold = 500
    warn_fraction = 0.8             # optional; also symbol, disabled, description
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .limits import (
    KIND_NAMES,
    MAX_GROSS_EXPOSURE,
    MAX_NET_EXPOSURE,
    MAX_OPEN_ORDERS,
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_QUANTITY,
    MAX_ORDER_RATE,
    MAX_POSITION,
    PRICE_COLLAR,
    Limit,
    limit_errors,
)

BUILTIN = "builtin"
# Stands in for the account while a template is validated at load (any valid name would do).
_PROBE_ACCOUNT = "account"
_LIMIT_KEYS = frozenset({"id", "kind", "threshold", "warn_fraction", "symbol", "disabled", "description"})
_KINDS = {name.lower().replace("_", "-"): kind for kind, name in KIND_NAMES.items()}


class TemplateError(ValueError):
    """Every problem found in a templates file, reported together."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Template:
    """A named template; its limits have an empty account and a limit_id that is only a suffix."""

    name: str
    description: str
    limits: tuple[Limit, ...]
    source: str = BUILTIN  # "builtin" or the file it came from

    def expand(self, account: str, scale: float = 1.0) -> list[Limit]:
        """The limits for ``account``: limit_id ACCOUNT:TEMPLATE:SUFFIX (deterministic, so applying
        a template again upserts the same ids), thresholds times ``scale``, ``template`` set."""
        return [
            replace(
                lim,
                limit_id=limit_id(account, self.name, lim.limit_id),
                account=account,
                threshold=lim.threshold * scale,
                template=self.name,
            )
            for lim in self.limits
        ]


def limit_id(account: str, template: str, suffix: str) -> str:
    return f"{account}:{template}:{suffix}"


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """The templates a server knows, by name (built-ins, overridden by the file's of the same name)."""

    templates: Mapping[str, Template]

    def get(self, name: str) -> Template | None:
        return self.templates.get(name)

    def sorted(self) -> list[Template]:
        return [self.templates[name] for name in sorted(self.templates)]


def _builtin(name: str, description: str, values: Mapping[str, tuple[int, float]]) -> Template:
    limits = tuple(
        Limit(limit_id=suffix, kind=kind, threshold=threshold, warn_fraction=0.8)
        for suffix, (kind, threshold) in values.items()
    )
    return Template(name, description, limits)


def _levels(qty: float, notional: float, pos: float, gross: float, net: float, collar: float, rate: float,
            open_: float) -> dict[str, tuple[int, float]]:  # fmt: skip
    return {
        "max-order-quantity": (MAX_ORDER_QUANTITY, qty),
        "max-order-notional": (MAX_ORDER_NOTIONAL, notional),
        "max-position": (MAX_POSITION, pos),
        "max-gross-exposure": (MAX_GROSS_EXPOSURE, gross),
        "max-net-exposure": (MAX_NET_EXPOSURE, net),
        "price-collar": (PRICE_COLLAR, collar),
        "max-order-rate": (MAX_ORDER_RATE, rate),
        "max-open-orders": (MAX_OPEN_ORDERS, open_),
    }


BUILTINS: dict[str, Template] = {
    t.name: t
    for t in (
        _builtin(
            "conservative",
            "new or small accounts: 1,000 per order, 1 M gross, 10 orders/s, 5 % price collar",
            _levels(1_000, 100_000, 5_000, 1_000_000, 500_000, 0.05, 10, 50),
        ),
        _builtin(
            "standard",
            "established accounts: 10,000 per order, 10 M gross, 50 orders/s, 10 % price collar",
            _levels(10_000, 1_000_000, 50_000, 10_000_000, 5_000_000, 0.10, 50, 200),
        ),
        _builtin(
            "aggressive",
            "market makers: 100,000 per order, 100 M gross, 200 orders/s, 20 % price collar",
            _levels(100_000, 10_000_000, 500_000, 100_000_000, 50_000_000, 0.20, 200, 1_000),
        ),
    )
}


def load_templates(path: str | Path | None) -> TemplateSet:
    """The built-ins plus the file's templates (none when ``path`` is empty); TemplateError names
    the file, the template and the field of every problem."""
    templates = dict(BUILTINS)
    if not path:
        return TemplateSet(templates)
    where = f"templates_file {path}"
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError([f"{where}: {exc}"]) from None
    errors: list[str] = [
        f"{where}: unknown key {key!r} (expected [templates.NAME])" for key in doc if key != "templates"
    ]
    table = doc.get("templates", {})
    if not isinstance(table, dict):
        raise TemplateError([*errors, f"{where}: templates: expected a table of templates"])
    for name, body in table.items():
        template, problems = _parse_template(name, body, str(path))
        errors.extend(f"{where}: template {name!r}: {p}" for p in problems)
        if template is not None and not problems:
            templates[name] = template
    if errors:
        raise TemplateError(errors)
    return TemplateSet(templates)


def _parse_template(name: str, body: Any, source: str) -> tuple[Template | None, list[str]]:
    if not isinstance(body, dict):
        return None, ["expected a table"]
    errors: list[str] = []
    if not name or len(name) > 64 or any(c.isspace() or c == ":" or ord(c) < 32 for c in name):
        errors.append("name: 1-64 characters without spaces, ':' or control characters")
    errors.extend(f"unknown key {key!r}" for key in body if key not in ("description", "limits"))
    description = body.get("description", "")
    if not isinstance(description, str):
        errors.append("description: expected a string")
        description = ""
    raw = body.get("limits")
    if not isinstance(raw, list) or not raw:
        return None, [*errors, "limits: expected a non-empty array of tables ([[templates.NAME.limits]])"]
    limits: list[Limit] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        lim, problems = _parse_limit(item, f"limits[{i}]")
        errors.extend(problems)
        if lim is None:
            continue
        if lim.limit_id in seen:
            errors.append(f"limits[{i}].id: {lim.limit_id!r} appears twice")
        seen.add(lim.limit_id)
        probe = replace(lim, limit_id=limit_id(_PROBE_ACCOUNT, name, lim.limit_id), account=_PROBE_ACCOUNT)
        errors.extend(
            e.replace("limits[0].limit_id", f"limits[{i}].id").replace("limits[0]", f"limits[{i}]")
            for e in limit_errors(probe, 0)
        )
        limits.append(lim)
    return Template(name, description, tuple(limits), source), errors


def _parse_limit(item: Any, where: str) -> tuple[Limit | None, list[str]]:
    if not isinstance(item, dict):
        return None, [f"{where}: expected a table"]
    errors = [f"{where}.{key}: unknown field" for key in item if key not in _LIMIT_KEYS]
    suffix = item.get("id")
    if not isinstance(suffix, str) or not suffix:
        errors.append(f"{where}.id: expected a non-empty string")
    kind_name = item.get("kind")
    kind = (
        _KINDS.get(str(kind_name).strip().lower().replace("_", "-")) if isinstance(kind_name, str) else None
    )
    if kind is None:
        errors.append(f"{where}.kind: unknown kind {kind_name!r} (one of {', '.join(sorted(_KINDS))})")
    values: dict[str, Any] = {}
    for key, kinds in (("threshold", (int, float)), ("warn_fraction", (int, float)), ("symbol", (str,)),
                       ("description", (str,)), ("disabled", (bool,))):  # fmt: skip
        if key not in item:
            continue
        value = item[key]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            errors.append(f"{where}.{key}: expected {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
        else:
            values[key] = float(value) if float in kinds else value
    if "threshold" not in item:
        errors.append(f"{where}.threshold: required")
    if errors or kind is None or not isinstance(suffix, str):
        return None, errors
    return Limit(limit_id=suffix, kind=kind, **values), errors
