"""Snapshot columns (engine.snapshot.SnapshotColumns) -> GetRiskSnapshotResponse bytes, in numba.

StreamRiskSnapshotsResponse has the same fields and numbers (accounts = 1, state_version = 2,
firm_trading_state = 3), so one encoder serves both RPCs. Names are copied from UTF-8 arenas (the
interners' byte indexes for accounts and symbols, one built per limit book for limit ids), so no
Python object is made per account, position or limit: 100,000 accounts with ten positions and
five limits each encode in a fraction of a second where protobuf messages built per item took
seconds (see the README, "Risk snapshots").

Proto3 rules as upb applies them: zero numbers and empty strings are left out, fields in number
order; NaN and -0.0 are written (their bits are not zero).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from .reply import _put_double, _put_varint, _varint_len

if TYPE_CHECKING:
    from ..engine.snapshot import SnapshotColumns
    from ..limitbook import LimitBook


@njit(cache=True, nogil=True, inline="always")
def _str_size(n: int) -> int:
    return 1 + _varint_len(np.uint64(n)) + n if n > 0 else 0


@njit(cache=True, nogil=True, inline="always")
def _num_size(v: np.uint64) -> int:
    return 1 + _varint_len(v) if v != 0 else 0


@njit(cache=True, nogil=True, inline="always")
def _dbl_size(bits: np.uint64) -> int:
    return 9 if bits != 0 else 0


@njit(cache=True, nogil=True)
def _put_str(
    out: np.ndarray, pos: np.int64, tag: np.uint8, arena: np.ndarray, start: np.int64, end: np.int64
) -> np.int64:
    n = end - start
    if n <= 0:
        return pos
    out[pos] = tag
    pos = _put_varint(out, pos + 1, np.uint64(n))
    out[pos : pos + n] = arena[start:end]
    return pos + n


@njit(cache=True, nogil=True)
def _put_num(out: np.ndarray, pos: np.int64, tag: np.uint8, v: np.uint64) -> np.int64:
    if v == 0:
        return pos
    out[pos] = tag
    return _put_varint(out, pos + 1, v)


@njit(cache=True, nogil=True)
def _put_dbl(out: np.ndarray, pos: np.int64, tag: np.uint8, bits: np.uint64) -> np.int64:
    if bits == 0:
        return pos
    return _put_double(out, pos, tag, bits)


@njit(cache=True, nogil=True)
def encode_snapshot_reply(
    acc_arena, acc_start, acc_end, account, gross, net, open_orders, trading,
    pos_at, sym_arena, sym_start, sym_end, pos_symbol, pos_quantity, pos_mark, pos_value,
    lim_at, lid_arena, lid_start, lid_end, lim_index, lim_kind, lim_symbol, lim_observed,
    lim_threshold, lim_utilisation, state_version, firm,
):  # fmt: skip
    """The response's bytes (uint8[size]); names are arena[start[id]:end[id]] of their arena."""
    k = account.shape[0]
    npos = pos_symbol.shape[0]
    nlim = lim_index.shape[0]
    g_bits, n_bits = gross.view(np.uint64), net.view(np.uint64)
    q_bits, m_bits, v_bits = pos_quantity.view(np.uint64), pos_mark.view(np.uint64), pos_value.view(np.uint64)
    o_bits, t_bits, u_bits = (
        lim_observed.view(np.uint64), lim_threshold.view(np.uint64), lim_utilisation.view(np.uint64)
    )  # fmt: skip
    pos_body = np.empty(npos, dtype=np.int64)
    for p in range(npos):
        s = pos_symbol[p]
        pos_body[p] = (
            _str_size(sym_end[s] - sym_start[s])
            + _dbl_size(q_bits[p])
            + _dbl_size(m_bits[p])
            + _dbl_size(v_bits[p])
        )
    lim_body = np.empty(nlim, dtype=np.int64)
    for j in range(nlim):
        li = lim_index[j]
        s = lim_symbol[j]
        size = _str_size(lid_end[li] - lid_start[li]) + _num_size(np.uint64(lim_kind[j]))
        if s >= 0:
            size += _str_size(sym_end[s] - sym_start[s])
        lim_body[j] = size + _dbl_size(o_bits[j]) + _dbl_size(t_bits[j]) + _dbl_size(u_bits[j])
    acc_body = np.empty(k, dtype=np.int64)
    total = _num_size(np.uint64(state_version)) + _num_size(np.uint64(firm))
    for i in range(k):
        a = account[i]
        size = _str_size(acc_end[a] - acc_start[a]) + _dbl_size(g_bits[i]) + _dbl_size(n_bits[i])
        size += _num_size(np.uint64(open_orders[i])) + _num_size(np.uint64(trading[i]))
        for p in range(pos_at[i], pos_at[i + 1]):
            size += 1 + _varint_len(np.uint64(pos_body[p])) + pos_body[p]
        for j in range(lim_at[i], lim_at[i + 1]):
            size += 1 + _varint_len(np.uint64(lim_body[j])) + lim_body[j]
        acc_body[i] = size
        total += 1 + _varint_len(np.uint64(size)) + size

    out = np.empty(total, dtype=np.uint8)
    at = 0
    for i in range(k):
        a = account[i]
        out[at] = 0x0A  # accounts = 1
        at = _put_varint(out, at + 1, np.uint64(acc_body[i]))
        at = _put_str(out, at, 0x0A, acc_arena, acc_start[a], acc_end[a])  # account = 1
        at = _put_dbl(out, at, 0x11, g_bits[i])  # gross = 2
        at = _put_dbl(out, at, 0x19, n_bits[i])  # net = 3
        at = _put_num(out, at, 0x20, np.uint64(open_orders[i]))  # open_orders = 4
        for p in range(pos_at[i], pos_at[i + 1]):  # positions = 5
            out[at] = 0x2A
            at = _put_varint(out, at + 1, np.uint64(pos_body[p]))
            s = pos_symbol[p]
            at = _put_str(out, at, 0x0A, sym_arena, sym_start[s], sym_end[s])  # symbol = 1
            at = _put_dbl(out, at, 0x11, q_bits[p])  # quantity = 2
            at = _put_dbl(out, at, 0x19, m_bits[p])  # mark = 3
            at = _put_dbl(out, at, 0x21, v_bits[p])  # value = 4
        at = _put_num(out, at, 0x30, np.uint64(trading[i]))  # trading_state = 6
        for j in range(lim_at[i], lim_at[i + 1]):  # closest_limits = 7
            out[at] = 0x3A
            at = _put_varint(out, at + 1, np.uint64(lim_body[j]))
            li = lim_index[j]
            at = _put_str(out, at, 0x0A, lid_arena, lid_start[li], lid_end[li])  # limit_id = 1
            at = _put_num(out, at, 0x10, np.uint64(lim_kind[j]))  # kind = 2
            s = lim_symbol[j]
            if s >= 0:
                at = _put_str(out, at, 0x1A, sym_arena, sym_start[s], sym_end[s])  # symbol = 3
            at = _put_dbl(out, at, 0x21, o_bits[j])  # observed = 4
            at = _put_dbl(out, at, 0x29, t_bits[j])  # threshold = 5
            at = _put_dbl(out, at, 0x31, u_bits[j])  # utilisation = 6
    at = _put_num(out, at, 0x10, np.uint64(state_version))  # state_version = 2
    at = _put_num(out, at, 0x18, np.uint64(firm))  # firm_trading_state = 3
    return out


class LimitIdArena:
    """The UTF-8 bytes of a limit book's ids, built once per book (O(limits))."""

    __slots__ = ("_arena", "_book", "_end", "_start")

    def __init__(self) -> None:
        self._book: LimitBook | None = None
        self._arena = np.frombuffer(b"", dtype=np.uint8)
        self._start = np.zeros(1, dtype=np.int64)
        self._end = np.zeros(1, dtype=np.int64)

    def of(self, book: LimitBook) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if book is not self._book:
            encoded = [s.encode() for s in book.ids.tolist()]
            lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            self._end = np.cumsum(lengths)
            self._start = self._end - lengths
            self._arena = np.frombuffer(b"".join(encoded), dtype=np.uint8)  # read-only, as always
            self._book = book
        return self._arena, self._start, self._end


def snapshot_job(cols: SnapshotColumns, limit_ids: LimitIdArena) -> Callable[[], bytes]:
    """The encoding of cols as a call that may run in a worker thread: what it reads is fixed here,
    on the caller's thread (the interners' byte indexes are snapshots that later names never
    change, the limit ids' arena belongs to one immutable limit book, cols are private copies)."""
    acc = cols.accounts_names.name_index()
    sym = cols.symbols_names.name_index()
    lid = limit_ids.of(cols.limits)

    def job() -> bytes:
        return encode_snapshot_reply(
            acc.arena, acc.offsets[:-1], acc.offsets[1:], cols.account, cols.gross, cols.net,
            cols.open_orders, cols.trading_state,
            cols.pos_at, sym.arena, sym.offsets[:-1], sym.offsets[1:], cols.pos_symbol,
            cols.pos_quantity, cols.pos_mark, cols.pos_value,
            cols.lim_at, *lid, cols.lim_index, cols.lim_kind, cols.lim_symbol, cols.lim_observed,
            cols.lim_threshold, cols.lim_utilisation, cols.state_version, cols.firm_trading_state,
        ).tobytes()  # fmt: skip

    return job


def encode_snapshot(cols: SnapshotColumns, limit_ids: LimitIdArena | None = None) -> bytes:
    """GetRiskSnapshotResponse (or StreamRiskSnapshotsResponse) bytes of cols, here and now."""
    return snapshot_job(cols, limit_ids or LimitIdArena())()


# The server's message size bound (server.grpc_options: max_send_message_length); a larger reply
# would fail inside gRPC with a bare RESOURCE_EXHAUSTED.
MAX_REPLY_BYTES = 64 * 1024 * 1024


class SnapshotTooLarge(ValueError):
    """The encoded snapshot exceeds MAX_REPLY_BYTES."""


def _bounded(data: bytes, accounts: int) -> bytes:
    if len(data) > MAX_REPLY_BYTES:
        raise SnapshotTooLarge(
            f"a snapshot of {accounts} accounts is {len(data) / 2**20:.1f} MiB, above the "
            f"{MAX_REPLY_BYTES // 2**20} MiB message bound: ask for fewer accounts at a time"
        )
    return data


# Items (accounts + positions + limits) from which encoding goes to a worker thread: the hop costs
# ~0.1 ms; 20,000 items encode in ~2-3 ms, which the event loop then spends serving checks.
THREAD_MIN = 20_000


class SnapshotWire:
    """Encodes snapshot columns for the servicer: large ones in a worker thread (the kernel releases
    the GIL), and each columns object once, however many subscribers send it (the subscribers woken
    together share one read, snapshots.SnapshotHub); the encoding is kept on the columns object
    (``encoded``), so it goes when the read goes."""

    def __init__(self) -> None:
        self._limit_ids = LimitIdArena()

    async def encode(self, cols: SnapshotColumns) -> bytes:
        """The reply's bytes; SnapshotTooLarge past the message bound."""
        if not cols.encoded:
            job = snapshot_job(cols, self._limit_ids)
            if len(cols) + cols.pos_quantity.shape[0] + cols.lim_index.shape[0] < THREAD_MIN:
                cols.encoded.append(job())
            else:
                cols.encoded.append(asyncio.ensure_future(asyncio.to_thread(job)))
        done = cols.encoded[0]
        # A cancelled caller leaves the thread's work to finish for the others (shield).
        data = done if isinstance(done, bytes) else await asyncio.shield(done)
        return _bounded(data, len(cols))
