"""Incremental limit tables (limitbook.apply_changes) against a recompile of the same limits.

Random sequences of upserts (new, changed, disabled, moved to another level, colliding at one slot)
and deletes: after every step the incrementally derived book must mean exactly what
``compile_limits`` of the resulting limit set means: the same limit (id, threshold, warn fraction)
in every slot of every level, the same limit map, and the kernel's ``find_limit`` on the
incremental tables agreeing with the reference resolution for every (account, symbol, kind).
Row numbers may differ (a changed limit takes a new row); what they point at may not.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskd_server import limitbook as lb
from riskd_server.kernel.layout import L_THRESHOLD, L_WARN, LT_ACCOUNTS
from riskd_server.kernel.levels import find_limit
from riskd_server.limits import ACCOUNT_LEVEL_KINDS, Limit

ACCOUNTS = ["A0", "A1", "A2", "A3"]
SYMBOLS = ["S0", "S1", "S2"]
KINDS = [1, 3, 4, 6, 9]  # quantity, position, gross (account-level), collar, restricted
IDS = [f"L{i}" for i in range(8)]


def _ids(names: list[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


ACCOUNT_ID, SYMBOL_ID = _ids(ACCOUNTS), _ids(SYMBOLS)


@st.composite
def limits(draw) -> Limit:
    kind = draw(st.sampled_from(KINDS))
    account = draw(st.sampled_from(["", *ACCOUNTS]))
    symbol = "" if kind in ACCOUNT_LEVEL_KINDS else draw(st.sampled_from(["", *SYMBOLS]))
    return Limit(
        limit_id=draw(st.sampled_from(IDS)),
        kind=kind,
        account=account,
        symbol=symbol,
        threshold=float(draw(st.integers(0, 100))),
        reference_volatility=draw(st.sampled_from([0.0, 0.02])),
        warn_fraction=draw(st.sampled_from([0.0, 0.5])),
        disabled=draw(st.booleans()) and draw(st.booleans()),  # a quarter disabled
    )


steps = st.lists(
    st.one_of(
        st.lists(limits(), min_size=1, max_size=3).map(lambda ups: ("upsert", ups)),
        st.lists(st.sampled_from(IDS), min_size=1, max_size=2).map(lambda ids: ("delete", ids)),
    ),
    min_size=1,
    max_size=25,
)


def meaning(book: lb.LimitBook) -> dict:
    """Every slot of every level -> (limit_id, threshold, warn); what the tables say, row-free."""
    out: dict = {}

    def at(row: int) -> tuple:
        return (book.ids[row], float(book.values[row, L_THRESHOLD]), float(book.values[row, L_WARN]))

    table = book.table
    n_acct = int(table[0, LT_ACCOUNTS])
    for kind in range(1, 11):
        if table[0, kind] >= 0:
            out[("any", kind)] = at(int(table[0, kind]))
        for a in range(n_acct):
            if table[1 + a, kind] >= 0:
                out[("account", a, kind)] = at(int(table[1 + a, kind]))
        for s in range(table.shape[0] - 1 - n_acct):
            if table[1 + n_acct + s, kind] >= 0:
                out[("symbol", s, kind)] = at(int(table[1 + n_acct + s, kind]))
    for a, s, kind, row in book.exact_entries().tolist():
        out[("exact", a, s, kind)] = at(row)
    return out


def check_same(book: lb.LimitBook, final: dict[str, Limit]) -> None:
    fresh = lb.compile_limits(final, ACCOUNT_ID, SYMBOL_ID, version=book.version)
    assert meaning(book) == meaning(fresh)
    assert book.dynamic == fresh.dynamic
    assert dict(book.limits) == final
    assert len(book.limits) == len(final)
    for lim in final.values():  # every limit finds its row, and the row says what the limit says
        row, fresh_row = book.row_of(lim, ACCOUNT_ID, SYMBOL_ID), fresh.row_of(lim, ACCOUNT_ID, SYMBOL_ID)
        assert (row >= 0) == (fresh_row >= 0) == (not lim.disabled)
        if row >= 0:
            assert (
                book.ids[row] == lim.limit_id
                and book.values[row].tolist() == fresh.values[fresh_row].tolist()
            )
    for kind in KINDS:
        for a in range(len(ACCOUNTS)):
            for s in range(len(SYMBOLS)):
                want = fresh.find(kind, a, s)
                got = int(find_limit(kind, a, s, book.exact, book.table))
                assert got == book.find(kind, a, s)
                assert (book.ids[got] if got >= 0 else None) == (fresh.ids[want] if want >= 0 else None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_incremental_equals_recompile(ops) -> None:
    book = lb.compile_limits({}, ACCOUNT_ID, SYMBOL_ID, version=0)
    final: dict[str, Limit] = {}
    for what, items in ops:
        if what == "upsert":
            batch = list({lim.limit_id: lim for lim in items}.values())  # one per id, as validated
            book = lb.apply_changes(book, batch, (), ACCOUNT_ID, SYMBOL_ID, book.version + 1)
            final.update((lim.limit_id, lim) for lim in batch)
        else:
            gone = [i for i in dict.fromkeys(items) if i in final]
            book = lb.apply_changes(book, (), gone, ACCOUNT_ID, SYMBOL_ID, book.version + 1)
            for i in gone:
                del final[i]
        check_same(book, final)


def test_old_versions_keep_their_meaning() -> None:
    """A version already published answers the same after later versions were derived from it."""
    book0 = lb.compile_limits(
        {"x": Limit(limit_id="x", kind=3, account="A0", symbol="S0", threshold=10)}, ACCOUNT_ID, SYMBOL_ID, 0
    )
    before = meaning(book0)
    book1 = lb.apply_changes(
        book0,
        [Limit(limit_id="x", kind=3, account="A0", symbol="S0", threshold=5)],
        (),
        ACCOUNT_ID,
        SYMBOL_ID,
        1,
    )
    book2 = lb.apply_changes(book1, (), ["x"], ACCOUNT_ID, SYMBOL_ID, 2)
    assert meaning(book0) == before
    assert meaning(book1)[("exact", 0, 0, 3)] == ("x", 5.0, 0.0)
    assert meaning(book2) == {}
    assert not book1.values.flags.writeable and not book1.table.flags.writeable


def test_large_change_and_full_spare_room_recompile() -> None:
    """Past INCREMENTAL_MAX changes, or once the spare rows are used, the change recompiles (and
    says "anything changed" to the snapshot tracker)."""
    many = [
        Limit(limit_id=f"m{i}", kind=3, account=ACCOUNTS[i % 4], symbol=SYMBOLS[i % 3], threshold=i)
        for i in range(lb.INCREMENTAL_MAX + 1)
    ]
    book = lb.compile_limits({}, ACCOUNT_ID, SYMBOL_ID, 0)
    big = lb.apply_changes(book, many, (), ACCOUNT_ID, SYMBOL_ID, 1)
    assert big.garbage == 0 and big.parent == 0
    assert big.changed is None  # too large to list: the snapshot tracker treats it as "anything"
    final = {lim.limit_id: lim for lim in many}
    assert meaning(big) == meaning(lb.compile_limits(final, ACCOUNT_ID, SYMBOL_ID, 1))
    # Use up the spare rows one upsert at a time: the book stays right across the recompile.
    spare = big.buffers.values.shape[0] - big.values.shape[0]
    cur = big
    for i in range(spare + 2):
        lim = Limit(limit_id=f"m{i % 50}", kind=3, account="A1", symbol="S2", threshold=float(i))
        cur = lb.apply_changes(cur, [lim], (), ACCOUNT_ID, SYMBOL_ID, cur.version + 1)
        final[lim.limit_id] = lim
    assert cur.buffers is not big.buffers  # recompiled into fresh buffers on the way
    assert meaning(cur) == meaning(lb.compile_limits(final, ACCOUNT_ID, SYMBOL_ID, 0))


def test_limit_map_overlay() -> None:
    base = lb.LimitMap({"a": 1, "b": 2})
    m = base.changed({"b": None, "c": 3}).changed({"a": 4, "c": None, "d": 5})
    assert dict(m) == {"a": 4, "d": 5} and len(m) == 2
    assert "b" not in m and m.get("b") is None and m.get("c", 0) == 0
    assert dict(base) == {"a": 1, "b": 2}
    assert m.to_dict() == {"a": 4, "d": 5}
    assert np.array_equal(np.array(sorted(m)), np.array(["a", "d"]))
