"""SizePositions without the gRPC: read what an account holds from the engine, then size it.

Two steps, so the arithmetic can leave the event loop: ``Sizer.gather`` reads the engine (its book
lists, marks, limit book and exposure sums) into private copies and must run where the engine
runs (the event loop: the engine is not thread-safe); ``compute`` works only on those copies and
the immutable model, so it may run in a worker thread.

Exposure w_s = (position + open buys - open sells) x mark, the mark being the checks' reference
price for a market order (last UpdatePrices price, else last fill price). A book whose symbol has
no mark cannot be valued and contributes nothing (as it adds nothing to the gross and net sums).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from ..engine.names import bad_names
from ..kernel.sizing import resolve_thresholds
from ..limits import MAX_VAR
from .limit_room import ROOM_KINDS, limit_room
from .model import RiskModel
from .sigma_cache import SigmaCache
from .sizing import model_diagonal, size_var

if TYPE_CHECKING:
    from ..engine import Engine

INVALID, PRECONDITION = "INVALID_ARGUMENT", "FAILED_PRECONDITION"
# The largest var_budget taken: far above any VaR riskd's bounded exposures reach (sums <= ~1e21),
# small enough that (budget / scale)² stays finite.
MAX_BUDGET = 1e30
_VAR_KIND = np.array([MAX_VAR], dtype=np.int64)
_NO_SYMBOL = np.array([-1], dtype=np.int64)


class SizingError(ValueError):
    """A request that cannot be sized; code is the gRPC status name to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SizingInputs:
    """Everything compute needs, as private copies (safe to hand to another thread)."""

    account: str
    model: RiskModel
    diag: np.ndarray
    symbols: Sequence[str]  # asked, in answer order
    held_row: np.ndarray
    held_w: np.ndarray
    ask_row: np.ndarray
    ask_w: np.ndarray
    price: np.ndarray  # NaN: no mark
    budget: float
    room_args: tuple | None  # limit_room's arguments with apply_limits, else None


@dataclass(frozen=True, slots=True)
class SizingResult:
    """SizePositions' answer as columns (float64[r]; limit_* None without apply_limits)."""

    var: float
    budget: float
    model_version: str
    symbols: Sequence[str]
    max_buy: np.ndarray
    max_sell: np.ndarray
    marginal: np.ndarray
    component: np.ndarray
    price: np.ndarray  # 0: no mark
    exposure: np.ndarray
    limit_buy: np.ndarray | None
    limit_sell: np.ndarray | None


@dataclass(slots=True)
class _ModelIds:
    """Per model: its diagonal, and its symbols' engine ids (-1 unknown) and the reverse map,
    refreshed when the engine has interned names since (at most one model held)."""

    model: RiskModel
    diag: np.ndarray
    names_seen: int = -1
    sids: np.ndarray | None = None  # model row -> engine symbol id
    rows: np.ndarray | None = None  # engine symbol id -> model row, -1


class Sizer:
    """Reads sizing inputs from one engine (see module doc)."""

    def __init__(self, engine: Engine, sigma_cache: SigmaCache | None = None) -> None:
        self._engine = engine
        self._ids: _ModelIds | None = None
        self.sigma_cache = sigma_cache if sigma_cache is not None else SigmaCache()

    def compute(self, inputs: SizingInputs) -> SizingResult:
        """compute with this sizer's Sigma @ w cache (any thread)."""
        return compute(inputs, self.sigma_cache)

    def _model_ids(self, model: RiskModel) -> _ModelIds:
        ids = self._ids
        if ids is None or ids.model is not model:
            ids = self._ids = _ModelIds(model, model_diagonal(model))
        names = self._engine.symbols
        if ids.names_seen != len(names):
            ids.names_seen = len(names)
            ids.sids = names.lookup_many(model.symbols)
            rows = np.full(len(names), -1, dtype=np.int64)
            known = ids.sids >= 0
            rows[ids.sids[known]] = np.flatnonzero(known)
            ids.rows = rows
        return ids

    def gather(
        self, account: str, symbols: Sequence[str], var_budget: float, apply_limits: bool
    ) -> SizingInputs:
        """Validate the request and read the account's state (on the engine's thread)."""
        eng = self._engine
        model = eng.risk_model
        if model is None:
            raise SizingError(PRECONDITION, "no risk model yet")
        if bad_names([account])[0]:  # empty, longer than 128 characters or a control character
            raise SizingError(INVALID, f"account: invalid name {account!r}")
        if not 0.0 <= var_budget <= MAX_BUDGET:  # NaN fails too
            raise SizingError(INVALID, f"var_budget: must be in [0, {MAX_BUDGET:g}], got {var_budget}")
        if len(symbols) > eng.symbols.capacity:
            raise SizingError(INVALID, f"symbols: {len(symbols)} exceeds max_symbols {eng.symbols.capacity}")
        if len(symbols):
            bad = bad_names(symbols)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise SizingError(INVALID, f"symbols[{i}]: invalid name {symbols[i]!r}")
        ids = self._model_ids(model)
        assert ids.sids is not None and ids.rows is not None
        a = eng.accounts.get(account)
        tables = eng.limits.tables
        budget = var_budget
        if budget == 0.0:
            found = np.empty((1, 1))
            resolve_thresholds(_VAR_KIND, a, _NO_SYMBOL, tables[0], tables[1], tables[2], found)
            budget = float(found[0, 0])
            if not math.isfinite(budget):
                raise SizingError(
                    PRECONDITION,
                    f"var_budget is 0 and no MAX_VAR limit applies to account {account!r}: give a budget",
                )

        books = eng.account_books(account)
        with np.errstate(invalid="ignore"):
            w = books.net_quantity * books.mark
        valued = np.isfinite(w)  # a book without a mark cannot be valued
        held_sid, held_w = books.symbol[valued], w[valued]
        held_row = ids.rows[held_sid]  # every held symbol is interned, so within the map

        if len(symbols):
            names: Sequence[str] = list(symbols)
            ask_sid = eng.symbols.lookup_many(names)
            ask_row = np.fromiter(map(model.index.get, names, repeat(-1)), dtype=np.int64, count=len(names))
        else:
            names = model.symbols
            ask_sid = ids.sids
            ask_row = np.arange(len(model.symbols), dtype=np.int64)
        book_at = _book_of(books.symbol, ask_sid)
        price = eng.symbol_marks(ask_sid)
        ask_w = _by_book(np.where(valued, w, 0.0), book_at)

        room_args = None
        if apply_limits:
            thresholds = np.empty((ROOM_KINDS.shape[0], ask_sid.shape[0]))
            resolve_thresholds(ROOM_KINDS, a, ask_sid, tables[0], tables[1], tables[2], thresholds)
            exp = eng.exposure(account)
            room_args = (
                thresholds,
                _by_book(books.position, book_at),
                _by_book(books.open_buy, book_at),
                _by_book(books.open_sell, book_at),
                price,
                exp.position_gross + exp.open_gross,
                exp.position_net + exp.open_net,
            )
        return SizingInputs(
            account=account,
            model=model,
            diag=ids.diag,
            symbols=names,
            held_row=held_row,
            held_w=held_w,
            ask_row=ask_row,
            ask_w=ask_w,
            price=price,
            budget=budget,
            room_args=room_args,
        )


def _book_of(book_sid: np.ndarray, ask_sid: np.ndarray) -> np.ndarray:
    """Index in the account's books of each asked symbol's book, -1 for none (a sorted search:
    O(r log books), never a map over every symbol id)."""
    if not book_sid.shape[0]:
        return np.full(ask_sid.shape[0], -1, dtype=np.int64)
    order = np.argsort(book_sid)
    ranked = book_sid[order]
    at = np.minimum(np.searchsorted(ranked, ask_sid), ranked.shape[0] - 1)
    return np.where((ranked[at] == ask_sid) & (ask_sid >= 0), order[at], -1)


def _by_book(column: np.ndarray, book_at: np.ndarray) -> np.ndarray:
    """column[book_at], 0 where book_at is -1 (the appended 0 is what index -1 reads)."""
    return np.append(column, 0.0)[book_at]


def compute(inputs: SizingInputs, sigma_cache: SigmaCache | None = None) -> SizingResult:
    """Size the gathered inputs (any thread); sigma_cache: Sigma @ w kept by account (sample model)."""
    sigma_w = None
    if sigma_cache is not None and inputs.model.covariance is not None:
        inside = inputs.held_row >= 0
        sigma_w = sigma_cache.sigma_w(
            inputs.account, inputs.model, inputs.held_row[inside], inputs.held_w[inside]
        )
    sizes = size_var(
        inputs.model, inputs.held_row, inputs.held_w, inputs.ask_row, inputs.ask_w, inputs.price,
        inputs.budget, inputs.diag, sigma_w,
    )  # fmt: skip
    limit_buy = limit_sell = None
    if inputs.room_args is not None:
        limit_buy, limit_sell = limit_room(*inputs.room_args)
    price = inputs.price
    return SizingResult(
        var=sizes.var,
        budget=sizes.budget,
        model_version=inputs.model.version,
        symbols=inputs.symbols,
        max_buy=sizes.max_buy,
        max_sell=sizes.max_sell,
        marginal=sizes.marginal,
        component=sizes.component,
        price=np.where(price > 0.0, price, 0.0),
        exposure=inputs.ask_w,
        limit_buy=limit_buy,
        limit_sell=limit_sell,
    )


def warm_sizing(engine: Engine) -> None:
    """Compile (or load) the sizing kernels with their production signatures: a sample model of
    four symbols (read-only covariance; one held, so the sparse row sum) on engine, sized with
    limits; then the engine's model is put back."""
    from .model import SAMPLE, ModelSummary

    cov = np.diag([4e-4, 9e-4, 1e-4, 1e-4])
    summary = ModelSummary(SAMPLE, 4, 0, 0, 0, 0, 1.0, (), 0, 0.99, 1.0, 2.33)
    model = RiskModel(
        "warm", SAMPLE, ("WS", "WX", "WY", "WV"), np.sqrt(np.diagonal(cov)), np.zeros(4), None, cov,
        2.33, 1.0, 0.99, 0.02, summary, 0.0,
    )  # fmt: skip
    previous = engine.risk_model
    engine.set_risk_model(model)
    try:
        sizer = Sizer(engine)
        compute(sizer.gather("WA", (), 1e6, True))
        compute(sizer.gather("WA", ["WS", "WZ"], 1e6, False))
        sizer.compute(sizer.gather("WA", (), 1e6, False))
        sizer.compute(sizer.gather("WA", (), 1e6, False))  # from the Sigma @ w cache
    finally:
        engine.set_risk_model(previous)
