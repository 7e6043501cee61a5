"""The interners' byte index (interning.NameIndex): snapshots stay valid as names are added.

The one-order path (kernel.single) looks names up in a NameIndex the engine took earlier; the
batch path indexes new names meanwhile. These tests run in ``make test-boundscheck`` too, where
an out-of-bounds read in a kernel is an IndexError instead of a silent read.
"""

from __future__ import annotations

import os

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from oracle_servicer import check_wire

from riskd.v1 import risk_pb2 as pb
from riskd_server import wire
from riskd_server.engine import Engine
from riskd_server.interning import Interner, NameIndex
from riskd_server.kernel.single import find_name


def _request(ids: list[str], accounts: list[str], symbol: str = "S") -> bytes:
    n = len(ids)
    batch = pb.OrderBatch(
        client_order_id=ids,
        account=accounts,
        symbol=[symbol] * n,
        side=[1] * n,
        quantity=[1.0] * n,
        price=[0.0] * n,
    )
    return pb.CheckOrdersRequest(orders=batch).SerializeToString()


def test_one_order_request_after_a_batch_grew_the_index() -> None:
    """Regression: the engine held the index arrays of its last one-order request; a batch then
    indexed new names, inserting into the same hash table but moving the arena, and the next
    one-order request for a new name read its bytes past the end of the old arena (an IndexError
    under NUMBA_BOUNDSCHECK=1, an unchecked read of client-chosen offsets without)."""
    eng = Engine()
    eng.update_prices(["S"], [10.0])
    for cid in ("a0", "a1"):  # the second one runs check_one_order on the cached index
        out = check_wire(eng, _request([cid], ["A0"]), now=1.0)
        assert out is not None and out.accepted.tolist() == [True]
    long_names = [f"N{i:0>100}" for i in range(40)]  # 4 KB of names: the arena (1 KB) must grow
    out = check_wire(eng, _request([f"b{i}" for i in range(40)], long_names), now=1.0)
    assert out is not None and out.accepted.all()  # interns the names
    out = check_wire(eng, _request(["d0", "d1"], ["A0", "A0"]), now=1.0)
    assert out is not None and out.accepted.all()  # indexes them (table grown in place)
    for i, name in enumerate(reversed(long_names)):
        out = check_wire(eng, _request([f"c{i}"], [name]), now=1.0)
        assert out is not None and out.accepted.tolist() == [True]
    assert eng.stats()["open_orders"] == 2 + 40 + 2 + 40


def _lookup(index: NameIndex, name: str) -> tuple[int, int]:
    """(find_name's id, lookup_names's id) of name in index."""
    data = name.encode()
    buf = np.frombuffer(data, dtype=np.uint8)
    one = int(find_name(buf, 0, len(data), *index, wire.SEED))
    out = np.empty(1, dtype=np.int64)
    wire.lookup_names(buf, np.zeros(1, np.int64), np.array([len(data)]), 1, *index, wire.SEED, out)
    return one, int(out[0])


_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=128
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.lists(_names, max_size=120), min_size=1, max_size=8))
def test_a_snapshot_answers_as_when_taken(steps: list[list[str]]) -> None:
    """Snapshots taken between batches of new names: each still finds exactly the names it
    covered (with their ids) and none added after, its covered bytes unchanged, however the
    table, offsets and arena grew or were replaced since."""
    interner = Interner("symbol", 1_000_000)
    taken: list[tuple[NameIndex, dict[str, int], tuple[bytes, bytes, bytes]]] = []
    for names in steps:
        for name in names:
            assert interner.intern(name) >= 0
        index = interner.name_index()
        assert index.size == len(interner)
        known = {interner.name(i): i for i in range(index.size)}
        covered = index.offsets[: index.size + 1]
        frozen = (covered.tobytes(), index.arena[: int(covered[-1])].tobytes(), index.table.tobytes())
        taken.append((index, known, frozen))
    everything = {interner.name(i) for i in range(len(interner))}
    for index, known, (offsets, arena, table) in taken:
        covered = index.offsets[: index.size + 1]
        assert covered.tobytes() == offsets and index.arena[: int(covered[-1])].tobytes() == arena
        # The table may gain entries for later ids (shared until rehashed), never lose or move one.
        before = np.frombuffer(table, dtype=np.int64).reshape(-1, 2)
        kept = before[:, 0] != 0
        assert (index.table[kept] == before[kept]).all()
        for name in everything:
            want = known.get(name, -1)
            assert _lookup(index, name) == (want, want), name


def test_bounds_checking_is_on_when_asked() -> None:
    """make test-boundscheck sets NUMBA_BOUNDSCHECK=1 and its own NUMBA_CACHE_DIR: numba's cache
    does not key on the flag, so a shared cache would load unchecked machine code. A production
    kernel (cached) reading past its array must then raise."""
    if os.environ.get("NUMBA_BOUNDSCHECK") != "1":
        pytest.skip("bounds checking is off in this run (make test-boundscheck turns it on)")
    with pytest.raises(IndexError):
        wire.hash_span(np.zeros(4, dtype=np.uint8), 0, 64, wire.SEED)
    index = NameIndex(np.zeros((16, 2), np.int64), np.zeros(1, np.uint8), np.zeros(1, np.int64), 5)
    key = wire.hash_bytes(b"abc")
    index.table[:] = [key, 3]  # an id past offsets' end, and a count that claims to cover it
    with pytest.raises(IndexError):
        find_name(np.frombuffer(b"abc", np.uint8), 0, 3, *index, wire.SEED)
