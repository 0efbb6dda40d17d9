"""Panel numbers equal what plain Python computes from the raw table rows (the oracle), for the
panels whose SQL does real work: gauge reconstruction, histogram quantiles, open overdue cases,
"today" in Bangkok time."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from dash_panels import PanelQuery, all_selected, clickhouse_queries, context, custom_options, run

from dashboards.macros import Variable
from dashboards.queries import GAUGE_LOOKBACK_DAYS
from streams.contract import OPEN_TYPES
from streams.timeutil import BANGKOK

pytestmark = pytest.mark.integration

QUERIES = clickhouse_queries()


def panel(uid: str, title: str) -> PanelQuery:
    return next(q for q in QUERIES if q.uid == uid and q.title == title)


def _epoch(value: Any) -> float:
    """A DateTime / DateTime64 value of JSONCompact ('YYYY-MM-DD hh:mm:ss[.fff]', UTC)."""
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC).timestamp()


def _replacing(rows: list[tuple[Any, ...]], key_len: int) -> list[tuple[Any, ...]]:
    """ReplacingMergeTree(version) as FINAL reads it: per sorting key, the highest version
    (rows are (key..., value, version))."""
    best: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        key = row[:key_len]
        if key not in best or row[-1] >= best[key][-1]:
            best[key] = row
    return list(best.values())


def _gauge_total(warehouse: Any, metric: str, to_s: float) -> float:
    _, rows = warehouse.query(
        "SELECT district_code, dim1, dim2, bucket, kafka_partition, value, version "
        f"FROM metric_gauges WHERE metric = '{metric}'"
    )
    latest: dict[tuple[Any, ...], tuple[float, float]] = {}
    for d, dim1, dim2, bucket, part, value, _v in _replacing(rows, 5):
        t = _epoch(bucket)
        if t > to_s or t <= to_s - GAUGE_LOOKBACK_DAYS * 86400:
            continue
        key = (d, dim1, dim2, part)
        if key not in latest or t > latest[key][0]:
            latest[key] = (t, value)
    return sum(v for _, v in latest.values())


@pytest.mark.parametrize("hours_back", [0, 30])
def test_open_backlog_and_overdue_equal_the_gauge_oracle(warehouse: Any, hours_back: int) -> None:
    frm, to = warehouse.time_range
    to -= hours_back * 3_600_000
    for title, metric in (
        ("เรื่องค้างดำเนินการ", "grievance_open"),
        ("เกินกำหนด (SLA)", "grievance_overdue"),
    ):
        q = panel("warroom-national", title)
        _, rows = run(warehouse, q.raw_sql, context((frm, to), {}))
        expected = _gauge_total(warehouse, metric, to / 1000)
        assert expected > 0
        assert rows[0][0] == pytest.approx(expected)


def test_new_today_counts_from_bangkok_midnight(warehouse: Any) -> None:
    frm, to = warehouse.time_range
    q = panel("warroom-national", "เรื่องร้องเรียนใหม่วันนี้")
    _, rows = run(warehouse, q.raw_sql, context((frm, to), {}))
    local = datetime.fromtimestamp(to / 1000, tz=BANGKOK)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    _, raw = warehouse.query(
        "SELECT district_code, dim1, dim2, bucket, kafka_partition, value, version "
        "FROM metric_buckets WHERE metric = 'grievance_received'"
    )
    expected = sum(r[5] for r in _replacing(raw, 5) if midnight <= _epoch(r[3]) <= to / 1000)
    assert rows[0][0] == pytest.approx(expected)


def _prom_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' bucketQuantile over (upper bound, cumulative count), sorted by bound."""
    total = buckets[-1][1]
    if total == 0:
        return None
    rank = q * total
    for i, (le, count) in enumerate(buckets):
        if count >= rank:
            if math.isinf(le):
                return buckets[i - 1][0] if i > 0 else 0.0
            lower, below = (0.0, 0.0) if i == 0 else buckets[i - 1]
            return lower + (le - lower) * (rank - below) / (count - below)
    return None


def test_resolution_quantiles_match_histogram_quantile(warehouse: Any) -> None:
    frm, to = warehouse.time_range
    interval_s = 6 * 3600
    q = panel("warroom-grievances", "ระยะเวลาแก้ไขเรื่อง p50 / p90")
    variables = all_selected(q.uid, custom_options(q.uid))
    _, rows = run(warehouse, q.raw_sql, context((frm, to), variables, interval_s * 1000))
    _, raw = warehouse.query(
        "SELECT district_code, dim1, dim2, bucket, kafka_partition, value, version "
        "FROM metric_buckets WHERE metric = 'grievance_resolved_seconds_bucket'"
    )
    per_interval: dict[float, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for _d, _c, le, bucket, _p, value, _v in _replacing(raw, 5):
        t = _epoch(bucket)
        if frm / 1000 // 1 <= t <= to / 1000 // 1:
            bound = math.inf if le == "+Inf" else float(le)
            per_interval[t // interval_s * interval_s][bound] += value
    expected = {
        t: (_prom_quantile(0.5, sorted(b.items())), _prom_quantile(0.9, sorted(b.items())))
        for t, b in per_interval.items()
    }
    got = {_epoch(r[0]): (r[1], r[2]) for r in rows}
    assert got.keys() == expected.keys() and len(got) > 5
    for t, (p50, p90) in expected.items():
        assert got[t][0] == pytest.approx(p50), t
        assert got[t][1] == pytest.approx(p90), t


def test_open_overdue_cases_of_a_district_match_its_events(warehouse: Any) -> None:
    frm, to = warehouse.time_range
    _, top = warehouse.query(
        "SELECT district_code FROM grievance_events GROUP BY district_code "
        "ORDER BY count() DESC, district_code LIMIT 1"
    )
    district = top[0][0]
    q = panel("warroom-district", "เรื่องค้างที่เกินกำหนด (รายเรื่อง)")
    variables = all_selected(q.uid, custom_options(q.uid))
    variables["district"] = Variable([district])
    names, rows = run(warehouse, q.raw_sql, context((frm, to), variables))
    _, events = warehouse.query(
        "SELECT DISTINCT event_id, grievance_id, type, occurred_at, due_at, complainant_pseudonym "
        f"FROM grievance_events WHERE district_code = '{district}'"
    )
    latest: dict[str, tuple[float, str]] = {}
    due: dict[str, tuple[float, float]] = {}
    pseudonym: dict[str, str] = {}
    for _eid, gid, kind, at, due_at, pseud in events:
        t = _epoch(at)
        if t > to / 1000:
            continue
        if gid not in latest or t > latest[gid][0]:
            latest[gid] = (t, kind)
        if due_at is not None and (gid not in due or t > due[gid][0]):
            due[gid] = (t, _epoch(due_at))
        if pseud:
            pseudonym[gid] = pseud
    expected = sorted(
        (due[g][1], g)
        for g, (_, kind) in latest.items()
        if kind in OPEN_TYPES and g in due and due[g][1] < to / 1000
    )[:200]
    assert expected, "the busiest district should have overdue cases"
    assert [r[0] for r in rows] == [g for _, g in expected]
    col = names.index("complainant")
    for row in rows:
        assert row[col] == pseudonym.get(row[0], "")[:8]
        assert len(row[col]) <= 8  # never the full pseudonym, never a name or ID
    overdue_col = names.index("overdue_seconds")
    for row, (due_s, _) in zip(rows, expected, strict=True):
        # dateDiff counts whole seconds between the two times
        assert abs(row[overdue_col] - (to / 1000 - due_s)) <= 1
