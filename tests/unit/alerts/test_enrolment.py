"""Enrolment codes: one use, expiry, unknown codes; each outcome its own Thai reply; every step
in the audit table; unfollow and follow again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.contacts_store import ACTIVE, UNREACHABLE, ContactsStore
from alerts.enrolment import REPLIES, InviteError, find_code, issue_invite, redeem_text

HOUR = 3_600_000
U1 = "U" + "1" * 32
U2 = "U" + "2" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ContactsStore]:
    s = ContactsStore(tmp_path / "contacts.sqlite3")
    yield s
    s.close()


def test_a_code_binds_once_then_is_used(store: ContactsStore) -> None:
    invite = issue_invite(store, role="chief", area="5001", now_ms=0, ttl_ms=HOUR)
    assert len(invite.code) == 8
    outcome, reply, _ = redeem_text(store, f"รหัส {invite.code.lower()} ครับ", U1, 10)
    assert outcome == "bound"
    assert "ลงทะเบียนเรียบร้อยแล้ว" in reply and "อำเภอเมืองเชียงใหม่" in reply
    [b] = store.bindings()
    got = (b.role, b.area, b.line_user, b.status, b.code)
    assert got == ("chief", "5001", U1, ACTIVE, invite.code)
    outcome, reply, _ = redeem_text(store, invite.code, U2, 20)
    assert outcome == "used_code" and reply == REPLIES["used_code"]
    assert [b.line_user for b in store.bindings()] == [U1]  # nothing bound the second time


def test_expired_and_unknown_codes_bind_nothing(store: ContactsStore) -> None:
    invite = issue_invite(store, role="governor", area="50", now_ms=0, ttl_ms=HOUR)
    outcome, reply, _ = redeem_text(store, invite.code, U1, HOUR)  # expires_at is exclusive
    assert outcome == "expired_code" and reply == REPLIES["expired_code"]
    outcome, reply, _ = redeem_text(store, "ZZZZ2222", U1, 5)
    assert outcome == "unknown_code" and reply == REPLIES["unknown_code"]
    outcome, _, _ = redeem_text(store, "สวัสดีครับ", U1, 6)
    assert outcome == "no_code"
    assert store.bindings() == []


def test_audit_records_who_when_and_which_code(store: ContactsStore) -> None:
    invite = issue_invite(store, role="chief", area="1001", now_ms=100, ttl_ms=HOUR)
    redeem_text(store, invite.code, U1, 200)
    redeem_text(store, invite.code, U2, 300)
    store.set_reachable(U1, False, 400)
    store.set_reachable(U1, True, 500)
    rows = [(r.at_ms, r.event, r.outcome, r.line_user, r.code, r.area) for r in store.audit()]
    assert rows == [
        (100, "invite", "issued", "", invite.code, "1001"),
        (200, "redeem", "bound", U1, invite.code, "1001"),
        (300, "redeem", "used_code", U2, invite.code, "1001"),
        (400, "unfollow", UNREACHABLE, U1, "", "1001"),
        (500, "follow", ACTIVE, U1, "", "1001"),
    ]


def test_unfollow_marks_unreachable_and_says_which(store: ContactsStore) -> None:
    invite = issue_invite(store, role="chief", area="5001", now_ms=0, ttl_ms=HOUR)
    redeem_text(store, invite.code, U1, 1)
    changed = store.set_reachable(U1, False, 2)
    assert [(b.area, b.status) for b in changed] == [("5001", UNREACHABLE)]
    assert store.set_reachable(U1, False, 3) == []  # already unreachable: no change
    assert store.set_reachable(U2, False, 4) == []  # never bound


def test_webhook_event_ids_are_seen_once(store: ContactsStore) -> None:
    assert store.first_delivery("01H0000000000000000000000A", 1)
    assert not store.first_delivery("01H0000000000000000000000A", 2)
    assert store.first_delivery("01H0000000000000000000000B", 3)


def test_invites_are_checked() -> None:
    with pytest.raises(InviteError, match="district"):
        issue_invite(None, role="chief", area="9999", now_ms=0, ttl_ms=1)  # type: ignore[arg-type]
    with pytest.raises(InviteError, match="province"):
        issue_invite(None, role="governor", area="99", now_ms=0, ttl_ms=1)  # type: ignore[arg-type]
    with pytest.raises(InviteError, match="role"):
        issue_invite(None, role="mayor", area="5001", now_ms=0, ttl_ms=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "code"),
    [("7K3P9QXM", "7K3P9QXM"), ("7k3p 9qxm", "7K3P9QXM"), ("รหัส7K3P-9QXMครับ", "7K3P9QXM"),
     ("รหัส 7K3P9QXM ครับ", "7K3P9QXM"), ("hello", None)],
)  # fmt: skip
def test_codes_are_found_as_people_type_them(text: str, code: str | None) -> None:
    assert find_code(text) == code
