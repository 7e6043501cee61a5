"""Pre-trade checks: the engine's check entry points, from str columns or parsed request bytes
(wire.request) to the check kernel and the outcome.

A mixin of Engine (engine.core), which owns the state these methods read: ``_s`` (State),
``_rec`` (the recorder), the interners, the limit book and the one-order scratch arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..alerts.intake import EV_CHECKS, AlertIntake
from ..interning import Interner
from ..kernel import layout as L
from ..kernel.checks import check_batch
from ..kernel.rows import order_rows, violation_columns
from ..kernel.single import NEEDS_PYTHON, check_one_order
from ..limits import MAX_NAME_LEN
from ..names import has_control
from ..outcomes import ACCEPTED_ONE, MASK_ZERO_ONE, NO_VIOLATIONS, CheckOutcome, Violations
from ..wire import SEED
from ..wire.request import OneOrder, Orders, SpanOrders, StrOrders, one_order_strs
from ..wire.spans import Utf8Spans
from .counts import CheckCounter
from .names import bad_names, hash_id, hash_ids

if TYPE_CHECKING:
    from ..interning import NameIndex
    from ..limitbook import LimitBook
    from .config import EngineConfig
    from .recorder import NullRecorder
    from .state import State

# Write-behind rows one checked order can produce, at most: an accepted order is one OrdersAccepted
# row plus a warning per kind (<= 10); a rejected one is a CheckEvents row per failing check (<= 14).
CHECK_ROWS_PER_ORDER = L.MAX_VIOLATIONS_PER_ORDER


class _OneOrderScratch:
    """Kernel input/output arrays reused by every call (the engine is not re-entrant)."""

    __slots__ = ("batch_vf", "batch_vi", "mask", "of", "oi", "vf", "vi")

    def __init__(self) -> None:
        self.oi = np.zeros((1, L.IN_I_FIELDS), dtype=np.int64)
        self.of = np.zeros((1, L.IN_F_FIELDS), dtype=np.float64)
        self.mask = np.zeros(1, dtype=np.uint32)
        self.vi = np.zeros((L.MAX_VIOLATIONS_PER_ORDER, L.V_FIELDS), dtype=np.int64)
        self.vf = np.zeros((L.MAX_VIOLATIONS_PER_ORDER, 2), dtype=np.float64)
        self.batch_vi = self.vi
        self.batch_vf = self.vf


class OrderChecks:
    """Engine's pre-trade checks (see the module doc)."""

    # Provided by Engine (engine.core); declared here for the type checker.
    config: EngineConfig
    accounts: Interner
    symbols: Interner
    _s: State
    _rec: NullRecorder
    _one: _OneOrderScratch
    _limits: LimitBook
    _state_version: int
    _clock: Callable[[], float]
    _wall: Callable[[], float]
    alert_intake: AlertIntake | None
    check_counter: CheckCounter
    _name_index: tuple[NameIndex, NameIndex] | None
    _kernel_state: tuple | None

    if TYPE_CHECKING:

        def _batch_len(self, what: str, **columns: Sequence | np.ndarray) -> int: ...
        def _check_lengths(self, what: str, lengths: dict[str, int]) -> int: ...
        def _fit_accounts(self) -> None: ...
        def _fit_symbols(self) -> None: ...
        def _fit_books(self, extra: int) -> None: ...
        def _fit_slots(self, n: int) -> None: ...

    def check_orders(
        self,
        client_order_id: Sequence[str],
        account: Sequence[str],
        symbol: Sequence[str],
        side: Sequence[int] | np.ndarray,
        quantity: Sequence[float] | np.ndarray,
        price: Sequence[float] | np.ndarray,
        now: float | None = None,
    ) -> CheckOutcome:
        """Check a batch in order; accepted orders become open orders."""
        if (
            len(client_order_id) == 1
            and len(account) == 1
            and len(symbol) == 1
            and len(side) == 1
            and len(quantity) == 1
            and len(price) == 1
        ):
            return self._check_one(
                client_order_id[0], account[0], symbol[0], side[0], quantity[0], price[0], now
            )
        aid, sid, oi, of = self._str_rows(client_order_id, account, symbol, side, quantity, price)
        out = self._check_columns(oi, of, aid, sid, now)
        self._rec.checks(client_order_id, account, symbol, aid, sid, oi, of, out.accepted, out.violations)
        if self.alert_intake is not None and len(out.violations):
            self._alert_checks(out, aid, sid, client_order_id)
        return out

    def _str_rows(
        self, client_order_id, account, symbol, side, quantity, price
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """check_orders' input rows (aid, sid, oi, of): room checked, names interned, ids hashed."""
        n = self._batch_len(
            "orders",
            client_order_id=client_order_id,
            account=account,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
        )
        self._rec.require_room(n * CHECK_ROWS_PER_ORDER)
        aid = self.accounts.lookup_many(account)
        if n and aid.min() < 0:
            self.accounts.intern_many(account, aid)
            self._fit_accounts()
        sid = self.symbols.lookup_many(symbol)
        if n and sid.min() < 0:
            self.symbols.intern_many(symbol, sid)
            self._fit_symbols()
        oi = np.empty((n, L.IN_I_FIELDS), dtype=np.int64)
        oi[:, L.IN_ACCOUNT] = aid
        oi[:, L.IN_SYMBOL] = sid
        oi[:, L.IN_SIDE] = side
        oi[:, L.IN_KEY] = hash_ids(client_order_id)
        bad_id = bad_names(client_order_id)
        if bad_id.any():
            oi[bad_id, L.IN_ACCOUNT] = -1
        of = np.empty((n, L.IN_F_FIELDS), dtype=np.float64)
        of[:, L.IN_QTY] = quantity
        of[:, L.IN_PRICE] = price
        return aid, sid, oi, of

    def check_parsed(self, orders: Orders, now: float | None = None) -> CheckOutcome:
        """check_orders on a parsed request (wire.request.parse_check_request); the same outcome."""
        kind = orders.__class__
        if kind is OneOrder:
            return self._check_one_order(orders, now)  # type: ignore[arg-type]
        if kind is SpanOrders:
            return self._check_spans(orders, now)  # type: ignore[arg-type]
        assert kind is StrOrders
        ids, accounts, symbols, side, quantity, price = orders.columns  # type: ignore[union-attr]
        return self.check_orders(ids, accounts, symbols, side, quantity, price, now=now)

    def _check_spans(self, batch: SpanOrders, now: float | None) -> CheckOutcome:
        """An ASCII batch parsed from bytes: names looked up from their spans, no Python strs."""
        aid, sid, oi, of = self._span_rows(batch)
        out = self._check_columns(oi, of, aid, sid, now)
        self._rec.checks_spans(batch, aid, sid, oi, of, out.accepted, out.violations)
        if self.alert_intake is not None and len(out.violations):
            self._alert_checks(out, aid, sid, Utf8Spans(batch.data, batch.off[0], batch.length[0]))
        return out

    def _span_rows(self, batch: SpanOrders) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """_check_spans' input rows (aid, sid, oi, of): room checked, names interned from spans."""
        c = batch.counts
        n = self._check_lengths(
            "orders",
            {
                "client_order_id": c[0],
                "account": c[1],
                "symbol": c[2],
                "side": c[3],
                "quantity": c[4],
                "price": c[5],
            },
        )
        self._rec.require_room(n * CHECK_ROWS_PER_ORDER)
        data, buf, off, length = batch.data, batch.buf, batch.off, batch.length
        aid = self._wire_ids(self.accounts, data, buf, off[1], length[1], n)
        self._fit_accounts()
        sid = self._wire_ids(self.symbols, data, buf, off[2], length[2], n)
        self._fit_symbols()
        oi = np.empty((n, L.IN_I_FIELDS), dtype=np.int64)
        of = np.empty((n, L.IN_F_FIELDS), dtype=np.float64)
        # ASCII only, so an id's length in bytes is its length in characters
        order_rows(
            oi, of, aid, sid, batch.side, batch.keys, length[0], batch.quantity, batch.price, MAX_NAME_LEN
        )
        return aid, sid, oi, of

    def _check_one_order(self, order: OneOrder, now: float | None) -> CheckOutcome:
        """One parsed order in one numba call (kernel.single.check_one_order: name lookups and check).

        Past a name the byte index does not hold yet or arrays that must grow, the order takes
        _check_one (which interns and grows), and the index is refreshed for the next one.
        """
        self._rec.require_room(CHECK_ROWS_PER_ORDER)
        one = self._one
        if self._name_index is None:
            self.index_names()
        accounts, symbols = self._name_index  # type: ignore[misc]
        status, nv, a, sy = check_one_order(
            order.data, order.fields, SEED, *accounts, *symbols, MAX_NAME_LEN, self._now(now),
            one.oi, one.of, one.mask, one.vi, one.vf, *self._kernel_args(),
        )  # fmt: skip
        if status != NEEDS_PYTHON:
            out = self._one_outcome(nv)
            self._rec.checks_one_wire(order, a, sy, one.oi, one.of, out)
            if nv and self.alert_intake is not None:
                self._alert_checks(out, a, sy, order)
            return out
        client_order_id, account, symbol = one_order_strs(order)
        out = self._check_one(
            client_order_id, account, symbol, order.side, order.quantity, order.price, now, order.key
        )
        self._name_index = None
        return out

    def index_names(self) -> None:
        """Build the interners' byte indexes for the single-order path now (start-up), so the
        first one-order request does not pay for indexing every recovered name (~3 ms for 11,000)."""
        self._name_index = (self.accounts.name_index(), self.symbols.name_index())

    def _wire_ids(self, interner: Interner, data: bytes, buf, off, length, n: int) -> np.ndarray:
        """Ids of the names at the spans; unknown ones are decoded and interned (the slow path)."""
        ids, misses = interner.lookup_spans(buf, off, length, n)
        if misses:
            for i in np.flatnonzero(ids < 0).tolist():
                o = int(off[i])
                ids[i] = interner.intern(data[o : o + int(length[i])].decode())
        return ids

    def _check_columns(self, oi, of, aid, sid, now) -> CheckOutcome:
        """Run the check kernel on a batch's input rows (oi, of) and collect its outcome (the caller
        records it)."""
        n = oi.shape[0]
        self._fit_books(n)
        self._fit_slots(n)
        mask = np.empty(n, dtype=np.uint32)
        vi, vf = self._violation_scratch(n)
        nv = check_batch(oi, of, self._now(now), mask, vi, vf, *self._kernel_args())
        self.check_counter.checked += n
        violations = self._violations(vi, vf, nv) if nv else NO_VIOLATIONS
        accepted = mask == 0
        self._state_version += 1
        return CheckOutcome(accepted, mask, violations, self._state_version)

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _kernel_args(self) -> tuple:
        """check_batch's state and limit arguments (cached: rebuilt after arrays or limits change)."""
        args = self._s.kernel_args
        if args is None:
            s, lb = self._s, self._limits
            args = self._s.kernel_args = (
                *s.groups(),
                lb.tables,
                s.var_group(),
                self.config.max_order_notional,
            )
        return args

    def _violation_scratch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Reused kernel output buffers for n orders (a fresh 14n-row pair per batch costs an mmap)."""
        rows = n * L.MAX_VIOLATIONS_PER_ORDER
        one = self._one
        if one.batch_vi.shape[0] < rows:
            one.batch_vi = np.empty((rows, L.V_FIELDS), dtype=np.int64)
            one.batch_vf = np.empty((rows, 2), dtype=np.float64)
        return one.batch_vi, one.batch_vf

    def _violations(self, vi: np.ndarray, vf: np.ndarray, nv: int) -> Violations:
        """Copy the kernel's first nv violation rows out of the (reused) buffers and count them
        (engine.counts), in one numba pass."""
        order, check, limit, observed, threshold, warning = violation_columns(
            vi, vf, nv, float(self.config.max_open_orders), self.check_counter.counts
        )
        return Violations(order, check, self._limits.limit_ids(limit), observed, threshold, warning)

    def _check_one(
        self,
        client_order_id: str,
        account: str,
        symbol: str,
        side: int,
        qty: float,
        price: float,
        now: float | None,
        key: int | None = None,
    ) -> CheckOutcome:
        """check_orders for one order: the same kernel on reused one-row arrays, no per-column numpy.

        A single-order RPC is latency-bound; the batch path's fixed cost (a dozen small numpy
        allocations and vectorised passes) is most of its time, so this path skips them. ``key``:
        the id's hash when the caller has it (wire.parse_one hashed it).
        """
        self._rec.require_room(CHECK_ROWS_PER_ORDER)
        a, sy = self._one_row(client_order_id, account, symbol, side, qty, price, key)
        one = self._one
        oi, of = one.oi, one.of
        self._fit_books(1)
        self._fit_slots(1)
        nv = check_batch(oi, of, self._now(now), one.mask, one.vi, one.vf, *self._kernel_args())
        out = self._one_outcome(nv)
        self._rec.checks_one((client_order_id, account, symbol), a, sy, oi, of, out)
        if nv and self.alert_intake is not None:
            self._alert_checks(out, a, sy, (client_order_id,))
        return out

    def _one_row(
        self, client_order_id: str, account: str, symbol: str, side: int, qty: float, price: float, key
    ) -> tuple[int, int]:
        """_check_one's input row in the one-order scratch (self._one.oi, .of): names interned;
        (account id, symbol id), the account id -1 when the order id is invalid (as in the row)."""
        a = self.accounts.get(account)
        if a < 0:
            a = self.accounts.intern(account)
            self._fit_accounts()
        sy = self.symbols.get(symbol)
        if sy < 0:
            sy = self.symbols.intern(symbol)
            self._fit_symbols()
        if not client_order_id or len(client_order_id) > MAX_NAME_LEN or has_control(client_order_id):
            a = -1
        one = self._one
        oi = one.oi
        oi[0, L.IN_ACCOUNT] = a
        oi[0, L.IN_SYMBOL] = sy
        oi[0, L.IN_SIDE] = side
        oi[0, L.IN_KEY] = hash_id(client_order_id) if key is None else key
        of = one.of
        of[0, L.IN_QTY] = qty
        of[0, L.IN_PRICE] = price
        return a, sy

    def _alert_checks(self, out: CheckOutcome, aid, sid, ids) -> None:
        """Hand a batch's violations to the alert intake: one tuple, nothing decoded or built
        (alerts.pipeline reads the names later, off the request's path)."""
        assert self.alert_intake is not None
        v = out.violations
        self.alert_intake.put((EV_CHECKS, len(v), self._wall(), v, aid, sid, ids))

    def _one_outcome(self, nv: int) -> CheckOutcome:
        """The outcome of the one-order kernel call just made on self._one (nv violations)."""
        one = self._one
        self._state_version += 1
        self.check_counter.checked += 1
        if nv == 0:  # accepted without warnings (every reject writes a violation)
            return CheckOutcome(ACCEPTED_ONE, MASK_ZERO_ONE, NO_VIOLATIONS, self._state_version)
        mask = one.mask.copy()
        return CheckOutcome(mask == 0, mask, self._violations(one.vi, one.vf, nv), self._state_version)
