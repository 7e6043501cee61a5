"""CheckResults: the answer to one batch, read column-wise or order by order.

The protobuf message is kept as is and per-order views are built on demand, so a 10,000-order
batch where everything passed costs two list conversions, not 10,000 objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from riskd.v1 import risk_pb2 as pb

from ._columns import decode_violation, mask_checks
from ._types import OrderResult, ViolationInfo


class CheckResults:
    """Results of one checked batch, in the batch's order.

    ``len(results)``, ``results[i]`` and iteration give OrderResult values; ``accepted`` and
    ``reject_mask`` are the raw columns; ``rejected()`` lists the orders that did not pass.
    """

    __slots__ = ("_ids", "_raw", "_reasons")

    def __init__(self, raw: pb.CheckResult, client_order_ids: Sequence[str]) -> None:
        self._raw = raw
        self._ids = client_order_ids
        self._reasons: dict[int, tuple[ViolationInfo, ...]] | None = None

    @property
    def raw(self) -> pb.CheckResult:
        """The riskd.v1.CheckResult as received."""
        return self._raw

    @property
    def state_version(self) -> int:
        return self._raw.state_version

    @property
    def accepted(self) -> list[bool]:
        return list(self._raw.accepted)

    @property
    def reject_mask(self) -> list[int]:
        return list(self._raw.reject_mask)

    @property
    def client_order_ids(self) -> list[str]:
        return list(self._ids)

    @property
    def all_accepted(self) -> bool:
        return all(self._raw.accepted)

    def __len__(self) -> int:
        return len(self._raw.accepted)

    def __getitem__(self, index: int) -> OrderResult:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"order index {index} out of range for a batch of {n}")
        index %= n
        return OrderResult(
            index=index,
            client_order_id=self._ids[index] if index < len(self._ids) else "",
            accepted=self._raw.accepted[index],
            reject_mask=self._raw.reject_mask[index],
            reasons=self._by_order().get(index, ()),
        )

    def __iter__(self) -> Iterator[OrderResult]:
        return (self[i] for i in range(len(self)))

    def rejected(self) -> list[OrderResult]:
        """The orders that failed at least one check, in batch order."""
        return [self[i] for i, ok in enumerate(self._raw.accepted) if not ok]

    def warned(self) -> list[OrderResult]:
        """Accepted orders that crossed a limit's warn_fraction."""
        return [r for r in (self[i] for i in self._by_order()) if r.accepted and r.warnings]

    def rejected_checks(self, index: int) -> tuple[str, ...]:
        """Check names from order `index`'s reject mask (available even without violations)."""
        return mask_checks(self._raw.reject_mask[index])

    def _by_order(self) -> dict[int, tuple[ViolationInfo, ...]]:
        if self._reasons is None:
            grouped: dict[int, list[ViolationInfo]] = {}
            for v in self._raw.violations:
                grouped.setdefault(v.order_index, []).append(decode_violation(v))
            self._reasons = {i: tuple(vs) for i, vs in grouped.items()}
        return self._reasons

    def __repr__(self) -> str:
        n = len(self)
        bad = n - sum(self._raw.accepted)
        return f"<CheckResults {n} orders, {n - bad} accepted, {bad} rejected, state_version={self.state_version}>"
