"""The expander against the pinned plugin's facts: grafana-clickhouse-datasource v4.20.0
pkg/macros/macros_test.go (inputs and outputs restated here), grafana/macropro v1.0.1's parser
(comments, greedy names, argument splitting, nesting), the plugin's conditionalAll and Grafana's
scenes format registry (sqlstring, singlequote, percentencode)."""

from __future__ import annotations

from datetime import UTC, datetime

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


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


# the plugin's test range: 2014-11-12T11:45:26.371Z -> 2015-11-12T11:45:26.371Z
FROM_MS = _ms("2014-11-12T11:45:26.371")
TO_MS = _ms("2015-11-12T11:45:26.371")
# TestInterpolate's range: .123 -> .456
I_FROM = _ms("2014-11-12T11:45:26.123")
I_TO = _ms("2015-11-12T11:45:26.456")


def ctx(interval_ms: int = 60_000, **variables: Variable) -> QueryContext:
    return QueryContext(FROM_MS, TO_MS, interval_ms, variables)


def ictx(interval_ms: int = 60_000) -> QueryContext:
    return QueryContext(I_FROM, I_TO, interval_ms)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("$__fromTime", "toDateTime(1415792726)"),
        ("$__toTime", "toDateTime(1447328726)"),
        ("$__fromTime_ms", "fromUnixTimestamp64Milli(1415792726371)"),
        ("$__toTime_ms", "fromUnixTimestamp64Milli(1447328726371)"),
        (
            "$__dateFilter(dateCol)",
            "dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')",
        ),
        (
            "$__dateTimeFilter(dateCol, timeCol)",
            "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
            "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
        ),
        (
            "$__dt(dateCol, timeCol)",
            "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
            "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
        ),
        ("$__timeFrom(ts)", "ts >= toDateTime(1415792726)"),
        ("$__timeTo(ts)", "ts <= toDateTime(1447328726)"),
        ("$__timeGroup(ts, 5m)", "toStartOfInterval(toDateTime(ts), INTERVAL 300 second)"),
        ("$__timeGroup(ts, 1h)", "toStartOfInterval(toDateTime(ts), INTERVAL 3600 second)"),
        ("$__timeGroup(ts, '90s')", "toStartOfInterval(toDateTime(ts), INTERVAL 90 second)"),
    ],
)
def test_macros_print_what_the_plugin_tests_expect(sql: str, expected: str) -> None:
    assert expand_macros(sql, ctx(interval_ms=0)) == expected


def test_interval_macros_at_twenty_seconds() -> None:
    c = ctx(interval_ms=20_000)
    assert expand_macros("$__timeInterval(col)", c) == (
        "toStartOfInterval(toDateTime(col), INTERVAL 20 second)"
    )
    assert expand_macros("$__timeInterval_ms(col)", c) == (
        "toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond)"
    )
    assert expand_macros("$__interval_s", c) == "20"
    # at least one second / one millisecond, truncated
    assert expand_macros("$__interval_s", ctx(interval_ms=1500)) == "1"
    assert expand_macros("$__timeInterval_ms(t)", ctx(interval_ms=0)).endswith("1 millisecond)")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "select * from foo where $__timeFilter(cast(sth as timestamp))",
            "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
            "cast(sth as timestamp) <= toDateTime(1447328726)",
        ),
        (
            "select * from foo where $__timeFilter(cast(sth as timestamp) )",
            "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
            "cast(sth as timestamp) <= toDateTime(1447328726)",
        ),
        (
            "select * from foo where $__timeFilter_ms(cast(sth as timestamp))",
            "select * from foo where cast(sth as timestamp) >= "
            "fromUnixTimestamp64Milli(1415792726123) AND cast(sth as timestamp) <= "
            "fromUnixTimestamp64Milli(1447328726456)",
        ),
        (
            "select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100",
            "select * from foo where ( date >= toDateTime(1415792726) and "
            "date <= toDateTime(1447328726) ) limit 100",
        ),
        (
            "select * from foo where ( date >= $__fromTime ) and ( date <= $__toTime ) limit 100",
            "select * from foo where ( date >= toDateTime(1415792726) ) and "
            "( date <= toDateTime(1447328726) ) limit 100",
        ),
        (
            "select * from foo where ( date >= $__fromTime_ms and date <= $__toTime_ms ) limit 1",
            "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) and "
            "date <= fromUnixTimestamp64Milli(1447328726456) ) limit 1",
        ),
        # nested macros expand innermost-first (4.20.0 TestInterpolateNestedMacros)
        (
            "SELECT $__timeInterval($__fromTime) AS from_time",
            "SELECT toStartOfInterval(toDateTime(toDateTime(1415792726)), INTERVAL 60 second) "
            "AS from_time",
        ),
        (
            "SELECT $__timeInterval_ms($__fromTime_ms)",
            "SELECT toStartOfInterval(toDateTime64(fromUnixTimestamp64Milli(1415792726123), 3), "
            "INTERVAL 60000 millisecond)",
        ),
        (
            "select * from foo where $__timeFilter(coalesce(closed_at, $__toTime))",
            "select * from foo where coalesce(closed_at, toDateTime(1447328726)) >= "
            "toDateTime(1415792726) AND coalesce(closed_at, toDateTime(1447328726)) <= "
            "toDateTime(1447328726)",
        ),
        # backslash-escaped literals do not open comments (TestInterpolateBackslashEscaped...)
        (
            "select * from foo where msg = 'it\\'s -- fine' and $__fromTime",
            "select * from foo where msg = 'it\\'s -- fine' and toDateTime(1415792726)",
        ),
        (
            "select * from foo where msg = 'a\\'/*x' and $__toTime",
            "select * from foo where msg = 'a\\'/*x' and toDateTime(1447328726)",
        ),
        (
            "select * from foo where msg = 'it''s' and $__fromTime",
            "select * from foo where msg = 'it''s' and toDateTime(1415792726)",
        ),
    ],
)
def test_interpolate_vectors_of_the_plugin(sql: str, expected: str) -> None:
    assert expand_macros(sql, ictx()) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "$__timeFilter",  # no parentheses: zero arguments
        "$__timeFilter()",  # empty ones: zero arguments too
        "$__timeFilter( )",
        "$__timeFrom()",
        "$__timeTo",
        "$__timeFilter(a, b)",
        "$__dateTimeFilter(a)",
        "$__timeGroup(ts)",
        "$__timeGroup(ts, not-a-duration)",
        "$__timeGroup(ts, 0s)",
    ],
)
def test_wrong_or_missing_arguments_are_errors(sql: str) -> None:
    with pytest.raises(MacroError):
        expand_macros(sql, ctx())


def test_unbalanced_parentheses_make_a_zero_argument_call() -> None:
    with pytest.raises(MacroError, match="received 0"):
        expand_macros("$__timeFilter(a", ctx())
    assert expand_macros("$__fromTime(", ctx()) == "toDateTime(1415792726)("


def test_argument_less_macros_swallow_parentheses_that_follow_immediately() -> None:
    assert expand_macros("$__toTime(anything, 1)", ctx()) == "toDateTime(1447328726)"
    assert expand_macros("($__toTime) (1)", ctx()) == "(toDateTime(1447328726)) (1)"


def test_to_time_and_to_time_ms_in_one_query_both_expand() -> None:
    out = expand_macros("SELECT $__toTime, $__toTime_ms, $__fromTime_ms AND $__fromTime", ctx())
    assert out == (
        "SELECT toDateTime(1447328726), fromUnixTimestamp64Milli(1447328726371), "
        "fromUnixTimestamp64Milli(1415792726371) AND toDateTime(1415792726)"
    )


def test_arguments_split_on_top_level_commas_only() -> None:
    out = expand_macros("$__dateTimeFilter(toDate(if(a, b, c)), concat('x,y', \"p,q\"))", ctx())
    assert out.startswith("(toDate(if(a, b, c)) >= toDate('2014-11-12')")
    assert "(concat('x,y', \"p,q\") >= toDateTime(1415792726)" in out
    # a ')' inside a quoted literal does not close the argument list
    assert expand_macros("$__timeFrom(x = ')')", ctx()) == "x = ')' >= toDateTime(1415792726)"


def test_macros_inside_comments_are_blanked_not_expanded() -> None:
    sql = "SELECT 1 -- $__timeFilter(x)\n/* $__timeFilter */ , $__fromTime"
    out = expand_macros(sql, ctx())
    assert out == "SELECT 1 " + " " * 19 + "\n" + " " * 19 + " , toDateTime(1415792726)"
    # bytes, as Go counts them: a Thai word in a comment becomes three spaces a character
    assert expand_macros("-- ก\n$__toTime", ctx()) == "      \ntoDateTime(1447328726)"
    # an unterminated block comment runs to the end; a query without the prefix is untouched
    assert expand_macros("$__fromTime /* $__timeFilter", ctx()) == (
        "toDateTime(1415792726) " + " " * 16
    )
    assert expand_macros("SELECT 1 -- note", ctx()) == "SELECT 1 -- note"


def test_unknown_macros_stay_and_their_arguments_are_scanned() -> None:
    assert expand_macros("$__unknown($__fromTime)", ctx()) == ("$__unknown(toDateTime(1415792726))")
    assert expand_macros("$__ + 1", ctx()) == "$__ + 1"
    with pytest.raises(MacroError, match="table"):
        expand_macros("SELECT * FROM $__table", ctx())


def test_conditional_all_degrades_to_true_on_all_and_on_empty() -> None:
    sql = "SELECT * FROM t WHERE $__conditionalAll(location IN ($loc), $loc)"
    assert apply_conditional_all(sql, {"loc": Variable(ALL)}) == "SELECT * FROM t WHERE 1=1"
    assert apply_conditional_all(sql, {"loc": Variable([ALL])}) == "SELECT * FROM t WHERE 1=1"
    assert apply_conditional_all(sql, {"loc": Variable("")}) == "SELECT * FROM t WHERE 1=1"
    kept = apply_conditional_all(sql, {"loc": Variable(["Berlin", "Bonn"])})
    assert kept == "SELECT * FROM t WHERE location IN ($loc)"


def test_conditional_all_accepts_braced_variables() -> None:
    sql = "WHERE $__conditionalAll(a IN (${v:percentencode}), ${v})"
    assert apply_conditional_all(sql, {"v": Variable(ALL)}) == "WHERE 1=1"
    assert apply_conditional_all(sql, {"v": Variable("x")}) == "WHERE a IN (${v:percentencode})"
    # a formatted reference is not recognised by the plugin: the condition is always kept
    odd = "WHERE $__conditionalAll(a, ${v:csv})"
    assert apply_conditional_all(odd, {"v": Variable(ALL)}) == "WHERE a"


def test_conditional_all_handles_every_occurrence_and_nesting() -> None:
    sql = (
        "WHERE $__conditionalAll(a IN ($a), $a) AND $__conditionalAll(f(b, 1) IN ($b), $b) "
        "AND $__conditionalAll(a IN ($a), $a)"
    )
    out = apply_conditional_all(sql, {"a": Variable(ALL), "b": Variable(["x"])})
    assert out == "WHERE 1=1 AND f(b, 1) IN ($b) AND 1=1"


def test_unknown_variable_keeps_the_condition() -> None:
    assert apply_conditional_all("$__conditionalAll(a IN ($zz), $zz)", {}) == "a IN ($zz)"


def test_variables_use_the_plugin_format_without_a_format() -> None:
    c = ctx(
        many=Variable(["1001", "1002"]),
        one=Variable("6"),
        every=Variable(ALL, options=["north", "south"]),
        custom_all=Variable(ALL, options=["a"], all_value=".*"),
    )
    out = interpolate_variables("$many|${one}|[[every]]|$custom_all|$unknown|$__timeFilter(x)", c)
    assert out == "'1001','1002'|6|'north','south'|.*|$unknown|$__timeFilter(x)"
    # JS \w is ASCII: a Thai name after $ is not a variable reference
    assert interpolate_variables("$ทดสอบ", ctx(ทดสอบ=Variable("x"))) == "$ทดสอบ"


def test_scenes_formats() -> None:
    c = ctx(v=Variable(["O'Neil", 'say "hi"']), one=Variable("a b/ก'"))
    assert interpolate_variables("${v:csv}", c) == 'O\'Neil,say "hi"'
    assert interpolate_variables("${v:sqlstring}", c) == "'O''Neil','say \\\"hi\\\"'"
    assert interpolate_variables("${v:singlequote}", c) == "'O\\'Neil','say \"hi\"'"
    assert interpolate_variables("${v:doublequote}", c) == '"O\'Neil","say \\"hi\\""'
    assert interpolate_variables("${v:json}", c) == '["O\'Neil","say \\"hi\\""]'
    assert interpolate_variables("${v:percentencode}", c) == ("%7BO%27Neil%2Csay%20%22hi%22%7D")
    assert interpolate_variables("${one:percentencode}", c) == "a%20b%2F%E0%B8%81%27"
    assert interpolate_variables("$__from-$__to-$__interval", c) == f"{FROM_MS}-{TO_MS}-1m"
    with pytest.raises(MacroError):
        interpolate_variables("${v:lucene}", c)


def test_expand_runs_the_three_steps_in_the_plugin_order() -> None:
    sql = (
        "SELECT $__timeInterval(bucket) AS time FROM t WHERE $__timeFilter(bucket) "
        "AND $__conditionalAll(district_code IN (${district:sqlstring}), $district) "
        "AND $__conditionalAll(region IN ($region), $region) AND b < ($__toTime)"
    )
    out = expand(sql, ctx(district=Variable(["1001"]), region=Variable(ALL, options=["north"])))
    assert out == (
        "SELECT toStartOfInterval(toDateTime(bucket), INTERVAL 60 second) AS time FROM t "
        "WHERE bucket >= toDateTime(1415792726) AND bucket <= toDateTime(1447328726) "
        "AND district_code IN ('1001') AND 1=1 AND b < (toDateTime(1447328726))"
    )
