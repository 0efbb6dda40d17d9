"""Which grain a panel reads: minute buckets, or the hourly / daily rollups (sinks/rollups.py).

A panel over metric_buckets or quality_buckets reads `metric_rows(...)` / `quality_rows(...)`:
a UNION ALL of the three grains that together cover exactly the minutes of the time range
(`bucket` between $__fromTime and $__toTime, as $__timeFilter(bucket)):

    minute  [from, H0) and [H1, to]       the partial hours at both ends
    hourly  [H0, D0) and [D1, H1)         the whole UTC hours outside whole days
    daily   [D0, D1)                      the whole UTC days

so a total over the range is the same number at every grain. Which grains are used depends only
on the range and the interval, never on the data: each branch's WHERE holds a constant condition
(range length, `$__interval_s` divisible by the grain) that ClickHouse folds, and a branch whose
condition is false reads nothing. Short ranges read minutes only; hourly from HOURLY_FROM, daily
from DAILY_FROM. A time series groups rows by $__timeInterval(bucket) (counted from the epoch),
so a grain is used only when the interval is a whole number of its periods: an hour or day then
never straddles two intervals. Days are UTC days (a Bangkok day is 24 whole UTC hours and would
straddle a 1-day interval).

The metric rollups keep the province, not the district: a scope with a district variable reads
the rollups only when that variable is on All (`$__conditionalAll(0, $district)` is `1=1` then,
`0` otherwise).
"""

from __future__ import annotations

from typing import Final

from dashboards.queries import Scope

__all__ = ["DAILY_FROM", "HOURLY_FROM", "metric_rows", "quality_rows"]

#: range lengths (seconds) from which the hourly, then the daily rollups are read
HOURLY_FROM: Final = 2 * 86_400
DAILY_FROM: Final = 14 * 86_400

_F: Final = "($__fromTime)"
_T: Final = "($__toTime)"
_LENGTH: Final = f"(toUnixTimestamp({_T}) - toUnixTimestamp({_F}))"
# the first whole hour / day at or after `from`; the first hour / day not complete at `to`
# (its last minute bucket would be after `to`)
_H0: Final = f"(toStartOfHour({_F} - 1, 'UTC') + 3600)"
_H1: Final = f"toStartOfHour({_T} + 60, 'UTC')"
_D0: Final = f"(toStartOfDay({_F} - 1, 'UTC') + 86400)"
_D1: Final = f"toStartOfDay({_T} + 60, 'UTC')"


def _flags(series: bool, allowed: str) -> tuple[str, str]:
    """(hourly, daily) used: constant SQL conditions."""
    hourly = f"({allowed}) AND {_LENGTH} >= {HOURLY_FROM}"
    daily = f"{hourly} AND {_LENGTH} >= {DAILY_FROM}"
    if series:
        hourly += " AND ($__interval_s) % 3600 = 0"
        daily += " AND ($__interval_s) % 86400 = 0"
    return f"({hourly})", f"({daily})"


def _union(
    tables: tuple[str, str, str],
    columns: str,
    where: str,
    rollup_where: str,
    flags: tuple[str, str],
) -> str:
    minute, hourly, daily = tables
    use_h, use_d = flags
    in_hours = f"(bucket >= {_H0} AND bucket < {_H1})"
    in_days = f"(bucket >= {_D0} AND bucket < {_D1})"
    return f"""(
        SELECT {columns} FROM {minute} FINAL
        WHERE bucket >= {_F} AND bucket <= {_T} AND (NOT {use_h} OR NOT {in_hours})
            AND {where}
        UNION ALL
        SELECT {columns} FROM {hourly} FINAL
        WHERE {use_h} AND {in_hours} AND (NOT {use_d} OR NOT {in_days}) AND {rollup_where}
        UNION ALL
        SELECT {columns} FROM {daily} FINAL
        WHERE {use_d} AND {in_days} AND {rollup_where}
    )"""


def metric_rows(scope: Scope, where: str, *, series: bool) -> str:
    """A subquery of metric_buckets rows in the time range, in `scope` and `where` (which may
    use metric, dim1, dim2, province_code, region): columns province_code, region, metric,
    dim1, dim2, bucket, value — minute, hourly or daily rows (see the module docstring); sum
    `value` over them."""
    allowed = "$__conditionalAll(0, $district)" if scope.district_vars else "1"
    return _union(
        ("metric_buckets", "metric_buckets_hourly", "metric_buckets_daily"),
        "province_code, region, metric, dim1, dim2, bucket, value",
        f"{scope.geo} AND {where}",
        f"{scope.province_geo} AND {where}",
        _flags(series, allowed),
    )


def quality_rows(where: str, *, series: bool) -> str:
    """A subquery of quality_buckets rows in the time range matching `where`: columns
    district_code, stream, source, outcome, reason, bucket, count (sum `count`)."""
    return _union(
        ("quality_buckets", "quality_buckets_hourly", "quality_buckets_daily"),
        "district_code, stream, source, outcome, reason, bucket, `count`",
        where,
        where,
        _flags(series, "1"),
    )
