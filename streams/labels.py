"""Thai labels of the contract's enumerations: what people read on dashboards and in alerts.

One table per enumeration, so a category reads the same on a panel and in a LINE message.
"""

from __future__ import annotations

from typing import Final

from streams.contract import (
    CATEGORIES,
    CHANNELS,
    PRIORITIES,
    PROGRAMS,
    PROJECT_STATUSES,
    TPMAP_DIMENSIONS,
)

__all__ = [
    "CATEGORY_TH",
    "CHANNEL_TH",
    "PRIORITY_TH",
    "PROGRAM_TH",
    "SDG_TH",
    "STATUS_TH",
    "TPMAP_TH",
]

CATEGORY_TH: Final[dict[str, str]] = {
    "land": "ที่ดิน",
    "debt": "หนี้สิน",
    "flood": "อุทกภัย",
    "drought": "ภัยแล้ง",
    "wastewater": "น้ำเสีย",
    "environment": "สิ่งแวดล้อม",
    "utilities": "สาธารณูปโภค",
    "misconduct": "เจ้าหน้าที่ประพฤติมิชอบ",
    "consumer": "คุ้มครองผู้บริโภค",
    "drugs": "ยาเสพติด",
    "gambling": "การพนัน",
    "poverty": "ความยากจน",
    "other": "อื่น ๆ",
}
CHANNEL_TH: Final[dict[str, str]] = {
    "hotline_1567": "สายด่วน 1567",
    "walk_in": "ยื่นด้วยตนเอง",
    "web": "เว็บไซต์",
    "line": "LINE",
    "letter": "จดหมาย",
    "mobile_unit": "หน่วยเคลื่อนที่",
    "traffy": "Traffy Fondue",
    "other": "อื่น ๆ",
}
PROGRAM_TH: Final[dict[str, str]] = {
    "kok_nong_na": "โคก หนอง นา",
    "otop_nawatwithi": "OTOP นวัตวิถี",
    "sufficiency_village": "หมู่บ้านเศรษฐกิจพอเพียง",
    "poverty_household": "ครัวเรือนยากจน",
    "strong_tambon": "ตำบลเข้มแข็ง",
    "household_vegetables": "ปลูกผักสวนครัว",
    "informal_debt": "หนี้นอกระบบ",
    "water_management": "บริหารจัดการน้ำ",
    "infrastructure": "โครงสร้างพื้นฐาน",
    "other": "อื่น ๆ",
}
PRIORITY_TH: Final[dict[str, str]] = {"normal": "ปกติ", "urgent": "เร่งด่วน"}
STATUS_TH: Final[dict[str, str]] = {
    "not_started": "ยังไม่เริ่ม",
    "procurement": "จัดซื้อจัดจ้าง",
    "on_track": "ตามแผน",
    "delayed": "ล่าช้า",
    "stalled": "หยุดชะงัก",
    "completed": "แล้วเสร็จ",
    "cancelled": "ยกเลิก",
}
#: TPMAP's five poverty dimensions as tpmap.in.th names them (ด้าน…)
TPMAP_TH: Final[dict[str, str]] = {
    "income": "รายได้",
    "living": "ความเป็นอยู่",
    "health": "สุขภาพ",
    "education": "การศึกษา",
    "public_services": "การเข้าถึงบริการรัฐ",
}
#: the UN SDGs by number (the contract's sdg_goals, 1-17) with their common short Thai names;
#: no official Thai short form was found (Thai pages word some goals differently), so the
#: dashboards always show the number in front
SDG_TH: Final[dict[int, str]] = {
    1: "ขจัดความยากจน",
    2: "ขจัดความหิวโหย",
    3: "การมีสุขภาพและความเป็นอยู่ที่ดี",
    4: "การศึกษาที่มีคุณภาพ",
    5: "ความเท่าเทียมทางเพศ",
    6: "การจัดการน้ำและสุขาภิบาล",
    7: "พลังงานสะอาดที่ทุกคนเข้าถึงได้",
    8: "การจ้างงานที่มีคุณค่าและการเติบโตทางเศรษฐกิจ",
    9: "อุตสาหกรรม นวัตกรรม และโครงสร้างพื้นฐาน",
    10: "ลดความเหลื่อมล้ำ",
    11: "เมืองและชุมชนที่ยั่งยืน",
    12: "การผลิตและการบริโภคที่ยั่งยืน",
    13: "การรับมือการเปลี่ยนแปลงสภาพภูมิอากาศ",
    14: "ทรัพยากรทางทะเล",
    15: "ระบบนิเวศบนบก",
    16: "สังคมสงบสุข ยุติธรรม และไม่แบ่งแยก",
    17: "ความร่วมมือเพื่อการพัฒนาที่ยั่งยืน",
}
# the label tables must cover the contract's enumerations exactly (a new value needs a label)
assert tuple(CATEGORY_TH) == CATEGORIES
assert tuple(CHANNEL_TH) == CHANNELS
assert tuple(PROGRAM_TH) == PROGRAMS
assert tuple(STATUS_TH) == PROJECT_STATUSES
assert tuple(PRIORITY_TH) == PRIORITIES
assert tuple(TPMAP_TH) == TPMAP_DIMENSIONS
assert tuple(SDG_TH) == tuple(range(1, 18))
