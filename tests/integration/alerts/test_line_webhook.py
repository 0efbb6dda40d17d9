"""The LINE webhook against the stand-in playing LINE: signed deliveries (signature computed by
the stand-in, not by warroom), replies through the Reply API with the event's one-time token,
enrolment outcomes in Thai, redeliveries handled once, forged signatures refused and counted,
and one-tap acknowledge postbacks with their own reply per case."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from alerts.ack_tokens import TokenSigner
from alerts.contacts_store import ACTIVE, UNREACHABLE, Binding, ContactsStore
from alerts.enrolment import REPLIES as ENROL
from alerts.enrolment import issue_invite
from alerts.line_webhook import PATH, LineReplier, LineWebhook
from alerts.one_tap import REPLIES as TAP
from alerts.one_tap import AckOutcome, AckRequest, AckStatus
from tests.integration.alerts.conftest import LINE_TOKEN
from tests.services.line_standin import LineStandIn

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
ALERT = "3355d0ac35808cab-mjuohs00"
RESOLVED = "4455d0ac35808cab-mjuohs00"


@dataclass
class Worker:
    """What the webhook talks to on the worker side: this test's record of acks and changes."""

    acks: list[AckRequest] = field(default_factory=list)
    changes: list[tuple[str, list[Binding]]] = field(default_factory=list)

    async def acknowledge(self, req: AckRequest) -> AckOutcome:
        self.acks.append(req)
        if req.alert_id != ALERT:
            return AckOutcome(AckStatus.NOT_FOUND)
        return AckOutcome(AckStatus.ACKNOWLEDGED, req.by, req.at_ms, "เรื่องร้องเรียนพุ่งสูง")


@dataclass
class Hook:
    url: str
    hook: LineWebhook
    store: ContactsStore
    worker: Worker
    signer: TokenSigner


@pytest.fixture
async def hook(line_standin: LineStandIn, tmp_path: Path) -> AsyncIterator[Hook]:
    store = ContactsStore(tmp_path / "contacts.sqlite3")
    worker = Worker()
    signer = TokenSigner("ack-secret-for-tests")
    webhook = LineWebhook(
        secret=line_standin.secret,
        store=store,
        replier=LineReplier(LINE_TOKEN, line_standin.url),
        signer=signer,
        acknowledge=worker.acknowledge,
        identify=lambda contact: "นายอำเภอเมืองเชียงใหม่" if contact.startswith("U") else "",
        on_contacts_changed=lambda change, b: worker.changes.append((change, b)),
    )
    app = web.Application()
    webhook.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    task = asyncio.create_task(webhook.process())
    yield Hook(f"http://127.0.0.1:{port}{PATH}", webhook, store, worker, signer)
    task.cancel()
    await webhook.close()
    await runner.cleanup()
    store.close()


def _user() -> str:
    return "U" + uuid.uuid4().hex


def _replies_to(line: LineStandIn, user: str) -> list[str]:
    return [t for r in line.replies() if r.to == user for t in r.texts]


async def _send(line: LineStandIn, h: Hook, *events: dict[str, object], **kw: str) -> int:
    status, _ = await asyncio.to_thread(line.send_events, h.url, list(events), **kw)
    if status == 200:
        await h.hook.drained()
    return status


async def test_enrolment_binds_once_with_thai_replies_and_audit(
    line_standin: LineStandIn, hook: Hook
) -> None:
    chief, other = _user(), _user()
    invite = issue_invite(hook.store, role="chief", area="5001", now_ms=_now(), ttl_ms=HOUR_MS)
    assert await _send(line_standin, hook, line_standin.event("follow", chief)) == 200
    assert _replies_to(line_standin, chief) == [ENROL["welcome"].format(length=8)]
    assert await _send(line_standin, hook, line_standin.text_event(chief, invite.code)) == 200
    [bound] = _replies_to(line_standin, chief)[1:]
    assert "ลงทะเบียนเรียบร้อยแล้ว" in bound and "อำเภอเมืองเชียงใหม่" in bound
    [b] = hook.store.bindings()
    assert (b.area, b.line_user, b.status) == ("5001", chief, ACTIVE)
    assert [c for c, _ in hook.worker.changes] == ["bound"]
    # the same code from someone else: a polite no, nothing bound
    await _send(line_standin, hook, line_standin.text_event(other, invite.code))
    assert _replies_to(line_standin, other) == [ENROL["used_code"]]
    await _send(line_standin, hook, line_standin.text_event(other, "ZZZZ2222"))
    assert _replies_to(line_standin, other)[1:] == [ENROL["unknown_code"]]
    expired = issue_invite(hook.store, role="chief", area="5002", now_ms=0, ttl_ms=1)
    await _send(line_standin, hook, line_standin.text_event(other, expired.code))
    assert _replies_to(line_standin, other)[2:] == [ENROL["expired_code"]]
    assert [b.line_user for b in hook.store.bindings()] == [chief]
    redeems = [(r.outcome, r.line_user, r.code) for r in hook.store.audit() if r.event == "redeem"]
    assert redeems == [
        ("bound", chief, invite.code),
        ("used_code", other, invite.code),
        ("unknown_code", other, "ZZZZ2222"),
        ("expired_code", other, expired.code),
    ]
    assert line_standin.violations == []


async def test_redelivery_is_handled_once(line_standin: LineStandIn, hook: Hook) -> None:
    chief = _user()
    invite = issue_invite(hook.store, role="chief", area="5001", now_ms=_now(), ttl_ms=HOUR_MS)
    event = line_standin.text_event(chief, invite.code)
    await _send(line_standin, hook, event)
    # LINE sends the same event again (same webhookEventId), flagged as a redelivery
    await _send(line_standin, hook, line_standin.redelivered(event))
    assert len(_replies_to(line_standin, chief)) == 1
    assert [r.outcome for r in hook.store.audit() if r.event == "redeem"] == ["bound"]
    assert hook.hook.counters.get("event", "message", "duplicate") == 1


async def test_forged_or_missing_signature_is_401_counted_and_changes_nothing(
    line_standin: LineStandIn, hook: Hook
) -> None:
    chief = _user()
    invite = issue_invite(hook.store, role="chief", area="5001", now_ms=_now(), ttl_ms=HOUR_MS)
    event = line_standin.text_event(chief, invite.code)
    assert await _send(line_standin, hook, event, secret="not-the-channel-secret") == 401
    assert await _send(line_standin, hook, event, signature="") == 401
    assert await _send(line_standin, hook, event, signature="AAAA") == 401
    await hook.hook.drained()
    assert hook.hook.counters.get("request", outcome="bad_signature") == 3
    assert hook.store.bindings() == []
    assert _replies_to(line_standin, chief) == []
    # the genuine delivery still works afterwards (the forged ones did not burn the event id)
    assert await _send(line_standin, hook, event) == 200
    assert [b.line_user for b in hook.store.bindings()] == [chief]


async def test_console_verify_with_no_events_gets_200(
    line_standin: LineStandIn, hook: Hook
) -> None:
    assert await _send(line_standin, hook) == 200


async def test_unfollow_makes_the_contact_unreachable_and_follow_brings_it_back(
    line_standin: LineStandIn, hook: Hook
) -> None:
    chief = _user()
    invite = issue_invite(hook.store, role="chief", area="5001", now_ms=_now(), ttl_ms=HOUR_MS)
    await _send(line_standin, hook, line_standin.text_event(chief, invite.code))
    await _send(line_standin, hook, line_standin.event("unfollow", chief))
    assert [b.status for b in hook.store.bindings()] == [UNREACHABLE]
    assert [c for c, _ in hook.worker.changes] == ["bound", "unreachable"]
    await _send(
        line_standin, hook, line_standin.event("follow", chief, follow={"isUnblocked": True})
    )
    assert [b.status for b in hook.store.bindings()] == [ACTIVE]
    assert "ยินดีต้อนรับกลับ" in _replies_to(line_standin, chief)[-1]


async def test_postback_acknowledges_for_its_own_recipient_only(
    line_standin: LineStandIn, hook: Hook
) -> None:
    chief, stranger = _user(), _user()
    expires = _now() // 1000 + 3600
    token = hook.signer.sign(ALERT, "5001", chief, expires)

    def postback(user: str, data: str) -> dict[str, object]:
        return line_standin.event("postback", user, postback={"data": data})

    await _send(line_standin, hook, postback(stranger, token))
    assert _replies_to(line_standin, stranger) == [TAP["not_yours"]]
    assert hook.worker.acks == []  # someone else's button acknowledges nothing
    await _send(line_standin, hook, postback(chief, hook.signer.sign(ALERT, "5001", chief, 5)))
    assert _replies_to(line_standin, chief) == [TAP["expired"]]
    await _send(line_standin, hook, postback(chief, token[:-2] + "xx"))
    assert _replies_to(line_standin, chief)[1:] == [TAP["malformed"]]
    assert hook.worker.acks == []
    await _send(line_standin, hook, postback(chief, token))
    [ack] = hook.worker.acks
    assert (ack.alert_id, ack.district_code, ack.via) == (ALERT, "5001", "line")
    assert ack.by == "นายอำเภอเมืองเชียงใหม่ (LINE)"
    confirmed = _replies_to(line_standin, chief)[2]
    assert confirmed.startswith("✅ บันทึกการรับทราบแล้ว")
    assert "อำเภอเมืองเชียงใหม่ จังหวัดเชียงใหม่" in confirmed and "นายอำเภอ" in confirmed
    resolved = hook.signer.sign(RESOLVED, "5001", chief, expires)
    await _send(line_standin, hook, postback(chief, resolved))
    assert _replies_to(line_standin, chief)[3] == TAP["not_found"]
    assert line_standin.violations == []


def _now() -> int:
    return int(time.time() * 1000)


async def test_the_answer_does_not_wait_for_the_processing(
    line_standin: LineStandIn, hook: Hook
) -> None:
    """LINE gets its 200 while the acknowledgement is still being applied."""
    chief = _user()
    release = asyncio.Event()
    plain = hook.hook.acknowledge
    assert plain is not None

    async def slow(req: AckRequest) -> AckOutcome:
        await release.wait()
        return await plain(req)

    hook.hook.acknowledge = slow
    token = hook.signer.sign(ALERT, "5001", chief, _now() // 1000 + 60)
    event = line_standin.event("postback", chief, postback={"data": token})
    status, _ = await asyncio.to_thread(line_standin.send_events, hook.url, [event])
    assert status == 200 and hook.worker.acks == []  # answered; not yet applied
    release.set()
    await hook.hook.drained()
    assert [a.alert_id for a in hook.worker.acks] == [ALERT]
