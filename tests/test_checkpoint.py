"""Checkpoints (engine.checkpoint): an engine after random operations, written and loaded into a
fresh engine, has equal state and behaves equally under the same further operations; damaged or
truncated files are refused for an older one; prune keeps the newest."""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from risk_models import make_model

from riskd_server import wire
from riskd_server.engine import BatchError, Engine, EngineConfig
from riskd_server.engine import checkpoint as ck
from riskd_server.kernel import layout as L
from riskd_server.limits import (
    MAX_GROSS_EXPOSURE,
    MAX_NET_EXPOSURE,
    MAX_OPEN_ORDERS,
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_QUANTITY,
    MAX_ORDER_RATE,
    MAX_POSITION,
    MAX_VAR,
    PRICE_COLLAR,
    RESTRICTED_SYMBOL,
    Limit,
)
from riskd_server.risk.model import FACTOR

# Small initial sizes so the random operations grow every table past them.
CONFIG = EngineConfig(
    max_batch=16,
    max_accounts=64,
    max_symbols=64,
    max_open_orders=200,
    closed_order_retention=40,
    initial_accounts=2,
    initial_symbols=2,
    initial_books=2,
    initial_order_slots=2,
    dynamic_min_returns=2,
)
ACCOUNTS = ["A", "B", "Ünï", "株式会社", "acct😀", "C"]
SYMBOLS = ["X", "Y", "Zürich", "東京", "S&P", "Q", "R", "W"]


class Clock:
    """The engines' clocks, stepped by the test: both engines see the same times."""

    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1.7e9 + self.t


def _engine(clock: Clock, config: EngineConfig = CONFIG) -> Engine:
    return Engine(config, clock=clock.now, wall_clock=clock.wall)


def _limits(rng: np.random.Generator, step: int) -> list[Limit]:
    out = []
    for j in range(int(rng.integers(1, 4))):
        kind = int(
            rng.choice(
                [
                    MAX_ORDER_QUANTITY,
                    MAX_ORDER_NOTIONAL,
                    MAX_POSITION,
                    MAX_GROSS_EXPOSURE,
                    MAX_NET_EXPOSURE,
                    PRICE_COLLAR,
                    MAX_ORDER_RATE,
                    MAX_OPEN_ORDERS,
                    RESTRICTED_SYMBOL,
                    MAX_VAR,
                ]
            )
        )
        account_level = kind in (
            MAX_GROSS_EXPOSURE,
            MAX_NET_EXPOSURE,
            MAX_ORDER_RATE,
            MAX_OPEN_ORDERS,
            MAX_VAR,
        )
        account = str(rng.choice(ACCOUNTS)) if rng.random() < 0.7 else ""
        symbol = "" if account_level or rng.random() < 0.4 else str(rng.choice(SYMBOLS))
        threshold = {
            MAX_ORDER_QUANTITY: 40.0,
            MAX_ORDER_NOTIONAL: 3_000.0,
            MAX_POSITION: 60.0,
            MAX_GROSS_EXPOSURE: 20_000.0,
            MAX_NET_EXPOSURE: 8_000.0,
            PRICE_COLLAR: 0.2,
            MAX_ORDER_RATE: 5.0,
            MAX_OPEN_ORDERS: 30.0,
            RESTRICTED_SYMBOL: 0.0,
            MAX_VAR: 400.0,
        }[kind] * float(rng.uniform(0.5, 1.5))
        out.append(
            Limit(
                limit_id=f"L{int(rng.integers(0, 30))}-{'é' * (j % 2)}",
                kind=kind,
                account=account,
                symbol=symbol,
                threshold=threshold,
                warn_fraction=float(rng.choice([0.0, 0.8])),
                disabled=bool(rng.random() < 0.15),
                description=f"step {step} - ü\x00x" if rng.random() < 0.3 else "",
                template="tmpl" if rng.random() < 0.2 else "",
                reference_volatility=float(rng.choice([0.0, 0.0, 0.01])),
                min_scale=float(rng.choice([0.0, 0.5])),
            )
        )
    return list({lim.limit_id: lim for lim in out}.values())


def _step(engine: Engine, rng: np.random.Generator, clock: Clock, step: int, live: list[str]) -> object:
    """One random operation; returns its outcome (or the BatchError's text) for comparison."""
    clock.t += float(rng.uniform(0.0, 0.5))
    op = rng.random()
    try:
        if op < 0.45:
            n = int(rng.choice([1, 1, 3, 9, 16]))
            ids = [
                f"o{step}-{i}" if rng.random() > 0.05 or not live else str(rng.choice(live)) for i in range(n)
            ]
            if rng.random() < 0.05:
                ids[0] = ""  # invalid id
            out = engine.check_orders(
                ids,
                [str(rng.choice(ACCOUNTS)) for _ in range(n)],
                [str(rng.choice(SYMBOLS)) for _ in range(n)],
                rng.choice([1, 2], size=n).tolist(),
                rng.choice([1.0, 5.0, 20.0, 50.0], size=n).tolist(),
                rng.choice([0.0, 9.0, 10.0, 11.0, 30.0], size=n).tolist(),
                now=clock.t,
            )
            live.extend(i for i, ok in zip(ids, out.accepted.tolist(), strict=True) if ok)
            v = out.violations
            return (
                out.accepted.tolist(),
                out.reject_mask.tolist(),
                v.order_index.tolist(),
                v.check.tolist(),
                v.limit_id.tolist(),
                v.observed.tolist(),
                v.threshold.tolist(),
                v.warning.tolist(),
                out.state_version,
            )
        if op < 0.7:
            n = int(rng.integers(1, 8))
            ids = [
                str(rng.choice(live)) if live and rng.random() < 0.85 else f"venue-{step}-{i}"
                for i in range(n)
            ]
            named = rng.random() < 0.5
            ex = engine.report_executions(
                ids,
                rng.choice([1, 1, 1, 2, 3, 4, 9], size=n).tolist(),
                rng.choice([0.0, 1.0, 3.0, 30.0], size=n).tolist(),
                rng.choice([9.5, 10.0, 10.5], size=n).tolist(),
                account=[str(rng.choice(ACCOUNTS)) for _ in range(n)] if named else (),
                symbol=[str(rng.choice(SYMBOLS)) for _ in range(n)] if named else (),
                side=rng.choice([1, 2], size=n).tolist() if named else (),
            )
            return ex.applied.tolist(), ex.error, ex.status.tolist(), ex.state_version
        if op < 0.82:
            syms = list(dict.fromkeys(str(s) for s in rng.choice(SYMBOLS, size=int(rng.integers(1, 5)))))
            return engine.update_prices(syms, rng.uniform(8.0, 12.0, size=len(syms)).tolist())
        if op < 0.87:
            n = int(rng.integers(1, 4))
            return engine.load_positions(
                [str(rng.choice(ACCOUNTS)) for _ in range(n)],
                [str(rng.choice(SYMBOLS)) for _ in range(n)],
                rng.choice([-20.0, 0.0, 15.0], size=n).tolist(),
            )
        if op < 0.93:
            return engine.upsert_limits(_limits(rng, step))
        if op < 0.95:
            return engine.delete_limits([f"L{int(rng.integers(0, 30))}-", "nope"])
        if op < 0.98:
            return engine.set_trading_state(
                str(rng.choice(["", *ACCOUNTS])), int(rng.choice([1, 1, 2, 3])), "t"
            )
        return engine.refresh_dynamic()
    except BatchError as exc:
        return f"BatchError: {exc}"


def _run(engine: Engine, seed: int, clock: Clock, steps: int, live: list[str] | None = None) -> list[object]:
    rng = np.random.default_rng(seed)
    live = [] if live is None else live
    return [_step(engine, rng, clock, i + seed * 100_000, live) for i in range(steps)]


def _used(s, name: str) -> np.ndarray:
    c = s.ctr
    rows = {
        "book": int(c[L.C_BOOKS]),
        "book_pair": int(c[L.C_BOOKS]),
        "ordi": int(c[L.C_SLOTS]),
        "free": int(c[L.C_FREE_TOP]),
    }
    arr = getattr(s, name)
    return arr[: rows[name]] if name in rows else arr


def assert_same_state(a: Engine, b: Engine) -> None:
    """Every part of the state a checkpoint carries, equal (NaN equal to NaN)."""
    assert a.accounts.names_prefix().tolist() == b.accounts.names_prefix().tolist()
    assert a.symbols.names_prefix().tolist() == b.symbols.names_prefix().tolist()
    assert a.stats() == b.stats()
    sa, sb = a._s, b._s
    for name in ("sym", "sym_books", "book_pair", "ord_ht", "ordi", "free", "ring", "ctr"):
        x, y = _used(sa, name), _used(sb, name)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
    # The book table holds the same entries at the same capacity (rebuilt: buckets may differ).
    assert sa.book_ht.shape == sb.book_ht.shape
    entries = [sorted(map(tuple, t[t[:, 0] != 0].tolist())) for t in (sa.book_ht, sb.book_ht)]
    assert entries[0] == entries[1] and len(entries[0]) == int(sa.ctr[L.C_BOOKS])
    n_acct = len(a.accounts)
    keep_a = [c for c in range(L.A_FIELDS) if c != L.A_LIM_TAG]
    assert np.array_equal(sa.acct[:n_acct, keep_a], sb.acct[:n_acct, keep_a], equal_nan=True)
    assert not sb.acct[n_acct:].any() and not sa.acct[n_acct:].any()
    # Books: position and open quantities (the cached limit levels are re-resolved: see tags).
    assert np.array_equal(_used(sa, "book")[:, : L.B_LIM_TAG], _used(sb, "book")[:, : L.B_LIM_TAG])
    assert sa.max_slots == sb.max_slots and sa.ordf.base is not None
    for name in ("last", "var", "count"):
        assert np.array_equal(getattr(a._ewma, name), getattr(b._ewma, name))
    assert a.list_limits() == b.list_limits()
    assert a.limits.version == b.limits.version
    for lim in a.list_limits():
        assert a.effective_threshold(lim) == b.effective_threshold(lim), lim
    assert (a.limits.vols is None) == (b.limits.vols is None)
    for name in a.accounts.names_prefix().tolist():
        assert a.exposure(name) == b.exposure(name)
        assert a.trading_state(name) == b.trading_state(name)
        ba, bb = a.account_books(name), b.account_books(name)
        assert np.array_equal(ba.symbol, bb.symbol) and np.array_equal(ba.position, bb.position)
    assert a.trading_state() == b.trading_state()


def _checkpoint(engine: Engine, seq: int, directory: Path) -> Path:
    return ck.write(ck.capture(engine, seq, ck.Buffers()), directory)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_restored_engine_has_equal_state_and_equal_outcomes(tmp_path: Path, seed: int) -> None:
    clock = Clock()
    original = _engine(clock)
    live: list[str] = []
    _run(original, seed, clock, 400, live)
    s = original._s
    assert s.acct.shape[0] > CONFIG.initial_accounts and s.book.shape[0] > CONFIG.initial_books + 1
    assert int(s.ctr[L.C_SLOTS]) > CONFIG.initial_order_slots and int(s.ctr[L.C_RING_COUNT]) > 0
    assert original.list_limits() and original.open_orders() > 0
    path = _checkpoint(original, 77, tmp_path)
    assert path.name == ck.file_name(77)

    restored = _engine(clock)
    assert ck.load_latest(tmp_path, restored) == 77
    assert_same_state(original, restored)

    # Behave equal, not only look equal: the same further operations, the same outcomes.
    t = clock.t
    first = _run(original, seed + 1000, clock, 300, list(live))
    clock.t = t
    second = _run(restored, seed + 1000, clock, 300, list(live))
    assert first == second
    assert_same_state(original, restored)


def test_dynamic_thresholds_survive_as_enforced(tmp_path: Path) -> None:
    """A dynamic limit's effective threshold is the one last refreshed, not one recomputed from
    the marks at load (the refresh tolerance lets the two differ)."""
    clock = Clock()
    cfg = EngineConfig(dynamic_min_returns=2, dynamic_tolerance=0.5)
    engine = _engine(clock, cfg)
    engine.upsert_limits(
        [
            Limit(
                limit_id="d",
                kind=MAX_ORDER_NOTIONAL,
                symbol="X",
                threshold=1_000.0,
                reference_volatility=0.01,
            )
        ]
    )
    for px in (10.0, 10.2, 10.0, 10.3):
        engine.update_prices(["X"], [px])
    assert engine.refresh_dynamic()
    enforced = engine.effective_threshold(engine.list_limits()[0])
    assert 250.0 < enforced < 1_000.0
    engine.update_prices(["X"], [10.35])  # vols move, but by less than the tolerance: not refreshed
    assert not engine.refresh_dynamic()
    assert engine.compile_limits(dict(engine.limits.limits), 99).values[0, 0] != enforced
    _checkpoint(engine, 1, tmp_path)
    restored = _engine(clock, cfg)
    assert ck.load_latest(tmp_path, restored) == 1
    assert restored.effective_threshold(restored.list_limits()[0]) == enforced
    assert_same_state(engine, restored)
    out = [e.check_orders(["o"], ["A"], ["X"], [1], [49.0], [10.1], now=clock.t) for e in (engine, restored)]
    assert out[0].accepted.tolist() == out[1].accepted.tolist()
    assert out[0].violations.threshold.tolist() == out[1].violations.threshold.tolist()


def test_risk_model_installs_after_load(tmp_path: Path) -> None:
    """VaR tables are not stored: set_risk_model after the load gives the same VaR terms and checks."""
    clock = Clock()
    original = _engine(clock)
    _run(original, 11, clock, 300)
    original.upsert_limits(
        [Limit(limit_id="var", kind=MAX_VAR, account=a, threshold=60.0) for a in ACCOUNTS[:1]]
    )
    _checkpoint(original, 3, tmp_path)
    restored = _engine(clock)
    assert ck.load_latest(tmp_path, restored) == 3
    model = make_model(FACTOR, SYMBOLS[:5], seed=4)
    for e in (original, restored):
        e.set_risk_model(model)
    for name in ACCOUNTS:
        va, vb = original.account_var(name), restored.account_var(name)
        assert va[0] == pytest.approx(vb[0], rel=1e-12, abs=1e-12)
    t = clock.t
    first = _run(original, 12, clock, 150)
    clock.t = t
    assert first == _run(restored, 12, clock, 150)


def test_damaged_or_truncated_newest_falls_back_to_older(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    engine = _engine(clock)
    _run(engine, 21, clock, 200)
    older_clock = Clock()
    older = _engine(older_clock)
    _run(older, 21, older_clock, 200)  # the same operations: the state at seq 5
    _checkpoint(engine, 5, tmp_path)
    _run(engine, 22, clock, 100)
    newest = _checkpoint(engine, 9, tmp_path)
    data = newest.read_bytes()

    damages = {
        "truncated": data[: len(data) - 100],
        "bit flipped in a section": _flip(data, len(data) - 1_000),
        "bit flipped in the table of contents": _flip(data, 40),
        "empty": b"",
    }
    for what, damaged in damages.items():
        newest.write_bytes(damaged)
        fresh = _engine(clock)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="riskd.checkpoint"):
            assert ck.load_latest(tmp_path, fresh) == 5, what
        assert "refused" in caplog.text and newest.name in caplog.text, what
        assert_same_state(older, fresh)

    newest.write_bytes(data)
    fresh = _engine(clock)
    assert ck.load_latest(tmp_path, fresh) == 9
    assert_same_state(engine, fresh)


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x10
    return bytes(out)


def test_every_checkpoint_damaged_or_none_gives_none(tmp_path: Path) -> None:
    clock = Clock()
    assert ck.load_latest(tmp_path / "missing", _engine(clock)) is None
    engine = _engine(clock)
    _run(engine, 31, clock, 50)
    path = _checkpoint(engine, 1, tmp_path)
    # The last section is read after the state arrays, which go into the fresh engine's own.
    path.write_bytes(_flip(path.read_bytes(), path.stat().st_size - 1))
    fresh = _engine(clock)
    assert ck.load_latest(tmp_path, fresh) is None
    assert fresh.state_version == 0 and len(fresh.accounts) == 0 and fresh.open_orders() == 0
    s = fresh._s
    assert not s.ord_ht.any() and not s.ordi.any() and not s.ring.any()
    assert fresh.check_orders(
        ["a", "b"], ["A", "A"], ["X", "X"], [1, 1], [1.0, 1.0], [1.0, 1.0]
    ).accepted.all()


def test_another_retention_is_refused_and_a_used_engine_is_not_loaded_into(tmp_path: Path) -> None:
    clock = Clock()
    engine = _engine(clock)
    _run(engine, 41, clock, 50)
    _checkpoint(engine, 1, tmp_path)
    other = EngineConfig(max_batch=16, closed_order_retention=41, max_open_orders=200)
    assert ck.load_latest(tmp_path, _engine(clock, other)) is None
    with pytest.raises(ValueError, match="freshly built"):
        ck.load_latest(tmp_path, engine)


def test_a_higher_open_order_bound_gets_its_slots(tmp_path: Path) -> None:
    clock = Clock()
    engine = _engine(clock)
    _run(engine, 51, clock, 200)
    _checkpoint(engine, 1, tmp_path)
    bigger = _engine(clock, EngineConfig(**{**_fields(CONFIG), "max_open_orders": 500}))
    assert ck.load_latest(tmp_path, bigger) == 1
    assert bigger._s.max_slots == 500 and bigger.open_orders() == engine.open_orders()
    bigger.delete_limits([lim.limit_id for lim in bigger.list_limits()])
    bigger.set_trading_state("", 1)
    n = 500 - bigger.open_orders()
    ids = [f"new{i}" for i in range(n)]
    accepted = 0
    for lo in range(0, n, 16):
        part = ids[lo : lo + 16]
        out = bigger.check_orders(part, ["fresh"] * len(part), ["X"] * len(part), [1] * len(part),
                                  [1.0] * len(part), [10.0] * len(part), now=clock.t)  # fmt: skip
        accepted += int(out.accepted.sum())
    assert accepted == n and bigger.open_orders() == 500
    out = bigger.check_orders(["one-more"], ["fresh"], ["X"], [1], [1.0], [10.0], now=clock.t)
    assert out.reject_mask.tolist() == [1 << MAX_OPEN_ORDERS]  # the server's capacity


def _fields(cfg: EngineConfig) -> dict:
    return {name: getattr(cfg, name) for name in cfg.__slots__}  # type: ignore[attr-defined]


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    clock = Clock()
    engine = _engine(clock)
    _run(engine, 61, clock, 20)
    for seq in (3, 10, 7, 12):
        _checkpoint(engine, seq, tmp_path)
    (tmp_path / ".checkpoint-00000000000000000011.ckpt.tmp").write_bytes(b"crashed write")
    (tmp_path / ".checkpoint-00000000000000000013.ckpt.tmp").write_bytes(b"write in progress")
    (tmp_path / "unrelated.txt").write_text("x")
    assert ck.prune(tmp_path, keep=2) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".checkpoint-00000000000000000013.ckpt.tmp",
        ck.file_name(10),
        ck.file_name(12),
        "unrelated.txt",
    ]
    assert ck.prune(tmp_path, keep=2) == 0
    assert [seq for seq, _ in ck.checkpoints(tmp_path)] == [10, 12]


def test_capture_is_a_copy_and_buffers_are_reused(tmp_path: Path) -> None:
    """The engine goes on after capture; the file holds the state as captured, and the next
    capture copies into the same buffers."""
    clock = Clock()
    engine = _engine(clock)
    _run(engine, 71, clock, 150)
    twin_clock = Clock()
    twin = _engine(twin_clock)
    _run(twin, 71, twin_clock, 150)
    buffers = ck.Buffers()
    captured = ck.capture(engine, 4, buffers)
    assert captured.stall >= 0.0
    _run(engine, 72, clock, 100)  # changes after the capture do not reach the file
    ck.write(captured, tmp_path)
    fresh = _engine(clock)
    assert ck.load_latest(tmp_path, fresh) == 4
    assert_same_state(twin, fresh)
    again = ck.capture(engine, 5, buffers)
    assert all(again.held[name] is captured.held[name] for name in ("ord_ht", "ring", "book"))


def test_forked_capture_writes_the_same_state(tmp_path: Path) -> None:
    """capture_forked: the child writes the state as it was at the fork; the parent goes on."""
    clock = Clock()
    engine = _engine(clock)
    _run(engine, 81, clock, 200)
    twin_clock = Clock()
    twin = _engine(twin_clock)
    _run(twin, 81, twin_clock, 200)
    forked = ck.capture_forked(engine, 6, tmp_path, nice=0)
    _run(engine, 82, clock, 100)  # the parent's changes after the fork do not reach the file
    assert ck.write(forked, tmp_path) == tmp_path / ck.file_name(6)
    fresh = _engine(clock)
    assert ck.load_latest(tmp_path, fresh) == 6
    assert_same_state(twin, fresh)


def test_a_failed_forked_write_raises(tmp_path: Path) -> None:
    clock = Clock()
    engine = _engine(clock)
    _run(engine, 91, clock, 20)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    forked = ck.capture_forked(engine, 1, blocker, nice=0)
    with pytest.raises(ck.CheckpointError, match="exited with 1"):
        ck.write(forked, blocker)


def _write_in_child(directory: str) -> tuple[int, float, list[str], list[object]]:
    """(In a spawned process: its own key salt.) Operations, a checkpoint, more operations; returns
    the salt, the clock and live ids at the checkpoint, and the later outcomes."""
    clock = Clock()
    engine = _engine(clock)
    live: list[str] = []
    _run(engine, 101, clock, 300, live)
    _checkpoint(engine, 8, Path(directory))
    at, ids = clock.t, list(live)
    return int(wire.SEED), at, ids, _run(engine, 102, clock, 300, live)


def _load_in_child(directory: str, at: float, live: list[str]) -> tuple[int, int | None, list[object]]:
    """(In another spawned process.) The checkpoint loaded and the same later operations."""
    seed = int(wire.SEED)
    clock = Clock()
    engine = _engine(clock)
    seq = ck.load_latest(Path(directory), engine)
    clock.t = at
    return seed, seq, _run(engine, 102, clock, 300, live)


def test_a_checkpoint_loads_in_another_process(tmp_path: Path) -> None:
    """Ids are keyed with a per-process salt: a new process must key them as the writer did."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, max_tasks_per_child=1) as pool:
        seed, at, live, first = pool.submit(_write_in_child, str(tmp_path)).result()
        other_seed, seq, second = pool.submit(_load_in_child, str(tmp_path), at, live).result()
    assert seed != other_seed and seq == 8  # two processes, two salts
    applied = [o for o in first if isinstance(o, tuple) and len(o) == 4 and L.X_APPLIED in o[2]]
    assert applied  # executions found their orders (through the order table's keys)
    assert first == second


def test_prepared_buffers_are_used_and_grown_after_a_write(tmp_path: Path) -> None:
    clock = Clock()
    config = EngineConfig(**{**_fields(CONFIG), "max_accounts": 1_000})
    engine = _engine(clock, config)
    _run(engine, 111, clock, 100)
    buffers = ck.Buffers()
    buffers.prepare(engine)
    reserved = dict(buffers._free)
    assert reserved["ordi"].nbytes >= engine._s.ordi.nbytes  # the order arrays at their bound
    first = ck.capture(engine, 1, buffers)
    assert all(first.held[name] is reserved[name] for name in first.held)
    ck.write(first, tmp_path)
    many = 200
    for lo in range(0, many, 16):
        engine.load_positions([f"acct{i}" for i in range(lo, lo + 16)], ["Y"] * 16, [1.0] * 16)
    grown = ck.capture(engine, 2, buffers)
    need = grown.arrays["book_pair"].nbytes
    assert need > reserved["book_pair"].nbytes  # copied into a new buffer in capture, this once
    ck.write(grown, tmp_path)
    assert buffers._free["book_pair"].nbytes >= need + need // 8  # the next one has room again
    fresh = _engine(clock, config)
    assert ck.load_latest(tmp_path, fresh) == 2
    assert_same_state(engine, fresh)
