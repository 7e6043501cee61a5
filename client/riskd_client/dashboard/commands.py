"""The `riskd dashboard` and `riskd watch` commands: argument parsing only.

aiohttp (extra `dashboard`) and rich (extra `watch`) are imported when a command runs, never when
the CLI starts, so `riskd check` works with grpcio and protobuf alone.
"""

from __future__ import annotations

import argparse
import sys

from .._cli_input import UsageError
from .model import FeedFilter
from .sse import DEFAULT_MAX_CONNECTIONS, DEFAULT_QUEUE_FRAMES
from .state import DEFAULT_ALERT_BUFFER, DEFAULT_MAX_ACCOUNTS

EXIT_USAGE = 2


def _missing(extra: str, module: str, exc: ImportError) -> int:
    print(
        f"riskd: this command needs {module} ({exc}). Install the extra: pip install 'riskd[{extra}]'",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        from .web import DashboardSettings, run, split_host_port
    except ImportError as exc:
        return _missing("dashboard", "aiohttp", exc)
    try:
        split_host_port(args.listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = DashboardSettings(
        target=args.target,
        listen=args.listen,
        alert_buffer=args.alert_buffer,
        max_accounts=args.max_accounts,
        queue_frames=args.queue_frames,
        max_connections=args.max_connections,
        alert_interval=args.alert_interval_ms / 1000.0,
        account_interval=args.account_interval_ms / 1000.0,
        snapshot_interval_ms=args.snapshot_interval_ms,
        reuse_port=args.reuse_port,
    )
    return run(settings, use_uvloop=not args.no_uvloop)


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        flt = FeedFilter.parse(args.severity, args.account, args.check, args.kind)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        from .watch import WatchSettings, run
    except ImportError as exc:
        return _missing("watch", "rich", exc)
    settings = WatchSettings(
        target=args.target,
        filter=flt,
        alert_rows=args.alerts,
        account_rows=args.accounts,
        duration=args.duration,
        snapshot_interval_ms=args.snapshot_interval_ms,
    )
    return run(settings)


def _target_option(p: argparse.ArgumentParser) -> None:
    """--target after the command too (`riskd dashboard --target H:P`); the global one otherwise."""
    p.add_argument(
        "--target",
        default=argparse.SUPPRESS,
        metavar="HOST:PORT",
        help="the risk server (env RISKD_TARGET; same as riskd --target)",
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve the live risk dashboard (web, Server-Sent Events) for the server at --target",
        description="A stateless web dashboard: one subscription to the risk server (--target) per process, "
        "fanned out to any number of browsers over Server-Sent Events. Open http://LISTEN/ in a browser. "
        "Scale out by running more processes (with --reuse-port they can share one port). "
        "Needs the 'dashboard' extra (aiohttp).",
    )
    p.add_argument(
        "--listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="HTTP address (default %(default)s)"
    )
    p.add_argument(
        "--alert-buffer", type=_positive(int), default=DEFAULT_ALERT_BUFFER, metavar="N",
        help="recent alerts a new browser gets first (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--max-accounts", type=_positive(int), default=DEFAULT_MAX_ACCOUNTS, metavar="N",
        help="accounts shown at most; more are counted (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--queue-frames", type=_positive(int), default=DEFAULT_QUEUE_FRAMES, metavar="N",
        help="frames queued per browser before the oldest is dropped (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--max-connections", type=_positive(int), default=DEFAULT_MAX_CONNECTIONS, metavar="N",
        help="browser connections per process; more get 503 (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--alert-interval-ms", type=_positive(float), default=100.0, metavar="MS",
        help="at most one alerts frame per browser this often; the first at once (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--account-interval-ms", type=_positive(float), default=250.0, metavar="MS",
        help="at most one accounts frame per browser this often (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--snapshot-interval-ms", type=_positive(int), default=250, metavar="MS",
        help="min_interval_ms asked of StreamRiskSnapshots (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--reuse-port", action="store_true", help="SO_REUSEPORT: several dashboard processes on one port"
    )
    p.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's own event loop even if uvloop is installed"
    )
    _target_option(p)
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser(
        "watch",
        help="the live risk dashboard in the terminal: accounts by utilisation and the alert feed",
        description="Accounts closest to their limits and the live alert feed, redrawn as they change. "
        "Filters apply to the feed. Needs the 'watch' extra (rich).",
    )
    p.add_argument(
        "--severity",
        default="",
        metavar="LEVEL",
        help="only alerts at least this severe (INFO, WARNING, CRITICAL)",
    )
    p.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="ACCOUNT",
        help="only this account's alerts (repeatable)",
    )
    p.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="CHECK",
        help="only this check's alerts, e.g. max-order-quantity (repeatable)",
    )
    p.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND",
        help="only this kind of alert, e.g. check-reject (repeatable)",
    )
    p.add_argument(
        "--alerts", type=_positive(int), default=20, metavar="N", help="alert rows (default %(default)s)"
    )
    p.add_argument(
        "--accounts", type=_positive(int), default=20, metavar="N", help="account rows (default %(default)s)"
    )
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="SECONDS",
        help="exit after this long, printing the last screen (default: until Ctrl-C)",
    )  # fmt: skip
    p.add_argument(
        "--snapshot-interval-ms", type=_positive(int), default=250, metavar="MS", help=argparse.SUPPRESS
    )
    _target_option(p)
    p.set_defaults(func=cmd_watch)
