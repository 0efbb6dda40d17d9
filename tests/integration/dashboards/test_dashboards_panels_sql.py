"""Every ClickHouse panel query, expanded as Grafana + the plugin expand it, runs on the store
and returns the columns its panel expects; each returns rows for at least one selection."""

from __future__ import annotations

import re
from typing import Any

import pytest
from dash_panels import (
    PanelQuery,
    all_selected,
    clickhouse_queries,
    context,
    custom_options,
    run,
    specs,
    variable_queries,
)

from dashboards.macros import QueryContext, Variable, expand
from streams.contract import CATEGORIES, PROGRAMS

pytestmark = pytest.mark.integration

QUERIES = clickhouse_queries()
SPECS = specs()


@pytest.fixture(scope="module")
def busiest(warehouse: Any) -> dict[str, Any]:
    """The district with the most grievance events, and the three busiest with their areas."""
    _, rows = warehouse.query(
        "SELECT district_code, province_code, region, count() AS n FROM grievance_events "
        "GROUP BY district_code, province_code, region ORDER BY n DESC, district_code LIMIT 3"
    )
    assert rows, "the store has no grievance events"
    return {
        "district": rows[0][0],
        "province": rows[0][1],
        "region": rows[0][2],
        "districts": [r[0] for r in rows],
        "provinces": sorted({r[1] for r in rows}),
        "regions": sorted({r[2] for r in rows}),
    }


def selections(q: PanelQuery, busiest: dict[str, Any]) -> dict[str, dict[str, Variable]]:
    """All, one value each, and several values each, for the variables of q's dashboard."""
    options = {**custom_options(q.uid)}
    everything = all_selected(q.uid, options)
    single = dict(everything)
    multi = dict(everything)
    picks_single = {
        "region": [busiest["region"]],
        "province": [busiest["province"]],
        "district": [busiest["district"]],
        "category": ["land"],
        "program": ["kok_nong_na"],
        "stream": ["grievance"],
        "sdg": ["1"],
        "tpmap": ["income"],
    }
    picks_multi = {
        "region": busiest["regions"],
        "province": busiest["provinces"],
        "district": busiest["districts"],
        "category": list(CATEGORIES[:6]),
        "program": list(PROGRAMS[:5]),
        "stream": ["grievance", "project"],
        "sdg": ["6", "11"],
        "tpmap": ["health", "public_services"],
    }
    for name in everything:
        if name in picks_single:
            single[name] = Variable(picks_single[name])
            multi[name] = Variable(picks_multi[name])
    return {"all": everything, "single": single, "multi": multi}


def test_every_clickhouse_target_has_a_spec() -> None:
    assert len(QUERIES) >= 40
    missing = [q.id for q in QUERIES if q.raw_sql not in SPECS]
    assert not missing, f"targets whose SQL is not built by the code any more: {missing}"


def test_argumentless_macros_are_not_followed_by_a_parenthesis() -> None:
    """The plugin's macro engine takes a '(' right after `$__toTime` as its (ignored)
    argument list: `$__toTime (x)` is fine, `$__toTime(x)` would swallow (x)."""
    sqls = [q.raw_sql for q in QUERIES] + [sql for _, _, sql in variable_queries()]
    for sql in sqls:
        found = re.search(r"\$__(fromTime|toTime|fromTime_ms|toTime_ms|interval_s)\(", sql)
        assert not found, sql[:200]


def test_to_time_and_to_time_ms_mix_in_one_query() -> None:
    """The pinned engine reads macro names greedily: both forms expand side by side."""
    out = expand("SELECT ($__toTime), ($__toTime_ms)", QueryContext(0, 60_000))
    assert out == "SELECT (toDateTime(60)), (fromUnixTimestamp64Milli(60000))"


HOSTILE = ["\\') OR 1=1 --", "1001' OR '1'='1", "x\\", "$__timeFilter(x)"]


@pytest.mark.parametrize("q", QUERIES, ids=[q.id for q in QUERIES])
def test_panel_query_keeps_hostile_selections_as_data(q: PanelQuery, warehouse: Any) -> None:
    """Every variable set to values a URL could carry: the query still runs, returns its
    columns, and a hostile code filters everything out instead of widening the result."""
    everything = all_selected(q.uid, custom_options(q.uid))
    hostile = {
        name: (var if name == "silent_hours" else Variable(HOSTILE))
        for name, var in everything.items()
    }
    names, rows = run(warehouse, q.raw_sql, context(warehouse.time_range, hostile))
    assert names == list(SPECS[q.raw_sql].columns)
    filtered = {"region", "province", "district", "category", "program", "stream", "fiscal_year"}
    filtered |= {"sdg", "tpmap"}
    if filtered & set(everything) and SPECS[q.raw_sql].kind == "table":
        assert rows == [] or all(r[0] not in HOSTILE for r in rows)


@pytest.mark.parametrize("q", QUERIES, ids=[q.id for q in QUERIES])
def test_panel_query_runs_and_returns_its_columns(
    q: PanelQuery, warehouse: Any, busiest: dict[str, Any]
) -> None:
    spec = SPECS[q.raw_sql]
    non_empty = []
    for label, variables in selections(q, busiest).items():
        ctx = context(warehouse.time_range, variables)
        names, rows = run(warehouse, q.raw_sql, ctx)
        assert names == list(spec.columns), f"{label}: columns {names}"
        if spec.kind == "timeseries":
            assert names[0] == "time"
            times = [r[0] for r in rows]
            assert times == sorted(times), f"{label}: time column not ascending"
        if rows:
            non_empty.append(label)
    assert non_empty, f"{q.id}: every selection returned no rows"
    # what the panel's overrides name must exist in the result (a renamed column breaks them)
    stray = [name for name in q.overrides if name not in spec.columns]
    assert not stray, f"overrides refer to columns the query does not return: {stray}"


def test_single_district_selection_narrows_the_result(
    warehouse: Any, busiest: dict[str, Any]
) -> None:
    """Picking one district returns only that district's rows (the chain reaches the SQL)."""
    q = next(
        q
        for q in QUERIES
        if q.uid == "warroom-district" and q.title.startswith("20 อำเภอที่มีเรื่องเกิน")
    )
    sel = selections(q, busiest)
    _, rows_all = run(warehouse, q.raw_sql, context(warehouse.time_range, sel["all"]))
    _, rows_one = run(warehouse, q.raw_sql, context(warehouse.time_range, sel["single"]))
    assert {r[0] for r in rows_one} <= {busiest["district"]}
    assert len(rows_all) >= len(rows_one)


def test_all_selection_matches_explicit_list_of_every_value(
    warehouse: Any, busiest: dict[str, Any]
) -> None:
    """`$__conditionalAll` on All (1=1) gives what listing every category explicitly gives."""
    q = next(q for q in QUERIES if q.uid == "warroom-grievances" and q.title == "รับเรื่องตามหมวดหมู่")
    sel = selections(q, busiest)["all"]
    explicit = {**sel, "category": Variable(list(CATEGORIES))}
    _, a = run(warehouse, q.raw_sql, context(warehouse.time_range, sel))
    _, b = run(warehouse, q.raw_sql, context(warehouse.time_range, explicit))
    assert a == b and a
