"""Prometheus metrics (``riskd serve --metrics-listen HOST:PORT``): server time per RPC
(``rpc``: no prometheus_client import, so the gRPC wiring can use it cheaply), metric families
from a snapshot (``families``), the endpoint and its registration API (``exporter``), riskd's
own sources (``sources``). docs/metrics.md lists every metric."""
