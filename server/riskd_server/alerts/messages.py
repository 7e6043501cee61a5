"""The sentence each alert carries, and the names in it (pure)."""

from __future__ import annotations

import math

from riskd.v1 import risk_pb2 as pb

from ..kernel import layout as L
from ..names import has_control

_STATE = {1: "ACTIVE", 2: "REDUCING", 3: "HALTED"}


def check_name(check: int) -> str:
    """RiskCheck number -> its name without the prefix ("MAX_POSITION"); the number when unknown."""
    try:
        return pb.RiskCheck.Name(check).removeprefix("RISK_CHECK_")
    except ValueError:
        return str(check)


def state_name(state: int) -> str:
    return _STATE.get(state, str(state))


def printable(text: str) -> str:
    """A name as an alert shows it: control characters escaped (a rejected id may hold any)."""
    return text.encode("unicode_escape").decode("ascii") if has_control(text) else text


def num(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.6g}"


def _where(account: str, symbol: str) -> str:
    return " ".join(part for part in (account, symbol) if part) or "firm"


def check_message(
    check: int, warning: bool, account: str, symbol: str, observed: float, threshold: float, order_id: str
) -> str:
    name = check_name(check)
    verb = "near its limit" if warning else "rejected"
    if check == pb.RISK_CHECK_INVALID_ORDER or check == pb.RISK_CHECK_DUPLICATE_ORDER_ID:
        return f"{name}: order {order_id or '?'} ({_where(account, symbol)}) rejected"
    if check in (pb.RISK_CHECK_TRADING_HALTED, pb.RISK_CHECK_REDUCE_ONLY, pb.RISK_CHECK_NO_REFERENCE_PRICE):
        return f"{name}: order {order_id} ({_where(account, symbol)}) rejected"
    if check == pb.RISK_CHECK_MAX_VAR and observed == math.inf:  # kernel.var: no model to price it
        return f"{name}: order {order_id} ({_where(account, symbol)}) rejected: no risk model installed"
    op = ">" if not warning else ">="
    return (
        f"{name}: order {order_id} ({_where(account, symbol)}) {verb}: {num(observed)} {op} {num(threshold)}"
    )


def execution_message(status: int, order_id: str, account: str, symbol: str) -> str:
    where = _where(account, symbol) if (account or symbol) else "unknown account"
    if status == L.X_OVERFILL:
        return f"overfill: fill for {order_id} ({where}) exceeded its open quantity"
    if status == L.X_LATE_FILL:
        return f"late fill: {order_id} ({where}) was already closed; the position was updated"
    if status == L.X_UNKNOWN_FILLED:
        return f"fill for unknown order {order_id} ({where}): the position was updated"
    return f"fill for unknown order {order_id}: not applied (no position named it)"


def trading_state_message(account: str, state: int, previous: int, reason: str) -> str:
    scope = f"account {account}" if account else "firm"
    text = f"{scope} {state_name(state)} (was {state_name(previous)})"
    return f"{text}: {printable(reason)}" if reason else text
