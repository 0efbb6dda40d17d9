"""ClickHouse SQL for each rule kind, as the Grafana ClickHouse data source runs it in alerting.

Every query returns one row per alert instance that meets the rule's preconditions: string
columns `district_code` (and `dimension` for split rules) become alert labels, the numeric
column `value` is what Grafana's threshold expression compares. Rows that are absent resolve.
`$__toTime` (the evaluation time, expanded by the plugin to `toDateTime(<unix seconds>)`) is
the only macro used, so the query is a function of the evaluation time alone.

Differences from the in-stream engine (alerts/engine.py), stated so nobody is surprised:
- surge baselines here are exact per minute; the engine interpolates hourly history inside
  an hour (identical when the window is whole hours ending at hh:59);
- the engine's trailing-hours fallback for a young system (fallback_hours) is not exported:
  a Grafana deployment evaluates against the stored weeks of history only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from alerts.rules import LAST_EVENT_GAUGE, Kind, Rule

__all__ = ["GAUGE_LOOKBACK_DAYS", "LAST_EVENT_LOOKBACK_DAYS", "rule_sql"]

#: how far back the latest gauge snapshot of a key is looked for
GAUGE_LOOKBACK_DAYS = 7
#: how far back a silent district's last event is looked for (older: not reported)
LAST_EVENT_LOOKBACK_DAYS = 30
NOW = "$__toTime"
WEEK_MIN = 7 * 24 * 60


def _q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _in(values: Iterable[str]) -> str:
    return ", ".join(_q(v) for v in values)


def _where(rule: Rule) -> str:
    return "".join(f" AND {col} IN ({_in(vals)})" for col, vals in sorted(rule.where.items()))


def _dim(rule: Rule) -> tuple[str, str]:
    """(select expression, group-by suffix) for the rule's dimension label."""
    if not rule.per:
        return "", ""
    return f", {rule.per} AS dimension", ", dimension"


def _latest_gauges(db: str, metrics: Iterable[str], extra: str = "") -> str:
    """Current value of each gauge key: the latest snapshot per partition, summed."""
    return (
        "SELECT district_code, metric, dim1, dim2, sum(v) AS value FROM ("
        " SELECT district_code, metric, dim1, dim2, kafka_partition,"
        " argMax(value, bucket) AS v"
        f" FROM {db}.metric_gauges_latest FINAL"
        f" WHERE metric IN ({_in(sorted(metrics))}) AND bucket <= {NOW}"
        f" AND bucket > {NOW} - INTERVAL {GAUGE_LOOKBACK_DAYS} DAY{extra}"
        " GROUP BY district_code, metric, dim1, dim2, kafka_partition)"
        " GROUP BY district_code, metric, dim1, dim2"
    )


def _surge(rule: Rule, db: str) -> str:
    p = rule.params
    w = p["window_ms"] // 60_000
    n = p["baseline_weeks"]
    dim_sel, dim_group = _dim(rule)
    weeks = ", ".join(
        f"sumIf(value, bucket > now_m - INTERVAL {k * WEEK_MIN + w} MINUTE"
        f" AND bucket <= now_m - INTERVAL {k * WEEK_MIN} MINUTE)"
        for k in range(1, n + 1)
    )
    covered = ", ".join(
        f"toStartOfHour(now_m - INTERVAL {k * WEEK_MIN + w - 1} MINUTE) >= data_start"
        for k in range(1, n + 1)
    )
    stat = {
        "mean": "mean",
        "stddev": f"mean + {p['k']!r} * std",
        "ratio": f"{p['ratio']!r} * mean",
    }[p["method"]]
    label = ", dimension" if rule.per else ""
    return (
        f"WITH toStartOfMinute({NOW}) AS now_m,"
        f" (SELECT min(bucket) FROM {db}.metric_buckets) AS data_start"
        f" SELECT district_code{label}, current AS value FROM ("
        f" SELECT district_code{dim_sel},"
        f" sumIf(value, bucket > now_m - INTERVAL {w} MINUTE AND bucket <= now_m) AS current,"
        f" arrayFilter((v, c) -> c, [{weeks}], [{covered}]) AS weeks,"
        " arrayAvg(weeks) AS mean,"
        " sqrt(arrayAvg(arrayMap(x -> (x - mean) * (x - mean), weeks))) AS std"
        f" FROM {db}.metric_buckets FINAL"
        f" WHERE metric = {_q(rule.metric)}"
        f" AND bucket > now_m - INTERVAL {n * WEEK_MIN + w} MINUTE AND bucket <= now_m"
        f"{_where(rule)}"
        f" GROUP BY district_code{dim_group})"
        f" WHERE length(weeks) >= {p['min_weeks']} AND current >= {p['min_count']}"
        f" AND current > {stat}"
    )


def _threshold(rule: Rule, db: str) -> str:
    dim_sel, dim_group = _dim(rule)
    if rule.is_gauge:
        source = f"({_latest_gauges(db, [rule.metric])})"
        cond = "1"
    else:
        w = rule.params["window_ms"] // 60_000
        source = f"{db}.metric_buckets FINAL"
        cond = (
            f"metric = {_q(rule.metric)} AND bucket > toStartOfMinute({NOW}) - INTERVAL {w} MINUTE"
            f" AND bucket <= toStartOfMinute({NOW})"
        )
    return (
        f"SELECT district_code{dim_sel}, sum(value) AS value FROM {source}"
        f" WHERE {cond}{_where(rule)} GROUP BY district_code{dim_group}"
    )


def _mean_gap(rule: Rule, db: str) -> str:
    dim_sel, dim_group = _dim(rule)
    metrics = ["project_planned_pct_sum", "project_progress_pct_sum", "project_active"]
    label = ", dimension" if rule.per else ""
    return (
        f"SELECT district_code{label}, (planned - progress) / active AS value FROM ("
        f" SELECT district_code{dim_sel},"
        " sumIf(value, metric = 'project_planned_pct_sum') AS planned,"
        " sumIf(value, metric = 'project_progress_pct_sum') AS progress,"
        " sumIf(value, metric = 'project_active') AS active"
        f" FROM ({_latest_gauges(db, metrics)}) WHERE 1{_where(rule)}"
        f" GROUP BY district_code{dim_group})"
        f" WHERE active >= {rule.params['min_projects']}"
    )


def _disbursement(rule: Rule, db: str) -> str:
    p = rule.params
    dim_sel, dim_group = _dim(rule)
    label = ", dimension" if rule.per else ""
    metrics = ["project_budget_disbursed_thb", "project_budget_planned_disbursed_thb"]
    # Thai fiscal quarters end where calendar quarters end; the fiscal year (B.E.) is the
    # calendar year + 543, + 1 from October
    fy = "toString(toYear(today_th) + 543 + if(toMonth(today_th) >= 10, 1, 0))"
    return (
        f"WITH toDate({NOW}, 'Asia/Bangkok') AS today_th,"
        " dateDiff('day', today_th, addMonths(toStartOfQuarter(today_th), 3)) AS days_left"
        f" SELECT district_code{label}, 100 * disbursed / planned AS value FROM ("
        f" SELECT district_code{dim_sel},"
        " sumIf(value, metric = 'project_budget_disbursed_thb') AS disbursed,"
        " sumIf(value, metric = 'project_budget_planned_disbursed_thb') AS planned"
        f" FROM ({_latest_gauges(db, metrics, extra=f' AND dim2 = {fy}')})"
        f" WHERE 1{_where(rule)} GROUP BY district_code{dim_group})"
        f" WHERE planned > 0 AND planned >= {p['min_planned_thb']!r}"
        f" AND days_left <= {7 * p['weeks_before_quarter_end']}"
    )


def _office_clock(seconds_expr: str, start_min: int, end_min: int) -> str:
    """Office seconds since Monday 1970-01-05 00:00 Bangkok (see alerts/officehours.py)."""
    day = (end_min - start_min) * 60
    local = f"({seconds_expr} + 25200 - 345600)"
    rest = f"({local} % 604800)"
    weekday = f"intDiv({rest}, 86400)"
    sod = f"({rest} % 86400)"
    return (
        f"(intDiv({local}, 604800) * {5 * day} + least({weekday}, 5) * {day}"
        f" + if({weekday} < 5, least(greatest({sod} - {start_min * 60}, 0), {day}), 0))"
    )


def _silent(rule: Rule, db: str) -> str:
    p = rule.params
    start, end = p["office_start_min"], p["office_end_min"]
    now_clock = _office_clock(f"toUnixTimestamp({NOW})", start, end)
    last_clock = _office_clock("last_s", start, end)
    # the last event: the end of its minute bucket, or what the latest last-event gauge
    # snapshot says (its snapshot minute less the age), whichever is later; the gauge counts
    # events that have no bucket (status changes, too-late events), as the engine does
    return (
        f"SELECT district_code, ({now_clock} - {last_clock}) / 3600 AS value FROM ("
        " SELECT district_code, max(last) AS last_s FROM ("
        " SELECT district_code, toInt64(toUnixTimestamp(max(bucket))) + 60 AS last"
        f" FROM {db}.metric_buckets WHERE value > 0 AND bucket <= {NOW}"
        f" AND bucket > {NOW} - INTERVAL {LAST_EVENT_LOOKBACK_DAYS} DAY"
        " GROUP BY district_code UNION ALL"
        " SELECT district_code, toInt64(floor(max(toUnixTimestamp(bucket) - value))) AS last"
        f" FROM {db}.metric_gauges_latest FINAL WHERE metric = {_q(LAST_EVENT_GAUGE)}"
        f" AND value >= 0 AND bucket <= {NOW}"
        f" AND bucket > {NOW} - INTERVAL {LAST_EVENT_LOOKBACK_DAYS} DAY"
        " GROUP BY district_code)"
        " GROUP BY district_code)"
    )


_BUILDERS: dict[Kind, Callable[[Rule, str], str]] = {
    Kind.SURGE: _surge,
    Kind.THRESHOLD: _threshold,
    Kind.MEAN_GAP: _mean_gap,
    Kind.DISBURSEMENT: _disbursement,
    Kind.SILENT: _silent,
}


_CLAUSE = re.compile(r" (SELECT|FROM|WHERE|GROUP BY) ")


def rule_sql(rule: Rule, database: str = "warroom") -> str:
    """The alerting query of one rule (columns: district_code, [dimension], value)."""
    # one clause per line, so the query reads well in the provisioning file and in Grafana
    return _CLAUSE.sub(r"\n\1 ", _BUILDERS[rule.kind](rule, database))
