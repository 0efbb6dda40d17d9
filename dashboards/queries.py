"""SQL shared by several dashboards: current gauge values, histogram quantiles, scoped filters.

Conventions that keep the SQL correct under the ClickHouse plugin:
- metric tables are ReplacingMergeTree: always read with FINAL;
- gauges: current value = the rows of a district's latest snapshot (per partition and family),
  summed over partitions (see gauge_current);
- "now" is the end of the dashboard's time range (`$__toTime`), so a past range shows the past;
- argument-less macros are written in parentheses, e.g. `($__toTime)`: a `(` right after one is
  taken as its (ignored) arguments by the plugin's macro engine;
- template variables reach SQL only through common.in_variable / variable_uint (percent-encoded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from dashboards.common import any_in_variable, in_variable, quote, sql_label, sql_list
from streams.contract import OPEN_TYPES
from streams.labels import CATEGORY_TH, PROGRAM_TH
from streams.plan import DEFAULT_QUARTER_TARGETS
from streams.state.projects import BEHIND_PLAN_POINTS

__all__ = [
    "ACTIVE_EXCLUDED",
    "BEHIND_PLAN_POINTS",
    "GAUGE_FAMILY",
    "GAUGE_LOOKBACK_DAYS",
    "NATIONAL",
    "OPEN_TYPES_SQL",
    "STALE_DAYS",
    "Scope",
    "current_fiscal_year",
    "gauge_current",
    "gauge_family",
    "histogram_quantile",
    "open_grievances",
    "planned_fraction",
    "projects_as_of",
]

#: statuses that make a project inactive (the gauges use the same rule)
ACTIVE_EXCLUDED: Final = ("completed", "cancelled")
#: the worker snapshots every gauge key of every district each stream minute, so the latest
#: snapshot is recent unless a partition stopped for days; bounding the search keeps FINAL
#: cheap (the alert rules use the same look-back: alerts/export_sql.py)
GAUGE_LOOKBACK_DAYS: Final = 7
#: WARROOM_STALE_DAYS default: dashboards are static JSON, so the default is baked in here
STALE_DAYS: Final = 14
OPEN_TYPES_SQL: Final = sql_list(sorted(OPEN_TYPES))


@dataclass(frozen=True)
class Scope:
    """Which rows a dashboard looks at: the whole nation, or what its template variables pick."""

    region_var: bool = False
    district_vars: bool = False  # province and district
    category_var: bool = False
    program_var: bool = False
    sdg_var: bool = False  # the SDG goals a project serves
    tpmap_var: bool = False  # the TPMAP poverty dimensions a project addresses

    @property
    def geo(self) -> str:
        """Filter on region, province_code and district_code."""
        parts = []
        if self.region_var:
            parts.append(in_variable("region", "region"))
        if self.district_vars:
            parts.append(in_variable("province_code", "province"))
            parts.append(in_variable("district_code", "district"))
        return " AND ".join(parts) or "1 = 1"

    @property
    def province_geo(self) -> str:
        """Filter on region and province_code only (the rollups keep no district)."""
        parts = []
        if self.region_var:
            parts.append(in_variable("region", "region"))
        if self.district_vars:
            parts.append(in_variable("province_code", "province"))
        return " AND ".join(parts) or "1 = 1"

    def category(self, column: str) -> str:
        if not self.category_var:
            return "1 = 1"
        return in_variable(column, "category")

    def program(self, column: str) -> str:
        if not self.program_var:
            return "1 = 1"
        return in_variable(column, "program")

    def sdg(self, goals: str) -> str:
        """`goals` (Array(UInt8)) holds one of the selected SDG goals."""
        if not self.sdg_var:
            return "1 = 1"
        return any_in_variable(f"arrayMap(g -> toString(g), {goals})", "sdg")

    def tpmap(self, dimensions: str) -> str:
        """`dimensions` (Array(String)) holds one of the selected TPMAP dimensions."""
        if not self.tpmap_var:
            return "1 = 1"
        return any_in_variable(dimensions, "tpmap")


NATIONAL: Final = Scope()


#: which processor writes a gauge row: the grievance and the project stream of a district
#: share its partition number but snapshot at their own stream clocks (minutes)
GAUGE_FAMILY: Final = (
    "if(startsWith(metric, 'project_') OR (metric = 'last_event_age_seconds' "
    "AND dim1 = 'project'), 'project', 'grievance')"
)


def gauge_family(metric: str) -> str:
    """The family (writer) of a gauge metric other than last_event_age_seconds."""
    return "project" if metric.startswith("project_") else "grievance"


def gauge_current(metrics: Sequence[str], geo: str = "1 = 1", where: str = "1 = 1") -> str:
    """A subquery: the current value of each gauge key as of the end of the time range.

    A process's snapshot (per district, kafka_partition and family) at the end of the range
    is its latest one within GAUGE_LOOKBACK_DAYS; a key missing there is zero. Where that
    process's latest snapshot is not after the end of the range (always, for a range that
    ends now) it is read from metric_gauges_latest: its non-zero rows are exactly the latest
    snapshot's (a dropped key gets a 0 row; a restored worker zeroes the keys it no longer
    has). Where it is after the end (a range ending in the past), the history's latest
    snapshot up to the end is read from metric_gauges (one per WARROOM_GAUGE_HISTORY_MINUTES;
    there a key missing from the snapshot is zero).

    `geo` may only filter whole districts (region, province, district): it also narrows the
    search for the latest snapshot. `where` filters the keys (dim1, dim2) after that.
    """
    families = sorted({gauge_family(m) for m in metrics})
    window = f"bucket > ($__toTime) - INTERVAL {GAUGE_LOOKBACK_DAYS} DAY AND bucket <= ($__toTime)"
    keys = f"metric IN ({sql_list(metrics)}) AND {geo} AND {where}"
    return f"""(
        SELECT district_code, province_code, region, metric, dim1, dim2, sum(value) AS value
        FROM (
            SELECT district_code, province_code, region, metric, dim1, dim2, value
            FROM metric_gauges_latest FINAL
            WHERE {keys} AND value != 0 AND {window}
            UNION ALL
            SELECT district_code, province_code, region, metric, dim1, dim2, value
            FROM metric_gauges FINAL
            WHERE {keys} AND {window}
                AND (district_code, kafka_partition, {GAUGE_FAMILY}, bucket) IN (
                    SELECT district_code, kafka_partition, {GAUGE_FAMILY} AS family, max(bucket)
                    FROM metric_gauges
                    WHERE {window} AND {geo} AND family IN ({sql_list(families)})
                        AND (district_code, kafka_partition, family) IN (
                            SELECT district_code, kafka_partition, {GAUGE_FAMILY} AS family
                            FROM metric_gauges_latest
                            WHERE {geo} AND family IN ({sql_list(families)})
                            GROUP BY district_code, kafka_partition, family
                            HAVING argMax(bucket, version) > ($__toTime)
                        )
                    GROUP BY district_code, kafka_partition, family
                )
        )
        GROUP BY district_code, province_code, region, metric, dim1, dim2
    )"""


def current_fiscal_year() -> str:
    """SQL text of the Buddhist-Era fiscal year (as stored in dim2) at the end of the range."""
    return "toString(toYear(addMonths(toTimeZone(($__toTime), 'Asia/Bangkok'), 3)) + 543)"


def histogram_quantile(q: float, les: str, counts: str) -> str:
    """Prometheus' histogram_quantile over sorted arrays of upper bounds and cumulative counts.

    Linear interpolation inside the bucket holding rank q * total; a rank in the +Inf bucket
    gives the highest finite bound; no observations give NULL.
    """
    rank = f"({q} * {counts}[-1])"
    i = f"arrayFirstIndex(c -> c >= {rank}, {counts})"
    lower = f"if({i} = 1, 0, {les}[{i} - 1])"
    below = f"if({i} = 1, 0, {counts}[{i} - 1])"
    return (
        f"if({counts}[-1] = 0, NULL, if(isInfinite({les}[{i}]), {lower}, "
        f"{lower} + ({les}[{i}] - {lower}) * ({rank} - {below}) / ({counts}[{i}] - {below})))"
    )


#: (occurred_at ms, kafka_offset) as one UInt128, so the latest report wins and a tie goes to
#: the later offset: argMax over a tuple key took about twice as long
_REPORT_ORDER: Final = (
    "bitShiftLeft(toUInt128(toUnixTimestamp64Milli(occurred_at)), 64) + kafka_offset"
)


#: the end of the dashboard's time range, as DateTime64(3)
_TO: Final = "($__toTime_ms)"
#: grievance_latest.due when no event of the case carried a due time
_NO_DUE: Final = "toDateTime64(0, 3, 'UTC')"
#: the newest complete open-case generation's watermark (1970 when there is none)
_GENERATION: Final = "(SELECT max(generation) FROM grievance_open_generations)"


def _touched_after(events: str, key: str, scope: Scope) -> str:
    """The cases with an event after the end of the range: only these are regrouped from
    their events (none when the range ends now). Read from the events, not the latest-state
    table: the monthly partitions and each part's occurred_at range skip all but the newest
    parts."""
    return f"SELECT district_code, {key} FROM {events} WHERE occurred_at > {_TO} AND {scope.geo}"


def _grievances_after(scope: Scope) -> str:
    """The cases with an event after the end of the range, grouped from their events up to it
    (no FINAL: a row stored twice is the same event, which max, min and argMax read the same)."""
    return f"""SELECT district_code, grievance_id,
            argMax(type, k) AS last_type,
            argMax(category, k) AS category_code,
            argMax(priority, k) AS priority_code,
            argMax(due_at, k) AS due,
            min(occurred_at) AS first_seen,
            max(complainant_pseudonym) AS pseudonym
        FROM (
            SELECT district_code, grievance_id, type, category, priority, due_at, occurred_at,
                complainant_pseudonym, {_REPORT_ORDER} AS k
            FROM grievance_events
            WHERE occurred_at <= {_TO} AND {scope.geo}
                AND (district_code, grievance_id) IN (
                    {_touched_after("grievance_events", "grievance_id", scope)}
                )
        )
        GROUP BY district_code, grievance_id"""


def _ingested_after_generation(scope: Scope) -> str:
    """The keys of the cases with an event ingested after the newest open-case generation's
    watermark (every case when there is none yet)."""
    return (
        "SELECT region, province_code, district_code, grievance_id FROM grievance_events "
        f"WHERE ingested_at > {_GENERATION} AND {scope.geo}"
    )


def open_grievances(scope: Scope) -> str:
    """A subquery: each grievance open at the end of the range, in its state after its latest
    event up to then, and some that are not (filter on last_type).

    Columns: district_code, grievance_id, last_type, category_code, priority_code (of the
    latest event by occurred_at, a tie going to the later offset), due (the latest due time
    any event gave), first_seen, pseudonym (keyed, any non-empty one).
    Three parts, each case in at most one:
    - the newest open-case generation (migration 006, rebuilt by the store's owner every few
      minutes; no FINAL), for the cases with no event ingested after its watermark;
    - grievance_latest FINAL (migration 004, kept by a materialized view), found by its
      sorting key, for the cases with one;
    - the cases with an event after the end of the range (all cases touched since, for a
      range that ends in the past), grouped from their events up to it.
    The first two take only cases whose latest event is not after the end. A case closed when
    the generation was built and not touched since was closed at the end of the range too.
    """
    ingested = _ingested_after_generation(scope)
    return f"""(
        SELECT district_code, grievance_id, last_type, category_code, priority_code, due,
            first_seen, pseudonym
        FROM grievance_open
        WHERE generation = {_GENERATION} AND last_at <= {_TO} AND {scope.geo}
            AND (region, province_code, district_code, grievance_id) NOT IN ({ingested})
        UNION ALL
        SELECT district_code, grievance_id,
            tupleElement(last, 3) AS last_type,
            tupleElement(last, 4) AS category_code,
            tupleElement(last, 5) AS priority_code,
            if(tupleElement(due, 1) = {_NO_DUE}, NULL, tupleElement(due, 3)) AS due,
            first_seen, pseudonym
        FROM grievance_latest FINAL
        WHERE tupleElement(last, 1) <= {_TO} AND {scope.geo}
            AND (region, province_code, district_code, grievance_id) IN ({ingested})
        UNION ALL
        {_grievances_after(scope)}
    )"""


def category_label(column: str) -> str:
    return sql_label(column, CATEGORY_TH)


def program_label(column: str) -> str:
    return sql_label(column, PROGRAM_TH)


def literal(value: str) -> str:
    return quote(value)


#: project_events column -> its name in projects_as_of (the latest report's value)
_LATEST_REPORT: Final = {
    "program": "program_code",
    "status": "status_code",
    "fiscal_year": "fy",
    "progress_pct": "progress",
    "planned_pct": "planned",
    "budget_allocated_thb": "allocated",
    "budget_obligated_thb": "obligated",
    "budget_disbursed_thb": "disbursed",
    "sdg_goals": "goals",
    "tpmap_dimensions": "dimensions",
}


def projects_as_of(scope: Scope) -> str:
    """A subquery: each project's latest report up to the end of the range (by occurred_at; a
    tie goes to the later offset, as in the worker), one row per project, narrowed by the
    scope's program, SDG and TPMAP variables.

    Columns: district_code, province_code, project_id, last_report, is_active, and the latest
    report's program_code, status_code, fy (UInt16, B.E.), progress, planned, allocated,
    obligated, disbursed (THB), goals (SDG, Array(UInt8)), dimensions (TPMAP).
    The variables test the latest report, after it is picked: filtering the events first
    would fall back to an older report of a project whose program or goals changed.
    A project with no report after the end of the range is read from its one row in
    project_latest (migration 004: the tuple of its latest report); the projects reported
    since (none when the range ends now) are grouped from their events, one argMax per column
    with a scalar key (an argMax of a tuple, or over a tuple key, took about twice as long).
    No FINAL on the events: a row stored twice is the same event, which argMax and max read
    the same.
    """
    from_state = ",\n                ".join(
        f"tupleElement(last, {i}) AS {name}"
        for i, name in enumerate(_LATEST_REPORT.values(), start=3)
    )
    latest = ",\n                ".join(
        f"argMax({column}, k) AS {name}" for column, name in _LATEST_REPORT.items()
    )
    return f"""(
        SELECT district_code, province_code, project_id, last_report,
            {", ".join(_LATEST_REPORT.values())},
            status_code NOT IN ({sql_list(ACTIVE_EXCLUDED)}) AS is_active
        FROM (
            SELECT district_code, province_code, project_id,
                tupleElement(last, 1) AS last_report,
                {from_state}
            FROM project_latest FINAL
            WHERE tupleElement(last, 1) <= {_TO} AND {scope.geo}
            UNION ALL
            SELECT district_code, province_code, project_id,
                max(occurred_at) AS last_report,
                {latest}
            FROM (
                SELECT district_code, province_code, project_id, occurred_at,
                    {", ".join(_LATEST_REPORT)},
                    {_REPORT_ORDER} AS k
                FROM project_events
                WHERE occurred_at <= {_TO} AND {scope.geo}
                    AND (district_code, project_id) IN (
                        {_touched_after("project_events", "project_id", scope)}
                    )
            )
            GROUP BY district_code, province_code, project_id
        )
        WHERE {scope.program("program_code")} AND {scope.sdg("goals")}
            AND {scope.tpmap("dimensions")}
    )"""


def planned_fraction(fiscal_year: str) -> str:
    """SQL of streams.plan.planned_fraction(fiscal_year, end of the range): the share of the
    allocation planned as disbursed, linear within each quarter of the Thai fiscal year
    (quarters start 1 Oct, 1 Jan, 1 Apr, 1 Jul, Bangkok time; DEFAULT_QUARTER_TARGETS)."""
    at = "(toUnixTimestamp64Milli(($__toTime_ms)) / 1000)"
    start = f"makeDateTime({fiscal_year} - 544, 10, 1, 0, 0, 0, 'Asia/Bangkok')"
    bounds = [f"toUnixTimestamp(addMonths({start}, {3 * q}))" for q in range(5)]
    branches = [f"{at} < {bounds[0]}", "0"]
    prev = 0.0
    for q, target in enumerate(DEFAULT_QUARTER_TARGETS):
        lo, hi = bounds[q], bounds[q + 1]
        branches += [
            f"{at} < {hi}",
            f"{prev} + {round(target - prev, 6)} * ({at} - {lo}) / ({hi} - {lo})",
        ]
        prev = target
    return f"multiIf({', '.join(branches)}, {DEFAULT_QUARTER_TARGETS[-1]})"
