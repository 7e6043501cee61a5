"""The server's side of the journal (journal.tap) and its records (journal.records, journal.limitfiles):
what the servicer appends reads back exactly; a full or broken journal refuses changes, never
loses one silently; a large limit change goes to a side file and comes back whole."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd_server import changes as ch
from riskd_server.journal import Journal, read
from riskd_server.journal import records as rec
from riskd_server.journal.codec import decode, same_change
from riskd_server.journal.limitfiles import INLINE_LIMITS, prune
from riskd_server.journal.limitfiles import read as read_side
from riskd_server.journal.tap import JournalFailed, JournalTap
from riskd_server.limits import Limit
from riskd_server.outcomes import Backpressure


def opened(directory: Path) -> Journal:
    j = Journal(directory, segment_bytes=4096, max_bytes=2**40, fsync="none")
    j.open()
    return j


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([rec.CHECK, rec.EXECUTIONS, rec.PRICES, rec.TRADING_STATE]),
            st.floats(allow_nan=False),
            st.binary(max_size=3000),
            st.binary(max_size=300),
        ),
        max_size=30,
    )
)
def test_appended_records_read_back_exactly(tmp_path_factory: pytest.TempPathFactory, items: list) -> None:
    directory = tmp_path_factory.mktemp("j")
    j = opened(directory)
    tap = JournalTap(j, wall=lambda: 1234.5)
    seqs = []
    for type_, now, body, reply in items:
        seqs.append(tap.check(now, body, reply) if type_ == rec.CHECK else tap.input(type_, now, body))
    j.close()
    got = [(loc.record.seq, rec.decode(loc.record.type, loc.record.payload)) for loc in read(directory)]
    assert [s for s, _ in got] == seqs == list(range(1, len(items) + 1))
    for (type_, now, body, reply), (_, inp) in zip(items, got, strict=True):
        assert (inp.type, inp.now, inp.wall, inp.body) == (type_, now, 1234.5, body)
        assert inp.reply == (reply if type_ == rec.CHECK else b"")


def test_a_short_payload_is_refused_by_name() -> None:
    with pytest.raises(rec.RecordError, match="CHECK"):
        rec.decode(rec.CHECK, b"\x00" * 10)
    with pytest.raises(rec.RecordError, match="runs past"):
        rec.decode(rec.CHECK, rec.check_payload(1.0, 2.0, b"abc", b"")[:-2])
    with pytest.raises(rec.RecordError, match="unknown"):
        rec.decode(7, b"\x00" * 16)


def test_full_journal_refuses_before_anything_changes_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = Journal(tmp_path, segment_bytes=2**20, max_bytes=2**26, fsync="none")
    j.open()
    fills: list[str] = []
    tap = JournalTap(j, on_fill=fills.append)
    body = b"x" * 2**20
    with caplog.at_level(logging.ERROR, "riskd.journal"):
        refused = None
        for _ in range(64):
            try:
                tap.require_room(len(body))
            except Backpressure as exc:
                refused = exc
                break
            tap.input(rec.PRICES, 0.0, body)
    assert refused is not None and "journal full" in str(refused)
    # Refused with the reserve still free: every admitted request's record fits.
    assert j.bytes_used + len(body) + 2**20 <= j.max_bytes
    assert len(fills) == 1 and "full" in fills[0]
    assert sum("journal" in r.message and "full" in r.message for r in caplog.records) == 1
    # Pruning below the reserve lets changes in again.
    j.prune(j.last_seq - 1)
    tap.require_room(len(body))


def test_a_failed_append_refuses_every_later_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    j = opened(tmp_path)
    tap = JournalTap(j)
    tap.input(rec.PRICES, 0.0, b"ok")
    j.close()  # the descriptor is gone: the next write fails like a dead disk
    with caplog.at_level(logging.CRITICAL, "riskd.journal"), pytest.raises(JournalFailed):
        tap.input(rec.PRICES, 0.0, b"lost")
    assert "refuses every change" in tap.failed
    with pytest.raises(JournalFailed):
        tap.require_room()
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)


def limits(n: int) -> tuple[Limit, ...]:
    return tuple(
        Limit(
            limit_id=f"l{i}",
            kind=1,
            account=f"acct-{i % 97}",
            symbol=f"sym-{i}" if i % 2 else "",
            threshold=100.0 + i,
        )
        for i in range(n)
    )


def test_small_limit_changes_are_inline_with_version_who_and_time(tmp_path: Path) -> None:
    j = opened(tmp_path)
    tap = JournalTap(j)
    change = ch.LimitsChanged(limits(3), ("gone",), 0, "ipv4:1.2.3.4:5", "upsert", 99.5)
    seq = tap.limits(change, 7, 1.0)
    j.close()
    (loc,) = list(read(tmp_path))
    assert loc.record.seq == seq and loc.record.type == rec.LIMITS
    got = decode(8, rec.decode(rec.LIMITS, loc.record.payload).body)
    assert isinstance(got, ch.LimitsChanged)
    assert same_change(got, ch.LimitsChanged(limits(3), ("gone",), 7, "ipv4:1.2.3.4:5", "upsert", 99.5))


def test_a_large_limit_change_goes_to_a_side_file_and_comes_back_whole(tmp_path: Path) -> None:
    j = opened(tmp_path)
    tap = JournalTap(j)
    big = limits(INLINE_LIMITS + 5)
    odd = Limit(
        limit_id="nan-ref", kind=1, account="a", symbol="s", threshold=1.0, reference_volatility=0.5, warn_fraction=1 / 3,
        description="é\ud800",
    )  # fmt: skip
    change = ch.LimitsChanged((*big, odd), tuple(f"d{i}" for i in range(10)), 12, "who", "import", 5.0)
    asyncio.run(tap.prepare(change))
    assert list(tmp_path.glob("limits-pending-*"))
    seq = tap.limits(change, 12, 1.0)
    j.close()
    (loc,) = list(read(tmp_path))
    assert loc.record.type == rec.LIMITS_FILE and len(loc.record.payload) < 200
    back = read_side(tmp_path, rec.decode(rec.LIMITS_FILE, loc.record.payload).body)
    assert same_change(back, change)
    assert not list(tmp_path.glob("limits-pending-*"))
    assert prune(tmp_path, seq) == 0 and prune(tmp_path, seq + 1) == 1


def test_a_prepared_change_that_is_not_the_one_installed_is_written_inline(tmp_path: Path) -> None:
    j = opened(tmp_path)
    tap = JournalTap(j)
    asyncio.run(tap.prepare(ch.LimitsChanged(limits(INLINE_LIMITS + 1), (), 3)))
    other = ch.LimitsChanged(limits(2), (), 4)
    tap.limits(other, 4, 0.0)
    j.close()
    (loc,) = list(read(tmp_path))
    assert loc.record.type == rec.LIMITS
    assert prune(tmp_path, 10**9, pending=True) == 1  # the orphaned pending file, at start-up
