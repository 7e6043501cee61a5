"""Test plugins: fix_pg (a real PostgreSQL), fix_engine_server (a real gRPC server over an Engine),
fix_server (the full riskd server on a fresh database), fix_dashboard (`riskd dashboard`
processes, the canned RiskService, chromium)."""

pytest_plugins = ["fix_pg", "fix_server", "fix_engine_server", "fix_dashboard"]
