"""Thai notification texts (LINE, e-mail, webhook JSON) rendered from a Notification.

Only the aggregate fields of an Alert are used: alerts never carry complainant data, and
nothing here may add any.
"""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

from alerts.model import Alert, AlertState, Notification, NotificationKind, Recipient, Severity
from streams import geography
from streams.timeutil import format_bangkok, from_ms, to_rfc3339

__all__ = [
    "LINE_TEXT_LIMIT",
    "MessageRenderer",
    "Place",
    "dashboard_link",
    "place_of",
    "truncate_text",
]

#: LINE text message limit (characters); LINE counts UTF-16 code units, so we do too
LINE_TEXT_LIMIT = 5000
WEBHOOK_SCHEMA = "warroom.notification.v1"

SEVERITY_TH = {Severity.INFO: "แจ้งเพื่อทราบ", Severity.WARNING: "เฝ้าระวัง", Severity.CRITICAL: "วิกฤต"}
_SEVERITY_MARK = {Severity.INFO: "🔵", Severity.WARNING: "🟠", Severity.CRITICAL: "🔴"}
_HEADLINE = {
    NotificationKind.FIRING: ("🚨", "แจ้งเตือนใหม่", "FIRING"),
    NotificationKind.REPEAT: ("🔁", "แจ้งเตือนซ้ำ: ยังไม่คลี่คลาย", "STILL FIRING"),
    NotificationKind.RESOLVED: ("✅", "คลี่คลายแล้ว", "RESOLVED"),
    NotificationKind.ESCALATION: ("⏫", "ยกระดับถึงผู้ว่าราชการจังหวัด", "ESCALATED"),
}
_TRUNCATED = "\n… (ตัดข้อความ ดูทั้งหมดในแดชบอร์ด / truncated)"


@dataclass(frozen=True)
class Place:
    """A district's names as people write them: อำเภอ… / เขต… and จังหวัด… / กรุงเทพมหานคร."""

    district_code: str
    province_code: str
    region: str
    district_th: str
    district_en: str
    province_th: str
    province_en: str

    @property
    def label_th(self) -> str:
        return f"{self.district_th} {self.province_th}"


_CHANNEL_TH: Final = {"line": "LINE", "email": "อีเมล", "webhook": "webhook", "log": "log"}


def place_of(district_code: str) -> Place:
    district = geography.district(district_code)
    province_code = district_code[:2]
    province = geography.province(province_code)
    if district is None:
        d_th = d_en = f"district {district_code}"
    elif district.is_bangkok_khet:  # geothai already names khet "เขต…"
        d_th, d_en = district.name_th, f"Khet {district.name_en}"
    else:
        d_th, d_en = f"อำเภอ{district.name_th}", f"Amphoe {district.name_en}"
    if province is None:
        p_th = p_en = f"province {province_code}"
        region = ""
    elif province_code == "10":
        p_th, p_en, region = province.name_th, province.name_en, province.region
    else:
        p_th, p_en, region = f"จังหวัด{province.name_th}", province.name_en, province.region
    return Place(district_code, province_code, region, d_th, d_en, p_th, p_en)


def dashboard_link(base_url: str, district_code: str) -> str:
    """The district dashboard (Grafana uid warroom-district, variable `district`)."""
    return f"{base_url.rstrip('/')}/d/warroom-district/?var-district={district_code}"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def truncate_text(text: str, limit: int = LINE_TEXT_LIMIT, suffix: str = _TRUNCATED) -> str:
    """Cut to at most `limit` UTF-16 code units with a visible suffix, never inside a character:
    not between surrogates, and not between a Thai consonant and its vowel or tone marks."""
    if _utf16_len(text) <= limit:
        return text
    budget = limit - _utf16_len(suffix)
    cut, used = 0, 0
    for i, ch in enumerate(text):
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > budget:
            break
        used += size
        cut = i + 1
    # step back over combining marks (Thai above/below vowels, tone marks, ZWJ sequences)
    while cut > 0 and cut < len(text) and _joins_previous(text[cut]):
        cut -= 1
    return text[:cut].rstrip() + suffix


def _joins_previous(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Mc", "Me") or ch in "\u200d\ufe0f"


def _minutes_th(ms: int) -> str:
    minutes = max(0, ms) // 60_000
    if minutes < 60:
        return f"{minutes} นาที"
    hours, rest = divmod(minutes, 60)
    return f"{hours} ชม. {rest} นาที" if rest else f"{hours} ชม."


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


class MessageRenderer:
    """Renders one Notification for each channel. `dashboard_url` is WARROOM_DASHBOARD_URL."""

    def __init__(self, dashboard_url: str) -> None:
        self.dashboard_url = dashboard_url

    def link(self, notification: Notification) -> str:
        return dashboard_link(self.dashboard_url, notification.district_code)

    def headline(self, notification: Notification) -> str:
        """One line: mark, kind, severity, the first title and the place."""
        mark, kind_th, kind_en = _HEADLINE[notification.kind]
        place = place_of(notification.district_code)
        worst = _worst(notification.alerts)
        title = notification.alerts[0].title_th if notification.alerts else ""
        more = f" และอีก {len(notification.alerts) - 1} เรื่อง" if len(notification.alerts) > 1 else ""
        sev = f"[{SEVERITY_TH[worst]}] " if worst is not None else ""
        return f"{mark} {kind_th} ({kind_en}) {sev}{title}{more} — {place.label_th}"

    def subject(self, notification: Notification) -> str:
        """E-mail subject: short, Thai, starts with a tag mail filters can match."""
        _, kind_th, _ = _HEADLINE[notification.kind]
        place = place_of(notification.district_code)
        worst = _worst(notification.alerts)
        sev = SEVERITY_TH[worst] if worst is not None else ""
        title = notification.alerts[0].title_th if notification.alerts else ""
        more = f" (+{len(notification.alerts) - 1})" if len(notification.alerts) > 1 else ""
        return f"[warroom] {kind_th} {sev}: {title}{more} — {place.label_th}"

    def text(self, notification: Notification, limit: int | None = LINE_TEXT_LIMIT) -> str:
        """Plain text (LINE, e-mail body, log): every alert with its numbers, the time, the link."""
        place = place_of(notification.district_code)
        lines = [self.headline(notification), ""]
        lines.append(
            f"พื้นที่: {place.district_th} {place.province_th} (รหัส {place.district_code}) "
            f"/ {place.district_en}, {place.province_en}"
        )
        lines.append(f"เวลา: {format_bangkok(notification.created_at_ms)} (เวลาประเทศไทย)")
        lines.append(f"จำนวนการแจ้งเตือน: {len(notification.alerts)} เรื่อง")
        for i, alert in enumerate(notification.alerts, 1):
            lines.append("")
            lines.extend(self._alert_lines(i, alert, notification))
        if notification.kind is NotificationKind.ESCALATION:
            lines.append("")
            lines.extend(self._story(notification))
        lines.append("")
        lines.append(f"แดชบอร์ดพื้นที่ (dashboard): {self.link(notification)}")
        if notification.kind is not NotificationKind.RESOLVED:
            lines.append("รับทราบ (acknowledge): warroom alerts ack <รหัสแจ้งเตือน>")
        text = "\n".join(lines)
        return truncate_text(text, limit) if limit is not None else text

    def _story(self, notification: Notification) -> list[str]:
        """Who was told before this escalation, when and how, and that nobody acknowledged."""
        if not notification.notified:
            return ["ผู้รับแจ้งในพื้นที่: ไม่มีบันทึกว่าส่งถึงนายอำเภอสำเร็จ (no delivery recorded)"]
        out = ["แจ้งนายอำเภอแล้ว (notified):"]
        for n in notification.notified:
            channel = _CHANNEL_TH.get(n.channel, n.channel)
            out.append(f"   - {n.name} ทาง {channel} เมื่อ {format_bangkok(n.at_ms)}")
        out.append("   ยังไม่มีผู้กดรับทราบ (nobody acknowledged)")
        return out

    def _alert_lines(self, index: int, alert: Alert, notification: Notification) -> list[str]:
        sev = f"{_SEVERITY_MARK[alert.severity]} {SEVERITY_TH[alert.severity]} ({alert.severity})"
        out = [
            f"{index}. {alert.title_th} ({alert.title_en})",
            f"   ระดับ: {sev}",
            f"   ข้อมูล: {alert.summary_th}",
            f"   ค่า {_number(alert.value)} / เกณฑ์ {_number(alert.threshold)}"
            + (f" · มิติ {alert.dimension}" if alert.dimension else ""),
        ]
        if alert.fired_at_ms is not None:
            out.append(f"   เริ่มแจ้งเตือน: {format_bangkok(alert.fired_at_ms)}")
        if alert.state is AlertState.RESOLVED or notification.kind is NotificationKind.RESOLVED:
            at = alert.resolved_at_ms or notification.created_at_ms
            out.append(f"   สถานะ: คลี่คลายแล้ว เมื่อ {format_bangkok(at)}")
            if alert.fired_at_ms is not None:
                out.append(f"   ระยะเวลา: {_minutes_th(at - alert.fired_at_ms)}")
        elif notification.kind is NotificationKind.ESCALATION:
            since = alert.fired_at_ms if alert.fired_at_ms is not None else alert.pending_since_ms
            out.append(
                f"   สถานะ: ยังไม่มีผู้รับทราบมา {_minutes_th(notification.created_at_ms - since)}"
                " (unacknowledged)"
            )
        elif alert.acknowledged_at_ms is not None:
            who = f" โดย {alert.acknowledged_by}" if alert.acknowledged_by else ""
            out.append(f"   สถานะ: รับทราบแล้ว{who} เมื่อ {format_bangkok(alert.acknowledged_at_ms)}")
        else:
            out.append("   สถานะ: กำลังแจ้งเตือน (firing)")
        out.append(f"   รหัสแจ้งเตือน (alert id): {alert.alert_id}")
        return out

    def line_messages(self, notification: Notification, max_messages: int = 5) -> list[str]:
        """The text as 1..max_messages LINE text messages of at most 5,000 characters each,
        split between alerts; what does not fit in the last one is cut with a visible note."""
        text = self.text(notification, limit=None)
        if _utf16_len(text) <= LINE_TEXT_LIMIT:
            return [text]
        parts = text.split("\n\n")
        chunks: list[str] = []
        i = 0
        while i < len(parts) and len(chunks) < max_messages - 1:
            current = parts[i]
            i += 1
            while i < len(parts) and _utf16_len(f"{current}\n\n{parts[i]}") <= LINE_TEXT_LIMIT:
                current = f"{current}\n\n{parts[i]}"
                i += 1
            chunks.append(truncate_text(current, LINE_TEXT_LIMIT))
        if i < len(parts):
            chunks.append(truncate_text("\n\n".join(parts[i:]), LINE_TEXT_LIMIT))
        return chunks

    def html(self, notification: Notification) -> str:
        """A simple HTML alternative for e-mail: the same text, escaped, with a real link."""
        body = html.escape(self.text(notification, limit=None))
        link = html.escape(self.link(notification))
        body = body.replace(link, f'<a href="{link}">{link}</a>')
        return (
            '<!DOCTYPE html><html lang="th"><head><meta charset="utf-8"></head>'
            f'<body><pre style="font-family: sans-serif; white-space: pre-wrap">{body}</pre>'
            "</body></html>"
        )

    def payload(
        self, notification: Notification, recipient: Recipient | None = None
    ) -> dict[str, Any]:
        """The webhook body (warroom.notification.v1, documented in alerts/channels/webhook.py)."""
        place = place_of(notification.district_code)
        return {
            "schema": WEBHOOK_SCHEMA,
            "notification_id": notification.notification_id,
            "kind": str(notification.kind),
            "created_at": _iso(notification.created_at_ms),
            "created_at_bangkok": format_bangkok(notification.created_at_ms),
            "district": {
                "code": place.district_code,
                "name_th": place.district_th,
                "name_en": place.district_en,
            },
            "province": {
                "code": place.province_code,
                "name_th": place.province_th,
                "name_en": place.province_en,
            },
            "region": place.region,
            "dashboard_url": self.link(notification),
            "recipient": (
                {"role": recipient.role, "name": recipient.name} if recipient is not None else None
            ),
            "alerts": [_alert_json(a) for a in notification.alerts],
            "text": self.text(notification, limit=None),
        }


def _worst(alerts: list[Alert]) -> Severity | None:
    order = [Severity.INFO, Severity.WARNING, Severity.CRITICAL]
    return max((a.severity for a in alerts), key=order.index, default=None)


def _iso(ms: int | None) -> str | None:
    return to_rfc3339(from_ms(ms)).replace("+00:00", "Z") if ms is not None else None


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "fingerprint": alert.fingerprint,
        "rule_id": alert.rule_id,
        "state": str(alert.state),
        "severity": str(alert.severity),
        "dimension": alert.dimension,
        "value": alert.value,
        "threshold": alert.threshold,
        "title_th": alert.title_th,
        "title_en": alert.title_en,
        "summary_th": alert.summary_th,
        "summary_en": alert.summary_en,
        "pending_since": _iso(alert.pending_since_ms),
        "fired_at": _iso(alert.fired_at_ms),
        "resolved_at": _iso(alert.resolved_at_ms),
        "acknowledged_at": _iso(alert.acknowledged_at_ms),
        "acknowledged_by": alert.acknowledged_by,
        "escalated_at": _iso(alert.escalated_at_ms),
    }
