"""Names round-trip byte for byte through PostgreSQL and recovery (issue: an id holding NUL came
back as U+FFFD, so after a restart its fills were "unknown" and its exposure stayed open).

Arbitrary unicode (NUL, C1 controls, non-BMP, ASCII for the numba fast path) through the full
server and the real client: names holding a control character are INVALID_ORDER (or
INVALID_ARGUMENT for a limit) and never stored; every other name is stored and recovered exactly,
so after a restart its fills apply, its duplicates are caught and its positions are where they were.
"""

from __future__ import annotations

import itertools
import uuid

import grpc
import hypothesis.strategies as st
import psycopg
import pytest
from fix_pg import admin
from fix_server import RiskdServer
from hypothesis import HealthCheck, given, settings
from psycopg import sql
from reference_model import has_control  # unicodedata, not the server's regex

from riskd_client import Execution, LimitSpec, Order, RiskClient, RiskdError
from riskd_server.store import Store

_text = st.one_of(
    st.text(min_size=1, max_size=6),  # any code point but surrogates: NUL, C0, C1, non-BMP
    st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=1, max_size=6),  # ASCII: raw path
    st.sampled_from(["A", "é", "😀", "\U0010ffff", "a\x00b", "\x7f", "x\x85", "\u2028", "\ufeff", "\x9f"]),
)
_examples = itertools.count()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(orders=st.lists(st.tuples(_text, _text, _text), min_size=1, max_size=8), limit_id=_text)
def test_names_come_back_byte_for_byte_after_a_restart(
    riskd_server: RiskdServer, orders: list[tuple[str, str, str]], limit_id: str
) -> None:
    k = next(_examples)  # one server for every example: ids unique per example, content arbitrary
    rows = [(f"{k}.{i}|{cid}", acc, sym) for i, (cid, acc, sym) in enumerate(orders)]
    valid = [not any(map(has_control, row)) for row in rows]
    accepted = [row for row, ok in zip(rows, valid, strict=True) if ok]
    rejected = [row for row, ok in zip(rows, valid, strict=True) if not ok]
    limit = LimitSpec(f"{k}|{limit_id}", "MAX_ORDER_QUANTITY", 1_000, account=rows[0][1], symbol=rows[0][2])
    limit_ok = not any(map(has_control, (limit.limit_id, limit.account, limit.symbol)))
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        results = [
            *client.check(Order(*rows[0], "BUY", 2, 10)),
            *client.check([Order(*r, "BUY", 2, 10) for r in rows[1:]]),
        ]
        for row, ok, result in zip(rows, valid, results, strict=True):
            if ok:
                assert result.accepted, (row, result)
            else:
                assert result.reject_mask == 1 << 20 and result.failed_checks == ("INVALID_ORDER",), (
                    row,
                    result,
                )
        fills = client.report_executions([Execution(cid, "FILL", 1, 10) for cid, _, _ in accepted])
        assert all(fills.applied)
        if limit_ok:
            client.upsert_limits([limit])
        else:
            with pytest.raises(RiskdError) as err:
                client.upsert_limits([limit])
            assert (
                err.value.status == grpc.StatusCode.INVALID_ARGUMENT
                and "control character" in err.value.details
            )

    riskd_server.restart()
    eng = riskd_server.running.engine  # type: ignore[union-attr]

    with admin(riskd_server.settings.dsn) as conn:
        stored = conn.execute(
            "SELECT client_order_id, account, symbol FROM orders WHERE client_order_id LIKE %s", (f"{k}.%",)
        ).fetchall()
        assert sorted(stored) == sorted(accepted)  # the same strs, so the same UTF-8 bytes
        positions = dict(
            ((a, s), q)
            for a, s, q in conn.execute("SELECT account, symbol, quantity FROM positions").fetchall()
        )
    pairs = {(acc, sym) for _, acc, sym in accepted}
    for acc, sym in pairs:
        opened = sum(1 for _, a, s in accepted if (a, s) == (acc, sym))
        assert (
            positions[(acc, sym)] >= opened
            and riskd_server.call(eng.position, acc, sym) == positions[(acc, sym)]
        )
    for cid, _, _ in accepted:
        assert riskd_server.call(eng.open_quantity, cid) == 1.0
    with RiskClient(riskd_server.target, timeout=10.0) as client:
        if accepted:
            again = client.check([Order(*row, "BUY", 2, 10) for row in accepted])
            assert all(r.failed_checks == ("DUPLICATE_ORDER_ID",) for r in again)
        before = {pair: riskd_server.call(eng.position, *pair) for pair in pairs}
        fills = client.report_executions([Execution(cid, "FILL", 1, 10) for cid, _, _ in accepted + rejected])
        assert list(fills.applied) == [True] * len(accepted) + [False] * len(rejected)
        assert all(e == "" for e in fills.errors[: len(accepted)])
        assert all(e.startswith("unknown") for e in fills.errors[len(accepted) :])
        for pair, qty in before.items():
            filled = sum(1 for _, a, s in accepted if (a, s) == pair)
            assert riskd_server.call(eng.position, *pair) == qty + filled
        listed = {lim.limit_id: lim for lim in client.list_limits()}
        if limit_ok:
            back = listed[limit.limit_id]
            assert (back.account, back.symbol) == (limit.account, limit.symbol)
        assert all(not has_control(name) for name in listed)


def test_a_database_not_in_utf8_is_refused(pg_server_dsn: str) -> None:
    """A SQL_ASCII database would store a non-ASCII name as bytes it cannot give back as sent."""
    from fix_pg import run
    from psycopg.conninfo import make_conninfo

    name = f"riskd_t_{uuid.uuid4().hex}"
    with admin(pg_server_dsn, dbname="postgres") as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
            ).format(sql.Identifier(name))
        )
    try:
        with pytest.raises(psycopg.NotSupportedError, match=r"SQL_ASCII.*needs UTF8"):
            run(Store.open(make_conninfo(pg_server_dsn, dbname=name), timeout=5.0))
    finally:
        with admin(pg_server_dsn, dbname="postgres") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
