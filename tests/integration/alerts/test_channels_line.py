"""LINE channel through line-bot-sdk against a stand-in that checks every request as LINE
documents it: retry key, 409 on a repeated key, 429 back-off, 5-message and 5,000-char limits."""

from __future__ import annotations

import time
import uuid

import pytest

from alerts.ack_tokens import AckToken, TokenProblem, TokenSigner
from alerts.channels.base import DeliveryError, RetryPolicy
from alerts.channels.line import LineChannel, retry_key
from alerts.line_buttons import LineButtons
from alerts.messages import MessageRenderer
from alerts.model import NotificationKind, Recipient
from tests.integration.alerts.conftest import LINE_TOKEN, MakeNotification
from tests.services.line_standin import LineStandIn

pytestmark = pytest.mark.integration

CHIEF = Recipient("chief", "นายอำเภอเมืองเชียงใหม่", "line", "U" + uuid.uuid4().hex)
GROUP = Recipient("war_room", "war room", "line", "C" + uuid.uuid4().hex)
FAST = RetryPolicy(attempts=4, base_delay=0.05, max_delay=2.0, timeout=5.0)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _mine(line: LineStandIn, notification_id: str, address: str) -> list[str]:
    key = retry_key(notification_id, address)
    return [t for p in line.pushes() if p.retry_key == key for t in p.texts]


async def test_push_reaches_the_recipient_once_in_thai(
    line_standin: LineStandIn, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    n = make_notification("5001", alerts=2)
    channel = LineChannel(renderer, LINE_TOKEN, base_url=line_standin.url, retry=FAST)
    try:
        await channel.deliver(n, CHIEF)
        await channel.deliver(n, GROUP)
    finally:
        await channel.close()
    assert line_standin.violations == []
    pushes = [
        p
        for p in line_standin.pushes()
        if p.retry_key
        in {
            retry_key(n.notification_id, CHIEF.address),
            retry_key(n.notification_id, GROUP.address),
        }
    ]
    assert sorted(p.to for p in pushes) == sorted([CHIEF.address, GROUP.address])
    for p in pushes:
        assert len(p.texts) == 1
        text = p.texts[0]
        assert "อำเภอเมืองเชียงใหม่" in text and "จังหวัดเชียงใหม่" in text
        for a in n.alerts:
            assert a.title_th in text and a.summary_th in text
        assert "/d/warroom-district/?var-district=5001" in text
        uuid.UUID(p.retry_key)


async def test_retry_key_is_stable_across_restarts_and_409_means_delivered(
    line_standin: LineStandIn, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    n = make_notification("1001")
    # the first process: LINE takes the push, but the answer is lost (500 after accepting)
    line_standin.fail_next(500, after_accepting=True)
    first = LineChannel(renderer, LINE_TOKEN, base_url=line_standin.url, retry=FAST)
    conflicts = line_standin.conflicts
    try:
        await first.deliver(n, CHIEF)  # its own retry gets 409: success, not a second push
    finally:
        await first.close()
    assert line_standin.conflicts == conflicts + 1
    # a restarted process sends the same delivery again: same key, 409 again, still one push
    second = LineChannel(renderer, LINE_TOKEN, base_url=line_standin.url, retry=FAST)
    try:
        await second.deliver(n, CHIEF)
    finally:
        await second.close()
    assert line_standin.conflicts == conflicts + 2
    assert len(_mine(line_standin, n.notification_id, CHIEF.address)) == 1
    assert line_standin.violations == []


async def test_429_backs_off_honouring_retry_after(
    line_standin: LineStandIn, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    n = make_notification("5001")
    line_standin.fail_next(429, count=2, headers={"Retry-After": "1"})
    channel = LineChannel(renderer, LINE_TOKEN, base_url=line_standin.url, retry=FAST)
    started = time.monotonic()
    try:
        await channel.deliver(n, CHIEF)
    finally:
        await channel.close()
    waited = time.monotonic() - started
    assert waited >= 2.0, "two Retry-After: 1 answers mean at least two seconds of waiting"
    assert len(_mine(line_standin, n.notification_id, CHIEF.address)) == 1


async def test_persistent_429_is_reported_with_its_retry_after(
    line_standin: LineStandIn, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    n = make_notification("5001")
    line_standin.fail_next(429, count=1, headers={"Retry-After": "120"})
    channel = LineChannel(renderer, LINE_TOKEN, base_url=line_standin.url, retry=FAST)
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.deliver(n, CHIEF)  # too long to sleep on: handed to the outbox
    finally:
        await channel.close()
    assert info.value.retry_after == 120 and not info.value.permanent
    assert _mine(line_standin, n.notification_id, CHIEF.address) == []


async def test_wrong_token_is_a_permanent_failure(
    line_standin: LineStandIn, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    n = make_notification("5001")
    requests = line_standin.requests
    channel = LineChannel(renderer, "not-the-token", base_url=line_standin.url, retry=FAST)
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.deliver(n, CHIEF)
    finally:
        await channel.close()
    assert info.value.permanent and "401" in str(info.value)
    assert not info.value.refused  # the token: queued until it is fixed, not failed
    assert line_standin.requests == requests + 1, "a permanent failure is not retried at once"
    empty = LineChannel(renderer, "", base_url=line_standin.url, retry=FAST)
    with pytest.raises(DeliveryError, match="WARROOM_LINE_CHANNEL_TOKEN"):
        await empty.deliver(n, CHIEF)


async def test_long_notification_is_split_within_limits(
    line_standin: LineStandIn, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    n = make_notification("5001", alerts=60)  # ~60 alerts: far over one 5,000-char message
    for a in n.alerts:
        a.summary_th = a.summary_th + " — รายละเอียดเพิ่มเติม" * 12
    full = renderer.text(n, limit=None)
    assert _utf16(full) > 5 * 5000
    channel = LineChannel(renderer, LINE_TOKEN, base_url=line_standin.url, retry=FAST)
    try:
        await channel.deliver(n, CHIEF)
    finally:
        await channel.close()
    assert line_standin.violations == []
    texts = _mine(line_standin, n.notification_id, CHIEF.address)
    assert len(texts) == 5
    assert all(_utf16(t) <= 5000 for t in texts)
    assert n.alerts[0].alert_id in texts[0]
    assert "ตัดข้อความ" in texts[-1]


async def test_push_carries_ack_and_dashboard_buttons_within_line_limits(
    line_standin: LineStandIn, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    """The stand-in checks the buttons template against LINE's limits; the postback data are
    tokens that name each alert and this recipient, and expire."""
    signer = TokenSigner("ack-secret-for-tests")
    buttons = LineButtons(renderer, signer, ttl_s=3600)
    one, many = make_notification("5001"), make_notification("1001", alerts=5)
    # a long text: the pushes must still hold at most 5 messages, the buttons last
    for a in many.alerts:
        a.summary_th = "ข้อมูลยาว " * 400
    channel = LineChannel(
        renderer, LINE_TOKEN, base_url=line_standin.url, retry=FAST, buttons=buttons
    )
    try:
        await channel.deliver(one, CHIEF)
        await channel.deliver(many, CHIEF)
    finally:
        await channel.close()
    assert line_standin.violations == []
    by_key = {p.retry_key: p for p in line_standin.pushes()}
    for n, acks in ((one, ["รับทราบ"]), (many, ["รับทราบ ข้อ 1", "รับทราบ ข้อ 2", "รับทราบ ข้อ 3"])):
        push = by_key[retry_key(n.notification_id, CHIEF.address)]
        assert push.messages[-1]["type"] == "template" and len(push.messages) <= 5
        actions = push.messages[-1]["template"]["actions"]
        assert [a["label"] for a in actions] == [*acks, "เปิดแดชบอร์ด"]
        assert actions[-1]["uri"].endswith(f"/d/warroom-district/?var-district={n.district_code}")
        now = time.time()
        for action, alert in zip(push.postbacks, n.alerts, strict=False):
            token = signer.verify(action["data"], now)
            assert isinstance(token, AckToken)
            assert (token.alert_id, token.district_code, token.contact) == (
                alert.alert_id, n.district_code, CHIEF.address)  # fmt: skip
            assert 3500 <= token.expires_s - now <= 3600
            assert signer.verify(action["data"], now + 3601) is TokenProblem.EXPIRED


async def test_resolved_push_has_only_the_dashboard_button(
    line_standin: LineStandIn, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    buttons = LineButtons(renderer, TokenSigner("k"), ttl_s=60)
    n = make_notification("5001", kind=NotificationKind.RESOLVED)
    channel = LineChannel(
        renderer, LINE_TOKEN, base_url=line_standin.url, retry=FAST, buttons=buttons
    )
    try:
        await channel.deliver(n, CHIEF)
    finally:
        await channel.close()
    assert line_standin.violations == []
    push = {p.retry_key: p for p in line_standin.pushes()}[
        retry_key(n.notification_id, CHIEF.address)
    ]
    assert [a["label"] for a in push.messages[-1]["template"]["actions"]] == ["เปิดแดชบอร์ด"]
