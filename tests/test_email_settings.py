"""Email settings: off by default, every mistake reported at once, the password never echoed, and
the mailer configuration built from them (server.email_config)."""

from __future__ import annotations

import pytest

from riskd.v1 import risk_pb2 as pb
from riskd_server.config import Settings, SettingsError, load_settings
from riskd_server.server import email_config

ON = {"smtp_host": "mail.example.com", "email_from": "riskd@example.com", "email_to": "desk@example.com"}


def load(**values: object) -> Settings:
    return load_settings(values, environ={})


def errors_of(**values: object) -> str:
    with pytest.raises(SettingsError) as info:
        load(**values)
    return str(info.value)


def test_email_is_off_by_default() -> None:
    settings = load()
    assert settings.smtp_host == ""
    assert (settings.smtp_port, settings.smtp_timeout, settings.smtp_starttls) == (25, 10.0, False)
    assert (settings.email_min_severity, settings.email_interval, settings.email_outbox) == (
        "CRITICAL",
        60.0,
        10_000,
    )
    assert email_config(settings) is None


def test_smtp_host_requires_from_and_to() -> None:
    text = errors_of(smtp_host="mail.example.com")
    assert "email_from: required when smtp_host is set" in text
    assert "email_to: required when smtp_host is set" in text
    load(**ON)  # with both it loads


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**ON, "email_to": "desk@example.com, nobody"}, "email_to: 'nobody' is not an email address"),
        ({**ON, "email_to": " , "}, "email_to: required when smtp_host is set"),
        (
            {**ON, "email_from": "a@example.com, b@example.com"},
            "email_from: 'a@example.com, b@example.com' is not one",
        ),
        ({**ON, "email_from": "riskd"}, "email_from: 'riskd' is not one email address"),
        ({"email_min_severity": "LOUD"}, "email_min_severity: 'LOUD' is not INFO, WARNING or CRITICAL"),
        ({"smtp_port": "70000"}, "smtp_port: must be <= 65535"),
        ({"smtp_port": "0"}, "smtp_port: must be >= 1"),
        ({"smtp_timeout": "0"}, "smtp_timeout: must be >= 0.1"),
        ({"email_interval": "0"}, "email_interval: must be >= 0.01"),
        ({"email_outbox": "0"}, "email_outbox: must be >= 1"),
        ({"smtp_user": "riskd"}, "smtp_user and smtp_password: give both or neither"),
    ],
)
def test_invalid_email_settings(values: dict[str, object], message: str) -> None:
    assert message in errors_of(**values)


def test_every_email_error_at_once() -> None:
    text = errors_of(smtp_host="mail.example.com", email_min_severity="x", smtp_port="99999")
    for name in ("email_from", "email_to", "email_min_severity", "smtp_port"):
        assert f"\n  {name}" in text


def test_the_password_is_never_shown() -> None:
    settings = load(**ON, smtp_user="riskd", smtp_password="hunter2")
    assert "hunter2" not in repr(settings)
    config = email_config(settings)
    assert config is not None and config.password == "hunter2"
    assert "hunter2" not in repr(config)
    env = {"RISKD_SMTP_PASSWORD": "hunter2", "RISKD_SMTP_USER": "riskd"}
    assert load_settings({}, environ=env).smtp_password == "hunter2"


def test_a_mistyped_password_is_not_echoed(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "riskd.toml"
    path.write_text("smtp_user = 'riskd'\nsmtp_password = 123456789\n")
    with pytest.raises(SettingsError) as info:
        load_settings({"config": str(path)}, environ={})
    assert "smtp_password (config file): the value given is not a valid str" in str(info.value)
    assert "123456789" not in str(info.value)


def test_email_config_from_settings() -> None:
    settings = load(
        smtp_host="mail.example.com",
        smtp_port="587",
        smtp_timeout="3",
        smtp_starttls="yes",
        email_from="Risk Desk <riskd@example.com>",
        email_to="Desk <desk@example.com>, ops@example.org",
        email_min_severity="warning",
        email_interval="30",
        email_outbox="500",
    )
    assert settings.email_min_severity == "WARNING"
    config = email_config(settings)
    assert config is not None
    assert (config.host, config.port, config.timeout, config.starttls) == ("mail.example.com", 587, 3.0, True)
    assert (config.sender, config.sender_address) == ("Risk Desk <riskd@example.com>", "riskd@example.com")
    assert config.recipients == ("desk@example.com", "ops@example.org")
    assert (config.min_severity, config.interval, config.outbox) == (pb.SEVERITY_WARNING, 30.0, 500)
    assert (config.username, config.password) == ("", "")
