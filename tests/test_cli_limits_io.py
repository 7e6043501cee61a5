"""`riskd limits apply-template|templates|export|import|history` against the full server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fix_server import RiskdServer

from riskd_client import LimitSpec, RiskClient
from riskd_client.cli import main


@pytest.fixture
def riskd(riskd_server: RiskdServer, capsys):
    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--target", riskd_server.target, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _seed(server: RiskdServer, n: int = 120) -> None:
    with RiskClient(server.target) as c:
        c.import_limits(
            [
                LimitSpec(f"c{i:04d}", "MAX_POSITION", 10 + i, account=f"A{i % 4}", symbol="S")
                for i in range(n)
            ]
        )


def test_export_then_import_round_trip_and_diff(riskd, riskd_server, tmp_path: Path) -> None:
    _seed(riskd_server)
    code, out, err = riskd("limits", "export")
    assert code == 0 and "exported 120 limit(s)" in err
    lines = out.splitlines()
    assert len(lines) == 120 and lines == sorted(lines)
    first = json.loads(lines[0])
    assert first == {
        "limit_id": "c0000",
        "kind": "MAX_POSITION",
        "account": "A0",
        "symbol": "S",
        "threshold": 10.0,
    }
    path = tmp_path / "limits.jsonl"
    code, _, err = riskd("limits", "export", "--account", "A1", "--output", str(path))
    assert code == 0 and "exported 30 limit(s)" in err
    assert all(json.loads(x)["account"] == "A1" for x in path.read_text().splitlines())

    full = tmp_path / "full.jsonl"
    full.write_text(out)
    code, out, _ = riskd("limits", "import", str(full))
    assert code == 0
    assert "0 added, 0 changed, 0 deleted, 120 unchanged" in out

    # Edit: one changed, one added, and --replace drops the rest of account A0's... all others.
    recs = [json.loads(x) for x in lines[:3]]
    recs[1]["threshold"] = 99
    recs.append(
        {"limit_id": "new", "kind": "max-order-quantity", "account": "", "symbol": "", "threshold": 5}
    )
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(r) + "\n" for r in recs))
    code, out, _ = riskd("limits", "import", str(edited), "--dry-run", "--replace", "--max-changes", "3")
    assert code == 0, out
    assert out.splitlines()[:3] == ["~ c0001  threshold 11 -> 99", "- c0003", "- c0004"]
    assert "... and 116 more change(s) not listed" in out
    assert "1 would be added, 1 would be changed, 117 would be deleted, 2 unchanged" in out
    assert "dry run: nothing changed" in out
    code, out, _ = riskd("limits", "import", str(edited), "--replace", "--max-changes", "200")
    assert code == 0 and "1 added, 1 changed, 117 deleted, 2 unchanged" in out
    assert "+ new  MAX_ORDER_QUANTITY threshold=5" in out
    with RiskClient(riskd_server.target) as c:
        assert sorted(lim.limit_id for lim in c.list_limits()) == ["c0000", "c0001", "c0002", "new"]


def test_import_errors_name_file_line_and_field(riskd, riskd_server, tmp_path: Path) -> None:
    _seed(riskd_server, 3)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"limit_id": "x1", "kind": "MAX_POSITION", "threshold": 1}\n'
        "\n"
        '{"limit_id": "x2", "kind": "MAX_POSITION", "threshold": 1, "warn_fraction": 1.5}\n'
    )
    code, _, err = riskd("limits", "import", str(bad))
    assert (
        code == 3 and "line 3: warn_fraction: must be in [0, 1), got 1.5" in err and "nothing changed" in err
    )
    bad.write_text(
        '{"limit_id": "x1", "kind": "MAX_POSITION", "threshold": 1}\n{"limit_id": "x2", "kind": "nope"}\n'
    )
    code, _, err = riskd("limits", "import", str(bad))
    assert code == 2 and f"{bad}: line 2: threshold: required" in err
    bad.write_text('{"limit_id": "x1", "kind": "nope", "threshold": 1}\n')
    code, _, err = riskd("limits", "import", str(bad))
    assert code == 2 and "line 1: kind: 'nope' is not one of" in err
    bad.write_text("{not json\n")
    code, _, err = riskd("limits", "import", str(bad))
    assert code == 2 and "line 1: not JSON" in err
    code, _, err = riskd("limits", "import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err
    with RiskClient(riskd_server.target) as c:
        assert len(c.list_limits()) == 3


def test_import_from_stdin(riskd, riskd_server, monkeypatch) -> None:
    monkeypatch.setattr(
        "sys.stdin", io.StringIO('{"limit_id": "s", "kind": "MAX_POSITION", "threshold": 7}\n')
    )
    code, out, _ = riskd("limits", "import", "-")
    assert code == 0 and "1 added, 0 changed, 0 deleted, 0 unchanged" in out


def test_templates_apply_list_and_history(riskd) -> None:
    code, out, _ = riskd("limits", "templates")
    assert code == 0
    assert "standard (builtin):" in out and "  max-order-quantity  MAX_ORDER_QUANTITY threshold=10000" in out
    code, out, _ = riskd("limits", "templates", "--json")
    assert {t["name"] for t in json.loads(out)} >= {"conservative", "standard", "aggressive"}
    code, out, _ = riskd("limits", "apply-template", "ACC9", "standard", "--scale", "0.5", "--dry-run")
    assert code == 0 and "+ ACC9:standard:max-order-quantity  MAX_ORDER_QUANTITY threshold=5000" in out
    assert "dry run: nothing changed" in out
    code, out, _ = riskd("limits", "apply-template", "ACC9", "standard", "--scale", "0.5")
    assert code == 0 and "applied standard to ACC9: 8 limit(s) set" in out
    code, out, _ = riskd("limits", "apply-template", "ACC9", "standard", "--scale", "0.5")
    assert "0 added, 0 changed, 0 deleted, 8 unchanged" in out and "0 limit(s) set" in out
    code, out, _ = riskd("limits", "list", "--template", "standard", "--json")
    assert {lim["template"] for lim in json.loads(out)["limits"]} == {"standard"}
    code, _, err = riskd("limits", "apply-template", "ACC9", "nope")
    assert code == 3 and "unknown template 'nope'" in err
    code, _, err = riskd("limits", "apply-template", "ACC9", "standard", "--scale", "-1")
    assert code == 2 and "scale: must be finite and > 0" in err

    riskd("limits", "set", "h1", "max-position", "5")
    riskd("limits", "set", "h1", "max-position", "6", "--description", "wider")
    riskd("limits", "delete", "h1")
    code, out, _ = riskd("limits", "history", "h1")
    rows = out.splitlines()
    assert code == 0 and len(rows) == 3
    assert " delete " in rows[0] and rows[0].endswith("deleted")
    assert " upsert " in rows[1] and "threshold=6" in rows[1] and "description='wider'" in rows[1]
    assert "127.0.0.1" in rows[2] and "threshold=5" in rows[2]
    code, out, _ = riskd("limits", "history", "h1", "--json")
    doc = json.loads(out)
    assert [d["action"] for d in doc] == ["delete", "upsert", "upsert"] and doc[0]["limit"] is None
    code, _, err = riskd("limits", "history", "nothing")
    assert code == 1 and "no history for nothing" in err
