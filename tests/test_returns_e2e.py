"""Returns and the risk model through the real server, a real PostgreSQL and the real client:
import (all or nothing, errors naming chunk/field/row), idempotent re-import, refresh, GetRiskModel,
the CLI round trip (demo-data -> returns import -> model) and the holder's coalescing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fix_server import RiskdServer

from riskd_client import AsyncRiskClient, ReturnsFileError, RiskClient, RiskdError
from riskd_client.cli import main as cli_main
from riskd_server.risk.build import BuildParams, ReturnsWindow
from riskd_server.risk.model import FACTOR, SAMPLE
from riskd_server.risk.service import RiskModelService


@pytest.fixture
def riskd_settings() -> dict[str, Any]:
    return {"risk_model": "sample", "var_min_days": 3, "risk_model_refresh": 0.0}


def grid(symbols: int, days: int, seed: int = 3) -> tuple[list[str], list[int], list[float]]:
    rng = np.random.default_rng(seed)
    s, d, r = [], [], []
    for t in range(days):
        for i in range(symbols):
            s.append(f"S{i}")
            d.append(20260105 + t)
            r.append(float(rng.normal(0, 0.01)))
    return s, d, r


def count_rows(server: RiskdServer) -> int:
    async def q() -> int:
        assert server.running is not None
        async with server.running.store._pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM returns")
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    return server.run(q())


def test_import_refresh_and_get_model(riskd_server: RiskdServer) -> None:
    s, d, r = grid(4, 10)
    with RiskClient(riskd_server.target, timeout=30) as c:
        assert not c.get_risk_model().exists
        with pytest.raises(RiskdError) as err:
            c.refresh_risk_model()
        assert err.value.code == "FAILED_PRECONDITION"
        # Two chunks, one row repeated across them: the last one wins.
        first = {"symbol": s[:20], "day": d[:20], "ret": r[:20]}
        second = ([*s[20:], "S0"], [*d[20:], 20260105], [*r[20:], 0.05])
        res = c.import_returns([first, second])
        assert (res.rows, res.upserted, res.symbols, res.first_day, res.last_day) == (
            41,
            40,
            4,
            20260105,
            20260114,
        )
        assert count_rows(riskd_server) == 40
        again = c.import_returns([first, second])
        assert again.upserted == 0 and again.rows == 41  # nothing changed
        done = c.refresh_risk_model()
        assert (
            done.model_version.startswith("sample-w250-m3-")
            and ":40r-4s-10d-20260105-20260114-" in done.model_version
        )
        info = c.get_risk_model(include_symbols=True)
        assert info.model_version == done.model_version and info.model == "sample"
        assert (info.symbol_count, info.days, info.factors) == (4, 10, 0)
        assert info.memory_bytes == 4 * 4 * 8 + 2 * 4 * 8
        assert info.z == pytest.approx(2.3263478740)
        m = np.array(r).reshape(10, 4).T.copy()
        m[0, 0] = 0.05
        by_symbol = dict(zip(info.symbols, info.volatility, strict=True))
        expected = np.std(m, axis=1, ddof=1)
        for i in range(4):
            assert by_symbol[f"S{i}"] == pytest.approx(expected[i], rel=1e-12)
        assert riskd_server.call(lambda: riskd_server.running.engine.risk_model.version) == done.model_version
        assert not c.get_risk_model().symbols  # summary only
        # Unchanged data: the same version, not swapped.
        assert c.refresh_risk_model().model_version == done.model_version


def test_invalid_row_in_the_middle_imports_nothing(riskd_server: RiskdServer) -> None:
    s, d, r = grid(3, 6)
    with RiskClient(riskd_server.target, timeout=30) as c:
        bad = list(r[6:12])
        bad[4] = float("nan")
        with pytest.raises(RiskdError) as err:
            c.import_returns([(s[:6], d[:6], r[:6]), (s[6:12], d[6:12], bad), (s[12:], d[12:], r[12:])])
        assert err.value.code == "INVALID_ARGUMENT"
        assert "chunk[1].ret[4]" in err.value.details and "row 10 of the stream" in err.value.details
        assert count_rows(riskd_server) == 0
        for chunk, needle in (
            ((["A", ""], [20260105, 20260105], [0.0, 0.0]), "chunk[0].symbol[1]: empty"),
            ((["A\x01"], [20260105], [0.0]), "symbol[0]"),
            ((["A"], [20260230], [0.0]), "day[0]: 20260230 is not a date"),
            ((["A"], [20260105], [-1.5]), "ret[0]: -1.5 is outside"),
        ):
            with pytest.raises(RiskdError) as err:
                c.import_returns([chunk])
            assert needle in err.value.details, err.value.details
        assert count_rows(riskd_server) == 0


def test_client_cancels_on_a_bad_chunk(riskd_server: RiskdServer) -> None:
    """A chunk the client cannot encode cancels the call: what was sent before is not committed."""
    s, d, r = grid(2, 5)

    def chunks():
        yield (s, d, r)
        yield (["A"], [1, 2], [0.0])  # unequal columns

    with RiskClient(riskd_server.target, timeout=30) as c, pytest.raises(ValueError, match="unequal"):
        c.import_returns(chunks())
    assert count_rows(riskd_server) == 0


def test_async_client(riskd_server: RiskdServer) -> None:
    s, d, r = grid(3, 5)

    async def go() -> None:
        async with AsyncRiskClient(riskd_server.target, timeout=30) as c:
            res = await c.import_returns([(s, d, r)])
            assert res.upserted == 15
            done = await c.refresh_risk_model()
            info = await c.get_risk_model()
            assert info.model_version == done.model_version and info.symbol_count == 3

    asyncio.run(go())


def test_cli_demo_data_round_trip(riskd_server: RiskdServer, tmp_path: Path, capsys) -> None:
    path = tmp_path / "r.csv"
    assert cli_main(["demo-data", "--symbols", "30", "--days", "40", "--out", str(path)]) == 0
    lines = path.read_text().splitlines()
    assert lines[0] == "symbol,day,ret" and len(lines) == 1 + 30 * 40
    target = ["--target", riskd_server.target]
    assert cli_main([*target, "model"]) == 1
    assert cli_main([*target, "returns", "import", str(path), "--chunk-rows", "500"]) == 0
    out = capsys.readouterr().out
    assert "imported 1200 returns (1200 new or changed), 30 symbols" in out and "risk model sample-" in out
    assert cli_main([*target, "model", "--symbols"]) == 0
    out = capsys.readouterr().out
    assert "30 symbols x 40 days" in out and "SYM0029" in out
    # The demo set is correlated: the first principal component explains a good share.
    with RiskClient(riskd_server.target) as c:
        vols = np.array(c.get_risk_model(include_symbols=True).volatility)
    assert ((vols > 0.005) & (vols < 0.06)).all()


def test_cli_bad_line_is_named_and_nothing_imported(
    riskd_server: RiskdServer, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("symbol,day,ret\nA,20260105,0.01\nB,2026-01-05,0.02\n\nC,20260105,abc\n")
    assert cli_main(["--target", riskd_server.target, "returns", "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 5: ret 'abc' is not a number; nothing imported" in err
    assert count_rows(riskd_server) == 0
    with pytest.raises(ReturnsFileError, match="line 1: header"), RiskClient(riskd_server.target) as c:
        (tmp_path / "h.csv").write_text("a,b,c\n")
        c.import_returns(tmp_path / "h.csv")


def test_holder_coalesces_and_keeps_the_old_model_on_failure() -> None:
    reads = 0
    fail = False
    installed: list[str] = []

    async def read(window: int) -> ReturnsWindow:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)
        if fail:
            raise RuntimeError("database gone")
        m = np.random.default_rng(reads).normal(0, 0.01, (3, 30))
        return ReturnsWindow(("A", "B", "C"), np.arange(20260101, 20260131, dtype=np.int32), m)

    async def go() -> None:
        nonlocal fail
        current: list[Any] = [None]

        def install(model: Any, form: Any) -> None:
            assert form.version == model.version  # factored in the worker thread
            current[0] = model
            installed.append(model.version)

        svc = RiskModelService(read, install, BuildParams(kind=FACTOR, factors=2), current=lambda: current[0])
        # Five concurrent refreshes: the first builds, the other four share the one after it.
        results = await asyncio.gather(*(svc.refresh() for _ in range(5)))
        assert reads == 2 and len(installed) == 2
        assert results[0].model.version == installed[0]
        assert {r.model.version for r in results[1:]} == {installed[1]}
        fail = True
        with pytest.raises(Exception, match="database gone"):
            await svc.refresh()
        assert current[0].version == installed[1] and svc.failures == 1

    asyncio.run(go())


def test_holder_timer_rebuilds_and_stops() -> None:
    """start() builds in the background and again every refresh seconds; stop() ends it; no
    returns is not an error (no model)."""
    reads = 0

    async def read(window: int) -> ReturnsWindow:
        nonlocal reads
        reads += 1
        if reads == 1:
            return ReturnsWindow((), np.zeros(0, dtype=np.int32), np.zeros((0, 0)))
        m = np.random.default_rng(reads).normal(0, 0.01, (2, 25))
        return ReturnsWindow(("A", "B"), np.arange(20260101, 20260126, dtype=np.int32), m)

    async def go() -> None:
        models: list[Any] = []
        svc = RiskModelService(
            read, lambda model, form: models.append(model), BuildParams(kind=SAMPLE), refresh=0.05
        )
        svc.start()
        await asyncio.sleep(0.4)
        await svc.stop()
        assert reads >= 3 and len(models) == reads - 1  # the first read found nothing
        seen = reads
        await asyncio.sleep(0.15)
        assert reads == seen  # stopped

    asyncio.run(go())


def test_model_is_built_at_start_in_the_background(riskd_server: RiskdServer) -> None:
    s, d, r = grid(3, 8)
    with RiskClient(riskd_server.target, timeout=30) as c:
        c.import_returns([(s, d, r)])
        version = c.refresh_risk_model().model_version
    riskd_server.restart()  # SERVING first; the model follows from the stored returns
    with RiskClient(riskd_server.target, timeout=30) as c:
        deadline = time.monotonic() + 60
        while not c.get_risk_model().exists and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get_risk_model().model_version == version


def test_model_bench_prints_both_models(capsys) -> None:
    from bench import model_bench

    model_bench.main(["--symbols", "50", "--days", "30", "--repeat", "1", "--factors", "3"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[0], r[1], r[5]) for r in rows] == [("50", "factor", "3"), ("50", "sample", "0")]
    assert float(rows[1][3]) == pytest.approx((50 * 50 + 2 * 50) * 8 / 1e6, abs=0.01)


def test_one_import_at_a_time_and_idle_streams_end(riskd_server: RiskdServer) -> None:
    from riskd.v1 import risk_pb2 as pb
    from riskd_server.risk.rpc import ImportBusy, ImportIdle, ReturnsImporter

    assert riskd_server.running is not None
    # Margins of a second: a loaded machine stalls the server's loop for a tenth now and then.
    importer = ReturnsImporter(riskd_server.running.store, idle_timeout=1.0)

    async def slow(pause: float):
        yield pb.ImportReturnsRequest(symbol=["A"], day=[20260105], ret=[0.01])
        await asyncio.sleep(pause)
        yield pb.ImportReturnsRequest(symbol=["B"], day=[20260105], ret=[0.02])

    async def go() -> None:
        first = asyncio.ensure_future(importer.run(slow(0.2)))
        await asyncio.sleep(0.05)
        with pytest.raises(ImportBusy):
            await importer.run(slow(0.0))
        assert (await first).upserted == 2
        with pytest.raises(ImportIdle, match=r"no chunk for 1s after chunk\[0\]"):
            await importer.run(slow(2.5))
        assert (await importer.run(slow(0.0))).upserted == 0  # free again; same rows

    riskd_server.run(go())
    assert count_rows(riskd_server) == 2
