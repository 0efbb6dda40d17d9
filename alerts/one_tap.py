"""One-tap acknowledge from a LINE button or an e-mail link: token checks, the ack, Thai replies.

The channel (alerts/line_webhook.py, alerts/ack_links.py) hands over the token and who sent it;
this module checks the token (signature, expiry, that the sender is the contact it was made
for), asks the worker to acknowledge (`Acknowledger`: applied here, or forwarded over the
acknowledgements topic to the worker holding the district) and picks the Thai reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from alerts.ack_tokens import AckToken, TokenProblem, TokenSigner
from alerts.messages import place_of
from streams.timeutil import format_bangkok

__all__ = [
    "REPLIES",
    "AckOutcome",
    "AckRequest",
    "AckStatus",
    "Acknowledger",
    "TapResult",
    "use_token",
]


class AckStatus(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    ALREADY = "already_acknowledged"
    NOT_FOUND = "not_found"  # resolved, or never existed
    FORWARDED = "forwarded"  # on the acknowledgements topic; the holding worker applies it
    UNAVAILABLE = "unavailable"  # the alert engine is starting or stopping


@dataclass(frozen=True)
class AckRequest:
    alert_id: str
    district_code: str
    by: str  # who, as people read it: the directory name and the channel
    via: str  # line | email | http | cli
    at_ms: int
    note: str = ""


@dataclass(frozen=True)
class AckOutcome:
    status: AckStatus
    acknowledged_by: str = ""
    acknowledged_at_ms: int = 0
    title_th: str = ""


Acknowledger = Callable[[AckRequest], Awaitable[AckOutcome]]

REPLIES: Final[dict[str, str]] = {
    "acknowledged": (
        "✅ บันทึกการรับทราบแล้ว\n{title}{place}\nรับทราบโดย {by} เวลา {time}\n"
        "ระบบจะหยุดแจ้งซ้ำและจะไม่ส่งเรื่องนี้ถึงผู้ว่าราชการจังหวัด"
    ),
    "already_acknowledged": ("การแจ้งเตือนนี้มีผู้รับทราบไว้แล้ว: {by} เวลา {time}\nไม่ต้องดำเนินการเพิ่ม"),
    "not_found": ("การแจ้งเตือนนี้สิ้นสุดแล้ว (สถานการณ์กลับสู่ปกติ) หรือไม่พบในระบบ จึงไม่ต้องกดรับทราบ"),
    "forwarded": (
        "ได้รับการกดรับทราบของท่านแล้ว ({place}) ระบบกำลังบันทึก "
        "ผลจะปรากฏในแดชบอร์ดของศูนย์ปฏิบัติการภายในไม่กี่วินาที"
    ),
    "unavailable": "ระบบกำลังเริ่มทำงานหรือปิดปรับปรุง กรุณากดรับทราบอีกครั้งในอีกสักครู่",
    "expired": (
        "ปุ่มรับทราบนี้หมดอายุแล้ว หากการแจ้งเตือนยังไม่สิ้นสุด กรุณากดปุ่มในข้อความแจ้งเตือนล่าสุด หรือติดต่อศูนย์ปฏิบัติการ"
    ),
    "not_yours": (
        "ปุ่มนี้ส่งถึงผู้รับท่านอื่น ระบบจึงไม่บันทึกการรับทราบในนามของท่าน หากท่านเป็นผู้รับผิดชอบ กรุณาติดต่อศูนย์ปฏิบัติการ"
    ),
    "malformed": "ระบบอ่านปุ่มนี้ไม่ได้ กรุณาติดต่อศูนย์ปฏิบัติการ",
}


@dataclass(frozen=True)
class TapResult:
    outcome: str  # a key of REPLIES
    reply_th: str
    token: AckToken | None = None


def _time_th(ms: int) -> str:
    return format_bangkok(ms) if ms else "-"


def _reply(outcome: str, token: AckToken | None, result: AckOutcome | None) -> str:
    place = place_of(token.district_code).label_th if token is not None else ""
    title = f"{result.title_th} " if result is not None and result.title_th else ""
    return REPLIES[outcome].format(
        title=title,
        place=place,
        by=result.acknowledged_by if result is not None else "",
        time=_time_th(result.acknowledged_at_ms) if result is not None else "-",
    )


async def use_token(
    signer: TokenSigner,
    token: str,
    *,
    sender: str | None,
    by: Callable[[AckToken], str],
    via: str,
    now_ms: int,
    acknowledge: Acknowledger,
) -> TapResult:
    """Check `token` and acknowledge. `sender`: the contact the request came from (a LINE
    user, group or room id), or None where the channel cannot tell (an e-mail link)."""
    checked = signer.verify(token, now_ms / 1000)
    if isinstance(checked, TokenProblem):
        outcome = "expired" if checked is TokenProblem.EXPIRED else "malformed"
        return TapResult(outcome, _reply(outcome, None, None))
    if sender is not None and sender != checked.contact:
        return TapResult("not_yours", _reply("not_yours", checked, None), checked)
    request = AckRequest(checked.alert_id, checked.district_code, by(checked), via, now_ms)
    result = await acknowledge(request)
    outcome = str(result.status)
    return TapResult(outcome, _reply(outcome, checked, result), checked)
