"""Generic webhook channel against a real HTTP receiver: documented body, Idempotency-Key,
retries on 5xx, permanent failure on 4xx."""

from __future__ import annotations

import pytest

from alerts.channels.base import DeliveryError, RetryPolicy
from alerts.channels.webhook import WebhookChannel
from alerts.messages import MessageRenderer
from alerts.model import NotificationKind, Recipient
from streams import geography
from tests.integration.alerts.conftest import DASHBOARD, MakeNotification
from tests.services.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=1.0, timeout=5.0)


def _recipient(hook: WebhookReceiver) -> Recipient:
    return Recipient("war_room", "ศูนย์ปฏิบัติการ", "webhook", hook.hook_url)


async def test_body_and_idempotency_key(
    webhook_receiver: WebhookReceiver,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
) -> None:
    n = make_notification("3001", NotificationKind.ESCALATION, alerts=2)
    channel = WebhookChannel(renderer, FAST)
    try:
        await channel.deliver(n, _recipient(webhook_receiver))
    finally:
        await channel.close()
    assert webhook_receiver.violations == []
    (got,) = [
        d for d in webhook_receiver.deliveries() if d.body["notification_id"] == n.notification_id
    ]
    assert got.headers["Idempotency-Key"] == n.notification_id
    body = got.body
    district = geography.district("3001")
    province = geography.province("30")
    assert district is not None and province is not None
    assert body["kind"] == "escalation"
    assert body["district"] == {
        "code": "3001",
        "name_th": "อำเภอ" + district.name_th,
        "name_en": "Amphoe " + district.name_en,
    }
    assert body["province"]["code"] == "30" and body["province"]["name_en"] == province.name_en
    assert body["region"] == province.region
    assert body["dashboard_url"] == f"{DASHBOARD}/d/warroom-district/?var-district=3001"
    assert body["recipient"] == {"role": "war_room", "name": "ศูนย์ปฏิบัติการ"}
    assert [a["rule_id"] for a in body["alerts"]] == [a.rule_id for a in n.alerts]
    assert [a["value"] for a in body["alerts"]] == [a.value for a in n.alerts]
    assert [a["fingerprint"] for a in body["alerts"]] == [a.fingerprint for a in n.alerts]
    assert n.alerts[1].summary_th in body["text"]


async def test_server_error_is_retried_with_the_same_key(
    webhook_receiver: WebhookReceiver,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
) -> None:
    n = make_notification("5001")
    webhook_receiver.fail_next(503)
    webhook_receiver.fail_next(500, after_accepting=True)  # arrives, but the answer is lost
    channel = WebhookChannel(renderer, FAST)
    try:
        await channel.deliver(n, _recipient(webhook_receiver))
    finally:
        await channel.close()
    mine = [
        d for d in webhook_receiver.deliveries() if d.body["notification_id"] == n.notification_id
    ]
    # the receiver saw it twice with one key, so it can tell the repeat (it flags it)
    assert [d.duplicate for d in mine] == [False, True]
    assert {d.headers["Idempotency-Key"] for d in mine} == {n.notification_id}


async def test_client_error_is_permanent_and_not_retried(
    webhook_receiver: WebhookReceiver,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
) -> None:
    n = make_notification("5001")
    webhook_receiver.fail_next(400)
    before = webhook_receiver.requests
    channel = WebhookChannel(renderer, FAST)
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.deliver(n, _recipient(webhook_receiver))
    finally:
        await channel.close()
    assert info.value.permanent and "400" in str(info.value)
    assert info.value.refused  # this notification, never: the outbox marks it failed at once
    assert webhook_receiver.requests == before + 1


async def test_unreachable_receiver_is_a_transient_failure(
    renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    from streams.broker import free_port

    n = make_notification("5001")
    nobody = Recipient("war_room", "x", "webhook", f"http://127.0.0.1:{free_port()}/hook")
    channel = WebhookChannel(renderer, FAST)
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.deliver(n, nobody)
    finally:
        await channel.close()
    assert not info.value.permanent
