"""Outbox and notifier with every real receiver: nothing is lost while receivers are down, every
message arrives exactly once when they are back, also across a process restart, and failures
are visible in the outbox, the metrics and the history hook."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from alerts.channels.alertmanager import AlertmanagerChannel
from alerts.channels.base import Channel, RetryPolicy
from alerts.channels.email import EmailChannel, SmtpConfig
from alerts.channels.line import LineChannel, retry_key
from alerts.channels.log import LogChannel
from alerts.channels.webhook import WebhookChannel
from alerts.directory import parse_directory
from alerts.messages import MessageRenderer
from alerts.model import AlertState, Notification, NotificationKind, Recipient
from alerts.notifier import Backoff, DeliveryOutcome, Notifier, build_channels, outbox_path
from alerts.outbox import DELIVERED, FAILED, PENDING, Outbox
from streams.broker import free_port
from tests.integration.alerts.conftest import LINE_TOKEN, MakeNotification
from tests.services.alertmanager import AlertmanagerServer
from tests.services.line_standin import LineStandIn
from tests.services.smtp import SmtpServer
from tests.services.webhook_receiver import WebhookReceiver
from warroom.telemetry import Telemetry

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=2, base_delay=0.02, max_delay=0.5, timeout=3.0)
QUICK = Backoff(base=0.2, cap=1.0, jitter=0.0)


def _hex() -> str:
    return uuid.uuid4().hex


def _directory_doc(
    am: AlertmanagerServer, hook: WebhookReceiver, smtp_host: str = "example.go.th"
) -> dict[str, Any]:
    return {
        "war_room": {
            "name": "ศูนย์ปฏิบัติการ",
            "contacts": {"webhook": hook.hook_url, "alertmanager": am.url, "log": True},
        },
        "districts": {
            "5001": {
                "name": "นายอำเภอเมืองเชียงใหม่",
                "contacts": {"line": "U" + _hex(), "email": f"chief5001@{smtp_host}"},
            },
            "1001": {
                "name": "ผู้อำนวยการเขตพระนคร",
                "contacts": {"line": "U" + _hex(), "email": f"chief1001@{smtp_host}"},
            },
        },
        "provinces": {"50": {"name": "ผู้ว่าราชการจังหวัดเชียงใหม่", "contacts": {"line": "C" + _hex()}}},
    }


def _expected(doc: dict[str, Any], n: Notification) -> set[tuple[str, str]]:
    """(channel, address) that must receive `n`, straight from the directory document."""
    if n.kind is NotificationKind.ESCALATION:
        entry = doc["provinces"][n.district_code[:2]]
    else:
        entry = doc["districts"][n.district_code]
    out = set()
    for e in (entry, doc["war_room"]):
        for channel, address in e["contacts"].items():
            out.add((channel, "" if channel == "log" else address))
    return out


def _channels(renderer: MessageRenderer, smtp: SmtpServer, line: LineStandIn) -> dict[str, Channel]:
    ctx = smtp.client_tls_context() if smtp.cert_path.exists() else None
    return {
        "webhook": WebhookChannel(renderer, FAST),
        "alertmanager": AlertmanagerChannel(renderer, FAST),
        "line": LineChannel(renderer, LINE_TOKEN, base_url=line.url, retry=FAST),
        "email": EmailChannel(
            renderer, SmtpConfig(host=smtp.host, port=smtp.port, tls_context=ctx), FAST
        ),
        "log": LogChannel(renderer, FAST),
    }


def _sample(tel: Telemetry, name: str, channel: str) -> float:
    return tel.registry.get_sample_value(name, {"channel": channel}) or 0.0  # type: ignore[union-attr]


@contextlib.contextmanager
def _all_down(*servers: Any) -> Iterator[None]:
    """Stop the receivers; whatever happens, they are running again afterwards."""
    for s in servers:
        s.stop()
    try:
        yield
    finally:
        for s in servers:
            if not s.running:
                s.start()


async def _run(notifier: Notifier) -> asyncio.Task[None]:
    task = asyncio.create_task(notifier.run(poll_interval=0.1))
    await asyncio.sleep(0)
    return task


async def test_receivers_down_then_back_every_message_once_across_a_restart(
    tmp_path: Path,
    alertmanager: AlertmanagerServer,
    smtp_server: SmtpServer,
    line_standin: LineStandIn,
    webhook_receiver: WebhookReceiver,
    renderer: MessageRenderer,
    make_notification: MakeNotification,
) -> None:
    doc = _directory_doc(alertmanager, webhook_receiver)
    directory = parse_directory(yaml.safe_dump(doc, allow_unicode=True))
    n1 = make_notification("5001")
    n2 = make_notification("1001", alerts=2)
    n3 = make_notification("5001", NotificationKind.ESCALATION)
    # n4 resolves n1's alert: for each recipient it must not overtake n1's "firing"
    resolved_alert = n1.alerts[0]
    n4 = Notification(
        n1.notification_id + "-resolved",
        NotificationKind.RESOLVED,
        "5001",
        [
            dataclasses.replace(
                resolved_alert, state=AlertState.RESOLVED, resolved_at_ms=n1.created_at_ms + 1
            )
        ],
        n1.created_at_ms + 1,
    )
    notifications = [n1, n2, n3, n4]
    expected = {(n.notification_id, *r) for n in notifications for r in _expected(doc, n)}
    per_channel = {c: sum(1 for e in expected if e[1] == c) for c in {e[1] for e in expected}}
    path = tmp_path / "outbox.sqlite3"
    outcomes: list[DeliveryOutcome] = []
    servers = (alertmanager, smtp_server, line_standin, webhook_receiver)

    line_before = len(line_standin.pushes())
    with _all_down(*servers):
        tel1 = Telemetry(CollectorRegistry())
        outbox = Outbox(path)
        first = Notifier(
            directory,
            _channels(renderer, smtp_server, line_standin),
            outbox,
            on_delivery=outcomes.append,
            backoff=QUICK,
            metrics=tel1.notifier,
        )
        task = await _run(first)
        for n in notifications:
            recipients = first.submit(n)
            assert {(r.channel, r.address) for r in recipients} == _expected(doc, n)
        await asyncio.sleep(2.0)  # several failed rounds
        # nothing lost, failures visible: queued per channel, failed counts, hook records
        pending = {
            (i.notification.notification_id, i.recipient.channel, i.recipient.address)
            for i in outbox.items(PENDING)
        }
        assert pending == {e for e in expected if e[1] != "log"}
        # only the head of each recipient's queue is tried: later items wait behind it in order
        heads: dict[tuple[str, str], str] = {}
        for n in notifications:
            for channel, address in sorted(_expected(doc, n)):
                heads.setdefault((channel, address), n.notification_id)
        for channel, count in per_channel.items():
            if channel == "log":
                continue
            assert _sample(tel1, "warroom_notifications_queued", channel) == count
            assert first.queued()[channel] == count
            n_recipients = sum(1 for c, _ in heads if c == channel)
            assert _sample(tel1, "warroom_notifications_failed_total", channel) >= n_recipients
        assert _sample(tel1, "warroom_notifications_sent_total", "log") == per_channel["log"]
        failed = {
            (o.notification.notification_id, o.recipient.channel, o.recipient.address)
            for o in outcomes
            if o.state == "notify_failed"
        }
        assert failed == {(i, c, a) for (c, a), i in heads.items() if c != "log"}
        assert all(o.state == "notify_failed" for o in outcomes if o.recipient.channel != "log")
        assert all(not o.final for o in outcomes)
        # the process stops (a restart) while everything is still queued
        await first.close()
        await task
        outbox.close()

    # receivers are back; a new process over the same outbox delivers what is pending
    outcomes.clear()
    tel2 = Telemetry(CollectorRegistry())
    outbox = Outbox(path)
    second = Notifier(
        directory,
        _channels(renderer, smtp_server, line_standin),
        outbox,
        on_delivery=outcomes.append,
        backoff=QUICK,
        metrics=tel2.notifier,
    )
    task = await _run(second)
    try:
        assert await second.wait_idle(30), f"still queued: {second.queued()}"
    finally:
        await second.close()
        await task
    notified = {
        (o.notification.notification_id, o.recipient.channel, o.recipient.address)
        for o in outcomes
        if o.state == "notified"
    }
    assert notified == {e for e in expected if e[1] != "log"}
    for channel, count in per_channel.items():
        if channel != "log":
            assert _sample(tel2, "warroom_notifications_sent_total", channel) == count
            assert _sample(tel2, "warroom_notifications_queued", channel) == 0
    assert {i.state for i in outbox.items()} == {DELIVERED}
    _check_receivers_got_each_once(
        expected,
        notifications,
        doc["districts"]["5001"]["contacts"]["line"],
        alertmanager,
        smtp_server,
        line_standin,
        webhook_receiver,
    )
    assert len(line_standin.pushes()) == line_before + per_channel["line"]

    # a third start, and the engine re-submitting after a crash: nothing is sent again
    counts = (line_standin.requests, webhook_receiver.requests, len(smtp_server.messages()))
    third = Notifier(
        directory,
        _channels(renderer, smtp_server, line_standin),
        outbox,
        backoff=QUICK,
        metrics=Telemetry(CollectorRegistry()).notifier,
    )
    task = await _run(third)
    for n in notifications:
        third.submit(n)
    await asyncio.sleep(1.0)
    await third.close()
    await task
    outbox.close()
    assert (line_standin.requests, webhook_receiver.requests, len(smtp_server.messages())) == counts


def _check_receivers_got_each_once(
    expected: set[tuple[str, str, str]],
    notifications: list[Notification],
    chief_line: str,
    am: AlertmanagerServer,
    smtp: SmtpServer,
    line: LineStandIn,
    hook: WebhookReceiver,
) -> None:
    ids = {n.notification_id for n in notifications}
    # LINE: one accepted push per (notification, recipient), in submission order per recipient
    assert line.violations == []
    keys = {retry_key(e[0], e[2]): e for e in expected if e[1] == "line"}
    pushes = [p for p in line.pushes() if p.retry_key in keys]
    assert sorted(p.retry_key for p in pushes) == sorted(keys)
    n1, n2, _, n4 = notifications
    # the chief of 5001 gets n1 (firing) and then n4 (its resolution), never the other way
    assert [keys[p.retry_key][0] for p in pushes if p.to == chief_line] == [
        n1.notification_id,
        n4.notification_id,
    ]
    # e-mail: one message per (notification, address)
    mails = [
        (str(m.message["X-Warroom-Notification-Id"]), m.rcpt_tos[0])
        for m in smtp.messages()
        if m.message["X-Warroom-Notification-Id"] in ids
    ]
    assert sorted(mails) == sorted((e[0], e[2]) for e in expected if e[1] == "email")
    # webhook: one request per notification, none of them a repeat
    assert hook.violations == []
    got = [d for d in hook.deliveries() if d.body["notification_id"] in ids]
    assert sorted(d.body["notification_id"] for d in got) == sorted(
        e[0] for e in expected if e[1] == "webhook"
    )
    assert not any(d.duplicate for d in got)
    # Alertmanager: n1's alert was resolved after it fired (order kept), n2's two still fire
    active = {a["labels"]["alertname"] for a in am.alerts('source="warroom"')}
    assert n1.alerts[0].rule_id not in active
    assert {a.rule_id for a in n2.alerts} <= active


async def test_unreachable_receiver_is_given_up_but_kept_and_reported(
    tmp_path: Path, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/hook"
    directory = parse_directory(
        yaml.safe_dump({"war_room": {"name": "W", "contacts": {"webhook": nowhere}}})
    )
    tel = Telemetry(CollectorRegistry())
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outcomes: list[DeliveryOutcome] = []
    notifier = Notifier(
        directory,
        {"webhook": WebhookChannel(renderer, FAST)},
        outbox,
        on_delivery=outcomes.append,
        backoff=QUICK,
        give_up_after=1.0,
        metrics=tel.notifier,
    )
    task = await _run(notifier)
    n = make_notification("5001")
    notifier.submit(n)
    try:
        assert await notifier.wait_idle(15)
    finally:
        await notifier.close()
        await task
    (item,) = outbox.items()
    assert item.state == FAILED and item.attempts >= 2 and "ClientConnectorError" in item.last_error
    assert outcomes[-1].final and outcomes[-1].state == "notify_failed"
    assert all(o.state == "notify_failed" for o in outcomes)
    assert _sample(tel, "warroom_notifications_failed_total", "webhook") == len(outcomes)
    assert _sample(tel, "warroom_notifications_queued", "webhook") == 0
    outbox.close()


async def test_unconfigured_channel_keeps_items_queued(
    tmp_path: Path, renderer: MessageRenderer, make_notification: MakeNotification
) -> None:
    directory = parse_directory(
        yaml.safe_dump({"war_room": {"name": "W", "contacts": {"line": "U" + _hex(), "log": True}}})
    )
    tel = Telemetry(CollectorRegistry())
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    notifier = Notifier(
        directory, {"log": LogChannel(renderer)}, outbox, backoff=QUICK, metrics=tel.notifier
    )
    task = await _run(notifier)
    notifier.submit(make_notification("5001"))
    await asyncio.sleep(0.5)
    await notifier.close()
    await task
    states = {(i.recipient.channel, i.state) for i in outbox.items()}
    assert states == {("line", PENDING), ("log", DELIVERED)}
    (line_item,) = outbox.items(PENDING)
    assert "not configured" in line_item.last_error
    assert _sample(tel, "warroom_notifications_queued", "line") == 1
    outbox.close()


def test_outbox_is_idempotent_ordered_per_recipient_and_durable(
    tmp_path: Path, make_notification: MakeNotification
) -> None:
    a = Recipient("chief", "A", "line", "U" + _hex())
    b = Recipient("war_room", "B", "webhook", "http://127.0.0.1:1/x")
    n1, n2 = make_notification("5001"), make_notification("5001")
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert outbox.add(n1, [a, b], 1000) == 2
    assert outbox.add(n1, [a, b], 2000) == 0  # re-submission
    assert outbox.add(n2, [a], 3000) == 1
    heads = outbox.heads()
    assert [(i.notification.notification_id, i.recipient) for i in heads] == [
        (n1.notification_id, a),
        (n1.notification_id, b),
    ]
    # n2 for `a` waits behind n1 for `a`, even when n1 is backing off
    outbox.mark_retry(heads[0], 4000, 10_000_000, "down")
    assert [i.recipient for i in outbox.heads()] == [b, a]
    outbox.close()
    reopened = Outbox(tmp_path / "o.sqlite3")
    (pending_a,) = [i for i in reopened.heads() if i.recipient == a]
    assert pending_a.notification == n1 and pending_a.attempts == 1
    assert pending_a.last_error == "down"
    reopened.mark_delivered(pending_a, 5000)
    assert [i.notification.notification_id for i in reopened.heads() if i.recipient == a] == [
        n2.notification_id
    ]
    assert reopened.prune(older_than_ms=6000) == 1
    assert reopened.add(n2, [a], 7000) == 0
    reopened.close()


def test_outbox_takes_a_ticks_notifications_in_one_transaction(
    tmp_path: Path, make_notification: MakeNotification
) -> None:
    a = Recipient("chief", "A", "line", "U" + _hex())
    b = Recipient("governor", "B", "email", "b@example.go.th")
    n1, n2, n3 = (make_notification(d) for d in ("5001", "5002", "5003"))
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert outbox.add(n1, [a], 1000) == 1
    # per notification: n1 is a re-submission (its row for `a` exists, `b` is new)
    assert outbox.add_many([(n1, [a, b]), (n2, [a]), (n3, [a, b])], 2000) == [1, 1, 2]
    assert outbox.add_many([(n2, [a]), (n3, [a, b])], 3000) == [0, 0]
    assert outbox.add_many([], 4000) == []
    # queued in submission order per recipient
    assert [i.notification.notification_id for i in outbox.items() if i.recipient == a] == [
        n.notification_id for n in (n1, n2, n3)
    ]
    # a batch that fails part-way leaves nothing behind
    unencodable = dataclasses.replace(make_notification("5004"), district_code=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        outbox.add_many([(make_notification("5005"), [a]), (unencodable, [a])], 5000)
    assert len(outbox.items()) == 5
    outbox.close()


async def test_built_channels_name_the_missing_line_token(
    tmp_path: Path, make_notification: MakeNotification
) -> None:
    channels = build_channels("http://grafana.test:3000", smtp=None, retry=FAST)
    assert set(channels) == {"log", "webhook", "alertmanager", "line"}
    assert outbox_path(tmp_path) == tmp_path / "alerts" / "outbox.sqlite3"
    directory = parse_directory(
        yaml.safe_dump({"war_room": {"name": "W", "contacts": {"line": "U" + _hex()}}})
    )
    outbox = Outbox(outbox_path(tmp_path))
    notifier = Notifier(
        directory, channels, outbox, backoff=QUICK, metrics=Telemetry(CollectorRegistry()).notifier
    )
    task = await _run(notifier)
    notifier.submit(make_notification("5001"))
    await asyncio.sleep(0.3)
    await notifier.close()
    await task
    (item,) = outbox.items(PENDING)
    assert "WARROOM_LINE_CHANNEL_TOKEN" in item.last_error
    outbox.close()


_CHILD = """
import asyncio, sys, time, yaml
from prometheus_client import CollectorRegistry
from alerts.channels.base import RetryPolicy
from alerts.channels.webhook import WebhookChannel
from alerts.directory import parse_directory
from alerts.messages import MessageRenderer
from alerts.model import Alert, AlertState, Notification, NotificationKind, Severity
from alerts.notifier import Backoff, Notifier
from alerts.outbox import Outbox
from warroom.telemetry import Telemetry

path, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def main():
    d = parse_directory(yaml.safe_dump({"war_room": {"name": "W", "contacts": {"webhook": url}}}))
    fast = RetryPolicy(attempts=1, timeout=1.0)
    channels = {"webhook": WebhookChannel(MessageRenderer("http://g"), fast)}
    n = Notifier(d, channels, Outbox(path), backoff=Backoff(base=0.1, cap=0.2),
                 metrics=Telemetry(CollectorRegistry()).notifier)
    task = asyncio.create_task(n.run(poll_interval=0.1))
    now = int(time.time() * 1000)
    for i in range(count):
        a = Alert(f"crash_rule_{i}", "5001", "", Severity.WARNING, AlertState.FIRING, 1, 0,
                  "t", "t", "s", "s", now, now)
        n.submit(Notification(f"{url}-crash-{i}", NotificationKind.FIRING, "5001", [a], now))
    print("queued", flush=True)
    await task

asyncio.run(main())
"""


async def test_killed_process_loses_nothing(
    tmp_path: Path, webhook_receiver: WebhookReceiver, renderer: MessageRenderer
) -> None:
    """SIGKILL, not a clean close: what submit() returned from is on disk and is delivered."""
    path = tmp_path / "outbox.sqlite3"
    count = 20
    url = webhook_receiver.hook_url + f"?run={_hex()}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    with _all_down(webhook_receiver):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), url, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
            assert line.strip() == b"queued"
            await asyncio.sleep(0.5)  # a few failed attempts against the stopped receiver
        finally:
            child.kill()
            child.wait(10)
            if child.stdout is not None:
                child.stdout.close()
    outbox = Outbox(path)
    assert len(outbox.items(PENDING)) == count
    notifier = Notifier(
        parse_directory(yaml.safe_dump({"war_room": {"name": "W", "contacts": {"webhook": url}}})),
        {"webhook": WebhookChannel(renderer, FAST)},
        outbox,
        backoff=QUICK,
        metrics=Telemetry(CollectorRegistry()).notifier,
    )
    task = await _run(notifier)
    try:
        assert await notifier.wait_idle(30)
    finally:
        await notifier.close()
        await task
        outbox.close()
    got = [
        d.body["notification_id"]
        for d in webhook_receiver.deliveries()
        if d.body["notification_id"].startswith(f"{url}-crash-")
    ]
    assert sorted(got) == sorted(f"{url}-crash-{i}" for i in range(count))
