"""A small real grpc.aio RiskService for the dashboard tests: SubscribeAlerts, StreamRiskSnapshots
and QueryAlerts over canned data the test controls (not a mock of gRPC: a server on loopback).

It behaves as the issue specifies the real one: alerts numbered by seq, a bounded history,
after_seq replay with `missed`, snapshot streams whose first response holds every account and
later ones only the changed accounts. `stop()`/`start()` restart it on the same port with its
history kept, as a risk server restart would. Everything runs on the loop that calls start().
Also usable as a process (`python -m bench.canned_upstream PORT`) for benches and screenshots.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc

from riskd.v1 import risk_pb2 as pb
from riskd.v1 import risk_pb2_grpc as pb_grpc

_SEVERITY = {"INFO": 1, "WARNING": 2, "CRITICAL": 3}


def make_alert(seq: int, **fields: Any) -> pb.Alert:
    """An Alert from short field names: sev, kind, check (names without prefixes), account, ..."""
    alert = pb.Alert(
        seq=seq,
        severity=pb.Severity.Value("SEVERITY_" + fields.get("sev", "WARNING")),
        kind=pb.AlertKind.Value("ALERT_KIND_" + fields.get("kind", "CHECK_REJECT")),
        account=fields.get("account", ""),
        symbol=fields.get("symbol", ""),
        limit_id=fields.get("limit_id", ""),
        message=fields.get("message", f"alert {seq}"),
        observed=fields.get("observed", 0.0),
        threshold=fields.get("threshold", 0.0),
        count=fields.get("count", 1),
        summary=fields.get("summary", False),
        client_order_id=fields.get("order", ""),
    )
    if fields.get("check"):
        alert.check = pb.RiskCheck.Value("RISK_CHECK_" + fields["check"])
    alert.time.FromNanoseconds(int(fields.get("time", time.time()) * 1e9))
    return alert


def make_account(account: str, **fields: Any) -> pb.AccountSnapshot:
    snap = pb.AccountSnapshot(
        account=account,
        gross=fields.get("gross", 0.0),
        net=fields.get("net", 0.0),
        open_orders=fields.get("open_orders", 0),
        trading_state=pb.TradingState.Value("TRADING_STATE_" + fields.get("state", "ACTIVE")),
    )
    for symbol, qty, mark in fields.get("positions", ()):
        snap.positions.add(symbol=symbol, quantity=qty, mark=mark, value=qty * mark)
    for limit_id, kind, symbol, observed, threshold in fields.get("limits", ()):
        snap.closest_limits.add(
            limit_id=limit_id,
            kind=pb.RiskCheck.Value("RISK_CHECK_" + kind),
            symbol=symbol,
            observed=observed,
            threshold=threshold,
            utilisation=observed / threshold if threshold else 0.0,
        )
    return snap


class CannedRiskService(pb_grpc.RiskServiceServicer):
    def __init__(self, history: int = 1000) -> None:
        self.history: deque[pb.Alert] = deque(maxlen=history)
        self.seq = 0
        self.accounts: dict[str, pb.AccountSnapshot] = {}
        self.state_version = 0
        self.firm_state = pb.TRADING_STATE_ACTIVE
        self.alert_subscribers: set[asyncio.Queue[pb.SubscribeAlertsResponse]] = set()
        self.snapshot_subscribers: set[asyncio.Queue[list[pb.AccountSnapshot]]] = set()
        self.subscribe_requests: list[pb.SubscribeAlertsRequest] = []
        self.snapshot_requests: list[pb.StreamRiskSnapshotsRequest] = []
        self.query_requests: list[pb.QueryAlertsRequest] = []
        self.query_alerts = True  # False: QueryAlerts answers UNIMPLEMENTED (an older server)
        self.server: grpc.aio.Server | None = None
        self.port = 0

    # ------------------------------------------------------------------ the test's controls

    def raise_alert(self, **fields: Any) -> pb.Alert:
        self.seq += 1
        alert = make_alert(self.seq, **fields)
        self.history.append(alert)
        for queue in self.alert_subscribers:
            queue.put_nowait(pb.SubscribeAlertsResponse(alerts=[alert]))
        return alert

    def set_accounts(self, snapshots: Iterable[pb.AccountSnapshot]) -> None:
        changed = list(snapshots)
        self.state_version += 1
        for snap in changed:
            self.accounts[snap.account] = snap
        for queue in self.snapshot_subscribers:
            queue.put_nowait(changed)

    async def start(self, port: int = 0) -> int:
        self.server = grpc.aio.server()
        pb_grpc.add_RiskServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port or self.port}")
        await self.server.start()
        return self.port

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop(grace=None)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ RPCs

    async def SubscribeAlerts(
        self, request: pb.SubscribeAlertsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscribeAlertsResponse]:
        self.subscribe_requests.append(request)
        queue: asyncio.Queue[pb.SubscribeAlertsResponse] = asyncio.Queue()
        self.alert_subscribers.add(queue)
        try:
            await context.send_initial_metadata((("riskd-alert-seq", str(self.seq)),))  # as riskd does
            if request.after_seq:
                held = [a for a in self.history if a.seq > request.after_seq]
                oldest = self.history[0].seq if self.history else self.seq + 1
                missed = max(0, oldest - request.after_seq - 1)
                yield pb.SubscribeAlertsResponse(alerts=held, missed=missed)
            while True:
                yield await queue.get()
        finally:
            self.alert_subscribers.discard(queue)

    async def StreamRiskSnapshots(
        self, request: pb.StreamRiskSnapshotsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamRiskSnapshotsResponse]:
        self.snapshot_requests.append(request)
        queue: asyncio.Queue[list[pb.AccountSnapshot]] = asyncio.Queue()
        self.snapshot_subscribers.add(queue)
        try:
            yield self._snapshots(self.accounts.values())
            while True:
                yield self._snapshots(await queue.get())
        finally:
            self.snapshot_subscribers.discard(queue)

    def _snapshots(self, accounts: Iterable[pb.AccountSnapshot]) -> pb.StreamRiskSnapshotsResponse:
        return pb.StreamRiskSnapshotsResponse(
            accounts=list(accounts), state_version=self.state_version, firm_trading_state=self.firm_state
        )

    async def QueryAlerts(
        self, request: pb.QueryAlertsRequest, context: grpc.aio.ServicerContext
    ) -> pb.QueryAlertsResponse:
        self.query_requests.append(request)
        if not self.query_alerts:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "QueryAlerts is not implemented")
        size = request.page_size or 100
        newest = [a for a in reversed(self.history) if not request.before_seq or a.seq < request.before_seq]
        page = newest[:size]
        more = len(newest) > size
        return pb.QueryAlertsResponse(alerts=page, next_before_seq=page[-1].seq if more else 0)


def demo_data(service: CannedRiskService) -> None:
    """A desk's worth of accounts and alerts, for screenshots and the bench."""
    service.set_accounts(
        [
            make_account(
                "ACC-EQ-01", gross=8.42e6, net=3.1e6, open_orders=14, positions=[("AAPL", 12000, 187.3)],
                limits=[("eq01-gross", "MAX_GROSS_EXPOSURE", "", 8.42e6, 9e6),
                        ("eq01-pos-aapl", "MAX_POSITION", "AAPL", 12000, 15000),
                        ("eq01-net", "MAX_NET_EXPOSURE", "", 3.1e6, 6e6)],
            ),
            make_account(
                "ACC-FX-07", gross=2.1e7, net=-4.4e6, open_orders=3, state="REDUCING",
                positions=[("EURUSD", -4e6, 1.09)],
                limits=[("fx07-gross", "MAX_GROSS_EXPOSURE", "", 2.1e7, 2e7),
                        ("fx07-rate", "MAX_ORDER_RATE", "", 41, 50)],
            ),
            make_account(
                "ACC-DESK-3", gross=1.2e6, net=1.2e6, open_orders=2, positions=[("MSFT", 3000, 402.1)],
                limits=[("d3-qty", "MAX_ORDER_QUANTITY", "", 800, 1000),
                        ("d3-notional", "MAX_ORDER_NOTIONAL", "", 2.2e5, 5e5)],
            ),
            make_account(
                "ACC-ARB-12", gross=5.6e5, net=-1.1e4, open_orders=40, state="HALTED",
                limits=[("arb12-open", "MAX_OPEN_ORDERS", "", 40, 40)],
            ),
            make_account("ACC-MM-02", gross=3.3e6, net=2.0e5, open_orders=120,
                         limits=[("mm02-open", "MAX_OPEN_ORDERS", "", 120, 500),
                                 ("mm02-collar", "PRICE_COLLAR", "TSLA", 0.021, 0.05)]),
        ]
    )  # fmt: skip
    now = time.time()
    for i, fields in enumerate(
        [
            dict(sev="INFO", kind="LIMIT_CHANGED", account="ACC-DESK-3", limit_id="d3-qty",
                 message="limit d3-qty set: MAX_ORDER_QUANTITY 1000"),
            dict(sev="INFO", kind="CHECK_WARNING", check="MAX_GROSS_EXPOSURE", account="ACC-EQ-01",
                 limit_id="eq01-gross", observed=8.42e6, threshold=9e6,
                 message="gross exposure 8.42M is 94% of 9M"),
            dict(sev="WARNING", kind="CHECK_REJECT", check="MAX_ORDER_QUANTITY", account="ACC-DESK-3",
                 symbol="MSFT", limit_id="d3-qty", observed=1500, threshold=1000, order="o-7781",
                 message="order o-7781 quantity 1500 > 1000"),
            dict(sev="WARNING", kind="CHECK_REJECT", check="MAX_GROSS_EXPOSURE", account="ACC-FX-07",
                 limit_id="fx07-gross", observed=2.1e7, threshold=2e7, count=12, summary=True,
                 message="12 orders rejected: gross exposure 21M > 20M"),
            dict(sev="CRITICAL", kind="TRADING_STATE", account="ACC-FX-07",
                 message="account ACC-FX-07 set REDUCING (gross exposure breach)"),
            dict(sev="WARNING", kind="OVERFILL", account="ACC-MM-02", symbol="TSLA", order="mm-5521",
                 observed=300, threshold=200, message="fill of 300 for mm-5521 exceeds its open 200"),
            dict(sev="CRITICAL", kind="TRADING_STATE", account="ACC-ARB-12",
                 message="account ACC-ARB-12 HALTED by desk (max open orders)"),
            dict(sev="WARNING", kind="CHECK_REJECT", check="PRICE_COLLAR", account="ACC-MM-02", symbol="TSLA",
                 limit_id="mm02-collar", observed=0.061, threshold=0.05, order="mm-5530",
                 message="order mm-5530 price 6.1% from mark > 5%"),
        ]
    ):  # fmt: skip
        service.raise_alert(time=now - 60 + i * 7, **fields)


async def _serve(port: int) -> None:
    service = CannedRiskService()
    demo_data(service)
    await service.start(port)
    print(f"canned risk service on {service.target}", flush=True)
    assert service.server is not None
    await service.server.wait_for_termination()


if __name__ == "__main__":
    import sys

    asyncio.run(_serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
