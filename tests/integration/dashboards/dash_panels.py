"""Helpers of the dashboard tests: the committed panels' queries and the variable selections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards.build import build_all
from dashboards.clickhouse import CLICKHOUSE_TYPE, Sql, known_sql
from dashboards.macros import ALL, QueryContext, Variable, expand

GENERATED = Path(__file__).resolve().parents[3] / "dashboards" / "generated"


def load_dashboards() -> dict[str, dict[str, Any]]:
    """The committed JSON (what Grafana is given), by uid."""
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(GENERATED.glob("*.json"))
    }


def all_panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class PanelQuery:
    uid: str
    title: str
    panel_type: str
    ref_id: str
    raw_sql: str
    overrides: tuple[str, ...]  # field names the panel's overrides refer to

    @property
    def id(self) -> str:
        return f"{self.uid}:{self.title}:{self.ref_id}"


def clickhouse_queries() -> list[PanelQuery]:
    out = []
    for uid, model in load_dashboards().items():
        for panel in all_panels(model):
            names = tuple(
                o["matcher"]["options"]
                for o in panel.get("fieldConfig", {}).get("overrides", [])
                if o["matcher"]["id"] == "byName"
            )
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == CLICKHOUSE_TYPE:
                    out.append(
                        PanelQuery(
                            uid,
                            panel["title"],
                            panel["type"],
                            target["refId"],
                            target["rawSql"],
                            names,
                        )
                    )
    return out


def prometheus_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every Prometheus target."""
    out = []
    for model in load_dashboards().values():
        for panel in all_panels(model):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == "prometheus":
                    out.append((panel["title"], target["expr"]))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, rawSql) of every ClickHouse query variable."""
    out = []
    for uid, model in load_dashboards().items():
        for var in model.get("templating", {}).get("list", []):
            ds = var.get("datasource") or {}
            if var.get("type") == "query" and ds.get("type") == CLICKHOUSE_TYPE:
                out.append((uid, var["name"], var["query"]["rawSql"]))
    return out


def custom_options(uid: str) -> dict[str, list[str]]:
    """Custom variables' option values of a dashboard."""
    model = load_dashboards()[uid]
    return {
        v["name"]: [o["value"] for o in v.get("options", [])]
        for v in model.get("templating", {}).get("list", [])
        if v.get("type") == "custom"
    }


def specs() -> dict[str, Sql]:
    """rawSql -> Sql (with the columns the panel expects), from building the dashboards now."""
    build_all()
    return known_sql()


def context(
    time_range: tuple[int, int], variables: dict[str, Variable], interval_ms: int = 3_600_000
) -> QueryContext:
    return QueryContext(time_range[0], time_range[1], interval_ms, variables)


def all_selected(uid: str, options: dict[str, list[str]]) -> dict[str, Variable]:
    """Every variable of the dashboard on All (single-value custom variables on a value)."""
    out: dict[str, Variable] = {}
    model = load_dashboards()[uid]
    for var in model.get("templating", {}).get("list", []):
        name = var["name"]
        if var.get("includeAll"):
            out[name] = Variable(ALL, options=options.get(name, []))
        else:
            out[name] = Variable(var["current"]["value"])
    return out


def run(warehouse: Any, sql: str, ctx: QueryContext) -> tuple[list[str], list[tuple[Any, ...]]]:
    names, rows = warehouse.query(expand(sql, ctx))
    return list(names), list(rows)
