"""Read-only passes for risk snapshots: which accounts changed (their rows, their positions' marks),
which books an account holds, and the limits closest to breach.

Neither touches the check path: they read the state arrays between RPCs, on the event loop
(engine.snapshot and riskd_server.snapshots call them). Both are single passes without numpy
temporaries, so a snapshot tick costs a pass over the account rows (~1 ms at 100,000 accounts)
and reading a few accounts costs their books, not every book.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .layout import (
    A_OPEN_GROSS,
    A_POS_COUNT,
    A_TOKENS,
    A_TRADING,
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POS,
    BP_ACCOUNT,
    BP_NEXT,
    BP_SYMBOL,
    L_THRESHOLD,
    S_FILL,
    S_PRICE,
)

# The account-row columns a snapshot depends on, as two ranges: the exposure sums, open-order count
# and trading state (A_OPEN_GROSS..A_TRADING), then the order-rate bucket and the position count
# (A_TOKENS..A_POS_COUNT: tokens, last refill time, bucket set, non-zero positions). The cached
# limit levels between them change when a check re-resolves limits, which says nothing new.
WATCH_A = (A_OPEN_GROSS, A_TRADING + 1)
WATCH_B = (A_TOKENS, A_POS_COUNT + 1)
WATCHED = WATCH_A[1] - WATCH_A[0] + WATCH_B[1] - WATCH_B[0]


@njit(cache=True, nogil=True)
def stamp_changed(
    acct_bits: np.ndarray, last: np.ndarray, n: np.int64, seq: np.int64, changed_at: np.ndarray
) -> np.int64:
    """Compare the watched columns of accounts 0..n-1 (acct_bits: the account rows seen as int64,
    so the comparison is bitwise: no NaN or -0.0 surprises) with ``last`` (int64[>= n, WATCHED]);
    for each account that differs, copy its values into ``last`` and set changed_at[a] = seq.
    Returns how many differed."""
    changed = 0
    for a in range(n):
        differs = False
        c = 0
        for col in range(WATCH_A[0], WATCH_A[1]):
            differs |= acct_bits[a, col] != last[a, c]
            c += 1
        for col in range(WATCH_B[0], WATCH_B[1]):
            differs |= acct_bits[a, col] != last[a, c]
            c += 1
        if differs:
            c = 0
            for col in range(WATCH_A[0], WATCH_A[1]):
                last[a, c] = acct_bits[a, col]
                c += 1
            for col in range(WATCH_B[0], WATCH_B[1]):
                last[a, c] = acct_bits[a, col]
                c += 1
            changed_at[a] = seq
            changed += 1
    return changed


@njit(cache=True, nogil=True)
def stamp_marks(
    sym: np.ndarray,
    last: np.ndarray,
    n: np.int64,
    sym_books: np.ndarray,
    book: np.ndarray,
    book_pair: np.ndarray,
    seq: np.int64,
    changed_at: np.ndarray,
) -> np.int64:
    """Compare the marks of symbols 0..n-1 (price, else last fill price, else NaN) with ``last``;
    for each that moved, remember it and set changed_at[a] = seq for every account a holding a
    position in it (the symbol's book list, exposure.py). A mark moves an account's position sums
    too, but two moves in one batch can cancel in the sums while the positions' values change.
    Returns how many accounts it stamped that were not stamped at seq already."""
    stamped = 0
    for s in range(n):
        px = sym[s, S_PRICE]
        mark = px if px == px else sym[s, S_FILL]
        old = last[s]
        if mark == old or (mark != mark and old != old):
            continue
        last[s] = mark
        b = sym_books[s]
        while b >= 0:
            if book[b, B_POS] != 0.0:
                a = book_pair[b, BP_ACCOUNT]
                if changed_at[a] != seq:
                    changed_at[a] = seq
                    stamped += 1
            b = book_pair[b, BP_NEXT]
    return stamped


@njit(cache=True, nogil=True)
def link_books(
    book_pair: np.ndarray,
    start: np.int64,
    end: np.int64,
    head: np.ndarray,
    tail: np.ndarray,
    nxt: np.ndarray,
    count: np.ndarray,
) -> None:
    """Append books start..end-1 to their accounts' lists (head[account] -> nxt[book] -> ..., -1
    ends a list; oldest first) and count them per account. Books are never removed and never
    change account, so each book is linked once, when it first shows up."""
    for b in range(start, end):
        a = book_pair[b, BP_ACCOUNT]
        nxt[b] = -1
        if head[a] < 0:
            head[a] = b
        else:
            nxt[tail[a]] = b
        tail[a] = b
        count[a] += 1


@njit(cache=True, nogil=True)
def gather_books(
    ids: np.ndarray,
    head: np.ndarray,
    nxt: np.ndarray,
    book: np.ndarray,
    book_pair: np.ndarray,
    rows_out: np.ndarray,
    sym_out: np.ndarray,
    pos_out: np.ndarray,
    buy_out: np.ndarray,
    sell_out: np.ndarray,
) -> np.int64:
    """For each book of accounts ids (each account's oldest first): the index in ids of its
    account (rows_out, so non-decreasing), its symbol, position and open buy and sell quantities.
    Returns how many (the caller sizes the outputs from link_books' counts)."""
    m = 0
    for i in range(ids.shape[0]):
        b = head[ids[i]]
        while b >= 0:
            rows_out[m] = i
            sym_out[m] = book_pair[b, BP_SYMBOL]
            pos_out[m] = book[b, B_POS]
            buy_out[m] = book[b, B_OPEN_BUY]
            sell_out[m] = book[b, B_OPEN_SELL]
            m += 1
            b = nxt[b]
    return m


@njit(cache=True, nogil=True, inline="always")
def _closer(
    u1: float, k1: np.int64, l1: np.int64, s1: np.int64, u2: float, k2: np.int64, l2: np.int64, s2: np.int64
) -> bool:
    """Candidate 1 ranks before candidate 2: higher utilisation, then lower kind, limit index, symbol."""
    if u1 != u2:
        return u1 > u2
    if k1 != k2:
        return k1 < k2
    if l1 != l2:
        return l1 < l2
    return s1 < s2


@njit(cache=True, nogil=True)
def closest_limits(
    acc_kinds: np.ndarray,
    acc_li: np.ndarray,
    acc_obs: np.ndarray,
    b_at: np.ndarray,
    b_kind: np.int64,
    b_li: np.ndarray,
    b_sym: np.ndarray,
    b_obs: np.ndarray,
    lim_f: np.ndarray,
    top: np.int64,
    out_kind: np.ndarray,
    out_li: np.ndarray,
    out_sym: np.ndarray,
    out_obs: np.ndarray,
    out_util: np.ndarray,
    out_count: np.ndarray,
) -> None:
    """Per account i, its `top` limits closest to breach, closest first, into rows i * top .. of
    the outputs (out_count[i] of them).

    Candidates: the account-level kinds acc_kinds[j] with limit acc_li[i, j] (-1: none applies)
    and observed acc_obs[i, j], then account i's books b_at[i]..b_at[i + 1]-1 for kind b_kind
    (limit b_li, symbol b_sym, observed b_obs). Utilisation = observed / threshold; a zero
    threshold gives +inf when observed > 0, else 0. One insertion into a `top`-slot list per
    candidate: O(candidates), no sort of all of them.
    """
    k = acc_li.shape[0]
    for i in range(k):
        base = i * top
        n = 0
        m_acc = acc_kinds.shape[0]
        for c in range(m_acc + b_at[i + 1] - b_at[i]):
            if c < m_acc:
                li = acc_li[i, c]
                kind = acc_kinds[c]
                sym = np.int64(-1)
                obs = acc_obs[i, c]
            else:
                j = b_at[i] + c - m_acc
                li = b_li[j]
                kind = b_kind
                sym = b_sym[j]
                obs = b_obs[j]
            if li < 0:
                continue
            t = lim_f[li, L_THRESHOLD]
            if t > 0.0:
                util = obs / t
            elif obs > 0.0:
                util = math.inf
            else:
                util = 0.0
            # Insert: find the first slot this candidate ranks before.
            at = n
            while at > 0 and _closer(
                util,
                kind,
                li,
                sym,
                out_util[base + at - 1],
                out_kind[base + at - 1],
                out_li[base + at - 1],
                out_sym[base + at - 1],
            ):
                at -= 1
            if at >= top:
                continue
            last = n if n < top else top - 1
            for r in range(last, at, -1):
                out_kind[base + r] = out_kind[base + r - 1]
                out_li[base + r] = out_li[base + r - 1]
                out_sym[base + r] = out_sym[base + r - 1]
                out_obs[base + r] = out_obs[base + r - 1]
                out_util[base + r] = out_util[base + r - 1]
            out_kind[base + at] = kind
            out_li[base + at] = li
            out_sym[base + at] = sym
            out_obs[base + at] = obs
            out_util[base + at] = util
            if n < top:
                n += 1
        out_count[i] = n
