"""engine.replay: an engine driven through wire-level requests, its journal records replayed into a
fresh engine, must end in the same state and emit the same change records.

Engine A plays the server: each operation is a serialized request handled as the servicer handles
it (parse_check_request + check_parsed + encode_response for checks, the servicer's engine calls
for the rest, LimitAdmin's stage/build/install for limits), with A's clocks set per operation, and
the record the servicer will journal is built with journal.records. Engine B replays the records
(apply_input). Both have a capturing sink; the change records must match one for one.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recording_sink import RecordingSink
from risk_models import make_model

from riskd.v1 import risk_pb2 as pb
from riskd_server import changes as ch
from riskd_server.engine import Backpressure, BatchError, Engine, EngineConfig
from riskd_server.engine.replay import ReplayClock, apply_input, parse_reply, replay_journal
from riskd_server.journal import codec
from riskd_server.journal import records as rec
from riskd_server.journal.writer import Journal
from riskd_server.kernel import layout as L
from riskd_server.limits import (
    MAX_GROSS_EXPOSURE,
    MAX_OPEN_ORDERS,
    MAX_ORDER_QUANTITY,
    MAX_ORDER_RATE,
    MAX_POSITION,
    MAX_VAR,
    PRICE_COLLAR,
    RESTRICTED_SYMBOL,
    Limit,
)
from riskd_server.risk.model import FACTOR
from riskd_server.wire.encode import encode_response
from riskd_server.wire.request import OneOrder, SpanOrders, StrOrders, parse_check_request

ACCOUNTS = ["ACC1", "ACC2", "accé", "B" * 128, "x" * 129]  # the last is invalid (too long)
SYMBOLS = ["S1", "S2", "Søk", "S3"]
CONFIG = EngineConfig(
    max_batch=300,
    max_open_orders=400,
    closed_order_retention=6,  # small: closed ids are evicted (and may be reused) during a run
    initial_accounts=2,
    initial_symbols=2,
    initial_books=2,
    initial_order_slots=4,
)
LIMITS = [
    Limit(limit_id="qty", kind=MAX_ORDER_QUANTITY, threshold=80.0, warn_fraction=0.5),
    Limit(limit_id="rate1", kind=MAX_ORDER_RATE, account="ACC1", threshold=3.0),
    Limit(limit_id="open2", kind=MAX_OPEN_ORDERS, account="ACC2", threshold=6.0),
    Limit(limit_id="pos-s1", kind=MAX_POSITION, symbol="S1", threshold=150.0, warn_fraction=0.8),
    Limit(limit_id="collar", kind=PRICE_COLLAR, threshold=0.2),
    Limit(limit_id="restr", kind=RESTRICTED_SYMBOL, account="accé", symbol="S3"),
    Limit(limit_id="gross", kind=MAX_GROSS_EXPOSURE, account="ACC2", threshold=20_000.0, warn_fraction=0.7),
    Limit(limit_id="qty-ü", kind=MAX_ORDER_QUANTITY, account="accé", symbol="Søk", threshold=30.0),
]


class Clock:
    """Engine A's clocks, moved by the test."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1.7e9 + self.t


class Server:
    """Engine A handled the way the servicer handles requests, journaling what the servicer will."""

    def __init__(self, model=None) -> None:
        self.clock = Clock()
        self.sink = RecordingSink()
        self.engine = Engine(CONFIG, sink=self.sink, clock=self.clock.now, wall_clock=self.clock.wall)
        if model is not None:
            self.engine.set_risk_model(model)
        self.records: list[tuple[int, bytes]] = []
        self.ids: list[str] = []  # every client_order_id sent
        self.next_id = 0

    def _head(self) -> tuple[float, float]:
        return self.clock.now(), self.clock.wall()

    def check(self, request: bytes) -> bytes:
        reply = encode_response(self.engine.check_parsed(parse_check_request(request)))
        self.records.append((rec.CHECK, rec.check_payload(*self._head(), request, reply)))
        return reply

    def report(self, request: pb.ReportExecutionsRequest) -> None:
        from riskd_server.wire.request import parse_report_request

        data = request.SerializeToString()
        r = parse_report_request(data)
        self.engine.report_executions(
            r.client_order_id, r.type, r.quantity, r.price, account=r.account, symbol=r.symbol, side=r.side
        )
        self.records.append((rec.EXECUTIONS, rec.input_payload(*self._head(), data)))

    def prices(self, request: pb.UpdatePricesRequest) -> None:
        self.engine.update_prices(request.symbol, np.asarray(request.price, dtype=np.float64))
        self.records.append((rec.PRICES, rec.input_payload(*self._head(), request.SerializeToString())))

    def positions(self, request: pb.LoadPositionsRequest) -> None:
        self.engine.load_positions(request.account, request.symbol, request.quantity)
        self.records.append((rec.POSITIONS, rec.input_payload(*self._head(), request.SerializeToString())))

    def trading_state(self, request: pb.SetTradingStateRequest) -> None:
        self.engine.set_trading_state(request.account, request.state, request.reason)
        self.records.append(
            (rec.TRADING_STATE, rec.input_payload(*self._head(), request.SerializeToString()))
        )

    def _install(self, book, change: ch.LimitsChanged) -> None:
        """Engine.install_limits plus what the lead's hook journals: the change as installed."""
        self.engine.install_limits(book, change)
        self.records.append((rec.LIMITS, rec.input_payload(*self._head(), codec.encode(change)[1])))

    def upsert(self, limits: list[Limit], action: str = "upsert") -> None:
        """As LimitAdmin.upsert."""
        eng = self.engine
        version = eng.stage_upsert(limits)
        book = eng.build_limits(limits, (), version)
        self._install(book, ch.LimitsChanged(tuple(limits), (), version, "ipv4:10.0.0.1:5", action, 1e9))

    def delete(self, ids: list[str]) -> None:
        """As LimitAdmin.delete."""
        eng = self.engine
        deleted, _ = eng.stage_delete(ids)
        if deleted:
            version = eng.limits.version + 1
            book = eng.build_limits((), deleted, version)
            self._install(book, ch.LimitsChanged((), tuple(deleted), version, "me", "delete", 2e9))

    def apply(self, upserted: list[Limit], deleted: list[str]) -> None:
        """As LimitAdmin.apply (imports, templates): names staged, one change of both kinds."""
        eng = self.engine
        deleted = [i for i in deleted if i in eng.limits.limits and i not in {x.limit_id for x in upserted}]
        accounts = list(dict.fromkeys(x.account for x in upserted))  # as limit_admin._names
        symbols = list(dict.fromkeys(x.symbol for x in upserted))
        eng.stage_names(accounts, symbols, len(upserted) + len(deleted))
        version = eng.limits.version + 1
        book = eng.build_limits(upserted, deleted, version)
        self._install(book, ch.LimitsChanged(tuple(upserted), tuple(deleted), version, "cli", "import", 3e9))

    def plain_upsert(self, limits: list[Limit]) -> None:
        """Engine.upsert_limits (a change with version 0, as tools make)."""
        eng = self.engine
        version = eng.stage_upsert(limits)
        self._install(eng.build_limits(limits, (), version), ch.LimitsChanged(tuple(limits), ()))


def batch_request(ids, accounts, symbols, sides, qtys, prices) -> bytes:
    return pb.CheckOrdersRequest(
        orders=pb.OrderBatch(
            client_order_id=ids, account=accounts, symbol=symbols, side=sides, quantity=qtys, price=prices
        )
    ).SerializeToString()


def replica(model=None, config: EngineConfig = CONFIG) -> tuple[Engine, ReplayClock, RecordingSink]:
    clock = ReplayClock()
    sink = RecordingSink()
    engine = Engine(config, sink=sink, clock=clock.now, wall_clock=clock.wall)
    if model is not None:
        engine.set_risk_model(model)
    return engine, clock, sink


def replay_all(records, model=None) -> tuple[Engine, RecordingSink]:
    b, _, sink = replay_all_clock(records, model)
    return b, sink


def replay_all_clock(records, model=None) -> tuple[Engine, ReplayClock, RecordingSink]:
    b, clock, sink = replica(model)
    for seq, (type_, payload) in enumerate(records, 1):
        apply_input(b, clock, type_, payload, seq=seq)
    return b, clock, sink


# Columns of the book rows that are state (the rest cache limit levels, resolved lazily).
_BOOK_STATE = [L.B_POS, L.B_OPEN_BUY, L.B_OPEN_SELL]


def assert_same_engine(a: Engine, b: Engine, ids: list[str]) -> None:
    assert a.stats() == b.stats()
    for interner in ("accounts", "symbols"):  # the same names with the same ids
        ia, ib = getattr(a, interner), getattr(b, interner)
        n = len(ia)
        assert ia.names_of(np.arange(n)).tolist() == ib.names_of(np.arange(n)).tolist()
    for account in [*ACCOUNTS, ""]:
        assert a.trading_state(account) == b.trading_state(account)
        assert a.exposure(account) == b.exposure(account)
        for symbol in SYMBOLS:
            assert a.position(account, symbol) == b.position(account, symbol)
    for client_order_id in ids:
        assert a.open_quantity(client_order_id) == b.open_quantity(client_order_id), client_order_id
    assert a.list_limits() == b.list_limits()
    assert a.limits.version == b.limits.version
    assert a.open_orders() == b.open_orders()
    assert a.check_counter.snapshot() == b.check_counter.snapshot()
    sa, sb = a._s, b._s
    books = int(sa.ctr[L.C_BOOKS])
    np.testing.assert_array_equal(sa.ctr, sb.ctr)
    np.testing.assert_array_equal(sa.acct[: len(a.accounts)], sb.acct[: len(b.accounts)])
    np.testing.assert_array_equal(sa.sym[: len(a.symbols)], sb.sym[: len(b.symbols)])
    np.testing.assert_array_equal(sa.book[:books][:, _BOOK_STATE], sb.book[:books][:, _BOOK_STATE])
    np.testing.assert_array_equal(sa.book_pair[:books], sb.book_pair[:books])
    np.testing.assert_array_equal(sa.sym_books, sb.sym_books)
    np.testing.assert_array_equal(sa.ord_ht, sb.ord_ht)
    slots = int(sa.ctr[L.C_SLOTS])
    np.testing.assert_array_equal(sa.ordi[:slots, 4:7], sb.ordi[:slots, 4:7])
    np.testing.assert_array_equal(sa.ordf[:slots, :4], sb.ordf[:slots, :4])
    np.testing.assert_array_equal(sa.free[: sa.ctr[L.C_FREE_TOP]], sb.free[: sb.ctr[L.C_FREE_TOP]])
    np.testing.assert_array_equal(sa.vacct, sb.vacct)


def assert_same_checks_after(server: Server, b: Engine, clock: ReplayClock) -> None:
    """B goes on as the server would (recovery): a check of every account and symbol pair gets the
    reply A gives, so B's cached limit levels, buckets and books are A's."""
    pairs = [(x, y) for x in ACCOUNTS[:4] for y in SYMBOLS]
    n = 2 * len(pairs)
    ids = [f"probe{k}" for k in range(n)]
    accounts = [x for x, _ in pairs] * 2
    symbols = [y for _, y in pairs] * 2
    request = batch_request(
        ids, accounts, symbols, [1, 2] * len(pairs), [10.0] * n, [0.0, 100.0] * len(pairs)
    )
    server.clock.t += 0.25
    clock.set(server.clock.now(), server.clock.wall())
    want = encode_response(server.engine.check_parsed(parse_check_request(request)))
    assert encode_response(b.check_parsed(parse_check_request(request))) == want


def assert_same_changes(a: RecordingSink, b: RecordingSink) -> None:
    assert [type(c).__name__ for c in a.changes] == [type(c).__name__ for c in b.changes]
    for i, (x, y) in enumerate(zip(a.changes, b.changes, strict=True)):
        assert codec.same_change(x, y), (i, x, y)


# ------------------------------------------------------------------ random sessions


def _fresh_id(server: Server, draw) -> str:
    server.next_id += 1
    k = server.next_id
    return draw(st.sampled_from([f"o{k}", f"o{k}", f"ö{k}", f"id-{k}"]))


def _order_id(server: Server, draw) -> str:
    if server.ids and draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(server.ids))  # a duplicate (or a reuse after eviction)
    if draw(st.integers(0, 40)) == 0:
        return ""  # invalid
    return _fresh_id(server, draw)


def _check_step(server: Server, draw) -> None:
    n = draw(st.sampled_from([1, 1, 2, 5, 9, 20, 40]))
    ascii_only = draw(st.booleans())
    accounts_pool = ACCOUNTS if not ascii_only else ["ACC1", "ACC2", "B" * 128]
    symbols_pool = SYMBOLS if not ascii_only else ["S1", "S2", "S3"]
    ids = []
    for _ in range(n):
        i = _order_id(server, draw)
        if ascii_only and not i.isascii():
            i = f"a{server.next_id}"
        ids.append(i)
    server.ids.extend(i for i in ids if i)
    accounts = [draw(st.sampled_from(accounts_pool)) for _ in range(n)]
    symbols = [draw(st.sampled_from(symbols_pool)) for _ in range(n)]
    sides = [draw(st.sampled_from([1, 1, 2, 2, 0])) for _ in range(n)]
    qtys = [draw(st.sampled_from([1.0, 5.0, 10.0, 25.0, 45.0, 100.0, -1.0])) for _ in range(n)]
    prices = [draw(st.sampled_from([0.0, 0.0, 99.0, 100.0, 101.0, 150.0])) for _ in range(n)]
    reply = server.check(batch_request(ids, accounts, symbols, sides, qtys, prices))
    assert len(pb.CheckOrdersResponse.FromString(reply).result.accepted) == n


def _executions_step(server: Server, draw) -> None:
    n = draw(st.integers(1, 8))
    named = draw(st.booleans())
    ids, types, qtys, prices, accounts, symbols, sides = [], [], [], [], [], [], []
    for _ in range(n):
        if server.ids and draw(st.integers(0, 4)):
            i = draw(st.sampled_from(server.ids))
        else:
            i = f"u{draw(st.integers(0, 3))}"  # never checked: an unknown order
        open_qty = server.engine.open_quantity(i)
        t = draw(st.sampled_from([1, 1, 1, 2, 3, 4, 0]))
        q = draw(st.sampled_from([open_qty, open_qty / 2, open_qty + 3, 1.0, 0.0]))
        ids.append(i)
        types.append(t)
        qtys.append(q if t == 1 else 0.0)
        prices.append(draw(st.sampled_from([100.0, 97.5, 0.0])) if t == 1 else 0.0)
        if named:
            accounts.append(draw(st.sampled_from([*ACCOUNTS, ""])))
            symbols.append(draw(st.sampled_from([*SYMBOLS, ""])))
            sides.append(draw(st.sampled_from([1, 2, 0])))
    server.report(
        pb.ReportExecutionsRequest(
            client_order_id=ids,
            type=types,
            quantity=qtys,
            price=prices,
            account=accounts,
            symbol=symbols,
            side=sides,
        )
    )


def _limits_step(server: Server, draw) -> None:
    what = draw(st.sampled_from(["upsert", "upsert", "delete", "plain", "import"]))
    chosen = draw(st.lists(st.sampled_from(LIMITS), min_size=1, max_size=4, unique_by=lambda x: x.limit_id))
    if what == "delete":
        server.delete([lim.limit_id for lim in chosen] + ["never-there"])
        return
    scale = draw(st.sampled_from([1.0, 1.0, 0.5, 2.0]))
    chosen = [dataclasses.replace(lim, threshold=lim.threshold * scale) for lim in chosen]
    if what == "plain":
        server.plain_upsert(chosen)
    elif what == "import":
        others = draw(st.lists(st.sampled_from([lim.limit_id for lim in LIMITS]), max_size=3))
        server.apply(chosen, others)
    else:
        server.upsert(chosen, action=what)


def _step(server: Server, draw) -> None:
    server.clock.t += draw(st.sampled_from([0.0, 0.01, 0.1, 0.4, 1.5]))
    kind = draw(st.sampled_from(["check"] * 6 + ["exec"] * 3 + ["prices", "positions", "limits", "state"]))
    try:
        if kind == "check":
            _check_step(server, draw)
        elif kind == "exec":
            _executions_step(server, draw)
        elif kind == "prices":
            symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True))
            prices = [draw(st.sampled_from([90.0, 100.0, 100.5, 120.0])) for _ in symbols]
            server.prices(pb.UpdatePricesRequest(symbol=symbols, price=prices))
        elif kind == "positions":
            n = draw(st.integers(1, 3))
            server.positions(
                pb.LoadPositionsRequest(
                    account=[draw(st.sampled_from(ACCOUNTS[:4])) for _ in range(n)],
                    symbol=[draw(st.sampled_from(SYMBOLS)) for _ in range(n)],
                    quantity=[draw(st.sampled_from([-20.0, 0.0, 10.0, 60.0])) for _ in range(n)],
                )
            )
        elif kind == "limits":
            _limits_step(server, draw)
        else:
            account = draw(st.sampled_from(["", "ACC1", "ACC2", "accé"]))
            state = draw(st.sampled_from([1, 1, 2, 3]))
            server.trading_state(pb.SetTradingStateRequest(account=account, state=state, reason="r é"))
    except BatchError:  # refused whole: nothing changed, nothing journaled
        pass


def _session(draw, model=None) -> Server:
    server = Server(model)
    server.clock.t += 0.5
    server.upsert(draw(st.lists(st.sampled_from(LIMITS), max_size=4, unique_by=lambda x: x.limit_id)))
    if draw(st.booleans()):
        server.prices(pb.UpdatePricesRequest(symbol=SYMBOLS[:3], price=[100.0, 50.0, 20.0]))
    for _ in range(draw(st.integers(1, 30))):
        _step(server, draw)
    return server


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replay_reproduces_state_and_changes(data: st.DataObject) -> None:
    server = _session(data.draw)
    b, clock, sink = replay_all_clock(server.records)
    assert_same_engine(server.engine, b, server.ids)
    assert_same_changes(server.sink, sink)
    assert_same_checks_after(server, b, clock)


def _model():
    return make_model(FACTOR, SYMBOLS[:3], seed=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replay_with_a_risk_model_moves_the_var_terms_alike(data: st.DataObject) -> None:
    model = _model()
    server = _session(data.draw, model)
    var = Limit(limit_id="var1", kind=MAX_VAR, account="ACC1", threshold=200.0, warn_fraction=0.5)
    server.upsert([var])
    for _ in range(data.draw(st.integers(1, 15))):
        _step(server, data.draw)
    b, clock, sink = replay_all_clock(server.records, model)
    assert_same_engine(server.engine, b, server.ids)
    assert_same_changes(server.sink, sink)
    assert_same_checks_after(server, b, clock)


def test_every_parse_path_and_the_rate_bucket_are_covered() -> None:
    """The property test's shapes reach each parse path (so a path is not silently untested), and a
    rate-limited account's bucket replays to the same tokens."""
    server = Server()
    server.upsert([LIMITS[1]])
    server.prices(pb.UpdatePricesRequest(symbol=["S1"], price=[100.0]))
    one = batch_request(["a1"], ["ACC1"], ["S1"], [1], [1.0], [0.0])
    ascii_batch = batch_request(
        [f"b{i}" for i in range(20)], ["ACC1"] * 20, ["S1"] * 20, [1] * 20, [1.0] * 20, [0.0] * 20
    )
    wide = batch_request(["é1", "é2"], ["accé", "ACC1"], ["Søk", "S1"], [1, 2], [1.0, 1.0], [0.0, 100.0])
    assert isinstance(parse_check_request(one), OneOrder)
    assert isinstance(parse_check_request(ascii_batch), SpanOrders)
    assert isinstance(parse_check_request(wide), StrOrders)
    for request in (one, ascii_batch, wide):
        server.clock.t += 0.3
        server.check(request)
    accepted = int(np.sum(parse_reply(server.records[-2][1][20 + len(ascii_batch) :])[0]))
    assert 0 < accepted < 20  # the rate limit (3/s) rejected some of the batch
    b, sink = replay_all(server.records)
    a_row, b_row = server.engine._s.acct[0], b._s.acct[0]
    assert a_row[L.A_TOKENS] == b_row[L.A_TOKENS] and a_row[L.A_LAST_TS] == b_row[L.A_LAST_TS]
    assert_same_engine(server.engine, b, ["a1", "é1", "é2"] + [f"b{i}" for i in range(20)])
    assert_same_changes(server.sink, sink)


# ------------------------------------------------------------------ the outcome is forced


def test_a_recorded_reject_is_not_opened_though_the_replica_would_accept_it() -> None:
    """A had a quantity limit B never saw (installed outside the journal): B must not check."""
    server = Server()
    server.engine.upsert_limits([Limit(limit_id="tight", kind=MAX_ORDER_QUANTITY, threshold=5.0)])
    server.prices(pb.UpdatePricesRequest(symbol=["S1"], price=[100.0]))
    server.check(
        batch_request(["r1", "r2", "r3"], ["ACC1"] * 3, ["S1"] * 3, [1, 1, 2], [10.0, 2.0, 7.0], [0.0] * 3)
    )
    b, sink = replay_all(server.records)
    assert b.limits.limits == {}  # B would accept everything
    assert [b.open_quantity(i) for i in ("r1", "r2", "r3")] == [0.0, 2.0, 0.0]
    events = sink.of(ch.CheckEvents)
    assert len(events) == 1 and events[0].limit_id.tolist() == ["tight", "tight"]
    assert codec.same_change(server.sink.of(ch.CheckEvents)[0], events[0])
    assert codec.same_change(server.sink.of(ch.OrdersAccepted)[0], sink.of(ch.OrdersAccepted)[0])
    assert b.check_counter.snapshot() == server.engine.check_counter.snapshot()


def test_a_recorded_accept_is_opened_though_the_replica_would_reject_it() -> None:
    """B has a restriction A did not (and no price at all): the recorded accept still opens."""
    server = Server()
    server.prices(pb.UpdatePricesRequest(symbol=["S1"], price=[100.0]))
    server.check(batch_request(["k1"], ["ACC1"], ["S1"], [2], [4.0], [0.0]))
    b, clock, sink = replica()
    b.upsert_limits([Limit(limit_id="no", kind=RESTRICTED_SYMBOL, symbol="S1")])
    for type_, payload in server.records:
        apply_input(b, clock, type_, payload)
    assert b.open_quantity("k1") == 4.0
    assert b.exposure("ACC1") == server.engine.exposure("ACC1")
    assert codec.same_change(server.sink.of(ch.OrdersAccepted)[0], sink.of(ch.OrdersAccepted)[0])
    assert not sink.of(ch.CheckEvents)


def test_a_book_opened_in_the_spare_row_gets_its_own_limit_levels() -> None:
    """check_batch resolves a new pair's limit levels into the spare book row, tagged with the
    limits version, whether or not the order is accepted. A state that checked before (restored
    from a checkpoint, say) then replays an accept that opens a book in that row: the row must hold
    the new pair's levels, or the next check of the pair misses its limit."""
    server = Server()
    server.upsert(
        [Limit(limit_id="tight", kind=MAX_ORDER_QUANTITY, account="ACC2", symbol="S1", threshold=5.0)]
    )
    server.prices(pb.UpdatePricesRequest(symbol=["S1", "S2"], price=[100.0, 100.0]))
    server.trading_state(pb.SetTradingStateRequest(account="ACC1", state=3))
    before = len(server.records)
    halted = batch_request(["h1"], ["ACC1"], ["S2"], [1], [10.0], [0.0])  # rejected HALTED
    server.check(halted)
    server.check(batch_request(["ok1"], ["ACC2"], ["S1"], [1], [4.0], [0.0]))  # opens (ACC2, S1)
    b, clock, _ = replay_all_clock(server.records[:before])
    clock.set(server.clock.now(), server.clock.wall())
    b.check_parsed(parse_check_request(halted))  # B's own check leaves (ACC1, S2)'s levels in the spare row
    apply_input(b, clock, *server.records[before + 1])
    assert b.open_quantity("ok1") == 4.0
    probe = batch_request(["p1"], ["ACC2"], ["S1"], [1], [10.0], [0.0])
    want = server.engine.check_parsed(parse_check_request(probe))
    got = b.check_parsed(parse_check_request(probe))
    assert want.violations.limit_id.tolist() == ["tight"]
    assert got.violations.limit_id.tolist() == ["tight"]


def test_a_diverged_replica_skips_what_it_cannot_open(caplog: pytest.LogCaptureFixture) -> None:
    """An accepted order whose id the replica already holds is skipped and logged, not half applied."""
    server = Server()
    server.prices(pb.UpdatePricesRequest(symbol=["S1"], price=[100.0]))
    server.check(batch_request(["d1"], ["ACC1"], ["S1"], [1], [1.0], [0.0]))
    b, _sink = replay_all(server.records)
    _, clock, _ = replica()
    apply_input(b, clock, *server.records[-1])  # the same check again: d1 is open already
    assert b.open_orders() == 1 and b.exposure("ACC1").open_orders == 1
    assert "could not be opened" in caplog.text


# ------------------------------------------------------------------ records and the journal


class FullSink(RecordingSink):
    """A sink that refuses rows until ``room`` is set (a write-behind backlog that is full)."""

    room = False

    def has_room(self, rows: int = 0) -> bool:
        return self.room


def test_backpressure_changes_nothing_and_the_record_applies_later() -> None:
    server = Server()
    server.prices(pb.UpdatePricesRequest(symbol=["S1"], price=[100.0]))
    server.check(batch_request(["f1", "f2"], ["ACC1", "néw"], ["S1", "Snew"], [1, 2], [1.0, 2.0], [0.0, 0.0]))
    server.report(pb.ReportExecutionsRequest(client_order_id=["f1"], type=[1], quantity=[1.0], price=[100.0]))
    b, clock, _ = replica()
    sink = FullSink()
    b.sink = sink
    for type_, payload in server.records:
        before = (b.stats(), len(b.accounts), len(b.symbols))
        with pytest.raises(Backpressure):
            apply_input(b, clock, type_, payload)
        assert (b.stats(), len(b.accounts), len(b.symbols)) == before
        sink.room = True
        apply_input(b, clock, type_, payload)
        sink.room = False
    assert_same_engine(server.engine, b, ["f1", "f2"])
    assert_same_changes(server.sink, sink)


def test_bad_records_name_their_seq_and_type() -> None:
    b, clock, _ = replica()
    with pytest.raises(rec.RecordError, match=r"record 7 \(type 999\)"):
        apply_input(b, clock, 999, b"", seq=7)
    with pytest.raises(rec.RecordError, match=r"record 8 \(type CHECK\)"):
        apply_input(b, clock, rec.CHECK, b"\x00" * 3, seq=8)
    request = batch_request(["x1", "x2"], ["A", "A"], ["S", "S"], [1, 1], [1.0, 1.0], [1.0, 1.0])
    one_reply = encode_response(
        Engine(CONFIG).check_parsed(
            parse_check_request(batch_request(["y"], ["A"], ["S"], [1], [1.0], [1.0]))
        )
    )
    with pytest.raises(BatchError, match="reject_mask"):  # a reply for 1 order, a request of 2
        apply_input(b, clock, rec.CHECK, rec.check_payload(1.0, 2.0, request, one_reply), seq=9)
    assert b.stats()["accounts"] == 0  # refused before anything was interned
    with pytest.raises(rec.RecordError, match=r"record 10 \(type CHECK\).*reply"):
        apply_input(b, clock, rec.CHECK, rec.check_payload(1.0, 2.0, request, b"\xff\xff"), seq=10)
    with pytest.raises(rec.RecordError, match=r"record 11 \(type LIMITS\)"):
        apply_input(b, clock, rec.LIMITS, rec.input_payload(1.0, 2.0, b"{nope"), seq=11)


def test_the_clocks_come_from_each_record() -> None:
    server = Server()
    server.clock.t = 5.0
    server.trading_state(pb.SetTradingStateRequest(account="ACC1", state=3, reason="x"))
    b, clock, sink = replica()
    apply_input(b, clock, *server.records[0])
    assert (clock.now(), clock.wall()) == (5.0, 1.7e9 + 5.0)
    assert sink.of(ch.TradingStateChanged)[0].ts == 1.7e9 + 5.0


def test_replay_journal_reads_from_a_seq_and_stops_at_a_torn_tail(tmp_path: Path) -> None:
    server = Server()
    server.upsert([LIMITS[0]])
    server.prices(pb.UpdatePricesRequest(symbol=["S1", "S2"], price=[100.0, 10.0]))
    for k in range(5):
        server.clock.t += 0.1
        server.check(
            batch_request([f"j{k}", f"k{k}"], ["ACC1", "ACC2"], ["S1", "S2"], [1, 2], [3.0, 90.0], [0.0, 0.0])
        )
    directory = tmp_path / "journal"
    journal = Journal(directory, fsync="none", segment_bytes=4096, max_bytes=10**7)
    journal.open()
    for record in server.records:
        journal.append([record])
    journal.close()
    b, clock, sink = replica()
    assert replay_journal(b, clock, directory, 1) == len(server.records)
    assert_same_engine(server.engine, b, [f"{p}{k}" for p in "jk" for k in range(5)])
    assert_same_changes(server.sink, sink)
    # from a later seq: only what follows (the caller restored the state before it)
    c, clock_c, _ = replica()
    assert replay_journal(c, clock_c, directory, len(server.records)) == len(server.records)
    assert c.open_orders() == 1
    # a torn last record is the end
    last = max(directory.iterdir())
    with last.open("r+b") as fh:
        fh.truncate(last.stat().st_size - 5)
    d, clock_d, _ = replica()
    assert replay_journal(d, clock_d, directory, 1) == len(server.records) - 1


# ------------------------------------------------------------------ speed


def test_replay_speed_of_1000_order_batches(capsys: pytest.CaptureFixture) -> None:
    """Replay throughput for 1,000-order CHECK records (accepted then cancelled), printed."""
    config = dataclasses.replace(CONFIG, max_batch=1000, max_open_orders=5000, closed_order_retention=10_000)
    clock = Clock()
    a = Engine(config, clock=clock.now, wall_clock=clock.wall)
    a.update_prices(["S1", "S2"], [100.0, 50.0])
    records = []
    n = 1000
    rounds = 30
    for r in range(rounds):
        ids = [f"p{r}-{i}" for i in range(n)]
        request = batch_request(
            ids, ["ACC1", "ACC2"] * (n // 2), ["S1", "S2"] * (n // 2), [1, 2] * (n // 2), [1.0] * n, [0.0] * n
        )
        reply = encode_response(a.check_parsed(parse_check_request(request)))
        records.append((rec.CHECK, rec.check_payload(clock.now(), clock.wall(), request, reply)))
        cancel = pb.ReportExecutionsRequest(
            client_order_id=ids, type=[2] * n, quantity=[0.0] * n, price=[0.0] * n
        )
        a.report_executions(ids, [2] * n, [0.0] * n, [0.0] * n)
        records.append(
            (rec.EXECUTIONS, rec.input_payload(clock.now(), clock.wall(), cancel.SerializeToString()))
        )
    for sink in (None, RecordingSink()):
        b, bclock, _ = replica(config=config)
        b.sink = sink
        b.update_prices(["S1", "S2"], [100.0, 50.0])
        apply_input(b, bclock, *records[0])  # warm
        apply_input(b, bclock, *records[1])
        t0 = time.perf_counter()
        checks = 0.0
        for type_, payload in records[2:]:
            t = time.perf_counter()
            apply_input(b, bclock, type_, payload)
            if type_ == rec.CHECK:
                checks += time.perf_counter() - t
        total = time.perf_counter() - t0
        assert b.open_orders() == 0 and b.check_counter.checked == rounds * n
        label = "no sink" if sink is None else "recording sink"
        with capsys.disabled():
            print(
                f"\nreplay ({label}): CHECK records {(rounds - 1) * n / checks:,.0f} orders/s, "
                f"check + cancel records {(rounds - 1) * n / total:,.0f} orders/s"
            )
