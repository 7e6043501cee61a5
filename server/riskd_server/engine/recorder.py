"""Engine events -> change records for the write-behind sink (store/), or nothing without one.

The engine reports every change to its recorder unconditionally; ``NullRecorder`` (no sink: tests,
benchmarks, a server run without a database) ignores them, so the engine has no ``if sink`` of its
own. A recorder also answers whether the sink has room for a request's rows (``require_room``)
before the engine changes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from .. import changes as ch
from ..interning import Interner
from ..kernel import layout as L
from ..outcomes import Backpressure, CheckOutcome, Violations
from ..wire.request import OneOrder, SpanOrders, one_order_strs
from ..wire.spans import Utf8Spans
from .state import State


class ChangeSink(Protocol):
    """Where change records go (the store's write-behind queue)."""

    def has_room(self, rows: int = 0) -> bool: ...

    def put(self, change: ch.Change) -> None: ...


def take(seq: Sequence[str], idx: np.ndarray) -> np.ndarray:
    """seq[idx] as an object array (seq may be a list, a protobuf repeated field or Utf8Spans)."""
    if isinstance(seq, Utf8Spans):
        return seq.take(idx)
    out = np.empty(idx.shape[0], dtype=object)
    if idx.shape[0]:
        out[:] = [seq[i] for i in idx.tolist()] if idx.shape[0] != len(seq) else list(seq)
    return out


class NullRecorder:
    """No sink: every event is dropped on purpose (nothing is persisted), and there is always room."""

    sink: ChangeSink | None = None

    def require_room(self, rows: int) -> None:
        pass

    def checks(self, ids, accounts, symbols, aid, sid, oi, of, accepted, violations: Violations) -> None:
        pass

    def checks_spans(self, batch: SpanOrders, aid, sid, oi, of, accepted, violations: Violations) -> None:
        pass

    def checks_one(self, names: tuple[str, str, str], a: int, sy: int, oi, of, out: CheckOutcome) -> None:
        pass

    def checks_one_wire(self, order: OneOrder, a: int, sy: int, oi, of, out: CheckOutcome) -> None:
        pass

    def executions(self, ids, types, xf, applied, errors, books, open_after, status) -> None:
        pass

    def books(self, books: np.ndarray) -> None:
        pass

    def marks(self, sids: np.ndarray) -> None:
        pass

    def limits(self, change: ch.LimitsChanged) -> None:
        pass

    def trading_state(self, account: str, state: int, reason: str) -> None:
        pass


NULL_RECORDER = NullRecorder()


class Recorder(NullRecorder):
    """Turns engine events into change records put on ``sink``."""

    sink: ChangeSink

    def __init__(
        self,
        sink: ChangeSink,
        state: State,
        accounts: Interner,
        symbols: Interner,
        wall_clock: Callable[[], float],
    ) -> None:
        self.sink = sink
        self._s = state
        self._accounts = accounts
        self._symbols = symbols
        self._wall = wall_clock

    def require_room(self, rows: int) -> None:
        if not self.sink.has_room(rows):
            raise Backpressure("persistence backlog is full; refusing new work until it drains")

    def checks(self, ids, accounts, symbols, aid, sid, oi, of, accepted, violations: Violations) -> None:
        """A checked batch: its accepted orders (OrdersAccepted) and violations (CheckEvents)."""
        sink = self.sink
        ts = self._wall()
        if accepted.any():
            idx = np.flatnonzero(accepted)
            marks = self._s.sym[sid[idx]]
            marks = np.where(np.isnan(marks[:, L.S_PRICE]), marks[:, L.S_FILL], marks[:, L.S_PRICE])
            limit_px = of[idx, L.IN_PRICE]
            sink.put(
                ch.OrdersAccepted(
                    ts=ts,
                    client_order_id=take(ids, idx),
                    account=self._accounts.names_of(aid[idx]),
                    symbol=self._symbols.names_of(sid[idx]),
                    side=oi[idx, L.IN_SIDE].astype(np.int8),
                    quantity=of[idx, L.IN_QTY],
                    price=np.where(limit_px > 0, limit_px, marks),
                )
            )
        if len(violations):
            order = violations.order_index.astype(np.int64)
            sink.put(
                ch.CheckEvents(
                    ts=ts,
                    client_order_id=take(ids, order),
                    account=take(accounts, order),
                    symbol=take(symbols, order),
                    check=violations.check.astype(np.int16),
                    limit_id=violations.limit_id,
                    observed=violations.observed,
                    threshold=violations.threshold,
                    warning=violations.warning,
                )
            )

    def checks_spans(self, batch: SpanOrders, aid, sid, oi, of, accepted, violations: Violations) -> None:
        """checks for a batch parsed from bytes: its names are spans of the request."""
        data, off, length = batch.data, batch.off, batch.length
        ids = Utf8Spans(data, off[0], length[0], batch.keys)
        accounts = Utf8Spans(data, off[1], length[1])
        symbols = Utf8Spans(data, off[2], length[2])
        self.checks(ids, accounts, symbols, aid, sid, oi, of, accepted, violations)

    def checks_one(self, names: tuple[str, str, str], a: int, sy: int, oi, of, out: CheckOutcome) -> None:
        """checks for one order (names: its id, account and symbol)."""
        aid, sid = np.array([a], dtype=np.int64), np.array([sy], dtype=np.int64)
        client_order_id, account, symbol = names
        self.checks([client_order_id], [account], [symbol], aid, sid, oi, of, out.accepted, out.violations)

    def checks_one_wire(self, order: OneOrder, a: int, sy: int, oi, of, out: CheckOutcome) -> None:
        self.checks_one(one_order_strs(order), a, sy, oi, of, out)

    def executions(self, ids, types, xf, applied, errors, books, open_after, status) -> None:
        """Record a batch of reports; books, open_after and status are apply_executions' per-report
        outputs. A fill of an unknown order moves a position but updates no order row."""
        sink = self.sink
        ts = self._wall()
        sink.put(
            ch.ExecutionsReported(
                ts=ts,
                client_order_id=take(ids, np.arange(len(ids))),
                exec_type=types.astype(np.int8),
                quantity=xf[:, 0].copy(),
                price=xf[:, 1].copy(),
                applied=applied,
                error=errors,
            )
        )
        idx = np.flatnonzero(applied)
        if not idx.shape[0]:
            return
        orders = idx[status[idx] != L.X_UNKNOWN_FILLED]
        if orders.shape[0]:
            remaining = open_after[orders]
            still_open = remaining >= 0.0
            sink.put(
                ch.OrdersUpdated(
                    ts=ts,
                    client_order_id=take(ids, orders),
                    open_quantity=np.where(still_open, remaining, 0.0),
                    status=np.where(still_open, ch.ORDER_OPEN, ch.ORDER_CLOSED).astype(np.int8),
                )
            )
        fills = idx[types[idx] == 1]
        if fills.shape[0]:
            filled = books[fills]
            self.books(filled)
            self.marks(np.unique(self._s.book_pair[filled, L.BP_SYMBOL]))

    def books(self, books: np.ndarray) -> None:
        """Positions of these books (PositionsChanged)."""
        s = self._s
        if not books.shape[0]:
            return
        self.sink.put(
            ch.PositionsChanged(
                account=self._accounts.names_of(s.book_pair[books, L.BP_ACCOUNT]),
                symbol=self._symbols.names_of(s.book_pair[books, L.BP_SYMBOL]),
                quantity=s.book[books, L.B_POS].copy(),
            )
        )

    def marks(self, sids: np.ndarray) -> None:
        """Marks of these symbols (MarksChanged)."""
        if not sids.shape[0]:
            return
        self.sink.put(
            ch.MarksChanged(
                symbol=self._symbols.names_of(sids),
                price=self._s.sym[sids, L.S_PRICE].copy(),
                last_fill_price=self._s.sym[sids, L.S_FILL].copy(),
            )
        )

    def limits(self, change: ch.LimitsChanged) -> None:
        self.sink.put(change)

    def trading_state(self, account: str, state: int, reason: str) -> None:
        self.sink.put(ch.TradingStateChanged(ts=self._wall(), account=account, state=state, reason=reason))
