"""Risk snapshots without a server: engine.snapshot against a plain computation from the reference
model over random operation sequences, hand-built cases with exact numbers, the change tracker
(every account whose snapshot changed is reported), and the wire encoder against protobuf."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from reference_model import ACTIVE, BUY, GROSS, NET, OPEN_ORDERS, POSITION, RATE, SELL, MLimit, Model
from test_kernel_model import ALL_SYMBOLS, UNKNOWN_IDS, sequence

from riskd.v1 import risk_pb2 as pb
from riskd_server.engine import Engine, EngineConfig
from riskd_server.engine.snapshot import (
    CLOSEST,
    AccountRisk,
    LimitUse,
    PositionValue,
    RiskSnapshot,
    SnapshotReader,
)
from riskd_server.engine.snapshot_changes import ChangeTracker
from riskd_server.limits import Limit
from riskd_server.wire.snapshot import encode_snapshot

NOW = 1_000.0

# ---------------------------------------------------------------------------------------- reference


def _limit(m: MLimit) -> Limit:
    return Limit(
        limit_id=m.limit_id,
        kind=m.kind,
        account=m.account,
        symbol=m.symbol,
        threshold=m.threshold,
        warn_fraction=m.warn_fraction,
        disabled=m.disabled,
    )


def _utilisation(observed: float, threshold: float) -> float:
    if threshold > 0:
        return observed / threshold
    return math.inf if observed > 0 else 0.0


def expected_account(model: Model, engine: Engine, account: str, now: float) -> AccountRisk:
    """A plain computation of one account's snapshot from the model's state, from the spec."""
    pos_gross, pos_net, open_gross, open_net = model.exposure(account)
    held = sorted((s, q) for (a, s), q in model.positions.items() if a == account and q != 0)
    positions = []
    for symbol, qty in held:
        mark = model.mark(symbol)
        mark = math.nan if mark is None else mark
        positions.append(PositionValue(symbol, qty, mark, qty * mark))
    candidates = []
    for kind in (GROSS, NET, RATE, OPEN_ORDERS):
        lim = model.find_limit(kind, account, "")
        if lim is None:
            continue
        t = lim.threshold
        if kind == GROSS:
            observed = pos_gross + open_gross
        elif kind == NET:
            observed = abs(pos_net + open_net)
        elif kind == OPEN_ORDERS:
            observed = float(len(model.open_orders(account)))
        elif account in model.buckets:
            tokens, last = model.buckets[account]
            observed = t - min(t, tokens + max(now - last, 0.0) * t)
        else:
            observed = 0.0
        candidates.append((lim, "", observed))
    for symbol in ALL_SYMBOLS:
        pos = model.positions.get((account, symbol), 0.0)
        worst = max(pos + model.open_side(account, symbol, BUY), model.open_side(account, symbol, SELL) - pos)
        lim = model.find_limit(POSITION, account, symbol)
        if worst != 0 and lim is not None:
            candidates.append((lim, symbol, worst))
    ranked = sorted(
        candidates,
        key=lambda c: (
            -_utilisation(c[2], c[0].threshold),
            c[0].kind,
            c[0].limit_id,
            engine.symbols.get(c[1]) if c[1] else -1,
        ),
    )
    return AccountRisk(
        account=account,
        gross=pos_gross + open_gross,
        net=pos_net + open_net,
        open_orders=len(model.open_orders(account)),
        positions=tuple(positions),
        trading_state=model.states.get(account, ACTIVE),
        closest_limits=tuple(
            LimitUse(
                lim.limit_id, lim.kind, symbol, observed, lim.threshold, _utilisation(observed, lim.threshold)
            )
            for lim, symbol, observed in ranked[:CLOSEST]
        ),
    )


def by_symbol(a: AccountRisk) -> AccountRisk:
    """Positions in symbol order (the engine reports them in the order first held)."""
    return AccountRisk(
        a.account,
        a.gross,
        a.net,
        a.open_orders,
        tuple(sorted(a.positions, key=lambda p: p.symbol)),
        a.trading_state,
        a.closest_limits,
    )


def same(a: object, b: object) -> bool:
    """Equality with NaN equal to NaN (marks of unmarked symbols)."""
    return repr(a) == repr(b)


# ---------------------------------------------------------------------------------------- driver


def apply(engine: Engine, model: Model, item: tuple, now: float, accepted: list[str]) -> float:
    """One operation of test_kernel_model's sequences, on both (test_kernel_model checks they agree)."""
    kind = item[0]
    if kind == "check":
        now += item[2]
        cols = [list(c) for c in zip(*item[1], strict=True)]
        out = engine.check_orders(*cols, now=now)
        model.check(*cols, now=now)
        accepted.extend(cid for cid, ok in zip(cols[0], out.accepted.tolist(), strict=True) if ok)
    elif kind == "exec":
        reports = [
            (
                UNKNOWN_IDS[ref % 2] if ref < 0 or not accepted else accepted[-1 - ref % len(accepted)],
                *rest,
                *named,
            )
            for ref, *rest, named in item[1]
        ]
        cols = [list(c) for c in zip(*reports, strict=True)]
        if not item[2]:
            cols = cols[:4]
        model.execute(*cols)
        named = {"account": cols[4], "symbol": cols[5], "side": cols[6]} if item[2] else {}
        engine.report_executions(*cols[:4], **named)
    elif kind == "prices":
        engine.update_prices(list(item[1]), list(item[1].values()))
        model.update_prices(list(item[1]), list(item[1].values()))
    elif kind == "positions":
        cols = [list(c) for c in zip(*item[1], strict=True)] if item[1] else [[], [], []]
        engine.load_positions(cols[0], cols[1], [float(q) for q in cols[2]])
        model.load_positions(cols[0], cols[1], [float(q) for q in cols[2]])
    elif kind == "limits":
        engine.upsert_limits([_limit(m) for m in item[1]])
        model.upsert(item[1])
    elif kind == "delete":
        engine.delete_limits(item[1])
        model.delete(item[1])
    elif kind == "state":
        engine.set_trading_state(item[1], item[2])
        model.set_state(item[1], item[2])
    return now


def fresh() -> tuple[Engine, Model]:
    return Engine(
        EngineConfig(initial_order_slots=2, initial_books=1, initial_accounts=1, initial_symbols=1)
    ), Model()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence)
def test_snapshot_matches_a_plain_computation_from_the_model(ops: list) -> None:
    """After every operation, every account's snapshot (small exact values: equal to the bit)."""
    engine, model = fresh()
    reader = SnapshotReader(engine)
    now, accepted = 100.0, []
    for step, item in enumerate(ops):
        now = apply(engine, model, item, now, accepted)
        names = engine.accounts.names_of(reader.all_ids()).tolist()
        got = reader.columns(reader.all_ids(), now=now + 0.25).accounts()
        assert [a.account for a in got] == names
        for a in got:
            want = expected_account(model, engine, a.account, now + 0.25)
            assert same(by_symbol(a), want), (step, item, a, want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence)
def test_every_changed_account_is_reported(ops: list) -> None:
    """The tracker's pass after each operation stamps every account whose snapshot changed (read at
    one fixed time, so the rate buckets' refill is not a change); LoadPositions' accounts are
    touched as the servicer does."""
    engine, model = fresh()
    reader, tracker = SnapshotReader(engine), ChangeTracker(engine)
    now, accepted = 100.0, []
    before: dict[str, AccountRisk] = {}
    seq = tracker.detect()
    for step, item in enumerate(ops):
        now = apply(engine, model, item, now, accepted)
        if item[0] == "positions":
            tracker.touch([a for a, _, _ in item[1]])
        new_seq = tracker.detect()
        reported = set(engine.accounts.names_of(tracker.changed_since(seq)).tolist())
        after = {a.account: a for a in reader.columns(reader.all_ids(), now=1e9).accounts()}
        moved = {name for name, a in after.items() if not same(before.get(name), a)}
        assert moved <= reported, (step, item, moved - reported)
        assert (new_seq > seq) == bool(reported) or tracker.firm_seq == new_seq, (step, item)
        seq, before = new_seq, after


# ---------------------------------------------------------------------------------------- exact cases


@pytest.fixture
def desk() -> Engine:
    """Two accounts, known positions, orders, marks and limits (numbers checked by hand)."""
    e = Engine()
    e.update_prices(["AAPL", "MSFT"], [200.0, 400.0])
    e.load_positions(["ACC1", "ACC1", "ACC2"], ["AAPL", "MSFT", "AAPL"], [100.0, -25.0, 10.0])
    e.upsert_limits(
        [
            Limit(limit_id="gross-all", kind=GROSS, threshold=50_000.0),
            Limit(limit_id="net-1", kind=NET, account="ACC1", threshold=20_000.0),
            Limit(limit_id="pos-aapl", kind=POSITION, symbol="AAPL", threshold=160.0),
            Limit(limit_id="pos-1-aapl", kind=POSITION, account="ACC1", symbol="AAPL", threshold=150.0),
            Limit(limit_id="open-2", kind=OPEN_ORDERS, account="ACC2", threshold=4.0),
            Limit(limit_id="qty", kind=1, threshold=1_000.0),  # order-level: never reported
            Limit(limit_id="off", kind=GROSS, account="ACC2", threshold=1.0, disabled=True),
        ]
    )
    out = e.check_orders(
        ["b1", "s1", "b2"], ["ACC1", "ACC2", "ACC2"], ["AAPL", "AAPL", "MSFT"], [BUY, SELL, BUY],
        [20.0, 4.0, 1.0], [201.0, 0.0, 399.0], now=NOW,
    )  # fmt: skip
    assert out.accepted.tolist() == [True, True, True]
    e.set_trading_state("ACC2", 2)
    return e


def test_exact_snapshot_of_known_positions_orders_and_limits(desk: Engine) -> None:
    snap = SnapshotReader(desk).snapshot()
    acc1, acc2 = snap.accounts
    # ACC1: AAPL 100 @ 200 = 20,000; MSFT -25 @ 400 = -10,000; open buy 20 @ 201 = 4,020.
    assert acc1 == AccountRisk(
        account="ACC1",
        gross=20_000.0 + 10_000.0 + 4_020.0,
        net=20_000.0 - 10_000.0 + 4_020.0,
        open_orders=1,
        positions=(
            PositionValue("AAPL", 100.0, 200.0, 20_000.0),
            PositionValue("MSFT", -25.0, 400.0, -10_000.0),
        ),
        trading_state=1,
        closest_limits=(
            LimitUse("pos-1-aapl", POSITION, "AAPL", 120.0, 150.0, 0.8),  # exact (ACC1, AAPL) wins
            LimitUse("net-1", NET, "", 14_020.0, 20_000.0, 14_020.0 / 20_000.0),  # 70.1%
            LimitUse("gross-all", GROSS, "", 34_020.0, 50_000.0, 34_020.0 / 50_000.0),  # 68.04%
        ),
    )
    # ACC2: AAPL 10 @ 200 = 2,000; open sell 4 @ 200 (market) = 800; open buy 1 MSFT @ 399.
    assert acc2 == AccountRisk(
        account="ACC2",
        gross=2_000.0 + 800.0 + 399.0,
        net=2_000.0 - 800.0 + 399.0,
        open_orders=2,
        positions=(PositionValue("AAPL", 10.0, 200.0, 2_000.0),),
        trading_state=2,
        closest_limits=(
            LimitUse("open-2", OPEN_ORDERS, "", 2.0, 4.0, 0.5),
            LimitUse("gross-all", GROSS, "", 3_199.0, 50_000.0, 3_199.0 / 50_000.0),
            LimitUse("pos-aapl", POSITION, "AAPL", 10.0, 160.0, 10.0 / 160.0),  # max(10 + 0, 4 - 10)
        ),
    )
    assert snap.firm_trading_state == 1 and snap.state_version == desk.state_version


def test_gross_and_net_are_the_engines_exposure(desk: Engine) -> None:
    for a in SnapshotReader(desk).snapshot().accounts:
        e = desk.exposure(a.account)
        assert (a.gross, a.net, a.open_orders) == (e.gross, e.net, e.open_orders)


def test_named_accounts_in_request_order_unknown_and_repeats_left_out(desk: Engine) -> None:
    snap = SnapshotReader(desk).snapshot(["ACC2", "nobody", "ACC1", "ACC2"])
    assert [a.account for a in snap.accounts] == ["ACC2", "ACC1"]
    assert SnapshotReader(desk).snapshot(["nobody"]).accounts == ()


def test_short_position_mark_from_fill_and_no_mark() -> None:
    e = Engine()
    e.update_prices(["X"], [10.0])
    e.check_orders(["o1"], ["A"], ["Y"], [SELL], [3.0], [7.5], now=NOW)
    e.report_executions(["o1"], [1], [3.0], [7.25])  # Y has no price: the fill price is its mark
    e.load_positions(["A"], ["Z"], [4.0])  # no mark at all
    e.upsert_limits([Limit(limit_id="p", kind=POSITION, threshold=2.0)])
    (a,) = SnapshotReader(e).snapshot().accounts
    assert [(p.symbol, p.quantity, p.mark) for p in a.positions[:1]] == [("Y", -3.0, 7.25)]
    assert a.positions[0].value == -21.75
    z = a.positions[1]
    assert z.symbol == "Z" and z.quantity == 4.0 and math.isnan(z.mark) and math.isnan(z.value)
    assert a.gross == 21.75 and a.net == -21.75  # Z is not valued
    assert [(lim.symbol, lim.observed, lim.utilisation) for lim in a.closest_limits] == [
        ("Z", 4.0, 2.0),
        ("Y", 3.0, 1.5),
    ]


def test_rate_bucket_in_use_refills_with_time() -> None:
    e = Engine()
    e.update_prices(["X"], [1.0])
    e.upsert_limits([Limit(limit_id="r", kind=RATE, threshold=4.0)])
    e.check_orders(
        [f"o{i}" for i in range(3)], ["A"] * 3, ["X"] * 3, [BUY] * 3, [1.0] * 3, [0.0] * 3, now=NOW
    )
    reader = SnapshotReader(e)
    ids = reader.all_ids()
    assert reader.read(ids, now=NOW)[0].closest_limits[0] == LimitUse("r", RATE, "", 3.0, 4.0, 0.75)
    assert reader.read(ids, now=NOW + 0.5)[0].closest_limits[0].observed == 1.0  # 2 tokens back
    assert reader.read(ids, now=NOW + 10)[0].closest_limits[0].observed == 0.0
    assert reader.read(ids, now=NOW + 10)[0].closest_limits[0].observed == 0.0  # reading takes none


def test_zero_threshold_and_only_five_closest() -> None:
    e = Engine()
    e.update_prices([f"S{i}" for i in range(8)], [1.0] * 8)
    e.load_positions(["A"] * 8, [f"S{i}" for i in range(8)], [float(i + 1) for i in range(8)])
    e.upsert_limits(
        [
            Limit(limit_id=f"p{i}", kind=POSITION, account="A", symbol=f"S{i}", threshold=10.0)
            for i in range(8)
        ]
        + [
            Limit(limit_id="zero", kind=OPEN_ORDERS, threshold=0.0),
            Limit(limit_id="g0", kind=GROSS, threshold=0.0),
        ]
    )
    (a,) = SnapshotReader(e).snapshot().accounts
    assert [(lim.limit_id, lim.utilisation) for lim in a.closest_limits] == [
        ("g0", math.inf),  # observed 36 > 0 over a zero threshold
        ("p7", 0.8),
        ("p6", 0.7),
        ("p5", 0.6),
        ("p4", 0.5),
    ]  # "zero" (0 open orders of 0) has utilisation 0 and ranks last


def test_empty_engine_and_account_without_books() -> None:
    e = Engine()
    assert SnapshotReader(e).snapshot() == RiskSnapshot((), 0, 1)
    e.set_trading_state("H", 3)
    (a,) = SnapshotReader(e).snapshot().accounts
    assert a == AccountRisk("H", 0.0, 0.0, 0, (), 3, ())


# ---------------------------------------------------------------------------------------- tracker


def test_tracker_stamps_what_changed(desk: Engine) -> None:
    tracker = ChangeTracker(desk)
    first = tracker.detect()
    assert sorted(desk.accounts.names_of(tracker.changed_since(0)).tolist()) == ["ACC1", "ACC2"]
    assert tracker.detect() == first  # nothing happened: no pass

    def changed() -> list[str]:
        seq = tracker.seq
        tracker.detect()
        return sorted(desk.accounts.names_of(tracker.changed_since(seq)).tolist())

    desk.update_prices(["MSFT"], [401.0])
    assert changed() == ["ACC1"]  # ACC2 has an open MSFT order but no position: its numbers stand
    desk.check_orders(["s3"], ["ACC2"], ["AAPL"], [SELL], [1.0], [1.0], now=NOW)  # reduce-only: a sell
    assert changed() == ["ACC2"]
    desk.upsert_limits([Limit(limit_id="net-1", kind=NET, account="ACC1", threshold=30_000.0)])
    assert changed() == ["ACC1"]
    desk.upsert_limits([Limit(limit_id="qty", kind=1, threshold=5.0)])  # order-level: no snapshot moves
    assert changed() == []
    desk.set_trading_state("", 3)
    seq = tracker.seq
    assert tracker.detect() > seq and tracker.firm_seq == tracker.seq and changed() == []
    desk.check_orders(["x"], ["NEW"], ["AAPL"], [BUY], [1.0], [1.0], now=NOW)  # rejected: halted
    assert changed() == ["NEW"]  # new accounts are news
    tracker.touch(["ACC2", "unknown"])
    assert changed() == ["ACC2"]


def test_marks_moving_in_opposite_directions_are_seen() -> None:
    """Two marks of one account move in one batch so its sums stay equal: the values changed."""
    e = Engine()
    e.update_prices(["X", "Y"], [1.0, 2.0])
    e.load_positions(["A", "A"], ["X", "Y"], [10.0, 10.0])
    tracker = ChangeTracker(e)
    seq = tracker.detect()
    e.update_prices(["X", "Y"], [2.0, 1.0])
    assert SnapshotReader(e).snapshot().accounts[0].gross == 30.0  # unchanged sums
    tracker.detect()
    assert tracker.changed_since(seq).tolist() == [0]


# ---------------------------------------------------------------------------------------- wire


def to_pb(snap: RiskSnapshot) -> pb.GetRiskSnapshotResponse:
    """The reference encoding: protobuf messages built from the values."""
    return pb.GetRiskSnapshotResponse(
        accounts=[
            pb.AccountSnapshot(
                account=a.account,
                gross=a.gross,
                net=a.net,
                open_orders=a.open_orders,
                positions=[
                    pb.PositionSnapshot(symbol=p.symbol, quantity=p.quantity, mark=p.mark, value=p.value)
                    for p in a.positions
                ],
                trading_state=a.trading_state,  # type: ignore[arg-type]
                closest_limits=[
                    pb.LimitUtilisation(
                        limit_id=lim.limit_id,
                        kind=lim.kind,  # type: ignore[arg-type]
                        symbol=lim.symbol,
                        observed=lim.observed,
                        threshold=lim.threshold,
                        utilisation=lim.utilisation,
                    )
                    for lim in a.closest_limits
                ],
            )
            for a in snap.accounts
        ],
        state_version=snap.state_version,
        firm_trading_state=snap.firm_trading_state,  # type: ignore[arg-type]
    )


def test_encoder_bytes_equal_protobufs_serialization(desk: Engine) -> None:
    desk.load_positions(["ACC1", "Ünï 📈"], ["NOMARK", "AAPL"], [-2.5, 0.125])  # NaN marks, UTF-8 names
    desk.upsert_limits([Limit(limit_id="límite-∞", kind=GROSS, account="Ünï 📈", threshold=0.0)])
    reader = SnapshotReader(desk)
    for ids in (reader.all_ids(), reader.account_ids(["ACC2"]), np.empty(0, dtype=np.int64)):
        cols = reader.columns(ids)
        data = encode_snapshot(cols)
        assert data == to_pb(cols.snapshot()).SerializeToString()
        assert pb.StreamRiskSnapshotsResponse.FromString(data).state_version == desk.state_version


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence)
def test_encoder_matches_protobuf_on_random_state(ops: list) -> None:
    engine, model = fresh()
    now, accepted = 100.0, []
    for item in ops:
        now = apply(engine, model, item, now, accepted)
    cols = SnapshotReader(engine).columns(SnapshotReader(engine).all_ids())
    assert encode_snapshot(cols) == to_pb(cols.snapshot()).SerializeToString()


def test_columns_slices_build_the_same_values(desk: Engine) -> None:
    cols = SnapshotReader(desk).columns(SnapshotReader(desk).all_ids())
    assert cols.accounts(0, 1) + cols.accounts(1) == cols.accounts() and cols.accounts(5) == []


def test_snapshot_bench_runs_on_a_small_desk() -> None:
    from bench.snapshot_bench import run

    rep = run(accounts=300, positions=2, symbols=20, ticks=(1, 50))
    assert rep.books > 0 and rep.full_mb > 0 and rep.pass_ms > 0 and rep.poke_ns > 0
    assert set(rep.tick_ms) == {1, 50}
