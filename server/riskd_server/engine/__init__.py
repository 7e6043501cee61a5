"""The risk engine (engine.core.Engine) and what it is built from.

Modules: ``core`` (the Engine: queries, executions, prices, positions, limits, trading state),
``checking`` (the pre-trade check entry points), ``forced`` (a journaled check applied again with
its recorded outcome), ``replay`` (journal input records applied to an engine), ``state`` (the
state arrays and their growth), ``recorder`` (engine events -> change records, or nothing without
a sink), ``recovery`` (state from a database snapshot), ``names`` (id keys, name validation),
``config`` (EngineConfig).
Outcomes and errors are riskd_server.outcomes (shared with the wire layer).
"""

from ..outcomes import (
    EXEC_MESSAGES,
    AccountExposure,
    Backpressure,
    BatchError,
    CheckOutcome,
    ExecOutcome,
    Violations,
)
from .config import EngineConfig
from .core import NO_ORIGIN, SIDE_BUY, SIDE_SELL, STATE_ACTIVE, STATE_HALTED, Engine
from .recorder import ChangeSink

__all__ = [
    "EXEC_MESSAGES",
    "NO_ORIGIN",
    "SIDE_BUY",
    "SIDE_SELL",
    "STATE_ACTIVE",
    "STATE_HALTED",
    "AccountExposure",
    "Backpressure",
    "BatchError",
    "ChangeSink",
    "CheckOutcome",
    "Engine",
    "EngineConfig",
    "ExecOutcome",
    "Violations",
]
