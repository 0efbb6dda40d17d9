"""Grievances: by category and channel, resolution time p50/p90, reopen/escalation, SLA."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import overview
from dashboards.clickhouse import Sql
from dashboards.common import (
    PERCENT,
    SECONDS,
    bar_panel,
    base_dashboard,
    ch_target,
    custom_variable,
    pie_panel,
    query_variable,
    sql_label,
    stat_panel,
    steps,
    table_panel,
    timeseries_panel,
)
from dashboards.district import REGION_SQL
from dashboards.grains import SERIES_TIME, metric_rows
from dashboards.queries import Scope, histogram_quantile
from streams.labels import CATEGORY_TH, CHANNEL_TH

__all__ = ["SCOPE", "UID", "build"]

UID = "warroom-grievances"
# region and category only: province/district filters live on the district drill-down
SCOPE = Scope(region_var=True, category_var=True)
# what each panel reads besides the time range and the region (metric_rows adds those)
RECEIVED = f"metric = 'grievance_received' AND {SCOPE.category('dim1')}"
RESOLVED_BUCKETS = f"metric = 'grievance_resolved_seconds_bucket' AND {SCOPE.category('dim1')}"
SLA = f"metric = 'grievance_resolved_sla' AND {SCOPE.category('dim1')}"
EVENTS_AND_RECEIVED = f"""metric IN ('grievance_event', 'grievance_received')
    AND ((metric = 'grievance_event' AND {SCOPE.category("dim2")})
        OR (metric = 'grievance_received' AND {SCOPE.category("dim1")}))"""

BY_CATEGORY_SQL = Sql(
    f"""
SELECT {sql_label("dim1", CATEGORY_TH)} AS category, sum(value) AS received
FROM {metric_rows(SCOPE, RECEIVED, series=False)}
GROUP BY category
ORDER BY received DESC, category
""",
    ("category", "received"),
)

BY_CHANNEL_SQL = Sql(
    f"""
SELECT {sql_label("dim2", CHANNEL_TH)} AS channel, sum(value) AS received
FROM {metric_rows(SCOPE, RECEIVED, series=False)}
GROUP BY channel
ORDER BY received DESC, channel
""",
    ("channel", "received"),
)

CATEGORY_OVER_TIME_SQL = Sql(
    f"""
SELECT {SERIES_TIME} AS time, {sql_label("dim1", CATEGORY_TH)} AS category,
    sum(value) AS received
FROM {metric_rows(SCOPE, RECEIVED, series=True)}
GROUP BY time, category
ORDER BY time, category
""",
    ("time", "category", "received"),
    "timeseries",
)

RESOLUTION_QUANTILES_SQL = Sql(
    f"""
SELECT time,
    {histogram_quantile(0.5, "les", "counts")} AS p50,
    {histogram_quantile(0.9, "les", "counts")} AS p90
FROM (
    SELECT time,
        arrayMap(x -> x.1, arraySort(groupArray((le, n)))) AS les,
        arrayMap(x -> x.2, arraySort(groupArray((le, n)))) AS counts
    FROM (
        SELECT {SERIES_TIME} AS time,
            if(dim2 = '+Inf', inf, toFloat64(dim2)) AS le,
            sum(value) AS n
        FROM {metric_rows(SCOPE, RESOLVED_BUCKETS, series=True)}
        GROUP BY time, le
    )
    GROUP BY time
)
ORDER BY time
""",
    ("time", "p50", "p90"),
    "timeseries",
)

RATES_OVER_TIME_SQL = Sql(
    f"""
SELECT {SERIES_TIME} AS time,
    round(100 * sumIf(value, metric = 'grievance_event' AND dim1 = 'reopened')
        / nullIf(sumIf(value, metric = 'grievance_event' AND dim1 = 'resolved'), 0), 2)
        AS reopen_pct,
    round(100 * sumIf(value, metric = 'grievance_event' AND dim1 = 'escalated')
        / nullIf(sumIf(value, metric = 'grievance_received'), 0), 2) AS escalation_pct
FROM {metric_rows(SCOPE, EVENTS_AND_RECEIVED, series=True)}
GROUP BY time
ORDER BY time
""",
    ("time", "reopen_pct", "escalation_pct"),
    "timeseries",
)

RATES_SQL = Sql(
    f"""
SELECT
    round(100 * sumIf(value, metric = 'grievance_event' AND dim1 = 'reopened')
        / nullIf(sumIf(value, metric = 'grievance_event' AND dim1 = 'resolved'), 0), 1)
        AS reopen_pct,
    round(100 * sumIf(value, metric = 'grievance_event' AND dim1 = 'escalated')
        / nullIf(sumIf(value, metric = 'grievance_received'), 0), 1) AS escalation_pct
FROM {metric_rows(SCOPE, EVENTS_AND_RECEIVED, series=False)}
""",
    ("reopen_pct", "escalation_pct"),
)

SLA_BY_PROVINCE_SQL = Sql(
    f"""
SELECT
    p.name_th AS province,
    p.region_th AS region,
    s.met AS met,
    s.missed AS missed,
    s.unknown AS unknown,
    round(100 * s.met / nullIf(s.met + s.missed, 0), 1) AS compliance_pct
FROM (
    SELECT province_code,
        sumIf(value, dim2 = 'met') AS met,
        sumIf(value, dim2 = 'missed') AS missed,
        sumIf(value, dim2 = 'unknown') AS unknown
    FROM {metric_rows(SCOPE, SLA, series=False)}
    GROUP BY province_code
) AS s
INNER JOIN ref_provinces AS p FINAL ON p.province_code = s.province_code
ORDER BY compliance_pct ASC, province
""",
    ("province", "region", "met", "missed", "unknown", "compliance_pct"),
)


def build() -> dashboard.Dashboard:
    return (
        base_dashboard(
            UID,
            "เรื่องร้องเรียน (Grievances)",
            "Damrongdhama grievances: what comes in by category and channel, how fast it is "
            "resolved (p50/p90), reopen and escalation rates, SLA compliance per province.",
            ["grievances"],
        )
        .with_variable(query_variable("region", "ภาค", REGION_SQL))
        .with_variable(custom_variable("category", "หมวดหมู่เรื่อง", CATEGORY_TH))
        .with_row(dashboard.Row("เรื่องที่รับ"))
        .with_panel(
            bar_panel(
                "รับเรื่องตามหมวดหมู่",
                BY_CATEGORY_SQL,
                x_field="category",
                description="Grievances received in the time range per category.",
                labels={"received": "รับเรื่อง"},
                width=10,
            )
        )
        .with_panel(
            pie_panel(
                "รับเรื่องตามช่องทาง",
                BY_CHANNEL_SQL,
                description="Grievances received in the time range per channel.",
                width=6,
            )
        )
        .with_panel(
            timeseries_panel(
                "รับเรื่องตามหมวดหมู่ (ตามเวลา)",
                ch_target(CATEGORY_OVER_TIME_SQL),
                description="Received per interval, one line per category.",
                stacked=True,
                width=8,
            )
        )
        .with_panel(overview.backlog_by_category_bar(SCOPE).span(24))
        .with_row(dashboard.Row("การแก้ไขปัญหา"))
        .with_panel(
            timeseries_panel(
                "ระยะเวลาแก้ไขเรื่อง p50 / p90",
                ch_target(RESOLUTION_QUANTILES_SQL),
                unit=SECONDS,
                description="Resolution time (received → resolved) quantiles per interval, "
                "interpolated from the cumulative histogram grievance_resolved_seconds_bucket "
                "like Prometheus' histogram_quantile (bounds 1 h, 4 h, 1 d, 3 d, 7 d, 15 d, 30 d).",
                labels={"p50": "มัธยฐาน (p50)", "p90": "p90"},
            )
        )
        .with_panel(
            timeseries_panel(
                "อัตราเปิดเรื่องซ้ำและส่งต่อ",
                ch_target(RATES_OVER_TIME_SQL),
                unit=PERCENT,
                description="Reopen rate = reopened / resolved events; escalation rate = "
                "escalated / received events, per interval.",
                labels={"reopen_pct": "เปิดเรื่องซ้ำ", "escalation_pct": "ส่งต่อ/ยกระดับ"},
                width=8,
            )
        )
        .with_panel(
            stat_panel(
                "อัตราเปิดซ้ำ / ส่งต่อ (ทั้งช่วงเวลา)",
                RATES_SQL,
                unit=PERCENT,
                decimals=1,
                description="Over the whole time range.",
                thresholds=steps(("green", None), ("orange", 5), ("red", 15)),
                labels={"reopen_pct": "เปิดเรื่องซ้ำ", "escalation_pct": "ส่งต่อ/ยกระดับ"},
                width=4,
                height=8,
            )
        )
        .with_panel(
            table_panel(
                "การแก้ไขตามกำหนด (SLA) รายจังหวัด",
                SLA_BY_PROVINCE_SQL,
                description="Resolved in the time range within their due_at (met) or after it "
                "(missed); unknown = no deadline known. Compliance = met / (met + missed). "
                "Worst provinces first.",
                labels={
                    "province": "จังหวัด",
                    "region": "ภาค",
                    "met": "ทันกำหนด",
                    "missed": "เกินกำหนด",
                    "unknown": "ไม่ทราบกำหนด",
                    "compliance_pct": "% ทันกำหนด",
                },
                units={"compliance_pct": PERCENT},
                colored={"compliance_pct": steps(("red", None), ("orange", 80), ("green", 95))},
                width=24,
                height=12,
            )
        )
    )
