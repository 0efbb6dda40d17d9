"""Alertmanager API v2 channel against a real Alertmanager 0.25: labels, annotations,
de-duplication by label set, and resolution."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from alerts.channels.alertmanager import AlertmanagerChannel
from alerts.channels.base import RetryPolicy
from alerts.messages import MessageRenderer
from alerts.model import AlertState, Notification, NotificationKind, Recipient
from streams import geography
from tests.integration.alerts.conftest import DASHBOARD, MakeNotification
from tests.services.alertmanager import AlertmanagerServer

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=1.0, timeout=5.0)


def _recipient(am: AlertmanagerServer) -> Recipient:
    return Recipient("war_room", "war room", "alertmanager", am.url)


def _expected_labels(n: Notification) -> list[dict[str, str]]:
    out = []
    for a in n.alerts:
        labels = {
            "alertname": a.rule_id,
            "severity": str(a.severity),
            "district_code": n.district_code,
            "province_code": n.district_code[:2],
            "region": geography.region_of_province(n.district_code[:2]),
            "fingerprint": a.fingerprint,
            "source": "warroom",
        }
        if a.dimension:
            labels["dimension"] = a.dimension
        out.append(labels)
    return out


def _mine(am: AlertmanagerServer, n: Notification) -> list[dict[str, object]]:
    rules = "|".join(a.rule_id for a in n.alerts)
    return am.alerts(f'alertname=~"{rules}"')


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def test_alerts_arrive_with_labels_and_thai_annotations(
    alertmanager: AlertmanagerServer,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
) -> None:
    n = make_notification("1001", alerts=2)
    channel = AlertmanagerChannel(renderer, FAST)
    try:
        await channel.deliver(n, _recipient(alertmanager))
    finally:
        await channel.close()
    got = _mine(alertmanager, n)
    assert sorted((a["labels"] for a in got), key=str) == sorted(_expected_labels(n), key=str)
    by_rule = {a["labels"]["alertname"]: a for a in got}  # type: ignore[index]
    for alert in n.alerts:
        am_alert = by_rule[alert.rule_id]
        ann = am_alert["annotations"]
        assert isinstance(ann, dict)
        assert ann["summary"] == f"{alert.title_th} — เขตพระนคร กรุงเทพมหานคร"
        assert ann["description"] == alert.summary_th
        assert ann["description_en"] == alert.summary_en
        assert ann["alert_id"] == alert.alert_id
        assert ann["dashboard_url"] == f"{DASHBOARD}/d/warroom-district/?var-district=1001"
        assert am_alert["generatorURL"] == ann["dashboard_url"]
        assert _ms(str(am_alert["startsAt"])) == alert.fired_at_ms
        assert _ms(str(am_alert["endsAt"])) > time.time() * 1000 + 3600_000  # still firing
        assert am_alert["status"]["state"] == "active"  # type: ignore[index]


async def test_reposting_does_not_duplicate_and_updates_annotations(
    alertmanager: AlertmanagerServer,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
) -> None:
    n = make_notification("5001")
    channel = AlertmanagerChannel(renderer, FAST)
    try:
        await channel.deliver(n, _recipient(alertmanager))
        n.alerts[0].value = 77.0
        await channel.deliver(n, _recipient(alertmanager))
        escalated = Notification(
            n.notification_id + "-esc",
            NotificationKind.ESCALATION,
            "5001",
            n.alerts,
            n.created_at_ms,
        )
        await channel.deliver(escalated, _recipient(alertmanager))
    finally:
        await channel.close()
    got = _mine(alertmanager, n)
    assert len(got) == 1
    ann = got[0]["annotations"]
    assert isinstance(ann, dict)
    assert ann["value"] == "77.0" and ann["escalated"] == "true"


async def test_resolved_alert_ends(
    alertmanager: AlertmanagerServer,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
) -> None:
    n = make_notification("5001", alerts=2)
    channel = AlertmanagerChannel(renderer, FAST)
    try:
        await channel.deliver(n, _recipient(alertmanager))
        assert len(_mine(alertmanager, n)) == 2
        first = n.alerts[0]
        first.state = AlertState.RESOLVED
        first.resolved_at_ms = int(time.time() * 1000) - 1000
        resolved = Notification(
            n.notification_id + "-ok", NotificationKind.RESOLVED, "5001", [first], n.created_at_ms
        )
        await channel.deliver(resolved, _recipient(alertmanager))
    finally:
        await channel.close()
    # Alertmanager's API lists active alerts only: the resolved one is gone, the other stays
    got = _mine(alertmanager, n)
    assert [a["labels"]["alertname"] for a in got] == [n.alerts[1].rule_id]  # type: ignore[index]
