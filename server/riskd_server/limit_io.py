"""Streaming limit import and export, and limit-set diffs (pure: no I/O, no event loop).

Import: ``ImportStager`` takes the stream's chunks one at a time (in a worker thread), turns each
into ``Limit`` values and validates the whole chunk with numpy masks; only the records a mask
flags go through the per-record check (``limit_errors`` and whatever the servicer adds), which
words the errors, so an error names the line and the field exactly as an upsert would. Nothing is
held per record beyond the staged ``Limit`` itself, which becomes part of the new limit set.

``plan_import`` then compares the staged limits with the set in force: added, changed, unchanged
and (with replace) deleted, listing at most ``max_changes`` changes in limit_id order. An
unchanged record keeps the object already in force, so re-importing a file does not duplicate
the set in memory.

Export: ``sorted_ids`` gives a book's limit ids in order (sorted in slices, merged lazily, so no
single call holds the GIL for long) and ``export_chunks`` cuts them into filtered chunks.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import attrgetter
from typing import Any

import numpy as np

from .limits import ACCOUNT_LEVEL_KINDS, CONFIGURABLE_KINDS, MAX_NAME_LEN, Limit
from .names import control_flags

DEFAULT_CHUNK = 10_000
MAX_CHUNK = 100_000
DEFAULT_MAX_CHANGES = 1_000
MAX_LISTED_CHANGES = 100_000  # a diff listing more would not fit one response (~150 bytes each)
MAX_ERRORS = 20  # errors reported per failed import (the rest are counted)
_SORT_SLICE = 50_000  # up to this many ids are sorted by list.sort (~30 ms holding the GIL)

# Exact errors of one record: (record as received, the Limit, its line) -> messages "field: why".
RecordCheck = Callable[[Any, Limit, int], list[str]]
_ACCOUNT_LEVEL = np.array(sorted(ACCOUNT_LEVEL_KINDS), dtype=np.int64)
_CONFIGURABLE = np.array(sorted(CONFIGURABLE_KINDS), dtype=np.int64)


class LimitImportError(ValueError):
    """An import that cannot be applied: every error found (up to MAX_ERRORS), by line and field."""

    def __init__(self, errors: list[str], more: int = 0) -> None:
        text = "; ".join(errors) + (f"; and {more} more error(s)" if more else "")
        super().__init__(f"import refused, nothing changed: {text}")
        self.errors = errors
        self.more = more


FIELDS = (
    "limit_id", "kind", "account", "symbol", "threshold", "warn_fraction", "disabled", "description", "template",
    "reference_volatility", "min_scale",
)  # fmt: skip
Columns = dict[str, Sequence]
Row = tuple  # a limit's FIELDS values, in order
row_of = attrgetter(*FIELDS)  # a protobuf Limit or a Limit -> its Row (one C call)


def columns_of(rows: Sequence[Row]) -> Columns:
    """Rows as one sequence per field."""
    if not rows:
        return {name: () for name in FIELDS}
    return dict(zip(FIELDS, zip(*rows, strict=True), strict=True))


def limit_of(row: Row) -> Limit:
    i, k, a, s, t, w, d, de, te, rv, ms = row
    return Limit(limit_id=i, kind=k, account=a, symbol=s, threshold=t, warn_fraction=w, disabled=d, description=de,
                 template=te, reference_volatility=rv, min_scale=ms)  # fmt: skip


def _flags(cols: Columns) -> np.ndarray:
    """bool per record: something may be wrong with it (a superset of the exact check's verdict).

    Conservative on purpose: reference_volatility and min_scale set at all are flagged, so the
    exact check (which may refuse them on this server) decides.
    """
    n = len(cols["limit_id"])
    flags = np.zeros(n, dtype=bool)
    if not n:
        return flags
    has_symbol = flags
    for name in ("limit_id", "account", "symbol", "template"):
        values = cols[name]
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
        flags |= lengths > MAX_NAME_LEN
        if name == "limit_id":
            flags |= lengths == 0
        if name == "symbol":
            has_symbol = lengths > 0
        ctrl = control_flags(values)
        if ctrl is not None:
            flags |= ctrl
    kind = np.fromiter(cols["kind"], dtype=np.int64, count=n)
    flags |= ~np.isin(kind, _CONFIGURABLE)
    flags |= has_symbol & np.isin(kind, _ACCOUNT_LEVEL)
    threshold = np.fromiter(cols["threshold"], dtype=np.float64, count=n)
    warn = np.fromiter(cols["warn_fraction"], dtype=np.float64, count=n)
    with np.errstate(invalid="ignore"):
        flags |= ~np.isfinite(threshold) | (threshold < 0)
        flags |= ~np.isfinite(warn) | (warn < 0) | (warn >= 1)
    for name in ("reference_volatility", "min_scale"):
        flags |= np.fromiter(cols[name], dtype=np.float64, count=n) != 0
    return flags


@dataclass(slots=True)
class ImportStager:
    """Collects an import's records; ``add`` per chunk, then ``staged`` (or ``error``)."""

    check: RecordCheck
    # The limit set in force when the import began: a record equal to its limit is staged as that
    # object (a re-import creates no new objects; plan_import checks again against the set then).
    current: Mapping[str, Limit] = field(default_factory=dict)
    staged: dict[str, Limit] = field(default_factory=dict)
    records: int = 0
    errors: list[str] = field(default_factory=list)
    more_errors: int = 0

    def add(self, records: Sequence[object], first_line: int) -> bool:
        """Convert and validate one chunk; False once the import has failed (stop reading)."""
        rows = list(map(row_of, records))
        cols = columns_of(rows)
        start = first_line or self.records + 1
        label = "line" if first_line else "record"
        self.records += len(rows)
        for i in np.flatnonzero(_flags(cols)).tolist():
            for problem in self.check(records[i], limit_of(rows[i]), start + i):
                self._error(f"{label} {start + i}: {problem}")
        ids = cols["limit_id"]
        if not self.staged.keys().isdisjoint(ids) or len(set(ids)) < len(ids):
            earlier = [i for i, limit_id in enumerate(ids) if limit_id in self.staged]
            self._duplicates(ids, earlier, start, label)
        if self.errors:
            self.staged = {}  # refused: nothing of it is kept
            return False
        get = self.current.get
        self.staged.update(
            (r[0], old if (old := get(r[0])) is not None and row_of(old) == r else limit_of(r)) for r in rows
        )
        return True

    def _duplicates(self, ids: Sequence[str], earlier: list[int], start: int, label: str) -> None:
        """Name each record whose limit_id was given before, and where."""
        before = set(earlier)
        first: dict[str, int] = {}
        for i, limit_id in enumerate(ids):
            if i in before:
                where = "an earlier line" if label == "line" else "an earlier record"
            elif limit_id in first:
                where = f"{label} {first[limit_id]}"
            else:
                first[limit_id] = start + i
                continue
            self._error(f"{label} {start + i}: limit_id: {limit_id!r} already given on {where}")

    def _error(self, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)
        else:
            self.more_errors += 1

    def result(self) -> dict[str, Limit]:
        if self.errors:
            raise LimitImportError(self.errors, self.more_errors)
        return self.staged


def record_errors(errors: Iterable[str], index: int) -> list[str]:
    """``limits[i].field: why`` messages (limits.limit_errors, the servicer's) as ``field: why``."""
    prefix = f"limits[{index}]."
    return [e.removeprefix(prefix) for e in errors]


# ---------------------------------------------------------------------------------------- diffs


@dataclass(frozen=True, slots=True)
class Change:
    limit_id: str
    old: Limit | None  # None: added
    new: Limit | None  # None: deleted


@dataclass(frozen=True, slots=True)
class Diff:
    added: int
    changed: int
    deleted: int
    unchanged: int
    changes: tuple[Change, ...]  # the first max_changes changes in limit_id order
    omitted: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.deleted)


@dataclass(frozen=True, slots=True)
class Plan:
    """What an import or a template would do: the diff, and what applying it needs."""

    diff: Diff
    merged: dict[str, Limit] | None  # the new limit set (None for a dry run or no change)
    upserted: tuple[Limit, ...]
    deleted: tuple[str, ...]


def plan_import(
    current: Mapping[str, Limit],
    staged: dict[str, Limit],
    *,
    replace: bool = False,
    max_changes: int = DEFAULT_MAX_CHANGES,
    dry_run: bool = False,
) -> Plan:
    """Compare staged limits with the set in force (``staged`` is consumed: an unchanged limit
    becomes the object in force, and with replace it becomes the new set)."""
    upserted: list[Limit] = []
    added = changed = unchanged = 0
    for limit_id, new in staged.items():
        old = current.get(limit_id)
        if old is None:
            added += 1
            upserted.append(new)
        elif old is new or old == new:
            unchanged += 1
            staged[limit_id] = old  # the object in force (no resize)
        else:
            changed += 1
            upserted.append(new)
    limits = staged
    deleted = [limit_id for limit_id in current if limit_id not in limits] if replace else []
    ids = heapq.nsmallest(max_changes, chain((lim.limit_id for lim in upserted), deleted))
    changes = tuple(Change(i, current.get(i), limits.get(i)) for i in ids)
    diff = Diff(added, changed, len(deleted), unchanged, changes, len(upserted) + len(deleted) - len(ids))
    if dry_run or diff.empty:
        return Plan(diff, None, (), ())
    if replace:
        merged = limits
    else:
        merged = dict(current)
        merged.update((lim.limit_id, lim) for lim in upserted)
    return Plan(diff, merged, tuple(upserted), tuple(deleted))


# ---------------------------------------------------------------------------------------- export


def sorted_ids(limits: Mapping[str, Limit]) -> Iterator[str]:
    """limit ids in order, without one long sort holding the GIL (it would stall the event loop
    ~1 s at a million): the ids' UTF-8 bytes (same order as the strings) go into one fixed-width
    numpy array whose argsort releases the GIL. Costs, besides the id list and the order
    (8 bytes each), the array while sorting: ids x the longest id's bytes."""
    keys = list(limits)
    if len(keys) <= _SORT_SLICE:
        keys.sort()
        return iter(keys)
    blob = np.array([k.encode("utf-8", "surrogatepass") for k in keys])  # ids hold no NUL
    order = np.argsort(blob, kind="stable")
    del blob
    return _in_order(keys, order)


def _in_order(keys: list[str], order: np.ndarray) -> Iterator[str]:
    for i in range(0, order.shape[0], DEFAULT_CHUNK):
        yield from map(keys.__getitem__, order[i : i + DEFAULT_CHUNK].tolist())


@dataclass(frozen=True, slots=True)
class ExportFilter:
    account: str = ""
    symbol: str = ""
    kind: int = 0
    template: str = ""

    def __call__(self, lim: Limit) -> bool:
        return (
            (not self.account or lim.account == self.account)
            and (not self.symbol or lim.symbol == self.symbol)
            and (not self.kind or lim.kind == self.kind)
            and (not self.template or lim.template == self.template)
        )


def next_chunk(ids: Iterator[str], limits: Mapping[str, Limit], keep: ExportFilter, size: int) -> list[Limit]:
    """The next ``size`` limits passing ``keep`` (fewer at the end; empty when done)."""
    out: list[Limit] = []
    everything = keep == ExportFilter()
    while len(out) < size:
        batch = list(islice(ids, size - len(out)))
        if not batch:
            break
        found = map(limits.__getitem__, batch)
        out.extend(found if everything else filter(keep, found))
    return out


def chunk_size(requested: int) -> int:
    return DEFAULT_CHUNK if requested <= 0 else min(requested, MAX_CHUNK)
