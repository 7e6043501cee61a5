"""Reading the journal back: every record checked (length, CRC, consecutive seq), damage located.

Damage is classified the way start-up needs it:

- a **torn tail**: the last segment ends in a record that fails its check and no valid record
  follows it (what a crash in the middle of a write, or a power loss, leaves). Start-up truncates
  it there with a WARNING: those bytes were never acknowledged.
- **mid-journal damage**: anything else (a bad record with valid ones after it, a bad record in an
  older segment, a missing segment). Start-up refuses, naming the file and offset;
  ``--journal-repair`` truncates there and reports how many records that drops.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .format import (
    MAGIC,
    MAX_PAYLOAD,
    RECORD_HEADER,
    SEGMENT_HEADER,
    VERSION,
    Located,
    Record,
    crc_of,
    segments,
)

_SEQ = struct.Struct("<Q")


class JournalDamage(Exception):
    """A record (or segment) that fails its check."""

    def __init__(self, path: Path, offset: int, reason: str, seq: int, torn: bool) -> None:
        kind = "torn tail" if torn else "damage"
        super().__init__(f"journal {kind} in {path} at offset {offset} (expected seq {seq}): {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason
        self.seq = seq  # the seq the damaged record should have had
        self.torn = torn


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    """Where a segment's valid records end."""

    path: Path
    first_seq: int
    next_seq: int  # the seq after its last valid record
    end: int  # byte offset after its last valid record
    size: int  # file size
    damage: JournalDamage | None


def _check(buf: bytes | mmap.mmap, offset: int, seq: int) -> tuple[Record | None, int, str]:
    """The record at ``offset`` if it is whole and valid with this seq; else (None, 0, why)."""
    end = len(buf)
    if offset + RECORD_HEADER.size > end:
        return None, 0, "record header cut short"
    length, crc, got_seq, type_, flags = RECORD_HEADER.unpack_from(buf, offset)
    if length > MAX_PAYLOAD:
        return None, 0, f"length {length:,} is implausible"
    start = offset + RECORD_HEADER.size
    if start + length > end:
        return None, 0, f"record of {length:,} bytes runs past the end of the file"
    payload = bytes(buf[start : start + length])
    if crc_of(got_seq, type_, payload) != crc or flags:
        return None, 0, "CRC mismatch"
    if got_seq != seq:
        return None, 0, f"seq {got_seq} where {seq} was expected"
    return Record(got_seq, type_, payload), start + length, ""


def resync(buf: bytes | mmap.mmap, offset: int, seq: int, window: int = 1024) -> tuple[int, int] | None:
    """The first valid record after ``offset`` with a seq in [seq, seq + window): (its offset, its
    seq), or None. Seqs only grow, so the lowest seq found is also the first record in the file.
    Candidates are found by their seq bytes (bytes.find, in C), so this is fast however large the
    file."""
    for want in range(seq, seq + window):
        needle = _SEQ.pack(want)
        pos = buf.find(needle, offset + 1)
        while pos != -1:
            at = pos - 8  # seq sits 8 bytes into the header
            if at > offset and _check(buf, at, want)[0] is not None:
                return at, want
            pos = buf.find(needle, pos + 1)
    return None


def _resumes_after(buf: bytes | mmap.mmap, offset: int, seq: int) -> bool:
    """Is there a valid record shortly after the damage? Then it is in the middle, not a torn tail."""
    return resync(buf, offset, seq, window=64) is not None


def _open(path: Path) -> tuple[bytes | mmap.mmap, int]:
    size = path.stat().st_size
    if size == 0:
        return b"", 0
    with path.open("rb") as fh:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), size


def walk_segment(
    path: Path, first_seq: int, last: bool, visit: bool = True
) -> Iterator[Located | SegmentEnd]:
    """The segment's records, then its SegmentEnd (``damage`` set when a record failed)."""
    buf, size = _open(path)
    try:
        seq = first_seq
        if size < SEGMENT_HEADER.size:
            why = "segment header cut short"
            yield SegmentEnd(path, first_seq, seq, 0, size, JournalDamage(path, 0, why, seq, last))
            return
        magic, version, header_seq = SEGMENT_HEADER.unpack_from(buf, 0)
        if magic != MAGIC or version != VERSION or header_seq != first_seq:
            why = f"bad segment header ({magic!r}, version {version}, first seq {header_seq})"
            yield SegmentEnd(path, first_seq, seq, 0, size, JournalDamage(path, 0, why, seq, False))
            return
        offset = SEGMENT_HEADER.size
        while offset < size:
            record, after, why = _check(buf, offset, seq)
            if record is None:
                torn = last and not _resumes_after(buf, offset, seq)
                yield SegmentEnd(
                    path, first_seq, seq, offset, size, JournalDamage(path, offset, why, seq, torn)
                )
                return
            if visit:
                yield Located(record, path, offset)
            offset, seq = after, seq + 1
        yield SegmentEnd(path, first_seq, seq, offset, size, None)
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


def read(directory: Path, from_seq: int = 0) -> Iterator[Located]:
    """Every record with seq >= ``from_seq``, in order; JournalDamage at the first bad one (a
    torn tail included: callers that accept it catch it and look at ``torn``)."""
    segs = segments(directory)
    start = 0
    for i, (first, _) in enumerate(segs):  # the segment holding from_seq
        if first <= from_seq:
            start = i
    expected = segs[start][0] if segs else 0
    for i in range(start, len(segs)):
        first, path = segs[i]
        if first != expected:
            raise JournalDamage(
                path, 0, f"segment starts at seq {first}, {expected} expected", expected, False
            )
        end: SegmentEnd | None = None
        for item in walk_segment(path, first, last=i == len(segs) - 1):
            if isinstance(item, SegmentEnd):
                end = item
            elif item.record.seq >= from_seq:
                yield item
        assert end is not None
        if end.damage is not None:
            raise end.damage
        if i < len(segs) - 1 and end.end != end.size:
            raise JournalDamage(path, end.end, "bytes after the last record", end.next_seq, False)
        expected = end.next_seq


@dataclass(frozen=True, slots=True)
class Verified:
    segments: int
    records: int
    first_seq: int
    last_seq: int
    bytes: int
    damage: JournalDamage | None


def verify(directory: Path) -> Verified:
    """Check every record of every segment (``riskd journal verify``)."""
    segs = segments(directory)
    records, first, last = 0, 0, 0
    total = sum(p.stat().st_size for _, p in segs)
    try:
        for item in read(directory):
            records += 1
            first = first or item.record.seq
            last = item.record.seq
    except JournalDamage as exc:
        return Verified(len(segs), records, first, last, total, exc)
    return Verified(len(segs), records, first, last, total, None)


def last_seq_after(path: Path, offset: int, seq: int) -> int:
    """The last valid record's seq after damage at ``offset`` in ``path`` (``seq`` - 1 when none is
    found): with later segments' records, what a repair at that offset drops."""
    buf, _ = _open(path)
    try:
        last = seq - 1
        found = resync(buf, offset, seq)
        while found is not None:
            at, got = found
            record, after, _ = _check(buf, at, got)
            while record is not None:
                last, at, got = got, after, got + 1
                record, after, _ = _check(buf, at, got)
            found = resync(buf, at, got)
        return last
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
