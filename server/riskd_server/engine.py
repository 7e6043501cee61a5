"""The risk engine: owns the columnar state and applies batches to it through the kernels.

Every public method is synchronous and runs to completion without awaiting, so concurrent RPCs on
one event loop are serialised on the state (linearizable). Persistence leaves through ``sink``
(a bounded write-behind queue) as immutable change records; the engine never touches a database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import changes as ch
from .interning import Interner, NameIndex
from .kernel import layout as L
from .kernel import wire
from .kernel._hashtable import ht_find, ht_grow, ht_new
from .kernel.checks import book_key, check_batch
from .kernel.distinct import distinct_spans
from .kernel.executions import apply_executions, load_positions, restore_orders, unknown_ids
from .kernel.exposure import UNKNOWN_SYMBOL as _UNKNOWN_SYMBOL
from .kernel.exposure import first_bad_price, recompute_exposure, set_prices
from .kernel.rows import order_rows, violation_columns
from .kernel.single import check_one_wire
from .limitbook import LimitBook, compile_limits
from .limits import MAX_NAME_LEN, Limit, validate_limits
from .names import control_flags, has_control

log = logging.getLogger("riskd.engine")

SIDE_BUY = 1
SIDE_SELL = 2
STATE_ACTIVE = 1
STATE_HALTED = 3
_EXEC_MESSAGES = np.array(
    [
        "",
        "overfill: the fill exceeds the order's open quantity",
        "late fill: the order was already closed; the fill was applied to the position",
        "unknown order: position updated",
        "unknown client_order_id (never accepted, or forgotten after the retention window)",
        "invalid exec type",
        "a fill needs a finite quantity > 0, a finite price > 0 and quantity x price <= max_order_notional",
        "order already closed",
        f"unknown order: a fill needs all of account and symbol (1..{MAX_NAME_LEN} chars) and side "
        "BUY or SELL to update the position",
        "unknown order: account or symbol capacity reached; the fill was not applied",
    ],
    dtype=object,
)


class BatchError(ValueError):
    """A request that cannot be applied at all; names the field and, when known, the index."""

    def __init__(self, field: str, message: str, index: int | None = None) -> None:
        where = field if index is None else f"{field}[{index}]"
        super().__init__(f"{where}: {message}")
        self.field = field
        self.index = index


class Backpressure(RuntimeError):
    """The write-behind backlog is full: refuse new work rather than lose persistence."""


class ChangeSink(Protocol):
    """Where change records go (the store's write-behind queue)."""

    def has_room(self, rows: int = 0) -> bool: ...

    def put(self, change: ch.Change) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Capacities and bounds; every map the engine keeps is bounded by one of these."""

    max_batch: int = 10_000
    max_accounts: int = 100_000
    max_symbols: int = 1_000_000
    max_open_orders: int = 1_000_000
    closed_order_retention: int = 1_000_000
    max_order_notional: float = 1e15
    initial_accounts: int = 1_024
    initial_symbols: int = 4_096
    initial_books: int = 4_096
    initial_order_slots: int = 4_096  # slots first put on the free stack (memory is reserved up front)

    def __post_init__(self) -> None:
        errors = [
            f"{name} must be >= {low}, got {getattr(self, name)}"
            for name, low in (
                ("max_batch", 1),
                ("max_accounts", 1),
                ("max_symbols", 1),
                ("max_open_orders", 1),
                ("closed_order_retention", 0),
                ("initial_accounts", 1),
                ("initial_symbols", 1),
                ("initial_books", 1),
                ("initial_order_slots", 1),
            )
            if getattr(self, name) < low
        ]
        if not (math.isfinite(self.max_order_notional) and self.max_order_notional > 0):
            errors.append(f"max_order_notional must be finite and > 0, got {self.max_order_notional}")
        if self.max_accounts > L.MAX_ACCOUNTS:
            errors.append(f"max_accounts must be <= {L.MAX_ACCOUNTS}")
        if self.max_symbols > L.MAX_SYMBOLS:
            errors.append(f"max_symbols must be <= {L.MAX_SYMBOLS}")
        if errors:
            raise ValueError("; ".join(errors))


@dataclass(frozen=True, slots=True)
class Violations:
    """Columns of violations, ordered by order_index then check."""

    order_index: np.ndarray  # uint32
    check: np.ndarray  # int32
    limit_id: np.ndarray  # object (str)
    observed: np.ndarray  # float64
    threshold: np.ndarray  # float64
    warning: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.order_index.shape[0])


@dataclass(frozen=True, slots=True)
class AccountExposure:
    """An account's exposure: positions valued at their marks, open orders at their prices."""

    position_gross: float
    position_net: float
    open_gross: float
    open_net: float
    open_orders: int

    @property
    def gross(self) -> float:
        return self.position_gross + self.open_gross

    @property
    def net(self) -> float:
        return self.position_net + self.open_net


@dataclass(slots=True)
class CheckOutcome:
    """What a checked batch got (not frozen: a frozen dataclass's __init__ sets each field through
    object.__setattr__, 0.6 us where a stream message's whole check takes a few)."""

    accepted: np.ndarray  # bool
    reject_mask: np.ndarray  # uint32
    violations: Violations
    state_version: int


@dataclass(frozen=True, slots=True)
class ExecOutcome:
    applied: np.ndarray  # bool
    error: list[str]
    state_version: int
    # int64 codes: error[i] == _EXEC_MESSAGES[status[i]] (lets the servicer encode from bytes)
    status: np.ndarray | None = None


@dataclass(slots=True)
class _Arrays:
    """The mutable state arrays (see kernel.layout for the columns).

    The order arrays (ordf, ordi, ord_ht, free, ring) are allocated once at the configured bound,
    so the event loop never stops to copy or rehash them, and written in full at construction
    (``_resident``) so every page is mapped before the first order. Book rows and order slots are
    one 64-byte-aligned cache line each (``_aligned_rows``; ordf and ordi are two views of one
    buffer, ``_order_slots``). ``free`` is topped up from ``ctr[C_SLOTS]`` (slots handed out so
    far) as the engine needs them. Only open orders hold slots (max_open_orders of them); the
    order table also keeps the retained closed ids (kernel.layout.ORDER_CLOSED_BASE).
    """

    acct: np.ndarray
    sym: np.ndarray
    book_ht: np.ndarray
    book: np.ndarray
    book_pair: np.ndarray
    sym_books: np.ndarray
    ord_ht: np.ndarray
    ordf: np.ndarray
    ordi: np.ndarray
    free: np.ndarray
    ring: np.ndarray
    ctr: np.ndarray = field(default_factory=lambda: np.zeros(L.C_FIELDS, dtype=np.int64))


def _hash_ids(ids: Sequence[str]) -> np.ndarray:
    """64-bit keys of client_order_ids: wire.hash_span of their UTF-8 bytes (never EMPTY).

    The same function keys the ids CheckOrders parses from wire bytes, so every path (strs,
    wire bytes, recovery) finds the same order.
    """
    return wire.hash_strs(ids)


def _hash_id(client_order_id: str) -> int:
    """_hash_ids for one id."""
    return wire.hash_bytes(client_order_id.encode("utf-8", "surrogatepass"))


def _bad_names(names: Sequence[str]) -> np.ndarray:
    """Invalid ids: empty, longer than MAX_NAME_LEN or holding a control character (names.py)."""
    lengths = np.fromiter(map(len, names), dtype=np.int64, count=len(names))
    bad = (lengths == 0) | (lengths > MAX_NAME_LEN)
    control = control_flags(names)
    return bad if control is None else bad | control


def _floats(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _resident(shape: int | tuple[int, ...], dtype: type) -> np.ndarray:
    """A zeroed array whose every page is written now, not on first use (np.full, not np.zeros).

    np.zeros of a large array gets lazily mapped pages, so the first orders to use a never-used
    order slot or order-table bucket pay for the page in the kernel's timed loop. Measured with
    bench/kernel_bench.py (kernel rounds of 100k orders on a 2-vCPU KVM guest): while rounds handed
    out never-used slots they ran 3-5 M orders/s, ~10 M/s once slots were recycled; with the arrays
    written up front every round ran ~10 M/s (median 4.2 -> 10.4 M/s). The guest counted only ~10
    page faults a round (numpy asks for transparent huge pages, MADV_HUGEPAGE, for allocations of
    4 MB and up, so a fault maps 2 MB), so most of the cost is not the guest's fault handler but
    first touch of memory the VM had not used (host-side). The price is paid at start-up instead:
    at the default bounds (2 M slots) the order arrays are ~210 MB resident from construction,
    written in 30-470 ms (varies with how much of that memory the VM had touched before).
    """
    return np.full(shape, 0, dtype=dtype)


def _aligned_rows(rows: int, dtype: type = np.float64) -> np.ndarray:
    """A zeroed, resident [rows, 8] table of 8-byte values whose rows start on 64-byte boundaries.

    A row is then exactly one cache line; numpy's allocation is only 16-byte aligned, so a row
    would straddle two. The check kernel's cost is its cache misses (it runs out of outstanding-miss
    slots, not bandwidth): aligning 128-byte book rows measured 10.4 -> 12.5 M orders/s on
    bench/kernel_bench.py's kernel row, and one-line book rows and order slots (instead of two or
    three lines each) see the README's benchmark figures.
    """
    line = 64 // np.dtype(dtype).itemsize
    buf = _resident(rows * line + line, dtype)
    skip = (-buf.ctypes.data % 64) // buf.itemsize
    return buf[skip : skip + rows * line].reshape(rows, line)


def _book_rows(rows: int) -> np.ndarray:
    """A zeroed float64[rows, B_FIELDS] book table, one aligned cache line per row."""
    assert L.B_FIELDS == 8
    return _aligned_rows(rows)


def _order_slots(slots: int) -> tuple[np.ndarray, np.ndarray]:
    """(ordf, ordi): float64 and int64 views of one zeroed [slots, O_FIELDS] buffer, a line per slot.

    One slot is one cache line to load and dirty per accepted order, instead of a float row and an
    int row in two arrays.
    """
    assert L.O_FIELDS == 8
    ordi = _aligned_rows(slots, np.int64)
    return ordi.view(np.float64), ordi


def _grow_rows(arr: np.ndarray, rows: int, fill: float | int) -> np.ndarray:
    grown = np.full((rows, *arr.shape[1:]), fill, dtype=arr.dtype)
    grown[: arr.shape[0]] = arr
    return grown


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


# Write-behind rows one checked order can produce, at most: an accepted order is one OrdersAccepted
# row plus a warning per kind (<= 9); a rejected one is a CheckEvents row per failing check (<= 13).
_CHECK_ROWS_PER_ORDER = L.MAX_VIOLATIONS_PER_ORDER
# check_orders_wire tries the one-order parser on requests up to this size (one order with three
# 128-character names is ~420 bytes).
_ONE_ORDER_BYTES = 512
# Engine._check_one_wire's answer for a request that is not exactly one order (the batch path).
_MANY = object()
# apply_executions' origin when no report names its order (writable: a read-only array would be
# another numba signature to compile), and no rows for Engine._origin's refusals.
_NO_ORIGIN = np.full((0, 3), -1, dtype=np.int64)
_NO_ROWS = np.empty(0, dtype=np.int64)
# Free slots put on the free stack at a time (bounded so topping up never stalls the event loop).
_SLOT_STEP = 65_536
# Shared, read-only parts of the commonest outcome: one order accepted without warnings.
_ACCEPTED_ONE = _read_only(np.ones(1, dtype=bool))
_MASK_ZERO_ONE = _read_only(np.zeros(1, dtype=np.uint32))
_NO_VIOLATIONS = Violations(
    order_index=_read_only(np.empty(0, dtype=np.uint32)),
    check=_read_only(np.empty(0, dtype=np.int32)),
    limit_id=_read_only(np.empty(0, dtype=object)),
    observed=_read_only(np.empty(0, dtype=np.float64)),
    threshold=_read_only(np.empty(0, dtype=np.float64)),
    warning=_read_only(np.empty(0, dtype=bool)),
)


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


class Engine:
    """Risk state plus the operations on it; see the README for the exact check semantics."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        sink: ChangeSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = cfg = config or EngineConfig()
        self.sink = sink
        self._clock = clock
        self._wall = wall_clock
        self.accounts = Interner("account", cfg.max_accounts)
        self.symbols = Interner("symbol", cfg.max_symbols)
        self._max_slots = max_slots = cfg.max_open_orders  # a closed order holds no slot (layout)
        ordf, ordi = _order_slots(max_slots)
        s = _Arrays(
            acct=np.zeros((cfg.initial_accounts, L.A_FIELDS), dtype=np.float64),
            sym=np.full((cfg.initial_symbols, L.S_FIELDS), np.nan, dtype=np.float64),
            book_ht=ht_new(cfg.initial_books + 1),
            book=_book_rows(cfg.initial_books + 1),
            book_pair=np.zeros((cfg.initial_books + 1, L.BP_FIELDS), dtype=np.int64),
            sym_books=np.full(cfg.initial_symbols, -1, dtype=np.int64),
            ord_ht=ht_new(max_slots + cfg.closed_order_retention),
            ordf=ordf,
            ordi=ordi,
            free=_resident(max_slots, np.int64),
            ring=_resident(cfg.closed_order_retention + cfg.max_batch, np.int64),
        )
        self._s = s
        s.ctr[L.C_RING_KEEP] = cfg.closed_order_retention
        self._fit_slots(min(cfg.initial_order_slots, max_slots))
        self._state_version = 0
        self._limits = compile_limits({}, self.accounts.get, self.symbols.get, version=0)
        self._limits_lock = asyncio.Lock()
        self._kernel_state: tuple | None = None  # check_batch's state arguments; None after a change
        self._one = _OneOrderScratch()
        # The interners' byte indexes (accounts, symbols) for _check_one_wire; snapshots, so a
        # stale pair only misses names added since (interning.NameIndex).
        self._name_index: tuple[NameIndex, NameIndex] | None = None

    # ------------------------------------------------------------------ queries

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
        slot = ht_find(self._s.ord_ht, _hash_ids([client_order_id])[0])
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

    def recompute_exposure(self) -> None:
        """Rebuild every account's exposure sums from the open orders and positions (recovery; the
        tests' oracle for the incremental sums)."""
        s = self._s
        recompute_exposure(s.acct, s.sym, s.book, s.book_pair, s.ord_ht, s.ordf, s.ordi, s.ctr)

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

    # ------------------------------------------------------------------ pre-trade checks

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
        n = self._batch_len(
            "orders",
            client_order_id=client_order_id,
            account=account,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
        )
        self._require_room(n * _CHECK_ROWS_PER_ORDER)
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
        oi[:, L.IN_KEY] = _hash_ids(client_order_id)
        bad_id = _bad_names(client_order_id)
        if bad_id.any():
            oi[bad_id, L.IN_ACCOUNT] = -1
        of = np.empty((n, L.IN_F_FIELDS), dtype=np.float64)
        of[:, L.IN_QTY] = quantity
        of[:, L.IN_PRICE] = price
        return self._check_columns(oi, of, aid, sid, now, client_order_id, account, symbol)

    def check_orders_wire(self, data: bytes, now: float | None = None) -> CheckOutcome | None:
        """check_orders on a serialized CheckOrdersRequest, without building Python strs.

        Returns None when the request needs protobuf's parser (see kernel.wire: non-ASCII
        strings, a repeated ``orders`` field, malformed bytes): the caller then decodes it and
        calls check_orders, which gives the same outcome. A request of one order (a stream
        message) is parsed to scalars and takes _check_one.
        """
        if len(data) <= _ONE_ORDER_BYTES:
            out = self._check_one_wire(data, now)
            if out is not _MANY:
                return out
        buf = np.frombuffer(data, dtype=np.uint8)
        status, counts, off, length, keys, side, quantity, price = wire.parse_check_orders(buf, wire.SEED)
        if status != wire.OK:
            return None
        c = counts.tolist()
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
        self._require_room(n * _CHECK_ROWS_PER_ORDER)
        aid = self._wire_ids(self.accounts, data, buf, off[1], length[1], n)
        self._fit_accounts()
        sid = self._wire_ids(self.symbols, data, buf, off[2], length[2], n)
        self._fit_symbols()
        oi = np.empty((n, L.IN_I_FIELDS), dtype=np.int64)
        of = np.empty((n, L.IN_F_FIELDS), dtype=np.float64)
        # ASCII only, so an id's length in bytes is its length in characters
        order_rows(oi, of, aid, sid, side, keys, length[0], quantity, price, MAX_NAME_LEN)
        ids = accounts = symbols = None
        if self.sink is not None:
            ids = wire.Utf8Spans(data, off[0], length[0], keys)
            accounts = wire.Utf8Spans(data, off[1], length[1])
            symbols = wire.Utf8Spans(data, off[2], length[2])
        return self._check_columns(oi, of, aid, sid, now, ids, accounts, symbols)

    def _check_one_wire(self, data: bytes, now: float | None) -> CheckOutcome | object | None:
        """A one-order request in one numba call (kernel.single.check_one_wire); _MANY when it
        holds another number of orders, None when protobuf must parse it.

        Past a name the byte index does not hold yet or arrays that must grow, the request takes
        _check_one (which interns and grows), and the index is refreshed for the next one.
        """
        self._require_room(_CHECK_ROWS_PER_ORDER)
        one = self._one
        if self._name_index is None:
            self.index_names()
        accounts, symbols = self._name_index  # type: ignore[misc]
        status, nv, a, sy, io, il, ao, al, so, sl = check_one_wire(
            data, wire.SEED, *accounts, *symbols, MAX_NAME_LEN, self._now(now), one.oi, one.of, one.mask, one.vi, one.vf,
            *self._kernel_args(),
        )  # fmt: skip
        if status == wire.OK:
            if self.sink is None:
                return self._one_outcome(nv, a, sy)
            return self._one_outcome(nv, a, sy, *_span_strs(data, io, il, ao, al, so, sl))
        if status == wire.MANY:
            return _MANY
        if status == wire.FALLBACK:
            return None
        status, key, io, il, ao, al, so, sl, side, qty, px = wire.parse_one(data, wire.SEED)
        out = self._check_one(*_span_strs(data, io, il, ao, al, so, sl), side, qty, px, now, key)
        self._name_index = None
        return out

    def _wire_ids(self, interner: Interner, data: bytes, buf, off, length, n: int) -> np.ndarray:
        """Ids of the names at the spans; unknown ones are decoded and interned (the slow path)."""
        ids, misses = interner.lookup_spans(buf, off, length, n)
        if misses:
            for i in np.flatnonzero(ids < 0).tolist():
                o = int(off[i])
                ids[i] = interner.intern(data[o : o + int(length[i])].decode())
        return ids

    def _check_columns(self, oi, of, aid, sid, now, client_order_id, account, symbol) -> CheckOutcome:
        """Run the check kernel on a batch's input rows (oi, of) and collect its outcome."""
        n = oi.shape[0]
        self._fit_books(n)
        self._fit_slots(n)
        mask = np.empty(n, dtype=np.uint32)
        vi, vf = self._violation_scratch(n)
        nv = check_batch(oi, of, self._now(now), mask, vi, vf, *self._kernel_args())
        violations = self._violations(vi, vf, nv) if nv else _NO_VIOLATIONS
        accepted = mask == 0
        self._state_version += 1
        if self.sink is not None:
            self._emit_checks(client_order_id, account, symbol, aid, sid, oi, of, accepted, violations)
        return CheckOutcome(accepted, mask, violations, self._state_version)

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
        the id's hash when the caller has it (check_orders_wire hashes it while parsing).
        """
        self._require_room(_CHECK_ROWS_PER_ORDER)
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
        oi[0, L.IN_KEY] = _hash_id(client_order_id) if key is None else key
        of = one.of
        of[0, L.IN_QTY] = qty
        of[0, L.IN_PRICE] = price
        self._fit_books(1)
        self._fit_slots(1)
        nv = check_batch(oi, of, self._now(now), one.mask, one.vi, one.vf, *self._kernel_args())
        return self._one_outcome(nv, a, sy, client_order_id, account, symbol)

    def _one_outcome(
        self, nv: int, a: int, sy: int, client_order_id: str = "", account: str = "", symbol: str = ""
    ) -> CheckOutcome:
        """The outcome of the one-order kernel call just made on self._one (nv violations), recorded
        to the sink with the order's names (which callers pass whenever there is a sink)."""
        one = self._one
        self._state_version += 1
        if nv == 0:  # accepted without warnings (every reject writes a violation)
            out = CheckOutcome(_ACCEPTED_ONE, _MASK_ZERO_ONE, _NO_VIOLATIONS, self._state_version)
        else:
            mask = one.mask.copy()
            out = CheckOutcome(mask == 0, mask, self._violations(one.vi, one.vf, nv), self._state_version)
        if self.sink is not None:
            aid, sid = np.array([a], dtype=np.int64), np.array([sy], dtype=np.int64)
            self._emit_checks(
                [client_order_id], [account], [symbol], aid, sid, one.oi, one.of, out.accepted, out.violations
            )
        return out

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _kernel_args(self) -> tuple:
        """check_batch's state and limit arguments (cached: rebuilt after arrays or limits change)."""
        args = self._kernel_state
        if args is None:
            s, lb = self._s, self._limits
            args = self._kernel_state = (
                s.acct, s.sym, s.book_ht, s.book, s.book_pair, s.ord_ht, s.ordf, s.ordi, s.free, s.ctr,
                lb.exact, lb.table, lb.values, lb.version, self.config.max_order_notional,
            )  # fmt: skip
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
        """Copy the kernel's first nv violation rows out of the (reused) buffers (one numba pass)."""
        order, check, limit, observed, threshold, warning = violation_columns(
            vi, vf, nv, float(self.config.max_open_orders)
        )
        return Violations(order, check, self._limits.limit_ids(limit), observed, threshold, warning)

    def _emit_checks(
        self, ids, accounts, symbols, aid, sid, oi, of, accepted, violations: Violations
    ) -> None:
        sink = self.sink
        assert sink is not None
        ts = self._wall()
        if accepted.any():
            idx = np.flatnonzero(accepted)
            marks = self._s.sym[sid[idx]]
            marks = np.where(np.isnan(marks[:, L.S_PRICE]), marks[:, L.S_FILL], marks[:, L.S_PRICE])
            limit_px = of[idx, L.IN_PRICE]
            sink.put(
                ch.OrdersAccepted(
                    ts=ts,
                    client_order_id=_take(ids, idx),
                    account=self.accounts.names_of(aid[idx]),
                    symbol=self.symbols.names_of(sid[idx]),
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
                    client_order_id=_take(ids, order),
                    account=_take(accounts, order),
                    symbol=_take(symbols, order),
                    check=violations.check.astype(np.int16),
                    limit_id=violations.limit_id,
                    observed=violations.observed,
                    threshold=violations.threshold,
                    warning=violations.warning,
                )
            )

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
        self._require_room(n * 4)
        s = self._s
        keys = _hash_ids(client_order_id)
        types = np.asarray(exec_type, dtype=np.int64)
        xf = np.empty((n, 2), dtype=np.float64)
        xf[:, 0] = quantity
        xf[:, 1] = price
        status = np.empty(n, dtype=np.int64)
        books = np.empty(n, dtype=np.int64)
        open_after = np.empty(n, dtype=np.float64)
        origin, refused, refusal = _NO_ORIGIN, _NO_ROWS, _NO_ROWS
        if named:
            origin, refused, refusal = self._origin(keys, types, xf, account, symbol, side)
        apply_executions(
            keys, types, xf, origin, s.ord_ht, s.ordf, s.ordi, s.free, s.ring, s.book_ht, s.book,
            s.book_pair, s.acct, s.sym, s.sym_books, s.ctr, self.config.max_order_notional, status, books,
            open_after,
        )  # fmt: skip
        status[refused] = refusal  # the kernel answered X_UNKNOWN: _origin gave them no account
        applied = status <= L.X_UNKNOWN_FILLED
        errors = _EXEC_MESSAGES[status]
        self._state_version += 1
        if self.sink is not None:
            self._emit_executions(client_order_id, types, xf, applied, errors, books, open_after, status)
        return ExecOutcome(applied, errors.tolist(), self._state_version, status)

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
        acc, sym_ = _take(account, rows), _take(symbol, rows)
        acc_len = np.fromiter(map(len, acc), dtype=np.int64, count=rows.shape[0])
        sym_len = np.fromiter(map(len, sym_), dtype=np.int64, count=rows.shape[0])
        named = (acc_len > 0) | (sym_len > 0) | (sides != 0)
        valid = ~_bad_names(acc) & ~_bad_names(sym_) & ((sides == SIDE_BUY) | (sides == SIDE_SELL))
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

    def _emit_executions(self, ids, types, xf, applied, errors, books, open_after, status) -> None:
        """Record a batch of reports; books, open_after and status are apply_executions' per-report
        outputs. A fill of an unknown order moves a position but updates no order row."""
        sink = self.sink
        assert sink is not None
        s = self._s
        ts = self._wall()
        sink.put(
            ch.ExecutionsReported(
                ts=ts,
                client_order_id=_take(ids, np.arange(len(ids))),
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
                    client_order_id=_take(ids, orders),
                    open_quantity=np.where(still_open, remaining, 0.0),
                    status=np.where(still_open, ch.ORDER_OPEN, ch.ORDER_CLOSED).astype(np.int8),
                )
            )
        fills = idx[types[idx] == 1]
        if fills.shape[0]:
            filled = books[fills]
            self._emit_books(filled)
            self._emit_marks(np.unique(s.book_pair[filled, L.BP_SYMBOL]))

    def _emit_books(self, books: np.ndarray) -> None:
        s = self._s
        assert self.sink is not None
        self.sink.put(
            ch.PositionsChanged(
                account=self.accounts.names_of(s.book_pair[books, L.BP_ACCOUNT]),
                symbol=self.symbols.names_of(s.book_pair[books, L.BP_SYMBOL]),
                quantity=s.book[books, L.B_POS].copy(),
            )
        )

    def _emit_marks(self, sids: np.ndarray) -> None:
        assert self.sink is not None
        self.sink.put(
            ch.MarksChanged(
                symbol=self.symbols.names_of(sids),
                price=self._s.sym[sids, L.S_PRICE].copy(),
                last_fill_price=self._s.sym[sids, L.S_FILL].copy(),
            )
        )

    # ------------------------------------------------------------------ prices, positions

    def update_prices(self, symbol: Sequence[str], price: Sequence[float] | np.ndarray) -> int:
        """Set marks; all-or-nothing (any bad symbol or price rejects the whole call).

        Known symbols (the common case) are validated and set in one kernel call; a call naming a
        new symbol validates the prices first, so a rejected call interns nothing.
        """
        n = self._batch_len("prices", symbol=symbol, price=price)
        self._require_room(n)
        px = _floats(price)
        bound = self.config.max_order_notional
        sid = self.symbols.lookup_many(symbol)
        s = self._s
        bad = set_prices(sid, px, bound, s.sym, s.sym_books, s.book, s.book_pair, s.acct)
        if bad == _UNKNOWN_SYMBOL:
            bad = first_bad_price(px, bound)
            if bad < 0:
                sid = self._intern_all(self.symbols, symbol, "symbol")
                self._fit_symbols()
                s = self._s
                bad = set_prices(sid, px, bound, s.sym, s.sym_books, s.book, s.book_pair, s.acct)
        if bad >= 0:
            raise BatchError("price", f"must be > 0 and <= max_order_notional {bound:g}, got {px[bad]}", bad)
        self._state_version += 1
        if self.sink is not None and n:
            self._emit_marks(np.unique(sid))
        return n

    def load_positions(
        self, account: Sequence[str], symbol: Sequence[str], quantity: Sequence[float] | np.ndarray
    ) -> int:
        """Replace positions; all-or-nothing."""
        n = self._batch_len("positions", account=account, symbol=symbol, quantity=quantity)
        self._require_room(n)
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
        s = self._s
        load_positions(
            aid, sid, qty, s.book_ht, s.book, s.book_pair, s.sym_books, s.acct, s.sym, s.ctr, books
        )
        self._state_version += 1
        if self.sink is not None and n:
            self._emit_books(books)
        return n

    # ------------------------------------------------------------------ limits

    def upsert_limits(self, limits: Sequence[Limit]) -> int:
        """Validate all, then swap in a new limit book; returns its version."""
        merged, version = self._stage_upsert(limits)
        return self._install(self._compile(merged, version), ch.LimitsChanged(tuple(limits), ()))

    async def upsert_limits_async(self, limits: Sequence[Limit]) -> int:
        """Like upsert_limits, compiling the tables in a worker thread off the event loop."""
        async with self._limits_lock:
            merged, version = self._stage_upsert(limits)
            book = await asyncio.to_thread(self._compile, merged, version)
            return self._install(book, ch.LimitsChanged(tuple(limits), ()))

    def delete_limits(self, limit_ids: Iterable[str]) -> tuple[int, list[str], int]:
        merged, deleted, missing = self._stage_delete(limit_ids)
        if not deleted:
            return 0, missing, self._limits.version
        version = self._install(
            self._compile(merged, self._limits.version + 1), ch.LimitsChanged((), tuple(deleted))
        )
        return len(deleted), missing, version

    async def delete_limits_async(self, limit_ids: Iterable[str]) -> tuple[int, list[str], int]:
        async with self._limits_lock:
            merged, deleted, missing = self._stage_delete(limit_ids)
            if not deleted:
                return 0, missing, self._limits.version
            book = await asyncio.to_thread(self._compile, merged, self._limits.version + 1)
            return len(deleted), missing, self._install(book, ch.LimitsChanged((), tuple(deleted)))

    def _stage_upsert(self, limits: Sequence[Limit]) -> tuple[dict[str, Limit], int]:
        validate_limits(limits)
        self._require_room(len(limits))
        for lim in limits:  # intern on the caller's thread; compiling only reads the ids
            for interner, name, label in (
                (self.accounts, lim.account, "account"),
                (self.symbols, lim.symbol, "symbol"),
            ):
                if name and interner.intern(name) < 0:
                    raise BatchError(
                        f"limits.{label}", f"{interner.kind} capacity {interner.capacity} reached"
                    )
        self._fit_accounts()
        self._fit_symbols()
        merged = dict(self._limits.limits)
        merged.update((lim.limit_id, lim) for lim in limits)
        return merged, self._limits.version + 1

    def _stage_delete(self, limit_ids: Iterable[str]) -> tuple[dict[str, Limit], list[str], list[str]]:
        merged = dict(self._limits.limits)
        deleted: list[str] = []
        missing: list[str] = []
        for limit_id in dict.fromkeys(limit_ids):
            (deleted if merged.pop(limit_id, None) is not None else missing).append(limit_id)
        if deleted:
            self._require_room(len(deleted))
        return merged, deleted, missing

    def _compile(self, merged: dict[str, Limit], version: int) -> LimitBook:
        return compile_limits(merged, self.accounts.get, self.symbols.get, version)

    def _install(self, book: LimitBook, change: ch.LimitsChanged) -> int:
        self._limits = book
        self._kernel_state = None
        self._state_version += 1
        if self.sink is not None:
            self.sink.put(change)
        return book.version

    # ------------------------------------------------------------------ trading state

    def set_trading_state(self, account: str, state: int, reason: str = "") -> int:
        """Set an account's (or, for "", the firm's) trading state; returns the previous one."""
        if state not in (1, 2, 3):
            raise BatchError("state", f"must be ACTIVE, REDUCING or HALTED, got {state}")
        self._require_room(1)
        previous = self.trading_state(account)
        if account:
            a = self.accounts.intern(account)
            if a < 0:
                raise BatchError("account", _name_problem(account, self.accounts))
            self._fit_accounts()
            self._s.acct[a, L.A_TRADING] = state
        else:
            self._s.ctr[L.C_FIRM_TRADING] = state
        self._state_version += 1
        if self.sink is not None:
            self.sink.put(
                ch.TradingStateChanged(ts=self._wall(), account=account, state=state, reason=reason)
            )
        return previous

    # ------------------------------------------------------------------ recovery

    def restore(self, snap: ch.Snapshot) -> None:
        """Rebuild state from a database snapshot; emits nothing to the sink.

        Orders and positions arrive as columns of UTF-8 spans (ch.TextColumn) and are rebuilt in
        a few numba passes: ids hashed from their bytes, names looked up in the interners' byte
        indexes (only distinct new names become strs), one kernel call for all orders.
        """
        sink, self.sink = self.sink, None
        try:
            if snap.limits:
                self.upsert_limits(list(snap.limits))
            for account, state in snap.trading_states:
                self.set_trading_state(account, state, "recovered")
            if snap.marks:
                sid = self._intern_all(self.symbols, [m[0] for m in snap.marks], "symbol")
                self._fit_symbols()
                self._s.sym[sid, L.S_PRICE] = [m[1] for m in snap.marks]
                self._s.sym[sid, L.S_FILL] = [m[2] for m in snap.marks]
            self._restore_positions(snap.positions)
            self._restore_orders(snap.orders)
            self.recompute_exposure()
        finally:
            self.sink = sink
        self.index_names()

    def index_names(self) -> None:
        """Build the interners' byte indexes for the single-order path now (start-up), so the
        first one-order request does not pay for indexing every recovered name (~3 ms for 11,000)."""
        self._name_index = (self.accounts.name_index(), self.symbols.name_index())

    def _restore_positions(self, pos: ch.RecoveredPositions) -> None:
        n = len(pos)
        if not n:
            return
        qty = np.asarray(pos.quantity, dtype=np.float64)
        bad = ~np.isfinite(qty)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BatchError("positions.quantity", f"must be finite, got {qty[i]}", i)
        aid = self._intern_spans(self.accounts, pos.account, "positions.account")
        sid = self._intern_spans(self.symbols, pos.symbol, "positions.symbol")
        self._fit_books(n)
        s = self._s
        load_positions(
            aid, sid, qty, s.book_ht, s.book, s.book_pair, s.sym_books, s.acct, s.sym, s.ctr,
            np.empty(n, dtype=np.int64),
        )  # fmt: skip

    def _restore_orders(self, orders: ch.RecoveredOrders) -> None:
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
        if open_rows > self.config.max_open_orders:
            log.warning(
                "recovered %d open orders, more than --max-open-orders %d: keeping them all "
                "(order slots raised to %d)",
                open_rows,
                self.config.max_open_orders,
                open_rows,
            )
            self._raise_slot_bound(open_rows)
        ids = orders.client_order_id
        keys = wire.hash_spans(ids.buf, ids.off, ids.length, wire.SEED)  # as _hash_ids: same bytes
        aid = self._intern_spans(self.accounts, orders.account, "orders.account")
        sid = self._intern_spans(self.symbols, orders.symbol, "orders.symbol")
        side = np.asarray(orders.side, dtype=np.int64)
        qty = np.asarray(orders.open_quantity, dtype=np.float64)
        price = np.asarray(orders.price, dtype=np.float64)
        self._fit_slots(open_rows)
        s = self._s
        done = 0
        while done < n:
            self._fit_books(1)  # the kernel returns when the book table is full; grow and go on
            done = int(
                restore_orders(
                    keys, aid, sid, side, qty, price, closed, done,
                    s.ord_ht, s.ordf, s.ordi, s.free, s.ring, s.book_ht, s.book, s.book_pair, s.acct, s.ctr,
                )
            )  # fmt: skip

    def _intern_spans(self, interner: Interner, names: ch.TextColumn, label: str) -> np.ndarray:
        """Ids of the names of a column, interning new ones: the distinct names are found in one
        numba pass and looked up in the byte index; only new distinct names become strs."""
        first, inverse = distinct_spans(names.buf, names.off, names.length, wire.SEED)
        d = first.shape[0]
        ids, misses = interner.lookup_spans(names.buf, names.off[first], names.length[first], d)
        if misses:
            for k in np.flatnonzero(ids < 0).tolist():
                ids[k] = self._intern_row(interner, names, int(first[k]), label)
        self._fit_accounts()
        self._fit_symbols()
        return ids[inverse]

    def _intern_row(self, interner: Interner, names: ch.TextColumn, i: int, label: str) -> int:
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

    # ------------------------------------------------------------------ capacity

    def _batch_len(self, what: str, **columns: Sequence) -> int:
        return self._check_lengths(what, {name: len(col) for name, col in columns.items()})

    def _check_lengths(self, what: str, lengths: dict[str, int]) -> int:
        n = next(iter(lengths.values()))
        for name, length in lengths.items():
            if length != n:
                raise BatchError(name, f"has {length} entries, expected {n} like every column of {what}")
        if n > self.config.max_batch:
            raise BatchError(what, f"batch of {n} exceeds --max-batch {self.config.max_batch}")
        return n

    def _require_room(self, rows: int) -> None:
        if self.sink is not None and not self.sink.has_room(rows):
            raise Backpressure("persistence backlog is full; refusing new work until it drains")

    def _intern_all(self, interner: Interner, names: Sequence[str], label: str) -> np.ndarray:
        control = control_flags(names)
        if control is not None:  # before interning any: a rejected request interns no name
            i = int(np.flatnonzero(control)[0])
            raise BatchError(label, _name_problem(names[i], interner), i)
        ids = interner.intern_many(names)
        if ids.shape[0] and ids.min() < 0:
            i = int(np.flatnonzero(ids < 0)[0])
            raise BatchError(label, _name_problem(names[i], interner), i)
        return ids

    def _fit_accounts(self) -> None:
        s = self._s
        if len(self.accounts) > s.acct.shape[0]:
            s.acct = _grow_rows(s.acct, max(2 * s.acct.shape[0], len(self.accounts)), 0.0)
            self._kernel_state = None

    def _fit_symbols(self) -> None:
        s = self._s
        if len(self.symbols) > s.sym.shape[0]:
            rows = max(2 * s.sym.shape[0], len(self.symbols))
            s.sym = _grow_rows(s.sym, rows, np.nan)
            s.sym_books = _grow_rows(s.sym_books, rows, -1)
            self._kernel_state = None

    def _fit_books(self, extra: int) -> None:
        """Room for extra new books plus the spare row check_batch resolves a new book's limits in."""
        s = self._s
        need = int(s.ctr[L.C_BOOKS]) + extra + 1
        if need <= s.book.shape[0] and 2 * need <= s.book_ht.shape[0]:
            return
        if need > s.book.shape[0]:
            rows = max(2 * s.book.shape[0], need)
            book = _book_rows(rows)
            book[: s.book.shape[0]] = s.book
            s.book = book
            s.book_pair = _grow_rows(s.book_pair, rows, 0)
        s.book_ht = ht_grow(s.book_ht, need)
        self._kernel_state = None

    def _fit_slots(self, n: int) -> None:
        """Make n free order slots if the bound allows (past it the kernel rejects on capacity).

        The arrays already span the bound; this only pushes never-used slots on the free stack,
        at most max(n, _SLOT_STEP) at a time, so it costs microseconds, never a copy or rehash.
        """
        s = self._s
        free_now = int(s.ctr[L.C_FREE_TOP])
        cap = int(s.ctr[L.C_SLOTS])
        if free_now >= n or cap >= self._max_slots:
            return
        added = min(self._max_slots - cap, max(n - free_now, min(max(cap, 1), _SLOT_STEP)))
        # Lowest new slot on top, so slots are first used in order.
        s.free[free_now : free_now + added] = np.arange(cap + added - 1, cap - 1, -1, dtype=np.int64)
        s.ctr[L.C_FREE_TOP] = free_now + added
        s.ctr[L.C_SLOTS] = cap + added

    def _raise_slot_bound(self, max_slots: int) -> None:
        """Enlarge the order arrays to max_slots (start-up only: recovery found more open orders)."""
        s = self._s
        used = int(s.ctr[L.C_SLOTS])
        ordf, ordi = _order_slots(max_slots)
        free = _resident(max_slots, np.int64)
        ordi[:used] = s.ordi[:used]  # both views: one buffer
        free[: int(s.ctr[L.C_FREE_TOP])] = s.free[: int(s.ctr[L.C_FREE_TOP])]
        s.ordf, s.ordi, s.free = ordf, ordi, free
        s.ord_ht = ht_grow(s.ord_ht, max_slots + self.config.closed_order_retention)
        self._max_slots = max_slots
        self._kernel_state = None


def _name_problem(name: str, interner: Interner) -> str:
    """Why interner.intern(name) gave -1, for a BatchError."""
    if not name or len(name) > MAX_NAME_LEN:
        return f"invalid name {name!r}: must be 1..{MAX_NAME_LEN} characters"
    if has_control(name):
        return f"invalid name {name!r}: holds a control character (U+0000-U+001F, U+007F-U+009F)"
    return f"{interner.kind} capacity {interner.capacity} reached"


def _span_strs(data: bytes, *spans: int) -> list[str]:
    """The strs at (offset, length) span pairs of an ASCII request (one decode, then slices)."""
    text = data.decode("latin-1")
    return [text[o : o + n] for o, n in zip(spans[::2], spans[1::2], strict=True)]


def _take(seq: Sequence[str], idx: np.ndarray) -> np.ndarray:
    """seq[idx] as an object array (seq may be a list or a protobuf repeated field)."""
    out = np.empty(idx.shape[0], dtype=object)
    if idx.shape[0]:
        out[:] = [seq[i] for i in idx.tolist()] if idx.shape[0] != len(seq) else list(seq)
    return out


def _sample_request(n: int = 2, first: int = 3) -> bytes:
    """A serialized CheckOrdersRequest of n orders (ids w<first>.., accounts WA, WB, ..., symbol WS;
    packed numeric columns) for warm_up."""

    def field(number: int, payload: bytes) -> bytes:
        return bytes((number << 3 | 2, len(payload))) + payload

    ids = b"".join(field(1, f"w{first + i}".encode()) for i in range(n))
    names = b"".join(field(2, b"W" + bytes((65 + i,))) for i in range(n)) + field(3, b"WS") * n
    numbers = field(5, struct.pack(f"<{n}d", *[1.0] * n)) + field(6, struct.pack(f"<{n}d", *[0.0, 1.0][:n]))
    batch = ids + names + field(4, bytes(1 + i % 2 for i in range(n))) + numbers
    return field(1, batch)


def warm_up() -> float:
    """Compile (or load from cache) every kernel with the production signatures; returns seconds."""
    start = time.perf_counter()
    eng = Engine(EngineConfig(max_open_orders=8, closed_order_retention=2, initial_order_slots=2))
    recovered = (
        ch.OpenOrderRow("r0", "WA", "WS", 1, 1.0, 100.0),
        ch.OpenOrderRow("r1", "WB", "WS", 2, 1.0, 100.0),
    )
    eng.restore(  # the recovery kernels, for a process that builds the kernel cache
        ch.Snapshot(
            positions=ch.RecoveredPositions.of([("WA", "WS", 0.0)]),
            orders=ch.RecoveredOrders.of(recovered[:1], recovered[1:]),
        )
    )
    eng.report_executions(["r1"], [2], [0.0], [0.0])
    eng.upsert_limits(
        [
            Limit(limit_id="w-exact", kind=1, account="WA", symbol="WS", threshold=10),
            Limit(limit_id="w-acct", kind=7, account="WA", threshold=100, warn_fraction=0.5),
            Limit(limit_id="w-sym", kind=6, symbol="WS", threshold=0.1),
            Limit(limit_id="w-any", kind=4, threshold=1e9),
        ]
    )
    eng.update_prices(["WS"], [100.0])
    eng.load_positions(["WA"], ["WS"], [1.0])
    out = eng.check_orders(
        ["w1", "w2", ""],
        ["WA", "WA", "WA"],
        ["WS", "WS", "WS"],
        [1, 2, 1],
        [1.0, 1.0, 1.0],
        [0.0, 101.0, 1.0],
    )
    eng.report_executions(["w1", "w2", "w9"], [1, 2, 1], [1.0, 0.0, 1.0], [100.0, 0.0, 1.0])
    eng.report_executions(["w8"], [1], [1.0], [100.0], account=["WA"], symbol=["WS"], side=[2])  # unknown
    assert eng.check_orders_wire(_sample_request(), now=0.0) is not None  # the raw CheckOrders path
    for first in (5, 6):  # one order: the general path (WA not in the byte index yet), then one call
        assert eng.check_orders_wire(_sample_request(1, first), now=0.0) is not None
    eng.delete_limits(["w-any"])
    assert out.accepted.shape[0] == 3 and math.isfinite(eng.position("WA", "WS"))
    return time.perf_counter() - start
