"""Journal input records (journal.records) applied to an Engine: the feeder's replica and recovery.

Each record holds a state-changing request's bytes as the server received them (and, for a check,
its reply's bytes) with the engine clock and wall clock it ran at. Replay sets the engine's clocks
from the record (``ReplayClock``; build the engine with ``Engine(config, clock=clock.now,
wall_clock=clock.wall)``) and then:

- CHECK: the request parsed by the servicer's parser, the reply's outcome FORCED
  (Engine.replay_check: accepted orders opened without a check, the recorder handed the recorded
  accepted flags and violations). What decided the outcome (limits, dynamic thresholds, risk model,
  the clock) is not reproducible, so it is never decided again.
- EXECUTIONS, PRICES, POSITIONS, TRADING_STATE: the servicer's own engine call on the parsed
  request; deterministic given the state and the clocks.
- LIMITS: the change record's names interned, the next book built at the recorded version and
  installed with the recorded change (version, who, action, ts: the limits' history rows).

An engine with a Recorder sink then emits the change records the original server did. Alerts are
not raised again for checks (the original raised them); other calls raise them when the engine has
an alert intake, as the servicer's calls do, so a replica should have none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from riskd.v1 import risk_pb2 as pb

from .. import changes as ch
from ..journal import codec, limitfiles
from ..journal import records as rec
from ..journal.reader import JournalDamage, read
from ..outcomes import NO_VIOLATIONS, Violations
from ..wire.request import parse_check_request, parse_report_request
from .core import Engine

log = logging.getLogger("riskd.replay")
_LIMITS_CHANGED = codec.TYPES[ch.LimitsChanged]


class ReplayClock:
    """The engine's two clocks, set from each record before it is applied."""

    __slots__ = ("_now", "_wall")

    def __init__(self, now: float = 0.0, wall: float = 0.0) -> None:
        self._now = now
        self._wall = wall

    def set(self, now: float, wall: float) -> None:
        self._now = now
        self._wall = wall

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall


def parse_reply(reply: bytes) -> tuple[np.ndarray, np.ndarray, Violations]:
    """CheckOrdersResponse bytes -> (accepted, reject_mask, violations); RecordError when they do
    not parse or disagree (an accepted order with a mask, a violation past the orders)."""
    try:
        result = pb.CheckOrdersResponse.FromString(reply).result
    except DecodeError as exc:
        raise rec.RecordError(f"reply does not parse: {exc}") from None
    accepted = np.array(result.accepted, dtype=np.bool_)
    mask = np.array(result.reject_mask, dtype=np.uint32)
    if accepted.shape != mask.shape or not np.array_equal(accepted, mask == 0):
        raise rec.RecordError("reply's accepted flags and reject masks disagree")
    vs = result.violations
    if not len(vs):
        return accepted, mask, NO_VIOLATIONS
    limit_id = np.empty(len(vs), dtype=object)
    limit_id[:] = [v.limit_id for v in vs]
    violations = Violations(
        order_index=np.array([v.order_index for v in vs], dtype=np.uint32),
        check=np.array([v.check for v in vs], dtype=np.int32),
        limit_id=limit_id,
        observed=np.array([v.observed for v in vs], dtype=np.float64),
        threshold=np.array([v.threshold for v in vs], dtype=np.float64),
        warning=np.array([v.warning for v in vs], dtype=np.bool_),
    )
    if int(violations.order_index.max()) >= mask.shape[0]:
        raise rec.RecordError("reply has a violation past its orders")
    return accepted, mask, violations


def _check(engine: Engine, r: rec.Input) -> None:
    _, mask, violations = parse_reply(r.reply)
    engine.replay_check(parse_check_request(r.body), mask, violations, r.now)


def _executions(engine: Engine, r: rec.Input) -> None:
    x = parse_report_request(r.body)  # as servicer.RiskServicer._report_wire
    engine.report_executions(
        x.client_order_id, x.type, x.quantity, x.price, account=x.account, symbol=x.symbol, side=x.side
    )


def _prices(engine: Engine, r: rec.Input) -> None:
    req = pb.UpdatePricesRequest.FromString(r.body)
    engine.update_prices(req.symbol, np.asarray(req.price, dtype=np.float64))


def _positions(engine: Engine, r: rec.Input) -> None:
    req = pb.LoadPositionsRequest.FromString(r.body)
    engine.load_positions(req.account, req.symbol, req.quantity)


def _trading_state(engine: Engine, r: rec.Input) -> None:
    req = pb.SetTradingStateRequest.FromString(r.body)
    engine.set_trading_state(req.account, req.state, req.reason)


def _limits(engine: Engine, r: rec.Input) -> None:
    change = codec.decode(_LIMITS_CHANGED, r.body)
    assert isinstance(change, ch.LimitsChanged)
    _install_change(engine, change)


def _install_change(engine: Engine, change: ch.LimitsChanged) -> None:
    upserted = change.upserted
    engine.stage_names(
        dict.fromkeys(lim.account for lim in upserted if lim.account),
        dict.fromkeys(lim.symbol for lim in upserted if lim.symbol),
        len(upserted) + len(change.deleted),
    )
    version = change.version or engine.limits.version + 1  # 0: a change made without LimitAdmin
    book = engine.build_limits(upserted, change.deleted, version)
    engine.install_limits(book, change)


_APPLY: dict[int, Callable[[Engine, rec.Input], None]] = {
    rec.CHECK: _check,
    rec.EXECUTIONS: _executions,
    rec.PRICES: _prices,
    rec.POSITIONS: _positions,
    rec.TRADING_STATE: _trading_state,
    rec.LIMITS: _limits,
}


def apply_input(
    engine: Engine,
    clock: ReplayClock,
    type_: int,
    payload: bytes,
    *,
    seq: int | None = None,
    side_dir: Path | None = None,
) -> None:
    """Apply one input record to engine (clocks set from its HEAD first).

    RecordError (naming seq and type) for a record this code cannot apply: an unknown type, a
    payload or request that does not parse. The engine's own refusals pass through unchanged:
    Backpressure (the sink is full; nothing changed, apply the record again later) and BatchError
    (the engine refuses a request the original accepted: the replica has diverged). ``side_dir``:
    the journal's folder, where a LIMITS_FILE record's side file is (journal.limitfiles).
    """
    where = f"journal record {seq if seq is not None else '?'} (type {rec.NAMES.get(type_, type_)})"
    apply = _APPLY.get(type_)
    if apply is None and type_ != rec.LIMITS_FILE:
        raise rec.RecordError(f"{where}: not an input record type")
    try:
        r = rec.decode(type_, payload)
        clock.set(r.now, r.wall)
        if apply is not None:
            apply(engine, r)
        elif side_dir is None:
            raise rec.RecordError("a LIMITS_FILE record needs the journal's folder (side_dir)")
        else:
            _install_change(engine, limitfiles.read(side_dir, r.body))
    except (rec.RecordError, DecodeError, codec.CodecError) as exc:
        raise rec.RecordError(f"{where}: {exc}") from exc


def replay_journal(engine: Engine, clock: ReplayClock, directory: Path, from_seq: int) -> int:
    """Apply every record of the journal in ``directory`` from ``from_seq`` on, in order; returns
    the last seq applied (from_seq - 1 when none). A torn tail ends the journal (its record was
    never acknowledged; start-up truncates it); other damage raises JournalDamage."""
    last = from_seq - 1
    try:
        for located in read(directory, from_seq):
            record = located.record
            apply_input(engine, clock, record.type, record.payload, seq=record.seq, side_dir=directory)
            last = record.seq
    except JournalDamage as exc:
        if not exc.torn:
            raise
        log.warning("journal replay stops at a torn tail after seq %d: %s", last, exc)
    return last


__all__ = ["ReplayClock", "apply_input", "parse_reply", "replay_journal"]
