"""Counts of checked orders and of violations by RiskCheck, kept by the engine for metrics.

The check path pays almost nothing for them: one integer add per request (``checked``), and for
a request with violations one more array argument to the numba pass that already copies them
out (kernel.rows.violation_columns, ~0.1 µs), which counts each violation at ``2 * check +
warning`` and each rejected order (layout.VC_*). Metrics read the counters at scrape time
(``CheckCounter.snapshot``), on the engine's event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernel.layout import VC_FIELDS, VC_REJECTED


@dataclass(frozen=True, slots=True)
class CheckCounts:
    """Totals since the engine started (not persisted: a restart starts them at 0)."""

    checked: int  # orders checked
    rejected: int  # orders rejected (reject_mask != 0); accepted = checked - rejected
    rejects: dict[int, int]  # failing checks by RiskCheck value (an order can fail several)
    warnings: dict[int, int]  # soft warnings by RiskCheck value (the order stays accepted)

    @property
    def accepted(self) -> int:
        return self.checked - self.rejected


class CheckCounter:
    """The engine's live counters: ``checked`` (the engine adds to it inline) and ``counts``
    (written by kernel.rows.violation_columns)."""

    __slots__ = ("checked", "counts")

    def __init__(self) -> None:
        self.checked = 0
        self.counts = np.zeros(VC_FIELDS, dtype=np.int64)

    def snapshot(self) -> CheckCounts:
        counts = self.counts.copy()
        rejects = counts[0:VC_REJECTED:2]
        warnings = counts[1:VC_REJECTED:2]
        return CheckCounts(
            checked=self.checked,
            rejected=int(counts[VC_REJECTED]),
            rejects={int(c): int(rejects[c]) for c in np.flatnonzero(rejects)},
            warnings={int(c): int(warnings[c]) for c in np.flatnonzero(warnings)},
        )
