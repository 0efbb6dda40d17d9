"""Panel numbers equal what plain Python computes from the raw table rows (the oracle), for the
panels whose SQL does real work: gauges (recomputed from the raw events, now and at the end of
the fixture's first phase), histogram quantiles, open overdue cases, "today" in Bangkok time."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import dash_oracle
import pytest
from dash_oracle import Key, total
from dash_panels import PanelQuery, all_selected, clickhouse_queries, context, custom_options, run

from dashboards.macros import Variable
from dashboards.queries import GAUGE_FAMILY
from streams import geography
from streams.contract import OPEN_TYPES
from streams.labels import CATEGORY_TH, PROGRAM_TH, STATUS_TH
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


def _gauges(warehouse: Any, when: str) -> tuple[int, dict[Key, float], dict[Key, float]]:
    """(time range end, grievance oracle, project oracle) at the end of the data ("now") or
    at the end of phase 1 ("past")."""
    if when == "now":
        limits = None
        to = warehouse.time_range[1]
    else:
        limits = warehouse.phase1_offsets
        to = warehouse.past_ms
    return (
        to,
        dash_oracle.grievance_gauges(warehouse, limits),
        dash_oracle.project_gauges(warehouse, limits),
    )


@pytest.fixture(scope="module", params=["now", "past"])
def gauges(request: pytest.FixtureRequest, warehouse: Any) -> tuple[int, Any, Any]:
    return _gauges(warehouse, request.param)


def _stat(uid: str, title: str, warehouse: Any, to: int, **selected: Any) -> tuple[Any, ...]:
    q = panel(uid, title)
    variables = all_selected(q.uid, custom_options(q.uid))
    variables.update({k: Variable(v) for k, v in selected.items()})
    _, rows = run(warehouse, q.raw_sql, context((warehouse.time_range[0], to), variables))
    assert len(rows) == 1
    return rows[0]


def test_keys_that_dropped_to_zero_across_the_restart_are_written_as_zero(warehouse: Any) -> None:
    """The fixture restarts its worker; keys it no longer has after that get a 0 row in
    metric_gauges_latest (the worker seeds them from the table's non-zero keys), so every
    non-zero row there is from its process's latest snapshot. The zero rows exist."""
    _, rows = warehouse.query(
        f"""
        SELECT countIf(k.value != 0 AND k.version < l.v), countIf(k.value = 0)
        FROM (SELECT *, {GAUGE_FAMILY} AS family FROM metric_gauges_latest FINAL) AS k
        INNER JOIN (
            SELECT district_code, kafka_partition, {GAUGE_FAMILY} AS family, max(version) AS v
            FROM metric_gauges_latest GROUP BY district_code, kafka_partition, family
        ) AS l ON l.district_code = k.district_code AND l.kafka_partition = k.kafka_partition
            AND l.family = k.family
        """
    )
    stale, zeros = rows[0]
    assert stale == 0
    assert zeros > 0


def test_headline_gauges_equal_the_raw_event_oracle(
    warehouse: Any, gauges: tuple[int, Any, Any]
) -> None:
    to, grievances, projects = gauges
    expected = {
        "เรื่องค้างดำเนินการ": total(grievances, "grievance_open"),
        "เกินกำหนด (SLA)": total(grievances, "grievance_overdue"),
        "เร่งด่วนยังไม่มอบหมาย": total(grievances, "grievance_urgent_unassigned"),
        "โครงการล่าช้า/หยุดชะงัก": total(
            projects, "project_count", dim2=lambda s: s in ("delayed", "stalled")
        ),
    }
    assert all(v > 0 for v in expected.values()), expected
    for uid in ("warroom-national", "warroom-district"):
        got = {title: _stat(uid, title, warehouse, to)[0] for title in expected}
        assert got == pytest.approx(expected), uid


def test_district_selection_equals_the_oracle_of_that_district(
    warehouse: Any, gauges: tuple[int, Any, Any]
) -> None:
    to, grievances, _ = gauges
    district = max(
        {k[0] for k in grievances},
        key=lambda d: (total(grievances, "grievance_open", district=d), d),
    )
    d = geography.district(district)
    assert d is not None
    chain = {
        "region": [dash_oracle.region_of(district)],
        "province": [d.province_code],
        "district": [district],
    }
    for metric, title in (
        ("grievance_open", "เรื่องค้างดำเนินการ"),
        ("grievance_overdue", "เกินกำหนด (SLA)"),
    ):
        expected = total(grievances, metric, district=district)
        got = _stat("warroom-district", title, warehouse, to, **chain)[0]
        assert (got or 0) == pytest.approx(expected), (district, metric)
    # a category narrows it further
    expected = total(grievances, "grievance_open", district=district, dim1="debt")
    got = _stat("warroom-district", "เรื่องค้างดำเนินการ", warehouse, to, **chain, category=["debt"])[0]
    assert (got or 0) == pytest.approx(expected)


def test_backlog_tables_equal_the_oracle(warehouse: Any, gauges: tuple[int, Any, Any]) -> None:
    to, grievances, _ = gauges
    ctx = context((warehouse.time_range[0], to), {})
    region_of = {d: dash_oracle.region_of(d) for d in {k[0] for k in grievances}}
    # region x category
    q = panel("warroom-national", "เรื่องค้างดำเนินการ: ภาค × หมวดหมู่")
    names, rows = run(warehouse, q.raw_sql, ctx)
    region_th = {name_th: rid for rid, (name_th, _, _) in geography.REGIONS.items()}
    assert {region_th[r[0]] for r in rows} == set(geography.REGIONS)
    for row in rows:
        region = region_th[row[0]]
        for code, label in CATEGORY_TH.items():
            expected = total(
                grievances,
                "grievance_open",
                district=lambda d, r=region: region_of[d] == r,
                dim1=code,
            )
            assert (row[names.index(label)] or 0) == pytest.approx(expected), (region, code)
    # by category and priority, with overdue
    q = panel("warroom-national", "เรื่องค้างตามหมวดหมู่")
    names, rows = run(warehouse, q.raw_sql, ctx)
    label_of = {v: k for k, v in CATEGORY_TH.items()}
    got = {label_of[r[0]]: r[1:] for r in rows}
    expected_bars = {}
    for code in CATEGORY_TH:
        e = (
            total(grievances, "grievance_open", dim1=code, dim2="normal"),
            total(grievances, "grievance_open", dim1=code, dim2="urgent"),
            total(grievances, "grievance_overdue", dim1=code),
        )
        if any(e):
            expected_bars[code] = e
    assert got.keys() == expected_bars.keys()
    for code, e in expected_bars.items():
        assert got[code] == pytest.approx(e), code
    # top 20 districts by overdue
    q = panel("warroom-national", "20 อำเภอที่มีเรื่องเกินกำหนดมากที่สุด")
    names, rows = run(warehouse, q.raw_sql, ctx)
    per_district = sorted(
        (
            -total(grievances, "grievance_overdue", district=d),
            d,
            total(grievances, "grievance_open", district=d),
        )
        for d in region_of
    )
    top = [(d, -neg, open_) for neg, d, open_ in per_district if neg < 0][:20]
    assert len(top) == 20
    assert [(r[0], r[3], r[4]) for r in rows] == [
        (d, pytest.approx(o), pytest.approx(n)) for d, o, n in top
    ]


def _project_panels(
    warehouse: Any, to: int, **selected: list[str]
) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every projects panel under a selection (the rest on All), by title."""
    variables = all_selected("warroom-projects", custom_options("warroom-projects"))
    variables.update({k: Variable(v) for k, v in selected.items()})
    ctx = context((warehouse.time_range[0], to), variables)
    return {q.title: run(warehouse, q.raw_sql, ctx) for q in QUERIES if q.uid == "warroom-projects"}


def _assert_project_panels(
    got: dict[str, tuple[list[str], list[tuple[Any, ...]]]], expected: dict[str, Any]
) -> None:
    """The projects dashboard's panels equal the oracle's numbers (dash_oracle.project_panels)."""
    # the panels round means and percentages to 0.1: within 0.05 of the exact value (rounding
    # the oracle too would double-round: 40.65 is 40.6 in Python's float and 40.7 in ClickHouse)
    near = 0.051
    _, rows = got["โครงการ"]
    assert len(rows) == 1
    assert rows[0] == pytest.approx(expected["summary"], abs=near)
    # projects per program and status
    names, rows = got["โครงการตามแผนงานและสถานะ"]
    program_of = {v: k for k, v in PROGRAM_TH.items()}
    assert {
        program_of[r[0]]: {code: r[names.index(label)] for code, label in STATUS_TH.items()}
        for r in rows
    } == {
        program: {code: counts.get(code, 0) for code in STATUS_TH}
        for program, counts in expected["by_status"].items()
    }
    # mean progress vs plan of the active projects, per program
    _, rows = got["ความก้าวหน้าเทียบแผน ตามแผนงาน"]
    assert {r[0]: r[1:] for r in rows} == {
        PROGRAM_TH[p]: pytest.approx(v, abs=near) for p, v in expected["gap"].items()
    }
    # budget per province and fiscal year (B.E.)
    _, rows = got["งบประมาณรายจังหวัดและปีงบประมาณ"]
    province_th = {p.name_th: p.code for p in geography.provinces()}
    assert {(province_th[r[0]], r[1]): (*r[2:5], r[6]) for r in rows} == {
        k: pytest.approx(v, abs=near) for k, v in expected["budget"].items()
    }
    # disbursed and planned % of the allocation, per program
    _, rows = got["เบิกจ่ายเทียบแผน ตามแผนงาน"]
    assert {r[0]: r[1:] for r in rows} == {
        PROGRAM_TH[p]: pytest.approx(v, abs=near) for p, v in expected["disbursement"].items()
    }
    # active projects silent for 14 days (the table shows at most 200)
    _, rows = got["โครงการที่ไม่รายงานเกิน 14 วัน"]
    assert len(rows) == min(200, len(expected["stale"]))
    assert {r[0] for r in rows} <= expected["stale"]


@pytest.fixture(scope="module", params=["now", "past"])
def range_end(request: pytest.FixtureRequest, warehouse: Any) -> int:
    """The range end: after the data, or at the end of the fixture's first phase (the
    panels then read each case's and project's latest event up to that time, whenever it
    arrived: the latest-state tables for the cases untouched since, the events for the rest)."""
    return int(warehouse.time_range[1] if request.param == "now" else warehouse.past_ms)


def test_project_panels_equal_the_oracle(warehouse: Any, range_end: int) -> None:
    to = range_end
    reports = dash_oracle.latest_projects(warehouse, to_ms=to)
    expected = dash_oracle.project_panels(list(reports.values()), to)
    active, behind, stale, *_ = expected["summary"]
    assert active and behind and stale, "active, behind-plan and stale projects exist"
    assert len({fy for _, fy in expected["budget"]}) >= 2, "projects of two fiscal years (B.E.)"
    _assert_project_panels(_project_panels(warehouse, to), expected)


# SDG goal 1 is served by several programs and 'health' by two others: alone, together (one
# program serves both) and with several values, each a different set of projects
PROJECT_SELECTIONS = [
    {"sdg": ["1"]},
    {"tpmap": ["health"]},
    {"sdg": ["1"], "tpmap": ["health"]},
    {"sdg": ["6", "16"], "tpmap": ["income", "public_services"]},
    {"sdg": ["1"], "program": ["kok_nong_na", "informal_debt"]},
]


@pytest.mark.parametrize("selection", PROJECT_SELECTIONS, ids=lambda s: json.dumps(s))
def test_sdg_and_tpmap_selections_equal_the_oracle(
    warehouse: Any, range_end: int, selection: dict[str, list[str]]
) -> None:
    to = range_end
    reports = dash_oracle.latest_projects(warehouse, to_ms=to)
    kept = dash_oracle.selected(
        reports,
        program=selection.get("program"),
        sdg=[int(g) for g in selection["sdg"]] if "sdg" in selection else None,
        tpmap=selection.get("tpmap"),
    )
    assert 0 < len(kept) < len(reports), "the selection keeps some projects, not all"
    expected = dash_oracle.project_panels(kept, to)
    _assert_project_panels(_project_panels(warehouse, to, **selection), expected)


def test_budget_disbursement_stat_equals_the_oracle(
    warehouse: Any, gauges: tuple[int, Any, Any]
) -> None:
    to, _, projects = gauges
    local = datetime.fromtimestamp(to / 1000, tz=BANGKOK)
    fy = str(local.year + 543 + (1 if local.month >= 10 else 0))
    alloc = total(projects, "project_budget_allocated_thb", dim2=fy)
    disb = total(projects, "project_budget_disbursed_thb", dim2=fy)
    plan = total(projects, "project_budget_planned_disbursed_thb", dim2=fy)
    assert alloc > 0
    row = _stat("warroom-national", "เบิกจ่ายงบประมาณ (ปีงบฯ ปัจจุบัน)", warehouse, to)
    assert row == pytest.approx((100 * disb / alloc, 100 * plan / alloc), abs=0.051)


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


def test_open_overdue_cases_of_a_district_match_its_events(warehouse: Any, range_end: int) -> None:
    frm, to = warehouse.time_range[0], range_end
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
    _, generations = warehouse.query("SELECT count() FROM grievance_open_generations")
    assert generations[0][0] > 0, "the worker rebuilds the open-case snapshot the list reads"
    if to < warehouse.time_range[1]:
        # cases with events after the end exist: they are recomputed from their events
        touched = {gid for _e, gid, _k, at, *_ in events if _epoch(at) > to / 1000}
        assert touched & {g for _, g in expected}, "some listed case changed after the end"
    assert [r[0] for r in rows] == [g for _, g in expected]
    col = names.index("complainant")
    for row in rows:
        assert row[col] == pseudonym.get(row[0], "")[:8]
        assert len(row[col]) <= 8  # never the full pseudonym, never a name or ID
    overdue_col = names.index("overdue_seconds")
    for row, (due_s, _) in zip(rows, expected, strict=True):
        # dateDiff counts whole seconds between the two times
        assert abs(row[overdue_col] - (to / 1000 - due_s)) <= 1
