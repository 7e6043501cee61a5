"""Email digests of alerts: a bounded outbox and one background task that mails it, at most one
mail per interval, through aiosmtplib behind a circuit breaker.

The module this replaces called blocking ``smtplib`` from the alert path and froze the server for
seconds whenever the mail server was slow. Here the alert path only calls ``offer``: an O(1)
append to the outbox, never a wait. Everything that waits (connect, greeting, STARTTLS, login,
send) runs in the mailer's own task on the event loop, each phase bounded by ``timeout``, so a
mail server that hangs costs that task time and nothing else. A failed digest goes back to the
front of the outbox and is retried at the next interval; after ``fail_max`` failures in a row the
breaker opens and no connection is tried until ``reset_timeout`` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message

import aiosmtplib
from aiobreaker import CircuitBreaker, CircuitBreakerError, CircuitBreakerState

from .digest import build_digest, to_message
from .model import CRITICAL, Alert
from .outbox import Outbox

log = logging.getLogger("riskd.email")

MAX_PER_MAIL = 1_000  # alerts listed in one mail; the rest wait for the next interval
FAIL_MAX = 3  # failed sends in a row that open the breaker
RESET_TIMEOUT = 300.0  # seconds the breaker stays open before one trial send


@dataclass(frozen=True, slots=True, kw_only=True)
class MailerConfig:
    """Where and how digests are mailed (built from Settings by server.email_config)."""

    host: str
    sender: str  # the From header ("Risk <risk@example.com>" or a bare address)
    sender_address: str  # the envelope sender (bare address)
    recipients: tuple[str, ...]
    port: int = 25
    timeout: float = 10.0  # connect (with greeting, STARTTLS, login) and, again, send
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    min_severity: int = CRITICAL
    interval: float = 60.0
    outbox: int = 10_000
    max_per_mail: int = MAX_PER_MAIL
    fail_max: int = FAIL_MAX
    reset_timeout: float = RESET_TIMEOUT
    source: str = "riskd"  # names the server in subjects

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError("recipients: at least one")
        if self.timeout <= 0 or self.interval <= 0 or self.reset_timeout < 0:
            raise ValueError("timeout and interval must be > 0, reset_timeout >= 0")
        if self.outbox < 1 or self.max_per_mail < 1 or self.fail_max < 1:
            raise ValueError("outbox, max_per_mail and fail_max must be >= 1")


@dataclass(frozen=True, slots=True)
class MailerStats:
    """What the mailer has done; ``queued`` counts the digest being sent too."""

    queued: int
    sent_mails: int
    sent_alerts: int
    dropped: int  # alerts dropped because the outbox was full
    failures: int  # sends tried that failed (refused, timed out, rejected by the server)
    skipped: int  # intervals with alerts queued but no connection tried: the breaker was open
    breaker_state: str  # "closed", "open" or "half_open"
    last_error: str


class DigestMailer:
    """Mails alerts at or above ``config.min_severity`` as digests; see the module docstring.

    ``offer`` must be called on the event loop's thread (it is not locked). ``on_breaker_open`` is
    called once each time the breaker opens from closed (the start of an outage), not per failure,
    and may be set after construction.
    """

    def __init__(self, config: MailerConfig, *, on_breaker_open: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.on_breaker_open = on_breaker_open
        self._min_severity = config.min_severity
        self._outbox = Outbox(config.outbox)
        self._inflight = 0
        self._wake = asyncio.Event()
        self._breaker = CircuitBreaker(
            fail_max=config.fail_max,
            timeout_duration=timedelta(seconds=config.reset_timeout),
            name="riskd.email",
        )
        self._outage = False  # the breaker opened and no send has succeeded since
        self._task: asyncio.Task[None] | None = None
        self._sending = False  # the task is sending a digest (stop lets it finish)
        self._stopping = False
        self._next_send = 0.0  # loop time before which no mail is tried
        self._local_hostname = "localhost"
        self._attempted = False
        self._sent_mails = 0
        self._sent_alerts = 0
        self._failures = 0
        self._skipped = 0
        self._last_error = ""

    # ------------------------------------------------------------------------------ alert path

    def offer(self, alert: Alert) -> None:
        """Queue an alert for the next digest if severe enough: O(1), never waits."""
        if alert.severity < self._min_severity:
            return
        self._outbox.put(alert)
        if not self._wake.is_set():
            self._wake.set()

    def offer_all(self, alerts: Sequence[Alert]) -> None:
        """offer() each (the alert pipeline's output)."""
        for alert in alerts:
            self.offer(alert)

    def stats(self) -> MailerStats:
        return MailerStats(
            queued=len(self._outbox) + self._inflight,
            sent_mails=self._sent_mails,
            sent_alerts=self._sent_alerts,
            dropped=self._outbox.dropped,
            failures=self._failures,
            skipped=self._skipped,
            breaker_state=self._breaker.current_state.name.lower(),
            last_error=self._last_error,
        )

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the sending task. The EHLO name is looked up here, once, off the event loop."""
        if self._task is not None:
            return
        self._local_hostname = await _local_hostname(self.config.timeout)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="riskd-email")
        log.info(
            "email digests to %s via %s:%d, at most one per %gs",
            ", ".join(self.config.recipients),
            self.config.host,
            self.config.port,
            self.config.interval,
        )

    async def stop(self, timeout: float) -> MailerStats:
        """Stop within ``timeout``: a digest being sent may finish, then one last digest of what is
        queued goes out at once (not waiting for the interval; not while the breaker is open);
        what is left unsent is logged and returned in the stats."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True  # the task ends after the digest it is sending, if any
            if self._sending:
                # Cancelling a send the server may already have taken would mail it twice.
                await asyncio.wait({task}, timeout=max(timeout, 0.0))
            if not task.done():
                task.cancel()  # a digest still being sent goes back to the outbox
                self._last_error = f"shutdown: no answer within {timeout:g}s"
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = deadline - loop.time()
        if len(self._outbox) and left > 0:
            try:
                async with asyncio.timeout(left):
                    await self._send_digest()
            except TimeoutError:
                self._failures += 1
                self._last_error = f"shutdown: no answer within {timeout:g}s"
        stats = self.stats()
        if stats.queued:
            log.warning(
                "email stopped with %d alert(s) unsent (%d dropped, last error: %s)",
                stats.queued,
                stats.dropped,
                stats.last_error or "none",
            )
        return stats

    # ------------------------------------------------------------------------------ sending

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            delay = self._next_send - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # what arrives meanwhile joins this digest
            self._wake.clear()
            if not len(self._outbox):
                continue
            self._next_send = loop.time() + self.config.interval
            self._sending = True
            try:
                await self._send_digest()
            except Exception:  # a bug must not end email for the life of the server
                log.exception("email digest failed unexpectedly")
            finally:
                self._sending = False
            if self._stopping:
                return
            if len(self._outbox):
                self._wake.set()

    async def _send_digest(self) -> None:
        """Mail one digest of the oldest queued alerts; on any failure they go back in front."""
        config = self.config
        outbox = self._outbox
        batch = outbox.take(config.max_per_mail)
        dropped = outbox.unreported
        self._inflight = len(batch)
        self._attempted = False
        delivered = False
        try:
            digest = build_digest(
                batch, dropped=dropped, remaining=len(outbox), capacity=outbox.capacity, source=config.source
            )
            message = to_message(digest, config.sender, config.recipients)
            await self._breaker.call_async(self._deliver, message)
            delivered = True
        except CircuitBreakerError as exc:
            if self._attempted:  # this failure opened the breaker
                self._failed(exc.__cause__ or exc, len(batch))
            else:
                self._skipped += 1
                log.debug("email breaker open: %d alert(s) wait", len(batch) + len(outbox))
        except Exception as exc:
            self._failed(exc, len(batch))
        finally:
            self._inflight = 0
            if delivered:
                outbox.reported(dropped)
                self._sent_mails += 1
                self._sent_alerts += len(batch)
            else:
                outbox.restore(batch)  # also when cancelled (stop)
        if delivered and self._outage:
            self._outage = False
            log.info("email delivery restored")
        if not self._outage and self._breaker.current_state == CircuitBreakerState.OPEN:
            self._outage = True
            self._breaker_opened()

    async def _deliver(self, message: Message) -> None:
        """Connect (greeting, STARTTLS, login) within timeout, then send within timeout."""
        config = self.config
        self._attempted = True
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            timeout=config.timeout,
            start_tls=config.starttls,
            username=config.username or None,
            password=config.password or None,
            local_hostname=self._local_hostname,
        )
        try:
            async with asyncio.timeout(config.timeout):
                await smtp.connect()
            async with asyncio.timeout(config.timeout):
                refused, _ = await smtp.send_message(
                    message, sender=config.sender_address, recipients=list(config.recipients)
                )
            if refused:  # some recipients refused, the others took it: not worth a resend
                log.warning("email digest refused for %s", ", ".join(sorted(refused)))
            with contextlib.suppress(Exception):  # the mail is accepted; QUIT is a courtesy
                async with asyncio.timeout(config.timeout):
                    await smtp.quit()
        finally:
            smtp.close()

    def _failed(self, exc: BaseException, count: int) -> None:
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}".strip()
        log.warning(
            "email digest of %d alert(s) not sent (breaker %s, %d queued): %s",
            count,
            self._breaker.current_state.name.lower(),
            len(self._outbox),
            self._last_error,
        )

    def _breaker_opened(self) -> None:
        reason = (
            f"email breaker opened after {self.config.fail_max} failed send(s) to "
            f"{self.config.host}:{self.config.port}; {len(self._outbox)} alert(s) queued; "
            f"last error: {self._last_error}"
        )
        log.error("%s", reason)
        callback = self.on_breaker_open
        if callback is not None:
            try:
                callback(reason)
            except Exception:
                log.exception("on_breaker_open callback failed")


async def _local_hostname(timeout: float) -> str:
    """This host's name for EHLO: socket.getfqdn may ask DNS, so in a thread, bounded."""
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(socket.getfqdn)
    except (TimeoutError, OSError):
        return socket.gethostname() or "localhost"
