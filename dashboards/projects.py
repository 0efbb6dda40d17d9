"""Projects & budget: programs and statuses, schedule gap, budget per province and fiscal year."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards.clickhouse import Sql
from dashboards.common import (
    PERCENT,
    THB,
    bar_panel,
    base_dashboard,
    custom_variable,
    district_link,
    in_variable,
    query_variable,
    sql_label,
    sql_list,
    stat_panel,
    steps,
    table_panel,
)
from dashboards.district import REGION_SQL
from dashboards.queries import (
    BEHIND_PLAN_POINTS,
    STALE_DAYS,
    Scope,
    planned_fraction,
    projects_as_of,
)
from streams.labels import PROGRAM_TH, SDG_TH, STATUS_TH, TPMAP_TH

__all__ = ["SCOPE", "UID", "build"]

UID = "warroom-projects"
SCOPE = Scope(region_var=True, program_var=True, sdg_var=True, tpmap_var=True)
#: each project's latest report at the end of the range, narrowed by every variable but the
#: fiscal year (which only the budget panels take)
PROJECTS = projects_as_of(SCOPE)
FY = in_variable("toString(fy)", "fiscal_year")
STALE = f"is_active AND last_report < ($__toTime_ms) - INTERVAL {STALE_DAYS} DAY"

FISCAL_YEAR_SQL = Sql(
    """
SELECT DISTINCT toString(fiscal_year) AS fiscal_year
FROM project_events
ORDER BY fiscal_year DESC
""",
    ("fiscal_year",),
)
SDG_SQL = Sql(
    f"""
SELECT toString(g) AS goal,
    concat('SDG ', goal, ' · ', {sql_label("goal", {str(k): v for k, v in SDG_TH.items()})})
        AS goal_name
FROM (SELECT DISTINCT arrayJoin(sdg_goals) AS g FROM project_events)
ORDER BY g
""",
    ("goal", "goal_name"),
)
TPMAP_SQL = Sql(
    f"""
SELECT toString(d) AS dimension, {sql_label("dimension", TPMAP_TH)} AS dimension_name
FROM (SELECT DISTINCT arrayJoin(tpmap_dimensions) AS d FROM project_events)
ORDER BY indexOf([{sql_list(TPMAP_TH)}], dimension), dimension
""",
    ("dimension", "dimension_name"),
)

SUMMARY_SQL = Sql(
    f"""
SELECT
    countIf(is_active) AS active,
    countIf(is_active AND planned - progress > {BEHIND_PLAN_POINTS}) AS behind_plan,
    countIf({STALE}) AS stale,
    round(sumIf(progress, is_active) / nullIf(active, 0), 1) AS mean_progress_pct,
    round((sumIf(planned, is_active) - sumIf(progress, is_active)) / nullIf(active, 0), 1)
        AS mean_gap_pts
FROM {PROJECTS}
""",
    ("active", "behind_plan", "stale", "mean_progress_pct", "mean_gap_pts"),
)

STATUS_COLUMNS = ",\n    ".join(
    f"countIf(status_code = '{code}') AS `{label}`" for code, label in STATUS_TH.items()
)
BY_PROGRAM_STATUS_SQL = Sql(
    f"""
SELECT
    {sql_label("program_code", PROGRAM_TH)} AS program,
    {STATUS_COLUMNS}
FROM {PROJECTS}
GROUP BY program
ORDER BY count() DESC, program
""",
    ("program", *STATUS_TH.values()),
)

GAP_BY_PROGRAM_SQL = Sql(
    f"""
SELECT
    {sql_label("program_code", PROGRAM_TH)} AS program,
    round(sumIf(progress, is_active) / countIf(is_active), 1) AS mean_progress_pct,
    round(sumIf(planned, is_active) / countIf(is_active), 1) AS mean_planned_pct
FROM {PROJECTS}
GROUP BY program
HAVING countIf(is_active) > 0
ORDER BY mean_planned_pct - mean_progress_pct DESC, program
""",
    ("program", "mean_progress_pct", "mean_planned_pct"),
)

# the plan depends on the fiscal year alone: applied to the sums per fiscal year
BUDGET_BY_PROVINCE_SQL = Sql(
    f"""
SELECT
    p.name_th AS province,
    toString(b.fy) AS fiscal_year,
    b.allocated_thb AS allocated,
    b.obligated_thb AS obligated,
    b.disbursed_thb AS disbursed,
    round(100 * b.disbursed_thb / nullIf(b.allocated_thb, 0), 1) AS disbursed_pct,
    if(b.allocated_thb > 0, round(100 * {planned_fraction("b.fy")}, 1), NULL) AS planned_pct
FROM (
    SELECT province_code, fy,
        sum(allocated) AS allocated_thb,
        sum(obligated) AS obligated_thb,
        sum(disbursed) AS disbursed_thb
    FROM {PROJECTS}
    WHERE {FY}
    GROUP BY province_code, fy
) AS b
INNER JOIN ref_provinces AS p FINAL ON p.province_code = b.province_code
ORDER BY fiscal_year DESC, disbursed_pct - planned_pct ASC, province
""",
    (
        "province",
        "fiscal_year",
        "allocated",
        "obligated",
        "disbursed",
        "disbursed_pct",
        "planned_pct",
    ),
)

DISBURSEMENT_BY_PROGRAM_SQL = Sql(
    f"""
SELECT
    {sql_label("program_code", PROGRAM_TH)} AS program,
    round(100 * sum(disbursed_thb) / nullIf(sum(allocated_thb), 0), 1) AS disbursed_pct,
    round(100 * sum(allocated_thb * {planned_fraction("fy")}) / nullIf(sum(allocated_thb), 0), 1)
        AS planned_pct
FROM (
    SELECT program_code, fy, sum(allocated) AS allocated_thb, sum(disbursed) AS disbursed_thb
    FROM {PROJECTS}
    WHERE {FY}
    GROUP BY program_code, fy
)
GROUP BY program
HAVING sum(allocated_thb) > 0
ORDER BY disbursed_pct - planned_pct ASC, program
""",
    ("program", "disbursed_pct", "planned_pct"),
)

STALE_SQL = Sql(
    f"""
SELECT
    l.project_id AS project_id,
    l.district_code AS district_code,
    d.name_th AS district,
    d.province_th AS province,
    {sql_label("l.program_code", PROGRAM_TH)} AS program,
    {sql_label("l.status_code", STATUS_TH)} AS status,
    l.last_report AS last_report,
    intDiv(dateDiff('second', l.last_report, ($__toTime_ms)), 86400) AS days_silent
FROM {PROJECTS} AS l
INNER JOIN ref_districts AS d FINAL ON d.district_code = l.district_code
WHERE l.is_active AND l.last_report < ($__toTime_ms) - INTERVAL {STALE_DAYS} DAY
ORDER BY days_silent DESC, project_id
LIMIT 200
""",
    (
        "project_id",
        "district_code",
        "district",
        "province",
        "program",
        "status",
        "last_report",
        "days_silent",
    ),
)


def build() -> dashboard.Dashboard:
    return (
        base_dashboard(
            UID,
            "โครงการและงบประมาณ (Projects & budget)",
            "Development projects per program and status, schedule gap (planned − progress), "
            "budget allocated / obligated / disbursed per province and fiscal year (B.E.) "
            "against the quarterly disbursement plan, and stale projects. Every panel reads "
            "each project's latest report up to the end of the time range (the latest-state "
            "table project_latest; for a range ending in the past, projects reported since are "
            "recomputed from project_events), so region, program, SDG goal and TPMAP dimension "
            "narrow all of them.",
            ["projects", "budget"],
        )
        .with_variable(query_variable("region", "ภาค", REGION_SQL))
        .with_variable(custom_variable("program", "แผนงาน/โครงการ", PROGRAM_TH))
        .with_variable(
            query_variable(
                "fiscal_year",
                "ปีงบประมาณ (พ.ศ.)",
                FISCAL_YEAR_SQL,
                description="Thai fiscal year, Buddhist Era (FY2569 = Oct 2025 – Sep 2026).",
            )
        )
        .with_variable(
            query_variable(
                "sdg",
                "เป้าหมาย SDG",
                SDG_SQL,
                description="Projects serving any of the selected UN Sustainable Development "
                "Goals (the goals of each project's latest report).",
            )
        )
        .with_variable(
            query_variable(
                "tpmap",
                "มิติความยากจน (TPMAP)",
                TPMAP_SQL,
                description="Projects addressing any of the selected TPMAP poverty dimensions "
                "(income, living, health, education, access to public services).",
            )
        )
        .with_row(dashboard.Row("ภาพรวมโครงการ"))
        .with_panel(
            stat_panel(
                "โครงการ",
                SUMMARY_SQL,
                decimals=1,
                description="Active projects (not completed/cancelled); behind plan = more than "
                f"10 points behind; stale = no report for {STALE_DAYS} days; mean progress "
                "and mean schedule gap over active projects.",
                thresholds=steps(("blue", None)),
                labels={
                    "active": "ดำเนินการอยู่",
                    "behind_plan": "ล่าช้ากว่าแผน",
                    "stale": "ไม่รายงาน 14 วัน",
                    "mean_progress_pct": "ความก้าวหน้าเฉลี่ย %",
                    "mean_gap_pts": "ห่างจากแผนเฉลี่ย (จุด)",
                },
                width=24,
            )
        )
        .with_panel(
            bar_panel(
                "โครงการตามแผนงานและสถานะ",
                BY_PROGRAM_STATUS_SQL,
                x_field="program",
                description="Projects per program by their latest status.",
                stacked=True,
            )
        )
        .with_panel(
            bar_panel(
                "ความก้าวหน้าเทียบแผน ตามแผนงาน",
                GAP_BY_PROGRAM_SQL,
                x_field="program",
                unit=PERCENT,
                description="Mean progress vs mean planned progress of active projects; the "
                "difference is the schedule gap. Largest gap first.",
                labels={"mean_progress_pct": "ความก้าวหน้า", "mean_planned_pct": "ตามแผน"},
            )
        )
        .with_row(dashboard.Row("งบประมาณ"))
        .with_panel(
            table_panel(
                "งบประมาณรายจังหวัดและปีงบประมาณ",
                BUDGET_BY_PROVINCE_SQL,
                description="Sums over each project's latest report up to the end of the range. "
                "% planned = the cumulative quarterly disbursement plan of the fiscal year at the "
                "end of the range.",
                labels={
                    "province": "จังหวัด",
                    "fiscal_year": "ปีงบฯ (พ.ศ.)",
                    "allocated": "จัดสรร",
                    "obligated": "ก่อหนี้ผูกพัน",
                    "disbursed": "เบิกจ่าย",
                    "disbursed_pct": "% เบิกจ่าย",
                    "planned_pct": "% ตามแผน",
                },
                units={
                    "allocated": THB,
                    "obligated": THB,
                    "disbursed": THB,
                    "disbursed_pct": PERCENT,
                    "planned_pct": PERCENT,
                },
                colored={"disbursed_pct": steps(("red", None), ("orange", 50), ("green", 90))},
                width=14,
                height=12,
            )
        )
        .with_panel(
            bar_panel(
                "เบิกจ่ายเทียบแผน ตามแผนงาน",
                DISBURSEMENT_BY_PROGRAM_SQL,
                x_field="program",
                unit=PERCENT,
                horizontal=True,
                description="Disbursed % vs planned % of the allocated budget per program "
                "(fiscal years selected above).",
                labels={"disbursed_pct": "เบิกจ่ายแล้ว", "planned_pct": "เป้าตามแผน"},
                width=10,
                height=12,
            )
        )
        .with_row(dashboard.Row("โครงการที่ไม่รายงาน"))
        .with_panel(
            table_panel(
                f"โครงการที่ไม่รายงานเกิน {STALE_DAYS} วัน",
                STALE_SQL,
                description=f"Active projects whose latest report is older than {STALE_DAYS} "
                "days (WARROOM_STALE_DAYS default), longest silence first.",
                labels={
                    "project_id": "รหัสโครงการ",
                    "district_code": "รหัสอำเภอ",
                    "district": "อำเภอ/เขต",
                    "province": "จังหวัด",
                    "program": "แผนงาน",
                    "status": "สถานะล่าสุด",
                    "last_report": "รายงานล่าสุด",
                    "days_silent": "ไม่รายงาน (วัน)",
                },
                colored={"days_silent": steps(("orange", None), ("red", 30))},
                links={"district": district_link()},
                width=24,
                height=10,
            )
        )
    )
