"""Bulk recovery: the binary COPY reader and parser against psycopg's own decoding on a real
PostgreSQL, the distinct-names pass, and a restart through the store that must rebuild the same
engine (orders, retention order, duplicates, late fills, non-ASCII names, sequence gaps)."""

from __future__ import annotations

import asyncio
import math
import struct

import numpy as np
import psycopg
import pytest
from fix_pg import admin, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskd_server import changes as ch
from riskd_server import wire
from riskd_server.engine import Engine, EngineConfig
from riskd_server.kernel import layout as L
from riskd_server.kernel.distinct import distinct_spans
from riskd_server.limits import DUPLICATE_ORDER_ID
from riskd_server.store import Store, _copybin
from riskd_server.store._copyparse import FLOAT, INT, INT_NULL, TEXT, copy_out, parse_copy

FILL, CANCELED = 1, 2

# PostgreSQL text holds any Unicode but NUL (and UTF-8 has no surrogates).
pg_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
pg_float = st.floats(allow_nan=True, allow_infinity=True)
ROW = st.tuples(
    pg_text,
    st.none() | pg_text,
    st.integers(-(2**15), 2**15 - 1),
    st.none() | st.integers(-(2**63), 2**63 - 1),
    st.none() | pg_float,
)
KINDS = (TEXT, TEXT, INT, INT, FLOAT)


def _text(cols, k: int, i: int) -> str | None:
    n = int(cols.text_len[k, i])
    if n < 0:
        return None
    o = int(cols.text_off[k, i])
    return cols.buf[o : o + n].tobytes().decode("utf-8")


def _same_float(got: float, want: float | None) -> bool:
    if want is None or math.isnan(want):
        return math.isnan(got)  # NULL reads as NaN (the engine's "not set")
    return struct.pack(">d", got) == struct.pack(">d", want)  # exact, -0.0 included


async def _copy_and_select(dsn: str, rows: list[tuple]) -> tuple:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute(
            "CREATE TEMP TABLE t (k int, a text NOT NULL, b text, i2 int2 NOT NULL, i8 int8, f8 float8)"
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)", [(k, *r) for k, r in enumerate(rows)]
            )
        stream = await copy_out(
            conn, "COPY (SELECT a, b, i2, i8, f8 FROM t ORDER BY k) TO STDOUT (FORMAT BINARY)"
        )
        selected = await (await conn.execute("SELECT a, b, i2, i8, f8 FROM t ORDER BY k")).fetchall()
        # The connection is usable after copy_out: the COPY was read to its end.
        assert (await (await conn.execute("SELECT 1")).fetchone()) == (1,)
    return stream, selected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, max_size=25))
def test_parse_copy_matches_psycopg_on_random_rows(pg_server_dsn: str, rows: list[tuple]) -> None:
    stream, selected = run(_copy_and_select(pg_server_dsn, rows))
    cols = parse_copy(stream, KINDS)
    assert cols.rows == len(selected) == len(rows)
    for i, (a, b, i2, i8, f8) in enumerate(selected):
        assert _text(cols, 0, i) == a
        assert _text(cols, 1, i) == b
        assert int(cols.ints[0, i]) == i2
        assert int(cols.ints[1, i]) == (INT_NULL if i8 is None else i8)
        assert _same_float(float(cols.floats[0, i]), f8)


def test_copy_out_reads_long_and_empty_streams(pg_server_dsn: str) -> None:
    """Many socket reads (the await path in copy_out) and a stream with no rows at all."""

    async def main() -> tuple[np.ndarray, np.ndarray]:
        async with await psycopg.AsyncConnection.connect(pg_server_dsn) as conn:
            long = await copy_out(
                conn,
                "COPY (SELECT 'id-' || g, g::int8, (g / 4.0)::float8 FROM generate_series(1, 50000) AS g)"
                " TO STDOUT (FORMAT BINARY)",
            )
            empty = await copy_out(
                conn, "COPY (SELECT 'x', 1::int8, 1.0::float8 WHERE false) TO STDOUT (FORMAT BINARY)"
            )
        return long, empty

    long, empty = run(main())
    cols = parse_copy(long, (TEXT, INT, FLOAT))
    assert cols.rows == 50_000
    assert cols.ints[0].tolist() == list(range(1, 50_001))
    assert np.array_equal(cols.floats[0], np.arange(1, 50_001) / 4.0)
    assert [_text(cols, 0, i) for i in (0, 49_999)] == ["id-1", "id-50000"]
    assert parse_copy(empty, (TEXT, INT, FLOAT)).rows == 0


# ---------------------------------------------------------------------- the parser alone


def _encoded(rows: list[tuple]) -> np.ndarray:
    """The store's own binary COPY encoder (_copybin) for (text, int2, int8 or NULL, float8) rows."""
    n = len(rows)
    text = np.empty(n, dtype=object)
    text[:] = [r[0] for r in rows]
    i8_null = np.array([r[2] is None for r in rows], dtype=bool)
    stream = _copybin.encode(
        ("text", "int2", "int8", "float8"),
        (
            text,
            np.array([r[1] for r in rows], dtype=np.int16),
            np.array([0 if r[2] is None else r[2] for r in rows], dtype=np.int64),
            np.array([r[3] for r in rows], dtype=np.float64),
        ),
        (None, None, i8_null, None),
    )
    return np.frombuffer(stream, dtype=np.uint8)


ENCODED_ROW = st.tuples(
    pg_text, st.integers(-(2**15), 2**15 - 1), st.none() | st.integers(-(2**63), 2**63 - 1), pg_float
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(ENCODED_ROW, max_size=12), cut=st.integers(min_value=1))
def test_parse_copy_reads_the_encoder_and_rejects_every_truncation(rows: list[tuple], cut: int) -> None:
    buf = _encoded(rows)
    cols = parse_copy(buf, (TEXT, INT, INT, FLOAT))
    assert cols.rows == len(rows)
    for i, (s, i2, i8, f8) in enumerate(rows):
        assert _text(cols, 0, i) == s
        assert int(cols.ints[0, i]) == i2 and int(cols.ints[1, i]) == (INT_NULL if i8 is None else i8)
        assert _same_float(float(cols.floats[0, i]), f8)
    with pytest.raises(ValueError, match="binary COPY stream"):
        parse_copy(buf[: len(buf) - 1 - cut % len(buf)].copy(), (TEXT, INT, INT, FLOAT))
    with pytest.raises(ValueError, match="bytes after the trailer"):
        parse_copy(np.append(buf, np.uint8(0)), (TEXT, INT, INT, FLOAT))
    if rows:
        with pytest.raises(ValueError, match="field count"):
            parse_copy(buf, (TEXT, INT, INT))
        with pytest.raises(ValueError, match="field length"):
            parse_copy(buf, (TEXT, FLOAT, INT, FLOAT))  # an int2 where a float8 belongs


def test_parse_copy_rejects_a_foreign_header() -> None:
    buf = _encoded([("a", 1, 2, 3.0)])
    bad = buf.copy()
    bad[0] = ord("X")
    with pytest.raises(ValueError, match="header"):
        parse_copy(bad, (TEXT, INT, INT, FLOAT))
    oids = buf.copy()
    oids[11 + 1] = 1  # flags bit 16: OIDs included
    with pytest.raises(ValueError, match="header"):
        parse_copy(oids, (TEXT, INT, INT, FLOAT))


NAME_BYTES = st.binary(max_size=3) | st.sampled_from([b"ab", b"ba", b"abc", "é".encode(), "😀".encode()])


@settings(max_examples=200, deadline=None)
@given(values=st.lists(NAME_BYTES, max_size=60))
def test_distinct_spans_groups_rows_by_their_bytes(values: list[bytes]) -> None:
    buf = np.frombuffer(b"".join(values), dtype=np.uint8)
    length = np.array([len(v) for v in values], dtype=np.int64)
    off = np.zeros(len(values), dtype=np.int64)
    np.cumsum(length[:-1], out=off[1:])
    first, inverse = distinct_spans(buf, off, length, wire.SEED)
    seen: dict[bytes, int] = {}
    for i, v in enumerate(values):
        seen.setdefault(v, i)
    assert first.tolist() == list(seen.values())  # first appearances, in order
    assert [values[first[d]] for d in inverse.tolist()] == values


# ---------------------------------------------------------------------- restart through the store


IDS = [f"ordé-{i}-😀" if i % 3 == 0 else f"o{i}" for i in range(400)]
ACCOUNTS = ["Ácc-1", "A2", "口座", "Z"]
SYMBOLS = ["Sé", "🚀SYM", "X", "Y", "銘柄"]


async def _run_and_restart(dsn: str, retention: int, build) -> tuple[Engine, ch.Snapshot]:
    store = await Store.open(dsn, min_size=1, max_size=2, timeout=5.0)
    try:
        writer = store.write_behind(max_pending_rows=100_000, flush_interval=0.01)
        await writer.start()
        eng = Engine(EngineConfig(max_open_orders=1_000, closed_order_retention=retention), sink=writer)
        await build(eng, writer)
        await writer.stop(timeout=10.0)
        assert writer.stats().failures == 0
        snap = await store.load_snapshot(retention)
    finally:
        await store.close()
    eng.sink = None
    return eng, snap


def _exposure(eng: Engine, account: str) -> list[float]:
    a = eng.accounts.get(account)
    return eng._s.acct[a, [L.A_OPEN_GROSS, L.A_OPEN_NET, L.A_POS_GROSS, L.A_POS_NET, L.A_OPEN_COUNT]].tolist()


def test_restart_rebuilds_orders_retention_duplicates_and_late_fills(fresh_dsn: str) -> None:
    retention = 50
    rng = np.random.default_rng(7)
    closing = [IDS[i] for i in rng.permutation(200)]  # closed in this order, over several flushes

    async def build(eng: Engine, writer) -> None:
        n = len(IDS)
        eng.update_prices(SYMBOLS[:3], [10.0, 20.0, 30.0])
        eng.load_positions(["Ácc-1", "口座"], ["Sé", "銘柄"], [5.0, -3.0])
        out = eng.check_orders(
            IDS,
            [ACCOUNTS[i % 4] for i in range(n)],
            [SYMBOLS[i % 5] for i in range(n)],
            [1 + i % 2 for i in range(n)],
            [1.0 + i % 5 for i in range(n)],
            [10.0 + i % 7 for i in range(n)],
            now=0.0,
        )
        assert out.accepted.all()
        await writer.barrier(5.0)
        for k in range(0, 200, 40):
            part = closing[k : k + 40]
            types = [FILL if j % 4 == 0 else CANCELED for j in range(len(part))]
            qty = [100.0 if t == FILL else 0.0 for t in types]  # fills overfill: the order closes
            eng.report_executions(part, types, qty, [11.0] * len(part))
            await writer.barrier(5.0)
        eng.report_executions([IDS[201], IDS[202]], [FILL, FILL], [0.5, 0.25], [12.0, 13.0])  # partial

    eng, snap = run(_run_and_restart(fresh_dsn, retention, build))
    assert [r.client_order_id for r in snap.recent_closed] == closing[-retention:]  # oldest close first
    restored = Engine(EngineConfig(max_open_orders=1_000, closed_order_retention=retention))
    restored.restore(snap)
    assert restored.stats()["open_orders"] == eng.stats()["open_orders"] == 200
    assert restored.stats()["retained_closed_orders"] == retention
    assert [restored.open_quantity(i) for i in IDS] == [eng.open_quantity(i) for i in IDS]
    for a in ACCOUNTS:
        for s in SYMBOLS:
            assert restored.position(a, s) == eng.position(a, s)
        # Open exposure recomputed from the slots equals the running engine's incremental sums.
        assert _exposure(restored, a) == pytest.approx(_exposure(eng, a), rel=1e-12)
    # Late fills on retained closed orders move the position the same way in both engines.
    late = closing[-3:]
    for e in (eng, restored):
        out = e.report_executions(late, [FILL] * 3, [2.0] * 3, [9.0] * 3)
        assert out.status.tolist() == [L.X_LATE_FILL] * 3
    assert {(a, s): restored.position(a, s) for a in ACCOUNTS for s in SYMBOLS} == {
        (a, s): eng.position(a, s) for a in ACCOUNTS for s in SYMBOLS
    }
    # Duplicates: open and retained ids are refused, ids closed before the retention are new again.
    known = set(closing[-retention:]) | {oid for oid in IDS if eng.open_quantity(oid) > 0}
    probe = [*IDS, "fresh"]
    n = len(probe)
    outs = [
        e.check_orders(probe, ["Z"] * n, ["X"] * n, [1] * n, [1.0] * n, [10.0] * n, now=1.0)
        for e in (eng, restored)
    ]
    assert outs[0].reject_mask.tolist() == outs[1].reject_mask.tolist()
    dup = [bool(m >> DUPLICATE_ORDER_ID & 1) for m in outs[1].reject_mask.tolist()]
    assert dup == [oid in known for oid in probe]
    assert sum(dup) == 200 + retention and outs[1].accepted.sum() == n - 200 - retention


def test_restart_with_fewer_slots_than_recovered_open_orders(fresh_dsn: str) -> None:
    async def build(eng: Engine, writer) -> None:
        assert eng.check_orders(
            IDS[:30], ["Ácc-1"] * 30, ["🚀SYM"] * 30, [2] * 30, [2.0] * 30, [5.0] * 30, now=0.0
        ).accepted.all()

    _, snap = run(_run_and_restart(fresh_dsn, 10, build))
    small = Engine(EngineConfig(max_open_orders=8, closed_order_retention=10, initial_order_slots=1))
    small.restore(snap)
    assert small.open_orders() == 30 and small.stats()["order_slots"] == 30
    assert [small.open_quantity(i) for i in IDS[:30]] == [2.0] * 30
    assert _exposure(small, "Ácc-1") == [300.0, -300.0, 0.0, 0.0, 30.0]


@pytest.mark.parametrize("gap", [0, 10_000], ids=["dense", "after-a-gap"])
def test_newest_closed_orders_are_found_whatever_the_sequence_gaps(fresh_dsn: str, gap: int) -> None:
    """closed_seq > last_value - 2N narrows the scan; lost sequence values fall back to a full read."""
    retention = 5
    ids = [f"c{i}" for i in range(24)]

    async def build(eng: Engine, writer) -> None:
        assert eng.check_orders(
            ids, ["A"] * 24, ["X"] * 24, [1] * 24, [1.0] * 24, [1.0] * 24, now=0.0
        ).accepted.all()
        await writer.barrier(5.0)
        eng.report_executions(ids[:20], [CANCELED] * 20, [0.0] * 20, [0.0] * 20)
        await writer.barrier(5.0)
        if gap:  # values taken by flushes that rolled back
            with admin(writer_dsn) as conn:
                conn.execute("SELECT setval('orders_closed_seq', nextval('orders_closed_seq') + %s)", (gap,))
        eng.report_executions(ids[20:22], [CANCELED] * 2, [0.0] * 2, [0.0] * 2)

    writer_dsn = fresh_dsn
    _, snap = run(_run_and_restart(fresh_dsn, retention, build))
    assert [r.client_order_id for r in snap.recent_closed] == ids[17:22]
    assert sorted(r.client_order_id for r in snap.open_orders) == ids[22:]
    everything = run(_load(fresh_dsn, 1_000))
    assert [r.client_order_id for r in everything.recent_closed] == ids[:22]
    none = run(_load(fresh_dsn, 0))
    assert none.recent_closed == () and len(none.open_orders) == 2


async def _load(dsn: str, retention: int) -> ch.Snapshot:
    store = await Store.open(dsn, min_size=1, max_size=1, timeout=5.0)
    try:
        return await asyncio.wait_for(store.load_snapshot(retention), 30)
    finally:
        await store.close()


NAME = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=16)  # accepted names


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(NAME, st.sampled_from(["Ä", "B"]) | NAME, NAME),
        min_size=1,
        max_size=30,
        unique_by=lambda r: r[0],
    ),
    closed=st.integers(0, 30),
)
def test_restore_finds_unicode_ids_and_names_exactly_as_the_check_path(
    rows: list[tuple], closed: int
) -> None:
    """Ids are keyed from their bytes as engine.names.hash_ids keys strs; names intern to the ids the str paths use."""
    closed = min(closed, len(rows))
    orders = [ch.OpenOrderRow(i, a, s, 1 + k % 2, 1.0 + k, 2.0) for k, (i, a, s) in enumerate(rows)]
    eng = Engine(EngineConfig(max_open_orders=64, closed_order_retention=64, initial_order_slots=1))
    eng.restore(ch.Snapshot(orders=ch.RecoveredOrders.of(orders[:closed], orders[closed:])))
    assert [eng.open_quantity(o.client_order_id) for o in orders] == [0.0] * closed + [
        o.open_quantity for o in orders[closed:]
    ]
    assert sorted(eng.accounts.get(a) for a in {o.account for o in orders}) == list(
        range(len({o.account for o in orders}))
    )
    n = len(orders)
    out = eng.check_orders(
        [o.client_order_id for o in orders], [o.account for o in orders], [o.symbol for o in orders],
        [1] * n, [1.0] * n, [1.0] * n, now=0.0,
    )  # fmt: skip
    assert out.reject_mask.tolist() == [1 << DUPLICATE_ORDER_ID] * n  # every id known, open or retained
    assert len(eng.accounts) == len({o.account for o in orders})  # the check path found the same names
