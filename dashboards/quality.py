"""Data quality: accepted vs rejected by reason and source, late and duplicate events, silent
districts, latest dead letters."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards.clickhouse import Sql
from dashboards.common import (
    PERCENT,
    bar_panel,
    base_dashboard,
    ch_target,
    custom_variable,
    district_link,
    in_variable,
    sql_label,
    stat_panel,
    steps,
    table_panel,
    timeseries_panel,
    variable_uint,
)
from dashboards.grains import SERIES_TIME, quality_rows
from streams.reasons import Reason

__all__ = ["UID", "build"]

UID = "warroom-quality"
REASON_TH = {r.value: r.words_th for r in Reason}
OUTCOME_TH = {
    "accepted": "รับเข้า",
    "rejected": "ปฏิเสธ",
    "duplicate": "ซ้ำ",
    "late": "มาช้า",
    "too_late": "ช้าเกินรับ",
    "ahead": "ล้ำหน้านาฬิกา",  # a current event far ahead of a lagging clock (docs/contract.md)
}
STREAM = in_variable("stream", "stream")
# the selected streams' quality rows in the time range, at the grain the range allows
QUALITY = quality_rows(STREAM, series=False)
QUALITY_SERIES = quality_rows(STREAM, series=True)

TOTALS_SQL = Sql(
    f"""
SELECT
    sumIf(`count`, outcome = 'accepted') AS accepted,
    sumIf(`count`, outcome = 'rejected') AS rejected,
    sumIf(`count`, outcome = 'duplicate') AS duplicate,
    sumIf(`count`, outcome = 'late') AS late,
    sumIf(`count`, outcome = 'too_late') AS too_late,
    round(100 * rejected / nullIf(accepted + rejected + duplicate, 0), 2) AS rejected_pct
FROM {QUALITY}
""",
    ("accepted", "rejected", "duplicate", "late", "too_late", "rejected_pct"),
)

OUTCOMES_OVER_TIME_SQL = Sql(
    f"""
SELECT {SERIES_TIME} AS time, {sql_label("outcome", OUTCOME_TH)} AS outcome_th,
    sum(`count`) AS events
FROM {QUALITY_SERIES}
GROUP BY time, outcome_th
ORDER BY time, outcome_th
""",
    ("time", "outcome_th", "events"),
    "timeseries",
)

BY_REASON_SQL = Sql(
    f"""
SELECT {sql_label("reason", REASON_TH)} AS reason_th, sum(`count`) AS rejected
FROM {QUALITY}
WHERE outcome = 'rejected'
GROUP BY reason_th
ORDER BY rejected DESC, reason_th
""",
    ("reason_th", "rejected"),
)

BY_SOURCE_SQL = Sql(
    f"""
SELECT
    if(source = '', '(ไม่ระบุ)', source) AS source_name,
    stream,
    sumIf(`count`, outcome = 'accepted') AS accepted,
    sumIf(`count`, outcome = 'rejected') AS rejected,
    sumIf(`count`, outcome = 'duplicate') AS duplicate,
    sumIf(`count`, outcome IN ('late', 'too_late')) AS late,
    round(100 * rejected / nullIf(accepted + rejected + duplicate, 0), 2) AS rejected_pct
FROM {QUALITY}
GROUP BY source_name, stream
ORDER BY rejected_pct DESC, source_name, stream
""",
    ("source_name", "stream", "accepted", "rejected", "duplicate", "late", "rejected_pct"),
)

LATE_DUPLICATE_SQL = Sql(
    f"""
SELECT {SERIES_TIME} AS time,
    sumIf(`count`, outcome = 'late') AS late,
    sumIf(`count`, outcome = 'too_late') AS too_late,
    sumIf(`count`, outcome = 'duplicate') AS duplicate
FROM {QUALITY_SERIES}
WHERE outcome IN ('late', 'too_late', 'duplicate')
GROUP BY time
ORDER BY time
""",
    ("time", "late", "too_late", "duplicate"),
    "timeseries",
)

# a district is silent when no accepted event (either stream) happened for $silent_hours; the
# last 30 days are searched, older silence shows as "no data in 30 days". The raw event tables
# know every accepted event's district; quality_buckets do not (only rejections carry one).
SILENT_FROM = f"""
FROM ref_districts AS d FINAL
LEFT JOIN (
    SELECT district_code, toDateTime(max(last_at)) AS last_seen, 1 AS seen
    FROM (
        SELECT district_code, max(occurred_at) AS last_at
        FROM grievance_events
        WHERE occurred_at <= ($__toTime_ms) AND occurred_at > ($__toTime_ms) - INTERVAL 30 DAY
        GROUP BY district_code
        UNION ALL
        SELECT district_code, max(occurred_at) AS last_at
        FROM project_events
        WHERE occurred_at <= ($__toTime_ms) AND occurred_at > ($__toTime_ms) - INTERVAL 30 DAY
        GROUP BY district_code
    )
    GROUP BY district_code
) AS q ON q.district_code = d.district_code
WHERE q.seen = 0 OR q.last_seen < ($__toTime_ms) - toIntervalHour({variable_uint("silent_hours")})
"""

SILENT_SQL = Sql(
    f"""
SELECT
    d.district_code AS district_code,
    d.name_th AS district,
    d.province_th AS province,
    if(q.seen = 1, toString(q.last_seen, 'Asia/Bangkok'), 'ไม่มีข้อมูลใน 30 วัน') AS last_seen_th,
    if(q.seen = 1, round(dateDiff('second', q.last_seen, ($__toTime_ms)) / 3600, 1), NULL)
        AS hours_silent
{SILENT_FROM}
ORDER BY q.seen DESC, hours_silent DESC, district_code
LIMIT 300
""",
    ("district_code", "district", "province", "last_seen_th", "hours_silent"),
)

SILENT_COUNT_SQL = Sql(
    f"""
SELECT countIf(q.seen = 1) AS went_silent, countIf(q.seen = 0) AS no_data
{SILENT_FROM}
""",
    ("went_silent", "no_data"),
)

DEAD_LETTERS_SQL = Sql(
    f"""
SELECT
    received_at,
    topic,
    {sql_label("reason", REASON_TH)} AS reason_th,
    field,
    detail,
    source,
    district_code,
    substring(payload, 1, 300) AS payload
FROM dead_letters FINAL
WHERE $__timeFilter_ms(received_at)
ORDER BY received_at DESC, topic, kafka_partition, kafka_offset
LIMIT 100
""",
    ("received_at", "topic", "reason_th", "field", "detail", "source", "district_code", "payload"),
)


def build() -> dashboard.Dashboard:
    return (
        base_dashboard(
            UID,
            "คุณภาพข้อมูล (Data quality)",
            "What the producers send and what warroom does with it: accepted, rejected (by "
            "reason and source), duplicate, late and too-late events; districts that went "
            "silent; the latest dead letters (payloads redacted). Invariant: produced = "
            "accepted + rejected + duplicate.",
            ["quality", "ops"],
        )
        .with_variable(
            custom_variable("stream", "สตรีม", {"grievance": "เรื่องร้องเรียน", "project": "โครงการ"})
        )
        .with_variable(
            custom_variable(
                "silent_hours",
                "เงียบเกิน (ชั่วโมง)",
                {"2": "2 ชม.", "6": "6 ชม.", "12": "12 ชม.", "24": "24 ชม.", "72": "72 ชม."},
                all_=False,
                default="6",
            )
        )
        .with_row(dashboard.Row("ภาพรวม"))
        .with_panel(
            stat_panel(
                "เหตุการณ์ในช่วงเวลา",
                TOTALS_SQL,
                description="late and too_late are subsets of accepted. rejected % = rejected / "
                "(accepted + rejected + duplicate).",
                labels={
                    "accepted": "รับเข้า",
                    "rejected": "ปฏิเสธ",
                    "duplicate": "ซ้ำ",
                    "late": "มาช้า",
                    "too_late": "ช้าเกินรับ",
                    "rejected_pct": "% ปฏิเสธ",
                },
                width=18,
            )
        )
        .with_panel(
            stat_panel(
                "อำเภอที่เงียบ",
                SILENT_COUNT_SQL,
                description="Districts with no accepted event for the selected number of hours "
                "(went silent), and districts with none in 30 days (no data).",
                thresholds=steps(("green", None), ("orange", 1)),
                labels={"went_silent": "หยุดส่งข้อมูล", "no_data": "ไม่มีข้อมูล 30 วัน"},
                width=6,
            )
        )
        .with_panel(
            timeseries_panel(
                "รับเข้า vs ปฏิเสธ (ตามเวลา)",
                ch_target(OUTCOMES_OVER_TIME_SQL),
                description="Events per outcome per interval (event-time buckets).",
            )
        )
        .with_panel(
            timeseries_panel(
                "เหตุการณ์มาช้าและซ้ำ",
                ch_target(LATE_DUPLICATE_SQL),
                description="late = behind the watermark but still counted; too_late = past "
                "the grace period (counted, bucket not updated); duplicate = same event_id.",
                labels={"late": "มาช้า", "too_late": "ช้าเกินรับ", "duplicate": "ซ้ำ"},
            )
        )
        .with_row(dashboard.Row("การปฏิเสธตามเหตุผลและแหล่งข้อมูล"))
        .with_panel(
            bar_panel(
                "ปฏิเสธตามเหตุผล",
                BY_REASON_SQL,
                x_field="reason_th",
                horizontal=True,
                description="Rejected (dead-lettered) events per reason.",
                labels={"rejected": "ปฏิเสธ"},
                width=10,
                height=10,
            )
        )
        .with_panel(
            table_panel(
                "คุณภาพตามแหล่งข้อมูล (source)",
                BY_SOURCE_SQL,
                description="Per producing system and stream; worst rejection rate first.",
                labels={
                    "source_name": "แหล่งข้อมูล",
                    "stream": "สตรีม",
                    "accepted": "รับเข้า",
                    "rejected": "ปฏิเสธ",
                    "duplicate": "ซ้ำ",
                    "late": "มาช้า",
                    "rejected_pct": "% ปฏิเสธ",
                },
                units={"rejected_pct": PERCENT},
                colored={"rejected_pct": steps(("green", None), ("orange", 1), ("red", 5))},
                width=14,
                height=10,
            )
        )
        .with_row(dashboard.Row("อำเภอที่เงียบและ dead letters"))
        .with_panel(
            table_panel(
                "อำเภอที่ไม่ส่งข้อมูล",
                SILENT_SQL,
                description="Districts with no accepted event (grievance or project, by event "
                "time) for $silent_hours hours, longest silence first, then districts without "
                "any data in 30 days. Office hours are not taken into account.",
                labels={
                    "district_code": "รหัส",
                    "district": "อำเภอ/เขต",
                    "province": "จังหวัด",
                    "last_seen_th": "ข้อมูลล่าสุด",
                    "hours_silent": "เงียบมา (ชม.)",
                },
                colored={"hours_silent": steps(("orange", None), ("red", 24))},
                links={"district": district_link()},
                width=10,
                height=12,
            )
        )
        .with_panel(
            table_panel(
                "Dead letters ล่าสุด",
                DEAD_LETTERS_SQL,
                description="Latest rejected messages with their reason; payloads are redacted "
                "(complainant removed, digit runs masked) and cut to 300 characters.",
                labels={
                    "received_at": "เวลา (Kafka)",
                    "topic": "topic",
                    "reason_th": "เหตุผล",
                    "field": "ช่องข้อมูล",
                    "detail": "รายละเอียด",
                    "source": "แหล่งข้อมูล",
                    "district_code": "รหัสอำเภอ",
                    "payload": "ข้อมูล (ปกปิดแล้ว)",
                },
                width=14,
                height=12,
            )
        )
    )
