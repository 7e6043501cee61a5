"""Server settings: flags, then ``RISKD_*`` environment variables, then a TOML file, then defaults.

One table of ``Option`` rows drives all three sources and ``riskd serve --help``, so a setting
cannot exist in one place and be missing from another. Validation reports every error at once.
"""

from __future__ import annotations

import argparse
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from email.utils import getaddresses
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # field name; flag --name-with-dashes; env RISKD_NAME_UPPER; TOML key name
    type: type
    default: Any
    help: str
    minimum: float | None = None
    secret: bool = False  # never echoed in error messages


SEVERITIES = ("INFO", "WARNING", "CRITICAL")

OPTIONS: tuple[Option, ...] = (
    Option("listen", str, "127.0.0.1:50051", "gRPC listen address HOST:PORT (port 0 picks a free one)"),
    Option("dsn", str, "", "PostgreSQL DSN; empty starts an embedded PostgreSQL under --data-dir"),
    Option("data_dir", str, ".riskd", "folder for the embedded PostgreSQL cluster and local state"),
    Option(
        "dead_letter_file",
        str,
        "",
        "JSON-lines file for rows PostgreSQL refuses when its dead_letter table refuses them too "
        "(empty: DATA_DIR/dead-letter.jsonl)",
    ),
    Option("max_batch", int, 10_000, "largest batch (orders, executions, prices, positions) per request", 1),
    Option(
        "max_accounts", int, 100_000, "distinct accounts kept; orders for more are rejected as invalid", 1
    ),
    Option(
        "max_symbols", int, 1_000_000, "distinct symbols kept; orders for more are rejected as invalid", 1
    ),
    Option(
        "max_open_orders",
        int,
        1_000_000,
        "open orders kept server-wide; past it orders are rejected with MAX_OPEN_ORDERS "
        "(limit_id server:max-open-orders)",
        1,
    ),
    Option(
        "closed_order_retention",
        int,
        1_000_000,
        "closed order ids remembered for duplicate detection and late fills (oldest forgotten first)",
        0,
    ),
    Option(
        "max_order_notional",
        float,
        1e15,
        "largest reference notional (quantity x price) an order or a fill may have; also the largest "
        "price and |position| accepted; past it an order is INVALID_ORDER",
        1e-9,
    ),
    Option(
        "dynamic_min_scale",
        float,
        0.25,
        "dynamic limits: the lowest scale a limit with min_scale 0 tightens to, in (0, 1]",
        1e-9,
    ),
    Option(
        "vol_ewma_lambda",
        float,
        0.94,
        "dynamic limits: decay of the EWMA of each symbol's mark log returns (symbols the risk model "
        "does not list), in (0, 1)",
        1e-9,
    ),
    Option(
        "dynamic_min_returns",
        int,
        5,
        "dynamic limits: mark returns before a symbol's EWMA volatility is used (before: no tightening)",
        1,
    ),
    Option(
        "dynamic_tolerance",
        float,
        0.01,
        "dynamic limits: relative move of an effective threshold that makes a new limits version",
        0,
    ),
    Option("flush_interval_ms", float, 50.0, "write-behind flush interval (the most a kill -9 can lose)", 1),
    Option(
        "max_pending_rows",
        int,
        1_000_000,
        "write-behind backlog bound in rows; when full, mutating RPCs fail UNAVAILABLE",
        1,
    ),
    Option(
        "journal",
        bool,
        True,
        "journal every change locally (DATA_DIR/journal) before replying and feed PostgreSQL from it "
        "in a separate process (off: the write-behind persists from the server itself)",
    ),
    Option(
        "journal_fsync",
        str,
        "interval",
        "when the journal reaches the disk: none (the OS decides), interval (every "
        "journal_fsync_interval_ms: what a power loss can take), always (before every reply)",
    ),
    Option("journal_fsync_interval_ms", float, 10.0, "journal fsync period for journal_fsync = interval", 1),
    Option(
        "journal_max_bytes",
        int,
        8 * 2**30,
        "journal bound; past 80 percent riskd logs ERROR and raises an alert, when full changes fail UNAVAILABLE",
        2**26,
    ),
    Option("journal_segment_bytes", int, 64 * 2**20, "journal segment file size", 2**20),
    Option(
        "journal_repair",
        bool,
        False,
        "start even when the journal is damaged mid-file: cut it there (the records after it are lost, "
        "and counted in the log)",
    ),
    Option(
        "feeder",
        str,
        "process",
        "how PostgreSQL is fed from the journal: process (a niced `riskd feeder` beside the server) or "
        "task (inside the server's event loop: small setups and tests)",
    ),
    Option(
        "snapshot_interval",
        float,
        60.0,
        "seconds between engine checkpoints (DATA_DIR/checkpoints; also at SIGTERM): restart replays "
        "the journal after the newest one",
        1,
    ),
    Option(
        "snapshot_journal_bytes",
        int,
        2**30,
        "journal bytes after which a checkpoint is taken before snapshot_interval (bounds restart time)",
        2**20,
    ),
    Option(
        "templates_file",
        str,
        "",
        "TOML file of limit templates ([templates.NAME] with [[templates.NAME.limits]]), added to the "
        "built-in conservative, standard and aggressive; read once at start",
    ),
    Option("limit_history", int, 20, "versions of each limit kept (riskd limits history)", 1),
    Option("db_pool_min", int, 1, "PostgreSQL pool minimum connections", 1),
    Option("db_pool_max", int, 4, "PostgreSQL pool maximum connections", 1),
    Option("db_timeout", float, 10.0, "seconds allowed for connecting and for each database write", 0.1),
    Option("grace", float, 5.0, "seconds in-flight RPCs get to finish on SIGTERM", 0),
    Option(
        "alert_subscriber_queue",
        int,
        256,
        "alerts queued per SubscribeAlerts stream; a subscriber further behind loses the oldest (counted "
        "in its next response's dropped)",
        1,
    ),
    Option(
        "max_alert_subscribers",
        int,
        20_000,
        "open SubscribeAlerts streams; more are refused RESOURCE_EXHAUSTED",
        0,
    ),
    Option(
        "alert_relays",
        int,
        0,
        "riskd relay processes to start beside the server, serving SubscribeAlerts on "
        "alert_relay_listen from one subscription each (0: none; the server serves every subscriber)",
        0,
    ),
    Option(
        "alert_relay_listen",
        str,
        "",
        "HOST:PORT the alert relays share (empty: the server's host, its port + 1)",
    ),
    Option(
        "feeder_nice",
        int,
        19,
        "CPU niceness of the riskd feeder process (PostgreSQL fed from the journal) and, when PostgreSQL "
        "runs as the same user (the embedded cluster), of its database backends: 19 takes idle CPU only",
        0,
    ),
    Option(
        "feeder_idle",
        bool,
        True,
        "run the riskd feeder and its local PostgreSQL backends under Linux's SCHED_IDLE as well: they "
        "run only on a core nothing else wants and yield it at once (nice 19 alone still takes a share)",
    ),
    Option(
        "feeder_defer",
        float,
        60.0,
        "seconds the riskd feeder may let PostgreSQL fall behind while the server is busy (a journal "
        "record in the last 0.1 s): it then applies a record only once it is this old, and stays off "
        "the cores the checks use; quiet, it applies at once. 0: never defer",
        0,
    ),
    Option(
        "feeder_lag_interval",
        float,
        5.0,
        "seconds between the feeder's lag lines (records and seconds PostgreSQL is behind the journal)",
        0.1,
    ),
    Option("max_pending_requests", int, 3_000, "new calls the gRPC core queues before refusing them", 1),
    Option("alert_history", int, 100_000, "alerts kept in memory for queries and resumed subscriptions", 1),
    Option(
        "alert_dedupe_window",
        float,
        10.0,
        "seconds over which repeats of one alert key are counted and then sent as one summary (0: off)",
        0,
    ),
    Option("alert_dedupe_keys", int, 100_000, "alert keys the dedupe holds (oldest evicted first)", 1),
    Option(
        "alert_intake",
        int,
        4_096,
        "engine events queued for the alert path; when it falls behind the oldest are dropped and an "
        "ALERTS_LOST alert says how many",
        1,
    ),
    Option(
        "metrics_listen",
        str,
        "",
        "Prometheus metrics HTTP address HOST:PORT (GET /metrics; port 0 picks a free one); "
        "empty: no metrics endpoint",
    ),
    Option("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Option("uvloop", bool, True, "run the event loop on uvloop when installed"),
    Option("smtp_host", str, "", "SMTP server for alert digests by email; empty: no email"),
    Option("smtp_port", int, 25, "SMTP server port", 1),
    Option("smtp_timeout", float, 10.0, "seconds allowed for connecting to SMTP, and again for sending", 0.1),
    Option("smtp_starttls", bool, False, "upgrade the SMTP connection with STARTTLS (certificate checked)"),
    Option("smtp_user", str, "", "SMTP login user (empty: no login)"),
    Option(
        "smtp_password", str, "", "SMTP login password (never logged; prefer the environment)", secret=True
    ),
    Option("email_from", str, "", "From address of alert digests (required with --smtp-host)"),
    Option("email_to", str, "", "comma-separated recipients of alert digests (required with --smtp-host)"),
    Option("email_min_severity", str, "CRITICAL", "least severity mailed: INFO, WARNING or CRITICAL"),
    Option(
        "email_interval", float, 60.0, "seconds between digest mails (at most one mail per interval)", 0.01
    ),
    Option(
        "email_outbox",
        int,
        10_000,
        "alerts waiting for a digest; when full the oldest are dropped, counted and reported in the next mail",
        1,
    ),
    Option(
        "risk_model",
        str,
        "factor",
        "VaR risk model: factor (top var_factors principal components plus specific variances; n x k "
        "floats) or sample (the full n x n sample covariance: 200 MB at 5,000 symbols)",
    ),
    Option(
        "var_window", int, 250, "days of returns the risk model uses (the last ones present in the data)", 2
    ),
    Option("var_factors", int, 20, "principal components the factor model keeps", 1),
    Option(
        "var_min_days",
        int,
        20,
        "returns a symbol needs within var_window to be modelled; fewer: var_default_vol and zero "
        "correlation",
        2,
    ),
    Option(
        "var_default_vol", float, 0.02, "daily volatility of symbols with too few returns (or none)", 1e-9
    ),
    Option("var_confidence", float, 0.99, "VaR confidence, in (0.5, 1); z = NormalDist().inv_cdf of it"),
    Option("var_horizon_days", float, 1.0, "VaR horizon in days (VaR scales with its square root)", 1e-9),
    Option(
        "risk_model_refresh",
        float,
        3600.0,
        "seconds between risk model rebuilds from the stored returns (0: only at start and on "
        "RefreshRiskModel)",
        0,
    ),
)
_BY_NAME = {opt.name: opt for opt in OPTIONS}
ENV_PREFIX = "RISKD_"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Validated server settings (see OPTIONS for meaning and defaults)."""

    listen: str = "127.0.0.1:50051"
    dsn: str = ""
    data_dir: str = ".riskd"
    dead_letter_file: str = ""
    max_batch: int = 10_000
    max_accounts: int = 100_000
    max_symbols: int = 1_000_000
    max_open_orders: int = 1_000_000
    closed_order_retention: int = 1_000_000
    max_order_notional: float = 1e15
    dynamic_min_scale: float = 0.25
    vol_ewma_lambda: float = 0.94
    dynamic_min_returns: int = 5
    dynamic_tolerance: float = 0.01
    flush_interval_ms: float = 50.0
    max_pending_rows: int = 1_000_000
    journal: bool = True
    journal_fsync: str = "interval"
    journal_fsync_interval_ms: float = 10.0
    journal_max_bytes: int = 8 * 2**30
    journal_segment_bytes: int = 64 * 2**20
    journal_repair: bool = False
    feeder: str = "process"
    snapshot_interval: float = 60.0
    snapshot_journal_bytes: int = 2**30
    templates_file: str = ""
    limit_history: int = 20
    db_pool_min: int = 1
    db_pool_max: int = 4
    db_timeout: float = 10.0
    grace: float = 5.0
    alert_subscriber_queue: int = 256
    max_alert_subscribers: int = 20_000
    feeder_nice: int = 19
    feeder_idle: bool = True
    feeder_defer: float = 60.0
    feeder_lag_interval: float = 5.0
    max_pending_requests: int = 3_000
    alert_relays: int = 0
    alert_relay_listen: str = ""
    alert_history: int = 100_000
    alert_dedupe_window: float = 10.0
    alert_dedupe_keys: int = 100_000
    alert_intake: int = 4_096
    metrics_listen: str = ""
    log_level: str = "INFO"
    uvloop: bool = True
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_timeout: float = 10.0
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    email_from: str = ""
    email_to: str = ""
    email_min_severity: str = "CRITICAL"
    email_interval: float = 60.0
    email_outbox: int = 10_000
    risk_model: str = "factor"
    var_window: int = 250
    var_factors: int = 20
    var_min_days: int = 20
    var_default_vol: float = 0.02
    var_confidence: float = 0.99
    var_horizon_days: float = 1.0
    risk_model_refresh: float = 3600.0


assert {f.name for f in fields(Settings)} == set(_BY_NAME), "Settings and OPTIONS disagree"


def is_host_port(text: str) -> bool:
    """HOST:PORT with a non-empty host and a port 0..65535 ("[::1]:9100" for IPv6)."""
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and int(port) <= 65535


class SettingsError(ValueError):
    """Every problem with the settings, reported together."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option; defaults stay None so unset flags fall through to env/TOML."""
    parser.add_argument(
        "--config", metavar="FILE", help="TOML file with any of the settings below (env RISKD_CONFIG)"
    )
    for opt in OPTIONS:
        flag = "--" + opt.name.replace("_", "-")
        env = ENV_PREFIX + opt.name.upper()
        text = f"{opt.help} (env {env}; default {opt.default!r})"
        if opt.type is bool:
            parser.add_argument(
                flag, dest=opt.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            parser.add_argument(
                flag, dest=opt.name, type=str, default=None, metavar=opt.name.upper(), help=text
            )


def _convert(opt: Option, raw: Any, source: str, errors: list[str]) -> Any:
    try:
        if isinstance(raw, bool) and opt.type is not bool:
            raise TypeError(raw)  # TOML true is not the number 1
        if opt.type is str and not isinstance(raw, str):
            raise TypeError(raw)  # TOML listen = 5 is a mistake, not "5"
        if opt.type is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        if opt.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if opt.type is int and isinstance(raw, str):
            return int(raw.replace("_", ""))
        if opt.type is int and isinstance(raw, float):
            raise ValueError(raw)
        return opt.type(raw)
    except (TypeError, ValueError):
        kind = "finite float" if opt.type is float else opt.type.__name__
        shown = "the value given" if opt.secret else repr(raw)
        errors.append(f"{opt.name} ({source}): {shown} is not a valid {kind}")
        return opt.default


def load_settings(
    args: argparse.Namespace | Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge flags > environment > TOML file > defaults and validate everything at once."""
    flags = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    env = os.environ if environ is None else environ
    errors: list[str] = []
    toml: dict[str, Any] = {}
    config_path = flags.get("config") or env.get(ENV_PREFIX + "CONFIG")
    if config_path:
        try:
            toml = tomllib.loads(Path(config_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            errors.append(f"config file {config_path}: {exc}")
        if isinstance(toml.get("server"), dict):  # settings may sit in a [server] table
            errors.extend(
                f"config file {config_path}: unknown setting {key!r} (outside [server])"
                for key in toml
                if key != "server"
            )
            toml = toml["server"]
        for key in toml:
            if key not in _BY_NAME:
                errors.append(f"config file {config_path}: unknown setting {key!r}")
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        env_name = ENV_PREFIX + opt.name.upper()
        if flags.get(opt.name) is not None:
            values[opt.name] = _convert(opt, flags[opt.name], f"--{opt.name.replace('_', '-')}", errors)
        elif env.get(env_name) not in (None, ""):
            values[opt.name] = _convert(opt, env[env_name], env_name, errors)
        elif opt.name in toml:
            values[opt.name] = _convert(opt, toml[opt.name], "config file", errors)
        else:
            values[opt.name] = opt.default
        if opt.minimum is not None and values[opt.name] < opt.minimum:
            errors.append(f"{opt.name}: must be >= {opt.minimum}, got {values[opt.name]}")
    if values["log_level"].upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        errors.append(f"log_level: {values['log_level']!r} is not DEBUG, INFO, WARNING or ERROR")
    if values["feeder_nice"] > 19:
        errors.append(f"feeder_nice: must be <= 19, got {values['feeder_nice']}")
    if values["db_pool_max"] < values["db_pool_min"]:
        errors.append("db_pool_max: must be >= db_pool_min")
    for name in ("listen", "metrics_listen"):
        if name == "metrics_listen" and not values[name]:
            continue  # empty: metrics off
        if not is_host_port(values[name]):
            errors.append(f"{name}: {values[name]!r} is not HOST:PORT")
    errors.extend(_email_errors(values))
    errors.extend(_var_errors(values))
    if str(values["feeder"]).strip().lower() not in ("process", "task"):
        errors.append(f"feeder: {values['feeder']!r} is not process or task")
    if str(values["journal_fsync"]).strip().lower() not in ("none", "interval", "always"):
        errors.append(f"journal_fsync: {values['journal_fsync']!r} is not none, interval or always")
    if values["journal_segment_bytes"] > values["journal_max_bytes"] // 4:
        errors.append("journal_segment_bytes: must be <= journal_max_bytes / 4")
    if errors:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(errors))
    values["log_level"] = values["log_level"].upper()
    values["email_min_severity"] = values["email_min_severity"].strip().upper()
    values["risk_model"] = values["risk_model"].strip().lower()
    values["journal_fsync"] = values["journal_fsync"].strip().lower()
    values["feeder"] = values["feeder"].strip().lower()
    return Settings(**values)


RISK_MODELS = ("factor", "sample")


def _var_errors(values: Mapping[str, Any]) -> list[str]:
    """The risk model's settings (minimums are checked with the options)."""
    errors: list[str] = []
    if str(values["risk_model"]).strip().lower() not in RISK_MODELS:
        errors.append(f"risk_model: {values['risk_model']!r} is not factor or sample")
    if not 0.5 < values["var_confidence"] < 1.0:
        errors.append(f"var_confidence: must be in (0.5, 1), got {values['var_confidence']}")
    if values["var_default_vol"] > 10.0:
        errors.append(f"var_default_vol: a daily volatility, must be <= 10, got {values['var_default_vol']}")
    if values["var_min_days"] > values["var_window"]:
        errors.append(
            f"var_min_days: must be <= var_window ({values['var_window']}), got {values['var_min_days']}"
        )
    return errors


def parse_addresses(text: str) -> tuple[str, ...]:
    """The bare addresses in a comma-separated list ("Desk <desk@x>, ops@y" -> desk@x, ops@y); an
    entry without a single "@" comes back as given, so validation can name it."""
    found: list[str] = []
    for name, address in getaddresses([text]):
        address = address.strip() or name.strip()
        if address:
            found.append(address)
    return tuple(found)


def _valid_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain and "@" not in local and not any(c.isspace() for c in address))


def _email_errors(values: Mapping[str, Any]) -> list[str]:
    """Email settings: only checked in earnest when smtp_host turns email on."""
    errors: list[str] = []
    if str(values["email_min_severity"]).strip().upper() not in SEVERITIES:
        errors.append(
            f"email_min_severity: {values['email_min_severity']!r} is not INFO, WARNING or CRITICAL"
        )
    if values["smtp_port"] > 65535:
        errors.append(f"smtp_port: must be <= 65535, got {values['smtp_port']}")
    if bool(values["smtp_user"]) != bool(values["smtp_password"]):
        errors.append("smtp_user and smtp_password: give both or neither")
    if values["dynamic_min_scale"] > 1:
        errors.append(f"dynamic_min_scale: must be <= 1, got {values['dynamic_min_scale']}")
    if values["vol_ewma_lambda"] >= 1:
        errors.append(f"vol_ewma_lambda: must be < 1, got {values['vol_ewma_lambda']}")
    if not values["smtp_host"]:
        return errors
    sender = parse_addresses(values["email_from"])
    if not values["email_from"].strip():
        errors.append("email_from: required when smtp_host is set")
    elif len(sender) != 1 or not _valid_address(sender[0]):
        errors.append(f"email_from: {values['email_from']!r} is not one email address")
    recipients = parse_addresses(values["email_to"])
    if not recipients:
        errors.append("email_to: required when smtp_host is set (comma-separated addresses)")
    errors.extend(
        f"email_to: {address!r} is not an email address"
        for address in recipients
        if not _valid_address(address)
    )
    return errors
