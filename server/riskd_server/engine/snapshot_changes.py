"""Which accounts' snapshots changed, found by comparing the account rows with the last pass.

The check path records nothing for snapshots: a pass here (``detect``) compares every account's
watched row columns (kernel.snapshot.WATCHED: exposure sums, open-order count, trading state,
order-rate bucket, position count) with the values seen by the previous pass, bitwise, in one
numba loop, and stamps each account that differs with the pass's sequence number; then every
symbol's mark, stamping the holders of each symbol whose mark moved (their positions' values
changed even when two moves cancel in the sums). A reader that
remembers the sequence number of its last read then finds what changed since in one comparison
(``changed_since``), however many passes ago that was: its pending state is one integer.

Also counted as changes: accounts new since the last pass, every account a changed limit applies
to (a limit of a snapshot kind whose account is "" applies to all), and accounts named by
``touch`` (LoadPositions: a position in a symbol without a mark moves no sum). What a pass cannot
see: a change in the books alone that leaves every watched column bit-identical, e.g. an order
cancelled in one symbol and one of exactly the same notional and side opened in another between
two passes, on an account without a rate limit (the open-order sums and count are then equal;
a MAX_POSITION utilisation moved); such an account is reported with its next change.

Cost: one pass reads the watched columns of every account and every symbol's mark (~1 ms at
100,000 accounts and 2,000 symbols) and runs only when the engine's state version moved since the
last one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from ..kernel.snapshot import WATCHED, stamp_changed, stamp_marks
from .snapshot import SNAPSHOT_KINDS

if TYPE_CHECKING:
    from ..limitbook import LimitBook
    from .core import Engine

_KINDS = frozenset(SNAPSHOT_KINDS)
_DIFF_MAX = 200_000  # limits in two books compared one by one on a version gap


class ChangeTracker:
    """Per account, the sequence number of the last pass that saw it change (pure; no I/O)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.seq = 0  # the last pass that found a change
        self.firm_seq = 0  # the pass that last saw the firm-wide trading state change
        self.passes = 0  # passes run (stats)
        self._changed_at = np.zeros(0, dtype=np.int64)
        self._last = np.zeros((0, WATCHED), dtype=np.int64)
        self._marks = np.full(0, np.nan)  # per symbol, the mark the last pass saw
        self._known = 0  # accounts the last pass covered
        self._version = -1  # engine state version at the last pass
        self._limits: LimitBook = engine.limits
        self._firm = engine.trading_state("")
        self._touched: set[int] = set()  # account ids; bounded by the account count

    @property
    def known(self) -> int:
        """Accounts covered by the last pass."""
        return self._known

    def touch(self, names: Iterable[str]) -> None:
        """Count these accounts as changed at the next pass (unknown names are ignored)."""
        get = self._engine.accounts.get
        self._touched.update(a for a in map(get, names) if a >= 0)

    def detect(self) -> int:
        """Run a pass if the engine changed since the last one; returns ``seq``."""
        eng = self._engine
        if eng.state_version == self._version and not self._touched:
            return self.seq
        self._version = eng.state_version
        self.passes += 1
        seq = self.seq + 1
        acct = eng._s.acct
        n = min(len(eng.accounts), acct.shape[0])
        if self._last.shape[0] < n:
            size = max(n, 2 * self._last.shape[0])
            last = np.zeros((size, WATCHED), dtype=np.int64)
            last[: self._last.shape[0]] = self._last
            changed_at = np.zeros(size, dtype=np.int64)
            changed_at[: self._changed_at.shape[0]] = self._changed_at
            self._last, self._changed_at = last, changed_at
        changed = int(stamp_changed(acct.view(np.int64), self._last, n, seq, self._changed_at))
        s = eng._s
        n_sym = min(len(eng.symbols), s.sym.shape[0])
        if self._marks.shape[0] < n_sym:
            marks = np.full(max(n_sym, 2 * self._marks.shape[0]), np.nan)
            marks[: self._marks.shape[0]] = self._marks
            self._marks = marks
        changed += int(
            stamp_marks(s.sym, self._marks, n_sym, s.sym_books, s.book, s.book_pair, seq, self._changed_at)
        )
        if n > self._known:  # new accounts are news even when their rows are still all zero
            self._changed_at[self._known : n] = seq
            changed += n - self._known
            self._known = n
        if eng.limits is not self._limits:
            changed += self._limit_changes(eng.limits, seq)
        if self._touched:
            touched = np.fromiter(self._touched, dtype=np.int64, count=len(self._touched))
            self._touched.clear()
            touched = touched[touched < n]
            self._changed_at[touched] = seq
            changed += touched.shape[0]
        firm = eng.trading_state("")
        if firm != self._firm:
            self._firm = firm
            self.firm_seq = seq
            changed += 1
        if changed:
            self.seq = seq
        return self.seq

    def changed_since(self, seq: int, ids: np.ndarray | None = None) -> np.ndarray:
        """Accounts (of ids, default every account) stamped after pass seq, in the order of ids."""
        if ids is None:
            return np.flatnonzero(self._changed_at[: self._known] > seq)
        ids = ids[ids < self._known]
        return ids[self._changed_at[ids] > seq]

    def _limit_changes(self, book: LimitBook, seq: int) -> int:
        """Stamp the accounts whose applicable limits may differ between the last book and this one;
        returns how many. A book built from the last one says what it changed (O(change)); a
        refresh of dynamic thresholds may move any account's; past a gap of versions the two
        books are compared (O(limits)), or every account is stamped at more than _DIFF_MAX limits."""
        previous, self._limits = self._limits, book
        if book.parent == previous.version and book.changed is not None:
            pairs = book.changed
        elif book.parent == previous.version or len(book.limits) + len(previous.limits) > _DIFF_MAX:
            self._changed_at[: self._known] = seq
            return self._known
        else:
            old, new = previous.limits, book.limits
            pairs = tuple(
                (old.get(limit_id), new.get(limit_id))
                for limit_id in old.keys() | new.keys()
                if old.get(limit_id) != new.get(limit_id)
            )
        moved = [
            lim
            for before, after in pairs
            if before != after
            for lim in (before, after)
            if lim is not None and lim.kind in _KINDS
        ]
        if not moved:
            return 0
        if any(not lim.account for lim in moved):
            self._changed_at[: self._known] = seq
            return self._known
        get = self._engine.accounts.get
        ids = np.fromiter({get(lim.account) for lim in moved}, dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < self._known)]
        self._changed_at[ids] = seq
        return int(ids.shape[0])
