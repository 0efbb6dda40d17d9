"""Enrolment of district chiefs and governors on LINE: invites, code redemption, Thai replies.

The war room runs `warroom contacts invite --district 5001 --role chief`; the chief adds the
official account (the printed add-friend link) and sends the code; the webhook binds the
sender's LINE user id to that directory entry. Each outcome has its own polite Thai reply.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Final

from alerts.contacts_store import CODE_LENGTH, ContactsStore, Invite, Redeemed
from alerts.messages import place_of
from streams import geography

__all__ = [
    "REPLIES",
    "InviteError",
    "add_friend_link",
    "area_th",
    "default_name",
    "find_code",
    "issue_invite",
    "redeem_text",
]

ROLES: Final = ("chief", "governor")
_CODE_IN_TEXT: Final = re.compile(rf"(?<![A-Z0-9])([2-9A-HJKMNP-Z]{{{CODE_LENGTH}}})(?![A-Z0-9])")

REPLIES: Final[dict[str, str]] = {
    "bound": (
        "ลงทะเบียนเรียบร้อยแล้ว: {name}\n"
        "ต่อจากนี้ท่านจะได้รับการแจ้งเตือนของ{area} ทาง LINE นี้ "
        'และกด "รับทราบ" ในข้อความแจ้งเตือนได้ทันที'
    ),
    "unknown_code": ("ขออภัย ไม่พบรหัสลงทะเบียนนี้ กรุณาตรวจสอบรหัสอีกครั้ง หรือติดต่อศูนย์ปฏิบัติการเพื่อขอรหัสใหม่"),
    "expired_code": ("ขออภัย รหัสลงทะเบียนนี้หมดอายุแล้ว กรุณาติดต่อศูนย์ปฏิบัติการเพื่อขอรหัสใหม่"),
    "used_code": ("ขออภัย รหัสลงทะเบียนนี้ถูกใช้ไปแล้ว หากท่านยังไม่ได้ลงทะเบียน กรุณาติดต่อศูนย์ปฏิบัติการเพื่อขอรหัสใหม่"),
    "no_code": (
        "สวัสดีครับ นี่คือระบบแจ้งเตือนของศูนย์ปฏิบัติการ กระทรวงมหาดไทย "
        "หากท่านได้รับรหัสลงทะเบียน {length} ตัว กรุณาพิมพ์รหัสนั้นส่งมาในแชตนี้"
    ),
    "welcome": (
        "ยินดีต้อนรับสู่ระบบแจ้งเตือนของศูนย์ปฏิบัติการ กระทรวงมหาดไทย "
        "กรุณาพิมพ์รหัสลงทะเบียน {length} ตัวที่ท่านได้รับ ส่งมาในแชตนี้"
    ),
    "welcome_back": ("ยินดีต้อนรับกลับ ท่านจะได้รับการแจ้งเตือนของ{area} ทาง LINE นี้อีกครั้ง"),
}


class InviteError(ValueError):
    """The invite cannot be issued as asked; the message says what to change."""


def area_th(role: str, area: str) -> str:
    """อำเภอ… จังหวัด… / เขต… กรุงเทพมหานคร for a chief, จังหวัด… for a governor."""
    if role == "governor":
        return place_of(area + "01").province_th
    return place_of(area).label_th


def default_name(role: str, area: str) -> str:
    """The office, as the directory names it when no person's name is given."""
    if role == "governor":
        return f"ผู้ว่าราชการ{place_of(area + '01').province_th}"
    district_th = place_of(area).district_th
    # Bangkok khet are headed by a director (ผู้อำนวยการเขต), not a นายอำเภอ
    if district_th.startswith("เขต"):
        return f"ผู้อำนวยการ{district_th}"
    return f"นายอำเภอ{district_th.removeprefix('อำเภอ')}"


def issue_invite(
    store: ContactsStore,
    *,
    role: str,
    area: str,
    now_ms: int,
    ttl_ms: int,
    name: str = "",
) -> Invite:
    if role not in ROLES:
        raise InviteError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "chief" and geography.district(area) is None:
        raise InviteError(f"--district {area!r} is not a district code (4 digits, e.g. 5001)")
    if role == "governor" and geography.province(area) is None:
        raise InviteError(f"--province {area!r} is not a province code (2 digits, e.g. 50)")
    if ttl_ms <= 0:
        raise InviteError("--valid-hours must be more than 0")
    return store.create_invite(role, area, name.strip() or default_name(role, area), now_ms, ttl_ms)


def add_friend_link(bot_basic_id: str) -> str:
    """LINE's add-friend URL for an official account's basic id (like @abc1234)."""
    basic = bot_basic_id if bot_basic_id.startswith("@") else f"@{bot_basic_id}"
    return f"https://line.me/R/ti/p/{urllib.parse.quote(basic, safe='')}"


def find_code(text: str) -> str | None:
    """The code in a chat message: chiefs type it with spaces, dashes or in lower case."""
    found = _CODE_IN_TEXT.search(re.sub(r"[\s-]+", "", text.upper()))
    return found.group(1) if found else None


def redeem_text(
    store: ContactsStore, text: str, line_user: str, now_ms: int
) -> tuple[str, str, Invite | None]:
    """(outcome, Thai reply, invite) for a chat message from `line_user`."""
    code = find_code(text)
    if code is None:
        return "no_code", REPLIES["no_code"].format(length=CODE_LENGTH), None
    outcome, invite = store.redeem(code, line_user, now_ms)
    if outcome is Redeemed.BOUND and invite is not None:
        reply = REPLIES["bound"].format(name=invite.name, area=area_th(invite.role, invite.area))
    else:
        reply = REPLIES[str(outcome)]
    return str(outcome), reply, invite
