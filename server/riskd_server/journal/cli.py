"""`riskd journal inspect` and `riskd journal verify` (registered through ``riskd.commands``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from . import records
from .codec import register_inspect
from .reader import JournalDamage, read, verify

# Names of the record types, and one-line descriptions of their payloads, for inspect.
TYPE_NAMES: dict[int, str] = {}
DESCRIBERS: dict[int, Callable[[bytes], str]] = {}
register_inspect(TYPE_NAMES, DESCRIBERS)
records.register_inspect(TYPE_NAMES, DESCRIBERS)


def journal_dir(args: argparse.Namespace) -> Path:
    return Path(args.journal_dir) if args.journal_dir else Path(args.data_dir) / "journal"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("journal", help="inspect or verify riskd's local journal")
    sub = parser.add_subparsers(dest="journal_command", required=True)
    for name, helptext in (
        ("inspect", "print the journal's records, one a line"),
        ("verify", "check every record's CRC and seq; exit 1 naming the first damage"),
    ):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument(
            "--data-dir", default=".riskd", help="riskd's data_dir (the journal is DATA_DIR/journal)"
        )
        p.add_argument("--journal-dir", default="", help="the journal folder itself (overrides --data-dir)")
        if name == "inspect":
            p.add_argument("--from", dest="from_seq", type=int, default=0, help="first seq to print")
            p.add_argument("--limit", type=int, default=0, help="records to print (0: all)")
        p.set_defaults(func=_inspect if name == "inspect" else _verify)


def _inspect(args: argparse.Namespace) -> int:
    directory = journal_dir(args)
    shown = 0
    try:
        for item in read(directory, args.from_seq):
            rec = item.record
            name = TYPE_NAMES.get(rec.type, f"type {rec.type}")
            what = DESCRIBERS[rec.type](rec.payload) if rec.type in DESCRIBERS else ""
            print(
                f"{rec.seq:>12}  {name:<20} {len(rec.payload):>9} B  {item.path.name}:{item.offset}  {what}".rstrip()
            )
            shown += 1
            if args.limit and shown >= args.limit:
                break
    except JournalDamage as exc:
        print(f"riskd journal: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # | head
        return 0
    return 0


def _verify(args: argparse.Namespace) -> int:
    directory = journal_dir(args)
    if not directory.is_dir():
        print(f"riskd journal: no journal at {directory}", file=sys.stderr)
        return 1
    v = verify(directory)
    span = f"seqs {v.first_seq}-{v.last_seq}" if v.records else "no records"
    print(f"{v.segments} segment(s), {v.records:,} record(s), {span}, {v.bytes:,} bytes")
    if v.damage is not None:
        print(f"riskd journal: {v.damage}", file=sys.stderr)
        return 1
    print("every record checked: OK")
    return 0
