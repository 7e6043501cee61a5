"""`riskd snapshot` end to end: main([...]) against a real server, exit codes and output."""

from __future__ import annotations

import json

import pytest

from riskd_client import LimitSpec, Order, RiskClient
from riskd_client.cli import main


@pytest.fixture
def riskd(engine_server, capsys):
    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--target", engine_server.target, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def desk(engine_server) -> None:
    with RiskClient(engine_server.target) as c:
        c.update_prices({"AAPL": 187.5, "MSFT": 410})
        c.load_positions(
            [("ACC1", "MSFT", -25), ("ACC1", "AAPL", 100), ("ACC2", "AAPL", 10), ("ACC1", "NOPX", 3)]
        )
        c.upsert_limits(
            [
                LimitSpec("g1", "MAX_GROSS_EXPOSURE", 40_000),
                LimitSpec("p1", "MAX_POSITION", 150, account="ACC1", symbol="AAPL"),
                LimitSpec("o1", "MAX_OPEN_ORDERS", 3, account="ACC1"),
            ]
        )
        assert c.check([Order("b1", "ACC1", "AAPL", "BUY", 20, 188)]).all_accepted
        c.halt("ACC2")


def test_snapshot_table(riskd, desk) -> None:
    code, out, err = riskd("snapshot")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "ACC1",
        "ACTIVE",
        "gross",
        "32,760.00",
        "net",
        "12,260.00",
        "open",
        "orders",
        "1",
    ]
    assert lines[1].split() == ["SYMBOL", "QTY", "MARK", "VALUE"]
    assert [line.split() for line in lines[2:5]] == [  # by symbol
        ["AAPL", "100", "187.5", "18,750.00"],
        ["MSFT", "-25", "410", "-10,250.00"],
        ["NOPX", "3", "-", "-"],  # no mark
    ]
    assert lines[5].split() == ["LIMIT", "KIND", "SYMBOL", "OBSERVED", "THRESHOLD", "USED"]
    assert [line.split() for line in lines[6:9]] == [  # closest first
        ["g1", "MAX_GROSS_EXPOSURE", "-", "32,760.00", "40,000.00", "81.9%"],
        ["p1", "MAX_POSITION", "AAPL", "120", "150", "80.0%"],
        ["o1", "MAX_OPEN_ORDERS", "-", "1", "3", "33.3%"],
    ]
    assert lines[9] == ""
    assert lines[10].split() == [
        "ACC2",
        "HALTED",
        "gross",
        "1,875.00",
        "net",
        "1,875.00",
        "open",
        "orders",
        "0",
    ]
    assert lines[-1].startswith("2 account(s); firm-wide ACTIVE (state version ")


def test_snapshot_named_accounts_and_not_found(riskd, desk) -> None:
    code, out, err = riskd("snapshot", "ACC2", "ghost")
    assert code == 1
    assert err.strip() == "riskd: not found: ghost"
    assert out.splitlines()[0].startswith("ACC2  HALTED")
    assert "ACC1" not in out
    assert out.splitlines()[-1].startswith("1 account(s);")


def test_snapshot_json(riskd, desk) -> None:
    code, out, _ = riskd("snapshot", "ACC1", "--json")
    assert code == 0
    doc = json.loads(out)  # valid JSON: no NaN
    (acc,) = doc["accounts"]
    assert acc["account"] == "ACC1" and acc["trading_state"] == "ACTIVE" and acc["open_orders"] == 1
    assert acc["gross"] == 32_760.0 and acc["net"] == 12_260.0
    assert {p["symbol"]: (p["quantity"], p["mark"], p["value"]) for p in acc["positions"]} == {
        "AAPL": (100.0, 187.5, 18_750.0),
        "MSFT": (-25.0, 410.0, -10_250.0),
        "NOPX": (3.0, None, None),
    }
    assert acc["closest_limits"][0] == {
        "limit_id": "g1",
        "kind": "MAX_GROSS_EXPOSURE",
        "symbol": "",
        "observed": 32_760.0,
        "threshold": 40_000.0,
        "utilisation": 0.819,
    }
    assert doc["not_found"] == [] and doc["firm_trading_state"] == "ACTIVE"


def test_snapshot_of_an_empty_server(riskd) -> None:
    code, out, _ = riskd("snapshot")
    assert code == 0 and out.strip() == "0 account(s); firm-wide ACTIVE (state version 0)"


def test_snapshot_unreachable_server_is_an_rpc_error(capsys) -> None:
    code = main(["--target", "127.0.0.1:1", "--timeout", "0.5", "snapshot"])
    assert code == 3
    assert "cannot reach server" in capsys.readouterr().err
