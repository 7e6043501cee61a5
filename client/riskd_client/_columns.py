"""Pure encoding and decoding between Python values and riskd.v1 messages (no I/O).

The sync and async clients share this module, so they cannot disagree on what an order looks like.
Columns may be lists, tuples or anything with ``.tolist()`` (numpy arrays, pandas Series): numpy is
never imported here. Column lengths are deliberately not compared on the client: the server does it
and names the offending column, so there is one rule and one message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from riskd.v1 import risk_pb2 as pb

from ._types import (
    AccountSnapshot,
    Execution,
    LimitSpec,
    LimitUtilisation,
    Order,
    Position,
    PositionSizing,
    PositionSnapshot,
    RiskSnapshot,
    ViolationInfo,
)

ORDER_FIELDS = ("client_order_id", "account", "symbol", "side", "quantity", "price")
EXECUTION_FIELDS = ("client_order_id", "type", "quantity", "price", "account", "symbol", "side")
POSITION_FIELDS = ("account", "symbol", "quantity")
_ORDER_DEFAULTS: dict[str, Any] = {"price": 0.0}
_EXECUTION_DEFAULTS: dict[str, Any] = {"quantity": 0.0, "price": 0.0, "account": "", "symbol": "", "side": 0}

# ---------------------------------------------------------------------------------------- enums


def _enum_names(enum: Any, prefix: str) -> dict[str, int]:
    return {name.removeprefix(prefix): number for name, number in enum.items() if number}


CHECKS = _enum_names(pb.RiskCheck, "RISK_CHECK_")  # "MAX_ORDER_QUANTITY" -> 1
SIDES = _enum_names(pb.Side, "SIDE_")
EXEC_TYPES = _enum_names(pb.ExecType, "EXEC_TYPE_")
TRADING_STATES = _enum_names(pb.TradingState, "TRADING_STATE_")
_CHECK_NAMES = {number: name for name, number in CHECKS.items()}
_STATE_NAMES = {number: name for name, number in TRADING_STATES.items()}
_ALIASES = {"B": "BUY", "S": "SELL", "CANCELLED": "CANCELED", "CANCEL": "CANCELED", "REDUCE_ONLY": "REDUCING"}
# The common spellings, looked up in one step per order; anything else takes the careful path.
_FAST_SIDES: dict[Any, int] = {1: 1, 2: 2, "BUY": 1, "SELL": 2, "buy": 1, "sell": 2, "Buy": 1, "Sell": 2}

_FAST_EXEC_TYPES: dict[Any, int] = {**EXEC_TYPES, **{n: n for n in EXEC_TYPES.values()}}
# An execution's side may be left out: 0, None or "" (SIDE_UNSPECIFIED).
_FAST_REPORT_SIDES: dict[Any, int] = {**_FAST_SIDES, 0: 0, None: 0, "": 0}


def _parse_enum(value: Any, names: Mapping[str, int], prefix: str, what: str) -> int:
    """A name in any case, with - or _, with or without the proto prefix; or the number itself."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not one of {', '.join(names)}")
    if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, str)):
        return int(value.__index__())
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_").replace(" ", "_").removeprefix(prefix)
        key = _ALIASES.get(key, key)
        if key in names:
            return names[key]
        if key.isdigit():
            return int(key)
    raise ValueError(f"{what}: {value!r} is not one of {', '.join(names)}")


def parse_side(value: Any, what: str = "side") -> int:
    return _parse_enum(value, SIDES, "SIDE_", what)


def parse_check(value: Any, what: str = "kind") -> int:
    return _parse_enum(value, CHECKS, "RISK_CHECK_", what)


def parse_exec_type(value: Any, what: str = "type") -> int:
    return _parse_enum(value, EXEC_TYPES, "EXEC_TYPE_", what)


def parse_trading_state(value: Any, what: str = "state") -> int:
    return _parse_enum(value, TRADING_STATES, "TRADING_STATE_", what)


def check_name(code: int) -> str:
    """RiskCheck number -> "MAX_ORDER_QUANTITY"; numbers this client does not know stay readable."""
    return _CHECK_NAMES.get(code, f"CHECK_{code}")


def side_name(value: Any) -> str:
    """An order's side for display: "BUY"/"SELL", or the value as given when it is not a side."""
    try:
        return {1: "BUY", 2: "SELL"}.get(parse_side(value), str(value))
    except ValueError:
        return str(value)


def state_name(code: int) -> str:
    return _STATE_NAMES.get(code, f"STATE_{code}")


def mask_checks(mask: int) -> tuple[str, ...]:
    """Names of the checks whose bit is set in a reject mask."""
    return tuple(check_name(bit) for bit in range(mask.bit_length()) if mask >> bit & 1)


# ---------------------------------------------------------------------------------------- columns


def order_columns(
    client_order_id: Any, account: Any, symbol: Any, side: Any, quantity: Any, price: Any = None
) -> dict[str, Any]:
    """Keyword columns as the column mapping encode_orders takes; no price column = market orders."""
    columns = {
        "client_order_id": client_order_id,
        "account": account,
        "symbol": symbol,
        "side": side,
        "quantity": quantity,
    }
    if price is not None:
        columns["price"] = price
    return columns


def _tolist(column: Any) -> list:
    tolist = getattr(column, "tolist", None)
    if callable(tolist):
        return tolist()  # numpy / pandas: one C call instead of boxing element by element
    if isinstance(column, (str, bytes)):
        raise ValueError("a column must be a sequence, not a single string")
    return list(column)


def _strings(values: list) -> list:
    if values and isinstance(values[0], bytes):  # numpy "S" arrays come back as bytes
        return [v.decode() if isinstance(v, bytes) else v for v in values]
    return values


def _enum_column(values: list, fast: Mapping[Any, int], parse: Callable[[Any, str], int], what: str) -> list:
    try:
        return [fast[v] for v in values]
    except (KeyError, TypeError):
        return [parse(v, f"{what}[{i}]") for i, v in enumerate(values)]


def _rows_to_columns(
    rows: Iterable[Any], fields: Sequence[str], defaults: Mapping[str, Any], what: str
) -> dict[str, list]:
    """Rows (dataclasses, objects with those attributes, mappings or plain tuples) -> columns."""
    columns: dict[str, list] = {name: [] for name in fields}
    appends = [columns[name].append for name in fields]
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            unknown = set(row) - set(fields)
            if unknown:
                raise ValueError(
                    f"{what}[{i}]: unknown field(s) {sorted(unknown)}; expected {', '.join(fields)}"
                )
            values = [row.get(name, defaults.get(name, _MISSING)) for name in fields]
        elif isinstance(row, (tuple, list)):
            if not len(fields) - len(defaults) <= len(row) <= len(fields):
                raise ValueError(f"{what}[{i}]: expected ({', '.join(fields)}), got {len(row)} values")
            values = [*row, *(defaults[name] for name in fields[len(row) :])]
        else:
            values = [getattr(row, name, defaults.get(name, _MISSING)) for name in fields]
        for name, value, append in zip(fields, values, appends, strict=True):
            if value is _MISSING:
                raise ValueError(f"{what}[{i}]: missing {name}")
            append(value)
    return columns


def _mapping_to_columns(
    data: Mapping[str, Any], fields: Sequence[str], defaults: Mapping[str, Any], what: str
) -> dict[str, list]:
    unknown = [name for name in data if name not in fields]
    if unknown:
        raise ValueError(f"{what}: unknown column(s) {unknown}; expected {', '.join(fields)}")
    missing = [name for name in fields if name not in data and name not in defaults]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}")
    columns = {name: _tolist(data[name]) for name in fields if name in data}
    n = len(columns[fields[0]])
    for name in fields:
        if name not in columns:
            columns[name] = [defaults[name]] * n
    return columns


_MISSING = object()


def to_columns(
    data: Any, fields: Sequence[str], defaults: Mapping[str, Any], what: str, row_type: type
) -> dict[str, list]:
    """Accept one row, a sequence of rows, or a mapping of columns; return plain-list columns."""
    if isinstance(data, row_type):
        data = [data]
    elif isinstance(data, Mapping) and isinstance(data.get(fields[0]), str):
        data = [data]  # a single row given as a dict
    if isinstance(data, Mapping):
        return _mapping_to_columns(data, fields, defaults, what)
    if isinstance(data, (str, bytes)):
        raise ValueError(f"{what}: expected rows or a mapping of columns, got a string")
    return _rows_to_columns(data, fields, defaults, what)


def _fill(message: Any, columns: Mapping[str, list], what: str) -> None:
    for name, values in columns.items():
        try:
            getattr(message, name).extend(values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what}.{name}: {exc}") from None


def encode_orders(orders: Any) -> tuple[pb.OrderBatch, list[str]]:
    """Orders in any accepted shape -> (OrderBatch, client_order_ids for decoding the answer)."""
    columns = to_columns(orders, ORDER_FIELDS, _ORDER_DEFAULTS, "orders", Order)
    columns["client_order_id"] = _strings(columns["client_order_id"])
    columns["account"] = _strings(columns["account"])
    columns["symbol"] = _strings(columns["symbol"])
    columns["side"] = _enum_column(columns["side"], _FAST_SIDES, parse_side, "orders.side")
    batch = pb.OrderBatch()
    _fill(batch, columns, "orders")
    return batch, columns["client_order_id"]


def _report_side(value: Any, what: str) -> int:
    return 0 if value is None or (isinstance(value, str) and not value.strip()) else parse_side(value, what)


def encode_executions(executions: Any) -> pb.ReportExecutionsRequest:
    """Executions -> request. The account, symbol and side columns are sent only when some report
    names one (all empty means not given), so the common request stays on the server's fast parser."""
    columns = to_columns(executions, EXECUTION_FIELDS, _EXECUTION_DEFAULTS, "executions", Execution)
    columns["client_order_id"] = _strings(columns["client_order_id"])
    columns["type"] = _enum_column(columns["type"], _FAST_EXEC_TYPES, parse_exec_type, "executions.type")
    columns["account"] = [v or "" for v in _strings(columns["account"])]
    columns["symbol"] = [v or "" for v in _strings(columns["symbol"])]
    columns["side"] = _enum_column(columns["side"], _FAST_REPORT_SIDES, _report_side, "executions.side")
    if not (any(columns["account"]) or any(columns["symbol"]) or any(columns["side"])):
        del columns["account"], columns["symbol"], columns["side"]
    request = pb.ReportExecutionsRequest()
    _fill(request, columns, "executions")
    return request


def encode_prices(prices: Mapping[str, float] | Any, price: Any = None) -> pb.UpdatePricesRequest:
    """update_prices({"AAPL": 150.0}) or update_prices(symbols, prices)."""
    if price is None:
        if not isinstance(prices, Mapping):
            raise ValueError("prices: pass a mapping {symbol: price} or two columns (symbols, prices)")
        symbols, values = list(prices.keys()), list(prices.values())
    else:
        symbols, values = _tolist(prices), _tolist(price)
    request = pb.UpdatePricesRequest()
    _fill(request, {"symbol": _strings(symbols), "price": values}, "prices")
    return request


def encode_positions(positions: Any) -> pb.LoadPositionsRequest:
    columns = to_columns(positions, POSITION_FIELDS, {}, "positions", Position)
    columns["account"] = _strings(columns["account"])
    columns["symbol"] = _strings(columns["symbol"])
    request = pb.LoadPositionsRequest()
    _fill(request, columns, "positions")
    return request


def encode_limit(limit: LimitSpec | Mapping[str, Any], index: int = 0) -> pb.Limit:
    if isinstance(limit, Mapping):
        try:
            limit = LimitSpec(**limit)
        except TypeError as exc:
            raise ValueError(f"limits[{index}]: {exc}") from None
    if not isinstance(limit, LimitSpec):
        raise ValueError(f"limits[{index}]: expected a LimitSpec or a mapping, got {type(limit).__name__}")
    try:
        return pb.Limit(
            limit_id=limit.limit_id,
            kind=parse_check(limit.kind, f"limits[{index}].kind"),  # type: ignore[arg-type]
            account=limit.account,
            symbol=limit.symbol,
            threshold=limit.threshold,
            warn_fraction=limit.warn_fraction,
            disabled=limit.disabled,
            description=limit.description,
            template=limit.template,
            reference_volatility=limit.reference_volatility,
            min_scale=limit.min_scale,
        )
    except TypeError as exc:
        raise ValueError(f"limits[{index}]: {exc}") from None


def encode_limits(limits: Any) -> pb.UpsertLimitsRequest:
    if isinstance(limits, (LimitSpec, Mapping)):
        limits = [limits]
    return pb.UpsertLimitsRequest(limits=[encode_limit(lim, i) for i, lim in enumerate(limits)])


def limit_ids(ids: str | Iterable[str]) -> list[str]:
    return [ids] if isinstance(ids, str) else list(ids)


# ---------------------------------------------------------------------------------------- decoding


def decode_limit(msg: pb.Limit) -> LimitSpec:
    return LimitSpec(
        msg.limit_id,
        check_name(msg.kind),
        msg.threshold,
        account=msg.account,
        symbol=msg.symbol,
        warn_fraction=msg.warn_fraction,
        disabled=msg.disabled,
        description=msg.description,
        template=msg.template,
        reference_volatility=msg.reference_volatility,
        min_scale=msg.min_scale,
        effective_threshold=msg.effective_threshold,
    )


def decode_violation(msg: pb.Violation) -> ViolationInfo:
    return ViolationInfo(
        check=check_name(msg.check),
        limit_id=msg.limit_id,
        observed=msg.observed,
        threshold=msg.threshold,
        warning=msg.warning,
        code=msg.check,
    )


def decode_snapshot(msg: pb.GetRiskSnapshotResponse | pb.StreamRiskSnapshotsResponse) -> RiskSnapshot:
    """A GetRiskSnapshot or StreamRiskSnapshots response -> RiskSnapshot."""
    return RiskSnapshot(
        accounts=tuple(
            AccountSnapshot(
                account=a.account,
                gross=a.gross,
                net=a.net,
                open_orders=a.open_orders,
                positions=tuple(PositionSnapshot(p.symbol, p.quantity, p.mark, p.value) for p in a.positions),
                trading_state=state_name(a.trading_state),
                closest_limits=tuple(
                    LimitUtilisation(
                        lim.limit_id,
                        check_name(lim.kind),
                        lim.symbol,
                        lim.observed,
                        lim.threshold,
                        lim.utilisation,
                    )
                    for lim in a.closest_limits
                ),
            )
            for a in msg.accounts
        ),
        state_version=msg.state_version,
        firm_trading_state=state_name(msg.firm_trading_state),
    )


def decode_sizes(msg: pb.SizePositionsResponse) -> PositionSizing:
    """A SizePositionsResponse -> PositionSizing (no limit columns: +inf, no limit applied).
    Columns are copied with slices (upb copies a slice in C; iterating is twice as slow)."""
    z = msg.sizes
    inf = (math.inf,) * len(z.symbol)
    return PositionSizing(
        var=msg.var,
        var_budget=msg.var_budget,
        model_version=msg.model_version,
        server_micros=msg.server_micros,
        symbol=tuple(z.symbol[:]),
        max_buy=tuple(z.max_buy_quantity[:]),
        max_sell=tuple(z.max_sell_quantity[:]),
        marginal_var=tuple(z.marginal_var[:]),
        component_var=tuple(z.component_var[:]),
        price=tuple(z.price[:]),
        exposure=tuple(z.exposure[:]),
        limit_buy=tuple(z.limit_buy_quantity[:]) or inf,
        limit_sell=tuple(z.limit_sell_quantity[:]) or inf,
    )


def size_request(
    account: str, symbols: str | Iterable[str], var_budget: float, apply_limits: bool
) -> pb.SizePositionsRequest:
    """One symbol or several (a str is one symbol); none: every symbol of the server's model."""
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    return pb.SizePositionsRequest(
        account=account, symbols=names, var_budget=var_budget, apply_limits=apply_limits
    )


def account_names(accounts: str | Iterable[str]) -> list[str]:
    """One account or several; a str is one account, not its characters."""
    return [accounts] if isinstance(accounts, str) else list(accounts)


def persisted_flag(trailing_metadata: Any) -> bool | None:
    """The server's ``riskd-persisted`` trailer, if it sent one."""
    for key, value in trailing_metadata or ():
        if key == "riskd-persisted":
            return value == "true"
    return None
