"""Checkpoints: the engine's whole state in one file and back (recovery = newest checkpoint + the
journal records after its seq).

Three steps, split by where they may run:

* ``capture`` (on the event loop, between two RPCs): private copies of the state arrays' used
  parts into reused buffers (``Buffers``: memory a fresh allocation would first touch costs far
  more than the copy on a VM), plus references to what is immutable already (the limit book, the
  interners' name prefixes). The stall is the copy (figures: the README's "Checkpoints and
  recovery").
* ``write`` (a worker thread): encodes names and limits, then one file: a temp name, fsync,
  rename, fsync of the directory. Named ``checkpoint-<seq:020d>.ckpt``.
* ``load_latest`` (start-up): the newest file whose every section passes its CRC-32C, restored
  into a freshly built Engine; a damaged or truncated one is skipped with a WARNING.

File: a header (magic, format version, seq, TOC length, TOC CRC-32C), the TOC (JSON: scalars and,
per section, dtype, shape, offset, length, CRC-32C), then the sections' raw little-endian bytes,
each at a 64-byte boundary. No pickle: only numeric dtypes are read back.

Left out (derived or per process): the VaR tables (the risk model is reinstalled after start:
``set_risk_model`` rebuilds them from the books), the per-account book lists, the check counters,
the interners' byte indexes (rebuilt by ``index_names``) and the limit levels cached in account
and book rows (their tags are reset, so the first check re-resolves them from the restored book).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google_crc32c
import numpy as np

from .. import wire
from ..dynamic import Vols
from ..kernel import layout as L
from ..kernel._hashtable import ht_new, ht_rehash
from ..limitbook import LimitBook, LimitMap, compile_limits
from ..limits import Limit
from .books import BookLists
from .state import State, aligned_rows

if TYPE_CHECKING:
    from .core import Engine

log = logging.getLogger("riskd.checkpoint")

MAGIC = b"RCKP"
VERSION = 1
_HEAD = struct.Struct("<4sIQII")  # magic, format version, seq, TOC length, TOC CRC-32C
_ALIGN = 64
_CRC_CHUNK = 1 << 20  # google_crc32c takes bytes only: sections are checked in copied chunks
_CHUNK = 32_768  # limits per C-level pass (each holds the GIL; the event loop waits at most one)
_DTYPES = frozenset({"<i8", "<f8", "|u1"})
NAME = re.compile(r"^checkpoint-(\d{20})\.ckpt$")
_TMP = re.compile(r"^\.checkpoint-(\d{20})\.ckpt\.tmp$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (damaged, truncated, or for another configuration)."""


def file_name(seq: int) -> str:
    return f"checkpoint-{seq:020d}.ckpt"


# ------------------------------------------------------------------ capture (event loop)


class Buffers:
    """Copy targets reused from one capture to the next, by section name.

    A fresh array costs a page fault per page on first touch, and on a VM first touch of memory
    the guest had not used is far dearer than the copy (a 200 MB copy into new memory measured
    3.5 s, into reused memory 0.11 s): so the buffers stay after a write, sized with headroom.
    """

    __slots__ = ("_free", "_lock")

    def __init__(self) -> None:
        self._free: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def copy(self, name: str, src: np.ndarray, held: dict[str, np.ndarray]) -> np.ndarray:
        """A private copy of src in a reused buffer (recorded in held for release)."""
        with self._lock:
            buf = self._free.pop(name, None)
        need = src.nbytes
        if buf is None or buf.nbytes < need:  # first touch of new memory, here: see prepare
            buf = np.empty(_headroom(need), dtype=np.uint8)
        held[name] = buf
        out = buf[:need].view(src.dtype).reshape(src.shape)
        np.copyto(out, src)
        return out

    def release(self, held: Mapping[str, np.ndarray]) -> None:
        with self._lock:
            self._free.update(held)

    def reserve(self, name: str, nbytes: int) -> None:
        """A buffer of at least nbytes for name, every page written here (a worker thread: numpy
        fills without the GIL), so no capture pays for first touch."""
        with self._lock:
            buf = self._free.get(name)
        if buf is not None and buf.nbytes >= nbytes:
            return
        buf = np.empty(nbytes, dtype=np.uint8)
        buf.fill(0)
        with self._lock:
            self._free[name] = buf

    def prepare(self, engine: Engine) -> None:
        """Reserve buffers for the engine's state as it is now, with headroom; the order table,
        slots, free stack and ring at their bound (they never grow). A worker thread at start-up:
        without it the first capture pays for first touch (seconds at 1 M orders on a VM)."""
        s = engine._s
        bound = {
            "ord_ht": s.ord_ht.nbytes,
            "ordi": s.ordi.nbytes,
            "free": s.free.nbytes,
            "ring": s.ring.nbytes,
        }
        for name, src in _sources(engine)[0].items():
            self.reserve(name, bound.get(name) or _headroom(src.nbytes))

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


def _headroom(nbytes: int) -> int:
    return nbytes + nbytes // 4 + _ALIGN


BUFFERS = Buffers()


@dataclass(frozen=True, slots=True)
class Captured:
    """What ``write`` needs, owned by it: copies of the mutable state, references to the rest."""

    seq: int
    meta: dict[str, Any]  # scalars (JSON)
    arrays: dict[str, np.ndarray]  # private copies (in ``held``'s buffers)
    accounts: np.ndarray  # object[n]: names by id (a view that never changes, Interner.names_prefix)
    symbols: np.ndarray
    account_ids: Mapping[str, int]  # live name -> id maps (ids never change): for LimitBook.row_of
    symbol_ids: Mapping[str, int]
    limits: LimitBook  # immutable
    stall: float  # seconds capture held the event loop
    held: dict[str, np.ndarray] = field(default_factory=dict)
    buffers: Buffers | None = None


def capture(engine: Engine, seq: int, buffers: Buffers | None = None) -> Captured:
    """Copy what the engine's state is now, for ``write`` (on the event loop, between RPCs).

    Copies only the used parts: account and symbol rows of the interned names, book rows in use
    (position and open columns), order slots handed out, the free stack up to its top; the order
    table and the closed-order ring whole (their layout is their state; the book table is rebuilt
    at load from the books' pairs). O(state in use): see the module doc for the stall. One
    capture in flight per Buffers: a second one before ``write`` gave the first's buffers back
    copies into new memory (the slow first touch that ``Buffers.prepare`` avoids).
    """
    t0 = time.perf_counter()
    buffers = BUFFERS if buffers is None else buffers
    held: dict[str, np.ndarray] = {}
    sources, meta = _sources(engine)
    arrays = {name: buffers.copy(name, src, held) for name, src in sources.items()}
    return _captured(engine, seq, arrays, meta, t0, held, buffers)


def _sources(engine: Engine) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The state arrays' used parts (views) and the scalars beside them."""
    s = engine._s
    ctr = s.ctr.copy()
    n_acct, n_sym = len(engine.accounts), len(engine.symbols)
    n_books, slots, top = int(ctr[L.C_BOOKS]), int(ctr[L.C_SLOTS]), int(ctr[L.C_FREE_TOP])
    ewma = engine._ewma
    sources = {
        "acct": s.acct[:n_acct],
        "sym": s.sym[:n_sym],
        "sym_books": s.sym_books[:n_sym],
        "book": s.book[:n_books, : L.B_LIM_TAG],  # position, open buy, open sell (levels: derived)
        "book_pair": s.book_pair[:n_books],
        "ord_ht": s.ord_ht,
        "ordi": s.ordi[:slots],
        "free": s.free[:top],
        "ring": s.ring,
        "ewma_last": ewma.last,
        "ewma_var": ewma.var,
        "ewma_count": ewma.count,
        "ctr": ctr,
    }
    meta = {
        "state_version": engine.state_version,
        "limits_version": engine.limits.version,
        "max_slots": s.max_slots,
        "acct_rows": s.acct.shape[0],
        "sym_rows": s.sym.shape[0],
        "book_rows": s.book.shape[0],
        "book_ht_rows": s.book_ht.shape[0],
        "retention": engine.config.closed_order_retention,
        "ring_size": s.ring.shape[0],
        "seed": int(wire.SEED),  # the order table's keys are salted with it (wire._hash)
        "wall_time": time.time(),
    }
    return sources, meta


def _captured(
    engine: Engine,
    seq: int,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    t0: float,
    held: dict[str, np.ndarray] | None = None,
    buffers: Buffers | None = None,
) -> Captured:
    return Captured(
        seq=seq,
        meta=meta,
        arrays=arrays,
        accounts=engine.accounts.names_prefix(),
        symbols=engine.symbols.names_prefix(),
        account_ids=engine.accounts.by_name,
        symbol_ids=engine.symbols.by_name,
        limits=engine.limits,
        stall=time.perf_counter() - t0,
        held={} if held is None else held,
        buffers=buffers,
    )


@dataclass(frozen=True, slots=True)
class Forked:
    """A checkpoint being written by a child process (capture_forked); ``write`` waits for it."""

    seq: int
    pid: int
    path: Path
    stall: float  # seconds the fork held the event loop


def capture_forked(engine: Engine, seq: int, directory: Path, nice: int = 19) -> Forked:
    """The copy-on-write alternative to ``capture``: fork, and the child writes the file from its
    frozen view of the state (then exits); the stall is the fork's page-table copy, not a copy of
    the state. The price is paid later, in the server: each page it writes while the child lives
    is copied by a page fault (both measured in the README's "Checkpoints and recovery"; the
    server does not use it, bench.checkpoint_bench compares it). ``write`` (in a worker thread)
    waits for the child and returns the path, or raises CheckpointError."""
    directory = Path(directory)
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: no logging, no event loop, no gRPC; only the file, then _exit
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            if nice:
                os.nice(nice)
            sources, meta = _sources(engine)
            _write_captured(_captured(engine, seq, sources, meta, t0), directory)
            code = 0
        except BaseException:  # the child reports and exits, whatever happened
            traceback.print_exc()
        finally:
            os._exit(code)
    return Forked(seq, pid, directory / file_name(seq), time.perf_counter() - t0)


# ------------------------------------------------------------------ write (worker thread)


def write(captured: Captured | Forked, directory: Path) -> Path:
    """Write captured as ``directory/checkpoint-<seq>.ckpt`` (temp file, fsync, rename, fsync of
    the directory); returns the path. Gives the capture's buffers back for the next capture. For
    a Forked capture: waits for its child, which writes the file itself."""
    if isinstance(captured, Forked):
        _, status = os.waitpid(captured.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise CheckpointError(f"checkpoint writer process {captured.pid} exited with {code}")
        return captured.path
    try:
        return _write_captured(captured, Path(directory))
    finally:
        buffers = captured.buffers
        if buffers is not None:
            buffers.release(captured.held)
            for name, buf in captured.held.items():  # grown state: a larger buffer now, not in capture
                need = captured.arrays[name].nbytes
                if buf.nbytes < need + need // 8:
                    buffers.reserve(name, _headroom(need))


def _write_captured(captured: Captured, directory: Path) -> Path:
    sections = dict(captured.arrays)
    meta = dict(captured.meta)
    sections["account_names"], sections["account_lengths"] = _encode_strs(captured.accounts)
    sections["symbol_names"], sections["symbol_lengths"] = _encode_strs(captured.symbols)
    _limit_sections(captured, sections, meta)
    return _write_file(captured.seq, sections, meta, directory)


def _write_file(seq: int, sections: dict[str, np.ndarray], meta: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    toc: list[dict[str, Any]] = []
    views: list[memoryview] = []
    offset = 0
    for name, arr in sections.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype.str not in _DTYPES:
            raise TypeError(f"checkpoint section {name}: dtype {arr.dtype} is not stored")
        view = arr.reshape(-1).data.cast("B")
        toc.append(
            {
                "name": name,
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "offset": offset,
                "nbytes": arr.nbytes,
                "crc": _crc(view),
            }
        )
        views.append(view)
        offset = _aligned(offset + arr.nbytes)
    meta["seq"] = seq
    body = json.dumps({"meta": meta, "sections": toc}, separators=(",", ":")).encode()
    start = _aligned(_HEAD.size + len(body))
    size = start + (toc[-1]["offset"] + toc[-1]["nbytes"] if toc else 0)
    head = _HEAD.pack(MAGIC, VERSION, seq, len(body), google_crc32c.value(body))
    path = directory / file_name(seq)
    tmp = directory / f".{path.name}.tmp"
    with open(tmp, "wb") as f:
        f.write(head + body + bytes(start - _HEAD.size - len(body)))
        pos = start
        for entry, view in zip(toc, views, strict=True):
            gap = start + entry["offset"] - pos
            if gap:
                f.write(bytes(gap))
            f.write(view)
            pos = start + entry["offset"] + entry["nbytes"]
        f.flush()
        os.fsync(f.fileno())
    assert pos == size
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _crc(view: memoryview) -> int:
    """CRC-32C of view, a chunk at a time (google_crc32c takes bytes only, and holds the GIL: the
    sleep(0) after each chunk hands the GIL to the event loop, which would otherwise wait up to
    the 5 ms switch interval while a writer thread checksums)."""
    crc = 0
    for lo in range(0, len(view), _CRC_CHUNK):
        crc = google_crc32c.extend(crc, bytes(view[lo : lo + _CRC_CHUNK]))
        time.sleep(0)
    return int(crc)


def _encode_strs(strs: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes of all, length of each in code points): one join and one encode; decoded back
    by slicing the one decoded str (surrogatepass, as the engine encodes names)."""
    items = strs.tolist() if isinstance(strs, np.ndarray) else list(strs)
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    data = "".join(items).encode("utf-8", "surrogatepass")
    return np.frombuffer(data, dtype=np.uint8), lengths


def _decode_strs(data: np.ndarray, lengths: np.ndarray) -> list[str]:
    text = data.tobytes().decode("utf-8", "surrogatepass")
    if int(lengths.sum()) != len(text) or (lengths.shape[0] and int(lengths.min()) < 0):
        raise CheckpointError("string lengths do not match their bytes")
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    return list(map(text.__getitem__, map(slice, starts, ends)))


_LIMIT_STRS = ("limit_id", "account", "symbol", "description", "template")
_LIMIT_FLOATS = ("threshold", "warn_fraction", "reference_volatility", "min_scale")


def _limit_sections(captured: Captured, sections: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """The limit book as columns: every limit's fields, and the threshold the book enforces for it
    (dynamic limits' effective thresholds, as last refreshed), plus the volatilities it used."""
    book = captured.limits
    lims = book.limits
    merged = lims.to_dict() if isinstance(lims, LimitMap) else dict(lims)
    values = list(merged.values())
    n = len(values)
    for name in _LIMIT_STRS:
        sections[f"limit_{name}"], sections[f"limit_{name}_lengths"] = _encode_strs(
            _column(values, name, object)
        )
    sections["limit_kind"] = _column(values, "kind", np.int64)
    for name in _LIMIT_FLOATS:
        sections[f"limit_{name}"] = _column(values, name, np.float64)
    sections["limit_disabled"] = _column(values, "disabled", np.uint8)
    effective = sections["limit_threshold"].copy()
    dynamic = np.flatnonzero((sections["limit_reference_volatility"] > 0) & (sections["limit_disabled"] == 0))
    for i in dynamic.tolist():
        effective[i] = book.effective_threshold(values[i], captured.account_ids, captured.symbol_ids)
    sections["limit_effective"] = effective
    vols = book.vols
    meta["limits"] = n
    meta["vols"] = isinstance(vols, Vols)
    if isinstance(vols, Vols):
        sections["vols_symbol"] = np.asarray(vols.symbol, dtype=np.float64)
        sections["vols_account"] = np.asarray(vols.account, dtype=np.float64)
        meta["vols_firm"] = vols.firm
        meta["vols_min_scale"] = vols.min_scale


def _column(values: list[Limit], name: str, dtype: type) -> np.ndarray:
    n = len(values)
    out: np.ndarray = np.empty(n, dtype=dtype)
    get = attrgetter(name)
    for lo in range(0, n, _CHUNK):
        part = values[lo : lo + _CHUNK]
        if dtype is object:
            out[lo : lo + len(part)] = list(map(get, part))
        else:
            out[lo : lo + len(part)] = np.fromiter(map(get, part), dtype=dtype, count=len(part))
    return out


# ------------------------------------------------------------------ load (start-up)


def checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(seq, path) of the checkpoint files in directory, oldest first (temp files left out)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), Path(directory) / name) for name in names if (m := NAME.match(name))]
    return sorted(found)


def load_latest(directory: Path, engine: Engine) -> int | None:
    """Restore the newest usable checkpoint into engine (freshly built, same config); its seq, or
    None when there is none. A damaged, truncated or unusable file is skipped with a WARNING and
    the next older one tried; nothing of a refused file reaches the engine."""
    _require_fresh(engine)
    for seq, path in reversed(checkpoints(directory)):
        t0 = time.perf_counter()
        touched: list[np.ndarray] = []
        try:
            loaded = _read(path, seq, engine, touched)
            book, salt = _check(engine, loaded)
        except (ValueError, KeyError, TypeError, OSError) as exc:  # CheckpointError, bad UTF-8, ...
            for arr in touched:  # the fresh engine's arrays read into: fresh again
                arr.fill(0)
            log.warning("checkpoint %s refused (%s): trying an older one", path, exc)
            continue
        _install(engine, loaded, book, salt)
        log.info(
            "restored checkpoint %s (seq %d, %d open orders) in %.3f s",
            path.name,
            seq,
            engine.open_orders(),
            time.perf_counter() - t0,
        )
        return seq
    return None


def _require_fresh(engine: Engine) -> None:
    if (
        engine.state_version
        or len(engine.accounts)
        or len(engine.symbols)
        or engine.limits.limits
        or engine.risk_model is not None
    ):
        raise ValueError("load_latest restores into a freshly built Engine only")


@dataclass(frozen=True, slots=True)
class _Loaded:
    seq: int
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]  # state arrays at their full sizes
    accounts: list[str]
    symbols: list[str]
    limits: dict[str, Limit]
    effective: np.ndarray  # per enabled limit, in limits' order
    vols: Vols | None


def _read(path: Path, seq: int, engine: Engine, touched: list[np.ndarray]) -> _Loaded:
    """Every section read and CRC-checked, decoded and checked against engine's configuration."""
    with open(path, "rb", buffering=0) as f:
        head = f.read(_HEAD.size)
        if len(head) != _HEAD.size:
            raise CheckpointError("truncated header")
        magic, version, head_seq, toc_len, toc_crc = _HEAD.unpack(head)
        if magic != MAGIC or version != VERSION:
            raise CheckpointError(f"not a version {VERSION} checkpoint (magic {magic!r}, version {version})")
        if head_seq != seq:
            raise CheckpointError(f"header seq {head_seq} differs from the file name's {seq}")
        body = f.read(toc_len)
        if len(body) != toc_len or google_crc32c.value(body) != toc_crc:
            raise CheckpointError("table of contents fails its CRC")
        try:
            doc = json.loads(body)
            meta, toc = doc["meta"], doc["sections"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"table of contents: {exc}") from None
        start = _aligned(_HEAD.size + toc_len)
        size = os.fstat(f.fileno()).st_size
        end = start + (toc[-1]["offset"] + toc[-1]["nbytes"] if toc else 0)
        if size != end:
            raise CheckpointError(f"{size} bytes, expected {end} (truncated or overwritten)")
        cfg_problem = _config_problem(engine, meta)
        if cfg_problem:
            raise CheckpointError(cfg_problem)
        arrays = {}
        for entry in toc:
            name, dtype, shape = entry["name"], entry["dtype"], tuple(entry["shape"])
            if dtype not in _DTYPES or int(np.prod(shape)) * np.dtype(dtype).itemsize != entry["nbytes"]:
                raise CheckpointError(f"section {name}: bad dtype or shape")
            full, head_view, fill = _destination(name, np.dtype(dtype), shape, meta, engine._s, touched)
            assert head_view.flags.c_contiguous  # read in place: reshape must not copy
            view = head_view.reshape(-1).data.cast("B")
            f.seek(start + entry["offset"])
            if f.readinto(view) != entry["nbytes"]:
                raise CheckpointError(f"section {name}: short read")
            if _crc(view) != entry["crc"]:
                raise CheckpointError(f"section {name} fails its CRC")
            rows = shape[0] if shape else 0
            if name == "book":  # position and open columns; the cached levels start unresolved
                full[:rows, : L.B_LIM_TAG] = head_view
                full[:rows, L.B_LIM_TAG :] = 0.0
            if fill is not None:
                full[rows:] = fill
            arrays[name] = full
    return _decode(seq, meta, arrays)


def _destination(
    name: str,
    dtype: np.dtype,
    shape: tuple[int, ...],
    meta: dict[str, Any],
    s: State,
    touched: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(the array to keep, the view of it the section's bytes go into, the fill of its rows past
    them or None). The fresh engine's own order table, order slots and ring are read into when their
    shapes fit: they are allocated and written at the bound already, and a second set would cost as
    much again (mostly first touch of memory). What is read into them is listed in touched, to be
    zeroed again if the file is refused."""
    rows = shape[0] if shape else 0
    if name in ("ord_ht", "ring") and getattr(s, name).shape == shape:
        full = getattr(s, name)
        touched.append(full)
        return full, full, None
    if name == "ordi":
        total = int(meta["max_slots"])
        if s.ordi.shape == (total, *shape[1:]) and rows <= total:
            touched.append(s.ordi[:rows])
            return s.ordi, s.ordi[:rows], None
        full = aligned_rows(total, np.int64)
        fill: float | None = None
    elif name == "book":
        total = int(meta["book_rows"])
        if rows > total or shape[1:] != (L.B_LIM_TAG,):
            raise CheckpointError(f"section book: {shape} does not fit {total} rows")
        return _aligned_empty(total), np.empty(shape, dtype=dtype), 0.0  # _read spreads it
    elif name == "free":
        full, fill = np.empty(int(meta["max_slots"]), dtype=dtype), 0
    elif name in ("acct", "book_pair"):
        total = int(meta["acct_rows"] if name == "acct" else meta["book_rows"])
        full, fill = np.empty((total, *shape[1:]), dtype=dtype), 0
    elif name in ("sym", "sym_books"):
        full = np.empty((int(meta["sym_rows"]), *shape[1:]), dtype=dtype)
        fill = np.nan if name == "sym" else -1
    else:
        full = np.empty(shape, dtype=dtype)
        return full, full, None
    if full.shape[0] < rows or full.shape[1:] != shape[1:]:
        raise CheckpointError(f"section {name}: {shape} does not fit {full.shape}")
    return full, full[:rows], fill


def _aligned_empty(rows: int) -> np.ndarray:
    """state.aligned_rows without its zero fill (the caller writes every row once)."""
    buf = np.empty(rows * 8 + 8, dtype=np.float64)
    skip = (-buf.ctypes.data % 64) // 8
    return buf[skip : skip + rows * 8].reshape(rows, 8)


def _config_problem(engine: Engine, meta: dict[str, Any]) -> str:
    """Why this engine's configuration cannot take the checkpoint ('' when it can)."""
    cfg = engine.config
    ring = cfg.closed_order_retention + cfg.max_batch
    if meta.get("ring_size") not in (None, ring) or meta.get("retention") not in (
        None,
        cfg.closed_order_retention,
    ):
        return (
            f"written with closed_order_retention {meta.get('retention')} and a ring of "
            f"{meta.get('ring_size')}, this server has {cfg.closed_order_retention} and {ring} "
            "(closed_order_retention + max_batch): recover from the database instead"
        )
    return ""


def _decode(seq: int, meta: dict[str, Any], a: dict[str, np.ndarray]) -> _Loaded:
    try:
        accounts = _decode_strs(a.pop("account_names"), a.pop("account_lengths"))
        symbols = _decode_strs(a.pop("symbol_names"), a.pop("symbol_lengths"))
        strs = {
            name: _decode_strs(a.pop(f"limit_{name}"), a.pop(f"limit_{name}_lengths")) for name in _LIMIT_STRS
        }
        kind = a.pop("limit_kind").tolist()
        floats = {name: a.pop(f"limit_{name}").tolist() for name in _LIMIT_FLOATS}
        disabled = a.pop("limit_disabled").astype(bool).tolist()
        effective = a.pop("limit_effective")
        vols = None
        if meta["vols"]:
            vols = Vols(
                a.pop("vols_symbol"),
                a.pop("vols_account"),
                float(meta["vols_firm"]),
                float(meta["vols_min_scale"]),
            )
    except KeyError as exc:
        raise CheckpointError(f"section {exc} missing") from None
    n = len(kind)
    if any(len(col) != n for col in (*strs.values(), *floats.values(), disabled)) or effective.shape[0] != n:
        raise CheckpointError("limit columns differ in length")
    limits: dict[str, Limit] = {}
    ids = strs["limit_id"]
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        for i in range(lo, hi):
            limits[ids[i]] = Limit(
                limit_id=ids[i],
                kind=kind[i],
                account=strs["account"][i],
                symbol=strs["symbol"][i],
                threshold=floats["threshold"][i],
                warn_fraction=floats["warn_fraction"][i],
                disabled=disabled[i],
                description=strs["description"][i],
                template=strs["template"][i],
                reference_volatility=floats["reference_volatility"][i],
                min_scale=floats["min_scale"][i],
            )
    if len(limits) != n:
        raise CheckpointError("duplicate limit ids")
    enabled = effective[~np.asarray(disabled, dtype=bool)] if n else effective
    missing = {
        "acct",
        "sym",
        "sym_books",
        "book",
        "book_pair",
        "ord_ht",
        "ordi",
        "free",
        "ring",
        "ctr",
    }
    missing |= {"ewma_last", "ewma_var", "ewma_count"}
    missing -= a.keys()
    if missing:
        raise CheckpointError(f"sections missing: {sorted(missing)}")
    a["book_ht"] = _book_table(a["book_pair"], int(a["ctr"][L.C_BOOKS]), int(meta["book_ht_rows"]))
    return _Loaded(seq, meta, a, accounts, symbols, limits, np.ascontiguousarray(enabled), vols)


def _book_table(book_pair: np.ndarray, n_books: int, rows: int) -> np.ndarray:
    """The (account, symbol) -> book table, rebuilt from the books' pairs at its stored capacity
    (books are never removed, so it holds exactly these keys; only their buckets may differ)."""
    if n_books > book_pair.shape[0] or rows < 16 or rows & (rows - 1) or rows < 2 * n_books:
        raise CheckpointError(f"{n_books} books do not fit a book table of {rows}")
    pairs = np.empty((n_books, 2), dtype=np.int64)
    pairs[:, 0] = (
        L.KEY_TAG | (book_pair[:n_books, L.BP_ACCOUNT] << L.SYMBOL_BITS) | book_pair[:n_books, L.BP_SYMBOL]
    )
    pairs[:, 1] = np.arange(n_books, dtype=np.int64)
    table = ht_new(rows // 2)  # exactly rows buckets (a power of two >= 16)
    ht_rehash(pairs, table)  # puts every row of pairs: a list of entries serves as the old table
    return table


def _check(engine: Engine, d: _Loaded) -> tuple[LimitBook, int]:
    """Whether engine can take a decoded checkpoint (CheckpointError if not), and what it needs
    that can still fail: the compiled limit book and the key salt. Changes nothing in engine."""
    cfg = engine.config
    a, meta = d.arrays, d.meta
    ctr = a["ctr"]
    if ctr.shape != (L.C_FIELDS,) or int(ctr[L.C_RING_KEEP]) != cfg.closed_order_retention:
        raise CheckpointError("counters do not fit this configuration")
    if a["ring"].shape[0] != cfg.closed_order_retention + cfg.max_batch:
        raise CheckpointError(
            f"closed-order ring of {a['ring'].shape[0]} entries, this configuration has "
            f"{cfg.closed_order_retention + cfg.max_batch} (closed_order_retention + max_batch)"
        )
    if len(d.accounts) > cfg.max_accounts or len(d.symbols) > cfg.max_symbols:
        raise CheckpointError(
            f"{len(d.accounts)} accounts and {len(d.symbols)} symbols, past this server's bounds "
            f"({cfg.max_accounts}, {cfg.max_symbols})"
        )
    account_ids = dict(zip(d.accounts, range(len(d.accounts)), strict=True))
    symbol_ids = dict(zip(d.symbols, range(len(d.symbols)), strict=True))
    if len(account_ids) != len(d.accounts) or len(symbol_ids) != len(d.symbols):
        raise CheckpointError("duplicate account or symbol names")
    enabled = d.effective

    def effective(meta_rows: np.ndarray, where: np.ndarray) -> np.ndarray:
        # compile_limits hands the enabled limits' rows in the order of the dict it is given.
        if meta_rows.shape[0] != enabled.shape[0]:
            raise CheckpointError(f"{enabled.shape[0]} effective thresholds for {meta_rows.shape[0]} limits")
        return enabled

    book = compile_limits(
        d.limits, account_ids, symbol_ids, int(meta["limits_version"]),
        effective=effective, vols=d.vols, owned=True,
    )  # fmt: skip

    seed = meta.get("seed")
    if not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise CheckpointError(f"bad key salt {seed!r}")
    return book, seed


def _install(engine: Engine, d: _Loaded, book: LimitBook, seed: int) -> None:
    """Put a checked checkpoint (_check) into engine: nothing here refuses."""
    cfg = engine.config
    a, meta = d.arrays, d.meta
    if seed != int(wire.SEED):  # the stored ids' keys: this process keys ids as they were keyed
        log.info("adopting the checkpoint's key salt for client_order_ids and names")
        adopt_seed(seed)
    engine.accounts.load(d.accounts)
    engine.symbols.load(d.symbols)
    s = engine._s
    s.acct, s.sym, s.sym_books = a["acct"], a["sym"], a["sym_books"]
    s.book, s.book_pair, s.book_ht = a["book"], a["book_pair"], a["book_ht"]
    s.ord_ht, s.ordi, s.free, s.ring = a["ord_ht"], a["ordi"], a["free"], a["ring"]
    s.ordf = s.ordi.view(np.float64)
    s.max_slots = int(meta["max_slots"])
    s.ctr[:] = a["ctr"]
    s.acct[:, L.A_LIM_TAG] = 0.0  # levels resolved again from the restored book (books: not stored)
    s.kernel_args = None
    if cfg.max_open_orders > s.max_slots:  # restarted with a higher bound: room for it, once
        s.raise_slot_bound(cfg.max_open_orders, cfg.closed_order_retention)
    elif cfg.max_open_orders < s.max_slots:
        log.warning(
            "checkpoint holds order slots for %d open orders, more than --max-open-orders %d: kept",
            s.max_slots,
            cfg.max_open_orders,
        )
    ewma = engine._ewma
    ewma.last, ewma.var, ewma.count = a["ewma_last"], a["ewma_var"], a["ewma_count"]
    engine._limits = book
    engine._state_version = int(meta["state_version"])
    engine._book_lists = BookLists()
    engine._model_ids = (None, None)
    engine._name_index = None
    engine.index_names()


def adopt_seed(seed: int) -> None:
    """Key ids and names in this process with ``seed`` (a checkpoint's: its order table and ring
    hold ids keyed with it) instead of the salt wire._hash drew at import. Start-up only, before
    anything keyed with the old salt is kept. Modules bound SEED by import (``from ._hash import
    SEED``), so every riskd_server module's binding of the old value is replaced. (Here, not in
    wire/: a change there is a change of numba source, which recompiles every kernel.)"""
    old, new = wire.SEED, np.uint64(seed)
    if new == old:
        return
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] == "riskd_server" and getattr(module, "SEED", None) is old:
            setattr(module, "SEED", new)  # noqa: B010 - any module that bound the name


# ------------------------------------------------------------------ prune


def prune(directory: Path, keep: int = 2) -> int:
    """Delete all but the newest ``keep`` checkpoints, and temp files of writes older than the
    newest (left by a crash; a write in progress has a newer seq); returns the files removed."""
    found = checkpoints(directory)
    doomed = [path for _, path in found[: max(len(found) - max(keep, 0), 0)]]
    newest = found[-1][0] if found else -1
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        names = []
    doomed += [
        Path(directory) / name for name in names if (m := _TMP.match(name)) and int(m.group(1)) < newest
    ]
    removed = 0
    for path in doomed:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


__all__ = [
    "BUFFERS",
    "Buffers",
    "Captured",
    "CheckpointError",
    "Forked",
    "adopt_seed",
    "capture",
    "capture_forked",
    "checkpoints",
    "file_name",
    "load_latest",
    "prune",
    "write",
]
