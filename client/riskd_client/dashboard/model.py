"""Alerts and account snapshots as small JSON-ready dicts: what the page and the terminal show.

Pure functions of the protobuf messages, so the views are tested without a server. Enum values
become their short names (WARNING, MAX_ORDER_QUANTITY, HALTED) and non-finite numbers become
None, because JSON (and JavaScript's JSON.parse) has no NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from riskd.v1 import risk_pb2 as pb

View = dict[str, Any]


def _short_names(enum: Any, prefix: str) -> dict[int, str]:
    return {number: name.removeprefix(prefix) for name, number in enum.items()}


SEVERITIES = _short_names(pb.Severity, "SEVERITY_")  # 2 -> "WARNING"
KINDS = _short_names(pb.AlertKind, "ALERT_KIND_")
CHECKS = _short_names(pb.RiskCheck, "RISK_CHECK_")
STATES = _short_names(pb.TradingState, "TRADING_STATE_")
SEVERITY_RANK = {name: number for number, name in SEVERITIES.items()}  # "WARNING" -> 2


def _name(names: Mapping[int, str], value: int) -> str:
    """Short enum name; an unknown number (a newer server) stays visible as its number."""
    name = names.get(value)
    return "" if value == 0 else (name if name is not None else str(value))


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def alert_view(a: pb.Alert) -> View:
    """One alert for the feed; `t` is Unix seconds (float)."""
    return {
        "seq": a.seq,
        "t": a.time.seconds + a.time.nanos / 1e9,
        "sev": _name(SEVERITIES, a.severity),
        "kind": _name(KINDS, a.kind),
        "check": _name(CHECKS, a.check),
        "account": a.account,
        "symbol": a.symbol,
        "limit": a.limit_id,
        "msg": a.message,
        "obs": finite(a.observed),
        "thr": finite(a.threshold),
        "count": a.count,
        "summary": a.summary,
        "order": a.client_order_id,
    }


def limit_view(u: pb.LimitUtilisation) -> View:
    return {
        "id": u.limit_id,
        "kind": _name(CHECKS, u.kind),
        "symbol": u.symbol,
        "obs": finite(u.observed),
        "thr": finite(u.threshold),
        "util": finite(u.utilisation),
    }


MAX_POSITIONS_SHOWN = 5  # the largest positions by |value|; `npos` counts them all


def account_view(s: pb.AccountSnapshot, version: int) -> View:
    """One account row; `v` is the state version it was read at (newer rows replace older ones)."""
    positions = sorted(s.positions, key=lambda p: -abs(p.value) if math.isfinite(p.value) else 0.0)
    limits = [limit_view(u) for u in s.closest_limits]
    utils = [u["util"] for u in limits if u["util"] is not None]
    return {
        "account": s.account,
        "gross": finite(s.gross),
        "net": finite(s.net),
        "open": s.open_orders,
        "state": _name(STATES, s.trading_state),
        "npos": len(s.positions),
        "positions": [
            {"symbol": p.symbol, "qty": finite(p.quantity), "mark": finite(p.mark), "value": finite(p.value)}
            for p in positions[:MAX_POSITIONS_SHOWN]
        ],
        "limits": limits,
        "max_util": max(utils, default=0.0),
        "v": version,
    }


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """What `riskd watch` shows of the feed (the page filters in its own script, same rules)."""

    min_severity: str = ""  # "", INFO, WARNING or CRITICAL
    accounts: frozenset[str] = frozenset()
    checks: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()

    def matches(self, alert: Mapping[str, Any]) -> bool:
        if self.min_severity and SEVERITY_RANK.get(alert["sev"], 0) < SEVERITY_RANK[self.min_severity]:
            return False
        if self.accounts and alert["account"] not in self.accounts:
            return False
        if self.checks and alert["check"] not in self.checks:
            return False
        return not (self.kinds and alert["kind"] not in self.kinds)

    @classmethod
    def parse(
        cls,
        severity: str = "",
        accounts: Iterable[str] = (),
        checks: Iterable[str] = (),
        kinds: Iterable[str] = (),
    ) -> FeedFilter:
        """From flag values (any case, - or _); ValueError naming the unknown value."""

        def norm(value: str) -> str:
            return value.strip().upper().replace("-", "_")

        sev = norm(severity)
        if sev and sev not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {severity!r} (INFO, WARNING, CRITICAL)")
        known_checks = set(CHECKS.values())
        known_kinds = set(KINDS.values())
        chk = frozenset(norm(c).removeprefix("RISK_CHECK_") for c in checks)
        knd = frozenset(norm(k).removeprefix("ALERT_KIND_") for k in kinds)
        for value, known, what in ((chk, known_checks, "check"), (knd, known_kinds, "kind")):
            bad = sorted(value - known)
            if bad:
                raise ValueError(f"unknown {what} {bad[0]!r}")
        return cls(sev, frozenset(a for a in accounts if a), chk, knd)
