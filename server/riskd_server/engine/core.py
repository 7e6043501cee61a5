"""The risk engine: owns the columnar state and applies batches to it through the kernels.

Every public method is synchronous and runs to completion without awaiting, so concurrent RPCs on
one event loop are serialised on the state (linearizable). Persistence leaves through the recorder
(engine.recorder) as immutable change records for ``sink`` (a bounded write-behind queue); the
engine never touches a database. The pre-trade checks are in engine.checking, recovery in
engine.recovery, the state arrays and their growth in engine.state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .. import changes as ch
from ..alerts.intake import EV_EXECUTIONS, EV_LIMITS, EV_TRADING_STATE, AlertIntake
from ..dynamic import VolEwma, Vols, account_vols, model_symbol_ids, refreshed, symbol_vols
from ..interning import Interner
from ..kernel import layout as L
from ..kernel._hashtable import ht_find
from ..kernel.checks import book_key
from ..kernel.executions import apply_executions, load_positions, unknown_ids
from ..kernel.exposure import UNKNOWN_SYMBOL as _UNKNOWN_SYMBOL
from ..kernel.exposure import first_bad_price, recompute_exposure, set_prices
from ..kernel.var import marks0, var_recompute, var_remarks
from ..limitbook import LimitBook, apply_changes, compile_limits
from ..limits import MAX_VAR, Limit, validate_limits
from ..names import control_flags
from ..outcomes import EXEC_MESSAGES, AccountExposure, BatchError, ExecOutcome
from ..risk.model import RiskModel
from ..risk.var_tables import FactorForm, check_bound, empty_rows, factor_form, symbol_rows
from .books import AccountBooks, BookLists, marks_of
from .checking import _OneOrderScratch
from .config import EngineConfig
from .counts import CheckCounter
from .forced import ReplayedChecks
from .names import bad_names, hash_ids, name_problem
from .recorder import NULL_RECORDER, ChangeSink, NullRecorder, Recorder, take
from .recovery import restore
from .state import State

SIDE_BUY = 1
SIDE_SELL = 2
STATE_ACTIVE = 1
STATE_HALTED = 3
# apply_executions' origin when no report names its order (writable: a read-only array would be
# another numba signature to compile), and no rows for Engine._origin's refusals.
NO_ORIGIN = np.full((0, 3), -1, dtype=np.int64)
_NO_ROWS = np.empty(0, dtype=np.int64)
# Execution statuses (kernel.layout X_*) that raise an alert: an overfill or a late fill always, a
# report of an unknown order only when it is a fill (a cancel of an order riskd rejected is routine).
_ALERT_ANY = np.zeros(L.X_ORIGIN_FULL + 1, dtype=bool)
_ALERT_ANY[[L.X_OVERFILL, L.X_LATE_FILL]] = True
_ALERT_FILL = np.zeros(L.X_ORIGIN_FULL + 1, dtype=bool)
_ALERT_FILL[[L.X_UNKNOWN_FILLED, L.X_UNKNOWN, L.X_BAD_ORIGIN, L.X_ORIGIN_FULL]] = True

log = logging.getLogger("riskd.engine")


def _floats(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


class Engine(ReplayedChecks):
    """Risk state plus the operations on it; see the README for the exact check semantics."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        sink: ChangeSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = cfg = config or EngineConfig()
        self._clock = clock
        self._wall = wall_clock
        self.accounts = Interner("account", cfg.max_accounts)
        self.symbols = Interner("symbol", cfg.max_symbols)
        self._s = State.allocate(cfg)
        self._rec: NullRecorder = NULL_RECORDER
        self.sink = sink
        self._state_version = 0
        self._limits = compile_limits({}, self.accounts.by_name, self.symbols.by_name, version=0)
        self._dynamic = cfg.dynamic()
        self._ewma = VolEwma(cfg.vol_ewma_lambda)  # marks' EWMA vol per symbol (dynamic limits)
        self._model_ids: tuple[RiskModel | None, np.ndarray | None] = (None, None)
        # Called (on the event loop) after whatever moves volatilities or exposure weights: prices,
        # positions, the risk model. LimitAdmin schedules the dynamic-threshold refresh from it.
        self.vol_listener: Callable[[], None] | None = None
        self._one = _OneOrderScratch()
        # The interners' byte indexes (accounts, symbols) for _check_one_order; snapshots, so a
        # stale pair only misses names added since (interning.NameIndex).
        self._name_index = None
        # The alert path's intake (alerts.intake): events go out there, never waited on; None = off.
        self.alert_intake: AlertIntake | None = None
        # Orders checked and violations by check, for metrics (engine.counts: near-zero cost).
        self.check_counter = CheckCounter()
        # The VaR risk model in force (risk.model), swapped whole by set_risk_model; None = none yet.
        self.risk_model: RiskModel | None = None
        # Per-account book lists for account_books (a derived index; books are never removed).
        self._book_lists = BookLists()
        # Called with (change, version) before a limit book is swapped in (the server's journal:
        # journal.tap.JournalTap.limits); raising (Backpressure) leaves the old book in force.
        self.on_install_limits: Callable[[ch.LimitsChanged, int], object] | None = None
        self._var_form: FactorForm | None = None  # the model in the kernel's factor form
        self._var_filled = 0  # engine symbols whose VaR table row is filled from the model

    @property
    def sink(self) -> ChangeSink | None:
        """Where changes go (the store's write-behind); None records nothing (NullRecorder)."""
        return self._rec.sink

    @sink.setter
    def sink(self, sink: ChangeSink | None) -> None:
        self._rec = (
            NULL_RECORDER
            if sink is None
            else Recorder(sink, self._s, self.accounts, self.symbols, self._wall)
        )

    def set_risk_model(self, model: RiskModel | None, form: FactorForm | None = None) -> None:
        """Install a risk model for the MAX_VAR check (kernel.var), or None to remove it.

        Synchronous, between two engine operations, so no check sees half a model: the model's
        factor form (``form``, from risk.var_tables.factor_form, which a caller runs in a worker
        thread; computed here when not given: O(n k) for a factor model, a pivoted Cholesky for a
        sample one), one table row per engine symbol (O(symbols x k)) and every account's terms
        recomputed from the books (O(books x k); ~10 ms at 100,000 books, k = 20). Raises
        VarModelTooLarge (nothing changed) when the per-account terms would pass their bound.
        """
        s = self._s
        if model is None:
            self.risk_model, self._var_form = None, None
            s.vctl[:] = 0.0
            s.vsym = np.zeros((0, L.VS_EXTRA), dtype=np.float64)
            s.vacct = np.zeros((0, L.VA_F), dtype=np.float64)
            s.kernel_args = None
            self._warn_unpriced()
            self._vols_moved()
            return
        if form is None or form.version != model.version:
            form = factor_form(model)
        check_bound(form, self.config.max_accounts)
        k = form.k
        default = model.default_vol * model.default_vol
        vctl = np.array([1.0, model.scale, k, default, s.vctl[L.VC_VERSION] + 1], dtype=np.float64)
        vsym = empty_rows(s.sym.shape[0], k, default)
        n_sym = len(self.symbols)
        symbol_rows(form, model, self.symbols.names_of(np.arange(n_sym, dtype=np.int64)), vsym[:n_sym])
        vacct = np.zeros((s.acct.shape[0], L.VA_F + 2 * k), dtype=np.float64)
        s.vsym, s.vacct, s.vctl = vsym, vacct, vctl  # swapped together: the next kernel call sees all
        s.kernel_args = None
        self.risk_model, self._var_form, self._var_filled = model, form, n_sym
        var_recompute(*s.groups()[:3], s.var_group())
        self._vols_moved()  # dynamic limits read the model's vols

    def _vols_moved(self) -> None:
        if self.vol_listener is not None:
            self.vol_listener()

    def _fill_var_symbols(self) -> None:
        """Table rows for symbols interned since the model was installed (by name from the model)."""
        n = len(self.symbols)
        model, form = self.risk_model, self._var_form
        if model is None or form is None or n <= self._var_filled:
            return
        ids = np.arange(self._var_filled, n, dtype=np.int64)
        symbol_rows(form, model, self.symbols.names_of(ids), self._s.vsym[self._var_filled : n])
        self._var_filled = n

    def _warn_unpriced(self) -> None:
        """A MAX_VAR limit without a model rejects every order of its accounts (fail closed):
        say so loudly whenever the limits or the model change into that state."""
        # An enabled MAX_VAR limit (account-level: no symbol) holds its slot in the any/account
        # column of the table: O(accounts), not a scan of every limit (~0.1 s on the loop at 1 M).
        book = self._limits
        if self.risk_model is None and (book.any[MAX_VAR] >= 0 or (book.by_account[:, MAX_VAR] >= 0).any()):
            log.warning(
                "MAX_VAR limits are in force but no risk model is installed: every order of an account "
                "under one is rejected MAX_VAR (observed = inf) until a model is built"
            )

    def account_var(self, account: str) -> tuple[float, np.ndarray, float]:
        """(VaR, f = Bᵀw, specific sum) of an account from the kernel's cached terms; (0, [], 0)
        without a model or for an unknown account."""
        s = self._s
        a = self.accounts.get(account)
        if self.risk_model is None or a < 0 or a >= s.vacct.shape[0]:
            return 0.0, np.zeros(0), 0.0
        k = int(s.vctl[L.VC_K])
        row = s.vacct[a]
        f = row[L.VA_F : L.VA_F + k] + row[L.VA_F + k : L.VA_F + 2 * k]
        v = float(row[L.VA_V])
        return (
            float(s.vctl[L.VC_SCALE]) * float(np.sqrt(max(v, 0.0))),
            f,
            float(row[L.VA_SPEC] + row[L.VA_SPEC_LO]),
        )

    # ------------------------------------------------------------------ queries

    def now(self) -> float:
        """The engine's clock (rate buckets); the servicer reads it once per journaled check."""
        return self._clock()

    @property
    def state_version(self) -> int:
        return self._state_version

    @property
    def limits(self) -> LimitBook:
        return self._limits

    def position(self, account: str, symbol: str) -> float:
        a, s_ = self.accounts.get(account), self.symbols.get(symbol)
        if a < 0 or s_ < 0:
            return 0.0
        b = ht_find(self._s.book_ht, book_key(a, s_))
        return float(self._s.book[b, L.B_POS]) if b >= 0 else 0.0

    def open_quantity(self, client_order_id: str) -> float:
        slot = ht_find(self._s.ord_ht, hash_ids([client_order_id])[0])
        if slot < 0:  # unknown, or closed (layout.ORDER_CLOSED_BASE)
            return 0.0
        return float(self._s.ordf[slot, L.OF_OPEN])

    def open_orders(self) -> int:
        return int(self._s.ctr[L.C_OPEN])

    def trading_state(self, account: str = "") -> int:
        if not account:
            return int(self._s.ctr[L.C_FIRM_TRADING]) or STATE_ACTIVE
        a = self.accounts.get(account)
        return int(self._s.acct[a, L.A_TRADING]) or STATE_ACTIVE if a >= 0 else STATE_ACTIVE

    def list_limits(self, account: str = "", symbol: str = "", kind: int = 0) -> list[Limit]:
        return [
            lim
            for _, lim in sorted(self._limits.limits.items())
            if (not account or lim.account == account)
            and (not symbol or lim.symbol == symbol)
            and (not kind or lim.kind == kind)
        ]

    def exposure(self, account: str) -> AccountExposure:
        """The account's exposure sums as the checks read them (zeros for an unknown account)."""
        a = self.accounts.get(account)
        if a < 0 or a >= self._s.acct.shape[0]:
            return AccountExposure(0.0, 0.0, 0.0, 0.0, 0)
        row = self._s.acct[a]
        return AccountExposure(
            position_gross=float(row[L.A_POS_GROSS] + row[L.A_POS_GROSS_LO]),
            position_net=float(row[L.A_POS_NET] + row[L.A_POS_NET_LO]),
            open_gross=float(row[L.A_OPEN_GROSS] + row[L.A_OPEN_GROSS_LO]),
            open_net=float(row[L.A_OPEN_NET] + row[L.A_OPEN_NET_LO]),
            open_orders=int(row[L.A_OPEN_COUNT]),
        )

    def account_books(self, account: str) -> AccountBooks:
        """The account's books (symbol ids, position, open buy and sell, mark) as private copies;
        empty for an unknown account. O(new books since the last read + the account's books)."""
        return self._book_lists.books_of(self._s, self.accounts.get(account))

    def symbol_marks(self, symbol_ids: np.ndarray) -> np.ndarray:
        """Marks of symbol ids as the checks price a market order (NaN: none, or id -1)."""
        return marks_of(self._s, symbol_ids)

    def recompute_exposure(self) -> None:
        """Rebuild every account's exposure sums from the open orders and positions (recovery; the
        tests' oracle for the incremental sums)."""
        s = self._s
        recompute_exposure(*s.groups())
        var_recompute(*s.groups()[:3], s.var_group())

    def stats(self) -> dict[str, int]:
        c = self._s.ctr
        return {
            "accounts": len(self.accounts),
            "symbols": len(self.symbols),
            "books": int(c[L.C_BOOKS]),
            "open_orders": int(c[L.C_OPEN]),
            "retained_closed_orders": int(c[L.C_RING_COUNT]),
            "order_slots": int(c[L.C_SLOTS]),
            "limits": len(self._limits.limits),
            "limits_version": self._limits.version,
            "state_version": self._state_version,
        }

    # ------------------------------------------------------------------ executions

    def report_executions(
        self,
        client_order_id: Sequence[str],
        exec_type: Sequence[int] | np.ndarray,
        quantity: Sequence[float] | np.ndarray,
        price: Sequence[float] | np.ndarray,
        now: float | None = None,
        account: Sequence[str] = (),
        symbol: Sequence[str] = (),
        side: Sequence[int] | np.ndarray = (),
    ) -> ExecOutcome:
        """Apply fills, cancels, venue rejects and expiries in order.

        account, symbol and side are optional columns (all empty: not given) naming each report's
        order; only a fill of an unknown id uses them, to move that position (see _origin).
        """
        columns = dict(client_order_id=client_order_id, type=exec_type, quantity=quantity, price=price)
        named = bool(len(account) or len(symbol) or len(side))
        if named:
            columns.update(account=account, symbol=symbol, side=side)
        n = self._batch_len("executions", **columns)
        self._rec.require_room(n * 4)
        keys = hash_ids(client_order_id)
        types = np.asarray(exec_type, dtype=np.int64)
        xf = np.empty((n, 2), dtype=np.float64)
        xf[:, 0] = quantity
        xf[:, 1] = price
        status = np.empty(n, dtype=np.int64)
        books = np.empty(n, dtype=np.int64)
        open_after = np.empty(n, dtype=np.float64)
        origin, refused, refusal = NO_ORIGIN, _NO_ROWS, _NO_ROWS
        if named:
            origin, refused, refusal = self._origin(keys, types, xf, account, symbol, side)
        accounts, symbols, books_, orders, _, var = self._kernel_args()[:6]
        apply_executions(
            keys, types, xf, origin, accounts, symbols, books_, orders, var,
            self.config.max_order_notional, status, books, open_after,
        )  # fmt: skip
        status[refused] = refusal  # the kernel answered X_UNKNOWN: _origin gave them no account
        applied = status <= L.X_UNKNOWN_FILLED
        errors = EXEC_MESSAGES[status]
        self._state_version += 1
        self._rec.executions(client_order_id, types, xf, applied, errors, books, open_after, status)
        if self.alert_intake is not None and status.any():
            self._alert_executions(client_order_id, types, status, books, origin)
        return ExecOutcome(applied, errors.tolist(), self._state_version, status)

    def _alert_executions(self, ids, types, status, books, origin) -> None:
        """Overfills, late fills and fills of unknown orders go to the alert intake (account and
        symbol from the order's book, or for an unknown order from what the report named)."""
        # _ALERT_ANY[s]: alerted for any report; _ALERT_FILL[s]: for a fill only (unknown orders).
        rows = np.flatnonzero(_ALERT_ANY[status] | (_ALERT_FILL[status] & (types == 1)))
        if not rows.shape[0]:
            return
        b = books[rows]
        known = b >= 0
        aid = np.full(rows.shape[0], -1, dtype=np.int64)
        sid = np.full(rows.shape[0], -1, dtype=np.int64)
        aid[known] = self._s.book_pair[b[known], L.BP_ACCOUNT]
        sid[known] = self._s.book_pair[b[known], L.BP_SYMBOL]
        if origin.shape[0]:
            named = ~known
            aid[named] = origin[rows[named], 0]
            sid[named] = origin[rows[named], 1]
        assert self.alert_intake is not None
        self.alert_intake.put(
            (EV_EXECUTIONS, int(rows.shape[0]), self._wall(), take(ids, rows), status[rows], aid, sid)
        )

    def _origin(
        self, keys: np.ndarray, types: np.ndarray, xf: np.ndarray, account, symbol, side
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """apply_executions' origin rows, and the rows it must refuse with their status.

        Only fills of ids the order table lacks are looked at (a known order's own book wins over
        what a report names), so a batch for known orders interns nothing. Of those, a report whose
        account and symbol are empty and side unspecified names nothing and stays X_UNKNOWN; one
        that names its order partly or with an invalid name or side is X_BAD_ORIGIN; then an invalid
        quantity or price is X_BAD_FILL, and a name past the interner's capacity X_ORIGIN_FULL.
        The rest get their account and symbol interned and room for a book each, here, so the
        kernel only finds or opens books.
        """
        n = keys.shape[0]
        fills = np.flatnonzero(types == 1)
        rows = fills[unknown_ids(keys, fills, self._s.ord_ht)]
        sides = np.asarray(side, dtype=np.int64)[rows]
        acc, sym_ = take(account, rows), take(symbol, rows)
        acc_len = np.fromiter(map(len, acc), dtype=np.int64, count=rows.shape[0])
        sym_len = np.fromiter(map(len, sym_), dtype=np.int64, count=rows.shape[0])
        named = (acc_len > 0) | (sym_len > 0) | (sides != 0)
        valid = ~bad_names(acc) & ~bad_names(sym_) & ((sides == SIDE_BUY) | (sides == SIDE_SELL))
        f, x = xf[rows, 0], xf[rows, 1]
        with np.errstate(over="ignore", invalid="ignore"):  # inf * 0 and overflows fail the bound
            valid_fill = (f > 0.0) & (x > 0.0) & (f * x <= self.config.max_order_notional)
        code = np.where(valid, np.where(valid_fill, L.X_UNKNOWN_FILLED, L.X_BAD_FILL), L.X_BAD_ORIGIN)
        use = np.flatnonzero(named & valid & valid_fill)
        before = len(self.accounts), len(self.symbols)
        aid = self.accounts.intern_many(acc[use])
        sid = self.symbols.intern_many(sym_[use])
        if (len(self.accounts), len(self.symbols)) != before:
            self._fit_accounts()
            self._fit_symbols()
            self._name_index = None  # rebuilt with the new names on the next one-order request
        refused_names = (aid < 0) | (sid < 0)
        if refused_names.any():  # full, or a name the interner refuses for another reason
            full = len(self.accounts) >= self.accounts.capacity or len(self.symbols) >= self.symbols.capacity
            code[use[refused_names]] = L.X_ORIGIN_FULL if full else L.X_BAD_ORIGIN
        ok = use[~refused_names]
        origin = np.full((n, 3), -1, dtype=np.int64)
        origin[rows[ok], 0] = aid[~refused_names]
        origin[rows[ok], 1] = sid[~refused_names]
        origin[rows[ok], 2] = sides[ok]
        self._fit_books(ok.shape[0])
        refused = np.flatnonzero(named & (code != L.X_UNKNOWN_FILLED))
        return origin, rows[refused], code[refused]

    # ------------------------------------------------------------------ prices, positions

    def update_prices(self, symbol: Sequence[str], price: Sequence[float] | np.ndarray) -> int:
        """Set marks; all-or-nothing (any bad symbol or price rejects the whole call).

        Known symbols (the common case) are validated and set in one kernel call; a call naming a
        new symbol validates the prices first, so a rejected call interns nothing.
        """
        n = self._batch_len("prices", symbol=symbol, price=price)
        self._rec.require_room(n)
        px = _floats(price)
        bound = self.config.max_order_notional
        sid = self.symbols.lookup_many(symbol)
        bad = self._set_prices(sid, px, bound)
        if bad == _UNKNOWN_SYMBOL:
            bad = first_bad_price(px, bound)
            if bad < 0:
                sid = self._intern_all(self.symbols, symbol, "symbol")
                self._fit_symbols()
                bad = self._set_prices(sid, px, bound)
        if bad >= 0:
            raise BatchError("price", f"must be > 0 and <= max_order_notional {bound:g}, got {px[bad]}", bad)
        self._state_version += 1
        self._rec.marks(np.unique(sid))
        self._ewma.update(sid, px)
        self._vols_moved()
        return n

    def _set_prices(self, sid: np.ndarray, px: np.ndarray, bound: float) -> int:
        """exposure.set_prices, then (with a model) the VaR terms of the symbols' books move from
        their old marks to the new ones (kernel.var.var_remarks)."""
        args = self._kernel_args()
        if self.risk_model is None or not sid.shape[0] or sid.min() < 0:
            return int(set_prices(sid, px, bound, *args[:3]))
        distinct = np.unique(sid)
        old = marks0(distinct, self._s.sym)
        bad = int(set_prices(sid, px, bound, *args[:3]))
        if bad == -1:
            var_remarks(distinct, old, args[1], args[2], args[5])
        return bad

    def load_positions(
        self, account: Sequence[str], symbol: Sequence[str], quantity: Sequence[float] | np.ndarray
    ) -> int:
        """Replace positions; all-or-nothing."""
        n = self._batch_len("positions", account=account, symbol=symbol, quantity=quantity)
        self._rec.require_room(n)
        qty = _floats(quantity)
        bound = self.config.max_order_notional
        bad = ~(np.abs(qty) <= bound)  # NaN and inf fail too
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BatchError("quantity", f"must be finite with |quantity| <= {bound:g}, got {qty[i]}", i)
        aid = self._intern_all(self.accounts, account, "account")
        sid = self._intern_all(self.symbols, symbol, "symbol")
        self._fit_accounts()
        self._fit_symbols()
        self._fit_books(n)
        books = np.empty(n, dtype=np.int64)
        args = self._kernel_args()
        load_positions(aid, sid, qty, *args[:3], args[5], books)
        self._state_version += 1
        self._rec.books(books)
        self._vols_moved()
        return n

    # ------------------------------------------------------------------ limits

    def upsert_limits(self, limits: Sequence[Limit]) -> int:
        """Validate all, then swap in the next limit book; returns its version."""
        version = self.stage_upsert(limits)
        book = self.build_limits(limits, (), version)
        return self.install_limits(book, ch.LimitsChanged(tuple(limits), ()))

    def delete_limits(self, limit_ids: Iterable[str]) -> tuple[int, list[str], int]:
        deleted, missing = self.stage_delete(limit_ids)
        if not deleted:
            return 0, missing, self._limits.version
        book = self.build_limits((), deleted, self._limits.version + 1)
        return len(deleted), missing, self.install_limits(book, ch.LimitsChanged((), tuple(deleted)))

    def stage_upsert(self, limits: Sequence[Limit], names: tuple[list[str], list[str]] | None = None) -> int:
        """Validate limits and intern their names (on the caller's thread); the next version.
        names: prepare_upsert's result, already validated (LimitAdmin runs it in a worker thread)."""
        if names is None:
            names = self.prepare_upsert(limits)
        self._rec.require_room(len(limits))
        for interner, distinct, label in (
            (self.accounts, names[0], "account"),
            (self.symbols, names[1], "symbol"),
        ):
            for name in distinct:
                if interner.intern(name) < 0:
                    raise BatchError(
                        f"limits.{label}", f"{interner.kind} capacity {interner.capacity} reached"
                    )
        self._fit_accounts()
        self._fit_symbols()
        return self._limits.version + 1

    @staticmethod
    def prepare_upsert(limits: Sequence[Limit]) -> tuple[list[str], list[str]]:
        """Validate limits (LimitValidationError) and return their distinct account and symbol
        names; pure, so a large upsert runs it in a worker thread."""
        validate_limits(limits)
        return (
            list(dict.fromkeys(lim.account for lim in limits if lim.account)),
            list(dict.fromkeys(lim.symbol for lim in limits if lim.symbol)),
        )

    def stage_delete(self, limit_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """(deleted, not found) of limit_ids against the current book."""
        current = self._limits.limits
        deleted: list[str] = []
        missing: list[str] = []
        for limit_id in dict.fromkeys(limit_ids):
            (deleted if limit_id in current else missing).append(limit_id)
        if deleted:
            self._rec.require_room(len(deleted))
        return deleted, missing

    def build_limits(self, upserts: Sequence[Limit], deletes: Sequence[str], version: int) -> LimitBook:
        """The next book from the current one (limitbook.apply_changes: incremental, or a recompile
        when large); pure but for reading the interners, so it may run in a worker thread."""
        book = self._limits
        vols = book.vols
        return apply_changes(
            book, upserts, deletes, self.accounts.by_name, self.symbols.by_name, version,
            vols.effective if isinstance(vols, Vols) else None,
        )  # fmt: skip

    def stage_names(self, accounts: Iterable[str], symbols: Iterable[str], rows: int) -> None:
        """Before installing a whole new limit set (import): room for its ``rows`` change rows, and
        its distinct account and symbol names interned (BatchError when an interner is full)."""
        self._rec.require_room(rows)
        for interner, names, label in (
            (self.accounts, accounts, "account"),
            (self.symbols, symbols, "symbol"),
        ):
            for name in names:
                if name and interner.intern(name) < 0:
                    raise BatchError(
                        f"limits.{label}", f"{interner.kind} capacity {interner.capacity} reached"
                    )
        self._fit_accounts()
        self._fit_symbols()

    def compile_limits(self, merged: dict[str, Limit], version: int) -> LimitBook:
        """A book of exactly merged, from nothing (recovery)."""
        vols = self.current_vols()
        return compile_limits(
            merged, self.accounts.by_name, self.symbols.by_name, version, effective=vols.effective, vols=vols
        )

    def install_limits(self, book: LimitBook, change: ch.LimitsChanged) -> int:
        if self.on_install_limits is not None:
            self.on_install_limits(change, book.version)
        self._limits = book
        self._s.kernel_args = None
        self._state_version += 1
        self._rec.limits(change)
        if len(change.upserted) > 4_096 or any(lim.kind == MAX_VAR for lim in change.upserted):
            self._warn_unpriced()  # O(accounts); the scan of a large change would stall the loop
        if self.alert_intake is not None:
            n = len(change.upserted) + len(change.deleted)
            self.alert_intake.put((EV_LIMITS, n, self._wall(), change.upserted, change.deleted))
        return book.version

    # ------------------------------------------------------------------ dynamic limits

    def current_vols(self) -> Vols:
        """The volatilities now (riskd_server.dynamic): risk model, else marks' EWMA; per account
        weighted by exposure. O(symbols + books); reads the state arrays as they are."""
        s = self._s
        n_sym = len(self.symbols)
        model = self.risk_model
        model_vol = model_ids = None
        if model is not None:
            cached, ids = self._model_ids
            if cached is not model or ids is None:
                ids = model_symbol_ids(model.index, len(model.symbols), self.symbols.get)
                self._model_ids = (model, ids)
            model_vol, model_ids = model.vol, ids
        sym_vol = symbol_vols(self._ewma, n_sym, self._dynamic.min_returns, model_vol, model_ids)
        acct, firm = account_vols(
            sym_vol, s.sym, s.book, s.book_pair, int(s.ctr[L.C_BOOKS]), len(self.accounts)
        )
        return Vols(sym_vol, acct, firm, self._dynamic.min_scale)

    def build_refresh(self) -> LimitBook | None:
        """The current book with its dynamic thresholds recomputed, or None when none moved by more
        than dynamic_tolerance (may run in a worker thread; install with install_refresh)."""
        book = self._limits
        return refreshed(book, self.current_vols(), self._dynamic.tolerance, book.version + 1)

    def install_refresh(self, book: LimitBook) -> bool:
        """Swap in a refreshed book unless the limits changed since it was built; True if swapped.
        Thresholds are derived state: nothing is recorded (recovery recomputes them)."""
        if book.parent != self._limits.version:
            return False
        self._limits = book
        self._s.kernel_args = None
        self._state_version += 1
        return True

    def refresh_dynamic(self) -> bool:
        """build_refresh and install_refresh in one call (tests, tools)."""
        book = self.build_refresh()
        return book is not None and self.install_refresh(book)

    def effective_threshold(self, limit: Limit) -> float:
        """The threshold the checks enforce for limit now (its configured one unless dynamic)."""
        return self._limits.effective_threshold(limit, self.accounts.by_name, self.symbols.by_name)

    # ------------------------------------------------------------------ trading state

    def set_trading_state(self, account: str, state: int, reason: str = "") -> int:
        """Set an account's (or, for "", the firm's) trading state; returns the previous one."""
        if state not in (1, 2, 3):
            raise BatchError("state", f"must be ACTIVE, REDUCING or HALTED, got {state}")
        self._rec.require_room(1)
        previous = self.trading_state(account)
        if account:
            a = self.accounts.intern(account)
            if a < 0:
                raise BatchError("account", name_problem(account, self.accounts))
            self._fit_accounts()
            self._s.acct[a, L.A_TRADING] = state
        else:
            self._s.ctr[L.C_FIRM_TRADING] = state
        self._state_version += 1
        self._rec.trading_state(account, state, reason)
        if self.alert_intake is not None:
            self.alert_intake.put((EV_TRADING_STATE, 1, self._wall(), account, state, previous, reason))
        return previous

    # ------------------------------------------------------------------ capacity

    def _batch_len(self, what: str, **columns: Sequence | np.ndarray) -> int:
        return self._check_lengths(what, {name: len(col) for name, col in columns.items()})

    def _check_lengths(self, what: str, lengths: dict[str, int]) -> int:
        n = next(iter(lengths.values()))
        for name, length in lengths.items():
            if length != n:
                raise BatchError(name, f"has {length} entries, expected {n} like every column of {what}")
        if n > self.config.max_batch:
            raise BatchError(what, f"batch of {n} exceeds --max-batch {self.config.max_batch}")
        return n

    def _intern_all(self, interner: Interner, names: Sequence[str], label: str) -> np.ndarray:
        control = control_flags(names)
        if control is not None:  # before interning any: a rejected request interns no name
            i = int(np.flatnonzero(control)[0])
            raise BatchError(label, name_problem(names[i], interner), i)
        ids = interner.intern_many(names)
        if ids.shape[0] and ids.min() < 0:
            i = int(np.flatnonzero(ids < 0)[0])
            raise BatchError(label, name_problem(names[i], interner), i)
        return ids

    # ------------------------------------------------------------------ recovery

    def restore(self, snap: ch.Snapshot) -> None:
        """Rebuild state from a database snapshot; records nothing (see engine.recovery)."""
        restore(self, snap)

    # ------------------------------------------------------------------ growth (engine.state)

    def _fit_accounts(self) -> None:
        self._s.fit_accounts(len(self.accounts))

    def _fit_symbols(self) -> None:
        self._s.fit_symbols(len(self.symbols))
        if len(self.symbols) > self._var_filled:
            self._fill_var_symbols()

    def _fit_books(self, extra: int) -> None:
        self._s.fit_books(extra)

    def _fit_slots(self, n: int) -> None:
        self._s.fit_slots(n)
