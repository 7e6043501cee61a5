"""A journaled check applied again with its recorded outcome forced (engine.replay's CHECK records).

A replica (the feeder's) or a recovering engine cannot check again: the limits, dynamic thresholds,
risk model and clock that decided the original outcome are not reproducible. So the request's names
are interned and its input rows built by the check path's own code (engine.checking: the same
ids, in the same order), the accepted orders are opened without a check (kernel.replay
.open_recorded, which also takes the rate buckets' tokens), the counters move as a check moves them,
and the recorder is handed the recorded accepted flags and violations: a replica with a Recorder
emits the change records the original did.

A mixin of Engine (engine.core), on top of OrderChecks.
"""

from __future__ import annotations

import logging

import numpy as np

from ..kernel.replay import count_recorded, open_recorded
from ..outcomes import BatchError, CheckOutcome, Violations
from ..wire.request import OneOrder, Orders, SpanOrders, StrOrders, one_order_strs
from .checking import CHECK_ROWS_PER_ORDER, OrderChecks

log = logging.getLogger("riskd.engine")


def _length(orders: Orders) -> int:
    """The order count a reply must cover (a one-order StrOrders goes the one-order way)."""
    kind = orders.__class__
    if kind is OneOrder:
        return 1
    if kind is SpanOrders:
        return int(orders.counts[0])  # type: ignore[union-attr]
    return len(orders.columns[0])  # type: ignore[union-attr]


class ReplayedChecks(OrderChecks):
    """Engine.replay_check (see the module doc)."""

    def replay_check(
        self, orders: Orders, mask: np.ndarray, violations: Violations, now: float
    ) -> CheckOutcome:
        """Apply a journaled check: ``orders`` parsed from its request (wire.request
        .parse_check_request), ``mask`` (uint32) and ``violations`` from its reply, ``now`` the
        engine clock it ran at. Nothing is checked; returns the outcome as recorded, with this
        engine's state version. BatchError (nothing changed) when the reply does not cover the
        request's orders or the request is one the check would have refused.
        """
        n = _length(orders)
        if mask.shape[0] != n:
            raise BatchError("reject_mask", f"has {mask.shape[0]} entries for a request of {n} orders")
        if len(violations) and int(violations.order_index.max()) >= n:
            raise BatchError("violations", f"name an order past the request's {n}")
        kind = orders.__class__
        if kind is OneOrder:
            one: OneOrder = orders  # type: ignore[assignment]
            ids = one_order_strs(one)
            return self._replay_one(ids, one.side, one.quantity, one.price, one.key, mask, violations, now)
        if kind is SpanOrders:
            batch: SpanOrders = orders  # type: ignore[assignment]
            aid, sid, oi, of = self._span_rows(batch)
            out = self._replay_rows(oi, of, mask, violations, now)
            self._rec.checks_spans(batch, aid, sid, oi, of, out.accepted, out.violations)
            return out
        assert kind is StrOrders
        ids_, accounts, symbols, side, quantity, price = orders.columns  # type: ignore[union-attr]
        if len(ids_) == 1 and all(len(c) == 1 for c in (accounts, symbols, side, quantity, price)):
            names = (ids_[0], accounts[0], symbols[0])
            return self._replay_one(names, side[0], quantity[0], price[0], None, mask, violations, now)
        aid, sid, oi, of = self._str_rows(ids_, accounts, symbols, side, quantity, price)
        out = self._replay_rows(oi, of, mask, violations, now)
        self._rec.checks(ids_, accounts, symbols, aid, sid, oi, of, out.accepted, out.violations)
        return out

    def _replay_one(
        self,
        names: tuple[str, str, str],
        side: int,
        qty: float,
        price: float,
        key: int | None,
        mask: np.ndarray,
        violations: Violations,
        now: float,
    ) -> CheckOutcome:
        """One order, as _check_one (which both one-order check paths amount to) interns it."""
        self._rec.require_room(CHECK_ROWS_PER_ORDER)
        a, sy = self._one_row(*names, side, qty, price, key)
        one = self._one
        out = self._replay_rows(one.oi, one.of, mask, violations, now)
        self._rec.checks_one(names, a, sy, one.oi, one.of, out)
        return out

    def _replay_rows(
        self, oi: np.ndarray, of: np.ndarray, mask: np.ndarray, violations: Violations, now: float
    ) -> CheckOutcome:
        """The forced kernel on a batch's input rows, the counters and state version moved."""
        n = oi.shape[0]
        self._fit_books(n)
        self._fit_slots(n)
        mask = np.ascontiguousarray(mask, dtype=np.uint32)
        skipped = open_recorded(oi, of, mask, float(now), *self._kernel_args()[:6])
        if skipped:
            log.error(
                "replay: %d accepted order(s) of a journaled check could not be opened (id already "
                "known, no free slot, or a name this engine refused): it no longer matches the original",
                skipped,
            )
        self.check_counter.checked += n
        if len(violations):  # none: no rejects either (every reject writes a violation)
            count_recorded(
                violations.check.astype(np.int64),
                violations.warning.astype(np.bool_),
                mask,
                self.check_counter.counts,
            )
        self._state_version += 1
        return CheckOutcome(mask == 0, mask, violations, self._state_version)
