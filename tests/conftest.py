"""Test plugins: fix_pg (a real PostgreSQL), fix_engine_server (a real gRPC server over an Engine),
fix_server (the full riskd server on a fresh database)."""

pytest_plugins = ["fix_pg", "fix_server", "fix_engine_server"]


def pytest_sessionstart(session) -> None:
    """Drop cached kernels built from other kernel sources before any test calls one: numba alone
    misses a change in a file a kernel imports (riskd_server.warm.refresh_cache)."""
    from riskd_server.warm import refresh_cache

    refresh_cache()
