"""E-mail channel against a real SMTP server (aiosmtpd): recipients, Thai subject and body decoded,
STARTTLS when offered, refusal to send in clear when STARTTLS is required but missing."""

from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header
from email.utils import getaddresses

import pytest

from alerts.channels.base import DeliveryError, RetryPolicy
from alerts.channels.email import EmailChannel, SmtpConfig
from alerts.messages import MessageRenderer
from alerts.model import NotificationKind, Recipient
from tests.integration.alerts.conftest import MakeNotification
from tests.services.smtp import Received, SmtpServer

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=1.0, timeout=10.0)
GOVERNOR = Recipient("governor", "ผู้ว่าราชการจังหวัดเชียงใหม่", "email", "governor@cm.example.go.th")


def _mine(smtp: SmtpServer, notification_id: str) -> list[Received]:
    return [r for r in smtp.messages() if r.message["X-Warroom-Notification-Id"] == notification_id]


async def test_thai_mail_over_starttls(
    smtp_server: SmtpServer, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    if smtp_server.cert_path.exists() is False:
        pytest.skip("openssl is not available to make a test certificate")
    n = make_notification("5001", NotificationKind.ESCALATION, alerts=2)
    config = SmtpConfig(
        host=smtp_server.host,
        port=smtp_server.port,
        sender="warroom@moi.example.go.th",
        tls="starttls",
        tls_context=smtp_server.client_tls_context(),
    )
    channel = EmailChannel(renderer, config, FAST)
    await channel.deliver(n, GOVERNOR)
    (got,) = _mine(smtp_server, n.notification_id)
    assert got.tls, "the session switched to TLS before the message was sent"
    assert got.mail_from == "warroom@moi.example.go.th"
    assert got.rcpt_tos == [GOVERNOR.address]
    msg = got.message
    subject = str(msg["Subject"])
    assert subject.startswith("[warroom] ")
    assert "ยกระดับ" in subject and "อำเภอเมืองเชียงใหม่" in subject
    assert n.alerts[0].title_th in subject
    # RFC 2047 decoding (CPython's newer address parser keeps the fold between encoded-words
    # as a space inside a display name, so the standard decoder is the oracle here)
    raw_to = email.message_from_bytes(got.raw, policy=email.policy.compat32)["To"]
    to = str(make_header(decode_header(raw_to)))
    assert getaddresses([to]) == [(GOVERNOR.name, GOVERNOR.address)]
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    text = plain.get_content()
    for a in n.alerts:
        assert a.title_th in text and a.summary_th in text and a.alert_id in text
    assert "จังหวัดเชียงใหม่" in text
    assert "/d/warroom-district/?var-district=5001" in html.get_content()
    # the raw message is 7-bit clean: Thai travels encoded (RFC 2047 header, base64/QP body)
    assert all(b < 128 for b in got.raw)


async def test_auto_tls_upgrades_when_offered_and_plain_server_works(
    smtp_server: SmtpServer, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    n = make_notification("1001")
    ctx = smtp_server.client_tls_context() if smtp_server.cert_path.exists() else None
    config = SmtpConfig(host=smtp_server.host, port=smtp_server.port, tls="auto", tls_context=ctx)
    channel = EmailChannel(renderer, config, FAST)
    await channel.deliver(n, GOVERNOR)
    (got,) = _mine(smtp_server, n.notification_id)
    assert got.tls == smtp_server.cert_path.exists()

    plain_server = SmtpServer(starttls=False)
    plain_server.start()
    try:
        m = make_notification("1001")
        plain = SmtpConfig(host=plain_server.host, port=plain_server.port, tls="auto")
        await EmailChannel(renderer, plain, FAST).deliver(m, GOVERNOR)
        (got,) = _mine(plain_server, m.notification_id)
        assert not got.tls and "เขตพระนคร" in str(got.message["Subject"])
        # STARTTLS required but not offered: refuse instead of sending in clear
        strict = SmtpConfig(host=plain_server.host, port=plain_server.port, tls="starttls")
        with pytest.raises(DeliveryError) as info:
            await EmailChannel(renderer, strict, FAST).deliver(make_notification(), GOVERNOR)
        assert info.value.permanent
        assert len(plain_server.messages()) == 1
    finally:
        plain_server.close()


def test_bad_tls_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="tls"):
        SmtpConfig(tls="maybe")
