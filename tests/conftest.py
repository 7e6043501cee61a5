"""Test plugins: fix_pg (a real PostgreSQL), fix_engine_server (a real gRPC server over an Engine)."""

pytest_plugins = ["fix_pg", "fix_engine_server"]
