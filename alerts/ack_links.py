"""Signed acknowledge links in e-mails: GET shows a Thai confirmation page, only POST acknowledges.

Mail scanners and link previews fetch every URL in a message; a GET that acknowledged would
stop escalations nobody saw. So `GET /ack/<token>` only shows what would be acknowledged and a
button; the button POSTs to the same URL. The token (alerts/ack_tokens.py) binds the alert, the
district and the directory contact (``chief:5001``, ``governor:50``, ``war_room``) to an expiry.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web

from alerts.ack_tokens import AckToken, TokenProblem, TokenSigner
from alerts.messages import place_of
from alerts.model import Notification, NotificationKind, Recipient
from alerts.one_tap import Acknowledger, use_token

__all__ = ["PATH", "AckLinks", "contact_key", "link_for"]

PATH: Final = "/ack/{token}"
_ACKABLE: Final = frozenset(
    {NotificationKind.FIRING, NotificationKind.REPEAT, NotificationKind.ESCALATION}
)


def contact_key(notification: Notification, recipient: Recipient) -> str:
    """The directory entry a recipient stands for, as a token names it."""
    if recipient.role == "chief":
        return f"chief:{notification.district_code}"
    if recipient.role == "governor":
        return f"governor:{notification.province_code}"
    return recipient.role  # war_room, ops


def link_for(
    signer: TokenSigner,
    base_url: str,
    notification: Notification,
    recipient: Recipient,
    ttl_s: int,
    now_s: float,
) -> list[tuple[str, str]]:
    """(alert title, link) for every alert of the notification that can be acknowledged. The
    expiry counts from the wall clock `now_s` (stream time may be the past during a replay)."""
    if notification.kind not in _ACKABLE:
        return []
    expires = int(now_s) + ttl_s
    contact = contact_key(notification, recipient)
    base = base_url.rstrip("/")
    return [
        (a.title_th, f"{base}/ack/{signer.sign(a.alert_id, a.district_code, contact, expires)}")
        for a in notification.alerts
        if a.acknowledged_at_ms is None
    ]


def _page(title: str, body: str, status: int = 200) -> web.Response:
    doc = (
        '<!doctype html><html lang="th"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em">'
        f'<h1 style="font-size:1.3em">{html.escape(title)}</h1>{body}</body></html>'
    )
    return web.Response(
        text=doc,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


class AckLinks:
    """The two routes; `identify(contact)` gives the directory name for a token's contact."""

    def __init__(
        self,
        signer: TokenSigner,
        acknowledge: Acknowledger,
        identify: Callable[[str], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.acknowledge = acknowledge
        self.identify = identify
        self._clock = clock

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(PATH, self.confirm_page)
        app.router.add_post(PATH, self.acknowledge_post)

    async def confirm_page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        checked = self.signer.verify(token, self._clock())
        if checked is TokenProblem.EXPIRED:
            return _page("ลิงก์หมดอายุแล้ว", "<p>กรุณาใช้ลิงก์ในอีเมลแจ้งเตือนฉบับล่าสุด "
                         "หรือติดต่อศูนย์ปฏิบัติการ</p>", 410)  # fmt: skip
        if not isinstance(checked, AckToken):
            return _page("ลิงก์ไม่ถูกต้อง", "<p>กรุณาติดต่อศูนย์ปฏิบัติการ</p>", 404)
        place = place_of(checked.district_code).label_th
        body = (
            f"<p>ท่านกำลังจะรับทราบการแจ้งเตือนของ <b>{html.escape(place)}</b> "
            f"(รหัส {html.escape(checked.alert_id)})</p>"
            f"<p>ในนามของ: {html.escape(self.identify(checked.contact) or checked.contact)}</p>"
            "<p>เมื่อกดปุ่มด้านล่าง ระบบจะหยุดแจ้งซ้ำและจะไม่ส่งเรื่องถึงผู้ว่าราชการจังหวัด</p>"
            '<form method="post"><button type="submit" style="font-size:1.2em;padding:.5em 2em">'
            "รับทราบ</button></form>"
        )
        return _page("ยืนยันการรับทราบการแจ้งเตือน", body)

    async def acknowledge_post(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]

        def by(t: AckToken) -> str:
            return f"{self.identify(t.contact) or t.contact} (อีเมล)"

        result = await use_token(
            self.signer,
            token,
            sender=None,
            by=by,
            via="email",
            now_ms=int(self._clock() * 1000),
            acknowledge=self.acknowledge,
        )
        status = {"malformed": 404, "expired": 410, "unavailable": 503}.get(result.outcome, 200)
        title = "รับทราบแล้ว" if status == 200 else "ยังไม่ได้บันทึกการรับทราบ"
        text = "".join(f"<p>{html.escape(line)}</p>" for line in result.reply_th.splitlines())
        return _page(title, text, status)
