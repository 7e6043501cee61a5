"""What the engine answers and how it refuses: outcome values, request errors, the executions'
messages, and the shared read-only parts of the commonest outcome (one order accepted cleanly).

Shared by the engine (which builds them) and the wire layer (which encodes them); neither imports
the other for these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .limits import MAX_NAME_LEN

# ReportExecutionsResponse.error by the kernel's status code (kernel.layout X_*).
EXEC_MESSAGES = np.array(
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
    # int64 codes: error[i] == EXEC_MESSAGES[status[i]] (lets the servicer encode from bytes)
    status: np.ndarray | None = None


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


# Shared, read-only parts of the commonest outcome: one order accepted without warnings.
ACCEPTED_ONE = _read_only(np.ones(1, dtype=bool))
MASK_ZERO_ONE = _read_only(np.zeros(1, dtype=np.uint32))
NO_VIOLATIONS = Violations(
    order_index=_read_only(np.empty(0, dtype=np.uint32)),
    check=_read_only(np.empty(0, dtype=np.int32)),
    limit_id=_read_only(np.empty(0, dtype=object)),
    observed=_read_only(np.empty(0, dtype=np.float64)),
    threshold=_read_only(np.empty(0, dtype=np.float64)),
    warning=_read_only(np.empty(0, dtype=bool)),
)
