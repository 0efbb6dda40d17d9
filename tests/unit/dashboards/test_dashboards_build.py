"""The generated dashboards: committed JSON is current, deterministic, and keeps the contract
other engineers rely on (uids, folders, variable names, time zone, refresh, data sources)."""

from __future__ import annotations

import json
import re

import pytest

from dashboards import build
from dashboards.clickhouse import CLICKHOUSE_TYPE
from dashboards.common import DASHBOARD_FOLDER, FOLDERS

UIDS = [
    "warroom-national",
    "warroom-district",
    "warroom-grievances",
    "warroom-projects",
    "warroom-quality",
    "warroom-ops",
]
THAI = re.compile(r"[\u0e00-\u0e7f]")


@pytest.fixture(scope="module")
def models() -> dict[str, dict]:  # type: ignore[type-arg]
    return build.build_all()


def panels(model: dict) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for p in model["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def test_committed_json_is_not_stale() -> None:
    stale = build.stale()
    assert not stale, f"regenerate with `warroom dashboards build`: {stale}"


def test_build_is_deterministic(models: dict[str, dict]) -> None:  # type: ignore[type-arg]
    again = build.build_all()
    assert {u: build.render(m) for u, m in models.items()} == {
        u: build.render(m) for u, m in again.items()
    }


def test_render_sorts_keys_and_keeps_thai_readable() -> None:
    text = build.render({"b": 1, "a": "ภาค"})
    assert text == '{\n  "a": "ภาค",\n  "b": 1\n}\n'


def test_the_six_uids_and_their_folders(models: dict[str, dict]) -> None:  # type: ignore[type-arg]
    assert sorted(models) == sorted(UIDS)
    assert sorted(p.stem for p in build.GENERATED.glob("*.json")) == sorted(UIDS)
    assert set(DASHBOARD_FOLDER) == set(UIDS)
    assert set(DASHBOARD_FOLDER.values()) == set(FOLDERS)
    for uid, model in models.items():
        assert model["uid"] == uid


@pytest.mark.parametrize("uid", UIDS)
def test_house_defaults(models: dict[str, dict], uid: str) -> None:  # type: ignore[type-arg]
    model = models[uid]
    assert model["timezone"] == "Asia/Bangkok"
    assert model["refresh"] == "10s"
    assert THAI.search(model["title"])
    ids = [p["id"] for p in panels(model)]
    assert len(ids) == len(set(ids)) and 0 not in ids
    for p in panels(model):
        if p["type"] == "row":
            continue
        assert THAI.search(p["title"]), p["title"]
        assert p.get("description"), f"{p['title']}: operators need a description"
        expected = "prometheus" if uid == "warroom-ops" else CLICKHOUSE_TYPE
        uid_ds = "warroom-prometheus" if uid == "warroom-ops" else "warroom-clickhouse"
        assert p["datasource"] == {"type": expected, "uid": uid_ds}
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"]
            if expected == CLICKHOUSE_TYPE:
                assert t["editorType"] == "sql"
                assert (t["format"], t["queryType"]) in ((0, "timeseries"), (1, "table"))


def test_units_are_set_on_numbers(models: dict[str, dict]) -> None:  # type: ignore[type-arg]
    units = set()
    for model in models.values():
        for p in panels(model):
            units.add(p.get("fieldConfig", {}).get("defaults", {}).get("unit"))
            for o in p.get("fieldConfig", {}).get("overrides", []):
                units.update(x["value"] for x in o["properties"] if x["id"] == "unit")
    assert {"currency:฿", "percent", "short", "s"} <= units


def test_district_variables_chain(models: dict[str, dict]) -> None:  # type: ignore[type-arg]
    variables = {v["name"]: v for v in models["warroom-district"]["templating"]["list"]}
    assert list(variables) == ["region", "province", "district", "category", "program"]
    province_sql = variables["province"]["query"]["rawSql"]
    district_sql = variables["district"]["query"]["rawSql"]
    assert "$region" in province_sql
    assert "$province" in district_sql and "$region" in district_sql
    for v in variables.values():
        assert v["multi"] and v["includeAll"]


def test_district_links_use_the_alert_url_shape(models: dict[str, dict]) -> None:  # type: ignore[type-arg]
    text = json.dumps(models["warroom-national"], ensure_ascii=False)
    assert "/d/warroom-district/?var-district=${__data.fields.district_code}" in text


def test_pdpa_no_clear_complainant_columns(models: dict[str, dict]) -> None:  # type: ignore[type-arg]
    """grievance_events holds no clear personal data; the pseudonym is shown cut to 8 chars and
    no query selects whole rows."""
    text = json.dumps(models, ensure_ascii=False)
    assert "SELECT *" not in text
    assert "complainant_pseudonym AS" not in text
    assert text.count("AS pseudonym") == 1  # the grouped pseudonym inside open_grievances
    assert "substring(pseudonym, 1, 8) AS complainant" in text
