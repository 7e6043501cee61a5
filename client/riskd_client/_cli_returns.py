"""`riskd returns import FILE.csv`, `riskd demo-data` and `riskd model`: the VaR risk model's data.

``returns import`` streams the file in chunks (constant memory; a bad row names its line and
imports nothing), then, unless --no-refresh, asks the server to rebuild its model.
``demo-data`` writes a correlated returns set (a few factors plus noise) so VaR can be tried at
once: ``riskd demo-data --symbols 500 --days 250 --out r.csv && riskd returns import r.csv``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import TextIO

from ._cli_input import UsageError
from ._returns import ReturnsFileError, write_demo_csv
from ._types import RiskModelInfo
from .sync_client import RiskClient

EXIT_OK, EXIT_NOT_FOUND = 0, 1
Client = Callable[[argparse.Namespace], RiskClient]


def add_returns_parsers(sub: argparse._SubParsersAction, client: Client) -> None:
    """Register `returns`, `demo-data` and `model`; client(args) opens the connection."""
    returns = sub.add_parser("returns", help="import daily returns for the VaR risk model").add_subparsers(
        dest="returns_command", metavar="ACTION", required=True
    )
    p = returns.add_parser(
        "import",
        help="upsert daily returns from a CSV file (symbol,day,ret)",
        description="Upsert daily returns from a CSV with the header symbol,day,ret (day YYYYMMDD or "
        "YYYY-MM-DD, ret a simple return: 0.01 = +1 %%). Streamed in chunks; all or nothing: a bad row "
        "names its line and nothing is imported. Then the server rebuilds its risk model (--no-refresh: "
        "not now).",
    )
    p.add_argument("file", metavar="FILE.csv", help="the CSV file; - reads stdin")
    p.add_argument(
        "--chunk-rows", type=int, default=10_000, metavar="N", help="rows per message (%(default)s)"
    )
    p.add_argument(
        "--deadline", type=float, default=3600.0, metavar="SECONDS", help="for the whole import (%(default)s)"
    )
    p.add_argument("--no-refresh", action="store_true", help="do not rebuild the risk model afterwards")
    p.set_defaults(func=lambda args: cmd_returns_import(args, client))

    p = sub.add_parser(
        "demo-data",
        help="write a realistic correlated returns CSV (a few factors plus noise)",
        description="Write daily returns for SYMBOLS symbols over the last DAYS weekdays: a market factor, "
        "a few sector factors and idiosyncratic noise (about 1-3 %% daily vol), deterministic for a --seed. "
        "Import it with `riskd returns import FILE`.",
    )
    p.add_argument("--symbols", type=int, default=100, metavar="N", help="symbols (%(default)s)")
    p.add_argument("--days", type=int, default=250, metavar="D", help="weekdays (%(default)s)")
    p.add_argument("--seed", type=int, default=7, help="random seed (%(default)s)")
    p.add_argument("--out", "-o", default="-", metavar="FILE", help="output file (default: stdout)")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser(
        "model",
        help="show the VaR risk model in force",
        description="Show the risk model in force: version, kind, symbols, days, factors, memory, the "
        "symbols given the default volatility. Exit 1 when the server has no model yet.",
    )
    p.add_argument("--symbols", action="store_true", help="also list every symbol's daily volatility")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=lambda args: cmd_model(args, client))


def cmd_returns_import(args: argparse.Namespace, client: Client) -> int:
    if args.chunk_rows < 1:
        raise UsageError("--chunk-rows must be >= 1")
    with client(args) as c:
        try:
            result = c.import_returns(args.file, chunk_rows=args.chunk_rows, timeout=args.deadline)
        except ReturnsFileError as exc:
            raise UsageError(f"{exc}; nothing imported") from None
        days = f"days {result.first_day}..{result.last_day}" if result.rows else "no rows"
        print(
            f"imported {result.rows} returns ({result.upserted} new or changed), "
            f"{result.symbols} symbols, {days}"
        )
        if not args.no_refresh and result.rows:
            done = c.refresh_risk_model(timeout=max(args.timeout, 600.0))
            print(f"risk model {done.model_version} in force (built in {done.build_seconds:.2f}s)")
    return EXIT_OK


def cmd_demo_data(args: argparse.Namespace) -> int:
    if args.symbols < 1 or args.days < 1:
        raise UsageError("--symbols and --days must be >= 1")
    if args.out == "-":
        rows = write_demo_csv(sys.stdout, args.symbols, args.days, seed=args.seed)
        sys.stdout.flush()
        return EXIT_OK
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            rows = write_demo_csv(f, args.symbols, args.days, seed=args.seed)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {rows} returns ({args.symbols} symbols x {args.days} days) to {args.out}", file=sys.stderr)
    return EXIT_OK


def cmd_model(args: argparse.Namespace, client: Client) -> int:
    with client(args) as c:
        info = c.get_risk_model(include_symbols=args.symbols)
    if args.json:
        print(json.dumps(model_json(info), indent=2))
    elif info.exists:
        print_model(info, sys.stdout)
    else:
        print("no risk model yet: import returns (riskd returns import FILE.csv)", file=sys.stderr)
    return EXIT_OK if info.exists else EXIT_NOT_FOUND


def model_json(info: RiskModelInfo) -> dict:
    doc = {
        "model_version": info.model_version,
        "model": info.model,
        "symbols": info.symbol_count,
        "days": info.days,
        "first_day": info.first_day,
        "last_day": info.last_day,
        "factors": info.factors,
        "explained_variance": info.explained_variance,
        "defaulted_symbols": list(info.defaulted_symbols),
        "memory_bytes": info.memory_bytes,
        "confidence": info.confidence,
        "horizon_days": info.horizon_days,
        "z": info.z,
        "built_at": info.built_at,
    }
    if info.symbols:
        doc["volatility"] = dict(zip(info.symbols, info.volatility, strict=True))
    return doc


def print_model(info: RiskModelInfo, out: TextIO) -> None:
    built = dt.datetime.fromtimestamp(info.built_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    factors = (
        f", {info.factors} factors explaining {info.explained_variance:.1%}" if info.model == "factor" else ""
    )
    defaulted = info.defaulted_symbols
    lines = [
        f"model    {info.model_version}",
        f"kind     {info.model}{factors}",
        f"data     {info.symbol_count} symbols x {info.days} days ({info.first_day}..{info.last_day})",
        f"VaR      {info.confidence:.4g} confidence (z {info.z:.4f}), horizon {info.horizon_days:g} day(s)",
        f"memory   {info.memory_bytes / 1e6:.2f} MB",
        f"built    {built}",
        f"default  {len(defaulted)} symbol(s) with too few returns"
        + (f": {', '.join(defaulted[:10])}{' ...' if len(defaulted) > 10 else ''}" if defaulted else ""),
    ]
    print("\n".join(lines), file=out)
    if info.symbols:
        print("SYMBOL  DAILY_VOL", file=out)
        width = max(len(s) for s in info.symbols)
        for symbol, vol in zip(info.symbols, info.volatility, strict=True):
            print(f"{symbol.ljust(width)}  {vol:.6f}", file=out)
