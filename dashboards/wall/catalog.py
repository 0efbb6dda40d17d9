"""The generated dashboards as the wall page reads them: panels, variables, and what the browser
may see (everything but the queries)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from dashboards.clickhouse import CLICKHOUSE_TYPE

__all__ = ["GENERATED", "Dashboard", "Panel", "VariableSpec", "catalog"]

GENERATED: Final = Path(__file__).resolve().parents[1] / "generated"
_HIDDEN_TARGET_KEYS = ("rawSql", "expr")
# a template variable reference in SQL: $name, ${name...} or [[name...]] (Grafana's syntax)
_REFERENCE = re.compile(r"\$\{(\w+)|\[\[(\w+)|\$(\w+)", re.ASCII)


@dataclass(frozen=True)
class VariableSpec:
    """A dashboard variable: custom (options in the JSON) or query (options from its SQL)."""

    name: str
    label: str
    kind: str  # "custom" | "query"
    include_all: bool
    multi: bool
    default: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()  # (value, text) of a custom variable
    sql: str = ""  # a ClickHouse query variable's rawSql
    source: str = CLICKHOUSE_TYPE
    depends_on: tuple[str, ...] = ()  # earlier variables its SQL reads (its options follow them)


@dataclass(frozen=True)
class Panel:
    id: int
    type: str
    title: str
    sql: tuple[str, ...]  # the ClickHouse targets' rawSql, in refId order
    source: str  # "clickhouse", "prometheus" or "" (a row)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    model: dict[str, Any]
    panels: dict[int, Panel]
    variables: tuple[VariableSpec, ...]

    def variable(self, name: str) -> VariableSpec | None:
        return next((v for v in self.variables if v.name == name), None)

    def public(self) -> dict[str, Any]:
        """The model without any query text: the browser gets layout and looks, never SQL."""
        model: dict[str, Any] = json.loads(json.dumps(self.model))
        for panel in _flat(model):
            panel["source"] = self.panels[panel["id"]].source
            for target in panel.get("targets", []):
                for key in _HIDDEN_TARGET_KEYS:
                    target.pop(key, None)
        model["panels"] = list(_flat(model))
        for var in model.get("templating", {}).get("list", []):
            spec = self.variable(var["name"])
            # which selections change this variable's options (the page keeps the others)
            var["dependsOn"] = list(spec.depends_on) if spec else []
            if isinstance(var.get("query"), dict):
                var["query"] = {}
            elif var.get("type") == "query":
                var["query"] = ""
        return model


def _flat(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Panels in layout order, a collapsed row's own panels right after it."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _source(panel: dict[str, Any]) -> str:
    if panel.get("type") == "row":
        return ""
    kind = (panel.get("datasource") or {}).get("type", "")
    return "clickhouse" if kind == CLICKHOUSE_TYPE else "prometheus" if kind else ""


def _variable(raw: dict[str, Any], earlier: list[str]) -> VariableSpec:
    current = raw.get("current", {}).get("value", "")
    default = tuple(current) if isinstance(current, list) else (current,)
    query = raw.get("query")
    ds = raw.get("datasource") or {}
    sql = query.get("rawSql", "") if isinstance(query, dict) else ""
    named = {next(g for g in m.groups() if g) for m in _REFERENCE.finditer(sql)}
    return VariableSpec(
        name=raw["name"],
        label=raw.get("label") or raw["name"],
        kind=raw.get("type", ""),
        include_all=bool(raw.get("includeAll")),
        multi=bool(raw.get("multi")),
        default=default,
        options=tuple((o["value"], o["text"]) for o in raw.get("options") or []),
        sql=sql,
        source=ds.get("type", CLICKHOUSE_TYPE) if raw.get("type") == "query" else "",
        depends_on=tuple(n for n in earlier if n in named),
    )


def _dashboard(model: dict[str, Any]) -> Dashboard:
    panels = {}
    for raw in _flat(model):
        source = _source(raw)
        sql = tuple(
            t["rawSql"]
            for t in sorted(raw.get("targets", []), key=lambda t: str(t.get("refId", "")))
            if source == "clickhouse" and "rawSql" in t
        )
        panels[int(raw["id"])] = Panel(
            int(raw["id"]), raw["type"], raw.get("title", ""), sql, source
        )
    raw_vars = model.get("templating", {}).get("list", [])
    variables = tuple(
        _variable(v, [e["name"] for e in raw_vars[:i]]) for i, v in enumerate(raw_vars)
    )
    return Dashboard(model["uid"], model.get("title", ""), model, panels, variables)


@cache
def catalog(directory: Path = GENERATED) -> dict[str, Dashboard]:
    """uid -> Dashboard, read once from the generated JSON (the one source of truth)."""
    out = {}
    for path in sorted(directory.glob("*.json")):
        dash = _dashboard(json.loads(path.read_text(encoding="utf-8")))
        out[dash.uid] = dash
    return out
