"""E-mail over SMTP with aiosmtplib: STARTTLS when the server offers it, UTF-8 Thai throughout.

Each recipient gets its own message (one outbox item each). The Message-ID is derived from the
notification and the recipient, so a retry after an unseen "250 OK" is recognisable as the
same message by mail systems that de-duplicate.
"""

from __future__ import annotations

import hashlib
import html
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

import aiosmtplib

from alerts.channels.base import Channel, DeliveryError, RetryPolicy
from alerts.messages import MessageRenderer
from alerts.model import Notification, Recipient
from streams.timeutil import from_ms

__all__ = ["AckLinkMaker", "EmailChannel", "SmtpConfig", "build_message"]

#: (notification, recipient) -> [(alert title, signed acknowledge link)] (alerts/ack_links.py)
AckLinkMaker = Callable[[Notification, Recipient], list[tuple[str, str]]]

_TLS_MODES = ("auto", "starttls", "ssl", "none")


@dataclass(frozen=True)
class SmtpConfig:
    """tls: auto (STARTTLS when offered), starttls (required), ssl (implicit TLS, port 465),
    none (plain; loopback relays only). User and password come from the environment."""

    host: str = "localhost"
    port: int = 25
    sender: str = "warroom@localhost"
    sender_name: str = "warroom ศูนย์ปฏิบัติการ"
    username: str = ""
    password: str = ""
    tls: str = "auto"
    validate_certs: bool = True
    tls_context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if self.tls not in _TLS_MODES:
            raise ValueError(f"SMTP tls must be one of {', '.join(_TLS_MODES)}, not {self.tls!r}")


def _message_id(notification_id: str, address: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", notification_id)[:120]
    tag = hashlib.sha256(address.encode()).hexdigest()[:12]
    return f"<{safe}.{tag}@warroom>"


def build_message(
    notification: Notification,
    recipient: Recipient,
    renderer: MessageRenderer,
    config: SmtpConfig,
    ack_links: list[tuple[str, str]] | None = None,
) -> EmailMessage:
    """Subject and From name RFC 2047-encoded, body text/plain + text/html in UTF-8; with
    `ack_links`, one signed acknowledge link per alert (opening it asks for confirmation)."""
    msg = EmailMessage()
    msg["Subject"] = renderer.subject(notification)
    msg["From"] = formataddr((config.sender_name, config.sender))
    msg["To"] = formataddr((recipient.name, recipient.address))
    msg["Date"] = format_datetime(from_ms(notification.created_at_ms))
    msg["Message-ID"] = _message_id(notification.notification_id, recipient.address)
    msg["X-Warroom-Notification-Id"] = notification.notification_id
    msg["X-Warroom-District"] = notification.district_code
    msg["X-Warroom-Kind"] = str(notification.kind)
    text, body_html = renderer.text(notification, limit=None), renderer.html(notification)
    if ack_links:
        text += "\n\nกดรับทราบการแจ้งเตือน (acknowledge) — เปิดลิงก์แล้วกดปุ่มยืนยัน:\n"
        text += "\n".join(f"- {title}: {url}" for title, url in ack_links)
        items = "".join(
            f'<li><a href="{html.escape(url)}">รับทราบ: {html.escape(title)}</a></li>'
            for title, url in ack_links
        )
        body_html = body_html.replace(
            "</body>", f"<p>กดรับทราบการแจ้งเตือน (acknowledge):</p><ul>{items}</ul></body>"
        )
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(body_html, subtype="html", charset="utf-8")
    return msg


class EmailChannel(Channel):
    """Recipient address: an e-mail address."""

    name = "email"

    def __init__(
        self,
        renderer: MessageRenderer,
        config: SmtpConfig,
        retry: RetryPolicy | None = None,
        ack_links: AckLinkMaker | None = None,
    ) -> None:
        super().__init__(renderer, retry)
        self.config = config
        self.ack_links = ack_links

    async def send_once(self, notification: Notification, recipient: Recipient) -> None:
        c = self.config
        links = self.ack_links(notification, recipient) if self.ack_links is not None else None
        message = build_message(notification, recipient, self.renderer, c, links)
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.tls == "ssl",
            start_tls=False,  # decided below, once we know what the server offers
            validate_certs=c.validate_certs,
            tls_context=c.tls_context,
            timeout=self.retry.timeout,
        )
        try:
            async with client:
                await client.ehlo()
                if c.tls in ("auto", "starttls"):
                    if client.supports_extension("starttls"):
                        await client.starttls()
                    elif c.tls == "starttls":
                        raise aiosmtplib.SMTPNotSupported(
                            "the server does not offer STARTTLS and tls=starttls forbids "
                            "sending in clear"
                        )
                if c.username:
                    await client.login(c.username, c.password)
                await client.send_message(message, sender=c.sender, recipients=[recipient.address])
        except aiosmtplib.SMTPNotSupported as exc:
            # e.g. tls=starttls but the server offers no STARTTLS: never send in clear instead
            raise DeliveryError(f"SMTP: {exc}", permanent=True) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # 5xx for the address (no such mailbox, bad domain): this recipient never will
            codes = [e.code for e in exc.recipients]
            raise DeliveryError(
                f"SMTP refused the recipient: {exc}", refused=all(code >= 500 for code in codes)
            ) from exc
        except aiosmtplib.SMTPDataError as exc:
            # 5xx after the message was sent (too large, rejected as spam): this one never will
            raise DeliveryError(f"SMTP {exc.code}: {exc.message}", refused=exc.code >= 500) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx: try again later; 5xx (a failed login, our sender refused): fix the
            # configuration first (the item stays queued until then)
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, TimeoutError, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from exc
