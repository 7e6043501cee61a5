"""Streaming limit import and export, and limit-set diffs (pure: no I/O, no event loop).

Import: ``ImportStager`` takes the stream's chunks one at a time (in a worker thread) and validates
each whole chunk with numpy masks; only the records a mask flags go through the per-record check
(``limit_errors`` and whatever the servicer adds), which words the errors, so an error names the
line and the field exactly as an upsert would. A valid chunk is kept as compact columns
(``StagedLimits``: numpy arrays and codes of the distinct names; per record only its id is a Python
object), not as ``Limit`` values.

``plan_import`` then compares the staged records with the set in force, chunk by chunk: added,
changed, unchanged and (with replace) deleted, listing at most ``max_changes`` changes in limit_id
order. ``Limit`` values are made only for the added and changed records (sharing their names and
repeated floats); an unchanged record makes nothing, so the set in force keeps its own objects.

Export: ``sorted_ids`` gives a book's limit ids in order (sorted in slices, merged lazily, so no
single call holds the GIL for long) and ``export_chunks`` cuts them into filtered chunks.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
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


_TEXT = ("account", "symbol", "description", "template")  # StagedChunk.text columns
_NUM = ("threshold", "warn_fraction", "reference_volatility", "min_scale")  # StagedChunk.num columns
_FLOAT_CACHE_MAX = 65_536  # distinct float values shared across chunks (beyond: within a chunk)


@dataclass(frozen=True, slots=True)
class StagedChunk:
    """One chunk of valid staged records as columns: no Python object per record but its id (the
    id object of the limit in force when there is one, so a changed limit's id is not duplicated)."""

    ids: list[str]
    kind: np.ndarray  # int8[n]
    text: np.ndarray  # int32[n, 4]: codes of _TEXT into StagedLimits.texts
    num: np.ndarray  # float64[n, 4]: _NUM
    disabled: np.ndarray  # bool[n]


@dataclass(slots=True)
class StagedLimits:
    """The records of an import (or a template), in order, as compact columns: ~60 bytes per record
    plus its id, instead of a ``Limit`` (~400 bytes with its own strings and floats) each. Limits
    are made only for what the plan adds or changes, sharing their strings and repeated floats."""

    chunks: list[StagedChunk] = field(default_factory=list)
    texts: dict[str, int] = field(default_factory=dict)  # distinct account/symbol/description/template
    ids: set[str] = field(default_factory=set)  # every staged limit_id (duplicates, replace)

    def __len__(self) -> int:
        return len(self.ids)

    def add_rows(self, rows: Sequence[Row], cols: Columns, current: Mapping[str, Limit]) -> None:
        """Stage rows (valid, ids new to the import); cols: the same as columns_of(rows)."""
        n = len(rows)
        if not n:
            return
        get = current.get
        ids = [old.limit_id if (old := get(i)) is not None else i for i in cols["limit_id"]]
        self.ids.update(ids)
        texts = self.texts
        text = np.empty((n, len(_TEXT)), dtype=np.int32)
        for j, name in enumerate(_TEXT):
            values = cols[name]
            for value in dict.fromkeys(values).keys() - texts.keys():
                texts[value] = len(texts)
            text[:, j] = np.fromiter(map(texts.__getitem__, values), dtype=np.int32, count=n)
        num = np.empty((n, len(_NUM)), dtype=np.float64)
        for j, name in enumerate(_NUM):
            num[:, j] = np.fromiter(cols[name], dtype=np.float64, count=n)
        kind = np.fromiter(cols["kind"], dtype=np.int8, count=n)
        disabled = np.fromiter(cols["disabled"], dtype=bool, count=n)
        self.chunks.append(StagedChunk(ids, kind, text, num, disabled))

    @classmethod
    def of(cls, limits: Iterable[Limit], current: Mapping[str, Limit] | None = None) -> StagedLimits:
        """Limits (valid, distinct ids) staged as one chunk (templates, tests)."""
        staged = cls()
        rows = list(map(row_of, limits))
        staged.add_rows(rows, columns_of(rows), current or {})
        return staged


class _Rows:
    """Turns staged chunks back into Rows and Limits: the distinct texts as one object array, and
    float values shared between limits (a threshold repeated across a million limits is one object)."""

    def __init__(self, texts: Mapping[str, int]) -> None:
        self._texts = np.empty(len(texts), dtype=object)
        self._texts[list(texts.values())] = list(texts.keys())
        self._floats: dict[int, float] = {}

    def rows(self, c: StagedChunk) -> list[Row]:
        """The chunk's records as Rows, in FIELDS order."""
        t = self._texts[c.text]
        f = [self._shared(c.num[:, j]) for j in range(len(_NUM))]
        return list(zip(
            c.ids, c.kind.tolist(), t[:, 0].tolist(), t[:, 1].tolist(), f[0], f[1], c.disabled.tolist(),
            t[:, 2].tolist(), t[:, 3].tolist(), f[2], f[3], strict=True,
        ))  # fmt: skip

    def _shared(self, values: np.ndarray) -> list[float]:
        """values as floats, one object per distinct bit pattern (so -0.0 stays -0.0)."""
        if not values.shape[0]:
            return []
        bits, inverse = np.unique(values.view(np.int64), return_inverse=True)
        objs = np.empty(bits.shape[0], dtype=object)
        objs[:] = list(map(self._float, bits.tolist(), bits.view(np.float64).tolist()))
        return objs[inverse.reshape(-1)].tolist()

    def _float(self, bits: int, value: float) -> float:
        cache = self._floats
        found = cache.get(bits)
        if found is None:
            if len(cache) >= _FLOAT_CACHE_MAX:
                return value
            cache[bits] = found = value
        return found


@dataclass(slots=True)
class ImportStager:
    """Collects an import's records; ``add`` per chunk, then ``result`` (or the errors)."""

    check: RecordCheck
    # The limit set in force when the import began: a staged record takes the id object of its
    # limit in force, so the new set shares the ids (plan_import compares against the set then).
    current: Mapping[str, Limit] = field(default_factory=dict)
    staged: StagedLimits = field(default_factory=StagedLimits)
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
        if not self.staged.ids.isdisjoint(ids) or len(set(ids)) < len(ids):
            earlier = [i for i, limit_id in enumerate(ids) if limit_id in self.staged.ids]
            self._duplicates(ids, earlier, start, label)
        if self.errors:
            self.staged = StagedLimits()  # refused: nothing of it is kept
            return False
        self.staged.add_rows(rows, cols, self.current)
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

    def result(self) -> StagedLimits:
        """The staged records, handed over (the stager keeps none); LimitImportError if refused."""
        if self.errors:
            raise LimitImportError(self.errors, self.more_errors)
        staged, self.staged = self.staged, StagedLimits()
        self.current = {}  # the set in force then: not kept alive past its replacement
        return staged


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
    """What an import or a template would do: the diff, and the change that applies it (empty for
    a dry run or a diff that changes nothing). The new set itself is built from the book in force
    and this change (LimitAdmin.apply), never as a second whole mapping."""

    diff: Diff
    upserted: tuple[Limit, ...]
    deleted: tuple[str, ...]

    @property
    def changes_anything(self) -> bool:
        return bool(self.upserted or self.deleted)


def plan_import(
    current: Mapping[str, Limit],
    staged: StagedLimits | Mapping[str, Limit],
    *,
    replace: bool = False,
    max_changes: int = DEFAULT_MAX_CHANGES,
    dry_run: bool = False,
) -> Plan:
    """Compare staged limits with the set in force. A StagedLimits is consumed (its chunks are freed
    as the plan goes, and it is left empty); Limit values are made only for the added and changed
    records (for a dry run only for the listed ones)."""
    if not isinstance(staged, StagedLimits):
        staged = StagedLimits.of(staged.values(), current)
    conv = _Rows(staged.texts)
    get = current.get
    upserted: list[Limit] = []
    listed: list[tuple[str, Row | None]] = []  # the smallest changed ids seen so far, with their rows
    added = changed = unchanged = 0
    chunks = staged.chunks
    chunks.reverse()
    while chunks:
        c = chunks.pop()
        rows = conv.rows(c)
        diff_rows: list[Row] = []
        for row in rows:
            old = get(row[0])
            if old is None:
                added += 1
                diff_rows.append(row)
            elif row_of(old) == row:
                unchanged += 1
            else:
                changed += 1
                diff_rows.append(row)
        del rows
        if not dry_run:
            upserted += map(limit_of, diff_rows)
        listed += ((row[0], row) for row in diff_rows)
        if len(listed) > 2 * max_changes + DEFAULT_CHUNK:
            listed = heapq.nsmallest(max_changes, listed, key=_first)
    in_import = staged.ids
    deleted = [limit_id for limit_id in current if limit_id not in in_import] if replace else []
    staged.ids, staged.texts = set(), {}  # consumed: nothing of the import outlives the plan
    listed += ((limit_id, None) for limit_id in heapq.nsmallest(max_changes, deleted))
    listed = heapq.nsmallest(max_changes, listed, key=_first)
    changes = tuple(Change(i, get(i), None if row is None else limit_of(row)) for i, row in listed)
    omitted = added + changed + len(deleted) - len(changes)
    diff = Diff(added, changed, len(deleted), unchanged, changes, omitted)
    if dry_run or diff.empty:
        return Plan(diff, (), ())
    return Plan(diff, tuple(upserted), tuple(deleted))


def _first(item: tuple) -> str:
    return item[0]


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
