"""`riskd snapshot [ACCOUNT...] [--json]`: accounts' exposure, positions and closest limits.

A block per account: a header line (trading state, gross, net, open orders), its positions
(symbol, quantity, mark, value) and the limits closest to breach with utilisation in percent.
Exit 1 when a named account is unknown to the server (the others are still printed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ._types import AccountSnapshot, RiskSnapshot
from .sync_client import RiskClient

EXIT_OK, EXIT_NOT_FOUND = 0, 1
_MONEY_KINDS = frozenset({"MAX_GROSS_EXPOSURE", "MAX_NET_EXPOSURE"})


def add_snapshot_parser(
    sub: argparse._SubParsersAction, client: Callable[[argparse.Namespace], RiskClient]
) -> None:
    """Register the `snapshot` command; client(args) opens the connection."""
    p = sub.add_parser(
        "snapshot",
        help="show accounts' exposure, positions and the limits closest to breach",
        description="Show, per account, gross and net exposure, open orders, trading state, positions "
        "(symbol, quantity, mark, value) and the five limits closest to breach with their utilisation "
        "(observed / threshold). No ACCOUNT: every account the server knows. Exit 1 if a named "
        "account is unknown.",
    )
    p.add_argument("accounts", nargs="*", metavar="ACCOUNT")
    p.add_argument("--json", action="store_true", help="print as JSON (NaN and infinity as null)")
    p.set_defaults(func=lambda args: cmd_snapshot(args, client))


def cmd_snapshot(args: argparse.Namespace, client: Callable[[argparse.Namespace], RiskClient]) -> int:
    with client(args) as c:
        snap = c.risk_snapshot(args.accounts)
    found = {a.account for a in snap.accounts}
    missing = [name for name in dict.fromkeys(args.accounts) if name not in found]
    if args.json:
        print(json.dumps(snapshot_json(snap, missing), indent=2))
    else:
        print_snapshot(snap, sys.stdout, sort=not args.accounts)
    if missing:
        print(f"riskd: not found: {', '.join(missing)}", file=sys.stderr)
        return EXIT_NOT_FOUND
    return EXIT_OK


# ---------------------------------------------------------------------------------------- text


def _qty(x: float) -> str:
    """Quantities and prices as given: 100 not 100.0, 187.25 not 1.8725e+02; '-' for NaN."""
    if math.isnan(x):
        return "-"
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.10g}"


def _money(x: float) -> str:
    """Exposures and values with thousands separators and cents: 18,750.00; '-' for NaN."""
    if math.isnan(x):
        return "-"
    if not math.isfinite(x) or abs(x) >= 1e15:
        return f"{x:.6g}"
    return f"{x:,.2f}"


def _limit_value(kind: str, x: float) -> str:
    """Exposure limits in money, the others (positions, orders, tokens) as numbers."""
    if kind in _MONEY_KINDS:
        return _money(x)
    if math.isfinite(x) and x != int(x):
        return f"{x:.6g}"
    return _qty(x)


def _percent(u: float) -> str:
    if math.isinf(u):
        return "inf"
    return f"{100 * u:.1f}%"


def _table(header: Sequence[str], rows: list[list[str]], out: TextIO, indent: str, right: set[int]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    for line in (list(header), *rows):
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        print((indent + "  ".join(cells)).rstrip(), file=out)


def print_account(a: AccountSnapshot, out: TextIO) -> None:
    print(
        f"{a.account}  {a.trading_state}  gross {_money(a.gross)}  net {_money(a.net)}  "
        f"open orders {a.open_orders}",
        file=out,
    )
    if a.positions:
        rows = [
            [p.symbol, _qty(p.quantity), _qty(p.mark), _money(p.value)]
            for p in sorted(a.positions, key=lambda p: p.symbol)
        ]
        _table(("SYMBOL", "QTY", "MARK", "VALUE"), rows, out, "  ", {1, 2, 3})
    else:
        print("  no positions", file=out)
    if a.closest_limits:
        rows = [
            [
                lim.limit_id,
                lim.kind,
                lim.symbol or "-",
                _limit_value(lim.kind, lim.observed),
                _limit_value(lim.kind, lim.threshold),
                _percent(lim.utilisation),
            ]
            for lim in a.closest_limits
        ]
        _table(("LIMIT", "KIND", "SYMBOL", "OBSERVED", "THRESHOLD", "USED"), rows, out, "  ", {3, 4, 5})
    else:
        print("  no position, exposure, rate or open-order limit applies", file=out)


def print_snapshot(snap: RiskSnapshot, out: TextIO, sort: bool = False) -> None:
    accounts = sorted(snap.accounts, key=lambda a: a.account) if sort else list(snap.accounts)
    for i, a in enumerate(accounts):
        if i:
            print(file=out)
        print_account(a, out)
    if accounts:
        print(file=out)
    print(
        f"{len(accounts)} account(s); firm-wide {snap.firm_trading_state} (state version {snap.state_version})",
        file=out,
    )


# ---------------------------------------------------------------------------------------- JSON


def _finite(x: float) -> float | None:
    """JSON has no NaN or infinity: null instead."""
    return x if math.isfinite(x) else None


def snapshot_json(snap: RiskSnapshot, missing: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "state_version": snap.state_version,
        "firm_trading_state": snap.firm_trading_state,
        "accounts": [
            {
                "account": a.account,
                "trading_state": a.trading_state,
                "gross": a.gross,
                "net": a.net,
                "open_orders": a.open_orders,
                "positions": [
                    {
                        "symbol": p.symbol,
                        "quantity": p.quantity,
                        "mark": _finite(p.mark),
                        "value": _finite(p.value),
                    }
                    for p in a.positions
                ],
                "closest_limits": [
                    {
                        "limit_id": lim.limit_id,
                        "kind": lim.kind,
                        "symbol": lim.symbol,
                        "observed": lim.observed,
                        "threshold": lim.threshold,
                        "utilisation": _finite(lim.utilisation),
                    }
                    for lim in a.closest_limits
                ],
            }
            for a in snap.accounts
        ],
        "not_found": list(missing),
    }
