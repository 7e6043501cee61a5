"""Email digests through a real SMTP server (aiosmtpd on a loopback port, in its own thread).

What the desk relies on: the digest arrives with the right alerts and subject; severity filtering;
at most one mail per interval; an outage keeps the alerts and delivers them in order afterwards;
the breaker opens once and then stops connecting; a server that accepts TCP and never answers
costs a timeout in the mailer's task and nothing on the event loop; the outbox bound drops the
oldest and the next digest says so; stop() is bounded by its timeout.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from riskd.v1 import risk_pb2 as pb
from riskd_server.alerts.mailer import DigestMailer, MailerConfig
from riskd_server.alerts.model import CRITICAL, INFO, WARNING, Alert

SEQ_LINE = re.compile(r"^\[(\d+)\] ", re.MULTILINE)


# ---------------------------------------------------------------------------------- SMTP server


@dataclass(frozen=True)
class Mail:
    at: float  # time.monotonic() when the server had the whole message
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return str(self.message.get_content())

    @property
    def seqs(self) -> list[int]:
        return [int(s) for s in SEQ_LINE.findall(self.body)]


class Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.mails.append(Mail(time.monotonic(), envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def seqs(self) -> list[int]:
        return [seq for mail in self.mails for seq in mail.seqs]


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    """aiosmtpd on 127.0.0.1:port; stop() and start() again on the same port for an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def config(port: int, **overrides: Any) -> MailerConfig:
    base = MailerConfig(
        host="127.0.0.1",
        port=port,
        sender="riskd <riskd@example.com>",
        sender_address="riskd@example.com",
        recipients=("desk@example.com", "ops@example.org"),
        timeout=2.0,
        interval=0.2,
        fail_max=2,
        reset_timeout=0.5,
    )
    return replace(base, **overrides)


def alert(seq: int, severity: int = CRITICAL, **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "time": time.time(),
        "kind": pb.ALERT_KIND_TRADING_STATE,
        "message": f"alert {seq}",
    }
    fields.update(kw)
    return Alert(seq=seq, severity=severity, **fields)


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro_fn())


async def with_mailer(cfg: MailerConfig, body: Callable[[DigestMailer], Awaitable[None]], **kw: Any) -> None:
    mailer = DigestMailer(cfg, **kw)
    await mailer.start()
    try:
        await body(mailer)
    finally:
        await mailer.stop(timeout=1.0)


# ---------------------------------------------------------------------------------- delivery


def test_digest_arrives_with_the_alerts_and_subject(smtp: SmtpServer) -> None:
    async def body(mailer: DigestMailer) -> None:
        mailer.offer(alert(1, account="ACC1"))
        mailer.offer(alert(2, kind=pb.ALERT_KIND_BREAKER_OPEN, message="store breaker open"))
        mailer.offer(alert(3, account="ACC2", symbol="AAPL", message="ACC2 halted by hand"))
        await until(lambda: len(smtp.inbox.mails) == 1, what="the digest")
        await until(lambda: mailer.stats().sent_mails == 1, what="the send to finish")

    run(lambda: with_mailer(config(smtp.port), body))
    (mail,) = smtp.inbox.mails
    assert mail.subject == (
        "riskd: 3 alerts (3 CRITICAL); newest: CRITICAL TRADING_STATE ACC2 AAPL: ACC2 halted by hand"
    )
    assert mail.seqs == [1, 2, 3]
    assert mail.message["From"] == "riskd <riskd@example.com>"
    assert mail.message["To"] == "desk@example.com, ops@example.org"
    assert mail.mail_from == "riskd@example.com"
    assert mail.rcpt_tos == ["desk@example.com", "ops@example.org"]
    assert "[2] " in mail.body and " BREAKER_OPEN" in mail.body and "store breaker open" in mail.body


@pytest.mark.parametrize(
    ("least", "expected"),
    [(INFO, [1, 2, 3, 4]), (WARNING, [2, 3]), (CRITICAL, [3])],
    ids=["info", "warning", "critical"],
)
def test_min_severity(smtp: SmtpServer, least: int, expected: list[int]) -> None:
    async def body(mailer: DigestMailer) -> None:
        for seq, severity in enumerate((INFO, WARNING, CRITICAL, INFO), start=1):
            mailer.offer(alert(seq, severity))
        await until(lambda: len(smtp.inbox.mails) == 1, what="the digest")
        await asyncio.sleep(0.3)  # nothing else comes
        assert mailer.stats().queued == 0

    run(lambda: with_mailer(config(smtp.port, min_severity=least), body))
    assert smtp.inbox.seqs() == expected


def test_one_mail_per_interval(smtp: SmtpServer) -> None:
    interval = 0.5
    offered: list[int] = []

    async def body(mailer: DigestMailer) -> None:
        start = time.monotonic()
        seq = 0
        while time.monotonic() - start < 1.6:  # a steady stream of alerts
            seq += 1
            mailer.offer(alert(seq))
            offered.append(seq)
            await asyncio.sleep(0.02)
        await until(lambda: smtp.inbox.seqs() == offered, timeout=5, what="every alert")

    run(lambda: with_mailer(config(smtp.port, interval=interval), body))
    mails = smtp.inbox.mails
    gaps = [b.at - a.at for a, b in pairwise(mails)]
    assert 3 <= len(mails) <= 5, gaps  # 1.6 s of alerts: the first at once, then one per 0.5 s
    # Send times are exact, receipt times jitter (a loaded CI machine delayed one receipt by 0.13 s);
    # without the interval the gaps would be the 0.02 s between alerts.
    assert min(gaps) >= interval / 2, gaps
    assert smtp.inbox.seqs() == offered  # everything, in order, no repeats


def test_a_full_mail_leaves_the_rest_for_the_next(smtp: SmtpServer) -> None:
    async def body(mailer: DigestMailer) -> None:
        for seq in range(1, 6):
            mailer.offer(alert(seq))
        await until(lambda: len(smtp.inbox.mails) == 2, what="two digests")

    run(lambda: with_mailer(config(smtp.port, max_per_mail=3), body))
    first, second = smtp.inbox.mails
    assert (first.seqs, second.seqs) == ([1, 2, 3], [4, 5])
    assert "2 more alerts are queued for the next mail." in first.body
    assert ", 2 more queued;" in first.subject
    assert "queued" not in second.body


def test_outbox_bound_drops_the_oldest_and_the_next_digest_says_so(smtp: SmtpServer) -> None:
    async def scenario() -> None:
        mailer = DigestMailer(config(smtp.port, outbox=5))
        for seq in range(1, 9):  # not started yet: the outbox fills and overflows
            mailer.offer(alert(seq))
        stats = mailer.stats()
        assert (stats.queued, stats.dropped) == (5, 3)
        await mailer.start()
        try:
            await until(lambda: len(smtp.inbox.mails) == 1, what="the digest")
            mailer.offer(alert(9))
            await until(lambda: len(smtp.inbox.mails) == 2, what="the second digest")
        finally:
            await mailer.stop(timeout=1.0)
        assert mailer.stats().dropped == 3

    run(scenario)
    first, second = smtp.inbox.mails
    assert first.seqs == [4, 5, 6, 7, 8]
    assert "3 older alerts were dropped before this mail: the email outbox (5 alerts) was full." in first.body
    assert ", 3 dropped;" in first.subject
    assert second.seqs == [9]
    assert "dropped" not in second.body and "dropped" not in second.subject  # told once


# ---------------------------------------------------------------------------------- outages


def test_outage_keeps_the_alerts_and_delivers_them_in_order(smtp: SmtpServer) -> None:
    opened: list[str] = []

    async def body(mailer: DigestMailer) -> None:
        mailer.offer(alert(1))
        await until(lambda: mailer.stats().sent_mails == 1, what="the first digest")
        await asyncio.to_thread(smtp.stop)  # outage: connections refused
        for seq in (2, 3, 4):
            mailer.offer(alert(seq))
        await until(lambda: mailer.stats().breaker_state == "open", what="the breaker to open")
        for seq in (5, 6, 7):
            mailer.offer(alert(seq))
        # longer than the reset timeout: at least one half-open trial fails and re-opens it
        await until(lambda: mailer.stats().failures >= 3, what="a failed trial")
        assert mailer.stats().queued == 6
        await asyncio.to_thread(smtp.start)
        await until(lambda: mailer.stats().sent_alerts == 7, what="delivery after the outage")
        assert smtp.inbox.seqs() == list(range(1, 8))
        stats = mailer.stats()
        assert (stats.queued, stats.sent_alerts, stats.breaker_state) == (0, 7, "closed")

    run(lambda: with_mailer(config(smtp.port, max_per_mail=4), body, on_breaker_open=opened.append))
    assert [mail.seqs for mail in smtp.inbox.mails] == [[1], [2, 3, 4, 5], [6, 7]]
    assert len(opened) == 1  # once per outage, not per failure nor per failed trial
    assert "email breaker opened after 2 failed send(s)" in opened[0]


async def _listener(
    port: int, on_connect: Callable[[asyncio.StreamWriter], Awaitable[None]]
) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await on_connect(writer)

    return await asyncio.start_server(handle, "127.0.0.1", port)


def test_open_breaker_makes_no_connections() -> None:
    port = free_port()
    connections = 0
    opened: list[str] = []

    async def hang_up(writer: asyncio.StreamWriter) -> None:  # an SMTP service that is down
        nonlocal connections
        connections += 1
        writer.write(b"421 service not available\r\n")
        writer.close()

    async def scenario() -> None:
        server = await _listener(port, hang_up)
        mailer = DigestMailer(config(port, interval=0.05, reset_timeout=1.5), on_breaker_open=opened.append)
        await mailer.start()
        try:
            mailer.offer(alert(1))
            await until(lambda: bool(opened), what="the breaker to open")
            assert connections == 2  # fail_max
            await asyncio.sleep(0.8)  # ~16 intervals with the breaker open
            stats = mailer.stats()
            assert connections == 2
            assert (stats.failures, stats.breaker_state, stats.queued) == (2, "open", 1)
            assert stats.skipped >= 8
            await until(lambda: connections == 3, timeout=3, what="the half-open trial")
            await asyncio.sleep(0.2)
            assert connections == 3 and mailer.stats().breaker_state == "open"
        finally:
            await mailer.stop(timeout=0.5)
            server.close()
            await server.wait_closed()

    run(scenario)
    assert len(opened) == 1
    assert "421" in opened[0]


def _silent_port() -> socket.socket:
    """A listening socket nobody accepts from: the kernel completes the TCP handshake, then silence."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_a_server_that_never_answers_times_out_without_stalling_the_loop() -> None:
    timeout = 1.0
    with closing(_silent_port()) as silent:
        port = silent.getsockname()[1]

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            mailer = DigestMailer(config(port, timeout=timeout))
            await mailer.start()
            lags: list[float] = []
            try:
                started = loop.time()
                mailer.offer(alert(1))
                while mailer.stats().failures == 0:
                    before = loop.time()
                    await asyncio.sleep(0.005)
                    lags.append(loop.time() - before - 0.005)
                    assert loop.time() - started < 5 * timeout, "the send never timed out"
                took = loop.time() - started
                stats = mailer.stats()
            finally:
                await mailer.stop(timeout=0.2)
            assert max(lags) < 0.3, max(lags)  # blocking for the timeout would show >= 1 s
            assert len(lags) > 50  # the loop kept turning during the whole wait
            assert timeout * 0.9 <= took <= timeout * 3, took
            assert stats.queued == 1  # kept for the next interval
            assert "Timeout" in stats.last_error or "Timed out" in stats.last_error, stats.last_error

        run(scenario)


def test_stop_with_the_server_down_returns_within_its_timeout() -> None:
    with closing(_silent_port()) as silent:
        port = silent.getsockname()[1]

        async def scenario() -> None:
            mailer = DigestMailer(config(port, timeout=10.0))
            await mailer.start()
            for seq in (1, 2, 3):
                mailer.offer(alert(seq))
            await asyncio.sleep(0.2)  # the first digest is now waiting for a greeting
            assert mailer.stats().queued == 3
            started = time.monotonic()
            stats = await mailer.stop(timeout=0.5)
            took = time.monotonic() - started
            assert took < 1.5, took
            assert stats.queued == 3 and stats.sent_mails == 0
            assert "shutdown" in stats.last_error

        run(scenario)


def test_stop_with_nothing_listening_reports_the_unsent() -> None:
    async def scenario() -> None:
        mailer = DigestMailer(config(free_port()))
        await mailer.start()
        for seq in (1, 2):
            mailer.offer(alert(seq))
        started = time.monotonic()
        stats = await mailer.stop(timeout=2.0)
        assert time.monotonic() - started < 2.5
        assert stats.queued == 2 and stats.failures >= 1 and stats.sent_mails == 0

    run(scenario)


def test_stop_mails_what_is_queued_without_waiting_for_the_interval(smtp: SmtpServer) -> None:
    async def scenario() -> None:
        mailer = DigestMailer(config(smtp.port, interval=60.0))
        await mailer.start()
        mailer.offer(alert(1))
        await until(lambda: mailer.stats().sent_mails == 1, what="the first digest")
        mailer.offer(alert(2))
        mailer.offer(alert(3))
        await asyncio.sleep(0.1)
        assert len(smtp.inbox.mails) == 1  # the interval holds the rest back
        started = time.monotonic()
        stats = await mailer.stop(timeout=5.0)
        assert time.monotonic() - started < 2.0
        assert (stats.queued, stats.sent_mails, stats.sent_alerts) == (0, 2, 3)

    run(scenario)
    assert [mail.seqs for mail in smtp.inbox.mails] == [[1], [2, 3]]


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        config(25, recipients=())
    with pytest.raises(ValueError):
        config(25, outbox=0)
    with pytest.raises(ValueError):
        config(25, interval=0)
    assert "hunter2" not in repr(config(25, username="u", password="hunter2"))


# ---------------------------------------------------------------------------------- the server


@pytest.fixture
def riskd_settings(smtp: SmtpServer) -> dict[str, Any]:
    """The riskd_server fixture (tests/fix_server.py) with email on, to the aiosmtpd server."""
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_timeout": 2.0,
        "email_from": "riskd <riskd@example.com>",
        "email_to": "desk@example.com",
        "email_interval": 0.2,
    }


def test_the_server_mails_digests(riskd_server: Any, smtp: SmtpServer) -> None:
    mailer = riskd_server.running.mailer
    assert isinstance(mailer, DigestMailer)
    assert mailer.config.recipients == ("desk@example.com",)
    riskd_server.call(mailer.offer, alert(1, account="ACC1", message="ACC1 halted"))
    riskd_server.call(mailer.offer, alert(2, WARNING))  # below the default CRITICAL
    deadline = time.monotonic() + 10
    while not smtp.inbox.mails and time.monotonic() < deadline:
        time.sleep(0.02)
    (mail,) = smtp.inbox.mails
    assert mail.seqs == [1]
    assert mail.subject == "riskd: 1 alert (1 CRITICAL); newest: CRITICAL TRADING_STATE ACC1: ACC1 halted"
    riskd_server.call(mailer.offer, alert(3))
    riskd_server.stop()  # the cleanup stops the mailer: its last digest goes out at once
    assert [m.seqs for m in smtp.inbox.mails] == [[1], [3]]
