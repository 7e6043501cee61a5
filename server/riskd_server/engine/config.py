"""The engine's capacities and bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..dynamic import DynamicConfig
from ..kernel import layout as L


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
    # Dynamic limits (riskd_server.dynamic)
    dynamic_min_scale: float = 0.25
    vol_ewma_lambda: float = 0.94
    dynamic_min_returns: int = 5
    dynamic_tolerance: float = 0.01

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
        try:
            self.dynamic()
        except ValueError as exc:
            errors.append(str(exc))
        if errors:
            raise ValueError("; ".join(errors))

    def dynamic(self) -> DynamicConfig:
        return DynamicConfig(
            min_scale=self.dynamic_min_scale,
            ewma_lambda=self.vol_ewma_lambda,
            min_returns=self.dynamic_min_returns,
            tolerance=self.dynamic_tolerance,
        )
