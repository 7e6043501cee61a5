"""LimitAdmin at scale: a large change leaves its objects frozen out of the collector's way (and the
collector as it found it, even when the change fails); a dynamic refresh is scheduled only when a
change brings a dynamic limit; the dynamic rows a refresh reads are found incrementally and equal a
full scan for every version; the MAX_VAR warning is read from the tables."""

from __future__ import annotations

import asyncio
import gc
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd_server.dynamic import dynamic_rows
from riskd_server.engine import Engine
from riskd_server.limit_admin import LimitAdmin
from riskd_server.limit_io import StagedLimits, plan_import
from riskd_server.limitbook import M_REF_VOL, apply_changes, compile_limits, retire
from riskd_server.limits import MAX_POSITION, MAX_VAR, Limit, LimitValidationError


def _limits(n: int, prefix: str = "L", threshold: float = 10.0) -> list[Limit]:
    return [
        Limit(
            limit_id=f"{prefix}{i}",
            kind=MAX_POSITION,
            account=f"A{i % 50}",
            symbol=f"S{i % 40}",
            threshold=threshold + i,
        )
        for i in range(n)
    ]


def test_a_large_upsert_and_import_freeze_their_objects_and_restore_the_collector() -> None:
    async def run() -> None:
        admin = LimitAdmin(Engine(), freeze_at=1_000)
        gc.unfreeze()
        try:
            before = gc.get_freeze_count()
            await admin.upsert(_limits(2_000))
            assert gc.isenabled() and gc.get_freeze_count() >= before + 2_000  # the Limits frozen
            gc.unfreeze()
            small = gc.get_freeze_count()
            await admin.upsert(_limits(10, "small"))  # below freeze_at: nothing frozen
            assert gc.get_freeze_count() == small
            staged = StagedLimits.of(_limits(2_000, threshold=99.0))
            diff, _ = await admin.apply(
                lambda cur: plan_import(cur, staged), who="t", action="import", size=2_000
            )
            assert diff.changed == 2_000
            assert gc.isenabled() and gc.get_freeze_count() >= small + 2_000
            with pytest.raises(LimitValidationError):  # a refused change: the collector is back on
                await admin.upsert([*_limits(1_500, "bad"), Limit(limit_id="x", kind=99)])
            assert gc.isenabled()
        finally:
            gc.unfreeze()
            gc.enable()

    asyncio.run(run())


def test_a_refresh_is_scheduled_only_for_a_change_that_brings_a_dynamic_limit() -> None:
    async def run() -> None:
        eng = Engine()
        admin = LimitAdmin(eng, refresh_interval=0.0)
        dyn = Limit(limit_id="d", kind=MAX_POSITION, account="A", threshold=5, reference_volatility=0.02)
        await admin.upsert([dyn])
        assert admin._pending  # the new dynamic limit gets the current vols
        await asyncio.sleep(0.05)
        assert not admin._pending
        await admin.upsert(_limits(3))  # static limits beside it: no O(limits) refresh
        assert not admin._pending
        staged = StagedLimits.of(
            [Limit(limit_id="d2", kind=MAX_POSITION, threshold=1, reference_volatility=0.1)]
        )
        await admin.apply(lambda cur: plan_import(cur, staged), who="t", action="import")
        assert admin._pending

    asyncio.run(run())


changes = st.lists(
    st.tuples(st.integers(0, 30), st.booleans(), st.booleans()), min_size=1, max_size=12
)  # (limit number, dynamic, delete)


@settings(max_examples=60, deadline=None)
@given(st.lists(changes, min_size=1, max_size=6), st.lists(st.integers(0, 10), max_size=8))
def test_dynamic_rows_are_a_full_scan_of_every_version(rounds: list, probes: list[int]) -> None:
    ids = {"A": 0, "B": 1}
    book = compile_limits({}, ids, ids, 1)
    books = [book]
    for k, round_ in enumerate(rounds):
        ups = [
            Limit(
                limit_id=f"L{i}",
                kind=MAX_POSITION,
                account="AB"[i % 2],
                symbol="AB"[i // 2 % 2],
                threshold=1 + k,
                reference_volatility=0.1 if dyn else 0.0,
            )
            for i, dyn, delete in round_
            if not delete
        ]
        ups = list({lim.limit_id: lim for lim in ups}.values())
        dels = [f"L{i}" for i, _, delete in round_ if delete and f"L{i}" not in {u.limit_id for u in ups}]
        dels = [d for d in dict.fromkeys(dels) if d in book.limits]
        book = apply_changes(book, ups, dels, ids, ids, book.version + 1)
        books.append(book)
        for p in probes:  # older and newer versions asked in any order
            old = books[p % len(books)]
            assert dynamic_rows(old).tolist() == np.flatnonzero(old.meta[:, M_REF_VOL] > 0).tolist()
    assert dynamic_rows(book).tolist() == np.flatnonzero(book.meta[:, M_REF_VOL] > 0).tolist()


def test_the_unpriced_max_var_warning_reads_the_tables(caplog: pytest.LogCaptureFixture) -> None:
    eng = Engine()
    eng.upsert_limits(_limits(100))
    caplog.set_level(logging.WARNING, logger="riskd.engine")
    eng.upsert_limits([Limit(limit_id="v", kind=MAX_VAR, account="A3", threshold=1, disabled=True)])
    assert "no risk model is installed" not in caplog.text  # disabled: not in force
    eng.upsert_limits([Limit(limit_id="v", kind=MAX_VAR, account="A3", threshold=1)])
    assert "no risk model is installed" in caplog.text
    caplog.clear()
    eng.delete_limits(["v"])
    eng.upsert_limits([Limit(limit_id="v2", kind=MAX_VAR, threshold=1)])  # firm-wide
    assert "no risk model is installed" in caplog.text


class _Watched(dict):
    """A book's base dict that records what retire frees early."""

    popped: list[str] = []

    def popitem(self):  # type: ignore[override]
        item = super().popitem()
        _Watched.popped.append(item[0])
        return item


def test_retire_frees_only_what_no_live_version_reads() -> None:
    ids = {"A": 0}
    _Watched.popped = []
    first = compile_limits(_Watched((lim.limit_id, lim) for lim in _limits(50)), ids, ids, 1, owned=True)
    later = apply_changes(first, _limits(2, "n"), [], ids, ids, 2)  # shares first's dict and buffers
    held = [first]
    del first
    retire(held)
    assert _Watched.popped == [] and len(later.limits) == 52
    assert later.ids[:50].tolist() == [f"L{i}" for i in range(50)]
    exporting = later.limits  # an export still reading the version
    held = [later]
    del later
    retire(held)
    assert _Watched.popped == [] and len(exporting) == 52 and exporting["L3"].threshold == 13
    del exporting
    alone = compile_limits(_Watched((lim.limit_id, lim) for lim in _limits(30)), ids, ids, 3, owned=True)
    row_ids = alone.buffers.ids
    held = [alone]
    del alone
    retire(held)  # nothing else reads it: its limits are freed here, a slice at a time
    assert sorted(_Watched.popped) == sorted(f"L{i}" for i in range(30))
    assert row_ids[:30].tolist() == [f"L{i}" for i in range(30)]  # held here: left as it was
