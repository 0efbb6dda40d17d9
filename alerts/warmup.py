"""Warm the engine from ClickHouse history after a start: baselines, recent buckets, gauges.

The engine's state in the worker's table (Engine.dump_district, without history) carries the
live alerts, the gauges and the last hour of minute buckets, but not weeks of hourly counts:
those are re-read from `metric_buckets` once at start. The lead runs each query with the store
and hands the rows back::

    for q in warmup_queries(engine, now_ms, database="warroom"):
        apply_warmup(engine, q, rows_of(q.sql))   # rows: tuples in the documented column order
    finish_warmup(engine)
    # then consume and tick as usual

Order: load the stored state first (it sets the clock and coverage), then warm, then start
consuming. Hourly rows cover only the minutes older than what the engine keeps individually;
minute rows are full bucket values, so restored minutes are overwritten, not added. Warm once:
`finish_warmup` marks the districts so a repeated call cannot add the hours twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.engine import Engine
from alerts.export_sql import GAUGE_LOOKBACK_DAYS, LAST_EVENT_LOOKBACK_DAYS
from alerts.rules import LAST_EVENT_GAUGE
from alerts.state import HOUR_MIN, MINUTE_MS, Selector

__all__ = [
    "GAUGE_LOOKBACK_DAYS",
    "WarmupQuery",
    "apply_warmup",
    "finish_warmup",
    "warmup_queries",
]


@dataclass(frozen=True)
class WarmupQuery:
    """One query: `kind` says how its rows are applied; `columns` documents their order."""

    kind: str  # coverage | hours | minutes | gauges | last_event
    sql: str
    columns: tuple[str, ...]
    selector: Selector | None = None


def _q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dt(ms: int) -> str:
    return f"toDateTime({ms // 1000}, 'UTC')"


def warmup_queries(engine: Engine, now_ms: int, database: str = "warroom") -> list[WarmupQuery]:
    """The queries that rebuild what the engine needs at stream time `now_ms`."""
    if engine.state_with_history:
        raise ValueError("this engine stores its history in its state: nothing to warm")
    layout = engine.layout
    db = database
    now_minute = max(now_ms, engine.now_ms) // MINUTE_MS
    # minutes the engine keeps individually; older ones only as hourly sums
    cutoff_ms = (now_minute - layout.retention_minutes + 1) * MINUTE_MS
    out = [
        WarmupQuery(
            "coverage",
            "SELECT toInt64(toUnixTimestamp(min(bucket))) * 1000 AS first_ms"
            f" FROM {db}.metric_buckets",
            ("first_ms",),
        )
    ]
    for sel, hours in sorted(layout.selectors.items(), key=lambda kv: kv[0].key):
        if not hours:
            continue
        since_ms = (now_minute // HOUR_MIN - hours + 1) * HOUR_MIN * MINUTE_MS
        dim = {"dim1": "dim1", "dim2": "dim2"}.get(sel.per, "''")
        where = "".join(
            f" AND {col} IN ({', '.join(_q(v) for v in vals)})" for col, vals in sel.where
        )
        out.append(
            WarmupQuery(
                "hours",
                f"SELECT district_code, {dim} AS dimension,"
                " intDiv(toInt64(toUnixTimestamp(bucket)), 3600) AS hour, sum(value) AS value"
                f" FROM {db}.metric_buckets FINAL WHERE metric = {_q(sel.metric)}"
                f" AND bucket >= {_dt(since_ms)} AND bucket < {_dt(cutoff_ms)}{where}"
                " GROUP BY district_code, dimension, hour",
                ("district_code", "dimension", "hour", "value"),
                sel,
            )
        )
    if layout.bucket_metrics:
        metrics = ", ".join(_q(m) for m in sorted(layout.bucket_metrics))
        out.append(
            WarmupQuery(
                "minutes",
                "SELECT district_code, metric, dim1, dim2,"
                " toInt64(toUnixTimestamp(bucket)) * 1000 AS bucket_ms, sum(value) AS value"
                f" FROM {db}.metric_buckets FINAL WHERE metric IN ({metrics})"
                f" AND bucket >= {_dt(cutoff_ms)}"
                " GROUP BY district_code, metric, dim1, dim2, bucket",
                ("district_code", "metric", "dim1", "dim2", "bucket_ms", "value"),
            )
        )
    # the last-event gauge too: the live engine reads it (streams/alerting.py), so a restarted
    # one must, or it finds silent a district whose last events have no bucket (a status
    # change, a too-late event) and fires an episode the store already holds as resolved
    if layout.gauge_metrics or layout.silence:
        metrics = ", ".join(_q(m) for m in sorted(layout.gauge_metrics | {LAST_EVENT_GAUGE}))
        out.append(
            WarmupQuery(
                "gauges",
                "SELECT district_code, metric, dim1, dim2, max(b) * 1000 AS bucket_ms,"
                " sum(v) AS value FROM ("
                " SELECT district_code, metric, dim1, dim2, kafka_partition,"
                " toInt64(toUnixTimestamp(max(bucket))) AS b, argMax(value, bucket) AS v"
                f" FROM {db}.metric_gauges_latest FINAL WHERE metric IN ({metrics})"
                f" AND bucket > {_dt(now_ms)} - INTERVAL {GAUGE_LOOKBACK_DAYS} DAY"
                " GROUP BY district_code, metric, dim1, dim2, kafka_partition)"
                " GROUP BY district_code, metric, dim1, dim2",
                ("district_code", "metric", "dim1", "dim2", "bucket_ms", "value"),
            )
        )
    out.append(
        WarmupQuery(
            "last_event",
            # no FINAL: any row with a positive count proves an event in that minute
            "SELECT district_code, toInt64(toUnixTimestamp(max(bucket))) * 1000 AS bucket_ms"
            f" FROM {db}.metric_buckets WHERE value > 0"
            f" AND bucket > {_dt(now_ms)} - INTERVAL {LAST_EVENT_LOOKBACK_DAYS} DAY"
            " GROUP BY district_code",
            ("district_code", "bucket_ms"),
        )
    )
    return out


def apply_warmup(engine: Engine, query: WarmupQuery, rows: Iterable[Sequence[Any]]) -> int:
    """Feed one query's rows to the engine; returns how many rows were applied."""
    n = 0
    if query.kind == "coverage":
        for (first_ms,) in rows:
            if first_ms and int(first_ms) > 0:
                first = int(first_ms)
                # history only extends coverage backwards; it never claims more than it holds
                if engine.coverage_ms is None or first < engine.coverage_ms:
                    engine.coverage_ms = first
                n += 1
    elif query.kind == "hours":
        assert query.selector is not None
        for code, dim, hour, value in rows:
            data = engine.district_data(str(code))
            if data.needs_history:
                data.add_history(query.selector, str(dim), int(hour), float(value))
                n += 1
    elif query.kind == "minutes":
        for code, metric, dim1, dim2, bucket_ms, value in rows:
            data = engine.district_data(str(code))
            data.warm_minute(
                str(metric), str(dim1), str(dim2), int(bucket_ms) // MINUTE_MS, float(value)
            )
            n += 1
    elif query.kind == "gauges":
        for code, metric, dim1, dim2, bucket_ms, value in rows:
            engine.observe(
                str(code), str(metric), str(dim1), str(dim2), int(bucket_ms), float(value)
            )
            n += 1
    elif query.kind == "last_event":
        for code, bucket_ms in rows:
            engine.district_data(str(code)).saw_event(int(bucket_ms) + MINUTE_MS)
            n += 1
    else:
        raise ValueError(f"unknown warm-up query kind {query.kind!r}")
    return n


def finish_warmup(engine: Engine) -> None:
    """Mark every district warmed, so a second warm-up cannot add the hours twice."""
    for code in engine.districts():
        engine.district_data(code).needs_history = False
