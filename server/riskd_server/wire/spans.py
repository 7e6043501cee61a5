"""Strs as UTF-8 spans of one buffer: utf8_spans (strs -> buffer), Utf8Spans (spans -> strs on
demand) and hash_strs (their keys)."""

from __future__ import annotations

import numpy as np

from ._hash import SEED, hash_spans


def utf8_spans(strs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(buf, off, length): strs as UTF-8 in one buffer, str i at buf[off[i]:off[i] + length[i]].

    Joined with NULs, encoded once and split where the NULs are (UTF-8 has no other zero byte),
    with no Python step per str (10,000 ids, spans and hashes: 470 -> 290 us); only when a str
    holds a NUL itself is each one encoded on its own.
    """
    n = len(strs)
    if not n:
        return np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    buf = np.frombuffer("\0".join(strs).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    end = np.flatnonzero(buf == 0)
    if end.shape[0] == n - 1:  # no str holds a NUL
        end = np.append(end, buf.shape[0])
    else:
        enc = [s.encode("utf-8", "surrogatepass") for s in strs]
        buf = np.frombuffer(b"\0".join(enc), dtype=np.uint8)
        end = np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=n) + 1) - 1
    off = np.zeros(n, dtype=np.int64)
    off[1:] = end[:-1] + 1
    return buf, off, end - off


class Utf8Spans:
    """Strs held as (offset, length) spans of a request's bytes (ASCII, checked by the parser) and
    decoded only when read; ``keys``, when given, are their hash_strs keys.

    Stands in for a list of ids or names the engine may never read as strs: without a write-behind
    sink it only counts and hashes them, and hash_strs takes the keys from here (10,000 cancel ids:
    decode, list and hash 900 -> 0 us; the parse that found them hashed them).
    """

    __slots__ = ("_data", "_len", "_off", "keys")

    def __init__(
        self, data: bytes, off: np.ndarray, length: np.ndarray, keys: np.ndarray | None = None
    ) -> None:
        self._data, self._off, self._len, self.keys = data, off, length, keys

    def __len__(self) -> int:
        return int(self._off.shape[0])

    def __getitem__(self, i: int) -> str:
        o = int(self._off[i])
        return self._data[o : o + int(self._len[i])].decode()

    def __iter__(self):
        return iter(self.take(None).tolist())

    def pick(self, idx: np.ndarray) -> list[str]:
        """The strs at a few indexes ``idx``, each decoded on its own (17 of a 1,000-order
        request: ~7 us, against ~18 us for take(), which decodes the whole request first)."""
        data = self._data
        start = self._off[idx]
        return [
            data[a:b].decode() for a, b in zip(start.tolist(), (start + self._len[idx]).tolist(), strict=True)
        ]

    def take(self, idx: np.ndarray | None) -> np.ndarray:
        """The strs at ``idx`` (None: all) as an object array, with no Python call per str
        (decode_spans; the feeder's write-behind reads every id of every batch: ~1,000 ids one
        by one through __getitem__ took ~0.6 ms, this ~0.2 ms)."""
        off, length = (self._off, self._len) if idx is None else (self._off[idx], self._len[idx])
        return decode_spans(self._data, off, length)


def decode_spans(data: bytes, off: np.ndarray, length: np.ndarray) -> np.ndarray:
    """data[off[i]:off[i] + length[i]].decode() for every i, as an object array of strs.

    The request is decoded once as Latin-1 (byte i is character i) and sliced in C (map, no
    Python step per str). That equals the UTF-8 decode while every span is ASCII, as the parser
    checks; a span that is not takes the exact per-str decode (or its error) instead.
    """
    n = int(off.shape[0])
    out = np.empty(n, dtype=object)
    if not n:
        return out
    text = data.decode("latin-1")
    values = list(map(text.__getitem__, map(slice, off.tolist(), (off + length).tolist())))
    if not "".join(values).isascii():
        values = [data[o : o + ln].decode() for o, ln in zip(off.tolist(), length.tolist(), strict=True)]
    out[:] = values
    return out


def hash_strs(names) -> np.ndarray:
    """Keys of strs: their UTF-8 bytes in one buffer, hashed in one kernel call (or, for
    Utf8Spans, the keys the parser computed)."""
    if isinstance(names, Utf8Spans):
        if names.keys is None:
            names.keys = hash_spans(np.frombuffer(names._data, dtype=np.uint8), names._off, names._len, SEED)
        return names.keys
    return hash_spans(*utf8_spans(names), SEED)
