"""Following the journal while it is written (journal.tail): records as they come, across segment
roll-overs; a record half written, a segment without its header and a torn tail are waited on;
damage in the middle and pruned records raise JournalDamage."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from riskd_server.journal import Journal, JournalDamage
from riskd_server.journal.format import SEGMENT_HEADER, encode, segment_header, segment_name, segments
from riskd_server.journal.tail import JournalTail


def payloads(n: int, size: int = 40, start: int = 0) -> list[tuple[int, bytes]]:
    return [(1 + i % 3, bytes([i % 251]) * (size + i % 7)) for i in range(start, start + n)]


def seqs(recs: list) -> list[int]:
    return [r.seq for r in recs]


def test_tail_reads_what_is_there_then_waits_and_moves_to_new_segments(tmp_path: Path) -> None:
    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=4096, max_bytes=10**7)
    j.open()
    tail = JournalTail(d, 1)
    assert tail.poll() == []  # empty journal: nothing yet, no error
    written = payloads(50, size=200)
    j.append(written[:20])
    got = tail.poll()
    assert seqs(got) == list(range(1, 21))
    assert [(r.type, r.payload) for r in got] == written[:20]
    assert tail.poll() == []
    for i in range(20, 50, 5):
        j.append(written[i : i + 5])  # rolls over into new segments
    assert len(segments(d)) > 1
    got = tail.poll(max_records=7)
    assert seqs(got) == list(range(21, 28))
    rest = tail.poll()
    assert seqs(rest) == list(range(28, 51))
    assert tail.poll() == []
    j.close()
    tail.close()


def test_tail_starts_in_the_middle(tmp_path: Path) -> None:
    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=4096, max_bytes=10**7)
    j.open()
    j.append(payloads(200))
    tail = JournalTail(d, 150)
    assert seqs(tail.poll(max_records=10_000)) == list(range(150, 201))
    j.close()


def test_a_record_half_written_is_waited_for(tmp_path: Path) -> None:
    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=1 << 20, max_bytes=10**7)
    j.open()
    j.append(payloads(3))
    j.close()
    (_, path) = segments(d)[-1]
    rec = encode(4, 7, b"x" * 5000)
    tail = JournalTail(d, 1, chunk=1024)  # records larger than a chunk too
    assert seqs(tail.poll()) == [1, 2, 3]
    with path.open("ab") as fh:
        fh.write(rec[:5])
        fh.flush()
        assert tail.poll() == []
        fh.write(rec[5:3000])
        fh.flush()
        assert tail.poll() == []
        fh.write(rec[3000:])
        fh.flush()
    got = tail.poll()
    assert seqs(got) == [4] and got[0].payload == b"x" * 5000


def test_a_new_segment_without_its_header_yet_is_waited_for(tmp_path: Path) -> None:
    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=4096, max_bytes=10**7)
    j.open()
    j.append(payloads(2))
    j.close()
    tail = JournalTail(d, 1)
    assert seqs(tail.poll()) == [1, 2]
    nxt = d / segment_name(3)
    nxt.write_bytes(b"")  # the writer's os.open(O_CREAT) before its header write
    assert tail.poll() == []
    nxt.write_bytes(segment_header(3)[:7])
    assert tail.poll() == []
    nxt.write_bytes(segment_header(3) + encode(3, 1, b"abc"))
    assert seqs(tail.poll()) == [3]


def test_a_torn_tail_is_waited_on_until_the_server_cuts_it(tmp_path: Path) -> None:
    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=1 << 20, max_bytes=10**7)
    j.open()
    j.append(payloads(5))
    j.close()
    (_, path) = segments(d)[-1]
    with path.open("ab") as fh:
        fh.write(b"\0" * 300)  # what a power loss can leave
    tail = JournalTail(d, 1)
    assert seqs(tail.poll()) == [1, 2, 3, 4, 5]
    assert tail.poll() == [] and tail.poll() == []
    j = Journal(d, fsync="none", segment_bytes=1 << 20, max_bytes=10**7)
    assert j.open().truncated_bytes == 300  # the server's next start cuts it, then appends
    j.append([(2, b"after")])
    j.close()
    got = tail.poll()
    assert seqs(got) == [6] and got[0].payload == b"after"


def test_damage_in_the_middle_raises(tmp_path: Path) -> None:
    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=1 << 20, max_bytes=10**7)
    j.open()
    j.append(payloads(10))
    j.close()
    (_, path) = segments(d)[-1]
    data = bytearray(path.read_bytes())
    offset = SEGMENT_HEADER.size + 3 * (20 + 40) + 25  # inside record 4's payload (sizes 40..)
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    tail = JournalTail(d, 1)
    got = tail.poll(max_records=3)
    assert seqs(got) == [1, 2, 3]
    with pytest.raises(JournalDamage) as info:
        tail.poll()
    assert not info.value.torn and info.value.seq == 4 and info.value.path == path


def test_bytes_after_the_last_record_of_a_finished_segment_raise(tmp_path: Path) -> None:
    d = tmp_path / "j"
    d.mkdir()
    (d / segment_name(1)).write_bytes(segment_header(1) + encode(1, 1, b"a") + b"junk-junk-junk-junk-junk")
    (d / segment_name(2)).write_bytes(segment_header(2) + encode(2, 1, b"b"))
    tail = JournalTail(d, 1)
    with pytest.raises(JournalDamage):
        tail.poll()
        tail.poll()


def test_pruned_records_raise(tmp_path: Path) -> None:
    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=4096, max_bytes=10**7)
    j.open()
    for i in range(0, 200, 10):
        j.append(payloads(10, start=i))
    assert j.prune(100) >= 1
    j.close()
    with pytest.raises(JournalDamage, match="no longer in the journal"):
        JournalTail(d, 1).poll()


def test_follow_sees_a_concurrent_writer_exactly_once_in_order(tmp_path: Path) -> None:
    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=8192, max_bytes=10**8)
    j.open()
    written = payloads(3000, size=10)

    def write() -> None:
        for i in range(0, 3000, 13):
            j.append(written[i : i + 13])
            if i % 260 == 0:
                time.sleep(0.002)

    t = threading.Thread(target=write)
    t.start()
    got = list(JournalTail(d, 1).follow(poll=0.001, idle_timeout=1.0))
    t.join()
    j.close()
    assert seqs(got) == list(range(1, 3001))
    assert [(r.type, r.payload) for r in got] == written
    assert len(segments(d)) > 5


def test_records_waits_asynchronously_for_what_comes_next(tmp_path: Path) -> None:
    import asyncio

    d = tmp_path / "j"
    j = Journal(d, fsync="none", segment_bytes=4096, max_bytes=10**7)
    j.open()
    j.append(payloads(3))

    async def main() -> list[int]:
        got: list[int] = []

        async def later() -> None:
            await asyncio.sleep(0.05)
            j.append(payloads(2, start=3))

        writer = asyncio.create_task(later())
        async for batch in JournalTail(d, 2).records(poll=0.005):
            got.extend(r.seq for r in batch)
            if len(got) == 4:
                break
        await writer
        return got

    assert asyncio.run(main()) == [2, 3, 4, 5]
    j.close()
