"""Traffy Fondue CSV rows -> grievance events: names to DOPA codes, lifecycles, no free text."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import geothai
import orjson
import pytest

from producers.traffy import COLUMNS, TraffySummary, read_traffy
from streams.contract import encode
from streams.reasons import Rejection
from streams.validation import Validator


def code_of(district_th: str, province_th: str) -> str:
    """Oracle straight from geothai: the district with exactly this Thai name in the province."""
    (p,) = [p for p in geothai.provinces() if p.name_th == province_th]
    (d,) = [d for d in geothai.districts(p.code) if d.name_th == district_th]
    return d.code


def sub_of(district_code: str, sub_th: str) -> str:
    (s,) = [s for s in geothai.subdistricts(district_code) if s.name_th == sub_th]
    return s.code


PHONE = "0812345678"
# ticket, type, district, province, subdistrict, state, count_reopen, timestamp, expected
ROWS: list[tuple[str, str, str, str, str, str, str, str, str | None]] = [
    (
        "2022-AAA001",
        "{ถนน}",
        "บางรัก",
        "กรุงเทพมหานคร",
        "สีลม",
        "finish",
        "0",
        "2022-06-01 08:00:00",
        code_of("เขตบางรัก", "กรุงเทพมหานคร"),
    ),
    (
        "2022-AAA002",
        "{น้ำท่วม,ถนน}",
        "เขตจตุจักร",
        "กรุงเทพมหานคร",
        "ลาดยาว",
        "inprogress",
        "0",
        "2022-06-01 09:00:00",
        code_of("เขตจตุจักร", "กรุงเทพมหานคร"),
    ),
    (
        "2022-AAA003",
        "{ความสะอาด}",
        "ปทุมวัน",
        "กทม",
        "",
        "start",
        "0",
        "2022-06-01 10:00:00",
        code_of("เขตปทุมวัน", "กรุงเทพมหานคร"),
    ),
    (
        "2022-AAA004",
        "{}",
        "Bang Kapi",
        "Bangkok",
        "",
        "forward",
        "0",
        "2022-06-01 11:00:00",
        code_of("เขตบางกะปิ", "กรุงเทพมหานคร"),
    ),
    (
        "2022-AAA005",
        "{ท่อระบายน้ำ}",
        "เฉลิมพระเกียรติ",
        "นครราชสีมา",
        "",
        "finish",
        "2",
        "2022-06-02 08:30:00",
        code_of("เฉลิมพระเกียรติ", "นครราชสีมา"),
    ),
    (
        "2022-AAA006",
        "{ท่อระบายน้ำ}",
        "เฉลิมพระเกียรติ",
        "สระบุรี",
        "",
        "finish",
        "0",
        "2022-06-02 08:40:00",
        code_of("เฉลิมพระเกียรติ", "สระบุรี"),
    ),
    (
        "2022-AAA007",
        "{ถนน}",
        "เฉลิมพระเกียรติ",
        "",
        "",
        "finish",
        "0",
        "2022-06-02 08:50:00",
        None,
    ),  # ambiguous
    (
        "2022-AAA008",
        "{แสงสว่าง}",
        "อ.เมือง",
        "ขอนแก่น",
        "",
        "finish",
        "0",
        "2022-06-02 09:00:00",
        code_of("เมืองขอนแก่น", "ขอนแก่น"),
    ),
    (
        "2022-AAA009",
        "{แสงสว่าง}",
        "อำเภอเมืองเชียงใหม่",
        "จังหวัดเชียงใหม่",
        "ศรีภูมิ",
        "finish",
        "1",
        "2022-06-02 09:10:00",
        code_of("เมืองเชียงใหม่", "เชียงใหม่"),
    ),
    (
        "2022-AAA010",
        "{ร้องเรียน}",
        "หาดใหญ่",
        "สงขลา",
        "",
        "irrelevant",
        "0",
        "2022-06-02 09:20:00",
        code_of("หาดใหญ่", "สงขลา"),
    ),
    (
        "2022-AAA011",
        "{คนจรจัด}",
        "บางพลี",
        "สมุทรปราการ",
        "",
        "follow",
        "0",
        "2022-06-02 09:30:00",
        code_of("บางพลี", "สมุทรปราการ"),
    ),
    (
        "2022-AAA012",
        "{PM2.5}",
        "ไม่มีอำเภอนี้",
        "ขอนแก่น",
        "",
        "finish",
        "0",
        "2022-06-02 09:40:00",
        None,
    ),  # unknown
    (
        "2022-AAA013",
        "{ถนน}",
        "บางรัก",
        "จังหวัดที่ไม่มี",
        "",
        "finish",
        "0",
        "2022-06-02 09:50:00",
        None,
    ),  # bad province
    (
        "",
        "{ถนน}",
        "บางรัก",
        "กรุงเทพมหานคร",
        "",
        "finish",
        "0",
        "2022-06-02 10:00:00",
        None,
    ),  # no ticket
    (
        "2022-AAA015",
        "{ถนน}",
        "บางรัก",
        "กรุงเทพมหานคร",
        "",
        "finish",
        "0",
        "yesterday",
        None,
    ),  # bad time
    (
        "2022-AAA016",
        "{ถนน}",
        "บางรัก",
        "กรุงเทพมหานคร",
        "",
        "closed?",
        "0",
        "2022-06-02 10:10:00",
        None,
    ),  # state
    (
        "2022-AAA017",
        "{ถนน}",
        "บางรัก",
        "กรุงเทพมหานคร",
        "",
        "เสร็จสิ้น",
        "0",
        "2022-06-02 10:20:00",
        code_of("เขตบางรัก", "กรุงเทพมหานคร"),
    ),
    (
        "2022-AAA018",
        "{สายไฟ}",
        "ดินแดง",
        "กรุงเทพมหานคร",
        "",
        "กำลังดำเนินการ",
        "0",
        "2022-06-03 07:00:00.123456+00",
        code_of("เขตดินแดง", "กรุงเทพมหานคร"),
    ),
    (
        "2022-AAA019",
        "{เสียงรบกวน}",
        "สามพราน",
        "นครปฐม",
        "",
        "รอรับเรื่อง",
        "0",
        "2022-06-03 08:00:00",
        code_of("สามพราน", "นครปฐม"),
    ),
    (
        "2022-AAA020",
        "{ต้นไม้}",
        "Mueang Phuket",
        "Phuket",
        "",
        "finish",
        "0",
        "2022-06-03 09:00:00",
        code_of("เมืองภูเก็ต", "ภูเก็ต"),
    ),
    (
        "2022-AAA021",
        "{คลอง}",
        "บางบอน",
        "กรุงเทพมหานคร",
        "",
        "finish",
        "3",
        "2022-06-03 10:00:00",
        code_of("เขตบางบอน", "กรุงเทพมหานคร"),
    ),
    (
        "2022-AAA022",
        "{ถนน}",
        "",
        "กรุงเทพมหานคร",
        "",
        "finish",
        "0",
        "2022-06-03 11:00:00",
        None,
    ),  # no district
]
REASONS = {
    "2022-AAA007": "ambiguous_district",
    "2022-AAA012": "unknown_district",
    "2022-AAA013": "unknown_province",
    "": "missing_ticket_id",
    "2022-AAA015": "invalid_timestamp",
    "2022-AAA016": "unknown_state",
    "2022-AAA022": "missing_district",
}
CATEGORY = {"2022-AAA002": "flood", "2022-AAA003": "environment", "2022-AAA004": "other",
            "2022-AAA010": "misconduct", "2022-AAA011": "poverty",
            "2022-AAA005": "wastewater"}  # fmt: skip
FINAL = {"finish": "resolved", "inprogress": "in_progress", "follow": "in_progress",
         "forward": "forwarded", "irrelevant": "rejected", "start": "received",
         "เสร็จสิ้น": "resolved", "กำลังดำเนินการ": "in_progress", "รอรับเรื่อง": "received"}  # fmt: skip


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    path = tmp_path / "traffy.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for ticket, typ, district, province, sub, state, reopen, ts, _ in ROWS:
            w.writerow(
                {
                    "ticket_id": ticket,
                    "type": typ,
                    "organization": "สำนักงานเขต,การไฟฟ้านครหลวง",
                    "comment": f"ถนนพังมาก โทร {PHONE} ด่วน",
                    "photo": "https://storage.example/p.jpg",
                    "photo_after": "",
                    "coords": "100.52660,13.72863",
                    "address": "123/45 ซอยสีลม 9",
                    "subdistrict": sub,
                    "district": district,
                    "province": province,
                    "timestamp": ts,
                    "state": state,
                    "star": "4",
                    "count_reopen": reopen,
                    "last_activity": "2022-06-10 16:00:00",
                }
            )
    return path


def test_rows_map_to_the_right_district_or_a_stated_reason(csv_path: Path) -> None:
    summary = TraffySummary()
    events = [m.event for m in read_traffy(csv_path, summary)]
    assert summary.rows == len(ROWS) >= 20
    by_ticket: dict[str, list[dict[str, object]]] = {}
    for e in events:
        by_ticket.setdefault(str(e["grievance_id"]).removeprefix("traffy-"), []).append(e)
    for ticket, *_, expected in ROWS:
        if expected is None:
            assert ticket not in by_ticket
            continue
        assert {e["district_code"] for e in by_ticket[ticket]} == {expected}, ticket
    # every unmapped row is counted under its reason, with its row number (header is row 1)
    assert sum(summary.unmapped.values()) == len(REASONS)
    for ticket, reason in REASONS.items():
        row = next(i for i, r in enumerate(ROWS, start=2) if r[0] == ticket)
        assert row in summary.examples[reason], (ticket, reason)
    assert summary.mapped_rows == len(ROWS) - len(REASONS)


def test_lifecycles_categories_times_and_subdistricts(csv_path: Path) -> None:
    summary = TraffySummary()
    events = [m.event for m in read_traffy(csv_path, summary)]
    validator = Validator()
    times = [datetime.fromisoformat(str(e["occurred_at"])) for e in events]
    assert times == sorted(times)  # emitted in occurred_at order
    by_ticket: dict[str, list[dict[str, object]]] = {}
    for e in events:
        assert not isinstance(validator.event(orjson.loads(encode(e))), Rejection), e
        assert (e["channel"], e["source"], e["priority"]) == ("traffy", "traffy", "normal")
        by_ticket.setdefault(str(e["grievance_id"]).removeprefix("traffy-"), []).append(e)
    for ticket, _typ, _d, _p, sub, state, reopen, ts, expected in ROWS:
        if expected is None:
            continue
        steps = by_ticket[ticket]
        kinds = [e["type"] for e in steps]
        assert kinds[0] == "received" and kinds[-1] == FINAL[state], (ticket, kinds)
        assert kinds.count("reopened") == int(reopen)
        assert len(kinds) == 1 + int(reopen) + (FINAL[state] != "received")
        # naive timestamps are Bangkok time; "+00" ones are UTC
        first = datetime.fromisoformat(str(steps[0]["occurred_at"]))
        want = datetime.fromisoformat(ts)
        if want.tzinfo is None:
            want = want.replace(tzinfo=UTC) - timedelta(hours=7)
        assert first == want.replace(microsecond=want.microsecond // 1000 * 1000)  # ms precision
        if len(steps) > 1:
            last = datetime.fromisoformat(str(steps[-1]["occurred_at"]))
            assert last == datetime(2022, 6, 10, 9, 0, tzinfo=UTC)  # 16:00 Bangkok
        if ticket in CATEGORY:
            assert steps[0]["category"] == CATEGORY[ticket]
        if sub:
            assert steps[0]["subdistrict_code"] == sub_of(expected, sub)


def test_same_file_gives_the_same_event_ids_and_no_free_text(csv_path: Path) -> None:
    a = [m.event for m in read_traffy(csv_path, TraffySummary())]
    b = [m.event for m in read_traffy(csv_path, TraffySummary())]
    assert [e["event_id"] for e in a] == [e["event_id"] for e in b]
    assert len({e["event_id"] for e in a}) == len(a)
    wire = b"\n".join(encode(e) for e in a).decode()
    for text in (PHONE, "ถนนพังมาก", "ซอยสีลม", "13.72863", "storage.example", "การไฟฟ้านครหลวง"):
        assert text not in wire


def test_a_file_that_is_not_a_traffy_export_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a Traffy Fondue export"):
        list(read_traffy(path, TraffySummary()))


# --- dates, duplicates and odd rows (issue 10) ------------------------------------------------

BKK = timezone(timedelta(hours=7))


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    """A Traffy export of these rows; columns not given are blank, Bangkok district บางรัก."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({"district": "บางรัก", "province": "กรุงเทพมหานคร", "state": "finish",
                        "count_reopen": "0", **r})  # fmt: skip
    return path


def times_of(events: list[dict[str, object]], ticket: str) -> list[datetime]:
    return [
        datetime.fromisoformat(str(e["occurred_at"]))
        for e in events
        if e["grievance_id"] == f"traffy-{ticket}"
    ]


def test_buddhist_era_years_are_read_as_such(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "be.csv", [
        {"ticket_id": "BE1", "timestamp": "2569-06-01 08:00:00",
         "last_activity": "2569-06-03 09:30:00"},
        # 29 Feb 2567 B.E. = 2024 A.D., a leap year (2567 A.D. would not be one)
        {"ticket_id": "BE2", "timestamp": "2567-02-29 10:00:00", "state": "start"},
        {"ticket_id": "AD1", "timestamp": "2026-06-01 08:00:00",
         "last_activity": "2026-06-02 08:00:00"},
    ])  # fmt: skip
    summary = TraffySummary()
    events = [m.event for m in read_traffy(path, summary)]
    assert times_of(events, "BE1") == [
        datetime(2026, 6, 1, 8, 0, tzinfo=BKK),
        datetime(2026, 6, 3, 9, 30, tzinfo=BKK),
    ]
    assert times_of(events, "BE2") == [datetime(2024, 2, 29, 10, 0, tzinfo=BKK)]
    assert times_of(events, "AD1")[0] == datetime(2026, 6, 1, 8, 0, tzinfo=BKK)
    assert summary.be_rows == 2 and summary.notes["be_year"] == [2, 3]
    assert summary.mapped_rows == 3 and not summary.unmapped


@pytest.mark.parametrize(
    ("timestamp", "last_activity", "reason"),
    [
        ("2569-02-29 08:00:00", "", "impossible_date"),  # 2026 is a common year
        ("2569-04-31 08:00:00", "", "impossible_date"),  # April has 30 days in any era
        ("2300-01-01 08:00:00", "", "impossible_date"),  # neither A.D. (future) nor B.E.
        ("2450-01-01 08:00:00", "", "impossible_date"),  # B.E. 2450 = 1907 A.D.
        ("1999-12-31 08:00:00", "", "impossible_date"),  # before any Traffy export
        ("2026-06-01 08:00:00", "2569-13-01 08:00:00", "impossible_date"),
        ("yesterday", "", "invalid_timestamp"),
        ("", "", "invalid_timestamp"),
    ],
)
def test_impossible_dates_are_rejected_with_a_reason(
    tmp_path: Path, timestamp: str, last_activity: str, reason: str
) -> None:
    path = write_rows(tmp_path / "bad.csv", [
        {"ticket_id": "OK1", "timestamp": "2026-06-01 08:00:00"},
        {"ticket_id": "X1", "timestamp": timestamp, "last_activity": last_activity},
    ])  # fmt: skip
    summary = TraffySummary()
    events = [m.event for m in read_traffy(path, summary)]
    assert {e["grievance_id"] for e in events} == {"traffy-OK1"}
    assert dict(summary.unmapped) == {reason: 1}
    assert summary.examples[reason] == [3]


def test_last_activity_before_timestamp_is_counted(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "order.csv", [
        {"ticket_id": "L1", "timestamp": "2026-06-05 08:00:00",
         "last_activity": "2026-06-01 08:00:00"},
        {"ticket_id": "L2", "timestamp": "2026-06-05 08:00:00",
         "last_activity": "2026-06-06 08:00:00"},
        {"ticket_id": "L3", "timestamp": "2026-06-05 08:00:00", "last_activity": ""},
    ])  # fmt: skip
    summary = TraffySummary()
    events = [m.event for m in read_traffy(path, summary)]
    assert summary.last_before_timestamp == 1 and summary.notes["last_before_timestamp"] == [2]
    received, resolved = times_of(events, "L1")
    assert resolved - received == timedelta(seconds=1)  # never before receipt
    assert summary.mapped_rows == 3


def test_duplicate_rows_are_counted_and_sent_once(tmp_path: Path) -> None:
    row = {"ticket_id": "D1", "timestamp": "2026-06-05 08:00:00", "star": "3",
           "last_activity": "2026-06-06 08:00:00"}  # fmt: skip
    path = write_rows(tmp_path / "dup.csv", [
        row,
        {"ticket_id": "D2", "timestamp": "2026-06-05 09:00:00"},
        dict(row),  # the same full row
        {**row, "star": "5"},  # same ticket, state and timestamp; another rating
        {**row, "state": "inprogress"},  # a later snapshot of the ticket: not a duplicate
    ])  # fmt: skip
    summary = TraffySummary()
    events = [m.event for m in read_traffy(path, summary)]
    assert dict(summary.duplicates) == {"same row": 1, "same ticket_id+state+timestamp": 1}
    assert summary.notes["same row"] == [4]
    assert summary.notes["same ticket_id+state+timestamp"] == [5]
    assert summary.rows == 5 and summary.mapped_rows == 3
    d1 = [e for e in events if e["grievance_id"] == "traffy-D1"]
    # D1 finish (received, resolved) and D1 inprogress (received again, in_progress)
    assert sorted(str(e["type"]) for e in d1) == ["in_progress", "received", "received", "resolved"]
