"""`riskd watch`: the dashboard in a terminal (rich Live), from the same upstream and state as the web tier.

Redrawn when something changed, at most `fps` times a second, and once a second for the clock
and connection state; nothing is drawn while nothing happens. Filters (flags) apply to the
alert feed only, like the page's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .model import FeedFilter, View
from .state import DashboardState
from .upstream import Upstream

SEV_STYLE = {"CRITICAL": "bold white on red", "WARNING": "bold black on yellow", "INFO": "cyan"}
STATE_STYLE = {"ACTIVE": "green", "REDUCING": "bold yellow", "HALTED": "bold white on red"}
STREAM_STYLE = {"live": "green", "connecting": "yellow", "reconnecting": "yellow", "unavailable": "red"}
BAR_WIDTH = 12


@dataclass(frozen=True, slots=True)
class WatchSettings:
    target: str
    filter: FeedFilter = field(default_factory=FeedFilter)
    alert_rows: int = 20
    account_rows: int = 20
    duration: float = 0.0  # 0: until Ctrl-C
    fps: float = 4.0
    snapshot_interval_ms: int = 250


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    a = abs(x)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if a >= scale:
            return f"{x / scale:.2f}{suffix}"
    if a >= 1e4:
        return f"{x / 1e3:.1f}K"
    return f"{x:,.0f}" if a >= 100 else f"{x:.4g}"


def util_style(u: float | None) -> str:
    if u is None or u < 0.6:
        return "green"
    if u < 0.8:
        return "yellow"
    return "dark_orange" if u < 1.0 else "bold red"


def util_bar(limit: View) -> Text:
    u = limit["util"]
    filled = 0 if u is None else round(max(0.0, min(1.0, u)) * BAR_WIDTH)
    style = util_style(u)
    kind = limit["kind"].removeprefix("MAX_").lower().replace("_", " ")
    label = f"{kind} {limit['symbol']}".strip()
    text = Text(f"{label[:22]:<22} ")
    text.append("█" * filled, style=style)
    text.append("░" * (BAR_WIDTH - filled), style="grey35")
    pct = "-" if u is None else f"{u * 100:.1f}%"
    text.append(f" {pct:>7}", style=style)
    text.append(f"  {fmt(limit['obs'])}/{fmt(limit['thr'])}", style="grey62")
    return text


def render(state: DashboardState, settings: WatchSettings) -> Group:
    """The whole screen: status line, accounts closest to their limits, the filtered feed."""
    head = Text("riskd watch ", style="bold")
    head.append(state.target, style="grey62")
    for name, st in state.streams.items():
        head.append(f"  {name} ")
        detail = f" ({st.detail})" if st.detail and st.state != "live" else ""
        head.append(st.state + detail, style=STREAM_STYLE.get(st.state, ""))
    head.append("  firm ")
    head.append(state.firm_state or "-", style=STATE_STYLE.get(state.firm_state, ""))
    head.append(f"  seq {state.last_seq}  {time.strftime('%H:%M:%S')}", style="grey62")
    if state.missed or state.dropped:
        head.append(f"  missed {state.missed} dropped {state.dropped}", style="bold red")

    rows = sorted(state.accounts.values(), key=lambda a: (-a["max_util"], a["account"]))
    accounts = Table(
        title=f"accounts ({len(rows)})", title_justify="left", expand=True, pad_edge=False, box=None
    )
    for col, justify in (("account", "left"), ("state", "left"), ("gross", "right"), ("net", "right")):
        accounts.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    accounts.add_column("open", justify="right")
    accounts.add_column("pos", justify="right")
    accounts.add_column("closest limits", no_wrap=True)
    for a in rows[: settings.account_rows]:
        limits = [util_bar(lim) for lim in a["limits"][:3]]
        accounts.add_row(
            Text(a["account"], style="bold"),
            Text(a["state"] or "-", style=STATE_STYLE.get(a["state"], "")),
            fmt(a["gross"]),
            fmt(a["net"]),
            str(a["open"]),
            str(a["npos"]),
            Text("\n").join(limits) if limits else Text("no limits", style="grey50"),
        )

    flt = settings.filter
    shown = [a for a in reversed(state.alerts) if flt.matches(a)]
    alerts = Table(
        title=f"alerts ({len(shown)} matching of {len(state.alerts)} held)",
        title_justify="left",
        expand=True,
        pad_edge=False,
        box=None,
    )
    for col in ("time", "sev", "kind", "check", "account", "symbol", "message"):
        alerts.add_column(col, no_wrap=col != "message")
    for col in ("observed", "threshold", "x"):
        alerts.add_column(col, justify="right", no_wrap=True)
    for a in shown[: settings.alert_rows]:
        t = time.strftime("%H:%M:%S", time.localtime(a["t"])) + f".{int(a['t'] * 1000) % 1000:03d}"
        alerts.add_row(
            t,
            Text(a["sev"], style=SEV_STYLE.get(a["sev"], "")),
            a["kind"].lower(),
            a["check"].lower(),
            a["account"],
            a["symbol"],
            a["msg"],
            fmt(a["obs"]) if a["obs"] or a["thr"] else "",
            fmt(a["thr"]) if a["obs"] or a["thr"] else "",
            str(a["count"]) if a["count"] > 1 else "",
        )
    return Group(head, Text(""), accounts, Text(""), alerts)


class _Changed:
    """The upstream's listener: any change sets one event."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def alerts(self, views: list[View]) -> None:
        if views:
            self.event.set()

    def accounts(self, views: list[View]) -> None:
        if views:
            self.event.set()

    def status(self) -> None:
        self.event.set()


async def watch(settings: WatchSettings, console: Console | None = None) -> None:
    console = console or Console()
    state = DashboardState(settings.target)
    changed = _Changed()
    upstream = Upstream(settings.target, state, changed, min_interval_ms=settings.snapshot_interval_ms)
    stop = asyncio.Event()

    def request_stop() -> None:
        stop.set()
        changed.event.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, request_stop)
    if settings.duration > 0:
        loop.call_later(settings.duration, request_stop)
    task = asyncio.create_task(upstream.run())
    try:
        with Live(render(state, settings), console=console, auto_refresh=False) as live:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):  # the clock and retry countdowns move once a second
                        await changed.event.wait()
                changed.event.clear()
                live.update(render(state, settings), refresh=True)
                if not stop.is_set():
                    await asyncio.sleep(1.0 / settings.fps)
            live.update(render(state, settings), refresh=True)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run(settings: WatchSettings) -> int:
    # The screen shows the connection state; log lines would tear it.
    quiet = logging.getLogger("riskd.dashboard")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    asyncio.run(watch(settings))
    return 0
