"""The wall reads the generated dashboards, checks ranges and ships its chart library."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dashboards.build import GENERATED
from dashboards.clickhouse import CLICKHOUSE_TYPE
from dashboards.wall.catalog import catalog
from dashboards.wall.selection import Refused, interval_for, parse_range
from dashboards.wall.server import plotly_bundle

NOW = 1_800_000_000_000


def test_every_panel_of_the_generated_json_is_in_the_catalog_with_its_sql() -> None:
    models = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(GENERATED.glob("*.json"))]
    assert len(catalog()) == len(models) == 6
    for model in models:
        dash = catalog()[model["uid"]]
        for raw in model["panels"]:
            panel = dash.panels[raw["id"]]
            sql = [
                t["rawSql"]
                for t in raw.get("targets", [])
                if t.get("datasource", {}).get("type") == CLICKHOUSE_TYPE
            ]
            assert list(panel.sql) == sql, (dash.uid, raw["title"])


def test_the_browser_model_holds_no_query_text() -> None:
    for dash in catalog().values():
        text = json.dumps(dash.public())
        assert "rawSql" not in text and "SELECT" not in text and '"expr"' not in text, dash.uid
        # the model the worker keeps is untouched
        assert any(p.sql for p in dash.panels.values()) or dash.uid == "warroom-ops"


def test_the_page_learns_which_variables_follow_which() -> None:
    """A query variable's options follow the earlier variables its SQL reads: the page resets
    only those when one changes (an SDG goal stays picked when the region changes)."""
    district = {v["name"]: v["dependsOn"] for v in _vars("warroom-district")}
    assert district == {
        "region": [],
        "province": ["region"],
        "district": ["region", "province"],
        "category": [],
        "program": [],
    }
    projects = {v["name"]: v["dependsOn"] for v in _vars("warroom-projects")}
    assert list(projects) == ["region", "program", "fiscal_year", "sdg", "tpmap"]
    assert all(d == [] for d in projects.values())


def _vars(uid: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = catalog()[uid].public()["templating"]["list"]
    return out


@pytest.mark.parametrize(
    ("frm", "to"),
    [("now-500d", "now"), ("now", "now-1h"), ("yesterday", "now"), ("now-1h", "1;DROP")],
)
def test_bad_ranges_are_refused_with_a_reason(frm: str, to: str) -> None:
    with pytest.raises(Refused) as err:
        parse_range(frm, to, NOW)
    assert err.value.reason and err.value.status == 400


def test_ranges_and_their_intervals() -> None:
    rng = parse_range("now-24h", "now", NOW)
    assert (rng.from_ms, rng.to_ms) == (NOW - 86_400_000, NOW)
    assert parse_range(None, None, NOW) == rng
    assert interval_for(parse_range("now-1h", "now", NOW)) == 60_000  # never below a bucket
    assert interval_for(rng) == 300_000
    assert interval_for(parse_range("now-30d", "now", NOW)) == 10_800_000


def test_plotly_ships_inside_the_installed_package() -> None:
    bundle = plotly_bundle()
    assert len(bundle) > 1_000_000
    assert b"plotly.js" in bundle[:2000]


def test_alert_links_go_to_the_wall_page_when_no_grafana_is_configured() -> None:
    from alerts.messages import dashboard_link
    from streams.alerting import dashboard_base
    from warroom.settings import load

    wall = load({"WARROOM_WEB_HOST": "10.1.2.3", "WARROOM_WEB_PORT": "6066"})
    assert dashboard_link(dashboard_base(wall), "5001") == (
        "http://10.1.2.3:6066/d/warroom-district/?var-district=5001"
    )
    grafana = load({"WARROOM_DASHBOARD_URL": "https://grafana.example.go.th"})
    assert dashboard_base(grafana) == "https://grafana.example.go.th"
