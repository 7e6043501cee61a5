"""A metrics snapshot -> Prometheus metric families (pure: no I/O, no event loop).

The snapshot is taken on the event loop (metrics.exporter); this runs in the scrape's thread.
Names are listed in docs/metrics.md; a test there keeps the list and this module together.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from riskd.v1 import risk_pb2 as pb

from ..engine.counts import CheckCounts
from .rpc import BOUNDS_NS, MethodSnapshot

NAMESPACE = "riskd"
NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
BREAKER_STATES = ("closed", "open", "half_open")

# RiskCheck value -> label ("MAX_POSITION"), every check but UNSPECIFIED: each series exists from
# the start, so rate() sees its first increment.
CHECK_LABELS: dict[int, str] = {
    v.number: v.name.removeprefix("RISK_CHECK_")
    for v in pb.RiskCheck.DESCRIPTOR.values
    if v.number != pb.RISK_CHECK_UNSPECIFIED
}
_BUCKET_LABELS = [f"{b / 1e9:g}" for b in BOUNDS_NS] + ["+Inf"]


@dataclass(frozen=True, slots=True)
class GaugeSet:
    """What one ``Metrics.add_gauges`` source returned at this scrape."""

    prefix: str
    values: Mapping[str, float]
    counters: frozenset[str]
    docs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    checks: CheckCounts | None = None
    rpcs: list[MethodSnapshot] = field(default_factory=list)
    gauges: list[GaugeSet] = field(default_factory=list)
    breakers: list[tuple[str, str]] = field(default_factory=list)  # (name, state)
    failed_sources: list[str] = field(default_factory=list)  # sources that raised at this scrape


def families(snap: Snapshot) -> Iterator[Metric]:
    if snap.checks is not None:
        yield from check_families(snap.checks)
    if snap.rpcs:
        yield from rpc_families(snap.rpcs)
    for gauges in snap.gauges:
        yield from gauge_families(gauges)
    if snap.breakers:
        yield breaker_family(snap.breakers)


def check_families(c: CheckCounts) -> Iterator[Metric]:
    yield CounterMetricFamily(f"{NAMESPACE}_orders_checked", "Orders checked.", value=c.checked)
    yield CounterMetricFamily(
        f"{NAMESPACE}_orders_accepted", "Orders accepted (warnings or not).", value=c.accepted
    )
    yield CounterMetricFamily(
        f"{NAMESPACE}_orders_rejected", "Orders rejected (reject_mask != 0).", value=c.rejected
    )
    rejects = CounterMetricFamily(
        f"{NAMESPACE}_check_rejects",
        "Failing checks by RiskCheck (an order rejected by several counts in each).",
        labels=["check"],
    )
    warnings = CounterMetricFamily(
        f"{NAMESPACE}_check_warnings",
        "Soft warnings by RiskCheck (observed past warn_fraction x threshold; the order is accepted).",
        labels=["check"],
    )
    for check, label in CHECK_LABELS.items():
        rejects.add_metric([label], c.rejects.get(check, 0))
        warnings.add_metric([label], c.warnings.get(check, 0))
    for check in c.rejects.keys() - CHECK_LABELS.keys():  # a value this build has no name for
        rejects.add_metric([str(check)], c.rejects[check])
    for check in c.warnings.keys() - CHECK_LABELS.keys():
        warnings.add_metric([str(check)], c.warnings[check])
    yield rejects
    yield warnings


def rpc_families(rpcs: list[MethodSnapshot]) -> Iterator[Metric]:
    labels = ["service", "method"]
    seconds = HistogramMetricFamily(
        f"{NAMESPACE}_rpc_server_seconds",
        "Server time per RPC: a unary call's handler; each message of a bidi stream (request handed "
        "to the handler -> its reply).",
        labels=labels,
    )
    calls = CounterMetricFamily(f"{NAMESPACE}_rpc_calls", "RPCs handled (streams: streams).", labels=labels)
    errors = CounterMetricFamily(
        f"{NAMESPACE}_rpc_errors", "RPCs that ended with an error status or a failure.", labels=labels
    )
    cancelled = CounterMetricFamily(
        f"{NAMESPACE}_rpc_cancelled",
        "RPCs that ended cancelled (client gone, deadline, shutdown).",
        labels=labels,
    )
    sent = CounterMetricFamily(
        f"{NAMESPACE}_rpc_messages_sent", "Messages written on streaming RPCs.", labels=labels
    )
    for m in sorted(rpcs, key=lambda m: (m.service, m.method)):
        key = [m.service, m.method]
        calls.add_metric(key, m.calls)
        errors.add_metric(key, m.errors)
        cancelled.add_metric(key, m.cancelled)
        if m.timed:
            buckets, total = [], 0
            for label, n in zip(_BUCKET_LABELS, m.counts, strict=True):
                total += n
                buckets.append((label, total))
            seconds.add_metric(key, buckets, m.sum_ns / 1e9)
        if m.kind != "unary":
            sent.add_metric(key, m.messages_sent)
    yield seconds
    yield calls
    yield errors
    yield cancelled
    yield sent


def gauge_families(g: GaugeSet) -> Iterator[Metric]:
    for name, value in g.values.items():
        full = f"{NAMESPACE}_{g.prefix}_{name}"
        doc = g.docs.get(name) or f"{g.prefix} {name}"
        if name in g.counters:
            yield CounterMetricFamily(full, doc, value=value)
        else:
            yield GaugeMetricFamily(full, doc, value=value)


def breaker_family(breakers: list[tuple[str, str]]) -> Metric:
    fam = GaugeMetricFamily(
        f"{NAMESPACE}_breaker_state",
        "Circuit breaker state: 1 for the current state (closed, open, half_open), 0 for the others.",
        labels=["breaker", "state"],
    )
    for name, current in breakers:
        for state in BREAKER_STATES:
            fam.add_metric([name, state], 1.0 if state == current else 0.0)
    return fam
