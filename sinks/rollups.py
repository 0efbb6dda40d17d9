"""Hourly and daily rollups of metric_buckets and quality_buckets, recomputed from the minute data.

    hours = rollups.touched_hours(bucket_seconds)     # from the minute rows just inserted
    rollups.recompute(backend, "metric_buckets", hours)

A rollup row is a pure function of the deduplicated minute data (sinks/migrations/003_rollups.sql
says why and what the tables hold): the hours touched by a write are recomputed from the minute
table FINAL, then their days from the hourly table FINAL, with version = the store's clock in
nanoseconds, so the newest recompute wins. The writer remembers the hours its minute rows
touched and calls this at the flush before the worker commits their offsets (sinks/writer.py);
a crash in between leaves the offsets uncommitted, the replay rewrites the same minute rows and
recomputes. Until then (at most one commit interval) a rollup may lag its minute rows; panels
read the hour in progress from the minute rows anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from sinks.backends import Backend

__all__ = ["HOUR", "ROLLUPS", "SOURCES", "recompute", "recompute_sql", "touched_hours"]

HOUR: Final = 3600
DAY: Final = 86_400

#: minute table -> (hourly, daily, group columns, value expression)
ROLLUPS: Final[dict[str, tuple[str, str, str, str]]] = {
    "metric_buckets": (
        "metric_buckets_hourly",
        "metric_buckets_daily",
        "province_code, region, metric, dim1, dim2",
        "value",
    ),
    "quality_buckets": (
        "quality_buckets_hourly",
        "quality_buckets_daily",
        "district_code, province_code, region, stream, source, outcome, reason",
        "count",
    ),
}
SOURCES: Final = frozenset(ROLLUPS)

_VERSION: Final = "toUInt64(toUnixTimestamp64Nano(now64(9)))"


def _seconds(bucket: int | datetime) -> int:
    return int(bucket.timestamp()) if isinstance(bucket, datetime) else int(bucket)


def touched_hours(buckets: Iterable[int | datetime]) -> set[int]:
    """The UTC hour starts (epoch seconds) of minute buckets (epoch seconds or aware
    datetimes, as the writer takes them)."""
    return {s - s % HOUR for s in map(_seconds, buckets)}


def _runs(starts: Iterable[int], step: int) -> list[tuple[int, int]]:
    """Sorted period starts as [lo, hi) runs of consecutive periods."""
    runs: list[tuple[int, int]] = []
    for s in sorted(set(starts)):
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], s + step)
        else:
            runs.append((s, s + step))
    return runs


def _within(runs: list[tuple[int, int]]) -> str:
    """`bucket` in one of the runs: whole ranges, so the parts' bucket min/max prune the read."""
    return " OR ".join(
        f"(bucket >= toDateTime({lo}, 'UTC') AND bucket < toDateTime({hi}, 'UTC'))"
        for lo, hi in runs
    )


def recompute_sql(database: str, source: str, hours: Iterable[int]) -> list[str]:
    """The statements that recompute `hours` (UTC hour starts) of `source`'s rollups, then
    their days; empty when nothing was touched."""
    hours = set(hours)
    if not hours:
        return []
    hourly, daily, group, value = ROLLUPS[source]
    days = {h - h % DAY for h in hours}
    db = f"`{database}`"
    return [
        f"INSERT INTO {db}.{hourly} "
        f"SELECT {group}, toStartOfHour(bucket) AS hour, sum({value}), {_VERSION} "
        f"FROM {db}.{source} FINAL WHERE {_within(_runs(hours, HOUR))} "
        f"GROUP BY {group}, hour",
        f"INSERT INTO {db}.{daily} "
        f"SELECT {group}, toStartOfDay(bucket) AS day, sum({value}), {_VERSION} "
        f"FROM {db}.{hourly} FINAL WHERE {_within(_runs(days, DAY))} "
        f"GROUP BY {group}, day",
    ]


def recompute(backend: Backend, source: str, hours: Iterable[int]) -> None:
    """Recompute the rollups of the touched hours (and their days) of `source` in the store."""
    for statement in recompute_sql(backend.database, source, hours):
        backend.execute(statement)
