"""What Grafana + the ClickHouse plugin do to a panel's rawSql before ClickHouse sees it.

Three steps, in the plugin's order (src/data/CHDatasource.ts applyTemplateVariables, then the
backend's sqlutil.Interpolate with pkg/macros/macros.go):
1. `$__conditionalAll(condition, $var)` -> `1=1` when All (or nothing) is selected;
2. template variables, formatted the plugin's way: a multi-value becomes `'a','b'`, a single
   value is inserted raw; custom all-values are inserted unformatted (Grafana's templateSrv);
3. backend macros (`$__timeFilter(col)`, `$__fromTime`, `$__timeInterval(col)`, ...), expanded
   from the query's time range and interval exactly as the plugin's Go code prints them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "ALL",
    "MacroError",
    "QueryContext",
    "Variable",
    "apply_conditional_all",
    "expand",
    "expand_macros",
    "interpolate_variables",
]

ALL = "$__all"


class MacroError(ValueError):
    """A macro was used with the wrong arguments, or a variable format is unknown."""


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


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    macro = "$__conditionalAll("
    index = sql.rfind(macro)
    while index != -1:
        params = _macro_args(sql, index + len(macro) - 1)
        if len(params) != 2:
            return sql
        name = params[1].strip()[1:]
        var = variables.get(name)
        phrase = params[0]
        value = var.selected_text() if var is not None else None
        if value in ("", ALL):
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


# --- 2. template variables (Grafana templateSrv with the plugin's format function) ----------

_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)


def _plugin_format(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    return "'" + "','".join(value) + "'"


def _sql_quote(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


_FORMATS: dict[str, Callable[[Sequence[str]], str]] = {
    "csv": lambda vs: ",".join(vs),
    "raw": lambda vs: ",".join(vs),
    "pipe": lambda vs: "|".join(vs),
    "singlequote": lambda vs: ",".join("'" + v.replace("'", "\\'") + "'" for v in vs),
    "doublequote": lambda vs: ",".join('"' + v.replace('"', '\\"') + '"' for v in vs),
    "sqlstring": lambda vs: ",".join(_sql_quote(v) for v in vs),
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
            if var.all_value is not None and not fmt:
                return var.all_value
            value: str | Sequence[str] = list(var.options)
        else:
            value = var.current
        if fmt:
            if fmt not in _FORMATS:
                raise MacroError(f"variable format {fmt!r} is not supported here")
            return _FORMATS[fmt]([value] if isinstance(value, str) else list(value))
        return _plugin_format(value)

    return _VARIABLE.sub(replace, sql)


# --- 3. backend macros (pkg/macros/macros.go via sqlutil.Interpolate) -----------------------


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _to_date(ms: int) -> str:
    return f"toDate('{_dt(ms).strftime('%Y-%m-%d')}')"


def _to_datetime(ms: int) -> str:
    return f"toDateTime({ms // 1000})"  # Go's t.Unix(): whole seconds, floored


def _to_datetime64(ms: int) -> str:
    return f"fromUnixTimestamp64Milli({ms})"


def _rfc3339(ms: int) -> str:
    return _dt(ms).strftime("%Y-%m-%dT%H:%M:%SZ")


def _need(args: list[str], n: int, name: str) -> None:
    if len(args) != n:
        raise MacroError(
            f"$__{name}: unexpected number of arguments: expected {n} argument"
            f"{'s' if n != 1 else ''}, received {len(args)}"
        )


def _interval_s(ctx: QueryContext) -> int:
    return int(max(ctx.interval_ms / 1000, 1))


def _macros(ctx: QueryContext) -> dict[str, Callable[[list[str]], str]]:
    f, t = ctx.from_ms, ctx.to_ms

    def time_filter(a: list[str]) -> str:
        _need(a, 1, "timeFilter")
        return f"{a[0]} >= {_to_datetime(f)} AND {a[0]} <= {_to_datetime(t)}"

    def time_filter_ms(a: list[str]) -> str:
        _need(a, 1, "timeFilter_ms")
        return f"{a[0]} >= {_to_datetime64(f)} AND {a[0]} <= {_to_datetime64(t)}"

    def date_filter(a: list[str]) -> str:
        _need(a, 1, "dateFilter")
        return f"{a[0]} >= {_to_date(f)} AND {a[0]} <= {_to_date(t)}"

    def date_time_filter(a: list[str]) -> str:
        _need(a, 2, "dateTimeFilter")
        d, c = a
        return (
            f"({d} >= {_to_date(f)} AND {d} <= {_to_date(t)}) AND "
            f"({c} >= {_to_datetime(f)} AND {c} <= {_to_datetime(t)})"
        )

    def time_interval(a: list[str]) -> str:
        _need(a, 1, "timeInterval")
        return f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {_interval_s(ctx)} second)"

    def time_interval_ms(a: list[str]) -> str:
        _need(a, 1, "timeInterval_ms")
        ms = int(max(ctx.interval_ms, 1))
        return f"toStartOfInterval(toDateTime64({a[0]}, 3), INTERVAL {ms} millisecond)"

    def time_from(a: list[str]) -> str:  # sqlutil default macro
        _need(a, 1, "timeFrom")
        return f"{a[0]} >= '{_rfc3339(f)}'"

    def time_to(a: list[str]) -> str:  # sqlutil default macro
        _need(a, 1, "timeTo")
        return f"{a[0]} <= '{_rfc3339(t)}'"

    return {
        "fromTime": lambda a: _to_datetime(f),
        "toTime": lambda a: _to_datetime(t),
        "fromTime_ms": lambda a: _to_datetime64(f),
        "toTime_ms": lambda a: _to_datetime64(t),
        "timeFilter": time_filter,
        "timeFilter_ms": time_filter_ms,
        "dateFilter": date_filter,
        "dateTimeFilter": date_time_filter,
        "dt": date_time_filter,
        "timeInterval": time_interval,
        "timeInterval_ms": time_interval_ms,
        "interval_s": lambda a: str(_interval_s(ctx)),
        "timeFrom": time_from,
        "timeTo": time_to,
    }


def _matches(sql: str, name: str) -> list[tuple[str, str | None]]:
    """(macro text, argument text or None) for each use; arguments only when '(' follows the
    name immediately (sqlutil after grafana-plugin-sdk-go#859), up to the matching ')'."""
    out: list[tuple[str, str | None]] = []
    for m in re.finditer(r"\$__" + re.escape(name) + r"\b", sql):
        end = m.end()
        if end < len(sql) and sql[end] == "(":
            depth = 0
            for i in range(end, len(sql)):
                if sql[i] == "(":
                    depth += 1
                elif sql[i] == ")":
                    depth -= 1
                    if depth == 0:
                        out.append((sql[m.start() : i + 1], sql[end + 1 : i]))
                        break
            else:
                raise MacroError(f"$__{name}: unbalanced parentheses")
        else:
            out.append((m.group(0), None))
    return out


def _check_unambiguous(sql: str, names: Sequence[str]) -> None:
    """The plugin expands macros in Go map order (random) and replaces every occurrence of an
    argument-less use's text: `$__toTime` visited before `$__toTime_ms` turns the latter into
    `toDateTime(...)_ms`. So a query must not hold an argument-less macro together with a
    longer macro it is a prefix of: Grafana would break it on some refreshes only."""
    for name in names:
        for text, raw_args in _matches(sql, name):
            if raw_args is None and (text + "_") in sql:
                raise MacroError(
                    f"{text} next to {text}_...: the plugin's result depends on Go map order"
                )


def expand_macros(sql: str, ctx: QueryContext) -> str:
    macros = _macros(ctx)
    _check_unambiguous(sql, list(macros))
    for name, fn in macros.items():
        for text, raw_args in _matches(sql, name):
            # Go: trimAll(strings.Split(args, ",")) — an argument-less use gives [""]
            args = [a.strip() for a in (raw_args or "").split(",")]
            sql = sql.replace(text, fn(args))
    return sql


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL ClickHouse receives for a panel query under this request context."""
    sql = apply_conditional_all(sql, ctx.variables)
    sql = interpolate_variables(sql, ctx)
    return expand_macros(sql, ctx)
