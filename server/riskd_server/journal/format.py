"""The journal's on-disk format: segment files of length-prefixed, CRC-32C-checked, numbered records.

A segment is ``{first_seq:020d}.seg``: a 16-byte header (magic, format version, the seq of its
first record), then records back to back. A record is a 20-byte header and its payload:

    u32 payload length | u32 CRC-32C | u64 seq | u16 type | u16 flags (0) | payload

little-endian. The CRC covers seq, type, flags and payload, so a torn or overwritten record fails
it wherever the damage is; a wrong length shows as a CRC failure or a record running past the end
of its file. Seqs are consecutive across segments, which is how a reader knows nothing is missing.
Types are the journal users' (the engine's record kinds); this module only moves bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

MAGIC = b"RJNL"
VERSION = 1
SEGMENT_HEADER = struct.Struct("<4sIQ")  # magic, version, first seq
RECORD_HEADER = struct.Struct("<IIQHH")  # length, crc, seq, type, flags
_CRC_PART = struct.Struct("<QHH")  # what the CRC covers ahead of the payload
MAX_PAYLOAD = 256 * 2**20  # a record larger than this is damage, not data
SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    type: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Located:
    """A record and where it is (for inspect, verify and error messages)."""

    record: Record
    path: Path
    offset: int


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.seg"


def segment_header(first_seq: int) -> bytes:
    return SEGMENT_HEADER.pack(MAGIC, VERSION, first_seq)


def crc_of(seq: int, type_: int, payload: bytes | memoryview) -> int:
    return google_crc32c.extend(google_crc32c.value(_CRC_PART.pack(seq, type_, 0)), payload)


def encode(seq: int, type_: int, payload: bytes | memoryview) -> bytes:
    """One record's bytes."""
    return RECORD_HEADER.pack(len(payload), crc_of(seq, type_, payload), seq, type_, 0) + bytes(payload)


def growth(directory: Path) -> tuple[int, int]:
    """(first seq, size) of the newest segment: it changes whenever the writer appends (the
    feeder tells a busy server from a quiet one by it). A directory scan and one stat."""
    segs = segments(directory)
    if not segs:
        return (0, 0)
    first, path = segs[-1]
    try:
        return (first, path.stat().st_size)
    except OSError:  # pruned or renamed between the scan and the stat: it moved, so it grew
        return (first, -1)


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The segment files in ``directory`` as (first seq, path), oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        m = SEGMENT_NAME.match(path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)
