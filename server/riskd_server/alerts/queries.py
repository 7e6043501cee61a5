"""QueryAlerts and GetAlertStats over the history ring, the statistics and, for pages older than the
ring holds, PostgreSQL (the servicer only translates protobuf to and from these)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from .model import Alert, AlertFilter

log = logging.getLogger("riskd.alerts")

DEFAULT_PAGE = 100
MAX_PAGE = 10_000
DEFAULT_TOP = 10
MAX_TOP = 1_000

Older = Callable[[AlertFilter, int, int], Awaitable[list[Alert]]]


class QueryError(ValueError):
    """A request field out of range (INVALID_ARGUMENT), naming the field."""


class OlderUnavailable(RuntimeError):
    """The page needs PostgreSQL, which did not answer (UNAVAILABLE)."""


class Ring(Protocol):
    @property
    def oldest_seq(self) -> int: ...
    def query(
        self, flt: AlertFilter, before_seq: int = 0, page_size: int = 100
    ) -> tuple[list[Alert], int]: ...


@dataclass(frozen=True, slots=True)
class AlertPage:
    alerts: list[Alert]  # newest first
    next_before_seq: int  # 0: no older match


def page_size_of(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PAGE
    if requested > MAX_PAGE:
        raise QueryError(f"page_size: at most {MAX_PAGE:,}, got {requested:,}")
    return requested


def top_of(requested: int) -> int:
    if requested == 0:
        return DEFAULT_TOP
    if requested > MAX_TOP:
        raise QueryError(f"top: at most {MAX_TOP:,}, got {requested:,}")
    return requested


async def query_alerts(
    history: Ring, flt: AlertFilter, before_seq: int, page_size: int, older: Older | None
) -> AlertPage:
    """Newest first from the ring; when the ring has no older match, continue in PostgreSQL below
    the oldest seq the ring holds (alerts persist through the write-behind)."""
    page_size = page_size_of(page_size)
    page, next_before = history.query(flt, before_seq, page_size)
    if len(page) >= page_size or next_before or older is None:
        return AlertPage(page, next_before)
    oldest = history.oldest_seq
    bound = min(before_seq, oldest) if before_seq and oldest else (oldest or before_seq or 2**63 - 1)
    if bound <= 1:
        return AlertPage(page, 0)
    want = page_size - len(page)
    started = time.perf_counter()
    try:
        rows = await older(flt, bound, want)
    except Exception as exc:
        log.warning("alert history below seq %d unavailable: %s", bound, exc)
        if page:
            return AlertPage(page, bound)  # the caller continues from here when PostgreSQL is back
        raise OlderUnavailable(
            f"alerts older than seq {bound} are in PostgreSQL, which did not answer: {exc}"
        ) from exc
    log.debug("alert history page from PostgreSQL in %.1f ms", (time.perf_counter() - started) * 1e3)
    return AlertPage(page + rows, rows[-1].seq if len(rows) == want else 0)
