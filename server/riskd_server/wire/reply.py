"""Reply bytes built in numba: CheckOrdersResponse (encode_check_response) and prepared pieces
joined by code (join_pieces, ReportExecutionsResponse's errors)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._hash import _U0


@njit(cache=True, nogil=True, inline="always")
def _varint_len(v: np.uint64) -> np.int64:
    n = 1
    while v >= np.uint64(0x80):
        v >>= np.uint64(7)
        n += 1
    return n


@njit(cache=True, nogil=True)
def _put_varint(out: np.ndarray, pos: np.int64, v: np.uint64) -> np.int64:
    while v >= np.uint64(0x80):
        out[pos] = np.uint8((v & np.uint64(0x7F)) | np.uint64(0x80))
        v >>= np.uint64(7)
        pos += 1
    out[pos] = np.uint8(v)
    return pos + 1


@njit(cache=True, nogil=True)
def _put_double(out: np.ndarray, pos: np.int64, tag: np.uint8, bits: np.uint64) -> np.int64:
    out[pos] = tag
    for j in range(8):
        out[pos + 1 + j] = np.uint8((bits >> np.uint64(8 * j)) & np.uint64(0xFF))
    return pos + 9


@njit(cache=True, nogil=True)
def encode_check_response(accepted, mask, order, check, limit_ids, observed, threshold, warning, version):
    """A CheckOrdersResponse (or CheckOrderStreamResponse: same fields) as upb serializes it.

    accepted bool[n], mask uint32[n]; violation columns order uint32, check int32, observed and
    threshold float64, warning bool, and limit_ids: the ids' UTF-8 joined with NULs (bytes; no id
    may hold a NUL). Proto3 rules: zero scalars and empty strings are left out, ``result`` always
    present, fields in number order, a negative enum is ten bytes. Returns uint8[size].
    """
    n = accepted.shape[0]
    nv = order.shape[0]
    obs = observed.view(np.uint64)
    thr = threshold.view(np.uint64)
    mask_bytes = 0
    for i in range(n):
        mask_bytes += _varint_len(np.uint64(mask[i]))
    body = np.empty(nv, dtype=np.int64)
    lid_at = np.empty(nv + 1, dtype=np.int64)  # id k is limit_ids[lid_at[k]:lid_at[k + 1] - 1]
    lid_at[0] = 0
    size = 0
    if n:
        size += 1 + _varint_len(np.uint64(n)) + n + 1 + _varint_len(np.uint64(mask_bytes)) + mask_bytes
    for k in range(nv):
        end = lid_at[k]
        while end < len(limit_ids) and limit_ids[end] != 0:
            end += 1
        lid_at[k + 1] = end + 1
        ln = end - lid_at[k]
        b = 0
        if order[k]:
            b += 1 + _varint_len(np.uint64(order[k]))
        if check[k]:
            b += 1 + _varint_len(np.uint64(np.int64(check[k])))
        if ln:
            b += 1 + _varint_len(np.uint64(ln)) + ln
        b += 9 * np.int64(obs[k] != _U0) + 9 * np.int64(thr[k] != _U0) + 2 * np.int64(warning[k])
        body[k] = b
        size += 1 + _varint_len(np.uint64(b)) + b
    if version:
        size += 1 + _varint_len(np.uint64(version))
    out = np.empty(1 + _varint_len(np.uint64(size)) + size, dtype=np.uint8)
    out[0] = 0x0A
    pos = _put_varint(out, 1, np.uint64(size))
    if n:
        out[pos] = 0x0A
        pos = _put_varint(out, pos + 1, np.uint64(n))
        for i in range(n):
            out[pos + i] = accepted[i]
        out[pos + n] = 0x12
        pos = _put_varint(out, pos + n + 1, np.uint64(mask_bytes))
        for i in range(n):
            v = np.uint64(mask[i])
            while v >= np.uint64(0x80):
                out[pos] = np.uint8((v & np.uint64(0x7F)) | np.uint64(0x80))
                v >>= np.uint64(7)
                pos += 1
            out[pos] = np.uint8(v)
            pos += 1
    for k in range(nv):
        out[pos] = 0x1A
        pos = _put_varint(out, pos + 1, np.uint64(body[k]))
        if order[k]:
            out[pos] = 0x08
            pos = _put_varint(out, pos + 1, np.uint64(order[k]))
        if check[k]:
            out[pos] = 0x10
            pos = _put_varint(out, pos + 1, np.uint64(np.int64(check[k])))
        a = lid_at[k]
        ln = lid_at[k + 1] - 1 - a
        if ln:
            out[pos] = 0x1A
            pos = _put_varint(out, pos + 1, np.uint64(ln))
            for j in range(ln):
                out[pos + j] = limit_ids[a + j]
            pos += ln
        if obs[k] != _U0:
            pos = _put_double(out, pos, np.uint8(0x21), obs[k])
        if thr[k] != _U0:
            pos = _put_double(out, pos, np.uint8(0x29), thr[k])
        if warning[k]:
            out[pos] = 0x30
            out[pos + 1] = 1
            pos += 2
    if version:
        out[pos] = 0x20
        pos = _put_varint(out, pos + 1, np.uint64(version))
    return out


@njit(cache=True, nogil=True)
def join_pieces(pieces: np.ndarray, bounds: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """pieces[bounds[c]:bounds[c + 1]] for each c in codes, concatenated (prepared reply fields)."""
    size = 0
    for c in codes:
        size += bounds[c + 1] - bounds[c]
    out = np.empty(size, dtype=np.uint8)
    pos = 0
    for c in codes:
        for j in range(bounds[c], bounds[c + 1]):
            out[pos] = pieces[j]
            pos += 1
    return out
