"""Why an event is rejected: machine-readable codes and the plain words shown to people."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Reason", "Rejection"]


class Reason(StrEnum):
    """Rejection reasons. The value is what the dead-letter topic and ClickHouse store."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    OVERSIZED = "oversized"
    UNKNOWN_SCHEMA = "unknown_schema"
    WRONG_TOPIC = "wrong_topic"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    INVALID_FORMAT = "invalid_format"
    UNKNOWN_DISTRICT = "unknown_district"
    UNKNOWN_SUBDISTRICT = "unknown_subdistrict"
    UNKNOWN_ENUM = "unknown_enum"
    IMPOSSIBLE_TIME = "impossible_time"
    INVALID_CITIZEN_ID = "invalid_citizen_id"
    OUT_OF_RANGE = "out_of_range"
    PROGRESS_OUT_OF_RANGE = "progress_out_of_range"
    BUDGET_INCONSISTENT = "budget_inconsistent"
    INCONSISTENT = "inconsistent"
    PERSONAL_DATA_IN_FIELD = "personal_data_in_field"
    WRONG_KEY = "wrong_key"

    @property
    def words_th(self) -> str:
        return _WORDS[self][0]

    @property
    def words_en(self) -> str:
        return _WORDS[self][1]


_WORDS: dict[Reason, tuple[str, str]] = {
    Reason.MALFORMED_JSON: ("ข้อมูลไม่ใช่ JSON ที่ถูกต้อง", "the payload is not valid JSON"),
    Reason.NOT_AN_OBJECT: ("ข้อมูลต้องเป็นออบเจกต์ JSON", "the payload must be a JSON object"),
    Reason.OVERSIZED: ("ข้อมูลมีขนาดใหญ่เกินกำหนด", "the payload is larger than allowed"),
    Reason.UNKNOWN_SCHEMA: ("ไม่รู้จักรูปแบบข้อมูล (schema)", "the schema is not one warroom knows"),
    Reason.WRONG_TOPIC: (
        "ส่งเหตุการณ์ผิดหัวข้อ (topic)",
        "the event was sent to the topic of another stream",
    ),
    Reason.MISSING_FIELD: ("ขาดข้อมูลที่จำเป็น", "a required field is missing"),
    Reason.UNKNOWN_FIELD: ("มีช่องข้อมูลที่ไม่อยู่ในสัญญาข้อมูล", "a field is not in the contract"),
    Reason.WRONG_TYPE: ("ชนิดข้อมูลไม่ถูกต้อง", "a field has the wrong type"),
    Reason.INVALID_FORMAT: ("รูปแบบข้อมูลไม่ถูกต้อง", "a field is not in the expected format"),
    Reason.UNKNOWN_DISTRICT: ("ไม่พบรหัสอำเภอ/เขตนี้", "the district code is not a known district"),
    Reason.UNKNOWN_SUBDISTRICT: (
        "ไม่พบรหัสตำบล/แขวงนี้ในอำเภอที่ระบุ",
        "the subdistrict code is not a subdistrict of that district",
    ),
    Reason.UNKNOWN_ENUM: ("ค่าที่ระบุไม่อยู่ในรายการที่กำหนด", "a value is not one of the allowed values"),
    Reason.IMPOSSIBLE_TIME: (
        "เวลาไม่สมเหตุสมผล (อนาคตไกลเกินไปหรือก่อนปี 2000)",
        "the time is impossible (far in the future or before 2000)",
    ),
    Reason.INVALID_CITIZEN_ID: (
        "เลขประจำตัวประชาชนไม่ถูกต้อง (เลขตรวจสอบไม่ตรง)",
        "the Thai citizen ID is invalid (check digit does not match)",
    ),
    Reason.OUT_OF_RANGE: ("ตัวเลขอยู่นอกช่วงที่กำหนด", "a number is out of range"),
    Reason.PROGRESS_OUT_OF_RANGE: (
        "ความก้าวหน้าต้องอยู่ระหว่าง 0–100%",
        "progress must be between 0 and 100 %",
    ),
    Reason.BUDGET_INCONSISTENT: (
        "งบประมาณไม่สอดคล้อง (เบิกจ่าย ≤ ก่อหนี้ผูกพัน ≤ จัดสรร)",
        "budget figures are inconsistent (disbursed ≤ obligated ≤ allocated)",
    ),
    Reason.INCONSISTENT: ("ข้อมูลขัดแย้งกันเอง", "fields contradict each other"),
    Reason.PERSONAL_DATA_IN_FIELD: (
        "พบเลขประจำตัวประชาชนหรือเบอร์โทรศัพท์ในช่องที่ไม่ใช่ข้อมูลผู้ร้องเรียน",
        "a citizen ID or phone number is in a field that is not the complainant's",
    ),
    Reason.WRONG_KEY: (
        "คีย์ของข้อความ (Kafka key) ต้องเป็นรหัสอำเภอของเหตุการณ์",
        "the record's Kafka key must be the event's district code",
    ),
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected event: the reason, the field it concerns (if any) and a detail for engineers."""

    reason: Reason
    field: str = ""
    detail: str = ""

    def explain(self) -> str:
        """Plain words for an officer, in Thai then English."""
        where = f" [{self.field}]" if self.field else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.reason.words_th} / {self.reason.words_en}{where}{detail}"
