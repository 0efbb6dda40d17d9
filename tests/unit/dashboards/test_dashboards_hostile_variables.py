"""Template variables are data, never SQL: code variables take only their own options, every
variable reaches ClickHouse percent-encoded, and hostile values fed through the plugin's and
Grafana's interpolation rules (dashboards.macros) stay strings when the result runs on chdb."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from chdb_once import run_chdb

from dashboards.clickhouse import CLICKHOUSE_TYPE
from dashboards.common import any_in_variable, in_variable, variable_values
from dashboards.macros import ALL, QueryContext, Variable, apply_conditional_all, expand

GENERATED = Path(__file__).resolve().parents[3] / "dashboards" / "generated"

HOSTILE = [
    "') OR 1=1 --",
    "\\' OR 1=1 --",
    "\\') OR 1=1 --",
    "x\\",
    "\\",
    "'; DROP TABLE canary; --",
    "1001' OR '1'='1",
    '" OR ""="',
    "/* c */ 1001",
    "1001 -- comment",
    "$__timeFilter(x)",
    "${district}",
    "$__conditionalAll(1=1)",
    "%2F%27%",
    "ก'\"`\\n\\0",
    "\n UNION ALL SELECT 1 --",
]
# a separator or brace cannot round-trip through the multi-value split; still only data
SPLIT = ["a,b", "{x}", "}) OR 1=1 --{", "',(SELECT 1),'", "$__conditionalAll(1, $v)"]


def _models() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in GENERATED.glob("*.json")}


def _clickhouse_sql() -> list[tuple[str, str]]:
    out = []
    for uid, model in _models().items():
        for var in model.get("templating", {}).get("list", []):
            if (
                var.get("type") == "query"
                and (var.get("datasource") or {}).get("type") == CLICKHOUSE_TYPE
            ):
                out.append((f"{uid}:{var['name']}", var["query"]["rawSql"]))
        for panel in model.get("panels", []):
            for p in [panel, *panel.get("panels", [])]:
                for t in p.get("targets", []):
                    if (t.get("datasource") or {}).get("type") == CLICKHOUSE_TYPE:
                        out.append((f"{uid}:{p.get('title')}:{t['refId']}", t["rawSql"]))
    return out


def test_no_variable_takes_custom_values() -> None:
    for uid, model in _models().items():
        for var in model.get("templating", {}).get("list", []):
            assert var.get("allowCustomValue") is False, f"{uid}:{var['name']}"


REFERENCE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}", re.ASCII
)


@pytest.mark.parametrize(("where", "sql"), _clickhouse_sql())
def test_every_variable_reaches_sql_percent_encoded(where: str, sql: str) -> None:
    names = {m.group(1) or m.group(2) or m.group(4) for m in REFERENCE.finditer(sql)}
    variables = {n: Variable("x") for n in names if not n.startswith("__")}
    # with a value selected, conditionalAll keeps its condition and drops its $var argument
    kept = apply_conditional_all(sql, variables)
    for m in REFERENCE.finditer(kept):
        name = m.group(1) or m.group(2) or m.group(4)
        if name.startswith("__"):
            continue  # Grafana globals and the plugin's macros
        assert m.group(6) == "percentencode", f"{where}: {m.group(0)} reaches SQL unencoded"


def _ctx(**variables: Variable) -> QueryContext:
    return QueryContext(1_700_000_000_000, 1_700_003_600_000, 60_000, variables)


def test_hostile_values_stay_data_on_chdb() -> None:
    statements = [
        "CREATE TABLE canary (code String) ENGINE = MergeTree ORDER BY code",
        "INSERT INTO canary VALUES ('1001')",
    ]
    expected: list[Any] = ["setup", "setup"]
    for value in HOSTILE:
        for var in (Variable(value), Variable([value, "1001"])):
            statements.append(expand(f"SELECT {variable_values('v')}", _ctx(v=var)))
            expected.append([[value] if isinstance(var.current, str) else [value, "1001"]])
        # as a filter: a hostile single value matches nothing (an injected OR would match)
        filtered = f"SELECT count() FROM canary WHERE {in_variable('code', 'v')}"
        statements.append(expand(filtered, _ctx(v=Variable(value))))
        expected.append([0])
    for value in SPLIT:
        statements.append(expand(f"SELECT {variable_values('v')}", _ctx(v=Variable([value]))))
        expected.append(None)
    statements.append("SELECT count() FROM canary")
    expected.append([1])
    outcomes = run_chdb(statements)
    for sql, outcome, want in zip(statements, outcomes, expected, strict=True):
        assert outcome.ok, f"{sql!r}: {outcome.error}"
        if want == "setup":
            continue
        if want is not None:
            assert outcome.rows == [want], sql
        else:
            assert outcome.rows and all(isinstance(s, str) for s in outcome.rows[0][0]), sql


def test_all_and_a_real_selection_still_filter() -> None:
    sql = f"SELECT count() FROM canary WHERE {in_variable('code', 'v')}"
    runs = [
        "CREATE TABLE canary (code String) ENGINE = Memory",
        "INSERT INTO canary VALUES ('1001'), ('1002'), ('5001')",
        expand(sql, _ctx(v=Variable(ALL, options=["1001"]))),
        expand(sql, _ctx(v=Variable(["1001", "5001"]))),
        expand(sql, _ctx(v=Variable("1002"))),
    ]
    counts = [o.rows for o in run_chdb(runs)[2:]]
    assert counts == [[[3]], [[2]], [[1]]]


def test_grafanas_quoting_formats_do_not_hold_in_clickhouse() -> None:
    """Why the dashboards percent-encode: sqlstring and singlequote escape quotes but not
    backslashes, and ClickHouse reads \\' inside a literal as a quote."""
    value = "\\') OR 1=1 --"
    runs = ["CREATE TABLE canary (code String) ENGINE = Memory", "INSERT INTO canary VALUES ('a')"]
    for fmt in ("sqlstring", "singlequote"):
        runs.append(
            expand(
                f"SELECT count() FROM canary WHERE code IN (${{v:{fmt}}})", _ctx(v=Variable(value))
            )
        )
    outcomes = run_chdb(runs)[2:]
    assert [o.rows for o in outcomes] == [[[1]], [[1]]], "the injected OR 1=1 should match"


def test_array_filters_keep_hostile_values_as_data() -> None:
    """The SDG and TPMAP filters (any_in_variable, over a project's arrays): a hostile value
    matches no project, All keeps every project (also one without goals), a selection keeps
    the projects holding any of its values."""
    as_text = "arrayMap(g -> toString(g), goals)"
    goals = f"SELECT count() FROM p WHERE {any_in_variable(as_text, 'v')}"
    dims = f"SELECT count() FROM p WHERE {any_in_variable('dims', 'v')}"
    runs = [
        "CREATE TABLE p (goals Array(UInt8), dims Array(LowCardinality(String))) ENGINE = Memory",
        "INSERT INTO p VALUES ([1, 2, 6], ['income', 'living']), ([9, 11], ['public_services']), "
        "([], [])",
    ]
    expected: list[int] = []
    for value in [*HOSTILE, *SPLIT]:
        for sql in (goals, dims):
            runs.append(expand(sql, _ctx(v=Variable(value))))
            runs.append(expand(sql, _ctx(v=Variable([value, "x"]))))
            expected += [0, 0]
    selections = [
        (goals, Variable(ALL, options=["1"]), 3),
        (goals, Variable("1"), 1),
        (goals, Variable(["6", "11"]), 2),
        (goals, Variable(["17"]), 0),
        (dims, Variable(ALL, options=["income"]), 3),
        (dims, Variable(["health", "public_services"]), 1),
    ]
    for sql, var, n in selections:
        runs.append(expand(sql, _ctx(v=var)))
        expected.append(n)
    outcomes = run_chdb(runs)[2:]
    for sql, outcome, n in zip(runs[2:], outcomes, expected, strict=True):
        assert outcome.ok, f"{sql!r}: {outcome.error}"
        assert outcome.rows == [[n]], sql
