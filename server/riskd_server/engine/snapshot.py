"""Risk snapshots: per account, exposure, open orders, positions at their marks, trading state and
the limits closest to breach, read from the engine's state (pure reads, no I/O, no mutation).

One vectorised pass per read: the account rows asked for are gathered at once, their books found
through per-account book lists (kernel.snapshot: cost proportional to their books, not to every
book), the limits resolved in numpy and ranked in one numba pass. The result is columns
(``SnapshotColumns``): the wire layer encodes them without a Python object per item
(wire.snapshot), and ``accounts()`` turns a slice of them into values.

Observed values are the quantities the checks compare, without an order's own contribution
(what stands now):

- MAX_POSITION, per book the account has: the worst-case position max(pos + open buy,
  open sell - pos), what the check compares with the threshold for an order of size 0. Books
  that are flat with nothing open are left out (their value is 0).
- MAX_GROSS_EXPOSURE: gross = sum |pos| * mark + sum open qty * order price (Engine.exposure).
- MAX_NET_EXPOSURE: |net|.
- MAX_OPEN_ORDERS: the open-order count (the next order breaches once it equals the threshold).
- MAX_ORDER_RATE: the tokens in use in the account's bucket, refilled to now (threshold minus the
  tokens left; 0 for a bucket never used, which starts full). Reading takes no token.

Order-level kinds (MAX_ORDER_QUANTITY, MAX_ORDER_NOTIONAL, PRICE_COLLAR) and RESTRICTED_SYMBOL have
no standing value and are left out; disabled limits are never in the limit book. The limit that
applies is the one the checks use: the most specific enabled limit of the kind.
utilisation = observed / threshold; a zero threshold gives +inf when observed > 0, else 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..kernel import layout as L
from ..kernel.snapshot import closest_limits
from ..limits import (
    MAX_GROSS_EXPOSURE,
    MAX_NET_EXPOSURE,
    MAX_OPEN_ORDERS,
    MAX_ORDER_RATE,
    MAX_POSITION,
)
from .books import BookLists

if TYPE_CHECKING:
    from ..interning import Interner
    from ..limitbook import LimitBook
    from .core import Engine

CLOSEST = 5  # limits reported per account
ACTIVE = 1  # TradingState: an unset state (0) reads as ACTIVE
# The kinds a snapshot reports, and the account-level ones among them.
SNAPSHOT_KINDS = (MAX_POSITION, MAX_GROSS_EXPOSURE, MAX_NET_EXPOSURE, MAX_ORDER_RATE, MAX_OPEN_ORDERS)
_ACCOUNT_KINDS = np.array(
    [MAX_GROSS_EXPOSURE, MAX_NET_EXPOSURE, MAX_ORDER_RATE, MAX_OPEN_ORDERS], dtype=np.int64
)


@dataclass(frozen=True, slots=True)
class PositionValue:
    """A non-flat position at its mark (NaN mark and value when the symbol has none)."""

    symbol: str
    quantity: float
    mark: float
    value: float


@dataclass(frozen=True, slots=True)
class LimitUse:
    """How close one limit is to breach for one account (symbol "" for account-level kinds)."""

    limit_id: str
    kind: int
    symbol: str
    observed: float
    threshold: float
    utilisation: float


@dataclass(frozen=True, slots=True)
class AccountRisk:
    """One account's risk now; positions in the order the account first held the symbol,
    closest_limits closest first."""

    account: str
    gross: float
    net: float
    open_orders: int
    positions: tuple[PositionValue, ...]
    trading_state: int
    closest_limits: tuple[LimitUse, ...]


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """Accounts read at one state version."""

    accounts: tuple[AccountRisk, ...]
    state_version: int
    firm_trading_state: int


@dataclass(frozen=True, slots=True, eq=False)
class SnapshotColumns:
    """One read of k accounts as columns of private copies (later changes to the state do not
    show). Names are ids into the interners (which never forget or rename an id) and limit
    indexes into ``limits`` (an immutable limit book). Positions and limits are grouped by
    account: account i's are rows pos_at[i]:pos_at[i + 1] and lim_at[i]:lim_at[i + 1]."""

    account: np.ndarray  # int64 account ids
    gross: np.ndarray
    net: np.ndarray
    open_orders: np.ndarray  # int64
    trading_state: np.ndarray  # int64, never 0
    pos_at: np.ndarray  # int64[k + 1]
    pos_symbol: np.ndarray  # int64 symbol ids
    pos_quantity: np.ndarray
    pos_mark: np.ndarray  # NaN: no mark
    pos_value: np.ndarray
    lim_at: np.ndarray  # int64[k + 1]
    lim_index: np.ndarray  # int64 index into limits
    lim_kind: np.ndarray  # int64 RiskCheck
    lim_symbol: np.ndarray  # int64 symbol id, -1 for account-level kinds
    lim_observed: np.ndarray
    lim_threshold: np.ndarray
    lim_utilisation: np.ndarray
    state_version: int
    firm_trading_state: int
    accounts_names: Interner
    symbols_names: Interner
    limits: LimitBook
    # Where the wire layer keeps this read's encoding (wire.snapshot.SnapshotWire), so it is made
    # once however many subscribers send it and lives exactly as long as the read.
    encoded: list[Any] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return int(self.account.shape[0])

    def accounts(self, start: int = 0, stop: int | None = None) -> list[AccountRisk]:
        """AccountRisk values of accounts start..stop-1 (a Python object per item: ~1-2 us each)."""
        stop = len(self) if stop is None else min(stop, len(self))
        if start >= stop:
            return []
        p0, p1 = int(self.pos_at[start]), int(self.pos_at[stop])
        symbols = self.symbols_names
        positions = [
            PositionValue(*item)
            for item in zip(
                symbols.names_of(self.pos_symbol[p0:p1]).tolist(),
                self.pos_quantity[p0:p1].tolist(),
                self.pos_mark[p0:p1].tolist(),
                self.pos_value[p0:p1].tolist(),
                strict=True,
            )
        ]
        l0, l1 = int(self.lim_at[start]), int(self.lim_at[stop])
        lim_sym = self.lim_symbol[l0:l1]
        sym_names = np.full(lim_sym.shape[0], "", dtype=object)
        named = lim_sym >= 0
        sym_names[named] = symbols.names_of(lim_sym[named])
        limits = [
            LimitUse(*item)
            for item in zip(
                self.limits.limit_ids(self.lim_index[l0:l1]).tolist(),
                self.lim_kind[l0:l1].tolist(),
                sym_names.tolist(),
                self.lim_observed[l0:l1].tolist(),
                self.lim_threshold[l0:l1].tolist(),
                self.lim_utilisation[l0:l1].tolist(),
                strict=True,
            )
        ]
        pos_at = (self.pos_at[start : stop + 1] - p0).tolist()
        lim_at = (self.lim_at[start : stop + 1] - l0).tolist()
        return [
            AccountRisk(name, gross, net, open_orders, tuple(positions[pos_at[i] : pos_at[i + 1]]), state,
                        tuple(limits[lim_at[i] : lim_at[i + 1]]))
            for i, (name, gross, net, open_orders, state) in enumerate(
                zip(
                    self.accounts_names.names_of(self.account[start:stop]).tolist(),
                    self.gross[start:stop].tolist(),
                    self.net[start:stop].tolist(),
                    self.open_orders[start:stop].tolist(),
                    self.trading_state[start:stop].tolist(),
                    strict=True,
                )
            )
        ]  # fmt: skip

    def snapshot(self) -> RiskSnapshot:
        return RiskSnapshot(tuple(self.accounts()), self.state_version, self.firm_trading_state)


class SnapshotReader:
    """Reads snapshots from an engine; keeps only derived indexes (the per-account book lists, the
    exact MAX_POSITION limits of the current limit book), never state of its own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lists = BookLists()  # the per-account book lists (engine.books)
        self._exact_for: LimitBook | None = None
        self._exact_keys = np.empty(0, dtype=np.int64)  # sorted account << SYMBOL_BITS | symbol
        self._exact_limits = np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------ entry points

    def account_ids(self, names: Iterable[str]) -> np.ndarray:
        """Ids of the known accounts among names, in the order given, without repeats."""
        get = self._engine.accounts.get
        ids = [a for a in map(get, dict.fromkeys(names)) if a >= 0]
        return np.asarray(ids, dtype=np.int64)

    def all_ids(self) -> np.ndarray:
        """Every known account, in the order riskd first saw them."""
        return np.arange(len(self._engine.accounts), dtype=np.int64)

    def snapshot(self, names: Sequence[str] = ()) -> RiskSnapshot:
        """The named accounts (unknown ones left out), or every known account for none."""
        return self.columns(self.account_ids(names) if len(names) else self.all_ids()).snapshot()

    def read(self, ids: np.ndarray, now: float | None = None) -> list[AccountRisk]:
        """AccountRisk of each account id (all known), in the order of ids."""
        return self.columns(ids, now).accounts()

    def columns(self, ids: np.ndarray, now: float | None = None) -> SnapshotColumns:
        """Read accounts ids (known, no repeats) in one vectorised pass; ``now`` refills the rate
        buckets (default: the engine's clock, the one the checks use)."""
        eng = self._engine
        s = eng._s
        book = eng.limits
        k = int(ids.shape[0])
        now = eng._clock() if now is None else now
        rows = s.acct[ids]
        gross = (rows[:, L.A_POS_GROSS] + rows[:, L.A_POS_GROSS_LO]) + (
            rows[:, L.A_OPEN_GROSS] + rows[:, L.A_OPEN_GROSS_LO]
        )
        net = (rows[:, L.A_POS_NET] + rows[:, L.A_POS_NET_LO]) + (
            rows[:, L.A_OPEN_NET] + rows[:, L.A_OPEN_NET_LO]
        )
        open_count = rows[:, L.A_OPEN_COUNT]
        trading = rows[:, L.A_TRADING].astype(np.int64)
        trading[trading == 0] = ACTIVE

        owner, sym, pos, open_buy, open_sell = self._books_of(ids)  # grouped by owner, in ids' order

        held = np.flatnonzero(pos != 0.0)
        held_sym = sym[held]
        marks = s.sym[held_sym]
        mark = np.where(np.isnan(marks[:, L.S_PRICE]), marks[:, L.S_FILL], marks[:, L.S_PRICE])
        qty = pos[held]

        # Candidates: the account-level kinds per account, MAX_POSITION per book with anything
        # standing; closest_limits keeps each account's CLOSEST.
        values = book.values
        acc_li = np.empty((k, _ACCOUNT_KINDS.shape[0]), dtype=np.int64)
        acc_obs = np.empty((k, _ACCOUNT_KINDS.shape[0]), dtype=np.float64)
        for j, kind in enumerate(_ACCOUNT_KINDS.tolist()):
            li = acc_li[:, j] = self._resolve(book, kind, ids, None)
            if kind == MAX_GROSS_EXPOSURE:
                acc_obs[:, j] = gross
            elif kind == MAX_NET_EXPOSURE:
                acc_obs[:, j] = np.abs(net)
            elif kind == MAX_OPEN_ORDERS:
                acc_obs[:, j] = open_count
            else:
                acc_obs[:, j] = _rate_in_use(rows, values[np.maximum(li, 0), L.L_THRESHOLD], now)
        worst = np.maximum(pos + open_buy, open_sell - pos)
        standing = np.flatnonzero(worst != 0.0)
        b_owner, b_sym = owner[standing], sym[standing]
        b_li = self._resolve(book, MAX_POSITION, ids[b_owner], b_sym)
        slots = k * CLOSEST
        out_kind = np.empty(slots, dtype=np.int64)
        out_li = np.empty(slots, dtype=np.int64)
        out_sym = np.empty(slots, dtype=np.int64)
        out_obs = np.empty(slots, dtype=np.float64)
        out_util = np.empty(slots, dtype=np.float64)
        count = np.empty(k, dtype=np.int64)
        closest_limits(
            _ACCOUNT_KINDS, acc_li, acc_obs, _offsets(b_owner, k), MAX_POSITION, b_li, b_sym,
            worst[standing], values, CLOSEST, out_kind, out_li, out_sym, out_obs, out_util, count,
        )  # fmt: skip
        kept = (np.arange(CLOSEST) < count[:, None]).ravel()
        lim_index = out_li[kept]
        return SnapshotColumns(
            account=ids.astype(np.int64, copy=True),
            gross=gross,
            net=net,
            open_orders=open_count.astype(np.int64),
            trading_state=trading,
            pos_at=_offsets(owner[held], k),
            pos_symbol=held_sym,
            pos_quantity=qty,
            pos_mark=mark,
            pos_value=qty * mark,
            lim_at=np.concatenate(([0], np.cumsum(count))).astype(np.int64),
            lim_index=lim_index,
            lim_kind=out_kind[kept],
            lim_symbol=out_sym[kept],
            lim_observed=out_obs[kept],
            lim_threshold=values[lim_index, L.L_THRESHOLD],
            lim_utilisation=out_util[kept],
            state_version=eng.state_version,
            firm_trading_state=eng.trading_state(""),
            accounts_names=eng.accounts,
            symbols_names=eng.symbols,
            limits=book,
        )

    # ------------------------------------------------------------------ books

    def _books_of(self, ids: np.ndarray) -> tuple[np.ndarray, ...]:
        """The books of accounts ids, as columns (owner: the index in ids of the book's account,
        non-decreasing; symbol; position; open buy; open sell)."""
        return self._lists.columns(self._engine._s, ids)

    # ------------------------------------------------------------------ limits

    def _resolve(
        self, book: LimitBook, kind: int, accounts: np.ndarray, symbols: np.ndarray | None
    ) -> np.ndarray:
        """Index of the limit of kind that applies to each (account, symbol), -1 for none: the most
        specific enabled one, as kernel.levels.find_limit (exact > account > symbol > any).
        Account-level kinds (symbols None) have no symbol, so only the account and any levels."""
        table = book.table
        n_acct = int(table[0, L.LT_ACCOUNTS])
        li = np.full(accounts.shape[0], -1, dtype=np.int64)
        if symbols is not None:
            keys, limits = self._exact_position_limits(book)
            if keys.shape[0]:
                wanted = (accounts << L.SYMBOL_BITS) | symbols
                at = np.minimum(np.searchsorted(keys, wanted), keys.shape[0] - 1)
                hit = keys[at] == wanted
                li[hit] = limits[at[hit]]
        free = (li < 0) & (accounts < n_acct)
        li[free] = table[1 + accounts[free], kind]
        if symbols is not None:
            rows = 1 + n_acct + symbols
            free = (li < 0) & (rows < table.shape[0])
            li[free] = table[rows[free], kind]
        li[li < 0] = table[0, kind]
        return li

    def _exact_position_limits(self, book: LimitBook) -> tuple[np.ndarray, np.ndarray]:
        """(sorted pair keys, limit indexes) of the (account, symbol) MAX_POSITION limits, decoded
        once per limit book from its exact tables (LimitBook.exact_entries)."""
        if self._exact_for is not book:
            entries = book.exact_entries()
            mine = entries[entries[:, 2] == MAX_POSITION]
            pairs = (mine[:, 0] << L.SYMBOL_BITS) | mine[:, 1]
            order = np.argsort(pairs)
            self._exact_keys = pairs[order]
            self._exact_limits = mine[order, 3]
            self._exact_for = book
        return self._exact_keys, self._exact_limits


def _rate_in_use(rows: np.ndarray, threshold: np.ndarray, now: float) -> np.ndarray:
    """Tokens in use in each account's bucket of capacity threshold, refilled to now (as
    kernel.checks._take_token refills, without taking one); 0 for a bucket never used."""
    elapsed = np.maximum(now - rows[:, L.A_LAST_TS], 0.0)
    tokens = np.minimum(threshold, rows[:, L.A_TOKENS] + elapsed * threshold)
    return np.where(rows[:, L.A_BUCKET_SET] != 0.0, threshold - tokens, 0.0)


def _offsets(groups: np.ndarray, k: int) -> np.ndarray:
    """int64[k + 1]: where each of groups 0..k-1 starts in a non-decreasing array of group numbers."""
    return np.searchsorted(groups, np.arange(k + 1), side="left").astype(np.int64)
