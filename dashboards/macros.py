"""What Grafana + the ClickHouse plugin (pinned: PLUGIN_VERSION) do to a panel's rawSql.

Three steps, in the plugin's order:
1. `$__conditionalAll(condition, $var)` -> `1=1` when All (or nothing) is selected
   (src/data/CHDatasource.ts applyConditionalAll, frontend);
2. template variables, formatted by Grafana's scenes format registry (`${v:percentencode}`,
   `${v:sqlstring}`, ...) or, without a format, by the plugin's format function (a multi-value
   becomes `'a','b'`, a single value is inserted raw);
3. backend macros (`$__timeFilter(col)`, `$__fromTime`, ...), expanded by the plugin's
   pkg/macros/macros.go on the grafana/macropro v1.0.1 engine: comments are blanked first
   (macros inside them are never expanded), names are read greedily, arguments split on
   top-level commas, nested macros expand innermost-first, a wrong argument count is an error.
The facts come from the plugin's and macropro's source and tests at the pinned tags; the code
is written here (tests/unit/dashboards/test_dashboards_macros.py holds the vectors).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "ALL",
    "PLUGIN_VERSION",
    "MacroError",
    "QueryContext",
    "Variable",
    "apply_conditional_all",
    "expand",
    "expand_macros",
    "interpolate_variables",
    "percent_encode",
]

#: the grafana-clickhouse-datasource release this module follows (docker-compose.yml pins it)
PLUGIN_VERSION = "4.20.0"
ALL = "$__all"


class MacroError(ValueError):
    """The plugin would refuse the query: a macro's arguments are wrong, or a format unknown."""


@dataclass(frozen=True)
class Variable:
    """A template variable's current selection: one value, several, or ALL."""

    current: str | Sequence[str]
    options: Sequence[str] = ()  # every option's value: what All expands to
    all_value: str | None = None  # a custom "All" value (e.g. ".*"), inserted as it is

    @property
    def is_all(self) -> bool:
        cur = self.current
        return cur == ALL or (not isinstance(cur, str) and list(cur) == [ALL])

    def selected_text(self) -> str:
        """`current.value.toString()` of the plugin's conditionalAll check."""
        cur = self.current
        return cur if isinstance(cur, str) else ",".join(cur)


@dataclass(frozen=True)
class QueryContext:
    """The parts of a Grafana data request the expansion depends on."""

    from_ms: int
    to_ms: int
    interval_ms: int = 60_000
    variables: Mapping[str, Variable] = field(default_factory=dict)
    table: str = ""  # sqlutil.Query.Table/Column: empty for raw SQL panels
    column: str = ""


# --- 1. $__conditionalAll (frontend) --------------------------------------------------------


def _macro_args(query: str, args_index: int) -> list[str]:
    """Port of getMacroArgs: split at depth-1 commas up to the matching parenthesis."""
    args: list[str] = []
    depth = 0
    last = 1
    sub = query[args_index:]
    for m in re.finditer(r"\(|\)|,", sub):
        node = m.group(0)
        if node == "(":
            depth += 1
        elif node == ")":
            depth -= 1
        if node == "," and depth == 1:
            args.append(sub[last : m.end() - 1])
            last = m.end()
        if depth == 0:
            args.append(sub[last : m.end() - 1])
            return args
    return []


def _js_replacement(phrase: str, matched: str, before: str, after: str) -> str:
    """String.prototype.replace expands $$, $&, $` and $' in the replacement text."""
    out = []
    i = 0
    while i < len(phrase):
        ch = phrase[i]
        nxt = phrase[i + 1] if i + 1 < len(phrase) else ""
        if ch == "$" and nxt in "$&`'":
            out.append({"$": "$", "&": matched, "`": before, "'": after}[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


# `${v}` or `$v` as the second argument (JS \w is ASCII); `${v:fmt}` matches neither
_CONDITIONAL_VAR = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", re.ASCII)


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    macro = "$__conditionalAll("
    index = sql.rfind(macro)
    while index != -1:
        params = _macro_args(sql, index + len(macro) - 1)
        if len(params) != 2:
            return sql
        phrase = params[0]
        found = _CONDITIONAL_VAR.search(params[1].strip())
        if found:
            var = variables.get(found.group(0))
            if var is not None and var.selected_text() in ("", ALL):
                phrase = "1=1"
        # the plugin replaces the first occurrence of the exact macro text (JS string replace)
        target = f"{macro}{params[0]},{params[1]})"
        at = sql.find(target)
        sql = (
            sql[:at]
            + _js_replacement(phrase, target, sql[:at], sql[at + len(target) :])
            + sql[at + len(target) :]
        )
        index = sql.rfind(macro)
    return sql


# --- 2. template variables (Grafana's scenes interpolation) -----------------------------------

_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}", re.ASCII
)


def percent_encode(value: str) -> str:
    """encodeURIComponentStrict: UTF-8 percent-encoding of all but A-Z a-z 0-9 - _ . ~"""
    return quote(value, safe="")


def _plugin_format(value: str | list[str]) -> str:
    """The plugin's own format function (CHDatasource.format), used when no format is given."""
    return value if isinstance(value, str) else "'" + "','".join(value) + "'"


def _each(value: str | list[str], fn: Callable[[str], str]) -> str:
    return ",".join(fn(v) for v in value) if isinstance(value, list) else fn(value)


def _sqlstring(v: str) -> str:
    return "'" + v.replace("'", "''").replace('"', '\\"') + "'"


# scenes formatRegistry: a multi-value is a list, a single value a string
_FORMATS: dict[str, Callable[[str | list[str]], str]] = {
    "raw": lambda v: v if isinstance(v, str) else ",".join(v),
    "csv": lambda v: v if isinstance(v, str) else ",".join(v),
    "pipe": lambda v: v if isinstance(v, str) else "|".join(v),
    "glob": lambda v: "{" + ",".join(v) + "}" if isinstance(v, list) and len(v) > 1 else str(v),
    "json": lambda v: (
        v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    ),
    "percentencode": lambda v: percent_encode(v if isinstance(v, str) else "{" + ",".join(v) + "}"),
    "singlequote": lambda v: _each(v, lambda s: "'" + s.replace("'", "\\'") + "'"),
    "doublequote": lambda v: _each(v, lambda s: '"' + s.replace('"', '\\"') + '"'),
    "sqlstring": lambda v: _each(v, _sqlstring),
}


def _builtin(ctx: QueryContext) -> dict[str, str]:
    """Grafana's global variables that the frontend replaces (not the plugin's macros)."""
    rng = ctx.to_ms - ctx.from_ms
    return {
        "__from": str(ctx.from_ms),
        "__to": str(ctx.to_ms),
        "__interval_ms": str(ctx.interval_ms),
        "__interval": _duration(ctx.interval_ms),
        "__range_ms": str(rng),
        "__range_s": str(rng // 1000),
        "__range": _duration(rng),
    }


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def interpolate_variables(sql: str, ctx: QueryContext) -> str:
    builtins = _builtin(ctx)

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in builtins:
            return builtins[name]
        var = ctx.variables.get(name)
        if var is None:
            return m.group(0)  # unknown names stay, as in Grafana (macros are handled later)
        if var.is_all:
            if var.all_value is not None and fmt != "percentencode":
                return var.all_value  # scenes' CustomAllValue: raw except percentencode
            value: str | list[str] = (
                var.all_value if var.all_value is not None else list(var.options)
            )
        else:
            value = var.current if isinstance(var.current, str) else list(var.current)
        if fmt:
            if fmt not in _FORMATS:
                raise MacroError(f"variable format {fmt!r} is not supported here")
            return _FORMATS[fmt](value)
        return _plugin_format(value)

    return _VARIABLE.sub(replace, sql)


# --- 3. backend macros: pkg/macros/macros.go on grafana/macropro v1.0.1 ----------------------

_PREFIX = "$__"
_MAX_NESTING = 128


def _scan_string(s: str, pos: int, backslash: bool) -> int:
    """Index after the literal opening at s[pos] ('' / "" doubled; \\x too if backslash)."""
    quote_char = s[pos]
    j = pos + 1
    while j < len(s):
        if backslash and s[j] == "\\" and j + 1 < len(s):
            j += 2
            continue
        if s[j] == quote_char:
            if j + 1 < len(s) and s[j + 1] == quote_char:
                j += 2
                continue
            return j + 1
        j += 1
    return j


def _blank(text: str) -> str:
    # Go blanks byte for byte: a Thai character in a comment becomes three spaces
    return " " * len(text.encode("utf-8"))


def strip_comments(query: str) -> str:
    """macropro.StripComments with LineComment | BlockComment | BackslashEscape."""
    out: list[str] = []
    i = 0
    n = len(query)
    while i < n:
        c = query[i]
        if c in "'\"":
            j = _scan_string(query, i, backslash=True)
            out.append(query[i:j])
            i = j
        elif c == "-" and i + 1 < n and query[i + 1] == "-":
            j = i
            while j < n and query[j] not in "\r\n":
                j += 1
            out.append(_blank(query[i:j]))
            i = j
        elif c == "/" and i + 1 < n and query[i + 1] == "*":
            end = query.find("*/", i + 2)
            j = n if end == -1 else end + 2  # unterminated: blanked through the end
            out.append(_blank(query[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _closing_paren(s: str, open_at: int) -> int:
    depth = 0
    i = open_at
    while i < len(s):
        c = s[i]
        if c in "'\"":
            i = _scan_string(s, i, backslash=False)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _parse_args(raw: str) -> list[str]:
    raw = raw.strip()
    if not raw:
        return []
    args: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(raw):
        c = raw[i]
        if c in "'\"":
            i = _scan_string(raw, i, backslash=False)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                raise MacroError(f"unexpected ')' at position {i}")
            depth -= 1
        elif c == "," and depth == 0:
            args.append(raw[start:i].strip())
            start = i + 1
        i += 1
    if depth != 0:
        raise MacroError("unbalanced parentheses in arguments")
    args.append(raw[start:].strip())
    return args


_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def _go_duration_seconds(text: str) -> float:
    """time.ParseDuration, in seconds ("5m", "1h30m", "1.5h", "0")."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(body):
        m = _GO_DURATION.match(body, pos)
        if not m or m.group(1) in ("", "."):
            raise MacroError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if not body:
        raise MacroError(f'time: invalid duration "{text}"')
    return sign * total


def _bad_args(name: str, want: int, got: int) -> MacroError:
    return MacroError(
        f"unexpected number of arguments: $__{name} expected {want} argument(s), received {got}"
    )


def _to_datetime(ms: int) -> str:
    return f"toDateTime({ms // 1000})"  # Go's t.Unix(): whole seconds, floored


def _to_datetime64(ms: int) -> str:
    return f"fromUnixTimestamp64Milli({ms})"


def _to_date(ms: int) -> str:
    return f"toDate('{datetime.fromtimestamp(ms / 1000, tz=UTC).strftime('%Y-%m-%d')}')"


def _format_duration(ms: int) -> str:
    """macropro.FormatDuration: the largest whole unit, else milliseconds."""
    if ms == 0:
        return "0s"
    ms = abs(ms)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _macros(ctx: QueryContext) -> dict[str, Callable[[list[str]], str]]:
    f, t = ctx.from_ms, ctx.to_ms
    seconds = int(max(ctx.interval_ms / 1000, 1))

    def one(name: str, fn: Callable[[str], str]) -> Callable[[list[str]], str]:
        def handler(a: list[str]) -> str:
            if len(a) != 1:
                raise _bad_args(name, 1, len(a))
            return fn(a[0])

        return handler

    def two(name: str, fn: Callable[[str, str], str]) -> Callable[[list[str]], str]:
        def handler(a: list[str]) -> str:
            if len(a) != 2:
                raise _bad_args(name, 2, len(a))
            return fn(a[0], a[1])

        return handler

    def date_time_filter(d: str, c: str) -> str:
        return (
            f"({d} >= {_to_date(f)} AND {d} <= {_to_date(t)}) AND "
            f"({c} >= {_to_datetime(f)} AND {c} <= {_to_datetime(t)})"
        )

    def time_group(col: str, period: str) -> str:
        text = period.strip().strip("'\"")
        try:
            secs = round(_go_duration_seconds(text))
        except MacroError as exc:
            raise MacroError(f"$__timeGroup: invalid interval {text!r}: {exc}") from exc
        if secs <= 0:
            raise MacroError(f"$__timeGroup: interval must be positive, got {text!r}")
        return f"toStartOfInterval(toDateTime({col.strip()}), INTERVAL {secs} second)"

    def from_context(name: str, value: str) -> Callable[[list[str]], str]:
        def handler(_: list[str]) -> str:
            if not value:
                raise MacroError(f"$__{name}: no {name} name in query context")
            return value

        return handler

    return {
        # macropro.DefaultMacros (interval, interval_ms, table, column kept as they are)
        "interval": lambda _: _format_duration(ctx.interval_ms),
        "interval_ms": lambda _: str(ctx.interval_ms),
        "table": from_context("table", ctx.table),
        "column": from_context("column", ctx.column),
        # the plugin's overrides and ClickHouse extensions; argument-less ones ignore arguments
        "timeFilter": one(
            "timeFilter", lambda c: f"{c} >= {_to_datetime(f)} AND {c} <= {_to_datetime(t)}"
        ),
        "timeFrom": one("timeFrom", lambda c: f"{c} >= {_to_datetime(f)}"),
        "timeTo": one("timeTo", lambda c: f"{c} <= {_to_datetime(t)}"),
        "timeGroup": two("timeGroup", time_group),
        "fromTime": lambda _: _to_datetime(f),
        "toTime": lambda _: _to_datetime(t),
        "fromTime_ms": lambda _: _to_datetime64(f),
        "toTime_ms": lambda _: _to_datetime64(t),
        "timeFilter_ms": one(
            "timeFilter_ms",
            lambda c: f"{c} >= {_to_datetime64(f)} AND {c} <= {_to_datetime64(t)}",
        ),
        "dateFilter": one("dateFilter", lambda c: f"{c} >= {_to_date(f)} AND {c} <= {_to_date(t)}"),
        "dateTimeFilter": two("dateTimeFilter", date_time_filter),
        "dt": two("dateTimeFilter", date_time_filter),
        "timeInterval": one(
            "timeInterval",
            lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {seconds} second)",
        ),
        "timeInterval_ms": one(
            "timeInterval_ms",
            lambda c: (
                f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL "
                f"{int(max(ctx.interval_ms, 1))} millisecond)"
            ),
        ),
        "interval_s": lambda _: str(seconds),
    }


def _is_name_char(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9")


def _expand(work: str, macros: Mapping[str, Callable[[list[str]], str]], depth: int) -> str:
    if depth > _MAX_NESTING:
        raise MacroError(f"macro nesting exceeds {_MAX_NESTING} levels")
    out: list[str] = []
    i = 0
    while i < len(work):
        at = work.find(_PREFIX, i)
        if at < 0:
            out.append(work[i:])
            break
        out.append(work[i:at])
        name_start = at + len(_PREFIX)
        name_end = name_start
        while name_end < len(work) and _is_name_char(work[name_end]):
            name_end += 1
        name = work[name_start:name_end]
        fn = macros.get(name) if name else None
        if fn is None:  # bare prefix or unknown macro: copied, its arguments scanned as text
            out.append(work[at:name_end])
            i = name_end
            continue
        raw = ""
        after = name_end
        if after < len(work) and work[after] == "(":
            end = _closing_paren(work, after)
            if end >= 0:  # unbalanced: a zero-argument call, the '(' stays text
                raw = work[after + 1 : end]
                after = end + 1
        try:
            args = _parse_args(raw)
        except MacroError as exc:
            raise MacroError(f"macro $__{name}: {exc}") from exc
        args = [_expand(a, macros, depth + 1) if _PREFIX in a else a for a in args]
        try:
            out.append(fn(args))
        except MacroError as exc:
            raise MacroError(f"macro $__{name}({', '.join(args)}): {exc}") from exc
        i = after
    return "".join(out)


def expand_macros(sql: str, ctx: QueryContext) -> str:
    """The plugin's Interpolate: comments blanked when a macro prefix is present, then expanded."""
    if _PREFIX not in sql:
        return sql
    work = strip_comments(sql)
    if _PREFIX not in work:
        return work
    return _expand(work, _macros(ctx), 0)


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL ClickHouse receives for a panel query under this request context."""
    sql = apply_conditional_all(sql, ctx.variables)
    sql = interpolate_variables(sql, ctx)
    return expand_macros(sql, ctx)
