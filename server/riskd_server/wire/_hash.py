"""The 64-bit key of a name's UTF-8 bytes (ids, accounts, symbols), seeded per process, and the
Utf8Spans view of names held as spans of a request.

Every path that keys an order (strs, request bytes, recovery's COPY buffers) hashes the same bytes
with these functions, so they all find the same order. Loops index with unsigned or loop-counter
values and take array arguments only in their own body or in straight-line inlined helpers (see
the package doc).
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit

from ..kernel._hashtable import EMPTY

# Per-process salt of the id and name keys (a client cannot precompute colliding ids).
SEED = np.uint64(int.from_bytes(os.urandom(8), "little"))

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_U0 = np.uint64(0)
_U1, _U2, _U3, _U4, _U5, _U6, _U7 = (np.uint64(k) for k in range(1, 8))
_U8 = np.uint64(8)
_U16, _U24, _U32, _U40, _U48, _U56 = (np.uint64(k) for k in range(16, 64, 8))
_U23 = np.uint64(23)
_U27 = np.uint64(27)
_U31 = np.uint64(31)
_U33 = np.uint64(33)
_U41 = np.uint64(41)
_U37 = np.uint64(37)
_U64 = np.uint64(64)


@njit(cache=True, nogil=True, inline="always")
def _rotl(x: np.uint64, r: np.uint64) -> np.uint64:
    return (x << r) | (x >> (_U64 - r))


@njit(cache=True, nogil=True, inline="always")
def _finish(h: np.uint64) -> np.int64:
    """murmur3's finaliser; never EMPTY (the tables' free-bucket key)."""
    h ^= h >> _U33
    h *= _M1
    h ^= h >> _U33
    h *= _M2
    h ^= h >> _U33
    key = np.int64(h)
    return key if key != EMPTY else np.int64(1)


@njit(cache=True, nogil=True, inline="always")
def _byte(buf: np.ndarray, p: np.int64) -> np.uint8:
    """buf[p] through an unsigned index (see _word)."""
    return buf[np.uint64(p)]


@njit(cache=True, nogil=True, inline="always")
def _word(buf: np.ndarray, p: np.int64) -> np.uint64:
    """buf[p:p + 8] as a little-endian word, in one load.

    Straight-line (numba reference-counts an array passed to an inlined helper that branches) and
    indexed unsigned: a signed index is wrapped around if negative, a compare per byte that keeps
    LLVM from merging the eight loads (20x slower a word).
    """
    u = np.uint64(p)
    return (
        np.uint64(buf[u])
        | np.uint64(buf[u + _U1]) << _U8
        | np.uint64(buf[u + _U2]) << _U16
        | np.uint64(buf[u + _U3]) << _U24
        | np.uint64(buf[u + _U4]) << _U32
        | np.uint64(buf[u + _U5]) << _U40
        | np.uint64(buf[u + _U6]) << _U48
        | np.uint64(buf[u + _U7]) << _U56
    )


@njit(cache=True, nogil=True, inline="always")
def _mix(h: np.uint64, w: np.uint64) -> np.uint64:
    """One full 8-byte word into the hash state."""
    h ^= _rotl(w * _P2, _U31) * _P1
    return _rotl(h, _U27) * _P1 + _P4


@njit(cache=True, nogil=True, inline="always")
def _mix_tail(h: np.uint64, w: np.uint64) -> np.uint64:
    """The last 1..7 bytes (little-endian in w) into the hash state."""
    h ^= w * _P1
    return _rotl(h, _U23) * _P2 + _P3


@njit(cache=True, nogil=True)
def hash_span(buf: np.ndarray, start: np.int64, length: np.int64, seed: np.uint64) -> np.int64:
    """Salted 64-bit hash of buf[start:start+length] (xxh64-style rounds, murmur3 finaliser).

    Never returns EMPTY (the tables' free-bucket key). The hot loops (_walk, lookup_names) repeat
    its byte loads inline: numba reference-counts an array passed to an inlined helper that
    branches, and a call per name costs as much as the hash.
    """
    h = seed ^ (np.uint64(length) * _P1)
    p = start
    end = start + length
    while p + 8 <= end:
        h = _mix(h, _word(buf, p))
        p += 8
    if p < end:
        w = _U0
        for j in range(end - p):
            w |= np.uint64(buf[np.uint64(p + j)]) << np.uint64(8 * j)
        h = _mix_tail(h, w)
    return _finish(h)


@njit(cache=True, nogil=True)
def hash_spans(buf: np.ndarray, off: np.ndarray, length: np.ndarray, seed: np.uint64) -> np.ndarray:
    """hash_span of each (off[i], length[i])."""
    n = off.shape[0]
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = hash_span(buf, off[i], length[i], seed)
    return out


def hash_bytes(data: bytes) -> int:
    """The key of one name's UTF-8 bytes (hash_span over all of them)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    return int(hash_span(buf, 0, buf.shape[0], SEED))
