"""A plain-Python model of riskd's check and execution semantics, written from the spec.

Deliberately naive: it recomputes every exposure from scratch for every order, keeps orders in
dicts and uses no numba, so a disagreement with the kernel points at the kernel's bookkeeping.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field

BUY, SELL = 1, 2
ACTIVE, REDUCING, HALTED = 1, 2, 3
QTY, NOTIONAL, POSITION, GROSS, NET, COLLAR, RATE, OPEN_ORDERS, RESTRICTED = range(1, 10)
INVALID, DUPLICATE, TRADING_HALTED, REDUCE_ONLY, NO_REF = 20, 21, 22, 23, 24
FILL, CANCELED, REJECTED, EXPIRED = 1, 2, 3, 4
MAX_NAME_LEN = 128
MAX_ORDER_NOTIONAL = 1e15  # the server's default max_order_notional


def has_control(name: str) -> bool:
    """A character of Unicode category Cc makes a name invalid."""
    return any(unicodedata.category(c) == "Cc" for c in name)


@dataclass(frozen=True, slots=True)
class MLimit:
    limit_id: str
    kind: int
    account: str
    symbol: str
    threshold: float
    warn_fraction: float
    disabled: bool


@dataclass(frozen=True, slots=True)
class MViolation:
    order_index: int
    check: int
    limit_id: str
    observed: float
    threshold: float
    warning: bool


@dataclass(slots=True)
class MOrder:
    account: str
    symbol: str
    side: int
    open_qty: float
    price: float
    is_open: bool = True


@dataclass(slots=True)
class Model:
    retention: int = 1_000_000
    max_notional: float = MAX_ORDER_NOTIONAL
    limits: dict[str, MLimit] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)  # UpdatePrices
    fills: dict[str, float] = field(default_factory=dict)  # last fill price
    positions: dict[tuple[str, str], float] = field(default_factory=dict)
    orders: dict[str, MOrder] = field(default_factory=dict)  # open + retained closed
    closed: list[str] = field(default_factory=list)  # retained closed ids, oldest first
    states: dict[str, int] = field(default_factory=dict)  # "" = firm
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # account -> (tokens, last ts)

    # -------------------------------------------------------------- helpers

    def mark(self, symbol: str) -> float | None:
        if symbol in self.marks:
            return self.marks[symbol]
        return self.fills.get(symbol)

    def open_orders(self, account: str) -> list[MOrder]:
        return [o for o in self.orders.values() if o.is_open and o.account == account]

    def open_side(self, account: str, symbol: str, side: int) -> float:
        return sum(o.open_qty for o in self.open_orders(account) if o.symbol == symbol and o.side == side)

    def gross_net(self, account: str) -> tuple[float, float]:
        pos_gross, pos_net, open_gross, open_net = self.exposure(account)
        return pos_gross + open_gross, pos_net + open_net

    def exposure(self, account: str) -> tuple[float, float, float, float]:
        """(position gross, position net, open gross, open net), each the correctly rounded sum of
        its terms as they are now (|pos| * mark, pos * mark, open qty * p, +/- open qty * p)."""
        held = [
            (pos, m)
            for (a, s), pos in self.positions.items()
            if a == account and pos != 0 and (m := self.mark(s)) is not None
        ]
        terms = [(o.side, o.open_qty * o.price) for o in self.open_orders(account)]
        return (
            math.fsum(abs(pos) * m for pos, m in held),
            math.fsum(pos * m for pos, m in held),
            math.fsum(term for _, term in terms),
            math.fsum(term if side == BUY else -term for side, term in terms),
        )

    def find_limit(self, kind: int, account: str, symbol: str) -> MLimit | None:
        for want_a, want_s in ((account, symbol), (account, ""), ("", symbol), ("", "")):
            found = sorted(
                (
                    lim
                    for lim in self.limits.values()
                    if lim.kind == kind
                    and not lim.disabled
                    and lim.account == want_a
                    and lim.symbol == want_s
                ),
                key=lambda lim: lim.limit_id,
            )
            if found:
                return found[0]
        return None

    # -------------------------------------------------------------- operations

    def check(
        self,
        ids: list[str],
        accounts: list[str],
        symbols: list[str],
        sides: list[int],
        qtys: list[float],
        prices: list[float],
        now: float,
    ) -> tuple[list[bool], list[int], list[MViolation]]:
        accepted: list[bool] = []
        masks: list[int] = []
        out: list[MViolation] = []
        for i, (cid, acc, sym, side, qty, px) in enumerate(
            zip(ids, accounts, symbols, sides, qtys, prices, strict=True)
        ):
            if (
                not cid
                or not acc
                or not sym
                or max(len(cid), len(acc), len(sym)) > MAX_NAME_LEN
                or has_control(cid + acc + sym)
                or side not in (BUY, SELL)
                or not math.isfinite(qty)
                or qty <= 0
                or not math.isfinite(px)
                or px < 0
            ):
                accepted.append(False)
                masks.append(1 << INVALID)
                out.append(MViolation(i, INVALID, "", 0.0, 0.0, False))
                continue
            mark = self.mark(sym)
            p = px if px > 0 else mark
            if p is not None and not qty * p <= self.max_notional:  # inf, or past the bound
                accepted.append(False)
                masks.append(1 << INVALID)
                out.append(MViolation(i, INVALID, "", qty * p, self.max_notional, False))
                continue
            mask = 0
            viol: list[MViolation] = []
            pos = self.positions.get((acc, sym), 0.0)
            open_buy = self.open_side(acc, sym, BUY)
            open_sell = self.open_side(acc, sym, SELL)
            gross, net = self.gross_net(acc)
            signed = qty if side == BUY else -qty
            for kind in range(1, 10):
                lim = self.find_limit(kind, acc, sym)
                if lim is None:
                    continue
                t = lim.threshold
                if kind == RESTRICTED:
                    mask |= 1 << kind
                    viol.append(MViolation(i, kind, lim.limit_id, 1.0, t, False))
                    continue
                observed: float | None = None
                breach = False
                if kind == QTY:
                    observed = qty
                    breach = observed > t
                elif kind == NOTIONAL and p is not None:
                    observed = qty * p
                    breach = observed > t
                elif kind == POSITION:
                    observed = pos + open_buy + qty if side == BUY else -(pos - open_sell - qty)
                    breach = observed > t
                elif kind == GROSS and p is not None:
                    observed = gross + qty * p
                    breach = observed > t
                elif kind == NET and p is not None:
                    observed = abs(net + signed * p)
                    breach = observed > t and observed > abs(net)
                elif kind == COLLAR and px > 0 and mark is not None:
                    observed = abs(px - mark) / mark
                    breach = observed > t
                elif kind == RATE:
                    if acc in self.buckets:
                        tokens, last = self.buckets[acc]
                        tokens = min(t, tokens + max(0.0, now - last) * t)
                    else:
                        tokens = t
                    if tokens >= 1.0:
                        tokens -= 1.0
                        observed = t - tokens
                    else:
                        observed = t - tokens + 1.0
                        breach = True
                    self.buckets[acc] = (tokens, now)
                elif kind == OPEN_ORDERS:
                    observed = len(self.open_orders(acc)) + 1.0
                    breach = observed > t
                if observed is None:
                    continue
                if breach:
                    mask |= 1 << kind
                    viol.append(MViolation(i, kind, lim.limit_id, observed, t, False))
                elif lim.warn_fraction > 0 and observed > lim.warn_fraction * t:
                    viol.append(MViolation(i, kind, lim.limit_id, observed, t, True))
            if cid in self.orders:
                mask |= 1 << DUPLICATE
                viol.append(MViolation(i, DUPLICATE, "", 0.0, 0.0, False))
            state = max(self.states.get("", ACTIVE), self.states.get(acc, ACTIVE))
            if state == HALTED:
                mask |= 1 << TRADING_HALTED
                viol.append(MViolation(i, TRADING_HALTED, "", 0.0, 0.0, False))
            elif state == REDUCING:
                if side == BUY:
                    reduces = pos < 0 and pos + open_buy + qty <= 0
                else:
                    reduces = pos > 0 and pos - open_sell - qty >= 0
                if not reduces:
                    mask |= 1 << REDUCE_ONLY
                    viol.append(MViolation(i, REDUCE_ONLY, "", 0.0, 0.0, False))
            if p is None:
                mask |= 1 << NO_REF
                viol.append(MViolation(i, NO_REF, "", 0.0, 0.0, False))
            out.extend(viol)
            masks.append(mask)
            accepted.append(mask == 0)
            if mask == 0:
                assert p is not None
                self.orders[cid] = MOrder(acc, sym, side, qty, p)
        return accepted, masks, out

    def _close(self, cid: str) -> None:
        self.orders[cid].is_open = False
        self.orders[cid].open_qty = 0.0
        self.closed.append(cid)

    def _forget_old_closed(self) -> None:
        """After an execution batch, only the newest ``retention`` closed ids stay known."""
        while len(self.closed) > self.retention:
            del self.orders[self.closed.pop(0)]

    def execute(
        self,
        ids: list[str],
        types: list[int],
        qtys: list[float],
        prices: list[float],
        accounts: list[str] | None = None,
        symbols: list[str] | None = None,
        sides: list[int] | None = None,
    ) -> list[str]:
        """Returns a status per report: applied, overfill, late_fill, unknown_filled, unknown,
        bad_type, bad_fill, closed, bad_origin.

        accounts, symbols and sides (all given or none) name each report's order; only a fill of
        an unknown id uses them. Name capacity is not modelled (the tests stay below it).
        """
        n = len(ids)
        origins = zip(accounts or [""] * n, symbols or [""] * n, sides or [0] * n, strict=True)
        statuses: list[str] = []
        for cid, kind, f, x, (acc, sym, side) in zip(ids, types, qtys, prices, origins, strict=True):
            order = self.orders.get(cid)
            if order is None:
                statuses.append(self._unknown_fill(kind, f, x, acc, sym, side))
                continue
            if kind not in (FILL, CANCELED, REJECTED, EXPIRED):
                statuses.append("bad_type")
                continue
            if kind != FILL:
                if not order.is_open:
                    statuses.append("closed")
                    continue
                self._close(cid)
                statuses.append("applied")
                continue
            if not (math.isfinite(f) and f > 0 and math.isfinite(x) and x > 0 and f * x <= self.max_notional):
                statuses.append("bad_fill")
                continue
            open_before = order.open_qty
            was_open = order.is_open
            key = (order.account, order.symbol)
            self.positions[key] = self.positions.get(key, 0.0) + (f if order.side == BUY else -f)
            self.fills[order.symbol] = x
            if was_open:
                order.open_qty = max(0.0, open_before - f)
                if order.open_qty <= 0:
                    self._close(cid)
            if not was_open:
                statuses.append("late_fill")
            else:
                statuses.append("overfill" if f > open_before else "applied")
        self._forget_old_closed()
        return statuses

    def _unknown_fill(self, kind: int, f: float, x: float, acc: str, sym: str, side: int) -> str:
        """A report for an id riskd does not know: a valid fill that names its account, symbol and
        side moves that position (a new book if need be); anything else is not applied."""
        if kind != FILL or (not acc and not sym and side == 0):
            return "unknown"
        if (
            not acc
            or not sym
            or max(len(acc), len(sym)) > MAX_NAME_LEN
            or has_control(acc)
            or has_control(sym)
            or side not in (BUY, SELL)
        ):
            return "bad_origin"
        if not (math.isfinite(f) and f > 0 and math.isfinite(x) and x > 0 and f * x <= self.max_notional):
            return "bad_fill"
        self.positions[(acc, sym)] = self.positions.get((acc, sym), 0.0) + (f if side == BUY else -f)
        self.fills[sym] = x
        return "unknown_filled"

    def update_prices(self, symbols: list[str], prices: list[float]) -> None:
        self.marks.update(zip(symbols, prices, strict=True))

    def load_positions(self, accounts: list[str], symbols: list[str], qtys: list[float]) -> None:
        for a, s, q in zip(accounts, symbols, qtys, strict=True):
            self.positions[(a, s)] = q

    def upsert(self, limits: list[MLimit]) -> None:
        self.limits.update((lim.limit_id, lim) for lim in limits)

    def delete(self, ids: list[str]) -> None:
        for limit_id in ids:
            self.limits.pop(limit_id, None)

    def set_state(self, account: str, state: int) -> None:
        self.states[account] = state

    def open_quantity(self, cid: str) -> float:
        order = self.orders.get(cid)
        return order.open_qty if order is not None and order.is_open else 0.0
