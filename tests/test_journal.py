"""The journal's file format, writer and reader (riskd_server.journal): round trips, segment
roll-over and pruning, the bound, fsync policies, torn tails cut at start, mid-journal damage
refused (naming file and offset) or repaired with the loss counted, and the CLI tools."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.dedupe import Deduper
from riskd_server.alerts.history import AlertHistory
from riskd_server.alerts.pipeline import AlertPipeline
from riskd_server.alerts.probes import journal_failed_probe
from riskd_server.alerts.stats import AlertStats
from riskd_server.interning import Interner
from riskd_server.journal import Journal, JournalDamage, JournalFull, read, syncer, verify
from riskd_server.journal.format import RECORD_HEADER, SEGMENT_HEADER, segments
from riskd_server.journal.tap import JournalFailed, JournalTap
from riskd_server.journal.writer import delete_segments


def payloads(n: int, size: int = 40) -> list[tuple[int, bytes]]:
    return [(1 + i % 3, bytes([i % 251]) * (size + i % 7)) for i in range(n)]


def opened(tmp_path: Path, **kw: object) -> Journal:
    j = Journal(tmp_path / "journal", fsync=kw.pop("fsync", "none"), **kw)  # type: ignore[arg-type]
    j.open()
    return j


def records(directory: Path, from_seq: int = 0) -> list[tuple[int, int, bytes]]:
    return [(x.record.seq, x.record.type, x.record.payload) for x in read(directory, from_seq)]


def test_round_trip_across_segments_and_reopen(tmp_path: Path) -> None:
    j = opened(tmp_path, segment_bytes=4096, max_bytes=10**7)
    written = payloads(300)
    for i in range(0, 300, 7):
        assert j.append(written[i : i + 7]) == min(i + 7, 300)
    j.close()
    d = tmp_path / "journal"
    assert len(segments(d)) > 3
    got = records(d)
    assert [(s, t, p) for s, t, p in got] == [(i + 1, t, p) for i, (t, p) in enumerate(written)]
    assert records(d, 250)[0][0] == 250 and len(records(d, 250)) == 51
    again = Journal(d, fsync="none", segment_bytes=4096, max_bytes=10**7)
    assert again.open().next_seq == 301
    assert again.append([(9, b"after")]) == 301
    again.close()
    assert records(d)[-1] == (301, 9, b"after")
    v = verify(d)
    assert v.damage is None and v.records == 301 and (v.first_seq, v.last_seq) == (1, 301)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=300), min_size=1, max_size=5), max_size=30))
def test_any_appends_read_back_exactly(tmp_path_factory: pytest.TempPathFactory, batches: list) -> None:
    d = tmp_path_factory.mktemp("j")
    j = Journal(d, fsync="none", segment_bytes=4096, max_bytes=10**7)
    j.open()
    flat = []
    for batch in batches:
        j.append([(7, p) for p in batch])
        flat += batch
    j.close()
    assert [x.record.payload for x in read(d)] == flat


def test_the_bound_refuses_and_prune_frees(tmp_path: Path) -> None:
    j = opened(tmp_path, segment_bytes=4096, max_bytes=16384)
    n = 0
    with pytest.raises(JournalFull, match="journal full"):
        while True:
            j.append(payloads(1, 200))
            n += 1
    assert j.stats().bytes <= 16384 and j.last_seq == n
    appended = j.bytes_appended
    assert appended == n * (RECORD_HEADER.size + 200)  # the refused append counts nothing
    assert j.prune(0) == 0
    gone = j.prune(j.last_seq)  # everything consumed: every segment but the open one goes
    assert gone >= 2
    assert j.stats().segments == 1
    assert j.bytes_appended == appended  # pruning frees bytes held, not bytes appended
    j.append(payloads(5, 200))  # room again
    assert j.bytes_appended == appended + sum(RECORD_HEADER.size + len(p) for _, p in payloads(5, 200))
    assert j.stats().first_seq == segments(tmp_path / "journal")[0][0]
    j.close()
    # Pruning never drops a record that was not consumed.
    first_left = records(tmp_path / "journal")[0][0]
    assert first_left <= n + 1


def test_prune_keeps_segments_holding_unconsumed_records(tmp_path: Path) -> None:
    j = opened(tmp_path, segment_bytes=4096, max_bytes=10**7)
    for _ in range(40):
        j.append(payloads(1, 300))
    j.prune(20)
    assert records(tmp_path / "journal")[0][0] <= 21
    j.close()


def test_pruning_in_steps_counts_only_what_was_deleted(tmp_path: Path) -> None:
    """The server deletes segments in a worker thread (prunable, delete_segments, pruned): an
    unlink that fails stops there, and only the segments deleted before it stop counting."""
    j = opened(tmp_path, segment_bytes=4096, max_bytes=10**7)
    for _ in range(40):
        j.append(payloads(1, 300))
    before = j.stats()
    old = j.prunable(j.last_seq)
    assert len(old) == before.segments - 1  # every segment but the open one
    assert j.stats() == before  # deciding changes nothing
    second = old[1].path
    second.rename(tmp_path / "moved")
    second.mkdir()  # unlink() of a directory fails: IsADirectoryError
    deleted, error = delete_segments(old)
    assert deleted == old[:1] and isinstance(error, IsADirectoryError)
    j.pruned(deleted)
    after = j.stats()
    assert after.bytes == before.bytes - old[0].size and after.segments == before.segments - 1
    assert after.first_seq == old[0].next_first == segments(tmp_path / "journal")[0][0]
    second.rmdir()
    (tmp_path / "moved").rename(second)
    assert j.prune(j.last_seq) == len(old) - 1  # the rest, the usual way
    assert j.stats().bytes == before.bytes - sum(seg.size for seg in old)
    j.close()


def test_fsync_policies(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be one of"):
        Journal(tmp_path, fsync="sometimes")
    always = Journal(tmp_path / "a", fsync="always")
    always.open()
    always.append(payloads(3))
    assert always.stats().syncs == 1
    always.close()
    interval = Journal(tmp_path / "i", fsync="interval", fsync_interval=0.005)
    interval.open()
    interval.append(payloads(3))
    import time

    deadline = time.monotonic() + 5
    while interval.stats().syncs == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert interval.stats().syncs >= 1
    interval.close()


@pytest.mark.parametrize("interval", [1e-6, 2e-3, 4294.967296, 1e9])
def test_any_sync_interval_syncs_or_waits_and_close_is_prompt(tmp_path: Path, interval: float) -> None:
    """Tiny and huge intervals: the loop's sleep is slept in steps under usleep's limit, so 2**32 us
    (a 32-bit wrap to 0: a busy loop) or 1e9 s (a wrap to some other period) sleep as long as asked,
    tiny ones sync at once, and close() returns within a step whatever the interval."""
    import time

    j = opened(tmp_path, fsync="interval", fsync_interval=interval)
    j.append(payloads(3))
    deadline = time.monotonic() + (5 if interval < 1 else 0.5)
    while j.stats().syncs == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert (j.stats().syncs > 0) == (interval < 1)
    started = time.monotonic()
    j.close()
    assert time.monotonic() - started < 2.5
    assert [(t, p) for _, t, p in records(tmp_path / "journal")] == payloads(3)


@pytest.mark.parametrize("fsync", ["interval", "none"])
def test_a_roll_costs_the_appender_no_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: str
) -> None:
    """With ``interval`` the sync loop makes a new segment durable (its file, the directory, the
    retired segment, which it then closes); with ``none`` nobody does. No Python thread calls
    fsync either way (the loop calls libc's without the GIL), only the open segment stays open,
    and every record reads back across the rolls."""
    import threading
    import time

    calls: list[tuple[str, str]] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)

        def spy(fd: int, _real=real, _name=name) -> None:
            calls.append((_name, threading.current_thread().name))
            _real(fd)

        monkeypatch.setattr(os, name, spy)
    j = opened(tmp_path, fsync=fsync, fsync_interval=0.005, segment_bytes=4096, max_bytes=10**7)
    calls.clear()  # opening syncs its first segment in the caller: before any sync thread runs
    written = payloads(300)
    for i in range(0, 300, 10):
        j.append(written[i : i + 10])
    assert j.stats().segments >= 4
    assert not [c for c in calls if c[1] == threading.current_thread().name], calls
    if fsync == "interval":
        c = j._control
        assert c is not None
        deadline = time.monotonic() + 5
        while (c[syncer.TAIL] < c[syncer.HEAD] or c[syncer.NEW_ENTRY]) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert c[syncer.TAIL] == c[syncer.HEAD] >= 3 and not c[syncer.NEW_ENTRY]  # synced and closed
        assert j.stats().syncs >= 1 and not j.sync_error
    assert calls == []
    open_segments = [p for p in Path("/proc/self/fd").iterdir() if ".seg" in str(_target(p))]
    assert len(open_segments) == 1 if fsync == "interval" else len(open_segments) >= 1
    j.close()
    assert [(t, p) for _, t, p in records(tmp_path / "journal")] == written


def test_rolls_past_the_sync_loops_ring_sync_in_the_appender(tmp_path: Path) -> None:
    """The ring of retired segments is bounded (syncer.RING): with the loop stopped, rolls past it
    fsync and close their old segment in the appender instead of queueing more; nothing leaks,
    and close syncs what the ring still holds."""
    j = opened(tmp_path, fsync="interval", fsync_interval=0.002, segment_bytes=4096, max_bytes=10**8)
    c = j._control
    assert c is not None and j._syncer is not None
    c[syncer.STOP] = 1
    j._syncer.join()
    syncs = j.stats().syncs
    written = payloads(2 * syncer.RING + 20, size=1000)
    for i in range(0, len(written), 2):
        j.append(written[i : i + 2])
    rolls = j.stats().segments - 1
    assert rolls > syncer.RING
    assert c[syncer.HEAD] - c[syncer.TAIL] == syncer.RING  # full, never more
    assert j.stats().syncs - syncs == rolls - syncer.RING  # the rest synced by the appender
    j.close()
    left = [p for p in Path("/proc/self/fd").iterdir() if str(tmp_path) in _target(p)]
    assert left == []
    assert [(t, p) for _, t, p in records(tmp_path / "journal")] == written


def _target(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return ""


def test_a_failed_interval_sync_refuses_every_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """fdatasync failing in the sync loop (here: on a pipe) stops it and is never retried; the tap
    then refuses every change with a CRITICAL log, instead of the loop dying unseen."""
    import time

    j = opened(tmp_path, fsync="interval", fsync_interval=0.002)
    tap = JournalTap(j)
    tap.require_room(100)
    clock = lambda: 1_000.0  # noqa: E731
    pipeline = AlertPipeline(
        Interner("account", 8),
        Interner("symbol", 8),
        AlertHistory(100),
        Deduper(10.0, 100),
        AlertStats(),
        clock=clock,
    )
    sent: list = []
    pipeline.add_output(sent.extend)
    pipeline.add_probe(journal_failed_probe(lambda: tap.failed))
    pipeline._run_probes(clock())
    assert sent == []  # healthy: nothing to say
    r, w = os.pipe()
    try:
        assert j._control is not None
        j._control[syncer.FD] = w  # what the loop syncs next: a descriptor fdatasync refuses
        j.append(payloads(1))
        deadline = time.monotonic() + 5
        while not j.sync_error and time.monotonic() < deadline:
            time.sleep(0.002)
        assert f"descriptor {w}" in j.sync_error and tap.failed
        # Dashboards hear of it from the probe, before any request finds the journal broken.
        pipeline._run_probes(clock())
        pipeline._run_probes(clock())  # the fault lasts: still one alert
        assert [(a.kind, a.severity) for a in sent] == [(pb.ALERT_KIND_JOURNAL_FAILED, pb.SEVERITY_CRITICAL)]
        assert f"descriptor {w}" in sent[0].message and sent[0].message.startswith("journal failed: ")
        with (
            caplog.at_level(logging.CRITICAL, logger="riskd.journal"),
            pytest.raises(JournalFailed, match="fsync failed"),
        ):
            tap.require_room(100)
        assert [r.levelno for r in caplog.records] == [logging.CRITICAL]
        with pytest.raises(JournalFailed):
            tap.require_room(100)
        assert len(caplog.records) == 1  # said once
        j._control[syncer.FD] = j._fd
        j.close()
    finally:
        os.close(r)
        os.close(w)
    assert [p for _, _, p in records(tmp_path / "journal")] == [p for _, p in payloads(1)]


def last_segment(tmp_path: Path) -> Path:
    return segments(tmp_path / "journal")[-1][1]


def test_a_torn_tail_is_cut_at_open_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    j = opened(tmp_path)
    j.append(payloads(10))
    j.close()
    seg = last_segment(tmp_path)
    size = seg.stat().st_size
    with seg.open("ab") as fh:  # half a record: a crash in the middle of a write
        fh.write(RECORD_HEADER.pack(100, 0, 11, 1, 0) + b"x" * 30)
    with pytest.raises(JournalDamage) as exc:
        records(tmp_path / "journal")
    assert exc.value.torn and exc.value.offset == size and exc.value.seq == 11
    again = Journal(tmp_path / "journal", fsync="none")
    opened_ = again.open()
    assert (
        opened_.next_seq == 11
        and opened_.truncated_bytes == RECORD_HEADER.size + 30
        and opened_.lost_records == 0
    )
    assert "torn tail" in caplog.text
    assert seg.stat().st_size == size
    again.append([(1, b"next")])
    again.close()
    assert records(tmp_path / "journal")[-1] == (11, 1, b"next")


def test_zeros_after_the_last_record_are_a_torn_tail(tmp_path: Path) -> None:
    j = opened(tmp_path)
    j.append(payloads(4))
    j.close()
    with last_segment(tmp_path).open("ab") as fh:  # a power loss: the file grew, its data did not land
        fh.write(bytes(4096))
    j2 = Journal(tmp_path / "journal", fsync="none")
    assert j2.open().next_seq == 5
    j2.close()


def damage_middle(tmp_path: Path) -> tuple[Path, int]:
    """Flip a payload byte of record 5 of 10 (valid records follow it)."""
    j = opened(tmp_path)
    j.append(payloads(10))
    j.close()
    seg = last_segment(tmp_path)
    fifth = next(x for x in read(tmp_path / "journal") if x.record.seq == 5)
    with seg.open("r+b") as fh:
        fh.seek(fifth.offset + RECORD_HEADER.size + 3)
        b = fh.read(1)
        fh.seek(fifth.offset + RECORD_HEADER.size + 3)
        fh.write(bytes([b[0] ^ 0xFF]))
    return seg, fifth.offset


def test_mid_journal_damage_refuses_to_open_naming_file_and_offset(tmp_path: Path) -> None:
    seg, offset = damage_middle(tmp_path)
    j = Journal(tmp_path / "journal", fsync="none")
    with pytest.raises(JournalDamage) as exc:
        j.open()
    assert not exc.value.torn and exc.value.path == seg and exc.value.offset == offset
    assert (
        str(seg) in str(exc.value)
        and f"offset {offset}" in str(exc.value)
        and "CRC mismatch" in str(exc.value)
    )
    v = verify(tmp_path / "journal")
    assert v.records == 4 and v.damage is not None and v.damage.offset == offset


def test_repair_cuts_at_the_damage_and_counts_what_it_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damage_middle(tmp_path)
    j = Journal(tmp_path / "journal", fsync="none")
    result = j.open(repair=True)
    assert result.next_seq == 5 and result.lost_records == 6  # seqs 5..10
    assert "6 record(s) lost" in caplog.text
    j.close()
    assert [s for s, _, _ in records(tmp_path / "journal")] == [1, 2, 3, 4]


def test_damage_in_an_older_segment_and_a_missing_segment(tmp_path: Path) -> None:
    j = opened(tmp_path, segment_bytes=4096, max_bytes=10**7)
    for _ in range(60):
        j.append(payloads(1, 200))
    j.close()
    segs = segments(tmp_path / "journal")
    first_path = segs[0][1]
    with first_path.open("r+b") as fh:
        fh.seek(SEGMENT_HEADER.size + RECORD_HEADER.size + 1)
        fh.write(b"\x00\xff")
    with pytest.raises(JournalDamage) as exc:
        records(tmp_path / "journal")
    assert exc.value.path == first_path and not exc.value.torn
    segs[1][1].unlink()  # and a hole: reading from after the damaged segment finds it
    with pytest.raises(JournalDamage, match="expected"):
        records(tmp_path / "journal", segs[2][0] - 1)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    riskd = os.path.join(os.path.dirname(sys.executable), "riskd")
    return subprocess.run([riskd, "journal", *args], capture_output=True, text=True, timeout=60)


def test_cli_inspect_and_verify(tmp_path: Path) -> None:
    j = opened(tmp_path)
    j.append(payloads(5))
    j.close()
    d = str(tmp_path / "journal")
    out = cli("verify", "--journal-dir", d)
    assert out.returncode == 0 and "5 record(s), seqs 1-5" in out.stdout and "OK" in out.stdout
    out = cli("inspect", "--journal-dir", d, "--from", "3")
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and [int(x.split()[0]) for x in lines] == [3, 4, 5]
    assert cli("inspect", "--data-dir", str(tmp_path), "--limit", "2").stdout.count("\n") == 2
    seg, offset = damage_middle(tmp_path / "other")
    out = cli("verify", "--journal-dir", str(tmp_path / "other" / "journal"))
    assert out.returncode == 1 and f"{seg} at offset {offset}" in out.stderr
