"""The journal's ``interval`` fsync as a loop that never holds the GIL.

A Python sync thread wakes every 10 ms and needs the GIL each time, around its fdatasync; on a
busy 2-core machine each hand-over can leave the event loop waiting for the GIL and then for a
core. Measured with a one-order CheckOrderStream at 2,000 msg/s (20 s runs): p99 5.9-125 ms
with that thread against 3.0-4.9 ms with ``journal_fsync = none``, and 2.8-8.8 ms with the same
fdatasyncs made from another process. So the loop is compiled by numba (nogil) and calls
fdatasync, fsync, close and usleep from libc: the GIL is taken once when its thread starts
and once when it returns.

It shares its state with the appender (Journal) through one int64 array, ``control``, and a
ring of retired segment descriptors. The appender only ever stores; the loop clears DIRTY and
NEW_ENTRY, advances TAIL and closes what it synced. Store order on the appender's side (a roll:
FD, then the ring entry, then HEAD) and the loop's retry when the descriptor it read was replaced
keep the two consistent without a lock.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit, types

# libc's calls by symbol name (resolved when the code is linked, so numba can cache it; ctypes
# function pointers would make every process compile the loop again).
_fdatasync = types.ExternalFunction("fdatasync", types.intc(types.intc))
_fsync = types.ExternalFunction("fsync", types.intc(types.intc))
_close = types.ExternalFunction("close", types.intc(types.intc))
_usleep = types.ExternalFunction("usleep", types.intc(types.uintc))

# control slots
STOP = 0  # set by the appender: the loop returns at its next tick
FD = 1  # the open segment (replaced on a roll)
DIRTY = 2  # written since the last sync
NEW_ENTRY = 3  # a segment was created: fsync the directory
DIR_FD = 4  # the journal directory, open for the loop's life
SYNCS = 5  # syncs done
FAILED = 6  # the descriptor whose sync failed (-1: none); the loop has returned
INTERVAL_US = 7
HEAD = 8  # retired descriptors pushed (ring[i % RING] for TAIL <= i < HEAD)
TAIL = 9  # retired descriptors synced and closed
CONTROL_SLOTS = 10
# Retired segments waiting for a tick; a roll that finds the ring full syncs its own (never at 64 MB
# a segment).
RING = 64
# usleep's longest sleep (POSIX: below one second); a longer interval is slept in steps of it, so a
# huge journal_fsync_interval_ms neither wraps the 32-bit argument nor keeps close() waiting.
MAX_SLEEP_US = 999_999


@njit(nogil=True, cache=True)
def sync_tick(control: np.ndarray, ring: np.ndarray) -> bool:  # pragma: no cover - jitted
    """One tick: when something was written, fsync and close the retired segments, fdatasync the
    open one and, after a roll, the directory. False (and FAILED set) when a sync failed."""
    if control[DIRTY] == 0:
        return True
    control[DIRTY] = 0
    while control[TAIL] < control[HEAD]:
        slot = control[TAIL] % RING
        old = ring[slot]
        if old < 0:  # pushed but its entry not visible yet: next tick
            control[DIRTY] = 1
            break
        if _fsync(old) != 0:
            control[FAILED] = old
            return False
        _close(old)
        ring[slot] = -1
        control[TAIL] += 1
    fd = control[FD]
    if fd >= 0 and _fdatasync(fd) != 0:
        again = control[FD]
        if again == fd or _fdatasync(again) != 0:  # not a descriptor replaced under us: a real failure
            control[FAILED] = again
            return False
    if control[NEW_ENTRY] != 0:
        control[NEW_ENTRY] = 0
        if _fsync(control[DIR_FD]) != 0:
            control[FAILED] = control[DIR_FD]
            return False
    control[SYNCS] += 1
    return True


@njit(nogil=True, cache=True)
def sync_loop(control: np.ndarray, ring: np.ndarray) -> None:  # pragma: no cover - jitted
    """Tick every INTERVAL_US until STOP is set (close() then syncs what is left) or a sync fails."""
    while control[STOP] == 0:
        left = control[INTERVAL_US]
        while left > 0 and control[STOP] == 0:
            step = min(left, MAX_SLEEP_US)
            _usleep(step)
            left -= step
        if control[STOP] != 0 or not sync_tick(control, ring):
            return


def new_control(fd: int, dir_fd: int, interval: float) -> tuple[np.ndarray, np.ndarray]:
    control = np.zeros(CONTROL_SLOTS, dtype=np.int64)
    control[FD] = fd
    control[DIR_FD] = dir_fd
    control[FAILED] = -1
    control[INTERVAL_US] = max(1, round(interval * 1e6))
    return control, np.full(RING, -1, dtype=np.int64)


def warm_up() -> None:
    """Compile (or load from numba's cache) the loop and its tick: a stopped loop returns at once."""
    idle = np.zeros(CONTROL_SLOTS, dtype=np.int64)
    idle[STOP] = 1
    sync_loop(idle, np.full(RING, -1, dtype=np.int64))


def start(control: np.ndarray, ring: np.ndarray) -> threading.Thread:
    """The loop on its own thread (compiled, or loaded from numba's cache, before it starts)."""
    warm_up()
    thread = threading.Thread(target=sync_loop, args=(control, ring), name="journal-fsync", daemon=True)
    thread.start()
    return thread
