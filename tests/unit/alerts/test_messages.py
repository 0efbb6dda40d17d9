"""Thai notification texts: names, numbers, Bangkok time with a B.E. year, link, LINE limits."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import geothai
import pytest

from alerts.messages import LINE_TEXT_LIMIT, MessageRenderer, place_of, truncate_text
from alerts.model import Alert, AlertState, Notification, NotificationKind, Severity

BASE = "https://grafana.moi.example.go.th/"
# 2026-06-01 07:05:00 UTC = 14:05 in Bangkok, B.E. 2569
FIRED_MS = int(datetime(2026, 6, 1, 7, 5, tzinfo=UTC).timestamp() * 1000)


def _alert(district: str, i: int = 0, **kw: object) -> Alert:
    fields: dict[str, object] = {
        "rule_id": f"rule_{i}",
        "district_code": district,
        "dimension": "land" if i % 2 else "",
        "severity": Severity.CRITICAL if i == 0 else Severity.WARNING,
        "state": AlertState.FIRING,
        "value": 42.0 + i,
        "threshold": 16.0,
        "title_th": f"เรื่องร้องเรียนพุ่งสูง ชุดที่ {i}",
        "title_en": f"Grievance surge {i}",
        "summary_th": f"รับเรื่อง {42 + i} เรื่องใน 1 ชม. (ปกติ 8)",
        "summary_en": f"{42 + i} received in 1 h (usual 8)",
        "pending_since_ms": FIRED_MS - 60_000,
        "fired_at_ms": FIRED_MS,
    }
    fields.update(kw)
    return Alert(**fields)  # type: ignore[arg-type]


def _bangkok(ms: int) -> str:
    """Independent oracle: dd/mm/yyyy(B.E.) HH:MM in Asia/Bangkok."""
    t = datetime.fromtimestamp(ms / 1000, ZoneInfo("Asia/Bangkok"))
    return f"{t.day:02d}/{t.month:02d}/{t.year + 543} {t.hour:02d}:{t.minute:02d}"


def _geothai_names(district_code: str) -> tuple[str, str]:
    province = next(p for p in geothai.provinces() if p.code == district_code[:2])
    district = next(d for d in geothai.districts(province.code) if d.code == district_code)
    return district.name_th, province.name_th


@pytest.mark.parametrize(
    ("code", "district_prefix", "province_prefix"),
    [("5001", "อำเภอ", "จังหวัด"), ("3001", "อำเภอ", "จังหวัด"), ("1001", "", "")],
)
def test_firing_text_has_places_numbers_time_and_link(
    code: str, district_prefix: str, province_prefix: str
) -> None:
    alerts = [_alert(code, 0), _alert(code, 1)]
    created = FIRED_MS + 5 * 60_000
    n = Notification("n1", NotificationKind.FIRING, code, alerts, created)
    text = MessageRenderer(BASE).text(n)
    district_th, province_th = _geothai_names(code)
    assert f"{district_prefix}{district_th}" in text
    assert f"{province_prefix}{province_th}" in text
    for a in alerts:
        assert a.title_th in text
        assert a.summary_th in text
        assert a.alert_id in text
    assert "วิกฤต" in text and "เฝ้าระวัง" in text  # critical and warning in Thai
    assert _bangkok(created) in text
    assert _bangkok(FIRED_MS) in text
    assert _bangkok(created).split("/")[2].startswith("2569")
    assert f"https://grafana.moi.example.go.th/d/warroom-district/?var-district={code}" in text
    assert "42" in text and "43" in text and "16" in text  # value and threshold


def test_bangkok_khet_is_not_called_amphoe() -> None:
    place = place_of("1001")
    assert place.district_th.startswith("เขต") and "อำเภอ" not in place.district_th
    assert place.province_th == "กรุงเทพมหานคร"
    assert place_of("5001").district_th == "อำเภอเมืองเชียงใหม่"


def test_escalation_says_how_long_it_is_unacknowledged() -> None:
    created = FIRED_MS + 95 * 60_000  # 1 h 35 min after it fired
    n = Notification("n2", NotificationKind.ESCALATION, "5001", [_alert("5001")], created)
    r = MessageRenderer(BASE)
    text = r.text(n)
    assert "ผู้ว่าราชการจังหวัด" in text
    assert "ยังไม่มีผู้รับทราบมา 1 ชม. 35 นาที" in text
    assert "ยกระดับ" in r.subject(n)


def test_resolved_text_says_when_and_for_how_long() -> None:
    resolved = FIRED_MS + 40 * 60_000
    a = _alert("5001", state=AlertState.RESOLVED, resolved_at_ms=resolved)
    n = Notification("n3", NotificationKind.RESOLVED, "5001", [a], resolved + 1000)
    text = MessageRenderer(BASE).text(n)
    assert "คลี่คลายแล้ว" in text
    assert _bangkok(resolved) in text
    assert "40 นาที" in text
    assert "warroom alerts ack" not in text  # nothing left to acknowledge


def test_subject_is_one_line_with_tag_and_count() -> None:
    n = Notification(
        "n4", NotificationKind.FIRING, "5001", [_alert("5001", i) for i in range(3)], FIRED_MS
    )
    subject = MessageRenderer(BASE).subject(n)
    assert subject.startswith("[warroom] ")
    assert "\n" not in subject
    assert "(+2)" in subject and "อำเภอเมืองเชียงใหม่" in subject


def test_webhook_payload_is_json_with_documented_fields() -> None:
    a = _alert("5001", 1)
    n = Notification("n5", NotificationKind.FIRING, "5001", [a], FIRED_MS)
    body = json.loads(json.dumps(MessageRenderer(BASE).payload(n)))
    assert body["schema"] == "warroom.notification.v1"
    assert body["notification_id"] == "n5" and body["kind"] == "firing"
    assert body["district"]["code"] == "5001" and body["province"]["code"] == "50"
    assert body["region"] == "north"
    assert body["created_at"] == "2026-06-01T07:05:00.000Z"
    assert body["dashboard_url"].endswith("/d/warroom-district/?var-district=5001")
    (alert,) = body["alerts"]
    assert alert["fingerprint"] == a.fingerprint and alert["alert_id"] == a.alert_id
    assert alert["value"] == 43.0 and alert["dimension"] == "land"
    assert alert["fired_at"] == "2026-06-01T07:05:00.000Z" and alert["resolved_at"] is None


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_truncation_never_splits_a_thai_cluster_or_a_surrogate_pair() -> None:
    thai = "ที่นี่มีน้ำ" * 1000  # consonants carrying above-vowels and tone marks
    for limit in range(100, 140):  # every cut position relative to the clusters
        out = truncate_text(thai, limit, suffix="…")
        assert _utf16(out) <= limit
        body = out[:-1]
        assert thai.startswith(body)
        assert unicodedata.category(thai[len(body)]) not in ("Mn", "Mc")
    emoji = "🚨" * 3000  # 6000 UTF-16 units
    out = truncate_text(emoji, LINE_TEXT_LIMIT)
    assert _utf16(out) <= LINE_TEXT_LIMIT
    out.encode("utf-8")  # no lone surrogate
    assert truncate_text("สั้น", 10) == "สั้น"


def test_line_messages_respect_the_limits_and_lose_no_alert_when_they_fit() -> None:
    r = MessageRenderer(BASE)
    big = "ข้อมูลยาว " * 250  # ~2.5 k chars of summary per alert
    alerts = [_alert("5001", i, summary_th=f"{i}:{big}") for i in range(6)]
    n = Notification("n6", NotificationKind.FIRING, "5001", alerts, FIRED_MS)
    messages = r.line_messages(n)
    assert 2 <= len(messages) <= 5
    assert all(_utf16(m) <= LINE_TEXT_LIMIT for m in messages)
    joined = "\n\n".join(messages)
    for a in alerts[:3]:
        assert a.alert_id in joined
    many = [_alert("5001", i, summary_th=big * 2) for i in range(20)]
    n = Notification("n7", NotificationKind.FIRING, "5001", many, FIRED_MS)
    messages = r.line_messages(n)
    assert len(messages) == 5
    assert all(_utf16(m) <= LINE_TEXT_LIMIT for m in messages)
    assert "ตัดข้อความ" in messages[-1]
    small = Notification("n8", NotificationKind.FIRING, "5001", [_alert("5001")], FIRED_MS)
    assert r.line_messages(small) == [r.text(small)]


def test_email_html_escapes_and_links() -> None:
    a = _alert("5001", title_th="<script>x</script> & ค่า")
    n = Notification("n9", NotificationKind.FIRING, "5001", [a], FIRED_MS)
    html = MessageRenderer(BASE).html(n)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert (
        '<a href="https://grafana.moi.example.go.th/d/warroom-district/?var-district=5001">' in html
    )
