"""District drill-down: region → province → district, with open overdue cases and late projects."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, table

from dashboards import overview
from dashboards.clickhouse import Sql
from dashboards.common import (
    SECONDS,
    THB,
    base_dashboard,
    custom_variable,
    in_variable,
    query_variable,
    sql_label,
    steps,
    table_panel,
)
from dashboards.queries import (
    ACTIVE_EXCLUDED,
    OPEN_TYPES_SQL,
    Scope,
    open_grievances,
    projects_as_of,
)
from streams.labels import CATEGORY_TH, PRIORITY_TH, PROGRAM_TH, STATUS_TH

__all__ = ["SCOPE", "UID", "build"]

UID = "warroom-district"
SCOPE = Scope(region_var=True, district_vars=True, category_var=True, program_var=True)


REGION_SQL = Sql(
    """
SELECT region, any(region_th) AS region_name
FROM ref_provinces FINAL
GROUP BY region
ORDER BY region
""",
    ("region", "region_name"),
)
PROVINCE_SQL = Sql(
    f"""
SELECT province_code, concat(name_th, ' (', province_code, ')') AS province_name
FROM ref_provinces FINAL
WHERE {in_variable("region", "region")}
ORDER BY name_th
""",
    ("province_code", "province_name"),
)
DISTRICT_SQL = Sql(
    f"""
SELECT district_code, concat(name_th, ' · ', province_th, ' (', district_code, ')') AS district_name
FROM ref_districts FINAL
WHERE {in_variable("region", "region")}
    AND {in_variable("province_code", "province")}
ORDER BY province_code, name_th
""",
    ("district_code", "district_name"),
)

OVERDUE_CASES_SQL = Sql(
    f"""
SELECT
    grievance_id,
    {sql_label("category_code", CATEGORY_TH)} AS category,
    {sql_label("priority_code", PRIORITY_TH)} AS priority,
    due AS due_at,
    dateDiff('second', first_seen, ($__toTime_ms)) AS age_seconds,
    dateDiff('second', due, ($__toTime_ms)) AS overdue_seconds,
    substring(pseudonym, 1, 8) AS complainant
FROM {open_grievances(SCOPE)}
WHERE last_type IN ({OPEN_TYPES_SQL})
    AND due IS NOT NULL AND due < ($__toTime_ms)
    AND {in_variable("category_code", "category")}
ORDER BY due ASC, grievance_id
LIMIT 200
""",
    (
        "grievance_id",
        "category",
        "priority",
        "due_at",
        "age_seconds",
        "overdue_seconds",
        "complainant",
    ),
)

BEHIND_PLAN_SQL = Sql(
    f"""
SELECT
    project_id,
    {sql_label("program_code", PROGRAM_TH)} AS program,
    {sql_label("status_code", STATUS_TH)} AS status,
    progress_pct,
    planned_pct,
    round(planned_pct - progress_pct, 1) AS gap_pts,
    allocated_thb,
    disbursed_thb,
    last_report
FROM (
    SELECT project_id, last_report, program_code, status_code,
        progress AS progress_pct,
        planned AS planned_pct,
        allocated AS allocated_thb,
        disbursed AS disbursed_thb
    FROM {projects_as_of(SCOPE)}
)
WHERE status_code NOT IN ({", ".join(f"'{s}'" for s in ACTIVE_EXCLUDED)})
    AND planned_pct - progress_pct > 10
    AND {in_variable("program_code", "program")}
ORDER BY gap_pts DESC, project_id
LIMIT 200
""",
    (
        "project_id",
        "program",
        "status",
        "progress_pct",
        "planned_pct",
        "gap_pts",
        "allocated_thb",
        "disbursed_thb",
        "last_report",
    ),
)


def overdue_cases_table() -> table.Panel:
    return table_panel(
        "เรื่องค้างที่เกินกำหนด (รายเรื่อง)",
        OVERDUE_CASES_SQL,
        description="Open cases past due, oldest deadline first: each case as of the end of the "
        "range (its latest event up to then). Cases with no event after the end are read from "
        "the open-case snapshot grievance_open, which the store's owner rebuilds every few "
        "minutes, and those touched since its watermark from the latest-state table "
        "grievance_latest; for a range ending in the past, the cases touched since are "
        "recomputed from grievance_events. The complainant is shown only "
        "as the first 8 characters of the keyed pseudonym (PDPA): enough to spot repeat "
        "complainants, never a name or ID.",
        labels={
            "grievance_id": "เลขที่เรื่อง",
            "category": "หมวดหมู่",
            "priority": "ความเร่งด่วน",
            "due_at": "กำหนดเสร็จ",
            "age_seconds": "อายุเรื่อง",
            "overdue_seconds": "เกินกำหนดมา",
            "complainant": "ผู้ร้อง (นามแฝง)",
        },
        units={"age_seconds": SECONDS, "overdue_seconds": SECONDS},
        colored={"overdue_seconds": steps(("orange", None), ("red", 7 * 86400))},
        width=24,
        height=10,
    )


def behind_plan_table() -> table.Panel:
    return table_panel(
        "โครงการที่ล่าช้ากว่าแผน",
        BEHIND_PLAN_SQL,
        description="Active projects whose latest report is more than 10 points behind plan "
        "(planned − progress), largest gap first; each project's latest report up to the end "
        "of the range (latest-state table project_latest; for a range ending in the past, the "
        "projects reported since are recomputed from project_events).",
        labels={
            "project_id": "รหัสโครงการ",
            "program": "แผนงาน",
            "status": "สถานะ",
            "progress_pct": "ความก้าวหน้า",
            "planned_pct": "ตามแผน",
            "gap_pts": "ห่างจากแผน (จุด)",
            "allocated_thb": "งบจัดสรร",
            "disbursed_thb": "เบิกจ่ายแล้ว",
            "last_report": "รายงานล่าสุด",
        },
        units={
            "progress_pct": "percent",
            "planned_pct": "percent",
            "allocated_thb": THB,
            "disbursed_thb": THB,
        },
        colored={"gap_pts": steps(("orange", None), ("red", 25))},
        width=24,
        height=10,
    )


def build() -> dashboard.Dashboard:
    s = SCOPE
    return (
        base_dashboard(
            UID,
            "อำเภอ: เจาะลึกรายพื้นที่ (District drill-down)",
            "One district (or a selection): the war-room view, its open overdue cases "
            "(pseudonymised) and its projects behind plan. Link: /d/warroom-district/"
            "?var-district=<code>.",
            ["district", "drill-down"],
        )
        .with_variable(query_variable("region", "ภาค", REGION_SQL))
        .with_variable(query_variable("province", "จังหวัด", PROVINCE_SQL))
        .with_variable(query_variable("district", "อำเภอ/เขต", DISTRICT_SQL))
        .with_variable(custom_variable("category", "หมวดหมู่เรื่อง", CATEGORY_TH))
        .with_variable(custom_variable("program", "แผนงาน/โครงการ", PROGRAM_TH))
        .with_row(dashboard.Row("สถานการณ์ล่าสุด"))
        .with_panel(overview.new_today_stat(s).span(3))
        .with_panel(overview.open_backlog_stat(s).span(3))
        .with_panel(overview.overdue_stat(s).span(3))
        .with_panel(overview.urgent_unassigned_stat(s).span(3))
        .with_panel(overview.projects_delayed_stat(s))
        .with_panel(overview.budget_disbursement_stat(s))
        .with_row(dashboard.Row("เรื่องร้องเรียน"))
        .with_panel(overview.received_resolved_timeseries(s))
        .with_panel(overview.backlog_by_category_bar(s))
        .with_panel(overdue_cases_table())
        .with_panel(overview.top_overdue_table(s))
        .with_panel(overview.top_surge_table(s))
        .with_row(dashboard.Row("โครงการและการแจ้งเตือน"))
        .with_panel(behind_plan_table())
        .with_panel(overview.region_category_table(s))
        .with_panel(overview.alerts_table(s))
    )
