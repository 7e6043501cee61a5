"""The `riskd` command end to end: main([...]) against a real server, checking exit codes and output."""

from __future__ import annotations

import io
import json
import socket

import pytest
from test_client import run_blocked

from riskd_client import LimitSpec, RiskClient
from riskd_client.cli import main, parse_order_args


@pytest.fixture
def riskd(engine_server, capsys):
    """riskd(*args) -> (exit code, stdout, stderr) against the test server."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--target", engine_server.target, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def admin(engine_server):
    with RiskClient(engine_server.target) as c:
        yield c


# ---------------------------------------------------------------------------------------- check


def test_check_all_accepted_exits_0(riskd, admin) -> None:
    admin.update_prices({"AAPL": 187.5})
    code, out, err = riskd(
        "check", "o1", "ACC1", "AAPL", "BUY", "100", "o2", "ACC1", "AAPL", "SELL", "5", "188.25"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ORDER", "ACCOUNT", "SYMBOL", "SIDE", "QTY", "PRICE", "RESULT", "REASONS"]
    assert lines[1].split() == ["o1", "ACC1", "AAPL", "BUY", "100", "MKT", "accepted"]
    assert lines[2].split() == ["o2", "ACC1", "AAPL", "SELL", "5", "188.25", "accepted"]
    assert lines[3].startswith("2 accepted, 0 rejected (state version ")


def test_check_rejection_exits_1_with_reasons(riskd, admin) -> None:
    admin.upsert_limits(LimitSpec("q1", "MAX_ORDER_QUANTITY", 100, warn_fraction=0.5))
    code, out, _ = riskd(
        "check",
        "r1",
        "ACC1",
        "AAPL",
        "buy",
        "1000",
        "10",
        "r2",
        "ACC1",
        "AAPL",
        "BUY",
        "80",
        "10",
        "r3",
        "ACC1",
        "AAPL",
        "BUY",
        "1",
        "10",
    )
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines()[1:4]}
    assert "REJECTED" in rows["r1"] and "MAX_ORDER_QUANTITY[q1] 1000 > 100" in rows["r1"]
    assert "accepted" in rows["r2"] and "warning MAX_ORDER_QUANTITY[q1] 80 of 100" in rows["r2"]
    assert rows["r3"].split()[-1] == "accepted"
    assert "2 accepted, 1 rejected" in out


def test_check_json(riskd, admin) -> None:
    admin.upsert_limits(LimitSpec("q1", "MAX_ORDER_QUANTITY", 100))
    code, out, _ = riskd(
        "check", "--json", "j1", "A", "S", "SELL", "500", "2.5", "j2", "A", "S", "BUY", "5", "2.5"
    )
    assert code == 1
    doc = json.loads(out)
    assert (doc["accepted"], doc["rejected"]) == (1, 1)
    first, second = doc["orders"]
    assert first["client_order_id"] == "j1" and first["side"] == "SELL" and first["accepted"] is False
    assert first["reject_mask"] == 2
    assert first["reasons"] == [
        {
            "check": "MAX_ORDER_QUANTITY",
            "limit_id": "q1",
            "observed": 500.0,
            "threshold": 100.0,
            "warning": False,
        }
    ]
    assert second["accepted"] is True and second["reasons"] == [] and second["price"] == 2.5
    assert doc["state_version"] > 0


def test_check_from_csv_json_and_stdin(riskd, admin, tmp_path, monkeypatch) -> None:
    admin.update_prices({"S": 10.0})
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(
        "client_order_id,account,symbol,side,quantity,price\nc1,A,S,BUY,1,10\nc2,A,S,SELL,2,\n"
    )
    code, out, err = riskd("check", "--file", str(csv_file))
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:3]] == ["c1", "c2"]
    assert out.splitlines()[2].split()[5] == "MKT"

    json_file = tmp_path / "orders.json"
    json_file.write_text(
        json.dumps([{"client_order_id": "j1", "account": "A", "symbol": "S", "side": "BUY", "quantity": 3}])
    )
    code, out, _ = riskd("check", "-f", str(json_file), "--json")
    assert code == 0 and json.loads(out)["orders"][0]["client_order_id"] == "j1"

    columns = {
        "client_order_id": ["k1", "k2"],
        "account": ["A", "A"],
        "symbol": ["S", "S"],
        "side": [1, 2],
        "quantity": [1, 1],
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(columns)))
    code, out, _ = riskd("check", "--file", "-", "--json")
    assert code == 0 and [o["client_order_id"] for o in json.loads(out)["orders"]] == ["k1", "k2"]

    monkeypatch.setattr(
        "sys.stdin", io.StringIO("client_order_id,account,symbol,side,quantity\nk1,A,S,BUY,1\n")
    )
    code, out, _ = riskd("check", "--file", "-")
    assert code == 1  # k1 was accepted above: duplicate id
    assert "DUPLICATE_ORDER_ID" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("check",), "no orders"),
        (("check", "o1", "A", "S", "BUY"), "expected ID ACCOUNT SYMBOL BUY|SELL QTY"),
        (("check", "o1", "A", "S", "HOLD", "1"), "side must be BUY or SELL"),
        (("check", "o1", "A", "S", "BUY", "ten"), "'ten' is not a number"),
        (("check", "o1", "A", "S", "BUY", "1", "x", "y"), "cannot parse"),
        (("check", "--file", "/nonexistent/orders.csv"), "cannot read /nonexistent/orders.csv"),
        (("check", "--file", "x.csv", "o1", "A", "S", "BUY", "1"), "not both"),
        (("prices", "set", "AAPL:100"), "expected SYMBOL=PRICE"),
        (("positions", "load", "A", "S"), "triples"),
        (("limits", "set", "x", "max-orders", "1"), "MAX_ORDER_QUANTITY"),
        (("limits", "list", "--kind", "nope"), "'nope' is not one of"),
    ],
)
def test_usage_errors_exit_2(riskd, args, message) -> None:
    code, out, err = riskd(*args)
    assert code == 2
    assert message in err
    assert out == ""


@pytest.mark.parametrize(
    "args", [(), ("chek",), ("limits",), ("limits", "set", "x", "k"), ("--timeout", "soon", "halt")]
)
def test_argparse_errors_exit_2(riskd, args) -> None:
    code, _, err = riskd(*args)
    assert code == 2
    assert "usage:" in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("o.csv", "id,acct\n1,A\n", "CSV header must name columns"),
        ("o.csv", "client_order_id,account,symbol,side\n1,A,S,BUY\n", "order 0: missing quantity"),
        ("o.json", '{"client_order_id": ["a", "b"], "quantity": [1]}', "columns have different lengths"),
        ("o.json", '[{"client_order_id": "a"', "invalid JSON"),
        ("o.json", '[{"client_order_id": "a", "qty": 1}]', "unknown field(s) ['qty']"),
    ],
)
def test_bad_order_files_are_usage_errors(riskd, tmp_path, name, content, message) -> None:
    f = tmp_path / name
    f.write_text(content)
    code, _, err = riskd("check", "--file", str(f))
    assert code == 2
    assert message in err


def test_parse_order_args_price_is_optional() -> None:
    tokens = ["1", "A", "S", "BUY", "10", "2", "A", "S", "SELL", "5", "99.5", "3", "B", "T", "buy", "7"]
    orders = parse_order_args(tokens)
    assert [o["client_order_id"] for o in orders] == ["1", "2", "3"]
    assert ["price" in o for o in orders] == [False, True, False]
    assert orders[1]["price"] == 99.5
    assert parse_order_args(["1", "A", "S", "BUY", "10", "2"])[0]["price"] == 2.0


# ---------------------------------------------------------------------------------------- rpc errors


def test_unreachable_server_exits_3(capsys, monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RISKD_TARGET", f"127.0.0.1:{port}")  # the default target comes from the env
    code = main(["halt", "--reason", "test"])
    _, err = capsys.readouterr()
    assert code == 3
    assert err.splitlines()[0] == f"riskd: cannot reach server at 127.0.0.1:{port} (UNAVAILABLE)"
    assert err.splitlines()[1].startswith("riskd: details: ")


def test_server_side_invalid_argument_exits_3(riskd) -> None:
    code, out, err = riskd(
        "limits", "set", "bad", "max-gross-exposure", "10", "--symbol", "S", "--warn-fraction", "1.5"
    )
    assert code == 3
    assert "UpsertLimits failed: INVALID_ARGUMENT" in err
    assert "limits[0].symbol" in err and "limits[0].warn_fraction" in err
    assert out == ""
    code, _, err = riskd("prices", "set", "S=-1")
    assert code == 3 and "price[0]: must be > 0 and <= max_order_notional" in err


# ---------------------------------------------------------------------------------------- admin commands


def test_limits_set_list_delete(riskd, engine_server) -> None:
    code, out, err = riskd(
        "limits",
        "set",
        "acc1-qty",
        "max-order-quantity",
        "500",
        "--account",
        "ACC1",
        "--warn-fraction",
        "0.8",
        "--description",
        "desk 1",
    )
    assert code == 0, err
    assert out.startswith("set limit acc1-qty (MAX_ORDER_QUANTITY) (limits version 1)")
    assert riskd("limits", "set", "collar", "PRICE_COLLAR", "0.05", "--symbol", "AAPL", "--disabled")[0] == 0

    code, out, _ = riskd("limits", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["LIMIT_ID", "KIND", "ACCOUNT", "SYMBOL"]
    assert lines[1].split() == [
        "acc1-qty",
        "MAX_ORDER_QUANTITY",
        "ACC1",
        "*",
        "500",
        "500",  # EFFECTIVE: a static limit enforces its threshold
        "0.8",
        "enabled",
        "desk",
        "1",
    ]
    assert lines[2].split() == ["collar", "PRICE_COLLAR", "*", "AAPL", "0.05", "0.05", "-", "disabled"]
    assert lines[3] == "2 limit(s) (limits version 2)"

    code, out, _ = riskd("limits", "list", "--kind", "price-collar", "--json")
    doc = json.loads(out)
    assert code == 0 and [lim["limit_id"] for lim in doc["limits"]] == ["collar"]
    assert doc["limits"][0] == {
        "limit_id": "collar",
        "kind": "PRICE_COLLAR",
        "account": "",
        "symbol": "AAPL",
        "threshold": 0.05,
        "warn_fraction": 0.0,
        "disabled": True,
        "description": "",
        "template": "",
        "reference_volatility": 0.0,
        "min_scale": 0.0,
        "effective_threshold": 0.05,
    }
    code, out, _ = riskd("limits", "list", "--account", "ACC1", "--json")
    assert [lim["limit_id"] for lim in json.loads(out)["limits"]] == ["acc1-qty"]

    code, out, err = riskd("limits", "delete", "collar", "ghost")
    assert code == 1
    assert out.startswith("deleted 1 limit(s)")
    assert "riskd: not found: ghost" in err
    assert [lim.limit_id for lim in engine_server.call(engine_server.engine.list_limits)] == ["acc1-qty"]
    assert riskd("limits", "delete", "acc1-qty")[0] == 0

    # A dynamic limit: its fields go through; no volatility is known yet, so EFFECTIVE = THRESHOLD.
    code, _, err = riskd(
        "limits", "set", "dyn", "max-position", "100", "--symbol", "AAPL",
        "--reference-volatility", "0.02", "--min-scale", "0.5",
    )  # fmt: skip
    assert code == 0, err
    (lim,) = json.loads(riskd("limits", "list", "--json")[1])["limits"]
    assert (lim["reference_volatility"], lim["min_scale"], lim["effective_threshold"]) == (0.02, 0.5, 100.0)
    assert riskd("limits", "list")[1].splitlines()[1].split()[4:6] == ["100", "100"]


def test_prices_and_positions(riskd, engine_server, tmp_path) -> None:
    code, out, _ = riskd("prices", "set", "AAPL=187.5", "MSFT=410")
    assert code == 0 and out.startswith("updated 2 price(s)")
    code, out, _ = riskd("positions", "load", "ACC1", "AAPL", "100", "ACC2", "MSFT", "-25")
    assert code == 0 and out.startswith("loaded 2 position(s)")
    eng = engine_server.engine
    assert engine_server.call(eng.position, "ACC2", "MSFT") == -25.0
    f = tmp_path / "pos.csv"
    f.write_text("account,symbol,quantity\nACC1,AAPL,7\n")
    assert riskd("positions", "load", "--file", str(f))[0] == 0
    assert engine_server.call(eng.position, "ACC1", "AAPL") == 7.0
    # A market order now prices at the mark set above (1 * 187.5 > 100 notional).
    riskd("limits", "set", "n", "max-order-notional", "100")
    code, out, _ = riskd("check", "m1", "ACC1", "AAPL", "BUY", "1")
    assert code == 1 and "MAX_ORDER_NOTIONAL[n] 187.5 > 100" in out


def test_halt_reduce_only_resume(riskd, engine_server, admin) -> None:
    eng = engine_server.engine
    admin.update_prices({"S": 10.0})
    admin.load_positions([("ACC1", "S", 10.0)])
    code, out, _ = riskd("halt", "ACC1", "--reason", "ops")
    assert code == 0
    assert out.startswith("halted account ACC1 (was ACTIVE; state version ")
    assert engine_server.call(eng.trading_state, "ACC1") == 3
    code, out, _ = riskd("check", "h1", "ACC1", "S", "BUY", "1")
    assert code == 1 and "TRADING_HALTED" in out

    code, out, _ = riskd("reduce-only", "ACC1")
    assert code == 0 and out.startswith("reduce-only account ACC1 (was HALTED")
    assert riskd("check", "h2", "ACC1", "S", "SELL", "1")[0] == 0
    assert "REDUCE_ONLY" in riskd("check", "h3", "ACC1", "S", "BUY", "1")[1]

    code, out, _ = riskd("resume", "ACC1")
    assert code == 0 and out.startswith("resumed account ACC1 (was REDUCING")

    code, out, _ = riskd("halt")
    assert code == 0 and out.startswith("halted firm-wide (was ACTIVE")
    assert engine_server.call(eng.trading_state, "") == 3
    assert riskd("check", "h4", "ACC2", "S", "BUY", "1")[0] == 1
    assert riskd("resume")[0] == 0
    assert riskd("check", "h5", "ACC2", "S", "BUY", "1")[0] == 0


# ---------------------------------------------------------------------------------------- plugins


def test_serve_comes_from_the_entry_point(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "serve" in out and "check" in out and "reduce-only" in out
    assert main(["serve", "--help"]) == 0
    assert "--listen" in capsys.readouterr().out


def test_builtin_commands_do_not_load_plugins(riskd, admin) -> None:
    import sys

    sys.modules.pop("riskd_server.cli", None)
    assert riskd("limits", "list")[0] == 0
    assert "riskd_server.cli" not in sys.modules


def test_cli_without_server_extra(engine_server) -> None:
    proc = run_blocked(
        """
        import sys
        from riskd_client.cli import main
        sys.exit(main(["--target", sys.argv[1], "check", "b1", "A", "S", "BUY", "1", "5"]))
        """,
        engine_server.target,
    )
    assert proc.returncode == 0, proc.stderr
    assert "accepted" in proc.stdout
    proc = run_blocked("import sys\nfrom riskd_client.cli import main\nsys.exit(main(['serve']))")
    assert proc.returncode == 2
    assert "the 'serve' command is unavailable" in proc.stderr
    assert "pip install 'riskd[server]'" in proc.stderr
    proc = run_blocked("import sys\nfrom riskd_client.cli import main\nsys.exit(main(['--help']))")
    assert proc.returncode == 0 and "serve" in proc.stdout


def test_orders_survive_as_open_orders(riskd, engine_server) -> None:
    """`riskd check` is a real pre-trade check: accepted orders count against later ones."""
    riskd("prices", "set", "S=1")
    riskd("limits", "set", "open", "max-open-orders", "1", "--account", "A")
    assert riskd("check", "p1", "A", "S", "BUY", "1")[0] == 0
    code, out, _ = riskd("check", "p2", "A", "S", "BUY", "1")
    assert code == 1 and "MAX_OPEN_ORDERS[open]" in out
    assert engine_server.call(engine_server.engine.open_orders) == 1
