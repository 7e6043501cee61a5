"""The dashboard's view of the risk server: bounded, in memory, rebuilt from the streams.

Nothing here grows without bound: the recent-alert buffer is a ring (oldest out first), the
account map has a cap (accounts past it are counted and not shown), and every loss is counted
(`stats()`): alerts the server no longer held on resume (`missed`), alerts the server dropped
because this process read too slowly (`dropped`), accounts past the cap (`accounts_refused`).
The process is stateless in the sense that matters: all of this is rebuilt from the server after
a restart (recent alerts via QueryAlerts, accounts from the snapshot stream's first response).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from riskd.v1 import risk_pb2 as pb

from .model import STATES, View, account_view, alert_view

DEFAULT_ALERT_BUFFER = 500
DEFAULT_MAX_ACCOUNTS = 10_000


@dataclass(slots=True)
class StreamStatus:
    """One upstream stream's connection state, as the page shows it."""

    state: str = "connecting"  # connecting | live | reconnecting | unavailable
    detail: str = ""
    since: float = field(default_factory=time.time)
    retry_in: float = 0.0
    connects: int = 0

    def view(self) -> View:
        return {
            "state": self.state,
            "detail": self.detail,
            "since": self.since,
            "retry_in": self.retry_in,
            "connects": self.connects,
        }


class DashboardState:
    """Accounts, recent alerts and connection state; `version` moves on every change."""

    def __init__(
        self,
        target: str = "",
        *,
        alert_buffer: int = DEFAULT_ALERT_BUFFER,
        max_accounts: int = DEFAULT_MAX_ACCOUNTS,
    ) -> None:
        if alert_buffer < 1 or max_accounts < 1:
            raise ValueError("alert_buffer and max_accounts must be at least 1")
        self.target = target
        self.alerts: deque[View] = deque(maxlen=alert_buffer)
        self.accounts: dict[str, View] = {}
        self.max_accounts = max_accounts
        self.last_seq = 0
        self.state_version = 0
        self.firm_state = ""
        self.streams = {"alerts": StreamStatus(), "snapshots": StreamStatus()}
        self.version = 0
        # losses and volumes, all since start
        self.alerts_received = 0
        self.alerts_duplicate = 0
        self.missed = 0
        self.dropped = 0
        self.accounts_refused = 0
        self._refused_names: set[str] = set()

    # ------------------------------------------------------------------ alerts

    def seed_alerts(self, newest_first: Iterable[pb.Alert]) -> list[View]:
        """Recent history (a QueryAlerts page, newest first) before the live stream starts."""
        return self.add_alerts(reversed(list(newest_first)))

    def add_alerts(self, alerts: Iterable[pb.Alert]) -> list[View]:
        """Alerts oldest first; returns the new views (a seq already seen is skipped: a replay's overlap)."""
        views = []
        for a in alerts:
            if a.seq and a.seq <= self.last_seq:
                self.alerts_duplicate += 1
                continue
            view = alert_view(a)
            self.alerts.append(view)
            views.append(view)
            self.last_seq = max(self.last_seq, a.seq)
        self.alerts_received += len(views)
        if views:
            self.version += 1
        return views

    def apply_alerts(self, response: pb.SubscribeAlertsResponse) -> list[View]:
        self.missed += response.missed
        self.dropped += response.dropped
        views = self.add_alerts(response.alerts)
        if response.missed or response.dropped:
            self.version += 1
        return views

    # ------------------------------------------------------------------ accounts

    def apply_snapshots(self, response: pb.StreamRiskSnapshotsResponse) -> list[View]:
        """Changed accounts replace their rows; returns the rows that changed."""
        version = response.state_version
        self.state_version = max(self.state_version, version)
        firm = STATES.get(response.firm_trading_state, "") if response.firm_trading_state else ""
        changed = firm != self.firm_state
        self.firm_state = firm or self.firm_state
        views = []
        for snap in response.accounts:
            if snap.account not in self.accounts and len(self.accounts) >= self.max_accounts:
                if snap.account not in self._refused_names and len(self._refused_names) < self.max_accounts:
                    self._refused_names.add(snap.account)  # bounded: counts distinct names up to the cap
                    self.accounts_refused += 1
                continue
            view = account_view(snap, version)
            self.accounts[snap.account] = view
            views.append(view)
        if views or changed:
            self.version += 1
        return views

    # ------------------------------------------------------------------ status

    def set_status(self, stream: str, state: str, detail: str = "", retry_in: float = 0.0) -> bool:
        """Record a stream's state; True when it changed."""
        st = self.streams[stream]
        if (st.state, st.detail, st.retry_in) == (state, detail, retry_in):
            return False
        if st.state != state:
            st.since = time.time()
        if state == "live" and st.state != "live":
            st.connects += 1
        st.state, st.detail, st.retry_in = state, detail, retry_in
        self.version += 1
        return True

    def status_view(self) -> View:
        return {
            "target": self.target,
            "streams": {name: st.view() for name, st in self.streams.items()},
            "firm_state": self.firm_state,
            "state_version": self.state_version,
            "last_seq": self.last_seq,
            "missed": self.missed,
            "dropped": self.dropped,
            "accounts_refused": self.accounts_refused,
        }

    # ------------------------------------------------------------------ whole view

    def snapshot(self) -> dict[str, Any]:
        """Everything a new viewer needs first: accounts, recent alerts (oldest first), status."""
        return {
            "status": self.status_view(),
            "accounts": list(self.accounts.values()),
            "alerts": list(self.alerts),
            "alert_buffer": self.alerts.maxlen,
        }

    def stats(self) -> dict[str, int]:
        return {
            "alerts_received": self.alerts_received,
            "alerts_duplicate": self.alerts_duplicate,
            "alerts_buffered": len(self.alerts),
            "missed": self.missed,
            "dropped": self.dropped,
            "accounts": len(self.accounts),
            "accounts_refused": self.accounts_refused,
            "last_seq": self.last_seq,
        }
