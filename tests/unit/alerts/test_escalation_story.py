"""The governor's escalation tells the story: who was notified about the alert, on which channel
and when (from the outbox's delivered rows), and that nobody acknowledged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from alerts.messages import MessageRenderer
from alerts.model import (
    Alert,
    AlertState,
    Notification,
    NotificationKind,
    Notified,
    Recipient,
    Severity,
)
from alerts.outbox import Outbox
from streams.timeutil import format_bangkok

FIRED = 1_780_000_000_000
CHIEF_LINE = Recipient("chief", "นายอำเภอเมืองเชียงใหม่", "line", "U" + "1" * 32)
CHIEF_MAIL = Recipient("chief", "นายอำเภอเมืองเชียงใหม่", "email", "c@example.go.th")
WAR_ROOM = Recipient("war_room", "war room", "log", "")


def _alert(rule: str = "surge", pending: int = FIRED - 60_000) -> Alert:
    return Alert(rule, "5001", "", Severity.CRITICAL, AlertState.FIRING, 12, 8, "พุ่งสูง",
                 "surge", "12 เรื่อง", "12", pending, FIRED)  # fmt: skip


def test_delivered_rows_of_the_same_alert_become_the_story(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    a, other = _alert(), _alert("backlog")
    firing = Notification("n1", NotificationKind.FIRING, "5001", [a], FIRED)
    repeat = Notification("n2", NotificationKind.REPEAT, "5001", [a], FIRED + 3_600_000)
    unrelated = Notification("n3", NotificationKind.FIRING, "5001", [other], FIRED)
    box.add_many([(firing, [CHIEF_LINE, CHIEF_MAIL, WAR_ROOM]), (repeat, [CHIEF_LINE]),
                  (unrelated, [CHIEF_LINE])], FIRED)  # fmt: skip
    delivered = {
        ("n1", "line"): FIRED + 1000,
        ("n2", "line"): FIRED + 3_601_000,
        ("n3", "line"): FIRED + 500,
        ("n1", "log"): FIRED + 10,
    }  # n1's e-mail never went out
    for item in box.items():
        at = delivered.get((item.notification.notification_id, item.recipient.channel))
        if at is not None:
            box.mark_delivered(item, at)
    story = box.delivered_about([a])
    assert story == [Notified("chief", CHIEF_LINE.name, "line", FIRED + 1000)]
    # another episode of the same rule (another start) has its own story
    assert box.delivered_about([replace(a, pending_since_ms=a.pending_since_ms + 1)]) == []
    box.close()


def test_escalation_text_names_who_was_told_and_that_nobody_acknowledged() -> None:
    n = Notification("e1", NotificationKind.ESCALATION, "5001", [_alert()], FIRED + 1_800_000)
    n.notified = [Notified("chief", "นายอำเภอเมืองเชียงใหม่", "line", FIRED + 1000)]
    text = MessageRenderer("http://g").text(n)
    assert f"นายอำเภอเมืองเชียงใหม่ ทาง LINE เมื่อ {format_bangkok(FIRED + 1000)}" in text
    assert "ยังไม่มีผู้กดรับทราบ" in text
    n.notified = []
    assert "ไม่มีบันทึกว่าส่งถึงนายอำเภอสำเร็จ" in MessageRenderer("http://g").text(n)
