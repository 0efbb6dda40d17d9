"""Every ClickHouse query variable runs and returns values; the region → province → district
chain narrows as the reference geography says (oracle: streams.geography, not SQL); the SDG and
TPMAP variables list what the produced project events carry (oracle: the simulator's items)."""

from __future__ import annotations

from typing import Any

import pytest
from dash_panels import context, run, variable_queries

from dashboards.macros import ALL, Variable
from streams import geography
from streams.contract import TPMAP_DIMENSIONS
from streams.labels import SDG_TH, TPMAP_TH

pytestmark = pytest.mark.integration

VARIABLES = {(uid, name): sql for uid, name, sql in variable_queries()}


def _values(warehouse: Any, sql: str, **selected: list[str] | str) -> list[tuple[Any, ...]]:
    variables = {
        name: Variable(selected.get(name, ALL)) for name in ("region", "province", "district")
    }
    names, rows = run(warehouse, sql, context(warehouse.time_range, variables))
    assert 1 <= len(names) <= 2, "the plugin reads the value (and text) from two columns at most"
    return rows


@pytest.mark.parametrize("key", sorted(VARIABLES), ids=lambda k: f"{k[0]}:{k[1]}")
def test_variable_query_returns_values(key: tuple[str, str], warehouse: Any) -> None:
    rows = _values(warehouse, VARIABLES[key])
    assert rows
    assert all(str(r[0]) for r in rows)
    assert len({r[0] for r in rows}) == len(rows), "values must be unique"


def test_region_variable_lists_the_six_regions(warehouse: Any) -> None:
    rows = _values(warehouse, VARIABLES[("warroom-district", "region")])
    assert {r[0]: r[1] for r in rows} == {k: v[0] for k, v in geography.REGIONS.items()}


def test_province_variable_has_77_provinces_and_follows_the_region(warehouse: Any) -> None:
    sql = VARIABLES[("warroom-district", "province")]
    assert len(_values(warehouse, sql)) == len(geography.provinces()) == 77
    for region, (_, _, codes) in geography.REGIONS.items():
        assert {r[0] for r in _values(warehouse, sql, region=[region])} == set(codes)
    two = {r[0] for r in _values(warehouse, sql, region=["north", "south"])}
    assert two == set(geography.REGIONS["north"][2] | geography.REGIONS["south"][2])


def test_district_variable_lists_the_districts_of_the_province(warehouse: Any) -> None:
    sql = VARIABLES[("warroom-district", "district")]
    for code in ("10", "50", "96"):
        expected = {d.code for d in geography.districts(code)}
        assert {r[0] for r in _values(warehouse, sql, province=[code])} == expected
    assert len(_values(warehouse, sql)) == len(geography.districts())
    # Bangkok's 50 khet, each shown with its Thai name
    rows = _values(warehouse, sql, province=["10"])
    assert len(rows) == 50
    names = {d.code: d.name_th for d in geography.districts("10")}
    assert all(names[code] in text for code, text in rows)


def _produced(warehouse: Any, field: str) -> set[Any]:
    """Every value of a project event's list field among the events the simulator produced."""
    return {
        v
        for it in warehouse.items
        if it.reason is None and it.event and it.event.get("schema") == "project.v1"
        for v in it.event.get(field) or ()
    }


def test_sdg_and_tpmap_variables_list_what_the_projects_carry_in_thai(warehouse: Any) -> None:
    rows = _values(warehouse, VARIABLES[("warroom-projects", "sdg")])
    goals = _produced(warehouse, "sdg_goals")
    assert len(goals) >= 10
    assert [r[0] for r in rows] == [str(g) for g in sorted(goals)]  # in goal order
    assert all(r[1] == f"SDG {r[0]} · {SDG_TH[int(r[0])]}" for r in rows)
    rows = _values(warehouse, VARIABLES[("warroom-projects", "tpmap")])
    dims = _produced(warehouse, "tpmap_dimensions")
    assert [r[0] for r in rows] == [d for d in TPMAP_DIMENSIONS if d in dims]  # TPMAP's order
    assert {r[0]: r[1] for r in rows} == {d: TPMAP_TH[d] for d in dims}
