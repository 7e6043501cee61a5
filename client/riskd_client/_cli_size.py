"""`riskd size ACCOUNT [SYMBOL...]` and `riskd var ACCOUNT`: VaR position sizing from a shell.

`size` prints, per symbol, the largest buy and sell the account's VaR budget allows (with
`--limits`, also what its other limits allow), the marginal and component VaR, the mark and the
exposure. `var` prints the account's VaR and the symbols contributing most to it (component VaR).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ._cli_snapshot import _money, _qty, _table
from ._types import PositionSizing, RiskdError, SymbolSize
from .sync_client import RiskClient

# `riskd var` without a budget and without a MAX_VAR limit: ask with this one (VaR and its
# components do not depend on the budget); the server accepts budgets up to 1e30.
_NO_BUDGET = 1e30


def add_size_parsers(
    sub: argparse._SubParsersAction, client: Callable[[argparse.Namespace], RiskClient]
) -> None:
    """Register `size` and `var`; client(args) opens the connection."""
    p = sub.add_parser(
        "size",
        help="largest buy and sell per symbol under the account's VaR budget",
        description="Per symbol: the largest buy and sell the MAX_VAR rule accepts (VaR after the order "
        "<= max(budget, VaR now)), marginal and component VaR, mark and exposure. No SYMBOL: every "
        "symbol of the server's risk model. The budget is --budget, else the account's MAX_VAR limit. "
        "'inf' means unbounded; a symbol without a mark shows price '-' and 0 (nothing can be priced).",
    )
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("symbols", nargs="*", metavar="SYMBOL")
    p.add_argument(
        "--budget", type=float, default=0.0, metavar="X", help="VaR budget (default: MAX_VAR limit)"
    )
    p.add_argument(
        "--limits", action="store_true", help="also the quantity/notional/position/gross/net limits"
    )
    p.add_argument("--json", action="store_true", help="print as JSON (infinity as null)")
    p.set_defaults(func=lambda args: cmd_size(args, client))

    p = sub.add_parser(
        "var",
        help="the account's VaR and its top contributors",
        description="The account's VaR now, its budget (--budget, else its MAX_VAR limit, else none) and "
        "the symbols with the largest component VaR (w x dVaR/dw; the components sum to the VaR).",
    )
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument(
        "--top", type=int, default=10, metavar="N", help="contributors shown (default %(default)s)"
    )
    p.add_argument(
        "--budget", type=float, default=0.0, metavar="X", help="VaR budget (default: MAX_VAR limit)"
    )
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=lambda args: cmd_var(args, client))


def cmd_size(args: argparse.Namespace, client: Callable[[argparse.Namespace], RiskClient]) -> int:
    with client(args) as c:
        sizing = c.size_positions(
            args.account, args.symbols, var_budget=args.budget, apply_limits=args.limits
        )
    if args.json:
        print(json.dumps(sizing_json(sizing, args.account), indent=2))
    else:
        print_sizing(sizing, args.account, sys.stdout, limits=args.limits)
    return 0


def cmd_var(args: argparse.Namespace, client: Callable[[argparse.Namespace], RiskClient]) -> int:
    budgeted = True
    with client(args) as c:
        try:
            sizing = c.size_positions(args.account, var_budget=args.budget)
        except RiskdError as exc:
            if exc.code != "FAILED_PRECONDITION" or "MAX_VAR" not in exc.details:
                raise
            sizing = c.size_positions(args.account, var_budget=_NO_BUDGET)
            budgeted = False
    top = sizing.top_contributors(max(args.top, 0))
    if args.json:
        out = {
            "account": args.account,
            "var": sizing.var,
            "var_budget": sizing.var_budget if budgeted else None,
            "model_version": sizing.model_version,
            "top_contributors": [
                {"symbol": s.symbol, "component_var": s.component_var, "exposure": s.exposure} for s in top
            ],
        }
        print(json.dumps(out, indent=2))
        return 0
    print_var(sizing, args.account, top, budgeted, sys.stdout)
    return 0


# ---------------------------------------------------------------------------------------- text


def _amount(x: float) -> str:
    """A largest quantity: 'inf' when unbounded, else rounded *down* to 2 decimals with thousands
    separators (rounding up could show an order the rule rejects)."""
    if math.isinf(x):
        return "inf"
    if not math.isfinite(x) or abs(x) >= 1e15:
        return _qty(x)
    return f"{math.floor(x * 100) / 100:,.2f}"


def _header(s: PositionSizing, account: str, budgeted: bool = True) -> str:
    budget = _money(s.var_budget) if budgeted else "none (no MAX_VAR limit)"
    return f"{account}  VaR {_money(s.var)}  budget {budget}  model {s.model_version}"


def print_sizing(s: PositionSizing, account: str, out: TextIO, limits: bool = False) -> None:
    print(_header(s, account), file=out)
    header = ["SYMBOL", "PRICE", "EXPOSURE", "MAX_BUY", "MAX_SELL", "MARGINAL", "COMPONENT"]
    if limits:
        header += ["LIMIT_BUY", "LIMIT_SELL"]

    def row(z: SymbolSize) -> list[str]:
        cells = [
            z.symbol,
            _qty(z.price) if z.price > 0 else "-",
            _money(z.exposure),
            _amount(z.max_buy),
            _amount(z.max_sell),
            f"{z.marginal_var:.6g}",
            _money(z.component_var),
        ]
        if limits:
            cells += [_amount(z.limit_buy), _amount(z.limit_sell)]
        return cells

    _table(header, [row(z) for z in s], out, "  ", set(range(1, len(header))))
    unpriced = sum(1 for p in s.price if not p > 0)
    note = f"; {unpriced} without a mark (0: no order can be priced)" if unpriced else ""
    print(f"{len(s)} symbol(s){note}; server {s.server_micros / 1000:.2f} ms", file=out)


def print_var(
    s: PositionSizing, account: str, top: Sequence[SymbolSize], budgeted: bool, out: TextIO
) -> None:
    print(_header(s, account, budgeted), file=out)
    if not top:
        print("  no exposure in priced symbols", file=out)
        return
    rows = [
        [z.symbol, _money(z.exposure), _money(z.component_var), f"{100 * z.component_var / s.var:.1f}%"]
        for z in top
    ]
    _table(["SYMBOL", "EXPOSURE", "COMPONENT", "SHARE"], rows, out, "  ", {1, 2, 3})


# ---------------------------------------------------------------------------------------- JSON


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def sizing_json(s: PositionSizing, account: str) -> dict[str, Any]:
    return {
        "account": account,
        "var": s.var,
        "var_budget": s.var_budget,
        "model_version": s.model_version,
        "server_micros": s.server_micros,
        "sizes": [
            {
                "symbol": z.symbol,
                "price": z.price,
                "exposure": z.exposure,
                "max_buy": _finite(z.max_buy),
                "max_sell": _finite(z.max_sell),
                "marginal_var": z.marginal_var,
                "component_var": z.component_var,
                "limit_buy": _finite(z.limit_buy),
                "limit_sell": _finite(z.limit_sell),
            }
            for z in s
        ],
    }
