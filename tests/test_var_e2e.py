"""VaR the way a desk meets it, through a real server and PostgreSQL: `riskd demo-data` and
`riskd returns import` (the factor model built from the stored returns), a MAX_VAR limit, then
SizePositions' quantities against the real check: 0.999 x max passes MAX_VAR, 1.001 x fails; and
`riskd var` names the biggest contributors."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from fix_server import RiskdServer

from riskd_client import LimitSpec, Order, RiskClient
from riskd_client.cli import main as cli_main

SYMBOLS = 40
_ids = itertools.count()


@pytest.fixture
def riskd_settings() -> dict[str, Any]:
    return {"risk_model": "factor", "var_factors": 3, "var_min_days": 10, "risk_model_refresh": 0.0}


def test_demo_data_to_sizing_to_the_check(riskd_server: RiskdServer, tmp_path: Path, capsys) -> None:
    path = tmp_path / "returns.csv"
    target = ["--target", riskd_server.target]
    assert cli_main(["demo-data", "--symbols", str(SYMBOLS), "--days", "60", "--out", str(path)]) == 0
    assert cli_main([*target, "returns", "import", str(path)]) == 0
    assert "risk model factor-" in capsys.readouterr().out
    with RiskClient(riskd_server.target) as c:
        info = c.get_risk_model(include_symbols=True)
        assert info.model == "factor" and info.factors == 3 and len(info.symbols) == SYMBOLS
        symbols = list(info.symbols)
        c.update_prices({s: 50.0 + i for i, s in enumerate(symbols)})
        c.load_positions([("DESK", s, 100.0 * (1 + i % 3) * (-1) ** i) for i, s in enumerate(symbols[:10])])
        free = c.size_positions("DESK", var_budget=1e12)  # no limit yet: an explicit budget
        threshold = 1.3 * free.var
        c.upsert_limits([LimitSpec("desk-var", "MAX_VAR", threshold, account="DESK")])
        sizing = c.size_positions("DESK", symbols[:6] + symbols[-3:])
        assert sizing.var == pytest.approx(free.var, rel=1e-9) and sizing.var_budget == threshold
        assert sizing.model_version == info.model_version
        full = list(c.size_positions("DESK"))
        assert sum(s.component_var for s in full) == pytest.approx(sizing.var, rel=1e-9)
        top = max(full, key=lambda s: s.component_var).symbol
        tried = 0
        for s in sizing:
            for side, q in (("BUY", s.max_buy), ("SELL", s.max_sell)):
                assert 0 < q < math.inf, (s.symbol, side, q)
                for factor, ok in ((0.999, True), (1.001, False)):
                    oid = f"var-{next(_ids)}"
                    result = c.check([Order(oid, "DESK", s.symbol, side, factor * q, 0)])
                    assert result.all_accepted is ok, (s.symbol, side, factor, result[0].failed_checks)
                    if ok:
                        c.report_executions([(oid, "CANCELED")])  # back to the same book
                    else:
                        (reason,) = result[0].reasons
                        assert reason.check == "MAX_VAR" and reason.threshold == threshold
                        assert reason.observed > threshold
                    tried += 1
        assert tried == 4 * len(sizing)
    assert cli_main([*target, "var", "DESK", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "DESK" in out and top in out.split("\n", 2)[2]  # the biggest contributor is listed
