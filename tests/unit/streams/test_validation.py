"""Contract v1 validation: round-trip of good events and the reason of every malformed one."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from streams.contract import decode, encode
from streams.reasons import Reason, Rejection
from streams.validation import MAX_PAYLOAD_BYTES, Validator, citizen_id_ok

NOW_MS = 1_790_000_000_000  # 2026-09-21, a fixed "now" for the future-time check


def thai_check_digit(first12: str) -> int:
    """Independent oracle: weights 13 .. 2 over the first 12 digits."""
    weights = range(13, 1, -1)
    s = sum(int(d) * w for d, w in zip(first12, weights, strict=True))
    return (11 - s % 11) % 10


def good_id(first12: str) -> str:
    return first12 + str(thai_check_digit(first12))


GRIEVANCE: dict[str, Any] = {
    "schema": "grievance.v1",
    "event_id": "0b7e8a1c-6a0e-4f5e-9b6a-2f1d3c4b5a69",
    "occurred_at": "2026-09-20T10:15:00+07:00",
    "district_code": "1004",  # เขตบางรัก
    "subdistrict_code": "100401",
    "source": "damrongdhama-center",
    "grievance_id": "G-1004-0001",
    "type": "received",
    "category": "debt",
    "channel": "hotline_1567",
    "priority": "urgent",
    "due_at": "2026-09-23T10:15:00+07:00",
    "agency": "ศูนย์ดำรงธรรมอำเภอ",
    "complainant": {
        "citizen_id": good_id("110170012345"),
        "name": "สมชาย ใจดี",
        "phone": "081-234-5678",
    },
}
PROJECT: dict[str, Any] = {
    "schema": "project.v1",
    "event_id": "5d1f8f0e-2b9c-4c1a-8d33-0a9b8c7d6e5f",
    "occurred_at": "2026-09-18T14:00:00",  # naive: Bangkok time
    "district_code": "4001",  # เมืองขอนแก่น
    "source": "cdd-bpm",
    "project_id": "PRJ-4001-2569-0007",
    "program": "kok_nong_na",
    "fiscal_year": 2569,
    "status": "delayed",
    "progress_pct": 42.5,
    "planned_pct": 60,
    "budget_allocated_thb": 190000.0,
    "budget_obligated_thb": 150000.0,
    "budget_disbursed_thb": 80000,
    "target_households": 120,
    "reached_households": 51,
    "sdg_goals": [1, 2, 6],
    "tpmap_dimensions": ["income", "living"],
}


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(max_future_skew_s=3600, clock=lambda: NOW_MS / 1000)


def _check(validator: Validator, raw: bytes) -> dict[str, Any] | Rejection:
    return validator.payload(raw, NOW_MS)


@pytest.mark.parametrize("event", [GRIEVANCE, PROJECT], ids=["grievance", "project"])
def test_round_trip_keeps_every_field(validator: Validator, event: dict[str, Any]) -> None:
    raw = encode(event)
    checked = _check(validator, raw)
    assert not isinstance(checked, Rejection), checked
    public = {k: v for k, v in checked.items() if not k.startswith("_")}
    assert public == event
    assert decode(raw) == event


def test_checked_times_are_utc_epoch_ms(validator: Validator) -> None:
    g = _check(validator, encode(GRIEVANCE))
    p = _check(validator, encode(PROJECT))
    assert isinstance(g, dict) and isinstance(p, dict)
    # 2026-09-20 10:15 +07:00 = 03:15 UTC; computed by hand from the epoch
    day_ms = 86_400_000
    days = (2026 - 1970) * 365 + 14  # leap days 1972 .. 2024
    sep20 = days + 31 + 28 + 31 + 30 + 31 + 30 + 31 + 31 + 19
    assert g["_ms"] == sep20 * day_ms + 3 * 3_600_000 + 15 * 60_000
    assert g["_due_ms"] == g["_ms"] + 3 * day_ms
    # naive 14:00 in Bangkok = 07:00 UTC on 18 Sep
    assert p["_ms"] == (sep20 - 2) * day_ms + 7 * 3_600_000


def _g(**changes: Any) -> dict[str, Any]:
    e = copy.deepcopy(GRIEVANCE)
    for k, v in changes.items():
        if v is _DROP:
            del e[k]
        else:
            e[k] = v
    return e


def _p(**changes: Any) -> dict[str, Any]:
    e = copy.deepcopy(PROJECT)
    for k, v in changes.items():
        if v is _DROP:
            del e[k]
        else:
            e[k] = v
    return e


_DROP = object()
_BAD_CID = GRIEVANCE["complainant"]["citizen_id"][:12] + str(
    (int(GRIEVANCE["complainant"]["citizen_id"][12]) + 1) % 10
)

# (id, payload bytes, expected reason, expected field)
CASES: list[tuple[str, bytes, Reason, str]] = [
    ("truncated json", encode(GRIEVANCE)[:-10], Reason.MALFORMED_JSON, ""),
    ("python repr", str(GRIEVANCE).encode(), Reason.MALFORMED_JSON, ""),
    ("empty payload", b"", Reason.MALFORMED_JSON, ""),
    ("json array", orjson.dumps([GRIEVANCE]), Reason.NOT_AN_OBJECT, ""),
    ("json string", b'"grievance.v1"', Reason.NOT_AN_OBJECT, ""),
    ("json null", b"null", Reason.NOT_AN_OBJECT, ""),
    ("oversized", encode(GRIEVANCE) + b" " * MAX_PAYLOAD_BYTES, Reason.OVERSIZED, ""),
    ("schema v2", encode(_g(schema="grievance.v2")), Reason.UNKNOWN_SCHEMA, "schema"),
    ("schema missing", encode(_g(schema=_DROP)), Reason.MISSING_FIELD, "schema"),
    ("schema number", encode(_g(schema=1)), Reason.WRONG_TYPE, "schema"),
    ("no event_id", encode(_g(event_id=_DROP)), Reason.MISSING_FIELD, "event_id"),
    ("no due_at on received", encode(_g(due_at=_DROP)), Reason.MISSING_FIELD, "due_at"),
    (
        "no budget",
        encode(_p(budget_allocated_thb=_DROP)),
        Reason.MISSING_FIELD,
        "budget_allocated_thb",
    ),
    ("top-level citizen id", encode(_g(citizen_id="x")), Reason.UNKNOWN_FIELD, "citizen_id"),
    ("grievance field on project", encode(_p(category="debt")), Reason.UNKNOWN_FIELD, "category"),
    (
        "complainant extra field",
        encode(_g(complainant={"email": "a@b.c"})),
        Reason.UNKNOWN_FIELD,
        "complainant.email",
    ),
    ("district as int", encode(_g(district_code=1004)), Reason.WRONG_TYPE, "district_code"),
    ("progress as text", encode(_p(progress_pct="42.5")), Reason.WRONG_TYPE, "progress_pct"),
    ("fiscal year float", encode(_p(fiscal_year=2569.0)), Reason.WRONG_TYPE, "fiscal_year"),
    ("bool households", encode(_p(target_households=True)), Reason.WRONG_TYPE, "target_households"),
    ("complainant as text", encode(_g(complainant="สมชาย")), Reason.WRONG_TYPE, "complainant"),
    ("event_id not uuid", encode(_g(event_id="EVT-1")), Reason.INVALID_FORMAT, "event_id"),
    ("thai date", encode(_g(occurred_at="20/09/2569 10:15")), Reason.INVALID_FORMAT, "occurred_at"),
    ("date only", encode(_g(occurred_at="2026-09-20")), Reason.INVALID_FORMAT, "occurred_at"),
    ("district 3 digits", encode(_g(district_code="104")), Reason.INVALID_FORMAT, "district_code"),
    (
        "phone with letters",
        encode(_g(complainant={"phone": "call me"})),
        Reason.INVALID_FORMAT,
        "complainant.phone",
    ),
    ("empty source", encode(_g(source="")), Reason.INVALID_FORMAT, "source"),
    (
        "khet 1099",
        encode(_g(district_code="1099", subdistrict_code=_DROP)),
        Reason.UNKNOWN_DISTRICT,
        "district_code",
    ),
    ("province 99", encode(_p(district_code="9901")), Reason.UNKNOWN_DISTRICT, "district_code"),
    (
        "subdistrict of another district",
        encode(_g(subdistrict_code="100101")),
        Reason.UNKNOWN_SUBDISTRICT,
        "subdistrict_code",
    ),
    (
        "subdistrict 99",
        encode(_g(subdistrict_code="100499")),
        Reason.UNKNOWN_SUBDISTRICT,
        "subdistrict_code",
    ),
    ("category weather", encode(_g(category="weather")), Reason.UNKNOWN_ENUM, "category"),
    ("channel fax", encode(_g(channel="fax")), Reason.UNKNOWN_ENUM, "channel"),
    ("status done", encode(_p(status="done")), Reason.UNKNOWN_ENUM, "status"),
    (
        "tpmap wealth",
        encode(_p(tpmap_dimensions=["wealth"])),
        Reason.UNKNOWN_ENUM,
        "tpmap_dimensions",
    ),
    (
        "before 2000",
        encode(_p(occurred_at="1999-12-31T23:59:59+07:00")),
        Reason.IMPOSSIBLE_TIME,
        "occurred_at",
    ),
    (
        "two hours ahead",
        encode(_p(occurred_at="2026-09-21T21:00:00+00:00")),
        Reason.IMPOSSIBLE_TIME,
        "occurred_at",
    ),
    (
        "due in 2100",
        encode(_g(due_at="2100-01-01T00:00:00+07:00")),
        Reason.IMPOSSIBLE_TIME,
        "due_at",
    ),
    (
        "bad check digit",
        encode(_g(complainant={"citizen_id": _BAD_CID})),
        Reason.INVALID_CITIZEN_ID,
        "complainant.citizen_id",
    ),
    (
        "12-digit id",
        encode(_g(complainant={"citizen_id": "110170012345"})),
        Reason.INVALID_CITIZEN_ID,
        "complainant.citizen_id",
    ),
    ("gregorian fiscal year", encode(_p(fiscal_year=2026)), Reason.OUT_OF_RANGE, "fiscal_year"),
    ("sdg 18", encode(_p(sdg_goals=[1, 18])), Reason.OUT_OF_RANGE, "sdg_goals"),
    (
        "negative budget",
        encode(_p(budget_allocated_thb=-1)),
        Reason.OUT_OF_RANGE,
        "budget_allocated_thb",
    ),
    ("progress 120", encode(_p(progress_pct=120)), Reason.PROGRESS_OUT_OF_RANGE, "progress_pct"),
    ("planned -5", encode(_p(planned_pct=-5)), Reason.PROGRESS_OUT_OF_RANGE, "planned_pct"),
    (
        "disbursed > obligated",
        encode(_p(budget_disbursed_thb=160000.0)),
        Reason.BUDGET_INCONSISTENT,
        "budget_disbursed_thb",
    ),
    (
        "obligated > allocated",
        encode(_p(budget_obligated_thb=200000.0)),
        Reason.BUDGET_INCONSISTENT,
        "budget_obligated_thb",
    ),
    (
        "due before received",
        encode(_g(due_at="2026-09-19T10:15:00+07:00")),
        Reason.INCONSISTENT,
        "due_at",
    ),
    ("sdg repeated", encode(_p(sdg_goals=[2, 2])), Reason.INCONSISTENT, "sdg_goals"),
    (
        "phone as source",
        encode(_g(source="081-234-5678")),
        Reason.PERSONAL_DATA_IN_FIELD,
        "source",
    ),
    (
        "citizen id as event_id",
        encode(_g(event_id=good_id("310100123456"))),
        Reason.PERSONAL_DATA_IN_FIELD,
        "event_id",
    ),
    (
        "phone inside grievance_id",
        encode(_g(grievance_id="G-1004-0812345678")),
        Reason.PERSONAL_DATA_IN_FIELD,
        "grievance_id",
    ),
    (
        "+66 phone in agency",
        encode(_g(agency="โทร +66 81 234 5678")),
        Reason.PERSONAL_DATA_IN_FIELD,
        "agency",
    ),
    (
        "citizen id in project_id",
        encode(_p(project_id="P " + good_id("310100123456"))),
        Reason.PERSONAL_DATA_IN_FIELD,
        "project_id",
    ),
    (
        "phone in district_code, other faults too",
        encode(_g(district_code="0812345678", citizen="x")),
        Reason.PERSONAL_DATA_IN_FIELD,
        "district_code",
    ),
    ("name as source", encode(_g(source="สมชาย ใจดี")), Reason.INVALID_FORMAT, "source"),
]


@pytest.mark.parametrize(
    ("payload", "reason", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_payload_gives_its_reason(
    validator: Validator, payload: bytes, reason: Reason, field: str
) -> None:
    got = _check(validator, payload)
    assert isinstance(got, Rejection), f"accepted: {payload[:80]!r}"
    assert (got.reason, got.field) == (reason, field)
    # the words for people exist in both languages and never echo a citizen ID
    text = got.explain()
    assert got.reason.words_th in text and got.reason.words_en in text
    assert GRIEVANCE["complainant"]["citizen_id"] not in text and _BAD_CID not in text


def test_cases_cover_every_reason_the_validator_gives() -> None:
    distinct = {c[0] for c in CASES}
    assert len(distinct) == len(CASES) >= 25
    covered = {c[2] for c in CASES}
    # WRONG_TOPIC and WRONG_KEY depend on the topic and the key, not the payload: the worker
    # checks them (the simulator's bad events include them, see tests/unit/producers)
    assert covered == set(Reason) - {Reason.WRONG_TOPIC, Reason.WRONG_KEY}


@pytest.mark.parametrize(
    "first12",
    [
        "110170012345",
        "310100123456",
        "123456789012",
        "500000000000",
        "899999999999",
        "100000000001",
    ],
)
def test_citizen_id_check_digit(first12: str) -> None:
    right = thai_check_digit(first12)
    assert citizen_id_ok(first12 + str(right))
    for wrong in range(10):
        if wrong != right:
            assert not citizen_id_ok(first12 + str(wrong))


def test_citizen_id_written_with_dashes_is_accepted(validator: Validator) -> None:
    cid = good_id("310100123456")
    dashed = f"{cid[0]}-{cid[1:5]}-{cid[5:10]}-{cid[10:12]}-{cid[12]}"
    got = _check(validator, encode(_g(complainant={"citizen_id": dashed})))
    assert not isinstance(got, Rejection), got
    for text in ("", "abcdefghijklm", "1" * 14, "๑๑๐๑๗๐๐๑๒๓๔๕๖"):
        assert not citizen_id_ok(text)
