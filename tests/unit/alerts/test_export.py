"""The exported Grafana provisioning and Prometheus rules: fresh, well-formed, and faithful to
rules.yaml (read here with plain YAML, independently of the loader)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from alerts.cli import register
from alerts.export import (
    GRAFANA_DIR,
    GRAFANA_FILE,
    PROMETHEUS_FILE,
    render_grafana,
    render_prometheus,
)
from alerts.rules import load_rules

REPO = Path(__file__).resolve().parents[3]
DATASOURCES = {"warroom-clickhouse", "warroom-prometheus"}
DASHBOARDS = {
    "warroom-national",
    "warroom-district",
    "warroom-grievances",
    "warroom-projects",
    "warroom-quality",
    "warroom-ops",
}
THAI = re.compile(r"[\u0e00-\u0e7f]")


@pytest.fixture(scope="module")
def raw_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((REPO / "alerts" / "rules.yaml").read_text(encoding="utf-8"))
    return [r for r in doc["rules"] if r.get("enabled", True)]


@pytest.fixture(scope="module")
def grafana() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((GRAFANA_DIR / GRAFANA_FILE).read_text(encoding="utf-8"))
    return doc


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    return doc


def test_committed_files_are_fresh() -> None:
    """Regenerate and compare: run `warroom alerts export` after changing the rules."""
    rules = load_rules()
    assert (GRAFANA_DIR / GRAFANA_FILE).read_text(encoding="utf-8") == render_grafana(rules)
    assert PROMETHEUS_FILE.read_text(encoding="utf-8") == render_prometheus(rules)
    assert GRAFANA_DIR == REPO / "dashboards" / "provisioning" / "alerting"
    assert PROMETHEUS_FILE == REPO / "alerts" / "prometheus" / "warroom-ops.rules.yml"


def test_export_command_writes_the_same_files(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(
        app,
        [
            "alerts",
            "export",
            "--grafana",
            str(tmp_path / "g"),
            "--prometheus",
            str(tmp_path / "p.yml"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert (tmp_path / "g" / GRAFANA_FILE).read_bytes() == (GRAFANA_DIR / GRAFANA_FILE).read_bytes()
    assert (tmp_path / "p.yml").read_bytes() == PROMETHEUS_FILE.read_bytes()


def _rules(grafana: dict[str, Any]) -> list[dict[str, Any]]:
    assert grafana["apiVersion"] == 1
    assert len(grafana["groups"]) == 1
    group = grafana["groups"][0]
    assert group["orgId"] == 1 and group["folder"] and group["name"]
    assert group["interval"] == "1m"
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def test_every_business_rule_is_exported_once(
    grafana: dict[str, Any], raw_rules: list[dict[str, Any]]
) -> None:
    rules = _rules(grafana)
    by_id = {r["labels"]["rule_id"]: r for r in rules}
    assert sorted(by_id) == sorted(r["id"] for r in raw_rules)
    uids = [r["uid"] for r in rules]
    titles = [r["title"] for r in rules]
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)  # Grafana refuses dups
    for raw in raw_rules:
        g = by_id[raw["id"]]
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", g["uid"])
        assert raw["title_th"] in g["title"] and raw["title_en"] in g["title"]
        assert g["for"] == raw["for"]
        assert g["labels"]["severity"] == raw["severity"]
        assert THAI.search(g["annotations"]["summary"])


def test_queries_reference_existing_datasources_and_expressions(grafana: dict[str, Any]) -> None:
    for rule in _rules(grafana):
        data = {d["refId"]: d for d in rule["data"]}
        assert rule["condition"] in data
        a, b, c = data["A"], data["B"], data["C"]
        assert a["datasourceUid"] in DATASOURCES
        assert a["model"]["datasource"]["uid"] == a["datasourceUid"]
        assert a["model"]["datasource"]["type"] == "grafana-clickhouse-datasource"
        assert a["model"]["editorType"] == "sql" and a["model"]["format"] == 1
        assert "$__toTime" in a["model"]["rawSql"]
        assert a["relativeTimeRange"]["from"] > 0
        for expr in (b, c):
            assert expr["datasourceUid"] == "__expr__"
            assert expr["model"]["datasource"] == {"type": "__expr__", "uid": "__expr__"}
        assert b["model"]["type"] == "reduce" and b["model"]["expression"] == "A"
        assert c["model"]["type"] == "threshold" and c["model"]["expression"] == "B"


def test_thresholds_follow_rules_yaml(
    grafana: dict[str, Any], raw_rules: list[dict[str, Any]]
) -> None:
    by_id = {r["labels"]["rule_id"]: r for r in _rules(grafana)}

    def evaluator(rule_id: str) -> tuple[str, float]:
        c = next(d for d in by_id[rule_id]["data"] if d["refId"] == "C")
        ev = c["model"]["conditions"][0]["evaluator"]
        return ev["type"], ev["params"][0]

    for raw in raw_rules:
        p = raw["params"]
        if raw["kind"] == "threshold":
            value = p["threshold"]
            if isinstance(value, str):  # "4h" for a metric in seconds
                assert value.endswith("h")
                value = int(value[:-1]) * 3600
            expected = ("gt" if p.get("op", "above") == "above" else "lt", value)
        elif raw["kind"] == "mean_gap":
            expected = ("gt", p["points"])
        elif raw["kind"] == "disbursement":
            expected = ("lt", p["min_ratio_pct"])
        elif raw["kind"] == "silent":
            expected = ("gt", p["office_hours"])
        else:  # surge: the SQL keeps only districts above their own baseline
            expected = ("gt", 0)
            sql = next(d for d in by_id[raw["id"]]["data"] if d["refId"] == "A")["model"]["rawSql"]
            assert f"current >= {p['min_count']}" in sql
        assert evaluator(raw["id"]) == expected, raw["id"]


def test_rules_link_to_existing_dashboards_and_panels(grafana: dict[str, Any]) -> None:
    for rule in _rules(grafana):
        ann = rule["annotations"]
        uid = ann["__dashboardUid__"]
        assert uid in DASHBOARDS
        assert rule["dashboardUid"] == uid and str(rule["panelId"]) == ann["__panelId__"]
        dashboard = json.loads((REPO / "dashboards" / "generated" / f"{uid}.json").read_text())
        panels = {str(p["id"]): p for p in dashboard["panels"]}
        assert ann["__panelId__"] in panels, (rule["uid"], ann["__panelId__"])
        assert panels[ann["__panelId__"]]["type"] != "row"
        assert "warroom-district" in ann["district_dashboard"]


def test_nothing_grafana_would_interpolate_by_mistake(grafana: dict[str, Any]) -> None:
    """Grafana expands $VAR in labels (and ${VAR} in annotations) at provisioning time."""
    for rule in _rules(grafana):
        assert all("$" not in v for v in rule["labels"].values())
        assert all("${" not in v for v in rule["annotations"].values())
    assert "$" not in grafana["templates"][0]["template"]


def test_contact_points_and_policies(
    grafana: dict[str, Any], raw_rules: list[dict[str, Any]]
) -> None:
    points = {cp["name"]: cp for cp in grafana["contactPoints"]}
    for cp in points.values():
        for receiver in cp["receivers"]:
            settings = receiver["settings"]
            target = settings.get("url") or settings.get("addresses")
            assert re.fullmatch(r"\$WARROOM_[A-Z_]+", target), target  # from the environment
            assert not {"password", "token", "authorization_credentials"} & set(settings)
    root = grafana["policies"][0]
    assert root["receiver"] in points

    def walk(route: dict[str, Any]) -> list[dict[str, Any]]:
        return [route] + [r for child in route.get("routes", []) for r in walk(child)]

    routes = walk(root)
    assert all(r["receiver"] in points for r in routes)
    district = next(r for r in root["routes"] if r.get("group_by") == ["district_code"])
    assert ["district_code", "=~", "[0-9]{4}"] in district["object_matchers"]
    assert district["continue"] is True
    critical = next(
        r for r in root["routes"] if ["severity", "=", "critical"] in r.get("object_matchers", [])
    )
    assert critical["receiver"] == "warroom-governors"
    repeats = {}
    for route in district["routes"]:
        (label, op, pattern) = route["object_matchers"][0]
        assert (label, op) == ("rule_id", "=~")
        for rule_id in pattern.split("|"):
            assert rule_id not in repeats
            repeats[rule_id] = route["repeat_interval"]
    assert repeats == {r["id"]: r["repeat"] for r in raw_rules}
    assert len(district["routes"]) == len({r["repeat"] for r in raw_rules})


def test_prometheus_rules_shape(prometheus: dict[str, Any]) -> None:
    rules = prometheus["groups"][0]["rules"]
    names = [r["alert"] for r in rules]
    assert names == [
        "WarroomConsumerLagHigh",
        "WarroomThroughputDrop",
        "WarroomDeadLetterRateHigh",
        "WarroomSinkWriteErrors",
        "WarroomWorkerDown",
        "WarroomNotificationsFailing",
        "WarroomNotificationsGivenUp",
    ]
    metrics = {
        "warroom_consumer_lag",
        "warroom_events_consumed_total",
        "warroom_events_rejected_total",
        "warroom_sink_write_errors_total",
        "warroom_notifications_failed_total",
        "warroom_notifications_given_up_total",
        "warroom_producer_events_sent_total",
        "up",
    }
    for metric in metrics:
        assert any(re.search(rf"\b{metric}\b", r["expr"]) for r in rules), metric
    for r in rules:
        ann = r["annotations"]
        assert {"summary", "summary_th", "description", "description_th"} <= set(ann)
        assert THAI.search(ann["summary_th"]) and THAI.search(ann["description_th"])
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert re.fullmatch(r"\d+[smh]", r["for"])
