"""Settings: flags > RISKD_* environment > TOML file > defaults, every error at once, nothing unknown.

An operator must be able to predict which value wins and see every mistake in one go, and a
typo in a config file must not silently fall back to a default.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from riskd_server.config import OPTIONS, Settings, SettingsError, add_arguments, load_settings

RISKD = str(Path(sys.executable).with_name("riskd"))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "riskd.toml"
    path.write_text(text)
    return str(path)


def test_defaults_match_the_option_table() -> None:
    assert load_settings(parse(), environ={}) == Settings()
    assert {f.name: f.default for f in fields(Settings)} == {o.name: o.default for o in OPTIONS}


def test_flags_beat_env_beat_file_beat_defaults(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        'max_batch = 10\ngrace = 1.5\ndsn = "postgresql:///from-file"\nlog_level = "warning"\nuvloop = false\n',
    )
    env = {"RISKD_MAX_BATCH": "20", "RISKD_DSN": "postgresql:///from-env", "RISKD_GRACE": ""}
    settings = load_settings(parse("--config", config, "--max-batch", "30", "--uvloop"), environ=env)
    assert settings.max_batch == 30  # flag over env and file
    assert settings.dsn == "postgresql:///from-env"  # env over file
    assert settings.grace == 1.5  # file (an empty env var counts as unset)
    assert settings.log_level == "WARNING"  # file, normalised
    assert settings.uvloop is True  # flag over file
    assert settings.max_symbols == Settings().max_symbols  # default

    from_env = load_settings(parse(), environ={"RISKD_CONFIG": config, "RISKD_UVLOOP": "off"})
    assert (from_env.max_batch, from_env.uvloop) == (10, False)  # RISKD_CONFIG names the file


def test_server_table_is_accepted(tmp_path: Path) -> None:
    config = write(tmp_path, "[server]\nmax_batch = 7\nflush_interval_ms = 5\n")
    settings = load_settings(parse("--config", config), environ={})
    assert (settings.max_batch, settings.flush_interval_ms) == (7, 5.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_btach = 10\n", "unknown setting 'max_btach'"),
        ("[server]\nmax_batch = 7\n[serve]\ngrace = 1\n", "unknown setting 'serve' (outside [server])"),
        ("grace = 1\n[server]\nmax_batch = 7\n", "unknown setting 'grace' (outside [server])"),
        ("max_batch = 1.5\n", "max_batch (config file): 1.5 is not a valid int"),
        ("max_batch = true\n", "max_batch (config file): True is not a valid int"),
        ("listen = 5\n", "listen (config file): 5 is not a valid str"),
        ("grace = nan\n", "grace (config file): nan is not a valid finite float"),
        ("max_batch = \n", "config file"),
    ],
)
def test_bad_config_files_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(parse("--config", write(tmp_path, text)), environ={})
    assert message in str(info.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"config file .*missing\.toml"):
        load_settings(parse("--config", str(tmp_path / "missing.toml")), environ={})


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    config = write(tmp_path, "colour = 'red'\ndb_pool_min = 5\n")
    env = {"RISKD_GRACE": "soon", "RISKD_UVLOOP": "maybe", "RISKD_DB_POOL_MAX": "2"}
    with pytest.raises(SettingsError) as info:
        load_settings(
            parse("--config", config, "--max-batch", "0", "--listen", "nohost", "--log-level", "loud"),
            environ=env,
        )
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid settings:"
    expected = [
        "unknown setting 'colour'",
        "max_batch: must be >= 1, got 0",
        "grace (RISKD_GRACE): 'soon' is not a valid finite float",
        "uvloop (RISKD_UVLOOP): 'maybe' is not a valid bool",
        "log_level: 'loud' is not DEBUG, INFO, WARNING or ERROR",
        "db_pool_max: must be >= db_pool_min",
        "listen: 'nohost' is not HOST:PORT",
    ]
    for text in expected:
        assert sum(text in line for line in lines[1:]) == 1, text
    assert len(lines) == 1 + len(expected)


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "[::]:50051", "localhost:65535"])
def test_valid_listen_addresses(listen: str) -> None:
    assert load_settings(parse("--listen", listen), environ={}).listen == listen


@pytest.mark.parametrize("listen", ["127.0.0.1", ":50051", "host:port", "host:65536"])
def test_invalid_listen_addresses(listen: str) -> None:
    with pytest.raises(SettingsError, match="listen"):
        load_settings(parse("--listen", listen), environ={})


def test_env_numbers_accept_underscores() -> None:
    assert load_settings(parse(), environ={"RISKD_MAX_OPEN_ORDERS": "2_000_000"}).max_open_orders == 2_000_000


def test_serve_help_lists_every_option() -> None:
    proc = subprocess.run([RISKD, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    assert "--config" in text and "RISKD_CONFIG" in text
    for opt in OPTIONS:
        flag = "--" + opt.name.replace("_", "-")
        assert flag in text, flag
        assert f"RISKD_{opt.name.upper()}" in text, opt.name
    assert "--no-uvloop" in text


def test_serve_with_bad_settings_exits_2_listing_every_problem() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKD_")}
    env["RISKD_GRACE"] = "-1"
    proc = subprocess.run(
        [RISKD, "serve", "--max-batch", "0", "--listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("riskd serve: invalid settings:")
    for text in ("max_batch: must be >= 1", "grace: must be >= 0", "listen: 'nowhere'"):
        assert text in proc.stderr
    assert "Traceback" not in proc.stderr
