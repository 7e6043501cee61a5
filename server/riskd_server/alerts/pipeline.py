"""Engine events -> alerts: dedupe, number, keep (history, statistics), send (subscribers, email,
PostgreSQL).

Runs on the event loop, after the requests whose events it reads have been answered: the engine
only put tuples on the intake (alerts.intake); the pipeline is woken once per burst
(``loop.call_soon``) and drains at most ``events_per_turn`` events per turn before yielding the
loop to RPCs again. Each event becomes occurrence groups in bulk (one group per dedupe key of a
batch: a halted account rejecting 10,000 orders is one group of 10,000, not 10,000 alerts), so the
Python work scales with distinct keys, not with rejected orders.

A group is counted in the statistics as it arrives; the dedupe decides whether its first
occurrence goes out now (the rest are repeats, summarised when the key's window closes). Alerts
that go out are numbered here (``seq``), appended to the history ring, and handed to every output:
the subscriber hub, the mailer and the write-behind (when it has room; otherwise counted as
unpersisted). A ticker wakes when the next dedupe window closes (and once a second for the fault
probes: backlog level, breakers) — never to push anything on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from riskd.v1 import risk_pb2 as pb

from .. import changes as ch
from ..kernel import layout as L
from ..wire.request import OneOrder, one_order_strs
from ..wire.spans import Utf8Spans
from .dedupe import Deduper
from .history import AlertHistory
from .intake import EV_CHECKS, EV_EXECUTIONS, EV_FAULT, EV_LIMITS, EV_TRADING_STATE, AlertIntake
from .messages import check_message, check_name, execution_message, num, printable, trading_state_message
from .model import CRITICAL, INFO, WARNING, Alert
from .stats import AlertStats

if TYPE_CHECKING:
    from ..interning import Interner
    from ..limits import Limit

log = logging.getLogger("riskd.alerts")

# A limit change naming more limits than this is one alert, not one per limit.
LIMIT_ALERTS_PER_CHANGE = 20

_EXEC_KIND = {
    L.X_OVERFILL: pb.ALERT_KIND_OVERFILL,
    L.X_LATE_FILL: pb.ALERT_KIND_LATE_FILL,
}


class Sink(Protocol):
    def has_room(self, rows: int = 0) -> bool: ...
    def put(self, change: ch.Change) -> None: ...


Output = Callable[[list[Alert]], None]
# An occurrence group: its first occurrence (count 1) and, when it has repeats, the last standing
# for them (count = the repeats).
Group = tuple[Alert, "Alert | None"]
Probe = Callable[[], "tuple[int, str, float, float] | None"]


@dataclass(frozen=True, slots=True)
class PipelineStats:
    last_seq: int
    raised: int  # alerts that went out (first occurrences, summaries, faults)
    occurrences: int  # occurrences seen, repeats included
    lost_events: int  # engine events the intake dropped (the pipeline fell behind)
    lost_occurrences: int
    unpersisted: int  # alerts the write-behind had no room for
    pending_events: int


class AlertPipeline:
    """See the module doc. Build it, attach outputs, ``engine.alert_intake = pipeline.intake``,
    then ``start()`` on the event loop."""

    def __init__(
        self,
        accounts: Interner,
        symbols: Interner,
        history: AlertHistory,
        dedupe: Deduper,
        stats: AlertStats,
        *,
        intake_capacity: int = 4096,
        events_per_turn: int = 256,
        clock: Callable[[], float] = time.time,
        last_seq: int = 0,
    ) -> None:
        self._accounts = accounts
        self._symbols = symbols
        self.history = history
        self.dedupe = dedupe
        self.stats = stats
        self.intake = AlertIntake(intake_capacity, wake=self._wake)
        self._events_per_turn = events_per_turn
        self._clock = clock
        self._seq = last_seq
        self._outputs: list[Output] = []
        self._probes: list[Probe] = []
        self.sink: Sink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tick_now = asyncio.Event()
        self._raised = 0
        self._unpersisted = 0
        self._lost_reported = (0, 0)
        self._faulting: set[tuple[int, str]] = set()

    # ------------------------------------------------------------------ wiring

    def restore(self, recent: Sequence[Alert], last_seq: int) -> None:
        """Continue after a restart: the newest persisted alerts back in the history (oldest first),
        numbering after the highest seq ever written."""
        for alert in recent:
            self.history.append(alert if alert.wire else alert.numbered(alert.seq))
        self._seq = max(self._seq, last_seq)

    def add_output(self, output: Output) -> None:
        """output(alerts) is called with every batch of numbered alerts, on the event loop; it must
        not block (the hub queues, the mailer queues)."""
        self._outputs.append(output)

    def add_probe(self, probe: Probe) -> None:
        """probe() -> (kind, message, observed, threshold) while a fault lasts, else None; polled
        once a second. An alert is raised when a fault starts (then deduped like any other)."""
        self._probes.append(probe)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ticker = self._loop.create_task(self._tick_loop(), name="riskd-alert-ticker")

    async def stop(self) -> None:
        """Process what is queued, send every pending summary, and stop the ticker."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self.run_once(drain_all=True)
        self._emit(self.dedupe.due(float("inf")))

    # ------------------------------------------------------------------ faults (server side)

    def raise_fault(
        self, kind: int, message: str, observed: float = 0.0, threshold: float = 0.0, account: str = ""
    ) -> None:
        """A server fault (a breaker opened, a subscriber dropped messages …): CRITICAL, deduped."""
        self.intake.put((EV_FAULT, 1, self._clock(), kind, message, observed, threshold, account))

    # ------------------------------------------------------------------ running

    def _wake(self) -> None:
        if self._loop is not None:
            self._loop.call_soon(self.run_once)

    def run_once(self, drain_all: bool = False) -> None:
        """Drain a turn's worth of events (all with drain_all) and send what they raise."""
        intake = self.intake
        events = intake.drain(None if drain_all else self._events_per_turn)
        now = self._clock()
        out: list[Alert] = []
        for event in events:
            try:
                self._event(event, now, out)
            except Exception:  # one malformed event must not stop the alert path
                log.exception("alert event %r failed", event[:3])
        lost = (intake.lost_events, intake.lost_occurrences)
        if lost != self._lost_reported:
            events_lost = lost[0] - self._lost_reported[0]
            occ = lost[1] - self._lost_reported[1]
            self._lost_reported = lost
            out.append(
                self._fault_alert(
                    now,
                    pb.ALERT_KIND_ALERTS_LOST,
                    f"alert intake full: {events_lost} engine event(s) with {occ} occurrence(s) lost "
                    f"({lost[0]} since start); the alert path fell behind",
                    float(occ),
                    float(intake.capacity),
                )
            )
        self._emit(out)
        if len(intake) and self._loop is not None:
            self._loop.call_soon(self.run_once)  # more left: after the loop's other work
        nxt = self.dedupe.next_due()
        if nxt is not None and nxt <= now + 1.0:
            self._tick_now.set()

    async def _tick_loop(self) -> None:
        next_probe = 0.0
        while True:
            now = self._clock()
            if now >= next_probe:
                self._run_probes(now)
                next_probe = now + 1.0
            self._emit(self.dedupe.due(now))
            due = self.dedupe.next_due()
            wait = min(next_probe, due if due is not None else next_probe) - self._clock()
            self._tick_now.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._tick_now.wait(), wait)

    def _run_probes(self, now: float) -> None:
        active: set[tuple[int, str]] = set()
        out: list[Alert] = []
        for probe in self._probes:
            try:
                fault = probe()
            except Exception:
                log.exception("alert probe failed")
                continue
            if fault is None:
                continue
            kind, message, observed, threshold = fault
            key = (kind, message.split(":", 1)[0])
            active.add(key)
            if key not in self._faulting:
                out.append(self._fault_alert(now, kind, message, observed, threshold))
        self._faulting = active
        self._emit(out)

    # ------------------------------------------------------------------ events -> alerts

    def _event(self, event: tuple, now: float, out: list[Alert]) -> None:
        kind = event[0]
        counted = False  # the groups' occurrences are in the statistics already
        if kind == EV_CHECKS:
            _, _, t, violations, aid, sid, ids = event
            groups = self._check_groups(t, violations, aid, sid, ids, now)
            counted = True
        elif kind == EV_EXECUTIONS:
            groups = self._execution_groups(*event[2:])
        elif kind == EV_LIMITS:
            groups = [(alert, None) for alert in self._limit_alerts(*event[2:])]
        elif kind == EV_TRADING_STATE:
            # Every change goes out at once: a halt and the resume after it are never summarised.
            alert = self._trading_state_alert(*event[2:])
            self.stats.add(alert, now)
            out.append(alert)
            return
        elif kind == EV_FAULT:
            _, _, t, fault_kind, message, observed, threshold, account = event
            groups = [(self._fault_alert(t, fault_kind, message, observed, threshold, account), None)]
        else:
            raise ValueError(f"unknown alert event kind {kind}")
        for first, last in groups:
            if not counted:
                self.stats.add(first, now, first.count + (last.count if last is not None else 0))
            if self.dedupe.offer(first, now):
                out.append(first)
            if last is not None:
                self.dedupe.offer(last, now)  # repeats: counted into the key's summary

    def _name(self, interner: Interner, id_: int) -> str:
        return interner.name(id_) if 0 <= id_ < len(interner) else ""

    def _check_groups(self, t: float, v, aid, sid, ids, now: float) -> list[Group]:
        """One occurrence group per dedupe key (kind, check, account, symbol, limit) of a checked
        batch, in first-seen order: its first occurrence and, with repeats, its last standing for
        them. All of them are counted in the statistics at once (count_many). A key whose dedupe
        window is already open is only counted (dedupe repeats) and left out: its alert is made
        only if its summary goes out.

        The batch's columns are read once (tolist, names by array, only the violating orders' ids
        decoded) and grouped by C-level dict and Counter passes; the loop per key does a dedupe
        lookup and keeps a few scalars (the workload's ~17 keys a batch: 338 -> 144 us)."""
        n = len(v)
        order = v.order_index.astype(np.int64)
        if isinstance(aid, np.ndarray):
            accounts = _names(self._accounts, aid[order])
            symbols = _names(self._symbols, sid[order])
        else:
            accounts = [self._name(self._accounts, aid)] * n
            symbols = [self._name(self._symbols, sid)] * n
        checks = v.check.tolist()
        kinds = np.where(v.warning, pb.ALERT_KIND_CHECK_WARNING, pb.ALERT_KIND_CHECK_REJECT).tolist()
        limit_ids = [limit_id or "" for limit_id in v.limit_id.tolist()]
        keys = list(zip(kinds, checks, accounts, symbols, limit_ids, strict=True))
        observed, threshold = v.observed.tolist(), v.threshold.tolist()
        order_ids = _order_ids(ids, order)
        last = dict(zip(keys, range(n), strict=True))  # first-seen order, each key's last index
        counts = Counter(keys)
        by_account = Counter(accounts)
        by_account.pop("", None)  # an order with no account counts in no account
        self.stats.count_many(len(last), Counter(checks), by_account, now)
        repeat = self.dedupe.repeat
        out: list[Group] = []
        for key, i in last.items():
            total = counts[key]
            # the last occurrence makes the summary if the window closes with repeats (its count
            # is the summary's, set then)
            if repeat(
                key, total, partial(_check_alert, t, *key, observed[i], threshold[i], order_ids[i], 1), now
            ):
                continue
            first = keys.index(key)
            alerts = [_check_alert(t, *key, observed[first], threshold[first], order_ids[first], 1)]
            if total > 1:
                alerts.append(_check_alert(t, *key, observed[i], threshold[i], order_ids[i], total - 1))
            out.append(_group(alerts))
        return out

    def _execution_groups(self, t: float, ids, status, aid, sid) -> list[Group]:
        """Like _check_groups, per (kind, account, symbol) of a batch's odd executions."""
        codes = status.tolist()
        kinds = [_EXEC_KIND.get(c, pb.ALERT_KIND_UNKNOWN_FILL) for c in codes]
        keys = list(zip(kinds, aid.tolist(), sid.tolist(), strict=True))
        out: list[Group] = []
        for (kind, a, s), occurrences in _occurrences(keys):
            account, symbol = self._name(self._accounts, a), self._name(self._symbols, s)
            alerts = []
            for i, count in occurrences:
                order_id = printable(str(ids[i]))
                alerts.append(
                    Alert(
                        seq=0,
                        time=t,
                        severity=WARNING,
                        kind=kind,
                        account=account,
                        symbol=symbol,
                        message=execution_message(codes[i], order_id, account, symbol),
                        count=count,
                        client_order_id=order_id,
                    )
                )
            out.append(_group(alerts))
        return out

    def _limit_alerts(self, t: float, upserted: tuple[Limit, ...], deleted: tuple[str, ...]) -> list[Alert]:
        n = len(upserted) + len(deleted)
        if n > LIMIT_ALERTS_PER_CHANGE:
            return [
                Alert(
                    seq=0,
                    time=t,
                    severity=INFO,
                    kind=pb.ALERT_KIND_LIMIT_CHANGED,
                    message=f"{len(upserted)} limit(s) set and {len(deleted)} deleted in one change",
                    observed=float(n),
                )
            ]
        out = []
        for lim in upserted:
            where = " ".join(p for p in (lim.account, lim.symbol) if p) or "firm-wide"
            state = " (disabled)" if lim.disabled else ""
            warn = f", warn at {lim.warn_fraction:.0%}" if lim.warn_fraction else ""
            out.append(
                Alert(
                    seq=0,
                    time=t,
                    severity=INFO,
                    kind=pb.ALERT_KIND_LIMIT_CHANGED,
                    check=lim.kind,
                    account=lim.account,
                    symbol=lim.symbol,
                    limit_id=lim.limit_id,
                    message=f"limit {lim.limit_id} {check_name(lim.kind)} {where} set to "
                    f"{num(lim.threshold)}{warn}{state}",
                    threshold=lim.threshold,
                )
            )
        for limit_id in deleted:
            out.append(
                Alert(
                    seq=0,
                    time=t,
                    severity=INFO,
                    kind=pb.ALERT_KIND_LIMIT_CHANGED,
                    limit_id=limit_id,
                    message=f"limit {limit_id} deleted",
                )
            )
        return out

    def _trading_state_alert(self, t: float, account: str, state: int, previous: int, reason: str) -> Alert:
        return Alert(
            seq=0,
            time=t,
            severity=CRITICAL if state in (pb.TRADING_STATE_HALTED, pb.TRADING_STATE_REDUCING) else INFO,
            kind=pb.ALERT_KIND_TRADING_STATE,
            account=account,
            message=trading_state_message(account, state, previous, reason),
            observed=float(state),
            threshold=float(previous),
        )

    def _fault_alert(
        self,
        t: float,
        kind: int,
        message: str,
        observed: float = 0.0,
        threshold: float = 0.0,
        account: str = "",
    ) -> Alert:
        return Alert(
            seq=0,
            time=t,
            severity=CRITICAL,
            kind=kind,
            account=account,
            message=message,
            observed=observed,
            threshold=threshold,
        )

    # ------------------------------------------------------------------ out

    def _emit(self, alerts: Sequence[Alert]) -> None:
        """Number alerts, keep them in the history, hand them to the outputs and the write-behind."""
        if not alerts:
            return
        numbered = []
        for alert in alerts:
            self._seq += 1
            numbered.append(alert.numbered(self._seq))
        for alert in numbered:
            self.history.append(alert)
        self._raised += len(numbered)
        for output in self._outputs:
            try:
                output(numbered)
            except Exception:
                log.exception("alert output %r failed", output)
        self._persist(numbered)

    def _persist(self, alerts: list[Alert]) -> None:
        sink = self.sink
        if sink is None:
            return
        if not sink.has_room(len(alerts)):
            self._unpersisted += len(alerts)
            return
        sink.put(alerts_raised(alerts))

    def stats_snapshot(self) -> PipelineStats:
        return PipelineStats(
            last_seq=self._seq,
            raised=self._raised,
            occurrences=self.stats.occurrences,
            lost_events=self.intake.lost_events,
            lost_occurrences=self.intake.lost_occurrences,
            unpersisted=self._unpersisted,
            pending_events=len(self.intake),
        )

    @property
    def last_seq(self) -> int:
        return self._seq

    def clock(self) -> float:
        """The pipeline's wall clock (the statistics' windows are measured on it)."""
        return self._clock()


def _occurrences(keys: list) -> Iterator[tuple[Any, list[tuple[int, int]]]]:
    """Per distinct key of a batch (in first-seen order): its first occurrence as (index, 1), the
    one that goes out if the key is new, and, when the batch repeats the key, its last occurrence
    standing for the repeats as (index, count - 1). Built with C-level dict/Counter passes, no
    Python loop per occurrence."""
    n = len(keys)
    last = dict(zip(keys, range(n), strict=True))
    first = dict(zip(reversed(keys), range(n - 1, -1, -1), strict=True))
    for key, count in Counter(keys).items():
        yield key, [(first[key], 1), (last[key], count - 1)] if count > 1 else [(first[key], 1)]


def _check_alert(
    t: float,
    kind: int,
    check: int,
    account: str,
    symbol: str,
    limit_id: str,
    observed: float,
    threshold: float,
    order_id: str,
    count: int,
) -> Alert:
    """A check's reject or warning as an alert (made lazily for a repeat: see Deduper.repeat)."""
    order_id = printable(order_id)
    warning = kind == pb.ALERT_KIND_CHECK_WARNING
    return Alert(
        seq=0,
        time=t,
        severity=INFO if warning else WARNING,
        kind=kind,
        check=check,
        account=account,
        symbol=symbol,
        limit_id=limit_id,
        message=check_message(check, warning, account, symbol, observed, threshold, order_id),
        observed=observed,
        threshold=threshold,
        count=count,
        client_order_id=order_id,
    )


def _group(alerts: list[Alert]) -> Group:
    return alerts[0], alerts[1] if len(alerts) > 1 else None


def _names(interner: Interner, ids: np.ndarray) -> list[str]:
    """The names of ``ids`` ("" for an id the interner does not hold: an invalid order's -1)."""
    listed = ids.tolist()
    n = len(interner)
    if not listed or (min(listed) >= 0 and max(listed) < n):
        return interner.names_of(ids).tolist()
    return [interner.name(i) if 0 <= i < n else "" for i in listed]


def _order_ids(ids: Sequence[str] | Utf8Spans | OneOrder, order: np.ndarray) -> list[str]:
    """The client_order_id of each violation's order (``order``: their indexes in the batch)."""
    if isinstance(ids, OneOrder):  # decoded only now
        return [one_order_strs(ids)[0]] * int(order.shape[0])
    if isinstance(ids, Utf8Spans):
        return ids.pick(order)
    return [str(ids[i]) for i in order.tolist()]


def alerts_raised(alerts: Sequence[Alert]) -> ch.AlertsRaised:
    """Alerts as one write-behind record."""

    def col(name: str, dtype) -> np.ndarray:
        return np.array([getattr(a, name) for a in alerts], dtype=dtype)

    return ch.AlertsRaised(
        seq=col("seq", np.int64),
        time=col("time", np.float64),
        severity=col("severity", np.int16),
        kind=col("kind", np.int16),
        check=col("check", np.int16),
        account=col("account", object),
        symbol=col("symbol", object),
        limit_id=col("limit_id", object),
        message=col("message", object),
        observed=col("observed", np.float64),
        threshold=col("threshold", np.float64),
        count=col("count", np.int64),
        summary=col("summary", bool),
        client_order_id=col("client_order_id", object),
    )
