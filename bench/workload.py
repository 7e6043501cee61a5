"""A deterministic synthetic workload: names, marks, positions, limits of every kind, and order batches.

10,000 symbols and 1,000 accounts; each account trades a fixed universe of symbols (so the number of
(account, symbol) books stays bounded, as in a real book). Orders are mostly accepted: a few limits
are tight enough to reject ~2 % of orders and warn on a few more, so the violation path is exercised.

Client order ids are unique across processes and runs: a per-process prefix (pid + random) and a
counter. Two encodings of a batch are offered:

* ``Columns``: Python lists / numpy arrays, the arguments of ``Engine.check_orders``;
* ``RequestBuilder``: serialized ``CheckOrdersRequest`` bytes built from a pool of pre-encoded
  order columns plus freshly encoded ids (numpy, no Python loop per order), so a load generator
  can produce ~millions of unique orders per second without being the bottleneck.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

import numpy as np

from riskd.v1 import risk_pb2 as pb
from riskd_server.limits import (
    MAX_GROSS_EXPOSURE,
    MAX_NET_EXPOSURE,
    MAX_OPEN_ORDERS,
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_QUANTITY,
    MAX_ORDER_RATE,
    MAX_POSITION,
    PRICE_COLLAR,
    RESTRICTED_SYMBOL,
    Limit,
)

N_SYMBOLS = 10_000
N_ACCOUNTS = 1_000
UNIVERSE = 200  # symbols per account
N_POSITIONS = 10_000
SIDE_BUY = 1
SIDE_SELL = 2
EXEC_CANCELED = 2
ID_DIGITS = 10


@dataclass(frozen=True, slots=True)
class Columns:
    """One batch as Engine.check_orders arguments."""

    client_order_id: list[str]
    account: list[str]
    symbol: list[str]
    side: np.ndarray  # int64
    quantity: np.ndarray  # float64
    price: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.client_order_id)

    def args(self) -> tuple:
        return (self.client_order_id, self.account, self.symbol, self.side, self.quantity, self.price)


@dataclass(slots=True)
class IdSource:
    """Unique client_order_ids: ``prefix`` + zero-padded counter, as str or as protobuf wire bytes."""

    prefix: str = field(default_factory=lambda: f"{os.getpid() & 0xFFFF:04x}{secrets.token_hex(3)}")
    counter: int = 0

    @property
    def id_len(self) -> int:
        return len(self.prefix) + ID_DIGITS

    def strings(self, k: int) -> list[str]:
        start, self.counter = self.counter, self.counter + k
        p = self.prefix
        return [f"{p}{i:0{ID_DIGITS}d}" for i in range(start, start + k)]

    def wire(self, k: int, field_number: int = 1) -> bytes:
        """k ids encoded as repeated string field ``field_number`` (tag, length, bytes each)."""
        start, self.counter = self.counter, self.counter + k
        width = self.id_len
        assert width < 128 and field_number < 16
        if k < 16:  # numpy's fixed cost dominates small batches
            head = bytes(((field_number << 3) | 2, width)) + self.prefix.encode()
            return b"".join(head + b"%010d" % i for i in range(start, start + k))
        rows = np.empty((k, width + 2), dtype=np.uint8)
        rows[:, 0] = (field_number << 3) | 2
        rows[:, 1] = width
        rows[:, 2 : 2 + len(self.prefix)] = np.frombuffer(self.prefix.encode(), dtype=np.uint8)
        n = np.arange(start, start + k, dtype=np.int64)
        for d in range(ID_DIGITS):
            rows[:, width + 1 - d] = 48 + (n // 10**d) % 10
        return rows.tobytes()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def wrap_batch(field_number: int, batch: bytes) -> bytes:
    """A message whose only field ``field_number`` is the (already encoded) OrderBatch ``batch``."""
    return _varint((field_number << 3) | 2) + _varint(len(batch)) + batch


class Workload:
    """Names, marks, positions, limits and order generation; everything derives from ``seed``."""

    def __init__(self, seed: int = 20_240_601, n_symbols: int = N_SYMBOLS, n_accounts: int = N_ACCOUNTS):
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.n_symbols = n_symbols
        self.n_accounts = n_accounts
        self.symbols = [f"S{i:05d}" for i in range(n_symbols)]
        self.accounts = [f"A{i:04d}" for i in range(n_accounts)]
        self._symbols_arr = np.array(self.symbols, dtype=object)
        self._accounts_arr = np.array(self.accounts, dtype=object)
        self.marks = np.round(rng.uniform(10.0, 500.0, n_symbols), 2)
        self.universe = rng.integers(0, n_symbols, size=(n_accounts, UNIVERSE))
        self._rng = rng

    # ------------------------------------------------------------------ reference data

    def positions(self) -> tuple[list[str], list[str], np.ndarray]:
        rng = np.random.default_rng(self.seed + 1)
        a = rng.integers(0, self.n_accounts, N_POSITIONS)
        s = self.universe[a, rng.integers(0, UNIVERSE, N_POSITIONS)]
        qty = rng.integers(-300, 301, N_POSITIONS).astype(np.float64)
        return self._accounts_arr[a].tolist(), self._symbols_arr[s].tolist(), qty

    def limits(self) -> list[Limit]:
        """Every configurable kind (but VaR) at mixed specificity: firm-wide, account, symbol, exact."""
        rng = np.random.default_rng(self.seed + 2)
        acc, sym = self.accounts, self.symbols
        out = [
            Limit(limit_id="any-qty", kind=MAX_ORDER_QUANTITY, threshold=10_000),
            Limit(limit_id="any-notional", kind=MAX_ORDER_NOTIONAL, threshold=1e6, warn_fraction=0.9),
            Limit(limit_id="any-position", kind=MAX_POSITION, threshold=1e6),
            Limit(limit_id="any-gross", kind=MAX_GROSS_EXPOSURE, threshold=1e12),
            Limit(limit_id="any-net", kind=MAX_NET_EXPOSURE, threshold=1e12),
            Limit(limit_id="any-collar", kind=PRICE_COLLAR, threshold=0.2),
            # High threshold: the bucket is exercised on every order but never dominates the result.
            Limit(limit_id="any-rate", kind=MAX_ORDER_RATE, threshold=1e9),
            Limit(limit_id="any-open", kind=MAX_OPEN_ORDERS, threshold=1e6),
        ]
        for i in range(0, self.n_accounts, 10):
            out.append(
                Limit(
                    limit_id=f"acct-gross-{acc[i]}",
                    kind=MAX_GROSS_EXPOSURE,
                    account=acc[i],
                    threshold=5e7,
                    warn_fraction=0.8,
                )
            )
        for i in range(0, self.n_accounts, 20):
            out.append(
                Limit(limit_id=f"acct-net-{acc[i]}", kind=MAX_NET_EXPOSURE, account=acc[i], threshold=2e7)
            )
        for i in range(0, self.n_accounts, 50):
            out.append(
                Limit(limit_id=f"acct-open-{acc[i]}", kind=MAX_OPEN_ORDERS, account=acc[i], threshold=10_000)
            )
        for i in range(5, self.n_accounts, 100):  # ~0.5 % of orders rejected on quantity
            out.append(
                Limit(limit_id=f"acct-qty-{acc[i]}", kind=MAX_ORDER_QUANTITY, account=acc[i], threshold=50)
            )
        for i in range(7, self.n_symbols, 100):  # warnings above 10k notional, rejects above 20k
            out.append(
                Limit(
                    limit_id=f"sym-notional-{sym[i]}",
                    kind=MAX_ORDER_NOTIONAL,
                    symbol=sym[i],
                    threshold=20_000,
                    warn_fraction=0.5,
                )
            )
        for i in range(3, self.n_symbols, 100):  # tight collar: some limit orders rejected
            out.append(
                Limit(limit_id=f"sym-collar-{sym[i]}", kind=PRICE_COLLAR, symbol=sym[i], threshold=0.02)
            )
        for i in range(11, self.n_symbols, 2_000):  # restricted for everyone
            out.append(Limit(limit_id=f"sym-restricted-{sym[i]}", kind=RESTRICTED_SYMBOL, symbol=sym[i]))
        pairs_a = rng.integers(0, self.n_accounts, 2_000)
        pairs_s = self.universe[pairs_a, rng.integers(0, UNIVERSE, 2_000)]
        for j, (a, s) in enumerate(zip(pairs_a.tolist(), pairs_s.tolist(), strict=True)):
            if j < 20:
                out.append(
                    Limit(limit_id=f"x-restricted-{j}", kind=RESTRICTED_SYMBOL, account=acc[a], symbol=sym[s])
                )
            else:
                out.append(
                    Limit(
                        limit_id=f"x-position-{j}",
                        kind=MAX_POSITION,
                        account=acc[a],
                        symbol=sym[s],
                        threshold=500,
                    )
                )
        return out

    def load_into(self, engine) -> None:
        """Limits, marks and positions into an Engine (engine-only bench server, kernel bench)."""
        engine.upsert_limits(self.limits())
        engine.update_prices(self.symbols, self.marks)
        engine.load_positions(*self.positions())

    # ------------------------------------------------------------------ orders

    def orders(self, k: int, rng: np.random.Generator | None = None):
        """(account index, symbol index, side, quantity, price) arrays for k orders."""
        rng = rng or self._rng
        a = rng.integers(0, self.n_accounts, k)
        s = self.universe[a, rng.integers(0, UNIVERSE, k)]
        side = rng.integers(SIDE_BUY, SIDE_SELL + 1, k).astype(np.int64)
        qty = rng.integers(1, 101, k).astype(np.float64)
        price = np.round(self.marks[s] * (1.0 + rng.uniform(-0.05, 0.05, k)), 2)
        price[rng.random(k) < 0.1] = 0.0  # market orders, priced at the mark
        return a, s, side, qty, price

    def columns(self, k: int, ids: IdSource, rng: np.random.Generator | None = None) -> Columns:
        a, s, side, qty, price = self.orders(k, rng)
        return Columns(
            ids.strings(k), self._accounts_arr[a].tolist(), self._symbols_arr[s].tolist(), side, qty, price
        )

    def order_batch(self, k: int, ids: IdSource, rng: np.random.Generator | None = None) -> pb.OrderBatch:
        c = self.columns(k, ids, rng)
        return pb.OrderBatch(
            client_order_id=c.client_order_id,
            account=c.account,
            symbol=c.symbol,
            side=c.side.tolist(),
            quantity=c.quantity.tolist(),
            price=c.price.tolist(),
        )

    def rest_bytes(self, k: int, rng: np.random.Generator | None = None) -> bytes:
        """An OrderBatch without ids, serialized (ids are appended per request by RequestBuilder)."""
        a, s, side, qty, price = self.orders(k, rng)
        return pb.OrderBatch(
            account=self._accounts_arr[a].tolist(),
            symbol=self._symbols_arr[s].tolist(),
            side=side.tolist(),
            quantity=qty.tolist(),
            price=price.tolist(),
        ).SerializeToString()


class RequestBuilder:
    """Serialized CheckOrders/CheckOrderStream requests (same layout: field 1 = OrderBatch).

    Order columns cycle through ``pool`` pre-encoded variants; ids are fresh on every request.
    ``extra_order`` (account, symbol, quantity, price) adds one more order to every request, with
    its own fresh id (protobuf merges the repeated fields of concatenated OrderBatch bytes).
    """

    def __init__(
        self,
        workload: Workload,
        k: int,
        ids: IdSource | None = None,
        pool: int = 32,
        seed: int = 0,
        extra_order: tuple[str, str, float, float] | None = None,
    ):
        rng = np.random.default_rng(workload.seed + 1_000 + seed)
        self.k = k
        self.ids = ids or IdSource()
        self._rest = [workload.rest_bytes(k, rng) for _ in range(pool)]
        self._next = 0
        self._cancel_tail: dict[int, bytes] = {}
        self._extra = b""
        self._extra_ids = IdSource(prefix=self.ids.prefix + "x")
        if extra_order is not None:
            account, symbol, quantity, price = extra_order
            self._extra = pb.OrderBatch(
                account=[account], symbol=[symbol], side=[SIDE_BUY], quantity=[quantity], price=[price]
            ).SerializeToString()

    def request(self) -> tuple[bytes, bytes]:
        """(request bytes, the ids' wire bytes) for one batch of k orders."""
        ids = self.ids.wire(self.k)
        rest = self._rest[self._next]
        self._next = (self._next + 1) % len(self._rest)
        if self._extra:
            rest += self._extra_ids.wire(1) + self._extra
        return wrap_batch(1, ids + rest), ids

    def cancel_request(self, ids_wire: list[bytes]) -> bytes:
        """A ReportExecutionsRequest canceling every id (ReportExecutionsRequest.client_order_id is field 1)."""
        n = sum(len(chunk) for chunk in ids_wire) // (self.ids.id_len + 2)
        tail = self._cancel_tail.get(n)
        if tail is None:
            tail = pb.ReportExecutionsRequest(
                type=[EXEC_CANCELED] * n, quantity=[0.0] * n, price=[0.0] * n
            ).SerializeToString()
            if len(self._cancel_tail) > 16:
                self._cancel_tail.clear()
            self._cancel_tail[n] = tail
        return b"".join(ids_wire) + tail
