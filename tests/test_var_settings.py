"""The VaR risk model's settings: defaults, validation (all errors at once) and the build
parameters the server derives from them."""

from __future__ import annotations

import pytest

from riskd_server.config import SettingsError, load_settings
from riskd_server.server import build_params


def test_defaults() -> None:
    s = load_settings({}, environ={})
    assert (s.risk_model, s.var_window, s.var_factors, s.var_min_days) == ("factor", 250, 20, 20)
    assert (s.var_default_vol, s.var_confidence, s.var_horizon_days) == (0.02, 0.99, 1.0)
    assert s.risk_model_refresh == 3600.0
    p = build_params(s)
    assert (p.kind, p.window, p.factors, p.min_days, p.confidence) == ("factor", 250, 20, 20, 0.99)


def test_values_from_env_and_flags() -> None:
    s = load_settings(
        {"risk_model": "SAMPLE", "var_factors": "5"},
        environ={"RISKD_VAR_CONFIDENCE": "0.975", "RISKD_RISK_MODEL_REFRESH": "0"},
    )
    assert (s.risk_model, s.var_factors, s.var_confidence, s.risk_model_refresh) == ("sample", 5, 0.975, 0.0)
    assert build_params(s).tag() == "sample-w250-m20-dv0.02-c0.975-h1"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"risk_model": "pca"}, "risk_model: 'pca' is not factor or sample"),
        ({"var_confidence": "0.5"}, "var_confidence: must be in (0.5, 1)"),
        ({"var_confidence": "1"}, "var_confidence: must be in (0.5, 1)"),
        ({"var_factors": "0"}, "var_factors: must be >= 1"),
        ({"var_window": "1"}, "var_window: must be >= 2"),
        ({"var_min_days": "1"}, "var_min_days: must be >= 2"),
        ({"var_min_days": "300"}, "var_min_days: must be <= var_window (250)"),
        ({"var_default_vol": "0"}, "var_default_vol: must be >= 1e-09"),
        ({"var_default_vol": "20"}, "var_default_vol: a daily volatility"),
        ({"var_horizon_days": "0"}, "var_horizon_days: must be >= 1e-09"),
        ({"risk_model_refresh": "-1"}, "risk_model_refresh: must be >= 0"),
    ],
)
def test_invalid(flags: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(flags, environ={})
    assert message in str(err.value)


def test_all_errors_together() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"risk_model": "x", "var_confidence": "2", "var_factors": "0"}, environ={})
    text = str(err.value)
    assert "risk_model" in text and "var_confidence" in text and "var_factors" in text
