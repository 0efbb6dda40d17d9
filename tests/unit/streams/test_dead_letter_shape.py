"""Dead letters keep where, why and the payload's shape, never what the event said; personal
numbers are recognised in the ways people write them, and not in hex ids or UUIDs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from streams.contract import encode
from streams.deadletters import dead_letter, structure
from streams.pdpa import Pseudonymizer, personal_number
from streams.reasons import Reason, Rejection
from streams.validation import MAX_PAYLOAD_BYTES, Validator, wrong_key

NAME = "สมหญิง ทดสอบนามสกุล"


def _cid(first12: str) -> str:
    total = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return first12 + str((11 - total % 11) % 10)


CID = _cid("310270481235")
BAD_CID = CID[:12] + str((int(CID[12]) + 1) % 10)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (CID, "citizen_id"),
        (f"{CID[0]}-{CID[1:5]}-{CID[5:10]}-{CID[10:12]}-{CID[12]}", "citizen_id"),
        (f"ref:{CID}", "citizen_id"),
        ("".join("๐๑๒๓๔๕๖๗๘๙"[int(d)] for d in CID), "citizen_id"),
        ("081-234-5678", "phone"),
        ("0812345678", "phone"),
        ("+66 81 234 5678", "phone"),
        ("+66812345678", "phone"),
        ("02 123 4567", "phone"),
        ("โทร.081.234.5678", "phone"),
        ("G-1001-0812345678", "phone"),
        (BAD_CID, ""),  # 13 digits, wrong check digit: not an ID (and not a phone)
        ("G-1001-C0812345678", ""),  # glued to a letter: a hex id
        ("0b7e8a1c-6a0e-4f5e-9b6a-2f1d3c4b5a69", ""),
        ("PRJ-4001-2569-00000007", ""),
        ("hotline 1567", ""),
        ("1234567", ""),
        ("", ""),
    ],
)
def test_personal_numbers_in_the_ways_they_are_written(text: str, kind: str) -> None:
    assert personal_number(text) == kind


@dataclass
class Rec:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


GOOD: dict[str, Any] = {
    "schema": "grievance.v1",
    "event_id": "0b7e8a1c-6a0e-4f5e-9b6a-2f1d3c4b5a69",
    "occurred_at": "2026-09-20T10:15:00+07:00",
    "district_code": "1004",
    "source": "damrongdhama-center",
    "grievance_id": "G-1004-0001",
    "type": "received",
    "category": "debt",
    "channel": "hotline_1567",
    "priority": "urgent",
    "due_at": "2026-09-23T10:15:00+07:00",
    "complainant": {"citizen_id": CID, "name": NAME, "phone": "081-234-5678"},
}


def _with(**extra: Any) -> bytes:
    return encode({**GOOD, **extra})


HOSTILE = [
    _with()[:-40],
    _with(agency="ก" * MAX_PAYLOAD_BYTES),
    _with(channel="walk").replace(b'"walk"', b'"w\xffalk"'),
    _with().replace(b'"urgent"', b"NaN"),
    _with(source=NAME),
    _with(source="081-234-5678"),
    _with(event_id=CID),
    _with(event_id=NAME),
    _with(**{NAME: "x"}),
    _with(complainent={"name": NAME}),
    _with(complainant={"nmae": NAME, "citizen_id": CID}),
    _with(complainant=NAME),
    _with(category=NAME),
    _with(schema=NAME),
    _with(occurred_at=NAME),
    _with(due_at=f"{NAME} {CID}"),
    _with(complainant={"citizen_id": BAD_CID, "name": NAME}),
    _with(grievance_id=f"G {CID}"),
    _with(agency=f"{NAME} 081-234-5678"),
    _with(subdistrict_code=NAME),
    orjson.dumps([NAME, CID]),
    orjson.dumps({**GOOD, "schema": "project.v1", "fiscal_year": int(CID)}),
    orjson.dumps({**GOOD, "schema": "project.v1", "project_id": NAME, "fiscal_year": 2569}),
]


@pytest.mark.parametrize("payload", HOSTILE, ids=[f"shape{i}" for i in range(len(HOSTILE))])
def test_a_dead_letter_says_where_and_why_but_nothing_the_event_said(payload: bytes) -> None:
    got = Validator().check(payload, 1_790_000_000_000)
    assert isinstance(got, Rejection)
    dl = dead_letter(Rec(7, 1_790_000_000_000, b"1004", payload), got, "g", 3, Pseudonymizer("k"))
    stored = orjson.dumps(dl.row).decode() + dl.record.decode() + got.explain()
    for secret in (NAME, *NAME.split(), CID, BAD_CID, "0812345678", "812345678"):
        assert secret not in stored
        assert secret not in "".join(ch for ch in stored if ch.isdigit() or not secret.isdigit())
    record = orjson.loads(dl.record)
    assert (record["topic"], record["partition"], record["offset"]) == ("g", 3, 7)
    assert record["size"] == len(payload) and dl.row[11] == len(payload)
    assert record["digest"] == dl.row[12] and len(record["digest"]) == 32
    assert record["reason"] == got.reason.value


def test_the_digest_is_keyed_and_follows_the_bytes() -> None:
    a, b = Pseudonymizer("key-a"), Pseudonymizer("key-b")
    assert a.digest(b"x") == a.digest(b"x") != a.digest(b"y")
    assert a.digest(b"x") != b.digest(b"x")


def test_structure_keeps_field_names_types_and_codes_only() -> None:
    event = {**GOOD, "complainent": {"name": NAME}, NAME: 1, "sdg_goals": [1, 2, 3]}
    assert structure(event) == {
        "schema": "grievance.v1",
        "event_id": "string(36)",
        "occurred_at": "string(25)",
        "district_code": "1004",
        "source": "string(19)",
        "grievance_id": "string(11)",
        "type": "received",
        "category": "debt",
        "channel": "hotline_1567",
        "priority": "urgent",
        "due_at": "string(25)",
        "complainant": {
            "citizen_id": "string(13)",
            "name": f"string({len(NAME)})",
            "phone": "string(12)",
        },
        "complainent": {"name": f"string({len(NAME)})"},
        "?14": "integer",
        "sdg_goals": ["list(3)", "integer", "integer", "integer"],
    }


def test_wrong_key_says_which_kind_of_key_not_the_key() -> None:
    assert wrong_key(None) == Rejection(Reason.WRONG_KEY, "key", "no key")
    assert wrong_key(b"1002").detail == "key 1002 is another district"
    assert wrong_key(CID.encode()).detail == "the key is not a district code"
