"""Limit templates: the built-ins, the TOML templates_file and its errors at load, and a server
serving a file's template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fix_server import RiskdServer, server_settings

from riskd_client import RiskClient
from riskd_server.limits import ACCOUNT_LEVEL_KINDS, validate_limits
from riskd_server.server import StartupError, start
from riskd_server.templates import BUILTINS, TemplateError, load_templates

GOOD = """
[templates.desk]
description = "prop desk"
[[templates.desk.limits]]
id = "qty"
kind = "max-order-quantity"
threshold = 500
warn_fraction = 0.8
[[templates.desk.limits]]
id = "no-gme"
kind = "RESTRICTED_SYMBOL"
symbol = "GME"
threshold = 0
[[templates.desk.limits]]
id = "gross"
kind = "max_gross_exposure"
threshold = 2e6
description = "book size"
"""


def test_builtins_are_valid_per_account_sets() -> None:
    assert set(BUILTINS) == {"conservative", "standard", "aggressive"}
    for t in BUILTINS.values():
        limits = t.expand("ACC1", 2.5)
        validate_limits(limits)  # as an upsert would
        assert {lim.kind for lim in limits} >= ACCOUNT_LEVEL_KINDS - {10}  # every account-level kind but VaR
        assert all(lim.account == "ACC1" and lim.template == t.name for lim in limits)
        assert all(lim.limit_id.startswith(f"ACC1:{t.name}:") for lim in limits)
        assert [lim.threshold for lim in limits] == [2.5 * lim.threshold for lim in t.limits]
    # aggressive is looser than standard, which is looser than conservative, kind by kind
    c, s, a = (BUILTINS[n].limits for n in ("conservative", "standard", "aggressive"))
    assert all(x.threshold < y.threshold < z.threshold for x, y, z in zip(c, s, a, strict=True))


def test_file_templates_add_to_the_builtins(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(GOOD)
    ts = load_templates(path)
    assert [t.name for t in ts.sorted()] == ["aggressive", "conservative", "desk", "standard"]
    desk = ts.get("desk")
    assert desk is not None and desk.source == str(path) and desk.description == "prop desk"
    (qty, gme, gross) = desk.expand("A", 2)
    assert (qty.limit_id, qty.kind, qty.threshold, qty.warn_fraction) == ("A:desk:qty", 1, 1000.0, 0.8)
    assert (gme.symbol, gme.kind) == ("GME", 9) and gross.description == "book size"
    assert load_templates("").templates.keys() == BUILTINS.keys()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-widgets"\nthreshold = 1\n',
         "template 'x': limits[0].kind: unknown kind 'max-widgets'"),
        ('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-position"\nthreshold = -1\n',
         "template 'x': limits[0].threshold: must be finite and >= 0, got -1.0"),
        ('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-position"\nthreshold = 1\nwarn_fraction = 2\n',
         "template 'x': limits[0].warn_fraction: must be in [0, 1), got 2.0"),
        ('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-net-exposure"\nthreshold = 1\nsymbol = "S"\n',
         "template 'x': limits[0].symbol: account-level kind MAX_NET_EXPOSURE takes no symbol"),
        ('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-position"\nthreshold = "10"\n',
         "template 'x': limits[0].threshold: expected int or float, got '10'"),
        ('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-position"\nthreshold = 1\ncolour = 1\n',
         "template 'x': limits[0].colour: unknown field"),
        ('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-position"\n',
         "template 'x': limits[0].threshold: required"),
        ('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-position"\nthreshold = 1\n'
         '[[templates.x.limits]]\nid = "a"\nkind = "max-order-quantity"\nthreshold = 1\n',
         "template 'x': limits[1].id: 'a' appears twice"),
        ("[templates.x]\ndescription = \"no limits\"\n", "template 'x': limits: expected a non-empty array"),
        ('[templates."a b"]\n[[templates."a b".limits]]\nid = "a"\nkind = "max-position"\nthreshold = 1\n',
         "template 'a b': name: 1-64 characters"),
        ("[other]\n", "unknown key 'other'"),
        ("[templates.x\n", "Expected ']'"),
    ],
)  # fmt: skip
def test_a_bad_file_fails_at_load_naming_file_template_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TemplateError) as err:
        load_templates(path)
    assert str(err.value).startswith(f"templates_file {path}: ")
    assert message in str(err.value)


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "nope"\nthreshold = 1\n'
        '[templates.y]\n[[templates.y.limits]]\nid = "b"\nkind = "max-position"\nthreshold = -5\n'
    )
    with pytest.raises(TemplateError) as err:
        load_templates(path)
    assert len(err.value.errors) == 2


def test_server_refuses_to_start_with_a_bad_templates_file(tmp_path: Path, fresh_dsn: str) -> None:
    import asyncio

    path = tmp_path / "bad.toml"
    path.write_text('[templates.x]\n[[templates.x.limits]]\nid = "a"\nkind = "max-widgets"\nthreshold = 1\n')
    settings = server_settings(fresh_dsn, templates_file=str(path))
    with pytest.raises(StartupError, match=r"templates_file .*bad\.toml: template 'x': limits\[0\]\.kind"):
        asyncio.run(start(settings))
    missing = server_settings(fresh_dsn, templates_file=str(tmp_path / "missing.toml"))
    with pytest.raises(StartupError, match=r"missing\.toml"):
        asyncio.run(start(missing))


@pytest.fixture
def riskd_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("templates") / "t.toml"
    path.write_text(GOOD)
    return {"templates_file": str(path)}


def test_a_file_template_is_listed_and_applied(riskd_server: RiskdServer) -> None:
    with RiskClient(riskd_server.target) as c:
        desk = {t.name: t for t in c.list_templates()}["desk"]
        assert desk.source.endswith("t.toml") and [lim.limit_id for lim in desk.limits] == [
            "qty",
            "no-gme",
            "gross",
        ]
        applied = c.apply_template("P1", "desk", scale=3)
        assert applied.upserted == 3
        by_id = {lim.limit_id: lim for lim in c.list_limits(template="desk")}
        assert by_id["P1:desk:qty"].threshold == 1500 and by_id["P1:desk:no-gme"].symbol == "GME"
