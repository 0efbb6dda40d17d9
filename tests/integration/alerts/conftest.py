"""Alert receivers started once per session on loopback: Alertmanager, SMTP, LINE stand-in,
webhook. Tests that stop a receiver start it again before they end."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import pytest

from alerts.messages import MessageRenderer
from alerts.model import Alert, AlertState, Notification, NotificationKind, Severity
from tests.services.alertmanager import AlertmanagerServer
from tests.services.alertmanager import available as alertmanager_available
from tests.services.line_standin import LineStandIn
from tests.services.smtp import SmtpServer, openssl_available
from tests.services.webhook_receiver import WebhookReceiver

LINE_TOKEN = "test-channel-access-token-" + "x" * 20
LINE_SECRET = "test-channel-secret-0123456789abcdef"
DASHBOARD = "http://grafana.test:3000"


@pytest.fixture(scope="session")
def alertmanager() -> Iterator[AlertmanagerServer]:
    if not alertmanager_available():
        pytest.fail("prometheus-alertmanager is not installed (./dev test installs it)")
    am = AlertmanagerServer()
    am.start()
    yield am
    am.close()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """Offers STARTTLS with a self-signed certificate when openssl exists."""
    server = SmtpServer(starttls=openssl_available())
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def line_standin() -> Iterator[LineStandIn]:
    server = LineStandIn(LINE_TOKEN, secret=LINE_SECRET)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def renderer() -> MessageRenderer:
    return MessageRenderer(DASHBOARD)


_seq = itertools.count(1)

MakeNotification = Callable[..., Notification]


@pytest.fixture
def make_notification() -> MakeNotification:
    """A notification with unique ids (receivers are shared by the whole session)."""

    def make(
        district: str = "5001",
        kind: NotificationKind = NotificationKind.FIRING,
        alerts: int = 1,
        severity: Severity = Severity.CRITICAL,
    ) -> Notification:
        n = next(_seq)
        now = int(time.time() * 1000)
        items = [
            Alert(
                rule_id=f"test_rule_{n}_{i}",
                district_code=district,
                dimension="land" if i else "",
                severity=severity,
                state=AlertState.RESOLVED
                if kind is NotificationKind.RESOLVED
                else AlertState.FIRING,
                value=40.0 + i,
                threshold=16.0,
                title_th=f"เรื่องร้องเรียนพุ่งสูง ({n}.{i})",
                title_en=f"Grievance surge ({n}.{i})",
                summary_th=f"รับเรื่อง {40 + i} เรื่องใน 1 ชม. (ปกติ 8)",
                summary_en=f"{40 + i} received in 1 h (usual 8)",
                pending_since_ms=now - 120_000,
                fired_at_ms=now - 60_000,
                resolved_at_ms=now if kind is NotificationKind.RESOLVED else None,
            )
            for i in range(alerts)
        ]
        return Notification(f"test-{n}-{kind}-{now}", kind, district, items, now)

    return make
