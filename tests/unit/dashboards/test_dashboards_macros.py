"""The macro expander against the plugin's documented outputs (pkg/macros/macros_test.go cases,
the frontend's conditionalAll tests, Grafana's variable formatting)."""

from __future__ import annotations

import pytest

from dashboards.macros import (
    ALL,
    MacroError,
    QueryContext,
    Variable,
    apply_conditional_all,
    expand,
    expand_macros,
    interpolate_variables,
)

# 2006-01-02 15:04:05.123 UTC -> 2006-01-03 16:05:06.789 UTC
FROM_MS = 1136214245123
TO_MS = 1136304306789


def ctx(interval_ms: int = 60_000, **variables: Variable) -> QueryContext:
    return QueryContext(FROM_MS, TO_MS, interval_ms, variables)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("$__fromTime", "toDateTime(1136214245)"),
        ("$__toTime", "toDateTime(1136304306)"),
        ("$__fromTime_ms", "fromUnixTimestamp64Milli(1136214245123)"),
        ("$__toTime_ms", "fromUnixTimestamp64Milli(1136304306789)"),
        (
            "$__timeFilter(col)",
            "col >= toDateTime(1136214245) AND col <= toDateTime(1136304306)",
        ),
        (
            "$__timeFilter_ms( col )",
            "col >= fromUnixTimestamp64Milli(1136214245123) AND "
            "col <= fromUnixTimestamp64Milli(1136304306789)",
        ),
        ("$__dateFilter(d)", "d >= toDate('2006-01-02') AND d <= toDate('2006-01-03')"),
        (
            "$__dateTimeFilter(d, t)",
            "(d >= toDate('2006-01-02') AND d <= toDate('2006-01-03')) AND "
            "(t >= toDateTime(1136214245) AND t <= toDateTime(1136304306))",
        ),
        (
            "$__dt(d, t)",
            "(d >= toDate('2006-01-02') AND d <= toDate('2006-01-03')) AND "
            "(t >= toDateTime(1136214245) AND t <= toDateTime(1136304306))",
        ),
        ("$__timeInterval(t)", "toStartOfInterval(toDateTime(t), INTERVAL 60 second)"),
        (
            "$__timeInterval_ms(t)",
            "toStartOfInterval(toDateTime64(t, 3), INTERVAL 60000 millisecond)",
        ),
        ("$__interval_s", "60"),
    ],
)
def test_backend_macros_print_what_the_plugin_prints(sql: str, expected: str) -> None:
    assert expand_macros(sql, ctx()) == expected


def test_interval_is_at_least_one_second_and_truncated() -> None:
    assert expand_macros("$__interval_s", ctx(interval_ms=20)) == "1"
    assert expand_macros("$__interval_s", ctx(interval_ms=1500)) == "1"
    assert expand_macros("$__timeInterval_ms(t)", ctx(interval_ms=0)).endswith("1 millisecond)")


def test_a_macro_name_that_prefixes_another_is_not_confused() -> None:
    out = expand_macros("$__timeFilter(a) AND $__timeFilter_ms(b)", ctx())
    assert out.startswith("a >= toDateTime(")
    assert "b >= fromUnixTimestamp64Milli(" in out


def test_parenthesised_text_after_an_argumentless_macro_is_kept() -> None:
    out = expand_macros("x <= $__toTime AND y IN (1, 2)", ctx())
    assert out == "x <= toDateTime(1136304306) AND y IN (1, 2)"


def test_nested_parentheses_in_macro_argument() -> None:
    out = expand_macros("$__timeInterval(toDateTime64(at))", ctx())
    assert out == "toStartOfInterval(toDateTime(toDateTime64(at)), INTERVAL 60 second)"


@pytest.mark.parametrize("sql", ["$__timeFilter(a, b)", "$__dateTimeFilter(a)"])
def test_wrong_argument_count_is_an_error(sql: str) -> None:
    with pytest.raises(MacroError, match="unexpected number of arguments"):
        expand_macros(sql, ctx())


def test_a_bare_column_macro_gets_one_empty_argument_as_in_go() -> None:
    # strings.Split("", ",") is [""]: the plugin expands it (into invalid SQL) instead of failing
    assert expand_macros("$__timeFilter", ctx()) == (
        " >= toDateTime(1136214245) AND  <= toDateTime(1136304306)"
    )


def test_conditional_all_degrades_to_true_on_all_and_on_empty() -> None:
    sql = "SELECT * FROM t WHERE $__conditionalAll(location IN ($loc), $loc)"
    assert apply_conditional_all(sql, {"loc": Variable(ALL)}) == "SELECT * FROM t WHERE 1=1"
    assert apply_conditional_all(sql, {"loc": Variable([ALL])}) == "SELECT * FROM t WHERE 1=1"
    assert apply_conditional_all(sql, {"loc": Variable("")}) == "SELECT * FROM t WHERE 1=1"
    kept = apply_conditional_all(sql, {"loc": Variable(["Berlin", "Bonn"])})
    assert kept == "SELECT * FROM t WHERE location IN ($loc)"


def test_conditional_all_handles_every_occurrence_and_nesting() -> None:
    sql = (
        "WHERE $__conditionalAll(a IN ($a), $a) AND $__conditionalAll(f(b, 1) IN ($b), $b) "
        "AND $__conditionalAll(a IN ($a), $a)"
    )
    out = apply_conditional_all(sql, {"a": Variable(ALL), "b": Variable(["x"])})
    assert out == "WHERE 1=1 AND f(b, 1) IN ($b) AND 1=1"


def test_unknown_variable_keeps_the_condition() -> None:
    sql = "$__conditionalAll(a IN ($zz), $zz)"
    assert apply_conditional_all(sql, {}) == "a IN ($zz)"


def test_variables_use_the_plugin_format() -> None:
    c = ctx(
        many=Variable(["1001", "1002"]),
        one=Variable("6"),
        every=Variable(ALL, options=["north", "south"]),
        custom_all=Variable(ALL, options=["a"], all_value=".*"),
    )
    out = interpolate_variables("$many|${one}|[[every]]|$custom_all|$unknown|$__timeFilter(x)", c)
    assert out == "'1001','1002'|6|'north','south'|.*|$unknown|$__timeFilter(x)"


def test_explicit_formats_and_grafana_globals() -> None:
    c = ctx(v=Variable(["O'Neil", "b"]))
    assert interpolate_variables("${v:csv}", c) == "O'Neil,b"
    assert interpolate_variables("${v:sqlstring}", c) == "'O''Neil','b'"
    assert interpolate_variables("${v:singlequote}", c) == "'O\\'Neil','b'"
    assert interpolate_variables("$__from-$__to-$__interval", c) == f"{FROM_MS}-{TO_MS}-1m"
    with pytest.raises(MacroError):
        interpolate_variables("${v:json}", c)


def test_expand_runs_the_three_steps_in_the_plugin_order() -> None:
    sql = (
        "SELECT $__timeInterval(bucket) AS time FROM t WHERE $__timeFilter(bucket) "
        "AND $__conditionalAll(district_code IN ($district), $district) "
        "AND $__conditionalAll(region IN ($region), $region) AND b < ($__toTime)"
    )
    out = expand(sql, ctx(district=Variable(["1001"]), region=Variable(ALL, options=["north"])))
    assert out == (
        "SELECT toStartOfInterval(toDateTime(bucket), INTERVAL 60 second) AS time FROM t "
        "WHERE bucket >= toDateTime(1136214245) AND bucket <= toDateTime(1136304306) "
        "AND district_code IN ('1001') AND 1=1 AND b < (toDateTime(1136304306))"
    )
