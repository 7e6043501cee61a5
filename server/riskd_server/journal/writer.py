"""Appending to the journal: one ``write()`` per call, segments rolled over by size, bounded in total.

A record is in the page cache once ``append`` returns, so it survives a kill -9 of riskd; what a
power loss can take is bounded by ``fsync``:

- ``none``: whatever the kernel has not written back yet (typically up to 30 s);
- ``interval`` (default): at most ``fsync_interval`` (10 ms) - a background loop fdatasyncs the
  open segment when something was written since the last sync (journal.syncer: compiled, it
  never holds the GIL, so it never makes the event loop wait for it);
- ``always``: nothing acknowledged - every append fdatasyncs before it returns (milliseconds each
  on most disks, in the caller).

The journal holds at most ``max_bytes``; past that ``append`` raises JournalFull and nothing is
written (riskd then refuses mutating calls with UNAVAILABLE). ``prune`` deletes whole segments
whose records everyone has consumed (the newest snapshot and PostgreSQL both), which is what
keeps disk bounded.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import google_crc32c
import numpy as np

from . import syncer
from .format import _CRC_PART, RECORD_HEADER, SEGMENT_HEADER, encode, segment_header, segment_name, segments
from .reader import JournalDamage, SegmentEnd, last_seq_after, walk_segment

log = logging.getLogger("riskd.journal")

FSYNC_POLICIES = ("none", "interval", "always")


@dataclass(frozen=True, slots=True)
class OldSegment:
    """A segment prune may delete: its file, size, and the first seq of the segment after it."""

    path: Path
    size: int
    next_first: int


def delete_segments(old: Sequence[OldSegment]) -> tuple[list[OldSegment], OSError | None]:
    """Unlink ``old`` in order, stopping at the first failure: (the ones deleted, that failure).
    Safe in a worker thread (it touches files only)."""
    deleted: list[OldSegment] = []
    for seg in old:
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass  # gone already: it no longer takes any room either
        except OSError as exc:
            return deleted, exc
        deleted.append(seg)
    return deleted, None


class JournalFull(RuntimeError):
    """The journal is at journal_max_bytes: nothing more can be acknowledged until it is pruned."""


@dataclass(frozen=True, slots=True)
class Opened:
    """What opening found: where appends continue, and what a torn tail or a repair cut off."""

    next_seq: int
    truncated_bytes: int  # torn tail (or repair) bytes cut
    lost_records: int  # records a repair dropped (0 for a torn tail: never acknowledged)
    segments: int


@dataclass(frozen=True, slots=True)
class JournalStats:
    first_seq: int  # oldest record still held
    next_seq: int
    segments: int
    bytes: int
    max_bytes: int
    syncs: int

    @property
    def fill(self) -> float:
        return self.bytes / self.max_bytes if self.max_bytes else 0.0


def cut_at(directory: Path, path: Path, offset: int, first_seq: int) -> None:
    """Cut segment ``path`` (first seq ``first_seq``) at ``offset`` and delete every later segment;
    a segment left without its header goes too. What a torn tail or a repair does."""
    for first, later in segments(directory):
        if first > first_seq:
            later.unlink()
    if offset < SEGMENT_HEADER.size:
        path.unlink()
    else:
        with path.open("r+b") as fh:
            fh.truncate(offset)
            os.fsync(fh.fileno())


def repair_damage(directory: Path, damage: JournalDamage) -> int:
    """``--journal-repair``: cut the journal at ``damage``; returns the records that dropped."""
    segs = segments(directory)
    first = max(f for f, p in segs if p == damage.path)
    lost = last_seq_after(damage.path, damage.offset, damage.seq)
    later = [(f, p) for f, p in segs if f > first]
    if later:  # the later segments' records go too; they are valid, so their names say where they end
        last_first, last_path = later[-1]
        end = None
        for item in walk_segment(last_path, last_first, last=True, visit=False):
            if isinstance(item, SegmentEnd):
                end = item
        assert end is not None
        lost = max(lost, end.next_seq - 1)
    cut_at(directory, damage.path, damage.offset, first)
    return max(lost - damage.seq + 1, 1 if not damage.torn else 0)


class Journal:
    """The append side. Not thread-safe: one owner (the event loop) appends; with ``interval``
    the sync loop (journal.syncer, no GIL, no lock) syncs the open segment and, after a roll, the
    new directory entry and the segment it retired, which it then closes."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 64 * 2**20,
        max_bytes: int = 8 * 2**30,
        fsync: str = "interval",
        fsync_interval: float = 0.010,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if segment_bytes < 4096 or max_bytes < segment_bytes:
            raise ValueError("segment_bytes must be >= 4096 and max_bytes >= segment_bytes")
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._fd = -1
        self._segment_first = 0
        self._segment_size = 0
        self._closed_bytes = 0  # bytes in segments other than the open one
        self._first_seq = 0
        self._next_seq = 0
        self._segments = 0
        self._appended = 0  # bytes appended since open (bytes_appended)
        self._syncs = 0  # made by the appender (always, open, close); the sync loop counts its own
        # interval: the sync loop's shared state (journal.syncer) and thread
        self._control: np.ndarray | None = None
        self._ring: np.ndarray | None = None
        self._syncer: threading.Thread | None = None

    # ------------------------------------------------------------------ open

    def open(self, start_seq: int = 1, repair: bool = False) -> Opened:
        """Find the end (cutting a torn tail; refusing mid-journal damage unless ``repair``) and open
        the last segment for appending. An empty journal starts at ``start_seq``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        segs = segments(self.directory)
        truncated = lost = 0
        if not segs:
            self._create(start_seq)
        else:
            end = self._last_end(segs[-1])
            if end.damage is not None:
                damage = end.damage
                if not damage.torn and not repair:
                    raise damage
                truncated = end.size - damage.offset
                if damage.torn:
                    log.warning("%s; cut %d byte(s) never acknowledged", damage, truncated)
                    cut_at(self.directory, damage.path, damage.offset, end.first_seq)
                else:
                    lost = repair_damage(self.directory, damage)
                    log.error(
                        "journal repair: %s; cut %d byte(s), %d record(s) lost", damage, truncated, lost
                    )
                end = self._last_end(segments(self.directory)[-1]) if segments(self.directory) else None  # type: ignore[assignment]
            if end is None:
                self._create(start_seq)
            else:
                self._adopt(end)
            segs = segments(self.directory)
            self._first_seq = segs[0][0]
            self._segments = len(segs)
            self._closed_bytes = sum(p.stat().st_size for _, p in segs[:-1])
        if self.fsync == "interval":
            dir_fd = os.open(self.directory, os.O_RDONLY)
            self._control, self._ring = syncer.new_control(self._fd, dir_fd, self.fsync_interval)
            self._syncer = syncer.start(self._control, self._ring)
        return Opened(self._next_seq, truncated, lost, self._segments)

    def _last_end(self, seg: tuple[int, Path]) -> SegmentEnd:
        first, path = seg
        end = None
        for item in walk_segment(path, first, last=True, visit=False):
            if isinstance(item, SegmentEnd):
                end = item
        assert end is not None
        return end

    def _adopt(self, end: SegmentEnd) -> None:
        self._fd = os.open(end.path, os.O_WRONLY | os.O_APPEND)
        self._segment_first = end.first_seq
        self._segment_size = end.end
        self._next_seq = end.next_seq

    def _create(self, first_seq: int) -> None:
        """A new segment (its header written) becomes the open one. Making it durable (the file,
        its directory entry, the last bytes of the segment it replaces) follows the fsync policy:
        ``always`` (and opening, before the sync thread runs) at once; ``interval`` at the sync
        thread's next tick, which is the promise anyway, so a roll costs the appender an open()
        and a write() instead of three fsyncs (tens of ms on the event loop, every ~1 s at full
        load); ``none``: the OS decides."""
        path = self.directory / segment_name(first_seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, segment_header(first_seq))
        control, ring = self._control, self._ring
        synced = control is None and self.fsync != "none"
        if synced:
            os.fsync(fd)
            self._fsync_dir()
        old, self._fd = self._fd, fd
        if control is not None and ring is not None:
            # Store order matters (journal.syncer): the new descriptor, then the retired one, then HEAD.
            control[syncer.FD] = fd
            head = int(control[syncer.HEAD])
            if old >= 0 and head - int(control[syncer.TAIL]) < syncer.RING:
                ring[head % syncer.RING] = old
                control[syncer.HEAD] = head + 1
            elif old >= 0:  # the loop is RING rolls behind: sync this one here
                os.fsync(old)
                os.close(old)
                self._syncs += 1
            control[syncer.NEW_ENTRY] = 1
            control[syncer.DIRTY] = 1
        elif old >= 0:
            if synced:
                os.fsync(old)
            os.close(old)
        if old >= 0:
            self._closed_bytes += self._segment_size
        self._segment_first = first_seq
        self._segment_size = SEGMENT_HEADER.size
        self._next_seq = first_seq
        if not self._first_seq:
            self._first_seq = first_seq
        self._segments += 1

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ append

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def bytes_used(self) -> int:
        """Bytes in every segment held (what max_bytes bounds); O(1), for the per-RPC room check."""
        return self._closed_bytes + self._segment_size

    @property
    def bytes_appended(self) -> int:
        """Bytes appended since open (never goes down: pruning lowers bytes_used, not this)."""
        return self._appended

    def append(self, records: Sequence[tuple[int, bytes]]) -> int:
        """Append (type, payload) records with one write(); returns the last seq. JournalFull when
        they do not fit in max_bytes (nothing written)."""
        if not records:
            return self.last_seq
        seq = self._next_seq
        data = b"".join(encode(seq + i, type_, payload) for i, (type_, payload) in enumerate(records))
        return self._write(data, len(records))

    def append_parts(self, type_: int, parts: tuple[bytes, ...]) -> int:
        """Append one record whose payload is ``parts`` joined, with one write() and one copy (the
        servicer's path: header, request and reply bytes are never joined first); its seq."""
        seq = self._next_seq
        crc = google_crc32c.value(_CRC_PART.pack(seq, type_, 0))
        n = 0
        for part in parts:
            crc = google_crc32c.extend(crc, part)
            n += len(part)
        return self._write(b"".join((RECORD_HEADER.pack(n, crc, seq, type_, 0), *parts)), 1)

    def _write(self, data: bytes, count: int) -> int:
        """Write ``count`` encoded records (the bound checked first, a new segment when this one is
        full); the last one's seq."""
        size = len(data)
        held = self._closed_bytes + self._segment_size
        if held + size > self.max_bytes:
            raise JournalFull(
                f"journal full: {held:,} of {self.max_bytes:,} bytes "
                "(PostgreSQL not keeping up or down, or no checkpoint taken)"
            )
        seq = self._next_seq
        if self._segment_size + size > self.segment_bytes and self._segment_size > SEGMENT_HEADER.size:
            self._create(seq)
        written = os.write(self._fd, data)
        if written != size:  # a short write on a regular file: disk full
            raise OSError(f"journal: short write ({written} of {size} bytes): disk full?")
        self._segment_size += size
        self._appended += size
        self._next_seq = seq + count
        if self.fsync == "always":
            os.fdatasync(self._fd)
            self._syncs += 1
        elif self._control is not None:
            self._control[syncer.DIRTY] = 1
        return self._next_seq - 1

    @property
    def sync_error(self) -> str:
        """Why the interval sync loop stopped ("" while it runs or with another policy). A failed
        fsync is not retried (the kernel may have dropped the pages it could not write), so what
        was appended is no longer known to be durable: the tap then refuses every change."""
        control = self._control
        if control is None or control[syncer.FAILED] < 0:
            return ""
        return (
            f"journal fsync failed (descriptor {int(control[syncer.FAILED])} under {self.directory}); "
            "appended records may not be durable"
        )

    # ------------------------------------------------------------------ prune, stats, close

    def prune(self, consumed_seq: int) -> int:
        """Delete the segments whose every record has seq <= ``consumed_seq`` (never the open one);
        returns how many went. The server deletes them in a worker thread instead (prunable,
        delete_segments, pruned): a 64 MiB unlink can block for tens of ms."""
        deleted, error = delete_segments(self.prunable(consumed_seq))
        self.pruned(deleted)
        if error is not None:
            raise error
        return len(deleted)

    def prunable(self, consumed_seq: int) -> list[OldSegment]:
        """The oldest segments whose every record has seq <= ``consumed_seq`` (never the open one),
        oldest first: what prune deletes. Nothing changes until ``pruned``."""
        out = []
        for (first, path), (next_first, _) in pairwise(segments(self.directory)):
            if next_first - 1 > consumed_seq or first == self._segment_first:
                break
            out.append(OldSegment(path, path.stat().st_size, next_first))
        return out

    def pruned(self, deleted: Sequence[OldSegment]) -> None:
        """``deleted`` (a prefix of what prunable returned, all gone from the disk) no longer counts
        toward bytes_used; called on the appender's thread, as its counters are not locked."""
        if not deleted:
            return
        self._closed_bytes -= sum(seg.size for seg in deleted)
        self._segments -= len(deleted)
        self._first_seq = deleted[-1].next_first

    def stats(self) -> JournalStats:
        return JournalStats(
            self._first_seq,
            self._next_seq,
            self._segments,
            self._closed_bytes + self._segment_size,
            self.max_bytes,
            self._syncs + (int(self._control[syncer.SYNCS]) if self._control is not None else 0),
        )

    def close(self) -> None:
        """Stop the sync loop, then make everything durable here: the segments a roll left to it
        (fsync and close each), the directory after a roll, and the open segment (one fsync)."""
        control, ring = self._control, self._ring
        if control is not None and ring is not None and control[syncer.DIR_FD] >= 0:  # not closed yet
            control[syncer.STOP] = 1
            if self._syncer is not None:
                self._syncer.join()
                self._syncer = None
            for i in range(int(control[syncer.TAIL]), int(control[syncer.HEAD])):
                old = int(ring[i % syncer.RING])
                try:
                    os.fsync(old)
                except OSError as exc:  # logged, and the others still synced and closed
                    log.error("journal: fsync of a retired segment failed at close: %s", exc)
                finally:
                    os.close(old)
            control[syncer.TAIL] = control[syncer.HEAD]
            if control[syncer.NEW_ENTRY]:
                control[syncer.NEW_ENTRY] = 0
                self._fsync_dir()
            os.close(int(control[syncer.DIR_FD]))
            control[syncer.DIR_FD] = -1
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


__all__ = [
    "FSYNC_POLICIES",
    "Journal",
    "JournalDamage",
    "JournalFull",
    "JournalStats",
    "Opened",
    "cut_at",
    "repair_damage",
]
