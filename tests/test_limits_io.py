"""Streaming import/export, templates and limit history through the real server and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fix_server import RiskdServer

from riskd_client import LimitSpec, RiskClient, RiskdError
from riskd_client.aio_client import AsyncRiskClient


@pytest.fixture
def riskd_settings() -> dict[str, Any]:
    return {"limit_history": 3}


def _limits(n: int, *, threshold: float = 100.0, accounts: int = 50) -> list[LimitSpec]:
    kinds = ("MAX_ORDER_QUANTITY", "MAX_POSITION", "MAX_ORDER_NOTIONAL")
    return [
        LimitSpec(
            f"L{i:07d}",
            kinds[i % 3],
            threshold + i,
            account=f"A{i % accounts}",
            symbol=f"S{i % 7}" if i % 2 else "",
            warn_fraction=0.5 if i % 5 == 0 else 0.0,
            description="d" if i % 11 == 0 else "",
        )
        for i in range(n)
    ]


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _rec(spec: LimitSpec) -> dict[str, Any]:
    return {
        "limit_id": spec.limit_id,
        "kind": spec.kind,
        "account": spec.account,
        "symbol": spec.symbol,
        "threshold": spec.threshold,
        "warn_fraction": spec.warn_fraction,
        "description": spec.description,
    }


def _db_limits(server: RiskdServer) -> dict[str, tuple]:
    with psycopg.connect(server.settings.dsn) as conn:
        rows = conn.execute(
            "SELECT limit_id, kind, account, symbol, threshold, warn_fraction, disabled, description, template"
            " FROM limits"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


# ---------------------------------------------------------------------------------------- import/export


def test_export_import_round_trip_equals_the_source(riskd_server: RiskdServer, tmp_path: Path) -> None:
    source = _limits(25_000)
    with RiskClient(riskd_server.target) as c:
        first = c.import_limits(source, chunk_size=4_000)
        assert (first.diff.added, first.diff.changed, first.records) == (25_000, 0, 25_000)
        exported = list(c.export_limits(chunk_size=3_000))
        assert [e.limit_id for e in exported] == sorted(s.limit_id for s in source)
        listed = {lim.limit_id: lim for lim in c.list_limits()}
        assert {e.limit_id: e for e in exported} == listed
        # The file the CLI writes, imported again: nothing changes.
        path = tmp_path / "limits.jsonl"
        with path.open("w") as f:
            from riskd_client._limits_io import write_jsonl

            assert write_jsonl(c.export_limit_chunks(), f) == 25_000
        again = c.import_limits(path)
        assert (again.diff.added, again.diff.changed, again.diff.deleted) == (0, 0, 0)
        assert again.diff.unchanged == 25_000 and again.limits_version == first.limits_version
        # Into a fresh set (replace): the exported file reproduces the source exactly.
        c.delete_limits([s.limit_id for s in source[:10]])
        c.upsert_limits(LimitSpec("extra", "MAX_ORDER_QUANTITY", 1))
        back = c.import_limits(path, replace=True)
        assert (back.diff.added, back.diff.deleted, back.diff.unchanged) == (10, 1, 24_990)
        assert {lim.limit_id: lim for lim in c.list_limits()} == listed
    db = _db_limits(riskd_server)
    assert set(db) == {s.limit_id for s in source}
    assert db["L0000011"] == (2, "A11", "S4", 111.0, 0.0, False, "d", "")


def test_an_invalid_line_in_the_middle_changes_nothing(riskd_server: RiskdServer, tmp_path: Path) -> None:
    with RiskClient(riskd_server.target) as c:
        c.upsert_limits(LimitSpec("keep", "MAX_ORDER_QUANTITY", 5))
        records = [_rec(s) for s in _limits(30_000)]
        records[17_345]["threshold"] = -1
        lines = [json.dumps(r) for r in records]
        lines.insert(100, "")  # blank lines are skipped but counted
        path = tmp_path / "bad.jsonl"
        path.write_text("\n".join(lines) + "\n")
        before = c.list_limits()
        with pytest.raises(RiskdError) as err:
            c.import_limits(path, chunk_size=5_000)
        assert err.value.code == "INVALID_ARGUMENT"
        assert "line 17347: threshold: must be finite and >= 0, got -1.0" in err.value.details
        assert "nothing changed" in err.value.details
        assert c.list_limits() == before
    assert set(_db_limits(riskd_server)) == {"keep"}


def test_duplicates_and_every_field_error_are_named(riskd_server: RiskdServer, tmp_path: Path) -> None:
    records = [_rec(s) for s in _limits(10)]
    records[3]["limit_id"] = records[1]["limit_id"]
    records[5]["kind"] = "MAX_GROSS_EXPOSURE"  # account-level, but it has a symbol
    records[7]["min_scale"] = 1.5  # refused, as in UpsertLimits
    path = _write(tmp_path / "dup.jsonl", records)
    with RiskClient(riskd_server.target) as c:
        with pytest.raises(RiskdError) as err:
            c.import_limits(path)
        details = err.value.details
        assert "line 4: limit_id: 'L0000001' already given on line 2" in details
        assert "line 6: symbol: account-level kind MAX_GROSS_EXPOSURE takes no symbol" in details
        assert "line 8: min_scale: must be in [0, 1] (0: the server's default), got 1.5" in details
        assert not c.list_limits().limits
        # Values (not a file): records are named by position.
        bad = [LimitSpec("x", "MAX_POSITION", 1), LimitSpec("", "MAX_POSITION", 1)]
        with pytest.raises(RiskdError, match="record 2: limit_id: must not be empty"):
            c.import_limits(bad)


def test_dry_run_diff_is_exact_and_changes_nothing(riskd_server: RiskdServer) -> None:
    base = _limits(40)
    with RiskClient(riskd_server.target) as c:
        v = c.import_limits(base).limits_version
        new = [*base[:30], LimitSpec("new1", "MAX_ORDER_QUANTITY", 9), LimitSpec("new0", "MAX_POSITION", 8)]
        new[4] = LimitSpec(new[4].limit_id, new[4].kind, 1.5, account=new[4].account, symbol=new[4].symbol,
                           warn_fraction=new[4].warn_fraction, description=new[4].description)  # fmt: skip
        dry = c.import_limits(new, dry_run=True, replace=True, max_changes=5)
        assert dry.dry_run and dry.limits_version == v
        d = dry.diff
        assert (d.added, d.changed, d.deleted, d.unchanged) == (2, 1, 10, 29)
        ids = sorted(["new0", "new1", base[4].limit_id, *(s.limit_id for s in base[30:])])
        assert [ch.limit_id for ch in d.changes] == ids[:5] and d.omitted == 8
        by_id = {ch.limit_id: ch for ch in d.changes}
        old4, new4 = by_id[base[4].limit_id].old, by_id[base[4].limit_id].new
        assert old4 is not None and new4 is not None and (old4.threshold, new4.threshold) == (104.0, 1.5)
        assert c.list_limits().limits_version == v and len(c.list_limits()) == 40
        # Applied for real, the same diff.
        real = c.import_limits(new, replace=True, max_changes=5)
        assert real.diff == d and real.limits_version == v + 1
        assert sorted(lim.limit_id for lim in c.list_limits()) == sorted(s.limit_id for s in new)


def test_export_filters_and_async_client(riskd_server: RiskdServer) -> None:
    import asyncio

    with RiskClient(riskd_server.target) as c:
        c.import_limits(_limits(300))
        by_account = list(c.export_limits(account="A3"))
        assert by_account and {e.account for e in by_account} == {"A3"}
        assert [e.limit_id for e in by_account] == sorted(e.limit_id for e in by_account)
        kind = list(c.export_limits(kind="max-position", symbol="S1"))
        assert kind and all(e.kind == "MAX_POSITION" and e.symbol == "S1" for e in kind)
        assert list(c.export_limits(account="nobody")) == []

    async def run() -> None:
        async with AsyncRiskClient(riskd_server.target) as ac:
            got = [lim async for lim in ac.export_limits(chunk_size=7)]
            assert len(got) == 300
            res = await ac.import_limits(got[:10], dry_run=True, replace=True)
            assert (res.diff.unchanged, res.diff.deleted) == (10, 290)
            t = await ac.apply_template("ASYNC", "aggressive", dry_run=True)
            assert t.diff.added == len(t.limits) and t.upserted == 0
            assert await ac.limit_history(got[0].limit_id)
            assert {t.name for t in await ac.list_templates()} >= {"conservative", "standard", "aggressive"}

    asyncio.run(run())


# ---------------------------------------------------------------------------------------- templates


def test_apply_template_is_idempotent_and_filterable(riskd_server: RiskdServer) -> None:
    with RiskClient(riskd_server.target) as c:
        names = [t.name for t in c.list_templates()]
        assert names == sorted(names) and {"conservative", "standard", "aggressive"} <= set(names)
        dry = c.apply_template("ACC1", "standard", scale=2, dry_run=True)
        assert dry.upserted == 0 and not c.list_limits().limits
        first = c.apply_template("ACC1", "standard", scale=2)
        assert first.upserted == len(first.limits) == first.diff.added >= 7
        assert first.diff == dry.diff
        std = {t.name: t for t in c.list_templates()}["standard"]
        by_suffix = {lim.limit_id: lim for lim in std.limits}
        for lim in first.limits:
            suffix = lim.limit_id.removeprefix("ACC1:standard:")
            assert lim.account == "ACC1" and lim.template == "standard"
            assert lim.threshold == pytest.approx(2 * by_suffix[suffix].threshold)
        again = c.apply_template("ACC1", "standard", scale=2)
        assert again.upserted == 0 and again.diff.unchanged == len(first.limits)
        assert again.limits_version == first.limits_version
        c.apply_template("ACC2", "conservative")
        listed = c.list_limits(template="standard")
        assert {lim.account for lim in listed} == {"ACC1"} and len(listed) == len(first.limits)
        # Scaling differently changes every threshold, nothing else.
        changed = c.apply_template("ACC1", "standard", scale=3)
        assert changed.diff.changed == len(first.limits) and changed.diff.added == 0
        for bad, match in (
            ({"account": "ACC1", "template": "nope"}, "unknown template 'nope'"),
            ({"account": "", "template": "standard"}, "account: required"),
        ):
            with pytest.raises(RiskdError, match=match):
                c.apply_template(**bad)
        with pytest.raises(RiskdError, match="limit_id: longer than 128"):
            c.apply_template("A" * 120, "standard")
        assert len(c.list_limits(template="standard")) == len(first.limits)


# ---------------------------------------------------------------------------------------- history


def test_history_keeps_the_last_versions_with_who_and_when(riskd_server: RiskdServer) -> None:
    t0 = time.time()
    with RiskClient(riskd_server.target) as c:
        for threshold in (1, 2, 3, 4, 5):
            c.upsert_limits(LimitSpec("h", "MAX_ORDER_QUANTITY", threshold))
        c.import_limits([LimitSpec("h", "MAX_ORDER_QUANTITY", 6, description="imported")])
        c.delete_limits("h")
        versions = c.limit_history("h")
        assert [v.action for v in versions] == ["delete", "import", "upsert"]  # limit_history = 3
        assert versions[0].limit is None
        assert versions[1].limit is not None and versions[1].limit.threshold == 6
        assert versions[2].limit is not None and versions[2].limit.threshold == 5
        assert [v.limits_version for v in versions] == sorted(
            (v.limits_version for v in versions), reverse=True
        )
        assert all(v.who.startswith(("ipv4:127.0.0.1:", "ipv6:")) for v in versions)
        assert all(t0 - 1 <= v.time <= time.time() + 1 for v in versions)
        c.apply_template("T1", "conservative")
        (tv,) = c.limit_history("T1:conservative:max-order-quantity")
        assert tv.action == "template" and tv.limit is not None and tv.limit.template == "conservative"
        assert c.limit_history("never") == []
    with psycopg.connect(riskd_server.settings.dsn) as conn:
        (n,) = conn.execute("SELECT count(*) FROM limit_history WHERE limit_id = 'h'").fetchone()  # type: ignore[misc]
    assert n == 3


def test_history_survives_restart(riskd_server: RiskdServer) -> None:
    with RiskClient(riskd_server.target) as c:
        c.upsert_limits(LimitSpec("r", "MAX_POSITION", 1))
    riskd_server.restart()
    with RiskClient(riskd_server.target) as c:
        c.upsert_limits(LimitSpec("r", "MAX_POSITION", 2))
        assert [v.limit.threshold for v in c.limit_history("r") if v.limit] == [2, 1]


def test_limits_and_history_are_written_in_copy_slices(riskd_server: RiskdServer, monkeypatch) -> None:
    from riskd_server.store import _write

    monkeypatch.setattr(_write, "COPY_SLICE", 7)
    source = _limits(100)
    with RiskClient(riskd_server.target) as c:
        assert c.import_limits(source).diff.added == 100
        res = c.import_limits(source[:40], replace=True)
        assert (res.diff.deleted, res.diff.unchanged) == (60, 40)
        assert res.persisted is True
    db = _db_limits(riskd_server)
    assert sorted(db) == sorted(s.limit_id for s in source[:40])
    assert db["L0000011"] == (2, "A11", "S4", 111.0, 0.0, False, "d", "")
    with psycopg.connect(riskd_server.settings.dsn) as conn:
        rows = conn.execute(
            "SELECT action, deleted, count(*) FROM limit_history GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    assert rows == [("import", False, 100), ("import", True, 60)]


@pytest.mark.parametrize("riskd_settings", [{"max_pending_rows": 12_000, "journal": False}])
def test_an_import_bigger_than_the_backlog_bound_is_refused_whole(riskd_server: RiskdServer) -> None:
    """Without the journal the write-behind's bound is the server's: too big is refused whole."""
    with RiskClient(riskd_server.target) as c:
        with pytest.raises(RiskdError) as err:
            c.import_limits(_limits(15_000))  # more than limit_admin.SMALL_CHANGE: the whole-set path
        assert err.value.code == "UNAVAILABLE"
        assert not c.list_limits().limits
        assert c.import_limits(_limits(11_000)).diff.added == 11_000  # within the bound
    assert len(_db_limits(riskd_server)) == 11_000


@pytest.mark.parametrize("riskd_settings", [{"max_pending_rows": 12_000}])
def test_with_the_journal_an_import_bigger_than_the_backlog_bound_is_journaled_and_fed(
    riskd_server: RiskdServer,
) -> None:
    """With the journal the import is acknowledged once journaled (a side file: past 2,000 limits)
    and the feeder writes it whole though it is bigger than its backlog bound."""
    with RiskClient(riskd_server.target) as c:
        assert c.import_limits(_limits(15_000)).diff.added == 15_000
    assert len(_db_limits(riskd_server)) == 15_000
    journal = Path(riskd_server.settings.data_dir) / "journal"
    assert len(list(journal.glob("limits-*.jsonl"))) == 1
    riskd_server.restart()  # and it comes back: checkpoint or journal, not the database alone
    with RiskClient(riskd_server.target) as c:
        assert len(c.list_limits().limits) == 15_000


def test_limits_version_only_goes_up_across_restarts(riskd_server: RiskdServer) -> None:
    with RiskClient(riskd_server.target) as c:
        for threshold in (1, 2, 3):
            c.upsert_limits(LimitSpec("v", "MAX_POSITION", threshold))
        c.upsert_limits(LimitSpec("w", "MAX_POSITION", 1))
        v = c.delete_limits("w").limits_version
        assert v >= 5
    riskd_server.restart()
    with RiskClient(riskd_server.target) as c:
        assert c.list_limits().limits_version == v  # the recovered set is the version it was
        assert c.upsert_limits(LimitSpec("v", "MAX_POSITION", 4)).limits_version == v + 1
        last = c.delete_limits("v").limits_version  # nothing left: the version is kept all the same
        assert last == v + 2
    riskd_server.restart()
    with RiskClient(riskd_server.target) as c:
        assert c.list_limits().limits_version == last and not c.list_limits().limits
        assert c.import_limits([LimitSpec("x", "MAX_POSITION", 1)]).limits_version == last + 1
    with psycopg.connect(riskd_server.settings.dsn) as conn:
        assert conn.execute("SELECT version FROM limits_version").fetchall() == [(last + 1,)]
