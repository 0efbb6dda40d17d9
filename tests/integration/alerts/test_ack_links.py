"""Signed acknowledge links in e-mails, end to end: the mail goes through a real SMTP server
(aiosmtpd), the link is taken from the received message, a GET (what mail scanners do) shows a
Thai confirmation page and acknowledges nothing, the POST acknowledges once."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from alerts.ack_links import AckLinks, link_for
from alerts.ack_tokens import TokenSigner
from alerts.channels.base import RetryPolicy
from alerts.channels.email import EmailChannel, SmtpConfig
from alerts.messages import MessageRenderer
from alerts.model import Notification, NotificationKind, Recipient
from alerts.one_tap import AckOutcome, AckRequest, AckStatus
from tests.integration.alerts.conftest import MakeNotification
from tests.services.smtp import SmtpServer

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=1.0, timeout=10.0)
CHIEF = Recipient("chief", "นายอำเภอเมืองเชียงใหม่", "email", "chief5001@example.go.th")
SIGNER = TokenSigner("ack-secret-for-tests")


class Door:
    def __init__(self) -> None:
        self.acks: list[AckRequest] = []
        self.url = ""

    async def acknowledge(self, req: AckRequest) -> AckOutcome:
        first = all(a.alert_id != req.alert_id for a in self.acks)
        self.acks.append(req)
        status = AckStatus.ACKNOWLEDGED if first else AckStatus.ALREADY
        return AckOutcome(status, self.acks[0].by if not first else req.by, req.at_ms, "surge")


@pytest.fixture
async def door() -> AsyncIterator[Door]:
    d = Door()
    app = web.Application()
    AckLinks(SIGNER, d.acknowledge, lambda c: "นายอำเภอเมืองเชียงใหม่").add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    d.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield d
    await runner.cleanup()


def _http(method: str, url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _mail(
    smtp: SmtpServer, renderer: MessageRenderer, n: Notification, door: Door, ttl_s: int = 3600
) -> list[str]:
    config = SmtpConfig(host=smtp.host, port=smtp.port, tls="none")

    def links(notification: Notification, r: Recipient) -> list[tuple[str, str]]:
        return link_for(SIGNER, door.url, notification, r, ttl_s, time.time())

    await EmailChannel(renderer, config, FAST, ack_links=links).deliver(n, CHIEF)
    [got] = [
        r for r in smtp.messages() if r.message["X-Warroom-Notification-Id"] == n.notification_id
    ]
    plain = got.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = got.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    found = re.findall(r"https?://\S+/ack/\S+", plain)
    assert found and all(url in html for url in found)
    return found


async def test_get_confirms_post_acknowledges(
    smtp_server: SmtpServer,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
    door: Door,
) -> None:
    n = make_notification("5001", alerts=2)
    urls = await _mail(smtp_server, renderer, n, door)
    assert len(urls) == 2
    status, page = await asyncio.to_thread(_http, "GET", urls[0])
    assert status == 200 and "ยืนยันการรับทราบ" in page and '<form method="post">' in page
    assert "อำเภอเมืองเชียงใหม่" in page and n.alerts[0].alert_id in page
    status, _ = await asyncio.to_thread(_http, "GET", urls[0])  # a scanner fetching it again
    assert door.acks == []  # GET never acknowledges
    status, page = await asyncio.to_thread(_http, "POST", urls[0])
    assert status == 200 and "บันทึกการรับทราบแล้ว" in page
    [ack] = door.acks
    assert (ack.alert_id, ack.district_code, ack.via) == (n.alerts[0].alert_id, "5001", "email")
    assert ack.by == "นายอำเภอเมืองเชียงใหม่ (อีเมล)"
    status, page = await asyncio.to_thread(_http, "POST", urls[0])
    assert status == 200 and "มีผู้รับทราบไว้แล้ว" in page


async def test_expired_and_forged_links(
    smtp_server: SmtpServer,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
    door: Door,
) -> None:
    n = make_notification("5001")
    [url] = await _mail(smtp_server, renderer, n, door, ttl_s=-1)
    assert (await asyncio.to_thread(_http, "GET", url))[0] == 410
    assert (await asyncio.to_thread(_http, "POST", url))[0] == 410
    [good] = await _mail(smtp_server, renderer, make_notification("5001"), door)
    forged = good.replace("5001", "5002", 1)
    assert (await asyncio.to_thread(_http, "GET", forged))[0] == 404
    assert (await asyncio.to_thread(_http, "POST", forged))[0] == 404
    assert door.acks == []


async def test_resolved_mail_has_no_link(
    smtp_server: SmtpServer,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
    door: Door,
) -> None:
    n = make_notification("5001", kind=NotificationKind.RESOLVED)
    assert link_for(SIGNER, door.url, n, CHIEF, 60, time.time()) == []
