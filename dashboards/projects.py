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
    stat_panel,
    steps,
    table_panel,
)
from dashboards.district import REGION_SQL
from dashboards.queries import ACTIVE_EXCLUDED, STALE_DAYS, Scope, gauge_current, latest_projects
from streams.labels import PROGRAM_TH, STATUS_TH

__all__ = ["SCOPE", "UID", "build"]

UID = "warroom-projects"
SCOPE = Scope(region_var=True, program_var=True)
FY = in_variable("dim2", "fiscal_year")
GEO = SCOPE.geo
WHERE = SCOPE.program("dim1")
BUDGET_METRICS = [
    "project_budget_allocated_thb",
    "project_budget_obligated_thb",
    "project_budget_disbursed_thb",
    "project_budget_planned_disbursed_thb",
]

FISCAL_YEAR_SQL = Sql(
    """
SELECT DISTINCT dim2 AS fiscal_year
FROM metric_gauges
WHERE metric = 'project_budget_allocated_thb'
ORDER BY fiscal_year DESC
""",
    ("fiscal_year",),
)

SUMMARY_SQL = Sql(
    f"""
SELECT
    sumIf(value, metric = 'project_active') AS active,
    sumIf(value, metric = 'project_behind_plan') AS behind_plan,
    sumIf(value, metric = 'project_stale') AS stale,
    round(sumIf(value, metric = 'project_progress_pct_sum') / nullIf(active, 0), 1)
        AS mean_progress_pct,
    round((sumIf(value, metric = 'project_planned_pct_sum')
        - sumIf(value, metric = 'project_progress_pct_sum')) / nullIf(active, 0), 1)
        AS mean_gap_pts
FROM {
        gauge_current(
            [
                "project_active",
                "project_behind_plan",
                "project_stale",
                "project_progress_pct_sum",
                "project_planned_pct_sum",
            ],
            GEO,
            WHERE,
        )
    }
""",
    ("active", "behind_plan", "stale", "mean_progress_pct", "mean_gap_pts"),
)

STATUS_COLUMNS = ",\n    ".join(
    f"sumIf(value, dim2 = '{code}') AS `{label}`" for code, label in STATUS_TH.items()
)
BY_PROGRAM_STATUS_SQL = Sql(
    f"""
SELECT
    {sql_label("dim1", PROGRAM_TH)} AS program,
    {STATUS_COLUMNS}
FROM {gauge_current(["project_count"], GEO, WHERE)}
GROUP BY program
ORDER BY sum(value) DESC, program
""",
    ("program", *STATUS_TH.values()),
)

GAP_BY_PROGRAM_SQL = Sql(
    f"""
SELECT
    {sql_label("dim1", PROGRAM_TH)} AS program,
    round(sumIf(value, metric = 'project_progress_pct_sum')
        / nullIf(sumIf(value, metric = 'project_active'), 0), 1) AS mean_progress_pct,
    round(sumIf(value, metric = 'project_planned_pct_sum')
        / nullIf(sumIf(value, metric = 'project_active'), 0), 1) AS mean_planned_pct
FROM {
        gauge_current(
            ["project_active", "project_progress_pct_sum", "project_planned_pct_sum"],
            GEO,
            WHERE,
        )
    }
GROUP BY program
HAVING sumIf(value, metric = 'project_active') > 0
ORDER BY mean_planned_pct - mean_progress_pct DESC, program
""",
    ("program", "mean_progress_pct", "mean_planned_pct"),
)

BUDGET_BY_PROVINCE_SQL = Sql(
    f"""
SELECT
    p.name_th AS province,
    b.fiscal_year AS fiscal_year,
    b.allocated AS allocated,
    b.obligated AS obligated,
    b.disbursed AS disbursed,
    round(100 * b.disbursed / nullIf(b.allocated, 0), 1) AS disbursed_pct,
    round(100 * b.planned / nullIf(b.allocated, 0), 1) AS planned_pct
FROM (
    SELECT province_code, dim2 AS fiscal_year,
        sumIf(value, metric = 'project_budget_allocated_thb') AS allocated,
        sumIf(value, metric = 'project_budget_obligated_thb') AS obligated,
        sumIf(value, metric = 'project_budget_disbursed_thb') AS disbursed,
        sumIf(value, metric = 'project_budget_planned_disbursed_thb') AS planned
    FROM {gauge_current(BUDGET_METRICS, GEO, f"{WHERE} AND {FY}")}
    GROUP BY province_code, fiscal_year
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
    {sql_label("dim1", PROGRAM_TH)} AS program,
    round(100 * sumIf(value, metric = 'project_budget_disbursed_thb')
        / nullIf(sumIf(value, metric = 'project_budget_allocated_thb'), 0), 1) AS disbursed_pct,
    round(100 * sumIf(value, metric = 'project_budget_planned_disbursed_thb')
        / nullIf(sumIf(value, metric = 'project_budget_allocated_thb'), 0), 1) AS planned_pct
FROM {gauge_current(BUDGET_METRICS, GEO, f"{WHERE} AND {FY}")}
GROUP BY program
HAVING sumIf(value, metric = 'project_budget_allocated_thb') > 0
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
    {sql_label("tupleElement(l.latest, 1)", PROGRAM_TH)} AS program,
    {sql_label("tupleElement(l.latest, 2)", STATUS_TH)} AS status,
    l.last_report AS last_report,
    intDiv(dateDiff('second', l.last_report, ($__toTime_ms)), 86400) AS days_silent
FROM {latest_projects(SCOPE)} AS l
INNER JOIN ref_districts AS d FINAL ON d.district_code = l.district_code
WHERE tupleElement(l.latest, 2) NOT IN ({", ".join(f"'{s}'" for s in ACTIVE_EXCLUDED)})
    AND l.last_report < ($__toTime_ms) - INTERVAL {STALE_DAYS} DAY
    AND {in_variable("tupleElement(l.latest, 1)", "program")}
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
            "against the quarterly disbursement plan, and stale projects.",
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
                description="Sums over each project's latest report. planned = allocated × the "
                "cumulative quarterly disbursement plan at the end of the range.",
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
