"""`riskd alerts follow`: print the server's alerts as they arrive, until Ctrl-C; `riskd alerts
query`: page through the history, newest first; `riskd alerts stats`: the sliding-window counts.

One line per alert (time, seq, severity, kind, check, account, symbol, message,
observed/threshold, count), or one JSON object per line with --json; what the stream reports as
dropped or missed is printed in line, before the alerts of that batch. Reconnects (a server
restart, say) are noted on stderr and resume after the last seq printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from typing import Any

from . import _alerts as al
from ._cli_input import UsageError
from ._types import AlertBatch, AlertInfo
from .sync_client import RiskClient


def add_follow(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "follow",
        help="print alerts as they arrive (Ctrl-C stops)",
        description="Print alerts as the server raises them, until Ctrl-C. Filters combine (all must "
        "match); each takes names in any case (- or _) or numbers, and several values. Reconnects "
        "after a server restart and resumes after the last alert printed.",
    )
    _add_filters(p)
    p.add_argument(
        "--after-seq",
        type=int,
        default=0,
        metavar="N",
        help="first replay the alerts after seq N that the server still holds",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_follow)


def add_query(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "query",
        help="print alerts from the history, newest first",
        description="Print the newest alerts matching the filters, newest first, paging through the "
        "server's history (and PostgreSQL past it) until --limit alerts are printed.",
    )
    _add_filters(p)
    p.add_argument("--limit", type=int, default=50, metavar="N", help="print at most N alerts (default 50)")
    p.add_argument("--before-seq", type=int, default=0, metavar="N", help="only alerts older than seq N")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_query)


def add_stats(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "stats",
        help="alert counts over 1 min, 15 min and 1 h: per check and top accounts",
        description="Alert occurrences (repeats included) over the last 1 minute, 15 minutes and "
        "hour, per check and for the top offending accounts.",
    )
    p.add_argument("--top", type=int, default=10, metavar="N", help="top offending accounts (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_stats)


def _add_filters(p: argparse.ArgumentParser) -> None:
    severities = ", ".join(al.SEVERITIES)
    p.add_argument("--severity", metavar="S", help=f"this severity and above ({severities})")
    for flag, what in (
        ("--account", "these accounts"),
        ("--symbol", "these symbols"),
        ("--kind", "these kinds (check-reject, trading-state, overfill, ...)"),
        ("--check", "these checks (max-position, max-order-quantity, ...)"),
    ):
        p.add_argument(
            flag, nargs="+", action="extend", default=[], metavar=flag[2:].upper(), help=f"only {what}"
        )


def _check_filters(args: argparse.Namespace) -> None:
    try:  # bad names are usage errors, found before connecting
        al.alert_filter(args.severity, args.account, args.symbol, args.kind, args.check)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_query(args: argparse.Namespace) -> int:
    _check_filters(args)
    if args.limit < 1 or args.before_seq < 0:
        raise UsageError("--limit must be >= 1 and --before-seq >= 0")
    printed, before = 0, args.before_seq
    with RiskClient(args.target, timeout=args.timeout) as client:
        while printed < args.limit:
            page = client.query_alerts(
                min_severity=args.severity,
                accounts=args.account,
                symbols=args.symbol,
                kinds=args.kind,
                checks=args.check,
                before_seq=before,
                page_size=min(args.limit - printed, 1000),
            )
            for alert in page.alerts:
                print(json.dumps(asdict(alert)) if args.json else format_alert(alert))
            printed += len(page.alerts)
            if not page.next_before_seq:
                break
            before = page.next_before_seq
    if not printed and not args.json:
        print("no alerts match")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    if not 1 <= args.top <= 1000:
        raise UsageError("--top must be between 1 and 1000")
    with RiskClient(args.target, timeout=args.timeout) as client:
        report = client.alert_stats(args.top)
    if args.json:
        print(json.dumps(asdict(report)))
        return 0
    print(
        f"alerts raised {report.raised:,}, occurrences {report.occurrences:,}, lost {report.lost:,}, "
        f"last seq {report.last_seq}"
    )
    for w in report.windows:
        span = f"{w.seconds // 60} min" if w.seconds < 3600 else f"{w.seconds // 3600} h"
        print(f"\nlast {span}: {w.total:,} occurrence(s), {w.accounts:,} account(s)")
        checks = ", ".join(f"{c or 'other'} {n:,}" for c, n in w.by_check) or "-"
        print(f"  by check:     {checks}")
        top = ", ".join(f"{a} {n:,}" for a, n in w.top_accounts) or "-"
        print(f"  top accounts: {top}")
    return 0


def cmd_follow(args: argparse.Namespace) -> int:
    _check_filters(args)
    if args.after_seq < 0:
        raise UsageError(f"--after-seq: must not be negative, got {args.after_seq}")
    _note_reconnects()
    with RiskClient(args.target, timeout=args.timeout) as client:
        stream = client.subscribe_alerts(
            min_severity=args.severity,
            accounts=args.account,
            symbols=args.symbol,
            kinds=args.kind,
            checks=args.check,
            after_seq=args.after_seq,
        )
        try:
            for batch in stream:
                for line in batch_lines(batch, args.json):
                    print(line)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:  # `riskd alerts follow | head`
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # keep the interpreter's final flush quiet
        finally:
            stream.close()
    return 0


def batch_lines(batch: AlertBatch, as_json: bool) -> list[str]:
    lines = []
    if batch.missed:
        note = f"missed {batch.missed} alert(s): the server no longer held them"
        lines.append(json.dumps({"missed": batch.missed}) if as_json else f"-- {note}")
    if batch.dropped:
        note = f"dropped {batch.dropped} alert(s): this reader fell behind"
        lines.append(json.dumps({"dropped": batch.dropped}) if as_json else f"-- {note}")
    lines += [json.dumps(asdict(a)) if as_json else format_alert(a) for a in batch.alerts]
    return lines


def format_alert(a: AlertInfo) -> str:
    from .cli import _num

    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a.time)) + f".{int(a.time % 1 * 1000):03d}"
    values = f"{_num(a.observed)}/{_num(a.threshold)}" if (a.observed or a.threshold) else "-"
    count = f"x{a.count}" + (" (summary)" if a.summary else "")
    fields: list[Any] = [
        stamp,
        f"#{a.seq}",
        f"{a.severity:<8}",
        f"{a.kind:<18}",
        f"{a.check or '-':<18}",
        a.account or "-",
        a.symbol or "-",
        a.message,
        values,
        count,
    ]
    return "  ".join(str(f) for f in fields)


def _note_reconnects() -> None:
    """The client logs each reconnect at INFO on "riskd.client": show them on stderr."""
    logger = logging.getLogger("riskd.client")
    if not any(getattr(h, "_riskd_follow", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("riskd: %(message)s"))
        handler._riskd_follow = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
