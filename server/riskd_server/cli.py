"""`riskd serve` and `riskd feeder`: registered into the client CLI through the ``riskd.commands`` entry point."""

from __future__ import annotations

import argparse
import sys

from .config import SettingsError, add_arguments, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the riskd server",
        description="Run the riskd gRPC server. Every setting can also come from RISKD_<NAME> environment "
        "variables or a TOML file (--config); flags win over the environment, which wins over the file.",
    )
    add_arguments(parser)
    parser.set_defaults(func=_serve)
    from .store import feeder

    feeder.register(subparsers)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args)
    except SettingsError as exc:
        print(f"riskd serve: {exc}", file=sys.stderr)
        return 2
    from .server import run

    return run(settings)
