"""`riskd limits apply-template|templates|export|import|history`: limits at scale from a shell.

export writes JSON Lines (one limit per line) to stdout or --output as the chunks arrive, and
import streams a file a chunk at a time, so neither holds the limit set in memory. import prints
the diff (added, changed old -> new, deleted, unchanged count); a refused import names the line
and the field, and changes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from . import _limits_io as lio
from ._columns import parse_check
from ._types import LimitDiffInfo, LimitSpec
from .sync_client import RiskClient

EXIT_OK, EXIT_USAGE = 0, 2
Client = Callable[[argparse.Namespace], RiskClient]


def add_limits_io(limits: argparse._SubParsersAction, client: Client, usage: type[Exception]) -> None:
    """Register the commands under `riskd limits`; client(args) opens the connection."""
    p = limits.add_parser(
        "apply-template",
        help="set up an account's limits from a template",
        description="Expand TEMPLATE for ACCOUNT (limit ids ACCOUNT:TEMPLATE:SUFFIX, thresholds x --scale) "
        "and upsert them; applying it again changes nothing. --dry-run prints the diff only.",
    )
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("template", metavar="TEMPLATE")
    p.add_argument(
        "--scale", type=float, default=1.0, metavar="X", help="multiply every threshold (default 1)"
    )
    p.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    p.set_defaults(func=lambda args: cmd_apply_template(args, client))

    p = limits.add_parser("templates", help="list the limit templates the server knows")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=lambda args: cmd_templates(args, client))

    p = limits.add_parser(
        "export",
        help="write limits as JSON Lines (one per line) to stdout",
        description="Stream every limit (filtered) in limit_id order as JSON Lines, from one limit-set "
        "version, in constant memory: riskd limits export > limits.jsonl",
    )
    p.add_argument("--account", default="", help="only limits of this account")
    p.add_argument("--symbol", default="", help="only limits of this symbol")
    p.add_argument("--kind", default="", help="only limits of this kind (e.g. max-order-quantity)")
    p.add_argument("--template", default="", help="only limits created from this template")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=lambda args: cmd_export(args, client, usage))

    p = limits.add_parser(
        "import",
        help="import limits from JSON Lines (upsert by limit_id, all or nothing)",
        description="Import a JSON Lines file (riskd limits export's format; - reads stdin), streamed in "
        "chunks. Upsert by limit_id, so importing the same file again changes nothing; --replace also "
        "deletes the limits the file does not contain. Nothing changes unless every line is valid; an "
        "error names the line and the field. Prints the diff.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="print the diff; change nothing")
    p.add_argument("--replace", action="store_true", help="also delete limits not in the file")
    p.add_argument("--max-changes", type=int, default=50, metavar="N", help="changes to list (default 50)")
    p.add_argument("--chunk-size", type=int, default=lio.DEFAULT_CHUNK, metavar="N", help=argparse.SUPPRESS)
    p.set_defaults(func=lambda args: cmd_import(args, client, usage))

    p = limits.add_parser("history", help="show a limit's stored versions: who changed what, when")
    p.add_argument("limit_id", metavar="LIMIT_ID")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=lambda args: cmd_history(args, client))


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else f"{x:.10g}"


def _brief(lim: LimitSpec) -> str:
    parts = [str(lim.kind), f"threshold={_num(lim.threshold)}"]
    parts += [f"account={lim.account}"] if lim.account else []
    parts += [f"symbol={lim.symbol}"] if lim.symbol else []
    parts += [f"warn={_num(lim.warn_fraction)}"] if lim.warn_fraction else []
    parts += ["disabled"] if lim.disabled else []
    parts += [f"template={lim.template}"] if lim.template else []
    parts += [f"reference_volatility={_num(lim.reference_volatility)}"] if lim.reference_volatility else []
    parts += [f"min_scale={_num(lim.min_scale)}"] if lim.min_scale else []
    parts += [f"description={lim.description!r}"] if lim.description else []
    return " ".join(parts)


def _changed_fields(old: LimitSpec, new: LimitSpec) -> str:
    names = ("kind", "account", "symbol", "threshold", "warn_fraction", "disabled", "description", "template",
             "reference_volatility", "min_scale")  # fmt: skip
    out = []
    for name in names:
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            show = _num if isinstance(a, float) and not isinstance(a, bool) else repr
            out.append(f"{name} {show(a)} -> {show(b)}")
    return ", ".join(out)


def print_diff(diff: LimitDiffInfo, out: TextIO, *, dry_run: bool) -> None:
    for c in diff.changes:
        if c.old is None and c.new is not None:
            print(f"+ {c.limit_id}  {_brief(c.new)}", file=out)
        elif c.new is None:
            print(f"- {c.limit_id}", file=out)
        elif c.old is not None:
            print(f"~ {c.limit_id}  {_changed_fields(c.old, c.new)}", file=out)
    if diff.omitted:
        print(f"  ... and {diff.omitted} more change(s) not listed", file=out)
    verb = "would be " if dry_run else ""
    print(
        f"{diff.added} {verb}added, {diff.changed} {verb}changed, {diff.deleted} {verb}deleted, "
        f"{diff.unchanged} unchanged",
        file=out,
    )


def cmd_apply_template(args: argparse.Namespace, client: Client) -> int:
    with client(args) as c:
        result = c.apply_template(args.account, args.template, scale=args.scale, dry_run=args.dry_run)
    print_diff(result.diff, sys.stdout, dry_run=args.dry_run)
    if args.dry_run:
        print(f"dry run: nothing changed (limits version {result.limits_version})")
    else:
        print(f"applied {args.template} to {args.account}: {result.upserted} limit(s) set "
              f"(limits version {result.limits_version})")  # fmt: skip
        if result.persisted is False:
            print(
                "riskd: warning: applied, but only queued for the database (not yet persisted)",
                file=sys.stderr,
            )
    return EXIT_OK


def cmd_templates(args: argparse.Namespace, client: Client) -> int:
    with client(args) as c:
        templates = c.list_templates()
    if args.json:
        doc = [
            {
                "name": t.name,
                "description": t.description,
                "source": t.source,
                "limits": [spec_json(lim) for lim in t.limits],
            }
            for t in templates
        ]
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    for t in templates:
        print(f"{t.name} ({t.source}): {t.description}")
        for lim in t.limits:
            print(f"  {lim.limit_id}  {_brief(lim)}")
    return EXIT_OK


def spec_json(lim: LimitSpec) -> dict[str, Any]:
    """A limit's settable fields as JSON (what `limits export` writes and `limits import` reads)."""
    return {
        "limit_id": lim.limit_id,
        "kind": lim.kind,
        "account": lim.account,
        "symbol": lim.symbol,
        "threshold": lim.threshold,
        "warn_fraction": lim.warn_fraction,
        "disabled": lim.disabled,
        "description": lim.description,
        "template": lim.template,
        "reference_volatility": lim.reference_volatility,
        "min_scale": lim.min_scale,
    }


def cmd_export(args: argparse.Namespace, client: Client, usage: type[Exception]) -> int:
    try:
        kind = parse_check(args.kind) if args.kind else None
    except ValueError as exc:
        raise usage(str(exc)) from None
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        with client(args) as c:
            n = lio.write_jsonl(
                c.export_limit_chunks(
                    account=args.account, symbol=args.symbol, kind=kind, template=args.template
                ),
                out,
            )
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {n} limit(s)", file=sys.stderr)
    return EXIT_OK


def cmd_import(args: argparse.Namespace, client: Client, usage: type[Exception]) -> int:
    source: Any = sys.stdin if args.file == "-" else args.file
    if args.chunk_size < 1:
        raise usage("--chunk-size: must be >= 1")
    try:
        with client(args) as c:
            result = c.import_limits(
                source,
                dry_run=args.dry_run,
                replace=args.replace,
                max_changes=max(args.max_changes, 0) or 1,
                chunk_size=args.chunk_size,
            )
    except OSError as exc:
        raise usage(f"cannot read {args.file}: {exc.strerror or exc}") from None
    print_diff(result.diff, sys.stdout, dry_run=result.dry_run)
    tail = "dry run: nothing changed" if result.dry_run else "imported"
    print(f"{tail}: {result.records} record(s) read (limits version {result.limits_version})")
    if result.persisted is False:
        print(
            "riskd: warning: applied, but only queued for the database (not yet persisted)", file=sys.stderr
        )
    return EXIT_OK


def cmd_history(args: argparse.Namespace, client: Client) -> int:
    with client(args) as c:
        versions = c.limit_history(args.limit_id)
    if args.json:
        doc = [
            {
                "limits_version": v.limits_version,
                "time": dt.datetime.fromtimestamp(v.time, dt.UTC).isoformat(),
                "who": v.who,
                "action": v.action,
                "limit": spec_json(v.limit) if v.limit is not None else None,
            }
            for v in versions
        ]
        print(json.dumps(doc, indent=2))
        return EXIT_OK if versions else 1
    if not versions:
        print(f"riskd: no history for {args.limit_id}", file=sys.stderr)
        return 1
    for v in versions:
        when = dt.datetime.fromtimestamp(v.time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        what = _brief(v.limit) if v.limit is not None else "deleted"
        print(f"{when}Z  v{v.limits_version}  {v.action:<8}  {v.who}  {what}")
    return EXIT_OK
