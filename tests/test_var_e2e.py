"""MAX_VAR end to end: a real server (PostgreSQL store, gRPC, the real client), a model installed
directly on its engine (the returns and model RPCs land separately), orders, fills and marks."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from fix_server import RiskdServer
from var_reference import make_model, var_of

from riskd_client import Execution, LimitSpec, Order, RiskClient


@pytest.fixture
def client(riskd_server: RiskdServer) -> Iterator[RiskClient]:
    with RiskClient(riskd_server.target, timeout=10.0) as c:
        yield c


def test_max_var_through_the_server(client: RiskClient, riskd_server: RiskdServer) -> None:
    assert riskd_server.running is not None
    engine = riskd_server.running.engine
    client.update_prices({"AAA": 100.0, "BBB": 50.0})
    client.upsert_limits([LimitSpec("var-a", "MAX_VAR", 5_000.0, account="VA", warn_fraction=0.5)])
    assert [lim.kind for lim in client.list_limits(account="VA")] == ["MAX_VAR"]

    # No model yet: the limit cannot be priced, so it rejects (fail closed), saying observed = inf.
    res = client.check([Order("n1", "VA", "AAA", "BUY", 1, 100.0), Order("n2", "VB", "AAA", "BUY", 1, 100.0)])
    assert res.accepted == [False, True]
    (v,) = res[0].reasons
    assert (v.check, v.limit_id, v.observed, v.threshold) == ("MAX_VAR", "var-a", math.inf, 5_000.0)

    model = make_model(["AAA", "BBB"], 7)
    riskd_server.call(engine.set_risk_model, model)
    q_ok = 0.9 * 5_000.0 / var_of(model, {"AAA": 100.0})  # VaR is linear in a one-symbol book
    res = client.check(
        [Order("o1", "VA", "AAA", "BUY", q_ok, 0.0), Order("o2", "VA", "AAA", "BUY", q_ok, 0.0)]
    )
    assert res.accepted == [True, False]
    (warn,) = res[0].reasons  # 90 % of T: past warn_fraction 0.5, accepted with a warning
    assert warn.warning and warn.observed == pytest.approx(4_500.0, rel=1e-9)
    (breach,) = res[1].reasons
    assert breach.check == "MAX_VAR" and not breach.warning
    assert breach.observed == pytest.approx(var_of(model, {"AAA": 2 * q_ok * 100.0}), rel=1e-9)

    # A hedge in the other symbol lowers the VaR when the two are correlated enough, or raises it
    # less than T allows: the rule decides with VaR before and after, the reference agrees.
    w = {"AAA": q_ok * 100.0}
    after = dict(w, BBB=-q_ok * 50.0)
    res = client.check([Order("h1", "VA", "BBB", "SELL", q_ok, 0.0)])
    expect_reject = var_of(model, after) > 5_000.0 and var_of(model, after) > var_of(model, w)
    assert res.accepted == [not expect_reject]
    if res.accepted[0]:
        w = after

    # A fill moves the position, not w (the mark is the UpdatePrices price); a cancel releases the
    # rest; a new mark revalues. The cached VaR follows each step.
    fills = client.report_executions([Execution("o1", "FILL", q_ok / 2, 120.0)])
    assert list(fills.applied) == [True]
    assert riskd_server.call(engine.account_var, "VA")[0] == pytest.approx(var_of(model, w), rel=1e-9)
    client.report_executions([Execution("o1", "CANCELED")])
    w["AAA"] = q_ok / 2 * 100.0
    assert riskd_server.call(engine.account_var, "VA")[0] == pytest.approx(var_of(model, w), rel=1e-9)
    client.update_prices({"AAA": 80.0})
    w["AAA"] = q_ok / 2 * 80.0
    assert riskd_server.call(engine.account_var, "VA")[0] == pytest.approx(var_of(model, w), rel=1e-9)
    # A selling order that lowers |w| passes even with T below the VaR.
    client.upsert_limits([LimitSpec("var-a", "MAX_VAR", 1.0, account="VA")])
    res = client.check(
        [Order("d1", "VA", "AAA", "SELL", q_ok / 4, 0.0), Order("d2", "VA", "AAA", "BUY", 1, 0.0)]
    )
    assert res.accepted == [True, False]
