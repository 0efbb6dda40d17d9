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
from DAILY_FROM. A time series groups rows by SERIES_TIME: Grafana's interval, made whole hours
from SERIES_HOURLY_FROM and whole days from SERIES_DAILY_FROM and counted from the epoch, so an
hour or a day of the rollups never straddles two points (Grafana sends 6 h for a year on a
1,000 px panel: 1,460 points that only the hourly rollup could fill). Days are UTC days (a
Bangkok day is 24 whole UTC hours and would straddle a 1-day point).

The metric rollups keep the province, not the district: a scope with a district variable reads
the rollups only when that variable is on All (`$__conditionalAll(0, $district)` is `1=1` then,
`0` otherwise).
"""

from __future__ import annotations

from typing import Final

from dashboards.queries import Scope

__all__ = [
    "DAILY_FROM",
    "HOURLY_FROM",
    "SERIES_DAILY_FROM",
    "SERIES_HOURLY_FROM",
    "SERIES_TIME",
    "metric_rows",
    "quality_rows",
]

#: range lengths (seconds) from which the hourly, then the daily rollups are read
HOURLY_FROM: Final = 2 * 86_400
DAILY_FROM: Final = 14 * 86_400
#: the same for time series, whose points then are whole hours / days (SERIES_TIME)
SERIES_HOURLY_FROM: Final = 28 * 86_400
SERIES_DAILY_FROM: Final = 90 * 86_400

_F: Final = "($__fromTime)"
_T: Final = "($__toTime)"
_LENGTH: Final = f"(toUnixTimestamp({_T}) - toUnixTimestamp({_F}))"
# the first whole hour / day at or after `from`; the first hour / day not complete at `to`
# (its last minute bucket would be after `to`)
_H0: Final = f"(toStartOfHour({_F} - 1, 'UTC') + 3600)"
_H1: Final = f"toStartOfHour({_T} + 60, 'UTC')"
_D0: Final = f"(toStartOfDay({_F} - 1, 'UTC') + 86400)"
_D1: Final = f"toStartOfDay({_T} + 60, 'UTC')"


def _whole(period: int) -> str:
    return f"(intDiv(($__interval_s) + {period - 1}, {period}) * {period})"


#: a time series' point width (seconds): Grafana's interval, rounded up to whole hours from
#: SERIES_HOURLY_FROM and to whole days from SERIES_DAILY_FROM (365 daily points for a year
#: instead of 1,460 six-hour ones), so every hour or day of the rollups falls in one point
SERIES_WIDTH: Final = (
    f"multiIf({_LENGTH} >= {SERIES_DAILY_FROM}, {_whole(86_400)}, "
    f"{_LENGTH} >= {SERIES_HOURLY_FROM}, {_whole(3600)}, ($__interval_s))"
)
#: the time column of a time series over metric_rows / quality_rows (instead of
#: $__timeInterval(bucket): the same epoch-aligned start, at SERIES_WIDTH)
SERIES_TIME: Final = f"toDateTime(intDiv(toUInt32(bucket), {SERIES_WIDTH}) * {SERIES_WIDTH})"


def _flags(series: bool, allowed: str) -> tuple[str, str]:
    """(hourly, daily) used: constant SQL conditions."""
    hourly_from, daily_from = (
        (SERIES_HOURLY_FROM, SERIES_DAILY_FROM) if series else (HOURLY_FROM, DAILY_FROM)
    )
    hourly = f"({allowed}) AND {_LENGTH} >= {hourly_from}"
    daily = f"{hourly} AND {_LENGTH} >= {daily_from}"
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
