"""Limit values and their validation (pure; no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .names import has_control

# riskd.v1.RiskCheck values (kept as plain ints so this module needs no protobuf import).
MAX_ORDER_QUANTITY = 1
MAX_ORDER_NOTIONAL = 2
MAX_POSITION = 3
MAX_GROSS_EXPOSURE = 4
MAX_NET_EXPOSURE = 5
PRICE_COLLAR = 6
MAX_ORDER_RATE = 7
MAX_OPEN_ORDERS = 8
RESTRICTED_SYMBOL = 9
MAX_VAR = 10
INVALID_ORDER = 20
DUPLICATE_ORDER_ID = 21
TRADING_HALTED = 22
REDUCE_ONLY = 23
NO_REFERENCE_PRICE = 24

KIND_NAMES = {
    MAX_ORDER_QUANTITY: "MAX_ORDER_QUANTITY",
    MAX_ORDER_NOTIONAL: "MAX_ORDER_NOTIONAL",
    MAX_POSITION: "MAX_POSITION",
    MAX_GROSS_EXPOSURE: "MAX_GROSS_EXPOSURE",
    MAX_NET_EXPOSURE: "MAX_NET_EXPOSURE",
    PRICE_COLLAR: "PRICE_COLLAR",
    MAX_ORDER_RATE: "MAX_ORDER_RATE",
    MAX_OPEN_ORDERS: "MAX_OPEN_ORDERS",
    RESTRICTED_SYMBOL: "RESTRICTED_SYMBOL",
    MAX_VAR: "MAX_VAR",
}
CONFIGURABLE_KINDS = frozenset(range(1, 11))
ACCOUNT_LEVEL_KINDS = frozenset(
    {MAX_GROSS_EXPOSURE, MAX_NET_EXPOSURE, MAX_ORDER_RATE, MAX_OPEN_ORDERS, MAX_VAR}
)
MAX_NAME_LEN = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """One configured limit; "" for account or symbol means any."""

    limit_id: str
    kind: int
    account: str = ""
    symbol: str = ""
    threshold: float = 0.0
    warn_fraction: float = 0.0
    disabled: bool = False
    description: str = ""
    template: str = ""  # the template it was created from (ApplyTemplate); "" when set by hand
    reference_volatility: float = 0.0  # > 0: a dynamic limit (see README, "Dynamic limits")
    min_scale: float = 0.0  # lowest scale a dynamic limit tightens to; 0: the server's default


class LimitValidationError(ValueError):
    """Every problem found in a set of limits, reported together."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def limit_errors(limit: Limit, index: int) -> list[str]:
    """Problems with one limit, each naming the field and the limit's index."""
    where = f"limits[{index}]"
    errors: list[str] = []
    if not limit.limit_id:
        errors.append(f"{where}.limit_id: must not be empty")
    elif len(limit.limit_id) > MAX_NAME_LEN:
        errors.append(f"{where}.limit_id: longer than {MAX_NAME_LEN} characters")
    if limit.kind not in CONFIGURABLE_KINDS:
        errors.append(f"{where}.kind: {limit.kind} is not a configurable RiskCheck (1..10)")
    if limit.kind in ACCOUNT_LEVEL_KINDS and limit.symbol:
        name = KIND_NAMES[limit.kind]
        errors.append(f"{where}.symbol: account-level kind {name} takes no symbol")
    for name in ("account", "symbol"):
        if len(getattr(limit, name)) > MAX_NAME_LEN:
            errors.append(f"{where}.{name}: longer than {MAX_NAME_LEN} characters")
    if len(limit.template) > MAX_NAME_LEN:
        errors.append(f"{where}.template: longer than {MAX_NAME_LEN} characters")
    if not math.isfinite(limit.reference_volatility) or limit.reference_volatility < 0:
        errors.append(
            f"{where}.reference_volatility: must be finite and >= 0, got {limit.reference_volatility}"
        )
    if not math.isfinite(limit.min_scale) or not 0 <= limit.min_scale <= 1:
        errors.append(
            f"{where}.min_scale: must be in [0, 1] (0: the server's default), got {limit.min_scale}"
        )
    for name in ("limit_id", "account", "symbol", "template"):
        if has_control(getattr(limit, name)):
            errors.append(f"{where}.{name}: holds a control character (U+0000-U+001F, U+007F-U+009F)")
    if not math.isfinite(limit.threshold) or limit.threshold < 0:
        errors.append(f"{where}.threshold: must be finite and >= 0, got {limit.threshold}")
    if not math.isfinite(limit.warn_fraction) or not 0 <= limit.warn_fraction < 1:
        errors.append(f"{where}.warn_fraction: must be in [0, 1), got {limit.warn_fraction}")
    return errors


def validate_limits(limits: Iterable[Limit]) -> None:
    """Raise LimitValidationError listing every problem, including duplicate ids in one request."""
    errors: list[str] = []
    seen: dict[str, int] = {}
    for index, limit in enumerate(limits):
        errors.extend(limit_errors(limit, index))
        if limit.limit_id in seen:
            errors.append(f"limits[{index}].limit_id: duplicate of limits[{seen[limit.limit_id]}]")
        seen.setdefault(limit.limit_id, index)
    if errors:
        raise LimitValidationError(errors)
