"""Compile limits into the immutable lookup tables the check kernel reads, and change them
incrementally.

A ``LimitBook`` is one version: built off the hot path and swapped in by reference, so the kernel of
a batch sees one version from start to end, never a half-applied change. At a million limits a
recompile costs about a second, so an upsert or delete derives the next version from the current
one instead (``apply_changes``), copying only what changes:

* the per-limit rows (``values``: the effective threshold and warn fraction the kernel reads, and
  the limit's id and configuration beside them) live in buffers with spare room at the end; a new
  or changed limit gets a new row past the current version's, which that version never reads, so
  the buffers are shared by every version derived from one compile (a changed limit's old row
  stays, unread by the new version: garbage until the next full compile);
* the exact (account, symbol, kind) limits live in per-account tables in an arena
  (kernel.limittables): an upsert writes a new copy of its accounts' tables past the arena's used
  rows and points the new version's ``table`` at them;
* ``table`` (the any / account / symbol rows, O(accounts + symbols)) is copied whole;
* the limit_id -> Limit mapping is a ``LimitMap``: one base dict shared by the versions plus a
  small overlay of the changes since, copied per version. A limit's row is found through its slot
  (the table entry it would hold), so no limit_id -> row map is kept.

When the spare rows, the arena or the overlay run out (about every 65,536 changed limits, or a
change larger than ``INCREMENTAL_MAX``), the change recompiles instead, in the same worker thread.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from typing import Generic, TypeVar

import numpy as np

from .kernel.layout import KINDS, L_THRESHOLD, L_WARN, LIMIT_BUILTIN, LIMIT_CAPACITY, LT_ACCOUNTS
from .kernel.limittables import (
    MIN_CAP,
    build_tables,
    copy_account_table,
    exact_entries,
    exact_find,
    set_exact,
    table_cap,
)
from .kernel.state import LimitTables
from .limits import Limit

CAPACITY_LIMIT_ID = "server:max-open-orders"
FOLD_AT = 65_536  # changes an overlay holds; the change past it recompiles
INCREMENTAL_MAX = 4_096  # larger changes recompile (a bulk import is a recompile anyway)
# Limit configuration columns beside values (for dynamic thresholds, kept per row).
M_THRESHOLD = 0  # configured threshold
M_REF_VOL = 1  # reference_volatility (0: static)
M_MIN_SCALE = 2  # min_scale (0: the server's default)
W_ACCOUNT = 0  # account id, -1 any
W_SYMBOL = 1  # symbol id, -1 any
W_KIND = 2

V = TypeVar("V")
Slot = tuple[int, int, int]  # (account id or -1, symbol id or -1, kind)
Ids = Mapping[str, int]  # name -> dense id (an interner's table); "" and unknown names: -1
# Effective thresholds of rows: (meta rows, where rows) -> float64 thresholds (see dynamic).
Effective = Callable[[np.ndarray, np.ndarray], np.ndarray]


class LimitMap(Mapping[str, V], Generic[V]):
    """An immutable str-keyed mapping that shares its bulk with the version it was derived from: a
    base dict never changed once built, plus an overlay of the changes since (None: deleted)."""

    __slots__ = ("_base", "_len", "_over")

    def __init__(self, base: dict[str, V], over: dict[str, V | None] | None = None, length: int = -1):
        self._base = base
        self._over: dict[str, V | None] = over or {}
        self._len = len(base) if length < 0 else length

    def __getitem__(self, key: str) -> V:
        over = self._over
        if key in over:
            value = over[key]
            if value is None:
                raise KeyError(key)
            return value
        return self._base[key]

    def get(self, key: str, default=None):
        over = self._over
        if key in over:
            value = over[key]
            return default if value is None else value
        return self._base.get(key, default)

    def __contains__(self, key: object) -> bool:
        over = self._over
        if key in over:
            return over[key] is not None
        return key in self._base

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        over = self._over
        if not over:
            yield from self._base
            return
        for key in self._base:
            if key not in over:
                yield key
        for key, value in over.items():
            if value is not None:
                yield key

    @property
    def overlay(self) -> int:
        """Changes held in the overlay."""
        return len(self._over)

    def changed(self, changes: Mapping[str, V | None]) -> LimitMap[V]:
        """A new mapping with changes applied (None deletes); O(overlay + changes)."""
        over = dict(self._over)
        length = self._len
        base = self._base
        for key, value in changes.items():
            length += (value is not None) - (key in self)
            if value is None and key not in base:
                over.pop(key, None)
            else:
                over[key] = value
        return LimitMap(base, over, length)

    def to_dict(self) -> dict[str, V]:
        out = dict(self._base)
        for key, value in self._over.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class _Buffers:
    """Row and arena storage shared by the versions derived from one compile (append-only)."""

    values: np.ndarray  # float64[cap, 2]: effective threshold, warn fraction
    meta: np.ndarray  # float64[cap, 3]: M_* columns
    where: np.ndarray  # int64[cap, 3]: W_* columns
    ids: np.ndarray  # object[cap]: limit_id
    arena: np.ndarray  # int64[arena cap, 2]
    # [rows scanned, the dynamic rows among them]: a published row is never rewritten, so the
    # dynamic rows of any version are a prefix of this (dynamic.dynamic_rows extends it).
    dynamic: list = field(default_factory=lambda: [0, np.empty(0, dtype=np.int64)])


@dataclass(frozen=True, slots=True)
class LimitBook:
    """One version of the limit set and its lookup tables (every array read-only)."""

    version: int
    limits: Mapping[str, Limit]  # by limit_id, every limit incl. disabled ones (a LimitMap)
    exact: np.ndarray  # the arena of per-account exact tables (kernel.limittables), rows used
    table: np.ndarray  # int64[1 + accounts + symbols, KINDS]: any/account/symbol rows (layout.LT_*)
    values: np.ndarray  # float64[max(n, 1), 2]: effective threshold, warn_fraction (n = len(ids))
    meta: np.ndarray  # float64[n, 3]: configured threshold, reference_volatility, min_scale
    where: np.ndarray  # int64[n, 3]: account id, symbol id, kind
    ids: np.ndarray  # object[n]: limit_id by row
    contested: Mapping[Slot, Mapping[str, int]]  # slots two or more enabled limits claim: id -> row
    garbage: int  # rows no longer pointed at (replaced or deleted limits)
    arena_garbage: int  # arena rows of replaced account tables
    dynamic: int  # enabled limits with a reference_volatility (dynamic thresholds)
    buffers: _Buffers
    parent: int = -1  # the version this one changed (-1: built from nothing)
    changed: tuple[tuple[Limit | None, Limit | None], ...] | None = None  # (old, new) vs parent;
    # None: anything may have changed (a recompile from nothing, or thresholds moved)
    vols: object = None  # the volatilities the effective thresholds were computed with (dynamic)

    @property
    def tables(self) -> tuple:
        """The kernels' LimitTables group, as a plain tuple (see kernel.state)."""
        return tuple(LimitTables(self.exact, self.table, self.values, self.version))

    @property
    def any(self) -> np.ndarray:
        """int64[KINDS]: (any, any) limit index or -1 (column 0 is the table's account-row count)."""
        return self.table[0]

    @property
    def by_account(self) -> np.ndarray:
        """int64[accounts, KINDS]: (account, any) limit index or -1 (column 0: exact table offset)."""
        return self.table[1 : 1 + self.table[0, LT_ACCOUNTS]]

    @property
    def by_symbol(self) -> np.ndarray:
        """int64[symbols, KINDS]: (any, symbol) limit index or -1."""
        return self.table[1 + self.table[0, LT_ACCOUNTS] :]

    def limit_ids(self, index: np.ndarray) -> np.ndarray:
        """limit_id for kernel limit indexes (LIMIT_BUILTIN -> "", LIMIT_CAPACITY -> capacity id)."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty(index.shape[0], dtype=object)
        real = index >= 0
        out[real] = self.ids[index[real]]
        out[index == LIMIT_BUILTIN] = ""
        out[index == LIMIT_CAPACITY] = CAPACITY_LIMIT_ID
        return out

    def row_of(self, limit: Limit, account_ids: Ids, symbol_ids: Ids) -> int:
        """limit's row, or -1 when it is disabled or not in this version."""
        if limit.disabled or self.limits.get(limit.limit_id) != limit:
            return -1
        slot = (account_ids.get(limit.account, -1), symbol_ids.get(limit.symbol, -1), limit.kind)
        claims = self.contested.get(slot)
        if claims is not None:
            return claims.get(limit.limit_id, -1)
        held = _holder(self.table, self.exact, slot)
        return held if held >= 0 and self.ids[held] == limit.limit_id else -1

    def effective_threshold(self, limit: Limit, account_ids: Ids, symbol_ids: Ids) -> float:
        """The threshold the kernel enforces for limit (its configured one when disabled)."""
        row = self.row_of(limit, account_ids, symbol_ids)
        return limit.threshold if row < 0 else float(self.values[row, L_THRESHOLD])

    def find(self, kind: int, a: int, s: int) -> int:
        """Row of the most specific enabled limit of kind for (a, s), or -1 (kernel.levels.find_limit)."""
        table = self.table
        n_acct = int(table[0, LT_ACCOUNTS])
        if 0 <= a < n_acct:
            off = int(table[1 + a, 0])
            if off >= 0 and s >= 0:
                found = int(exact_find(self.exact, off, s, kind))
                if found >= 0:
                    return found
            if table[1 + a, kind] >= 0:
                return int(table[1 + a, kind])
        if s >= 0 and 1 + n_acct + s < table.shape[0] and table[1 + n_acct + s, kind] >= 0:
            return int(table[1 + n_acct + s, kind])
        return int(table[0, kind])

    def exact_entries(self) -> np.ndarray:
        """int64[k, 4]: every exact limit in force as (account, symbol, kind, row)."""
        n_acct = int(self.table[0, LT_ACCOUNTS])
        offs = self.table[1 : 1 + n_acct, 0]
        live = offs[offs >= 0]
        total = int(self.exact[live, 1].sum()) if live.shape[0] else 0
        out = np.empty((total, 4), dtype=np.int64)
        n = exact_entries(self.exact, self.table, out)
        return out[:n]

    def with_values(self, values: np.ndarray, version: int, vols: object) -> LimitBook:
        """The same limits with new effective thresholds (values: a fresh buffer of the same rows):
        a new version whose later upserts append to the new buffer."""
        n = self.values.shape[0]
        buffers = replace(self.buffers, values=values)
        view = values[:n]
        view.flags.writeable = False
        return replace(
            self, version=version, values=view, buffers=buffers, parent=self.version, changed=None, vols=vols
        )


_limit_id = operator.attrgetter("limit_id")


_disabled = operator.attrgetter("disabled")


def _published(buf: np.ndarray, n: int) -> np.ndarray:
    view = buf[:n]
    view.flags.writeable = False
    return view


_CHUNK = 32_768  # limits per C-level pass: each pass holds the GIL, so the event loop waits at most one


def _columns(
    enabled: Sequence[Limit], account_id: Ids, symbol_id: Ids
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(where int64[n, 3], meta float64[n, 3], warn float64[n]) of limits: one C-level pass per
    field and chunk (a pass building tuples costs as much and feeds the garbage collector)."""
    n = len(enabled)
    get = operator.attrgetter
    where = np.empty((n, 3), dtype=np.int64)
    meta = np.empty((n, 3), dtype=np.float64)
    warn = np.empty(n, dtype=np.float64)
    for lo in range(0, n, _CHUNK):
        part = enabled[lo : lo + _CHUNK]
        k = len(part)
        hi = lo + k
        where[lo:hi, W_ACCOUNT] = np.fromiter(
            map(account_id.get, map(get("account"), part), repeat(-1)), np.int64, k
        )
        where[lo:hi, W_SYMBOL] = np.fromiter(
            map(symbol_id.get, map(get("symbol"), part), repeat(-1)), np.int64, k
        )
        where[lo:hi, W_KIND] = np.fromiter(map(get("kind"), part), np.int64, k)
        meta[lo:hi, M_THRESHOLD] = np.fromiter(map(get("threshold"), part), np.float64, k)
        meta[lo:hi, M_REF_VOL] = np.fromiter(map(get("reference_volatility"), part), np.float64, k)
        meta[lo:hi, M_MIN_SCALE] = np.fromiter(map(get("min_scale"), part), np.float64, k)
        warn[lo:hi] = np.fromiter(map(get("warn_fraction"), part), np.float64, k)
    return where, meta, warn


def _arena_rows(accounts: np.ndarray, n_acct: int) -> int:
    """Arena rows the account tables of these exact limits' accounts take (header + buckets)."""
    if not accounts.shape[0]:
        return 0
    count = np.bincount(accounts, minlength=n_acct)
    count = count[count > 0]
    cap = np.maximum(MIN_CAP, 1 << np.ceil(np.log2(np.maximum(2 * count, 1))).astype(np.int64))
    return int((cap + 1).sum())


def compile_limits(
    limits: Mapping[str, Limit],
    account_id: Ids,
    symbol_id: Ids,
    version: int,
    *,
    effective: Effective | None = None,
    vols: object = None,
    parent: int = -1,
    changed: tuple[tuple[Limit | None, Limit | None], ...] | None = None,
    owned: bool = False,
) -> LimitBook:
    """Build the tables from scratch; account_id/symbol_id map names to dense ids (already
    interned). effective computes the thresholds of dynamic limits (None: the configured ones).
    Two enabled limits of one kind at one (account, symbol): the lowest limit_id wins."""
    if isinstance(limits, LimitMap):
        base = limits.to_dict()
    else:  # a dict the caller hands over (owned) becomes the shared base as it is
        base = limits if owned and isinstance(limits, dict) else dict(limits)
    values = list(base.values())
    enabled: list[Limit] = []
    for lo in range(0, len(values), _CHUNK):
        part = values[lo : lo + _CHUNK]
        enabled += compress(part, map(operator.not_, map(_disabled, part)))
    n = len(enabled)
    where, meta, warn = _columns(enabled, account_id, symbol_id)
    a, s, kind = where[:, W_ACCOUNT], where[:, W_SYMBOL], where[:, W_KIND]
    n_acct = int(a.max()) + 1 if n else 0
    n_sym = int(s.max()) + 1 if n else 0
    exact_a = a[(a >= 0) & (s >= 0)]
    arena_used = _arena_rows(exact_a, n_acct)
    cap = n + max(n // 8, 4_096)
    bufs = _Buffers(
        values=np.zeros((cap, 2), dtype=np.float64),
        meta=np.empty((cap, 3), dtype=np.float64),
        where=np.empty((cap, 3), dtype=np.int64),
        ids=np.empty(cap, dtype=object),
        arena=np.empty((arena_used + max(arena_used // 2, 16_384), 2), dtype=np.int64),
    )
    bufs.where[:n] = where
    bufs.meta[:n] = meta
    bufs.values[:n, L_WARN] = warn
    bufs.values[:n, L_THRESHOLD] = meta[:, M_THRESHOLD]
    if effective is not None and n:
        bufs.values[:n, L_THRESHOLD] = effective(meta, where)
    for lo in range(0, n, _CHUNK):
        part = list(map(_limit_id, enabled[lo : lo + _CHUNK]))
        bufs.ids[lo : lo + len(part)] = part
    table = np.full((1 + n_acct + n_sym, KINDS), -1, dtype=np.int64)
    conflicts = np.empty((n + 1, 2), dtype=np.int64)
    rows = np.arange(n, dtype=np.int64)
    used = build_tables(a, s, kind, rows, n_acct, table, bufs.arena, conflicts)
    assert used == arena_used
    contested: dict[Slot, Mapping[str, int]] = {}
    if conflicts[0, 0]:
        contested = _settle(conflicts[1 : 1 + conflicts[0, 0]], bufs, table)
    table.flags.writeable = False
    return LimitBook(
        version=version,
        limits=LimitMap(base),
        exact=_published(bufs.arena, used),
        table=table,
        values=_published(bufs.values, max(n, 1)),  # never empty: readers index row 0 for -1
        meta=_published(bufs.meta, n),
        where=_published(bufs.where, n),
        ids=_published(bufs.ids, n),
        contested=contested,
        garbage=0,
        arena_garbage=0,
        dynamic=int(np.count_nonzero(meta[:, M_REF_VOL] > 0)),
        buffers=bufs,
        parent=parent,
        changed=changed,
        vols=vols,
    )


def _holder(table: np.ndarray, arena: np.ndarray, slot: Slot) -> int:
    """Row holding slot in (unpublished) tables, or -1."""
    a, s, kind = slot
    n_acct = int(table[0, LT_ACCOUNTS])
    if a >= 0 and s >= 0:
        off = int(table[1 + a, 0])
        return int(exact_find(arena, off, s, kind)) if off >= 0 else -1
    if a >= 0:
        return int(table[1 + a, kind])
    if s >= 0:
        return int(table[1 + n_acct + s, kind])
    return int(table[0, kind])


def _put(table: np.ndarray, arena: np.ndarray, slot: Slot, row: int) -> None:
    """slot -> row (-1: none) in tables not yet published; an exact slot's account table has room."""
    a, s, kind = slot
    n_acct = int(table[0, LT_ACCOUNTS])
    if a >= 0 and s >= 0:
        set_exact(arena, table[1 + a, 0], s, kind, row)
    elif a >= 0:
        table[1 + a, kind] = row
    elif s >= 0:
        table[1 + n_acct + s, kind] = row
    else:
        table[0, kind] = row


def _settle(conflicts: np.ndarray, bufs: _Buffers, table: np.ndarray) -> dict[Slot, Mapping[str, int]]:
    """Give each contested slot of a fresh compile (conflicts: (row, holder row) pairs) to its
    lowest limit_id; the contested slots with their claimants' rows."""
    claims: dict[Slot, set[int]] = {}
    for r, held in conflicts.tolist():
        slot = (int(bufs.where[r, 0]), int(bufs.where[r, 1]), int(bufs.where[r, 2]))
        claims.setdefault(slot, {held}).add(r)
    contested: dict[Slot, Mapping[str, int]] = {}
    for slot, rows in claims.items():
        best = min(rows, key=lambda r: bufs.ids[r])
        _put(table, bufs.arena, slot, best)
        contested[slot] = {bufs.ids[r]: r for r in rows}
    return contested


def apply_changes(
    book: LimitBook,
    upserts: Sequence[Limit],
    deletes: Sequence[str],
    account_id: Ids,
    symbol_id: Ids,
    version: int,
    effective: Effective | None = None,
) -> LimitBook:
    """The next version: book with upserts (by limit_id) and deletes applied, copying only what
    changes (see the module doc); a recompile when the change is large or the spare room is used."""
    changes: dict[str, Limit | None] = {lim.limit_id: lim for lim in upserts}
    changes.update((limit_id, None) for limit_id in deletes)
    # What changed, for the snapshot tracker; a large change says "anything" (None) instead: a tuple
    # pair per limit of a million-limit import would cost ~0.1 s just to free with the next version.
    changed = (
        tuple((book.limits.get(limit_id), new) for limit_id, new in changes.items())
        if len(changes) <= INCREMENTAL_MAX
        else None
    )
    n0 = book.ids.shape[0]
    adds = [new for new in changes.values() if new is not None and not new.disabled]
    bufs = book.buffers
    if (
        len(changes) > INCREMENTAL_MAX
        or book.limits.overlay + len(changes) > FOLD_AT  # type: ignore[attr-defined]
        or n0 + len(adds) > bufs.values.shape[0]
        or book.arena_garbage > book.exact.shape[0] // 2 + 65_536
    ):
        merged = _merged(book, changes)
        del changes, adds  # a million-entry dict less while compiling
        return compile_limits(
            merged, account_id, symbol_id, version,
            effective=effective, vols=book.vols, parent=book.version, changed=changed, owned=True,
        )  # fmt: skip

    # New rows for the enabled new versions of limits, past the current version's.
    n = n0 + len(adds)
    if adds:
        where, meta, warn = _columns(adds, account_id, symbol_id)
        bufs.where[n0:n] = where
        bufs.meta[n0:n] = meta
        bufs.values[n0:n, L_WARN] = warn
        bufs.values[n0:n, L_THRESHOLD] = meta[:, M_THRESHOLD] if effective is None else effective(meta, where)
        bufs.ids[n0:n] = [lim.limit_id for lim in adds]
    new_rows = {lim.limit_id: n0 + i for i, lim in enumerate(adds)}

    # The slots the change touches, and the limits arriving in each.
    touched: dict[Slot, dict[str, int]] = {}
    garbage = book.garbage
    dynamic = book.dynamic + sum(lim.reference_volatility > 0 for lim in adds)
    for limit_id in changes:
        old = book.limits.get(limit_id)
        if old is not None and not old.disabled:
            dynamic -= old.reference_volatility > 0
            touched.setdefault((account_id.get(old.account, -1), symbol_id.get(old.symbol, -1), old.kind), {})
            garbage += 1
    for limit_id, row in new_rows.items():
        w = bufs.where[row]
        touched.setdefault((int(w[0]), int(w[1]), int(w[2])), {})[limit_id] = row

    # Grow the table if a new account or symbol id is past it; copy it either way (copy on write).
    n_acct = int(book.table[0, LT_ACCOUNTS])
    n_sym = book.table.shape[0] - 1 - n_acct
    need_a = max([n_acct - 1] + [sl[0] for sl in touched]) + 1
    need_s = max([n_sym - 1] + [sl[1] for sl in touched]) + 1
    if need_a > n_acct or need_s > n_sym:
        table = np.full((1 + need_a + need_s, KINDS), -1, dtype=np.int64)
        table[: 1 + n_acct] = book.table[: 1 + n_acct]
        table[1 + need_a : 1 + need_a + n_sym] = book.table[1 + n_acct :]
        table[0, LT_ACCOUNTS] = need_a
    else:
        table = book.table.copy()

    # Account tables the change writes: a fresh copy each, past the arena's used rows.
    used = book.exact.shape[0]
    arena = bufs.arena
    arena_garbage = book.arena_garbage
    per_account: dict[int, int] = {}
    for a, s, _ in touched:
        if a >= 0 and s >= 0:
            per_account[a] = per_account.get(a, 0) + 1
    for a, k in per_account.items():
        off = int(table[1 + a, 0])
        count = int(arena[off, 1]) if off >= 0 else 0
        cap = table_cap(count + k)
        if used + 1 + cap > arena.shape[0]:  # the arena is full: recompile (rows written are unread)
            return compile_limits(
                _merged(book, changes), account_id, symbol_id, version,
                effective=effective, vols=book.vols, parent=book.version, changed=changed, owned=True,
            )  # fmt: skip
        copy_account_table(arena, off, used, cap)
        if off >= 0:
            arena_garbage += 1 + int(arena[off, 0])
        table[1 + a, 0] = used
        used += 1 + cap

    # Each touched slot goes to its lowest enabled limit_id.
    contested = dict(book.contested)
    for slot, arriving in touched.items():
        held = _holder(table, arena, slot)
        claims = dict(contested.get(slot, {}))
        if held >= 0:
            claims[bufs.ids[held]] = held
        claims = {limit_id: row for limit_id, row in claims.items() if limit_id not in changes}
        claims.update(arriving)
        if len(claims) > 1:
            contested[slot] = claims
        else:
            contested.pop(slot, None)
        _put(table, arena, slot, claims[min(claims)] if claims else -1)

    table.flags.writeable = False
    return LimitBook(
        version=version,
        limits=book.limits.changed(changes),  # type: ignore[attr-defined]
        exact=_published(arena, used),
        table=table,
        values=_published(bufs.values, max(n, 1)),  # never empty: readers index row 0 for -1
        meta=_published(bufs.meta, n),
        where=_published(bufs.where, n),
        ids=_published(bufs.ids, n),
        contested=contested,
        garbage=garbage,
        arena_garbage=arena_garbage,
        dynamic=dynamic,
        buffers=bufs,
        parent=book.version,
        changed=changed,
        vols=book.vols,
    )


def _merged(book: LimitBook, changes: Mapping[str, Limit | None]) -> dict[str, Limit]:
    merged = book.limits.to_dict() if isinstance(book.limits, LimitMap) else dict(book.limits)
    for limit_id, new in changes.items():
        if new is None:
            merged.pop(limit_id, None)
        else:
            merged[limit_id] = new
    return merged


_RETIRE_SLICE = 20_000  # objects freed per step: the GIL changes hands between steps


def retire(books: list[LimitBook]) -> None:
    """Free a replaced version (the one book in ``books``, taken out) a slice at a time, for a worker
    thread: dropping the last reference to a million ``Limit`` objects frees them in one C call
    that holds the GIL for tens of milliseconds (the event loop would stall for it). Only what
    nothing else reads (an export, a later version sharing the dict or buffers) is freed early."""
    book = books.pop()
    base = book.limits._base if isinstance(book.limits, LimitMap) else None
    ids = book.buffers.ids
    del book  # now only this frame holds what no live version (or its views) holds
    if base is not None and sys.getrefcount(base) <= 2:  # this frame's reference and the call's
        while base:
            for _ in range(min(len(base), _RETIRE_SLICE)):
                base.popitem()
    if sys.getrefcount(ids) <= 2:
        for lo in range(0, ids.shape[0], _RETIRE_SLICE):
            ids[lo : lo + _RETIRE_SLICE] = None
