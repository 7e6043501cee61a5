"""Recovery: rebuild an engine's state from a database snapshot (store.Snapshot) at start-up."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .. import changes as ch
from .. import wire
from ..interning import Interner
from ..kernel import layout as L
from ..kernel.distinct import distinct_spans
from ..kernel.executions import load_positions, restore_orders
from ..limits import MAX_NAME_LEN
from ..outcomes import BatchError

if TYPE_CHECKING:
    from .core import Engine

log = logging.getLogger("riskd.engine")


def restore(engine: Engine, snap: ch.Snapshot) -> None:
    """Rebuild state from a database snapshot; emits nothing to the sink.

    Orders and positions arrive as columns of UTF-8 spans (ch.TextColumn) and are rebuilt in
    a few numba passes: ids hashed from their bytes, names looked up in the interners' byte
    indexes (only distinct new names become strs), one kernel call for all orders.
    """
    sink, engine.sink = engine.sink, None  # recovery records nothing
    try:
        if snap.limits:
            engine.upsert_limits(list(snap.limits))
        if snap.limits_version > engine.limits.version:  # versions only go up across restarts
            engine._limits = replace(engine.limits, version=snap.limits_version)
            engine._s.kernel_args = None  # they carry the tables' version
        for account, state in snap.trading_states:
            engine.set_trading_state(account, state, "recovered")
        if snap.marks:
            sid = engine._intern_all(engine.symbols, [m[0] for m in snap.marks], "symbol")
            engine._fit_symbols()
            engine._s.sym[sid, L.S_PRICE] = [m[1] for m in snap.marks]
            engine._s.sym[sid, L.S_FILL] = [m[2] for m in snap.marks]
        _restore_positions(engine, snap.positions)
        _restore_orders(engine, snap.orders)
        engine.recompute_exposure()
    finally:
        engine.sink = sink
    engine.index_names()


def _restore_positions(engine: Engine, pos: ch.RecoveredPositions) -> None:
    n = len(pos)
    if not n:
        return
    qty = np.asarray(pos.quantity, dtype=np.float64)
    bad = ~np.isfinite(qty)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BatchError("positions.quantity", f"must be finite, got {qty[i]}", i)
    aid = _intern_spans(engine, engine.accounts, pos.account, "positions.account")
    sid = _intern_spans(engine, engine.symbols, pos.symbol, "positions.symbol")
    engine._fit_books(n)
    s = engine._s
    load_positions(aid, sid, qty, *s.groups()[:3], s.var_group(), np.empty(n, dtype=np.int64))


def _restore_orders(engine: Engine, orders: ch.RecoveredOrders) -> None:
    """Re-open recovered orders (closed ones first, into the retention ring) in one kernel pass.

    Every recovered open order gets a slot, even past --max-open-orders (the server restarted
    with a smaller bound than it ran with): dropping one would understate exposure and refusing
    to start would stop all trading, so the slot bound grows to the recovered open orders, once,
    at start-up, with a warning. Closed orders take no slot (kernel.layout).
    """
    n, closed = len(orders), orders.closed
    if not n:
        return
    open_rows = n - closed
    if open_rows > engine.config.max_open_orders:
        log.warning(
            "recovered %d open orders, more than --max-open-orders %d: keeping them all "
            "(order slots raised to %d)",
            open_rows,
            engine.config.max_open_orders,
            open_rows,
        )
        engine._s.raise_slot_bound(open_rows, engine.config.closed_order_retention)
    ids = orders.client_order_id
    keys = wire.hash_spans(ids.buf, ids.off, ids.length, wire.SEED)  # as _hash_ids: same bytes
    aid = _intern_spans(engine, engine.accounts, orders.account, "orders.account")
    sid = _intern_spans(engine, engine.symbols, orders.symbol, "orders.symbol")
    side = np.asarray(orders.side, dtype=np.int64)
    qty = np.asarray(orders.open_quantity, dtype=np.float64)
    price = np.asarray(orders.price, dtype=np.float64)
    engine._fit_slots(open_rows)
    s = engine._s
    done = 0
    while done < n:
        engine._fit_books(1)  # the kernel returns when the book table is full; grow and go on
        account_rows, symbol_rows, book_rows, order_rows = s.groups()  # again: growth replaces arrays
        done = int(
            restore_orders(
                keys, aid, sid, side, qty, price, closed, done, account_rows, symbol_rows, book_rows,
                order_rows,
            )
        )  # fmt: skip


def _intern_spans(engine: Engine, interner: Interner, names: ch.TextColumn, label: str) -> np.ndarray:
    """Ids of the names of a column, interning new ones: the distinct names are found in one
    numba pass and looked up in the byte index; only new distinct names become strs."""
    first, inverse = distinct_spans(names.buf, names.off, names.length, wire.SEED)
    d = first.shape[0]
    ids, misses = interner.lookup_spans(names.buf, names.off[first], names.length[first], d)
    if misses:
        for k in np.flatnonzero(ids < 0).tolist():
            ids[k] = _intern_row(interner, names, int(first[k]), label)
    engine._fit_accounts()
    engine._fit_symbols()
    return ids[inverse]


def _intern_row(interner: Interner, names: ch.TextColumn, i: int, label: str) -> int:
    name = names[i]
    got = interner.intern(name)
    if got < 0:
        raise BatchError(
            label,
            f"cannot intern {name!r} on recovery (1..{MAX_NAME_LEN} chars, at most "
            f"{interner.capacity} {interner.kind}s)",
            i,
        )
    return got
