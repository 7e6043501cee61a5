"""Following the journal while it is written (the feeder's reader).

``JournalTail.poll()`` returns the whole, checked records from a seq onward that are on disk now,
and nothing (not an error) where the written data ends: a record the writer has not finished
(its length runs past the end of the file, or its CRC fails with nothing valid after it: a torn
tail that the server's next start cuts), a segment whose header is not written yet, or no
segment yet at all. When the open segment is full the writer creates the next one, named by its
first seq, and the tail moves on to it once the old one is read to its end. ``follow`` and
``records`` wait between polls (``POLL`` seconds).

Real damage still raises JournalDamage: a bad record with a valid one after it, bytes after the
last record of a segment that has a successor, a bad segment header, or the records wanted pruned
away already.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from .format import (
    MAGIC,
    MAX_PAYLOAD,
    RECORD_HEADER,
    SEGMENT_HEADER,
    VERSION,
    Record,
    crc_of,
    segment_name,
    segments,
)
from .reader import JournalDamage, _check, resync

POLL = 0.010  # seconds between looks at the end of the journal
CHUNK = 1 << 20  # bytes read per pread
_RESYNC_WINDOW = 64


class JournalTail:
    """Records with seq >= ``from_seq``, in order, as they are written. One reader, one thread."""

    def __init__(self, directory: Path, from_seq: int, *, chunk: int = CHUNK) -> None:
        self.directory = Path(directory)
        self.next_seq = max(1, from_seq)  # the next seq to return
        self._chunk = chunk
        self._fd = -1
        self._path: Path | None = None
        self._first = 0  # the open segment's first seq
        self._seq = 0  # the seq of the record at _offset
        self._offset = 0
        self._checked: tuple[Path, int, int] | None = None

    # ------------------------------------------------------------------ reading

    def poll(self, max_records: int = 1_000, max_bytes: int = 64 << 20) -> list[Record]:
        """The records available now (at most ``max_records``, about ``max_bytes``); [] at the end."""
        out: list[Record] = []
        size = 0
        while len(out) < max_records and size < max_bytes:
            if self._fd < 0 and not self._open_segment():
                break
            got = self._read_records(max_records - len(out))
            if not got:
                if not self._segment_done():
                    break
                got = self._read_records(max_records - len(out))  # written just before the rollover
                if not got:
                    if os.fstat(self._fd).st_size != self._offset:
                        assert self._path is not None
                        raise JournalDamage(
                            self._path, self._offset, "bytes after the last record", self._seq, False
                        )
                    nxt = self.directory / segment_name(self._seq)
                    if not nxt.exists():
                        raise JournalDamage(nxt, 0, "segment missing", self._seq, False)
                    if not self._adopt(self._seq, nxt):
                        break
                    continue
            for rec in got:
                if rec.seq >= self.next_seq:
                    out.append(rec)
                    size += len(rec.payload)
            if out:
                self.next_seq = out[-1].seq + 1
        return out

    def follow(self, poll: float = POLL, idle_timeout: float | None = None) -> Iterator[Record]:
        """Every record from ``from_seq`` on, waiting ``poll`` s at the end; returns after
        ``idle_timeout`` s without a new record (None: never)."""
        idle_since = time.monotonic()
        while True:
            batch = self.poll()
            if batch:
                yield from batch
                idle_since = time.monotonic()
                continue
            if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                return
            time.sleep(poll)

    async def records(self, poll: float = POLL) -> AsyncIterator[list[Record]]:
        """Batches of records as they come (each read is a few syscalls on the page cache: done
        on the event loop; it sleeps ``poll`` s at the end)."""
        while True:
            batch = self.poll()
            if batch:
                yield batch
            else:
                await asyncio.sleep(poll)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # ------------------------------------------------------------------ segments

    def _open_segment(self) -> bool:
        """Open the segment holding next_seq; False when there is none yet (wait)."""
        segs = segments(self.directory)
        if not segs:
            return False
        holding = [(first, path) for first, path in segs if first <= self.next_seq]
        if not holding:
            first, path = segs[0]
            raise JournalDamage(
                path, 0, f"seq {self.next_seq} is no longer in the journal (it starts at {first})",
                self.next_seq, False,
            )  # fmt: skip
        first, path = holding[-1]
        return self._adopt(first, path)

    def _adopt(self, first: int, path: Path) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        head = os.pread(fd, SEGMENT_HEADER.size, 0)
        if len(head) < SEGMENT_HEADER.size:  # created, header not written yet
            os.close(fd)
            return False
        magic, version, header_seq = SEGMENT_HEADER.unpack(head)
        if magic != MAGIC or version != VERSION or header_seq != first:
            os.close(fd)
            why = f"bad segment header ({magic!r}, version {version}, first seq {header_seq})"
            raise JournalDamage(path, 0, why, first, False)
        self.close()
        self._fd, self._path, self._first = fd, path, first
        self._seq, self._offset = first, SEGMENT_HEADER.size
        return True

    def _segment_done(self) -> bool:
        """At the open segment's last whole record: has the writer started the next segment? If not,
        whatever follows is a record being written or a torn tail (wait), unless a valid record
        comes after it, or a later segment exists (damage in the middle: raise)."""
        assert self._path is not None
        if self._seq > self._first and (self.directory / segment_name(self._seq)).exists():
            return True
        if any(first > self._first for first, _ in segments(self.directory)):
            return True  # finished (the caller reads its last records; then the next must exist)
        self._check_tail("bad record before valid ones")
        return False

    def _check_tail(self, why: str) -> None:
        """Raise if a valid record follows the bytes at the read position (looked at once per
        position and file size: a torn tail can be long)."""
        assert self._path is not None
        size = os.fstat(self._fd).st_size
        if size <= self._offset or self._checked == (self._path, self._offset, size):
            return
        data = os.pread(self._fd, size - self._offset, self._offset)
        if _check(data, 0, self._seq)[0] is not None:
            return  # written since it was read: whole and valid, the next poll takes it
        self._checked = (self._path, self._offset, size)
        if resync(data, 0, self._seq, _RESYNC_WINDOW) is not None:
            raise JournalDamage(self._path, self._offset, why, self._seq, False)

    # ------------------------------------------------------------------ records

    def _read_records(self, max_records: int) -> list[Record]:
        """Whole valid records from the open segment's read position (advancing it)."""
        out: list[Record] = []
        while len(out) < max_records:
            data = os.pread(self._fd, self._chunk, self._offset)
            at = 0
            while len(out) < max_records and at + RECORD_HEADER.size <= len(data):
                length, crc, seq, type_, flags = RECORD_HEADER.unpack_from(data, at)
                if length > MAX_PAYLOAD:
                    return self._bad(out, f"length {length:,} is implausible")
                start = at + RECORD_HEADER.size
                if start + length > len(data):
                    if at == 0 and len(data) == self._chunk:  # larger than a chunk: read it whole
                        data = os.pread(self._fd, RECORD_HEADER.size + length, self._offset)
                        if len(data) == RECORD_HEADER.size + length:
                            continue
                    break
                payload = bytes(data[start : start + length])
                if flags or crc_of(seq, type_, payload) != crc:
                    return self._bad(out, "CRC mismatch")
                if seq != self._seq:
                    return self._bad(out, f"seq {seq} where {self._seq} was expected")
                out.append(Record(seq, type_, payload))
                at = start + length
                self._offset += RECORD_HEADER.size + length
                self._seq += 1
            if at == 0 or len(data) < self._chunk:
                break
        return out

    def _bad(self, out: list[Record], why: str) -> list[Record]:
        """A record that fails its check: the end of what is written for now (the caller decides
        whether that is a torn tail to wait on or damage), after the good ones before it."""
        if out:
            return out
        assert self._path is not None
        if (self.directory / segment_name(self._seq)).exists():
            raise JournalDamage(self._path, self._offset, why, self._seq, False)
        self._check_tail(why)
        return out  # a torn tail: Journal.open cuts it at the server's next start


class JournalEnd:
    """The journal's last seq, found cheaply and repeatedly (lag reports): segment names give the
    first seq of each segment, and only the newest one's record headers are walked (lengths only,
    no CRC), from where the previous call stopped."""

    def __init__(self, directory: Path, chunk: int = CHUNK) -> None:
        self.directory = Path(directory)
        self._chunk = chunk
        self._path: Path | None = None
        self._offset = 0
        self._seq = 0

    def last_seq(self) -> int:
        """The seq of the last whole record written (0: none)."""
        segs = segments(self.directory)
        if not segs:
            return 0
        first, path = segs[-1]
        if path != self._path:
            self._path, self._offset, self._seq = path, SEGMENT_HEADER.size, first
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return self._seq - 1
        try:
            while True:
                data = os.pread(fd, self._chunk, self._offset)
                at = 0
                while at + RECORD_HEADER.size <= len(data):
                    length = RECORD_HEADER.unpack_from(data, at)[0]
                    if at + RECORD_HEADER.size + length > len(data):
                        break
                    at += RECORD_HEADER.size + length
                    self._seq += 1
                if at == 0:
                    if len(data) >= RECORD_HEADER.size:  # one record larger than a chunk
                        length = RECORD_HEADER.unpack_from(data, 0)[0]
                        if os.fstat(fd).st_size >= self._offset + RECORD_HEADER.size + length:
                            self._offset += RECORD_HEADER.size + length
                            self._seq += 1
                            continue
                    break
                self._offset += at
        finally:
            os.close(fd)
        return self._seq - 1


def journal_end(directory: Path) -> JournalEnd:
    return JournalEnd(directory)


__all__ = ["CHUNK", "POLL", "JournalEnd", "JournalTail", "journal_end"]
