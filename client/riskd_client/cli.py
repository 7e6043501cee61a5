"""The `riskd` command: check orders and administer a running server from a shell.

Exit codes are part of the interface so scripts can branch on them: 0 success (every order
accepted), 1 some order rejected or some requested thing missing, 2 usage error, 3 RPC error.
Built-in commands never import the server package; commands from the ``riskd.commands`` entry
point group (``serve``) are loaded only when no built-in command was asked for, so an emergency
``riskd halt`` works even if the server side of the install is broken.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import entry_points
from typing import Any, TextIO

from . import _columns as col
from ._cli_alerts import add_follow, add_query, add_stats
from ._cli_input import UsageError, orders_from_records, parse_number, parse_order_args, read_records
from ._cli_limits import add_limits_io, spec_json
from ._cli_returns import add_returns_parsers
from ._cli_size import add_size_parsers
from ._cli_snapshot import add_snapshot_parser
from ._types import LimitSpec, RiskdError, ViolationInfo
from .dashboard import commands as dashboard_commands
from .results import CheckResults
from .sync_client import DEFAULT_TARGET, RiskClient

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_RPC = 0, 1, 2, 3
PLUGIN_GROUP = "riskd.commands"
_GLOBAL_VALUE_OPTIONS = ("--target", "--timeout")


# ---------------------------------------------------------------------------------------- formatting


def _num(x: float) -> str:
    """Numbers as a trader reads them: 100 not 100.0, 187.25 not 1.8725e+02."""
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.10g}"


def describe_violation(v: ViolationInfo) -> str:
    """MAX_ORDER_QUANTITY[q-1] 1500 > 1000; built-in checks are just their name."""
    text = v.check + (f"[{v.limit_id}]" if v.limit_id else "")
    if v.limit_id or v.observed or v.threshold:
        text += f" {_num(v.observed)} {'of' if v.warning else '>'} {_num(v.threshold)}"
    return f"warning {text}" if v.warning else text


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], out: TextIO) -> None:
    rows = [list(r) for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    for line in (list(header), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip(), file=out)


def _scope(account: str) -> str:
    return f"account {account}" if account else "firm-wide"


def _warn_not_persisted(persisted: bool | None) -> None:
    if persisted is False:
        print(
            "riskd: warning: applied, but only queued for the database (not yet persisted)", file=sys.stderr
        )


# ---------------------------------------------------------------------------------------- commands


def _client(args: argparse.Namespace) -> RiskClient:
    return RiskClient(args.target, timeout=args.timeout)


def cmd_check(args: argparse.Namespace) -> int:
    if args.file and args.order:
        raise UsageError("give orders as arguments or with --file, not both")
    if args.file:
        orders = orders_from_records(read_records(args.file, col.ORDER_FIELDS), args.file)
    elif args.order:
        orders = parse_order_args(args.order)
    else:
        raise UsageError("no orders: give ID ACCOUNT SYMBOL BUY|SELL QTY [PRICE] ... or --file")
    try:
        col.encode_orders(orders)  # bad sides or columns are usage errors, found before connecting
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with _client(args) as client:
        results = client.check(orders)
    if args.json:
        print(json.dumps(_check_json(results, orders), indent=2))
    else:
        _print_check(results, orders)
    return EXIT_OK if results.all_accepted else EXIT_REJECTED


def _check_json(results: CheckResults, orders: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for r, order in zip(results, orders, strict=False):
        rows.append(
            {
                "index": r.index,
                "client_order_id": r.client_order_id,
                "account": order["account"],
                "symbol": order["symbol"],
                "side": col.side_name(order["side"]),
                "quantity": order["quantity"],
                "price": order.get("price", 0.0),
                "accepted": r.accepted,
                "reject_mask": r.reject_mask,
                "reasons": [
                    {
                        "check": v.check,
                        "limit_id": v.limit_id,
                        "observed": v.observed,
                        "threshold": v.threshold,
                        "warning": v.warning,
                    }
                    for v in r.reasons
                ],
            }
        )
    accepted = sum(results.accepted)
    return {
        "state_version": results.state_version,
        "accepted": accepted,
        "rejected": len(results) - accepted,
        "orders": rows,
    }


def _print_check(results: CheckResults, orders: list[dict[str, Any]]) -> None:
    rows = []
    for r, order in zip(results, orders, strict=False):
        reasons = "; ".join(describe_violation(v) for v in r.reasons)
        if not r.accepted and not reasons:
            reasons = ", ".join(results.rejected_checks(r.index))
        rows.append(
            [
                r.client_order_id,
                str(order["account"]),
                str(order["symbol"]),
                col.side_name(order["side"]),
                _num(order["quantity"]),
                _num(order.get("price", 0.0)) if order.get("price") else "MKT",
                "accepted" if r.accepted else "REJECTED",
                reasons,
            ]
        )
    _table(("ORDER", "ACCOUNT", "SYMBOL", "SIDE", "QTY", "PRICE", "RESULT", "REASONS"), rows, sys.stdout)
    accepted = sum(results.accepted)
    print(f"{accepted} accepted, {len(results) - accepted} rejected (state version {results.state_version})")


def cmd_limits_list(args: argparse.Namespace) -> int:
    try:
        kind = col.parse_check(args.kind) if args.kind else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with _client(args) as client:
        listing = client.list_limits(
            account=args.account, symbol=args.symbol, kind=kind, template=args.template
        )
    if args.json:
        doc = {
            "limits_version": listing.limits_version,
            "limits": [spec_json(lim) | {"effective_threshold": lim.effective_threshold} for lim in listing],
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    _table(
        ("LIMIT_ID", "KIND", "ACCOUNT", "SYMBOL", "THRESHOLD", "EFFECTIVE", "WARN", "STATUS", "DESCRIPTION"),
        (
            [
                lim.limit_id,
                str(lim.kind),
                lim.account or "*",
                lim.symbol or "*",
                _num(lim.threshold),
                _num(lim.threshold if lim.effective_threshold is None else lim.effective_threshold),
                _num(lim.warn_fraction) if lim.warn_fraction else "-",
                "disabled" if lim.disabled else "enabled",
                lim.description,
            ]
            for lim in listing
        ),
        sys.stdout,
    )
    print(f"{len(listing)} limit(s) (limits version {listing.limits_version})")
    return EXIT_OK


def cmd_limits_set(args: argparse.Namespace) -> int:
    try:
        kind = col.parse_check(args.kind)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    spec = LimitSpec(
        args.limit_id,
        col.check_name(kind),
        args.threshold,
        account=args.account,
        symbol=args.symbol,
        warn_fraction=args.warn_fraction,
        disabled=args.disabled,
        description=args.description,
        reference_volatility=args.reference_volatility,
        min_scale=args.min_scale,
    )
    with _client(args) as client:
        change = client.upsert_limits(spec)
    print(f"set limit {spec.limit_id} ({spec.kind}) (limits version {change.limits_version})")
    _warn_not_persisted(change.persisted)
    return EXIT_OK


def cmd_limits_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        change = client.delete_limits(args.limit_ids)
    print(f"deleted {change.count} limit(s) (limits version {change.limits_version})")
    _warn_not_persisted(change.persisted)
    if change.not_found:
        print(f"riskd: not found: {', '.join(change.not_found)}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


def cmd_prices_set(args: argparse.Namespace) -> int:
    prices: dict[str, float] = {}
    for item in args.prices:
        symbol, sep, value = item.partition("=")
        if not sep or not symbol:
            raise UsageError(f"expected SYMBOL=PRICE, got {item!r}")
        prices[symbol] = parse_number(value, f"price of {symbol}")
    with _client(args) as client:
        change = client.update_prices(prices)
    print(f"updated {change.count} price(s) (state version {change.state_version})")
    return EXIT_OK


def cmd_positions_load(args: argparse.Namespace) -> int:
    if args.file and args.positions:
        raise UsageError("give positions as arguments or with --file, not both")
    if args.file:
        records = read_records(args.file, col.POSITION_FIELDS)
        for i, rec in enumerate(records):
            missing = [f for f in col.POSITION_FIELDS if f not in rec]
            if missing:
                raise UsageError(f"{args.file}: position {i}: missing {', '.join(missing)}")
        positions = [
            (r["account"], r["symbol"], parse_number(r["quantity"], f"{args.file}: position {i} quantity"))
            for i, r in enumerate(records)
        ]
    else:
        tokens = args.positions
        if not tokens or len(tokens) % 3:
            raise UsageError("expected ACCOUNT SYMBOL QTY triples (or --file)")
        positions = [
            (
                tokens[i],
                tokens[i + 1],
                parse_number(tokens[i + 2], f"quantity of {tokens[i]}/{tokens[i + 1]}"),
            )
            for i in range(0, len(tokens), 3)
        ]
    with _client(args) as client:
        change = client.load_positions(positions)
    print(f"loaded {change.count} position(s) (state version {change.state_version})")
    _warn_not_persisted(change.persisted)
    return EXIT_OK


def _trading_command(state: str, verb: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _client(args) as client:
            change = client.set_trading_state(state, args.account, args.reason)
        print(f"{verb} {_scope(args.account)} (was {change.previous}; state version {change.state_version})")
        _warn_not_persisted(change.persisted)
        return EXIT_OK

    return run


# ---------------------------------------------------------------------------------------- parser


def build_parser(with_plugins: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskd",
        description="Pre-trade risk checks and administration for a running riskd server. "
        "Exit codes: 0 ok, 1 rejected/not found, 2 usage error, 3 RPC error.",
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("RISKD_TARGET", DEFAULT_TARGET),
        metavar="HOST:PORT",
        help="server address (env RISKD_TARGET; default %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="deadline per RPC (default %(default)s)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "check",
        help="check orders (without sending them anywhere; accepted orders become open orders)",
        description="Check orders given as ID ACCOUNT SYMBOL BUY|SELL QTY [PRICE] (repeated) or in a CSV/JSON "
        "file with columns client_order_id,account,symbol,side,quantity[,price]. PRICE 0 or absent is a "
        "market order. Exit 0 if all accepted, 1 if any rejected.",
    )
    p.add_argument("order", nargs="*", metavar="FIELD", help="ID ACCOUNT SYMBOL BUY|SELL QTY [PRICE] ...")
    p.add_argument("--file", "-f", metavar="PATH", help="orders.csv or orders.json; - reads stdin")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=cmd_check)

    limits = sub.add_parser(
        "limits", help="list, set, delete, import, export or template risk limits; their history"
    ).add_subparsers(dest="limits_command", metavar="ACTION", required=True)
    p = limits.add_parser("list", help="list limits")
    p.add_argument("--account", default="", help="only limits of this account")
    p.add_argument("--symbol", default="", help="only limits of this symbol")
    p.add_argument("--kind", default="", help="only limits of this kind (e.g. max-order-quantity)")
    p.add_argument("--template", default="", help="only limits created from this template")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_limits_list)
    kinds = ", ".join(name.lower().replace("_", "-") for name, number in col.CHECKS.items() if number <= 10)
    p = limits.add_parser(
        "set",
        help="insert or replace a limit",
        description=f"Insert or replace a limit by LIMIT_ID. KIND is one of {kinds} (any case, - or _).",
    )
    p.add_argument("limit_id", metavar="LIMIT_ID")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("threshold", metavar="THRESHOLD", type=float)
    p.add_argument("--account", default="", help="account it applies to (default: every account)")
    p.add_argument("--symbol", default="", help="symbol it applies to (default: every symbol)")
    p.add_argument("--warn-fraction", type=float, default=0.0, metavar="F", help="warn above F * threshold")
    p.add_argument("--disabled", action="store_true", help="keep the limit but do not apply it")
    p.add_argument("--description", default="", help="free text for people")
    p.add_argument(
        "--reference-volatility",
        type=float,
        default=0.0,
        metavar="V",
        help="a dynamic limit: enforce threshold x clamp(V / current volatility, min scale, 1)",
    )
    p.add_argument(
        "--min-scale", type=float, default=0.0, metavar="S", help="lowest scale (default: the server's)"
    )
    p.set_defaults(func=cmd_limits_set)
    p = limits.add_parser("delete", help="delete limits by id")
    p.add_argument("limit_ids", nargs="+", metavar="LIMIT_ID")
    p.set_defaults(func=cmd_limits_delete)
    add_limits_io(limits, _client, UsageError)

    prices = sub.add_parser("prices", help="set symbol marks").add_subparsers(
        dest="prices_command", metavar="ACTION", required=True
    )
    p = prices.add_parser("set", help="set marks: SYMBOL=PRICE ...")
    p.add_argument("prices", nargs="+", metavar="SYMBOL=PRICE")
    p.set_defaults(func=cmd_prices_set)

    positions = sub.add_parser("positions", help="load positions").add_subparsers(
        dest="positions_command", metavar="ACTION", required=True
    )
    p = positions.add_parser("load", help="replace positions: ACCOUNT SYMBOL QTY ... or --file")
    p.add_argument("positions", nargs="*", metavar="FIELD", help="ACCOUNT SYMBOL QTY, repeated")
    p.add_argument(
        "--file", "-f", metavar="PATH", help="CSV/JSON with account,symbol,quantity; - reads stdin"
    )
    p.set_defaults(func=cmd_positions_load)

    alerts = sub.add_parser("alerts", help="follow, query and count the server's alerts").add_subparsers(
        dest="alerts_command", metavar="ACTION", required=True
    )
    add_follow(alerts)
    add_query(alerts)
    add_stats(alerts)

    for name, state, verb, help_text in (
        ("halt", "HALTED", "halted", "reject every order"),
        ("reduce-only", "REDUCING", "reduce-only", "accept only orders that cannot increase |position|"),
        ("resume", "ACTIVE", "resumed", "back to normal trading"),
    ):
        p = sub.add_parser(
            name,
            help=f"{help_text} (for ACCOUNT, or firm-wide without one)",
            description=f"{help_text.capitalize()} for ACCOUNT, or firm-wide when no ACCOUNT is given.",
        )
        p.add_argument("account", nargs="?", default="", metavar="ACCOUNT")
        p.add_argument("--reason", default="", help="why, for the audit trail")
        p.set_defaults(func=_trading_command(state, verb))

    add_snapshot_parser(sub, _client)
    add_returns_parsers(sub, _client)  # returns import, demo-data, model
    add_size_parsers(sub, _client)
    dashboard_commands.add_commands(sub)  # dashboard, watch (their extras are imported when they run)

    if with_plugins:
        _load_plugins(sub)
    return parser


def _load_plugins(sub: argparse._SubParsersAction) -> None:
    """Add commands from the riskd.commands entry points; a broken one becomes an explanation."""
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        if ep.name in sub.choices:
            continue  # built-ins win
        try:
            ep.load()(sub)
        except Exception as exc:
            if ep.name in sub.choices:  # registered, then failed: keep what it added
                continue
            _add_unavailable(sub, ep.name, f"{type(exc).__name__}: {exc}")


def _add_unavailable(sub: argparse._SubParsersAction, name: str, why: str) -> None:
    p = sub.add_parser(name, help=f"(unavailable: {why})", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    def explain(args: argparse.Namespace) -> int:
        hint = " Install the server extra: pip install 'riskd[server]'." if name == "serve" else ""
        print(f"riskd: the '{name}' command is unavailable ({why}).{hint}", file=sys.stderr)
        return EXIT_USAGE

    p.set_defaults(func=explain)


def _builtin_names() -> set[str]:
    return {
        "alerts", "check", "limits", "prices", "positions", "halt", "reduce-only", "resume", "snapshot",
        "dashboard", "watch", "returns", "demo-data", "model", "size", "var",
    }  # fmt: skip


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand name in argv, skipping global options and their values."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _GLOBAL_VALUE_OPTIONS:
            skip = True
        elif token == "--":
            return None
        elif not token.startswith("-"):
            return token
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `riskd` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_plugins=_command_of(argv) not in _builtin_names())
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    builtin = args.command in _builtin_names()
    try:
        return int(func(args))
    except UsageError as exc:
        print(f"riskd {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RiskdError as exc:
        if not builtin:
            raise
        print(f"riskd: {exc.describe()}", file=sys.stderr)
        if exc.details and exc.details not in exc.describe():
            print(f"riskd: details: {exc.details}", file=sys.stderr)
        return EXIT_RPC
    except ValueError as exc:
        if not builtin:
            raise
        print(f"riskd {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
