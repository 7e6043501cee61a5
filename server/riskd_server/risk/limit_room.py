"""The largest buy and sell the quantity, notional, position, gross and net limits accept, per
symbol, vectorised: the checks' own rules (kernel.checks, README "Check semantics") solved for the
order quantity q at price p (the mark: a market order's reference price).

- MAX_ORDER_QUANTITY: q <= T.  MAX_ORDER_NOTIONAL: q p <= T.
- MAX_POSITION: buy pos + open_buy + q <= T; sell open_sell - pos + q <= T.
- MAX_GROSS_EXPOSURE: gross + q p <= T, gross = sum |pos| mark + sum open qty x order price (the
  account's sums, Engine.exposure).
- MAX_NET_EXPOSURE: rejected when |net'| > T and |net'| > |net|, net' = net +- q p: so the order
  passes while |net'| <= max(T, |net|): buy q p <= max(T, |net|) - net, sell q p <= max(T, |net|) + net.
- RESTRICTED_SYMBOL: any matching limit rejects every order: 0.
No limit of a kind: +inf for it. A room already used up: 0 (never negative). No price: 0 (the
check rejects NO_REFERENCE_PRICE).
"""

from __future__ import annotations

import numpy as np

from ..limits import (
    MAX_GROSS_EXPOSURE,
    MAX_NET_EXPOSURE,
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_QUANTITY,
    MAX_POSITION,
    RESTRICTED_SYMBOL,
)

# The kinds, in the row order of the thresholds limit_room takes (kernel.sizing.resolve_thresholds).
ROOM_KINDS = np.array(
    [
        MAX_ORDER_QUANTITY,
        MAX_ORDER_NOTIONAL,
        MAX_POSITION,
        MAX_GROSS_EXPOSURE,
        MAX_NET_EXPOSURE,
        RESTRICTED_SYMBOL,
    ],
    dtype=np.int64,
)
_QTY, _NOTIONAL, _POSITION, _GROSS, _NET, _RESTRICTED = range(6)


def limit_room(
    thresholds: np.ndarray,
    position: np.ndarray,
    open_buy: np.ndarray,
    open_sell: np.ndarray,
    price: np.ndarray,
    gross: float,
    net: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(largest buy, largest sell) per symbol; thresholds float64[6, r] in ROOM_KINDS order
    (+inf: no limit), the rest float64[r] (price NaN or <= 0: none)."""
    t = thresholds
    priced = price > 0.0
    p = np.where(priced, price, 1.0)
    with np.errstate(invalid="ignore"):  # inf - inf cannot occur: thresholds and sums are finite or +inf
        common = np.minimum(t[_QTY], t[_NOTIONAL] / p)
        common = np.minimum(common, np.maximum(t[_GROSS] - gross, 0.0) / p)
        common = np.where(np.isfinite(t[_RESTRICTED]), 0.0, common)
        net_room = np.maximum(t[_NET], abs(net))
        buy = np.minimum(common, np.maximum(t[_POSITION] - (position + open_buy), 0.0))
        buy = np.minimum(buy, np.maximum(net_room - net, 0.0) / p)
        sell = np.minimum(common, np.maximum(t[_POSITION] - (open_sell - position), 0.0))
        sell = np.minimum(sell, np.maximum(net_room + net, 0.0) / p)
    return np.where(priced, buy, 0.0), np.where(priced, sell, 0.0)
