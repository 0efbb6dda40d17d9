"""The war-room view shared by the national dashboard and the district drill-down."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries

from dashboards.clickhouse import Sql
from dashboards.common import (
    PERCENT,
    bar_panel,
    district_link,
    sql_label,
    sql_list,
    stat_panel,
    steps,
    table_panel,
    timeseries_panel,
)
from dashboards.common import ch_target as target
from dashboards.grains import SERIES_TIME, metric_rows
from dashboards.queries import Scope, current_fiscal_year, gauge_current
from streams.labels import CATEGORY_TH

__all__ = [
    "alerts_table",
    "backlog_by_category_bar",
    "budget_disbursement_stat",
    "new_today_stat",
    "open_backlog_stat",
    "overdue_stat",
    "projects_delayed_stat",
    "received_resolved_timeseries",
    "region_category_table",
    "top_overdue_table",
    "top_surge_table",
    "urgent_unassigned_stat",
]

SEVERITY_TH = {"info": "ข้อมูล", "warning": "เตือน", "critical": "วิกฤต"}
#: an alert's states in lifecycle order: two transitions at the same instant (pending and
#: firing of a rule without `for`) resolve to the later one
LIFECYCLE = ("pending", "firing", "escalated", "acknowledged", "resolved")
STATE_TH = {
    "pending": "รอยืนยัน",
    "firing": "กำลังแจ้งเตือน",
    "resolved": "คลี่คลายแล้ว",
    "acknowledged": "รับทราบแล้ว",
    "escalated": "ส่งต่อผู้ว่าฯ",
}


def new_today_sql(scope: Scope) -> Sql:
    return Sql(
        f"""
SELECT sum(value) AS value
FROM metric_buckets FINAL
WHERE metric = 'grievance_received'
    AND bucket >= toStartOfDay(($__toTime), 'Asia/Bangkok') AND bucket <= ($__toTime)
    AND {scope.geo} AND {scope.category("dim1")}
""",
        ("value",),
    )


def gauge_sum_sql(scope: Scope, metric: str, extra: str = "1 = 1") -> Sql:
    return Sql(
        f"SELECT sum(value) AS value FROM {gauge_current([metric], scope.geo, extra)}",
        ("value",),
    )


def new_today_stat(scope: Scope) -> stat.Panel:
    return stat_panel(
        "เรื่องร้องเรียนใหม่วันนี้",
        new_today_sql(scope),
        description="New grievances received since midnight (Asia/Bangkok) of the range's end day.",
    )


def open_backlog_stat(scope: Scope) -> stat.Panel:
    return stat_panel(
        "เรื่องค้างดำเนินการ",
        gauge_sum_sql(scope, "grievance_open", scope.category("dim1")),
        description="Open backlog: cases whose latest event is not resolved/closed/rejected.",
        thresholds=steps(("blue", None)),
    )


def overdue_stat(scope: Scope) -> stat.Panel:
    return stat_panel(
        "เกินกำหนด (SLA)",
        gauge_sum_sql(scope, "grievance_overdue", scope.category("dim1")),
        description="Open cases past their SLA deadline (due_at).",
        thresholds=steps(("green", None), ("orange", 1), ("red", 50)),
    )


def urgent_unassigned_stat(scope: Scope) -> stat.Panel:
    return stat_panel(
        "เร่งด่วนยังไม่มอบหมาย",
        gauge_sum_sql(scope, "grievance_urgent_unassigned", scope.category("dim1")),
        description="Urgent cases still only 'received' (nobody assigned yet).",
        thresholds=steps(("green", None), ("red", 1)),
    )


def projects_delayed_sql(scope: Scope) -> Sql:
    where = f"dim2 IN ('delayed', 'stalled') AND {scope.program('dim1')}"
    return Sql(
        f"SELECT sum(value) AS value FROM {gauge_current(['project_count'], scope.geo, where)}",
        ("value",),
    )


def projects_delayed_stat(scope: Scope) -> stat.Panel:
    return stat_panel(
        "โครงการล่าช้า/หยุดชะงัก",
        projects_delayed_sql(scope),
        description="Projects whose latest report says delayed or stalled.",
        thresholds=steps(("green", None), ("orange", 1), ("red", 100)),
    )


def budget_disbursement_sql(scope: Scope) -> Sql:
    metrics = [
        "project_budget_allocated_thb",
        "project_budget_disbursed_thb",
        "project_budget_planned_disbursed_thb",
    ]
    where = f"dim2 = {current_fiscal_year()} AND {scope.program('dim1')}"
    return Sql(
        f"""
SELECT
    round(100 * sumIf(value, metric = 'project_budget_disbursed_thb')
        / nullIf(sumIf(value, metric = 'project_budget_allocated_thb'), 0), 1) AS disbursed_pct,
    round(100 * sumIf(value, metric = 'project_budget_planned_disbursed_thb')
        / nullIf(sumIf(value, metric = 'project_budget_allocated_thb'), 0), 1) AS planned_pct
FROM {gauge_current(metrics, scope.geo, where)}
""",
        ("disbursed_pct", "planned_pct"),
    )


def budget_disbursement_stat(scope: Scope) -> stat.Panel:
    return stat_panel(
        "เบิกจ่ายงบประมาณ (ปีงบฯ ปัจจุบัน)",
        budget_disbursement_sql(scope),
        unit=PERCENT,
        decimals=1,
        description="Disbursed / allocated budget of the current fiscal year (B.E.), next to the "
        "quarterly plan's target for today.",
        thresholds=steps(("red", None), ("orange", 50), ("green", 90)),
        labels={"disbursed_pct": "เบิกจ่ายแล้ว", "planned_pct": "เป้าตามแผน"},
        width=8,
    )


def region_category_sql(scope: Scope) -> Sql:
    cells = ",\n    ".join(
        f"sumIf(g.value, g.dim1 = '{code}') AS `{label}`" for code, label in CATEGORY_TH.items()
    )
    where = scope.category("dim1")
    return Sql(
        f"""
SELECT
    p.region_th AS `ภาค`,
    {cells},
    sum(g.value) AS `รวม`
FROM (SELECT DISTINCT region, region_th FROM ref_provinces FINAL) AS p
LEFT JOIN {gauge_current(["grievance_open"], scope.geo, where)} AS g ON g.region = p.region
GROUP BY p.region, p.region_th
ORDER BY `รวม` DESC, p.region
""",
        ("ภาค", *CATEGORY_TH.values(), "รวม"),
    )


def region_category_table(scope: Scope) -> table.Panel:
    sql = region_category_sql(scope)
    cell = steps(("green", None), ("yellow", 25), ("orange", 100), ("red", 250))
    return table_panel(
        "เรื่องค้างดำเนินการ: ภาค × หมวดหมู่",
        sql,
        description="Open backlog per region and category; cells turn yellow/orange/red at "
        "25/100/250 open cases.",
        colored={name: cell for name in sql.columns[1:]},
        width=24,
        height=8,
    )


def top_overdue_sql(scope: Scope) -> Sql:
    where = scope.category("dim1")
    return Sql(
        f"""
SELECT
    g.district_code AS district_code,
    d.name_th AS district,
    d.province_th AS province,
    sumIf(g.value, g.metric = 'grievance_overdue') AS overdue,
    sumIf(g.value, g.metric = 'grievance_open') AS open_cases,
    round(100 * overdue / nullIf(open_cases, 0), 1) AS overdue_pct
FROM {gauge_current(["grievance_overdue", "grievance_open"], scope.geo, where)} AS g
INNER JOIN ref_districts AS d FINAL ON d.district_code = g.district_code
GROUP BY g.district_code, d.name_th, d.province_th
HAVING overdue > 0
ORDER BY overdue DESC, district_code
LIMIT 20
""",
        ("district_code", "district", "province", "overdue", "open_cases", "overdue_pct"),
    )


TOP_LABELS = {
    "district_code": "รหัส",
    "district": "อำเภอ/เขต",
    "province": "จังหวัด",
    "overdue": "เกินกำหนด",
    "open_cases": "ค้างทั้งหมด",
    "overdue_pct": "% เกินกำหนด",
}


def top_overdue_table(scope: Scope) -> table.Panel:
    return table_panel(
        "20 อำเภอที่มีเรื่องเกินกำหนดมากที่สุด",
        top_overdue_sql(scope),
        description="Top 20 districts by open cases past their SLA deadline. Click a district "
        "for its drill-down.",
        labels=TOP_LABELS,
        units={"overdue_pct": PERCENT},
        colored={"overdue_pct": steps(("green", None), ("orange", 10), ("red", 30))},
        links={"district": district_link()},
    )


def top_surge_sql(scope: Scope) -> Sql:
    return Sql(
        f"""
SELECT
    s.district_code AS district_code,
    d.name_th AS district,
    d.province_th AS province,
    s.last_hour AS last_hour,
    round(s.baseline, 2) AS baseline,
    round((s.last_hour + 1) / (s.baseline + 1), 2) AS surge_ratio
FROM (
    SELECT district_code,
        sumIf(value, weeks_ago = 0) AS last_hour,
        sumIf(value, weeks_ago > 0) / 4 AS baseline
    FROM (
        SELECT district_code, value,
            intDiv(toUnixTimestamp(($__toTime)) - toUnixTimestamp(bucket), 604800) AS weeks_ago
        FROM metric_buckets FINAL
        WHERE metric = 'grievance_received'
            AND bucket > ($__toTime) - INTERVAL 29 DAY AND bucket <= ($__toTime)
            AND (toUnixTimestamp(($__toTime)) - toUnixTimestamp(bucket)) % 604800 < 3600
            AND {scope.geo} AND {scope.category("dim1")}
    )
    GROUP BY district_code
) AS s
INNER JOIN ref_districts AS d FINAL ON d.district_code = s.district_code
WHERE s.last_hour > 0
ORDER BY surge_ratio DESC, last_hour DESC, district_code
LIMIT 20
""",
        ("district_code", "district", "province", "last_hour", "baseline", "surge_ratio"),
    )


def top_surge_table(scope: Scope) -> table.Panel:
    return table_panel(
        "20 อำเภอที่เรื่องร้องเรียนพุ่งสูง (ชั่วโมงล่าสุด)",
        top_surge_sql(scope),
        description="Received in the last hour vs the same hour of the week averaged over the "
        "previous 4 weeks (weeks without data count as 0). surge = (last hour + 1) / "
        "(baseline + 1).",
        labels={
            "district_code": TOP_LABELS["district_code"],
            "district": TOP_LABELS["district"],
            "province": TOP_LABELS["province"],
            "last_hour": "ชั่วโมงล่าสุด",
            "baseline": "ค่าปกติ (4 สัปดาห์)",
            "surge_ratio": "เท่าของปกติ",
        },
        colored={"surge_ratio": steps(("green", None), ("orange", 2), ("red", 4))},
        links={"district": district_link()},
    )


def received_resolved_sql(scope: Scope) -> Sql:
    where = f"""metric IN ('grievance_received', 'grievance_event')
    AND ((metric = 'grievance_received' AND {scope.category("dim1")})
        OR (metric = 'grievance_event' AND {scope.category("dim2")}))"""
    return Sql(
        f"""
SELECT
    {SERIES_TIME} AS time,
    sumIf(value, metric = 'grievance_received') AS received,
    sumIf(value, metric = 'grievance_event' AND dim1 = 'resolved') AS resolved
FROM {metric_rows(scope, where, series=True)}
GROUP BY time
ORDER BY time
""",
        ("time", "received", "resolved"),
        "timeseries",
    )


def received_resolved_timeseries(scope: Scope) -> timeseries.Panel:
    return timeseries_panel(
        "รับเรื่อง vs ยุติเรื่อง",
        target(received_resolved_sql(scope)),
        description="Grievances received and resolved per interval (event time).",
        labels={"received": "รับเรื่อง", "resolved": "ยุติเรื่อง"},
    )


def backlog_by_category_sql(scope: Scope) -> Sql:
    where = scope.category("dim1")
    return Sql(
        f"""
SELECT
    {sql_label("dim1", CATEGORY_TH)} AS category,
    sumIf(value, metric = 'grievance_open' AND dim2 = 'normal') AS normal,
    sumIf(value, metric = 'grievance_open' AND dim2 = 'urgent') AS urgent,
    sumIf(value, metric = 'grievance_overdue') AS overdue
FROM {gauge_current(["grievance_open", "grievance_overdue"], scope.geo, where)}
GROUP BY category
ORDER BY normal + urgent DESC, category
""",
        ("category", "normal", "urgent", "overdue"),
    )


def backlog_by_category_bar(scope: Scope) -> barchart.Panel:
    return bar_panel(
        "เรื่องค้างตามหมวดหมู่",
        backlog_by_category_sql(scope),
        x_field="category",
        description="Open backlog per category by priority, and how many of them are overdue.",
        labels={"normal": "ปกติ", "urgent": "เร่งด่วน", "overdue": "เกินกำหนด"},
    )


def alerts_sql(scope: Scope) -> Sql:
    return Sql(
        f"""
SELECT
    a.fired_at AS fired_at,
    {sql_label("a.severity_code", SEVERITY_TH)} AS severity,
    a.title AS title,
    a.alert_district AS district_code,
    d.name_th AS district,
    d.province_th AS province,
    a.alert_value AS value,
    a.alert_threshold AS threshold,
    {sql_label("s.current_state", STATE_TH)} AS state
FROM (
    SELECT alert_id, min(at) AS fired_at,
        argMax(severity, at) AS severity_code, argMax(title_th, at) AS title,
        any(district_code) AS alert_district,
        argMax(value, at) AS alert_value, argMax(threshold, at) AS alert_threshold
    FROM alerts_history FINAL
    WHERE state = 'firing' AND $__timeFilter_ms(at) AND {scope.geo}
    GROUP BY alert_id
) AS a
LEFT JOIN (
    SELECT alert_id, argMax(state, (at, indexOf([{sql_list(LIFECYCLE)}], state))) AS current_state
    FROM alerts_history FINAL
    WHERE state IN ({sql_list(LIFECYCLE)}) AND at <= ($__toTime_ms) AND {scope.geo}
    GROUP BY alert_id
) AS s ON s.alert_id = a.alert_id
LEFT JOIN ref_districts AS d FINAL ON d.district_code = a.alert_district
ORDER BY fired_at DESC, a.alert_id
LIMIT 50
""",
        (
            "fired_at",
            "severity",
            "title",
            "district_code",
            "district",
            "province",
            "value",
            "threshold",
            "state",
        ),
    )


def alerts_table(scope: Scope) -> table.Panel:
    return table_panel(
        "การแจ้งเตือนล่าสุด",
        alerts_sql(scope),
        description="Alerts that fired in the time range (alerts_history), newest first, with "
        "each alert's current state.",
        labels={
            "fired_at": "เวลาแจ้งเตือน",
            "severity": "ระดับ",
            "title": "เรื่อง",
            "district_code": "รหัส",
            "district": "อำเภอ/เขต",
            "province": "จังหวัด",
            "value": "ค่า",
            "threshold": "เกณฑ์",
            "state": "สถานะ",
        },
        links={"district": district_link()},
        width=24,
    )
