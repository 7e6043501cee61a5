"""Live risk dashboards, both clients of the risk server: `riskd dashboard` (web, SSE) and `riskd watch`.

One upstream subscription per process (SubscribeAlerts for every alert, StreamRiskSnapshots for
every account) feeds a bounded in-memory view (state.py); the web tier fans that view out to any
number of browsers (sse.py, web.py), the terminal tier renders it (watch.py). Only web.py imports
aiohttp and only watch.py imports rich: the rest needs grpcio and protobuf alone.
"""
