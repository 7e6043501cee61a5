"""Large limit changes beside the journal: an import of a million limits is a file, not a record.

A LimitsChanged inline in one record would be ~250 bytes a limit: a million-limit import would be
a 250 MB record built on the event loop (past journal.format.MAX_PAYLOAD, which a reader takes for
damage). Past ``INLINE_LIMITS`` the change is written, in a worker thread and in constant extra
memory, to ``limits-<seq>.jsonl`` in the journal's folder (fsynced, then renamed into place when
its seq is known), and the journal gets a small LIMITS_FILE record naming it. Replay reads it back
(``read``); pruning deletes it with the segment that held its record (``prune``).

File layout, JSON Lines: a header ``{"version", "who", "action", "ts", "upserted": n, "deleted": m}``
then n lines ``{"u": limit}`` and m lines ``{"d": limit_id}``. Floats keep every bit (NaN
included, as journal.codec writes them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from .. import changes as ch
from .codec import CodecError, _limit

INLINE_LIMITS = 2_000  # limits + deletions past which a change goes to a side file
_PENDING = "limits-pending-{version:012d}.jsonl"
_NAME = "limits-{seq:020d}.jsonl"
_SEQ = re.compile(r"^limits-(\d{20})\.jsonl$")
_LINES = 10_000  # lines encoded per write: bounded memory whatever the change's size


def _dumps(doc: object) -> str:
    return json.dumps(doc, allow_nan=True, separators=(",", ":"))


def write_pending(directory: Path, change: ch.LimitsChanged) -> Path:
    """Write the change to a pending side file (worker thread), fsynced; returns its path."""
    path = directory / _PENDING.format(version=change.version)
    header = {
        "version": change.version,
        "who": change.who,
        "action": change.action,
        "ts": change.ts,
        "upserted": len(change.upserted),
        "deleted": len(change.deleted),
    }
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(_dumps(header) + "\n")
        for lo in range(0, len(change.upserted), _LINES):
            part = change.upserted[lo : lo + _LINES]
            f.write("".join(_dumps({"u": dataclasses.asdict(lim)}) + "\n" for lim in part))
        for lo in range(0, len(change.deleted), _LINES):
            part = change.deleted[lo : lo + _LINES]
            f.write("".join(_dumps({"d": limit_id}) + "\n" for limit_id in part))
        f.flush()
        os.fsync(f.fileno())
    return path


def commit(pending: Path, seq: int) -> str:
    """Rename a pending side file to the name of the record (seq) that refers to it; its name.
    Called on the event loop right before that record is appended (one rename, no data)."""
    name = _NAME.format(seq=seq)
    os.replace(pending, pending.parent / name)
    return name


def reference(name: str, change: ch.LimitsChanged) -> bytes:
    """The LIMITS_FILE record's body: the side file's name and the change's counts."""
    return _dumps(
        {
            "file": name,
            "version": change.version,
            "upserted": len(change.upserted),
            "deleted": len(change.deleted),
        }
    ).encode()


def read(directory: Path, body: bytes) -> ch.LimitsChanged:
    """The change a LIMITS_FILE record refers to; CodecError when the file is missing or does not
    hold what the record says."""
    try:
        ref = json.loads(body)
        path = directory / str(ref["file"])
        with open(path, encoding="utf-8", errors="surrogatepass") as f:
            head = json.loads(f.readline())
            upserted = []
            deleted = []
            for line in f:
                doc = json.loads(line)
                if "u" in doc:
                    upserted.append(_limit(doc["u"]))
                else:
                    deleted.append(str(doc["d"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CodecError(f"limit side file for record {body[:120]!r}: {exc}") from None
    if (len(upserted), len(deleted), head.get("version")) != (
        ref["upserted"],
        ref["deleted"],
        ref["version"],
    ):
        raise CodecError(f"limit side file {path.name} does not hold the change its record names")
    return ch.LimitsChanged(
        tuple(upserted),
        tuple(deleted),
        int(head["version"]),
        str(head["who"]),
        str(head["action"]),
        float(head["ts"]),
    )


def prune(directory: Path, first_seq: int, pending: bool = False) -> int:
    """Delete the side files of records before ``first_seq`` (pruned with their segments) and,
    with ``pending`` (at start-up only: a change may be being written), the pending files a crash
    left before their record was appended; how many went."""
    gone = 0
    for path in directory.glob("limits-*.jsonl"):
        m = _SEQ.match(path.name)
        stale = pending and path.name.startswith("limits-pending-")
        if stale or (m is not None and int(m.group(1)) < first_seq):
            path.unlink(missing_ok=True)
            gone += 1
    return gone
