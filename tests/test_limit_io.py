"""limit_io's pure logic: the vectorised pre-check never misses what the exact check refuses, the
diff against a naive one, export order, and the history rows the store writes."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from riskd.v1 import risk_pb2 as pb
from riskd_server import changes as ch
from riskd_server.limit_io import (
    ExportFilter,
    ImportStager,
    LimitImportError,
    StagedLimits,
    _flags,
    columns_of,
    next_chunk,
    plan_import,
    row_of,
    sorted_ids,
)
from riskd_server.limitbook import apply_changes, compile_limits
from riskd_server.limits import Limit
from riskd_server.servicer import import_record_errors, limit_from_pb, limit_to_pb
from riskd_server.store._coalesce import coalesce
from riskd_server.store._split import halves, only_row, size

names = st.one_of(
    st.sampled_from(["", "a", "ACC1", "x" * 128, "x" * 129, "bad\x07", "é", "\x85"]), st.text(max_size=5)
)
floats = st.one_of(
    st.sampled_from([0.0, -0.0, -1.0, 0.5, 1.0, 0.999, math.inf, -math.inf, math.nan]), st.floats()
)
records = st.builds(
    pb.Limit,
    limit_id=names,
    kind=st.integers(0, 12),
    account=names,
    symbol=names,
    threshold=floats,
    warn_fraction=floats,
    disabled=st.booleans(),
    description=st.text(max_size=3),
    template=names,
    reference_volatility=st.sampled_from([0.0, 0.1]),
    min_scale=st.sampled_from([0.0, 0.5]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=30))
def test_the_vectorised_flags_cover_every_exact_error(msgs: list[pb.Limit]) -> None:
    flags = _flags(columns_of([row_of(m) for m in msgs]))
    for i, msg in enumerate(msgs):
        if import_record_errors(msg, limit_from_pb(msg), i + 1):
            assert flags[i], msg


def test_stager_names_lines_and_keeps_nothing_of_a_refused_import() -> None:
    stager = ImportStager(import_record_errors)
    ok = [pb.Limit(limit_id=f"id{i}", kind=1, threshold=1) for i in range(5)]
    assert stager.add(ok, 10)
    bad = [pb.Limit(limit_id="z", kind=1, threshold=1), pb.Limit(limit_id="id2", kind=1, threshold=1),
           pb.Limit(limit_id="z", kind=99, threshold=1)]  # fmt: skip
    assert not stager.add(bad, 15)
    assert len(stager.staged) == 0 and not stager.staged.chunks
    try:
        stager.result()
    except LimitImportError as exc:
        assert exc.errors == [
            "line 17: kind: 99 is not a configurable RiskCheck (1..10)",
            "line 16: limit_id: 'id2' already given on an earlier line",
            "line 17: limit_id: 'z' already given on line 15",
        ]
    else:
        raise AssertionError("refused import accepted")


def _naive_diff(current: dict[str, Limit], staged: dict[str, Limit], replace: bool) -> tuple:
    added = sorted(k for k in staged if k not in current)
    changed = sorted(k for k in staged if k in current and current[k] != staged[k])
    unchanged = sum(1 for k in staged if k in current and current[k] == staged[k])
    deleted = sorted(k for k in current if k not in staged) if replace else []
    return len(added), len(changed), len(deleted), unchanged, sorted(added + changed + deleted)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 3), max_size=8),
    st.dictionaries(st.sampled_from("abcdefghij"), st.integers(1, 3), max_size=10),
    st.booleans(),
    st.integers(1, 5),
)
def test_plan_matches_a_naive_diff(cur: dict, new: dict, replace: bool, max_changes: int) -> None:
    current = {k: Limit(limit_id=k, kind=1, threshold=v) for k, v in cur.items()}
    staged = {k: Limit(limit_id=k, kind=1, threshold=v) for k, v in new.items()}
    added, changed, deleted, unchanged, ids = _naive_diff(current, dict(staged), replace)
    plan = plan_import(current, staged, replace=replace, max_changes=max_changes)
    d = plan.diff
    assert (d.added, d.changed, d.deleted, d.unchanged) == (added, changed, deleted, unchanged)
    assert [c.limit_id for c in d.changes] == ids[:max_changes] and d.omitted == max(
        len(ids) - max_changes, 0
    )
    for c in d.changes:
        assert c.old == current.get(c.limit_id) and c.new == (
            staged.get(c.limit_id) if c.limit_id in new else None
        )
    if d.empty:
        assert not plan.changes_anything
    else:
        # the installed book: the book in force with the plan's change applied
        before = compile_limits(current, {}, {}, 1)
        book = apply_changes(before, plan.upserted, plan.deleted, {}, {}, 2)
        want = dict(new) if replace else {**cur, **new}
        assert {k: v.threshold for k, v in book.limits.items()} == want
        assert sorted(lim.limit_id for lim in plan.upserted) == sorted(added_or_changed(current, new))
        # unchanged limits keep the object in force
        assert all(book.limits[k] is current[k] for k in want if k in current and cur[k] == want[k])


def added_or_changed(current: dict[str, Limit], new: dict) -> list[str]:
    return [k for k, v in new.items() if k not in current or current[k].threshold != v]


def test_sorted_ids_large_and_unicode_and_filtered_chunks() -> None:
    rng = np.random.default_rng(1)
    ids = [f"A{n}" for n in rng.integers(0, 10**9, 60_000)] + ["é", "z", "\U0001f600", "\ud800x"]
    limits = {
        i: Limit(limit_id=i, kind=1 + n % 3, threshold=1, account=f"a{n % 2}") for n, i in enumerate(ids)
    }
    assert list(sorted_ids(limits)) == sorted(limits)
    keep = ExportFilter(account="a1", kind=2)
    it = sorted_ids(limits)
    got: list[str] = []
    while chunk := next_chunk(it, limits, keep, 777):
        assert len(chunk) <= 777
        got.extend(lim.limit_id for lim in chunk)
    assert got == sorted(k for k, v in limits.items() if keep(v))


def test_limits_changed_becomes_one_history_row_per_limit() -> None:
    a = Limit(limit_id="a", kind=1, threshold=1, description="x\x00y")
    b = Limit(limit_id="b", kind=3, account="A", symbol="S", threshold=2, warn_fraction=0.5, template="t")
    c1 = ch.LimitsChanged((a, b), (), 7, "ipv4:1.2.3.4:5", "import", 100.0)
    c2 = ch.LimitsChanged((), ("a",), 8, "me", "delete", 101.0)
    c3 = ch.LimitsChanged((b,), (), 9, "me", "upsert", 102.0)
    out = coalesce([c1, c2, c3])
    assert out.limits == {"a": None, "b": b}  # last per key
    h = out.limit_history
    assert h is not None
    assert h["limit_id"].tolist() == ["a", "b", "a", "b"]
    assert h["limits_version"].tolist() == [7, 7, 8, 9]
    assert h["action"].tolist() == ["import", "import", "delete", "upsert"]
    assert h["who"].tolist() == ["ipv4:1.2.3.4:5", "ipv4:1.2.3.4:5", "me", "me"]
    assert h["deleted"].tolist() == [False, False, True, False]
    assert h["threshold"].tolist()[1] == 2 and h["template"].tolist()[3] == "t"
    assert size(out) == 2 + 4
    left, right = halves(out)
    assert size(left) + size(right) == 6
    one = right
    while size(one) > 1:
        one = halves(one)[1]
    table, action, row = only_row(one)
    assert (table, action, row["limit_id"], row["action"]) == ("limit_history", "insert", "b", "upsert")


def test_pb_round_trip_of_every_field() -> None:
    lim = Limit(limit_id="i", kind=2, account="a", symbol="s", threshold=3, warn_fraction=0.25, disabled=True,
                description="d", template="t", reference_volatility=0.1, min_scale=0.5)  # fmt: skip
    assert limit_from_pb(limit_to_pb(lim)) == lim


def test_an_unchanged_record_makes_no_object_and_a_changed_one_shares_its_id() -> None:
    current = {f"id{i}": Limit(limit_id=f"id{i}", kind=1, threshold=i, account="A") for i in range(4)}
    stager = ImportStager(import_record_errors, current)
    msgs = [limit_to_pb(lim) for lim in current.values()]
    msgs[2].threshold = 99
    assert stager.add(msgs, 1)
    staged = stager.result()
    assert stager.current == {} and len(stager.staged) == 0  # the stager keeps nothing
    assert all(i is current[i].limit_id for i in staged.chunks[0].ids)
    plan = plan_import(current, staged)
    assert (plan.diff.changed, plan.diff.unchanged) == (1, 3)
    assert plan.upserted == (Limit(limit_id="id2", kind=1, threshold=99, account="A"),)
    assert plan.upserted[0].limit_id is current["id2"].limit_id
    assert not staged.chunks and not staged.ids  # consumed


def test_staged_columns_round_trip_every_field_and_share_values() -> None:
    lims = [
        Limit(
            limit_id=f"L{i}",
            kind=1 + i % 9,
            account=f"A{i % 3}",
            symbol="" if i % 9 in (3, 4) else f"S{i % 5}",
            threshold=float(i % 4),
            warn_fraction=0.8 if i % 2 else -0.0,
            disabled=i % 7 == 0,
            description="d" * (i % 2),
            template="t",
            reference_volatility=0.02 * (i % 2),
            min_scale=0.5 * (i % 2),
        )
        for i in range(50)
    ]
    plan = plan_import({}, StagedLimits.of(lims), max_changes=100)
    assert list(plan.upserted) == lims  # in record order; the listed changes in limit_id order
    assert [c.new for c in plan.diff.changes] == sorted(lims, key=lambda lim: lim.limit_id)
    assert [math.copysign(1, lim.warn_fraction) for lim in plan.upserted] == [
        math.copysign(1, lim.warn_fraction) for lim in lims
    ]
    ups = plan.upserted
    assert ups[1].threshold is ups[5].threshold and ups[1].account is ups[4].account  # shared objects


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 3), max_size=8),
    st.lists(st.dictionaries(st.sampled_from("abcdefghij"), st.integers(1, 3), max_size=4), max_size=4),
    st.booleans(),
    st.integers(1, 5),
)
def test_a_staged_import_in_chunks_plans_like_one_mapping(
    cur: dict, chunks: list[dict], replace: bool, max_changes: int
) -> None:
    current = {k: Limit(limit_id=k, kind=1, threshold=v) for k, v in cur.items()}
    stager = ImportStager(import_record_errors, current)
    seen: dict[str, Limit] = {}
    line = 1
    for chunk in chunks:
        chunk = {k: v for k, v in chunk.items() if k not in seen}
        msgs = [pb.Limit(limit_id=k, kind=1, threshold=v) for k, v in chunk.items()]
        assert stager.add(msgs, line)
        line += len(msgs)
        seen.update((k, Limit(limit_id=k, kind=1, threshold=v)) for k, v in chunk.items())
    for dry_run in (False, True):
        got = plan_import(current, stager.result() if not dry_run else StagedLimits.of(seen.values()),
                          replace=replace, max_changes=max_changes, dry_run=dry_run)  # fmt: skip
        want = plan_import(current, dict(seen), replace=replace, max_changes=max_changes)
        assert got.diff == want.diff
        assert got.upserted == (() if dry_run else want.upserted)
