"""Digest mails: a batch of alerts -> subject and plain-text body -> an EmailMessage.

Pure (no I/O, no clock beyond the alerts' own times), so what a risk desk reads is tested without
an SMTP server. One digest lists its alerts oldest first, one line of facts and one of message per
alert; the subject counts them by severity and names the newest; the body also says how many
alerts the outbox dropped before this mail and how many more wait for the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid, parseaddr

from riskd.v1 import risk_pb2 as pb

from .model import Alert

SUBJECT_MAX = 180  # characters; mail clients cut long subjects anyway
MESSAGE_MAX = 1_000  # characters of one alert's message in the body


@dataclass(frozen=True, slots=True)
class Digest:
    """One mail's worth: ``alerts`` listed, ``dropped`` reported, ``remaining`` left for the next."""

    subject: str
    body: str
    alerts: int
    dropped: int
    remaining: int


def _enum_name(enum: str, prefix: str, value: int) -> str:
    found = pb.DESCRIPTOR.enum_types_by_name[enum].values_by_number.get(value)
    return str(value) if found is None else found.name.removeprefix(prefix)  # unknown: a newer proto


def severity_name(value: int) -> str:
    return _enum_name("Severity", "SEVERITY_", value)


def kind_name(value: int) -> str:
    return _enum_name("AlertKind", "ALERT_KIND_", value)


def check_name(value: int) -> str:
    return _enum_name("RiskCheck", "RISK_CHECK_", value)


def clean(text: str) -> str:
    """One line: anything unprintable (newlines, C0/C1 controls, odd Unicode spaces) becomes a
    space, runs of spaces one space."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())


def _number(value: float) -> str:
    return f"{value:.15g}"


def format_time(seconds: float) -> str:
    """Unix seconds -> 2025-01-02 10:11:12.345Z (UTC, milliseconds)."""
    try:
        stamp = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return f"t={seconds!r}"
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def alert_lines(alert: Alert) -> list[str]:
    """An alert as the body shows it: ``[seq] time SEVERITY KIND key=value...``, then its message."""
    parts = [f"[{alert.seq}]", format_time(alert.time), severity_name(alert.severity), kind_name(alert.kind)]
    for key, value in (
        ("account", alert.account),
        ("symbol", alert.symbol),
        ("limit", alert.limit_id),
        ("order", alert.client_order_id),
    ):
        if value:
            parts.append(f"{key}={clean(value)}")
    if alert.check:
        parts.append(f"check={check_name(alert.check)}")
    if alert.observed or alert.threshold:
        parts.append(f"observed={_number(alert.observed)} threshold={_number(alert.threshold)}")
    if alert.count != 1 or alert.summary:
        parts.append(f"count={alert.count}")
    if alert.summary:
        parts.append("summary")
    lines = [" ".join(parts)]
    message = clean(alert.message)
    if message:
        if len(message) > MESSAGE_MAX:
            message = message[: MESSAGE_MAX - 1] + "…"
        lines.append("    " + message)
    return lines


def severity_counts(alerts: Sequence[Alert]) -> str:
    """``2 CRITICAL, 1 WARNING``: most severe first."""
    counts = Counter(alert.severity for alert in alerts)
    return ", ".join(f"{counts[sev]} {severity_name(sev)}" for sev in sorted(counts, reverse=True))


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def build_digest(
    alerts: Sequence[Alert], *, dropped: int = 0, remaining: int = 0, capacity: int = 0, source: str = "riskd"
) -> Digest:
    """The digest of ``alerts`` (oldest first): ``dropped`` alerts were lost before it (outbox of
    ``capacity`` full), ``remaining`` more wait for the next mail."""
    if not alerts:
        raise ValueError("a digest needs at least one alert")
    newest = alerts[-1]
    counts = severity_counts(alerts)
    who = " ".join(clean(part) for part in (newest.account, newest.symbol) if part)
    subject = f"{source}: {_plural(len(alerts), 'alert')} ({counts})"
    if dropped:
        subject += f", {dropped:,} dropped"
    if remaining:
        subject += f", {remaining:,} more queued"
    subject += f"; newest: {severity_name(newest.severity)} {kind_name(newest.kind)}"
    if who:
        subject += f" {who}"
    if newest.message:
        subject += f": {clean(newest.message)}"
    subject = clean(subject)
    if len(subject) > SUBJECT_MAX:
        subject = subject[: SUBJECT_MAX - 1] + "…"

    head = [
        f"{source} alert digest: {_plural(len(alerts), 'alert')} ({counts}), oldest first, "
        f"seq {alerts[0].seq} to {newest.seq}."
    ]
    if dropped:
        bound = f" ({capacity:,} alerts)" if capacity else ""
        head.append(
            f"{_plural(dropped, 'older alert')} {'was' if dropped == 1 else 'were'} dropped before this "
            f"mail: the email outbox{bound} was full."
        )
    if remaining:
        head.append(
            f"{_plural(remaining, 'more alert')} {'is' if remaining == 1 else 'are'} queued for the next mail."
        )
    body = [*head, ""]
    for alert in alerts:
        body.extend(alert_lines(alert))
    return Digest(
        subject=subject, body="\n".join(body) + "\n", alerts=len(alerts), dropped=dropped, remaining=remaining
    )


def to_message(digest: Digest, sender: str, recipients: Sequence[str]) -> Message:
    """A plain-text mail of the digest: UTF-8, quoted-printable (long lines stay within SMTP's
    limit), the subject RFC 2047-encoded by ``Header`` (the newer EmailMessage folding changes the
    spacing of non-ASCII subjects)."""
    charset = Charset("utf-8")
    charset.body_encoding = QP
    message = MIMEText(digest.body, "plain", charset)  # type: ignore[arg-type]  # a Charset is accepted
    name, address = parseaddr(sender)
    message["From"] = formataddr((name, address), charset="utf-8")
    message["To"] = ", ".join(recipients)
    message["Subject"] = Header(digest.subject, "utf-8")  # type: ignore[assignment]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # A domain given: make_msgid would otherwise ask DNS for this host's name (socket.getfqdn).
    message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or "riskd.invalid")
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to machine mail
    return message
