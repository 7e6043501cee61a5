"""SizePositions end to end: the full server (PostgreSQL, write-behind) with a hand-made risk model
installed on its engine, the blocking and async clients, the CLI (`riskd size`, `riskd var`)."""

from __future__ import annotations

import asyncio
import itertools
import math

import numpy as np
import pytest
from fix_server import RiskdServer
from risk_models import make_model

from riskd_client import AsyncRiskClient, LimitSpec, Order, RiskClient, RiskdError
from riskd_client.cli import main
from riskd_server.risk.model import FACTOR, RiskModel
from riskd_server.risk.sizing import naive_var

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
_ids = itertools.count()


def _install(server: RiskdServer, model: RiskModel | None) -> None:
    assert server.running is not None
    server.call(server.running.engine.set_risk_model, model)


@pytest.fixture
def desk(riskd_server: RiskdServer) -> RiskModel:
    model = make_model(FACTOR, SYMBOLS, seed=5)
    with RiskClient(riskd_server.target) as c:
        c.update_prices({"AAA": 10.0, "BBB": 20.0, "CCC": 40.0, "OUT": 5.0})
        c.load_positions([("ACC", "AAA", 1_000), ("ACC", "BBB", -500), ("ACC", "OUT", 300)])
        assert c.check([Order("o1", "ACC", "CCC", "BUY", 50, 0)]).all_accepted
    _install(riskd_server, model)
    return model


def _w(model: RiskModel) -> tuple[np.ndarray, np.ndarray]:
    w = np.zeros(len(SYMBOLS))
    w[model.index["AAA"]] = 10_000.0
    w[model.index["BBB"]] = -10_000.0
    w[model.index["CCC"]] = 2_000.0
    return w, np.array([1_500.0])


def test_no_model_is_a_failed_precondition(riskd_server: RiskdServer) -> None:
    with RiskClient(riskd_server.target) as c, pytest.raises(RiskdError) as err:
        c.size_positions("ACC", var_budget=1.0)
    assert err.value.code == "FAILED_PRECONDITION" and err.value.details == "no risk model yet"


def test_sizes_through_the_server(riskd_server: RiskdServer, desk: RiskModel) -> None:
    model = desk
    w, extra = _w(model)
    var = naive_var(model, w, extra)
    budget = 2 * var
    with RiskClient(riskd_server.target) as c:
        sizing = c.size_positions("ACC", ["AAA", "BBB", "CCC", "OUT", "DDD", "NEW"], var_budget=budget)
        assert sizing.model_version == model.version
        assert sizing.var == pytest.approx(var, rel=1e-12) and sizing.var_budget == budget
        assert sizing.server_micros > 0
        z = sizing.by_symbol()
        assert [z[s].exposure for s in ("AAA", "BBB", "CCC", "OUT", "DDD", "NEW")] == [
            10_000.0, -10_000.0, 2_000.0, 1_500.0, 0.0, 0.0,
        ]  # fmt: skip
        assert sum(s.component_var for s in sizing) == pytest.approx(var, rel=1e-9)
        assert z["DDD"].price == 0.0 and z["DDD"].max_buy == z["DDD"].max_sell == 0.0  # no mark
        assert math.isinf(z["AAA"].limit_buy)  # not asked: no limit columns
        # the rule, on the plain VaR: 0.999 x passes, 1.001 x does not
        for sym in ("AAA", "BBB", "CCC"):
            for side, q in ((1.0, z[sym].max_buy), (-1.0, z[sym].max_sell)):
                for factor, ok in ((0.999, True), (1.001, False)):
                    moved = w.copy()
                    moved[model.index[sym]] += side * factor * q * z[sym].price
                    assert (naive_var(model, moved, extra) <= budget) is ok
        # every model symbol, in model order, when none is named
        every = c.size_positions("ACC", var_budget=budget)
        assert [s.symbol for s in every] == SYMBOLS
        assert [s.max_buy for s in every] == [z[s].max_buy for s in SYMBOLS]


def test_limit_room_through_the_server(riskd_server: RiskdServer, desk: RiskModel) -> None:
    with RiskClient(riskd_server.target) as c:
        c.upsert_limits(
            [
                LimitSpec("q", "MAX_ORDER_QUANTITY", 800, account="ACC"),
                LimitSpec("p", "MAX_POSITION", 1_500, account="ACC", symbol="AAA"),
                LimitSpec("n", "MAX_NET_EXPOSURE", 30_000),
            ]
        )
        sizing = c.size_positions("ACC", ["AAA", "BBB"], var_budget=1e9, apply_limits=True)
        z = sizing.by_symbol()
        assert z["AAA"].limit_buy == 500.0 and z["AAA"].limit_sell == 800.0  # position, quantity
        assert z["BBB"].limit_buy == 800.0
        for s in sizing:
            for side, q in (("BUY", s.buy), ("SELL", s.sell)):
                for factor, ok in ((0.999, True), (1.001, False)):
                    oid = f"p{next(_ids)}"
                    result = c.check([Order(oid, "ACC", s.symbol, side, factor * q, 0)])
                    assert result.all_accepted is ok, (s.symbol, side, factor, q)
                    if ok:
                        c.report_executions([(oid, "CANCELED")])


def test_max_var_consistency_through_the_check(riskd_server: RiskdServer, desk: RiskModel) -> None:
    """The issue's contract: 0.999 x max_buy passes MAX_VAR and 1.001 x fails, through the real
    check (a hand-made model installed on the engine; test_var_e2e does it from imported returns)."""
    model = desk
    w, extra = _w(model)
    threshold = 1.5 * naive_var(model, w, extra)
    with RiskClient(riskd_server.target) as c:
        c.upsert_limits([LimitSpec("v", "MAX_VAR", threshold, account="ACC")])
        _install(riskd_server, model)  # the kernel prices against the model installed after the limit
        sizing = c.size_positions("ACC", ["AAA", "BBB", "CCC"])
        assert sizing.var_budget == threshold
        for s in sizing:
            for side, q in (("BUY", s.max_buy), ("SELL", s.max_sell)):
                if not 0 < q < math.inf:
                    continue
                for factor, ok in ((0.999, True), (1.001, False)):
                    oid = f"v{next(_ids)}"
                    result = c.check([Order(oid, "ACC", s.symbol, side, factor * q, 0)])
                    assert result.all_accepted is ok, (s.symbol, side, factor, result[0].failed_checks)
                    if ok:
                        c.report_executions([(oid, "CANCELED")])
                    else:
                        assert "MAX_VAR" in result[0].failed_checks


def test_errors_name_the_field(riskd_server: RiskdServer, desk: RiskModel) -> None:
    with RiskClient(riskd_server.target) as c:
        for kwargs, field in (
            ({"var_budget": -1.0}, "var_budget"),
            ({"var_budget": math.nan}, "var_budget"),
            ({"symbols": ["AAA", ""], "var_budget": 1.0}, "symbols[1]"),
        ):
            symbols = kwargs.pop("symbols", ())
            with pytest.raises(RiskdError) as err:
                c.size_positions("ACC", symbols, **kwargs)  # type: ignore[arg-type]
            assert err.value.code == "INVALID_ARGUMENT" and err.value.details.startswith(field)
        with pytest.raises(RiskdError) as err:
            c.size_positions("ACC")  # budget 0 and no MAX_VAR limit
        assert err.value.code == "FAILED_PRECONDITION" and "MAX_VAR" in err.value.details
        nobody = c.size_positions("NOBODY", "AAA", var_budget=100.0)  # unknown account: holds nothing
        assert nobody.var == 0.0 and nobody.sizes[0].max_buy > 0


def test_async_client(riskd_server: RiskdServer, desk: RiskModel) -> None:
    async def run() -> tuple[float, int]:
        async with AsyncRiskClient(riskd_server.target) as c:
            sizing = await c.size_positions("ACC", var_budget=1e6, apply_limits=True)
            return sizing.var, len(sizing)

    var, n = asyncio.run(run())
    w, extra = _w(desk)
    assert var == pytest.approx(naive_var(desk, w, extra), rel=1e-12) and n == len(SYMBOLS)


def test_cli(riskd_server: RiskdServer, desk: RiskModel, capsys: pytest.CaptureFixture[str]) -> None:
    def riskd(*args: str) -> tuple[int, str, str]:
        code = main(["--target", riskd_server.target, *args])
        out, err = capsys.readouterr()
        return code, out, err

    w, extra = _w(desk)
    var = naive_var(desk, w, extra)
    code, out, err = riskd("size", "ACC", "AAA", "DDD", "--budget", "100000", "--limits")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["ACC", "VaR", f"{var:,.2f}", "budget", "100,000.00"]
    assert lines[1].split() == [
        "SYMBOL", "PRICE", "EXPOSURE", "MAX_BUY", "MAX_SELL", "MARGINAL", "COMPONENT", "LIMIT_BUY", "LIMIT_SELL",
    ]  # fmt: skip
    aaa, ddd = lines[2].split(), lines[3].split()
    assert aaa[:3] == ["AAA", "10", "10,000.00"] and aaa[-2:] == ["inf", "inf"]
    max_buy = float(aaa[3].replace(",", ""))
    with RiskClient(riskd_server.target) as c:
        sized = c.size_positions("ACC", "AAA", var_budget=100_000)[0]
    assert sized.max_buy - 0.01 < max_buy <= sized.max_buy  # rounded down to cents
    assert ddd[:7] == ["DDD", "-", "0.00", "0.00", "0.00", ddd[5], "0.00"]
    assert lines[4].startswith("2 symbol(s); 1 without a mark")

    code, out, err = riskd("var", "ACC", "--top", "2")  # no MAX_VAR limit: the VaR alone
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ACC", "VaR", f"{var:,.2f}"] and "none (no MAX_VAR limit)" in lines[0]
    assert lines[1].split() == ["SYMBOL", "EXPOSURE", "COMPONENT", "SHARE"]
    assert len(lines) == 4  # the two largest contributors

    code, out, err = riskd("size", "ACC")  # budget 0, no MAX_VAR limit
    assert code == 3 and "FAILED_PRECONDITION" in err and "MAX_VAR" in err
