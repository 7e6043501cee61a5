"""riskd server: gRPC servicer, risk engine, numba kernels and the PostgreSQL store."""

from ._numba_cache import configure as _configure_numba_cache

_configure_numba_cache()  # before any kernel module is imported (see _numba_cache)
