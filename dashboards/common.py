"""House defaults for every warroom dashboard: data sources, folders, units, Thai labels, panels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from grafana_foundation_sdk.builders import barchart, dashboard, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import prometheus as prometheus_builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.piechart import PieChartLegendValues, PieChartType

from dashboards.clickhouse import CLICKHOUSE_TYPE, ClickHouseQueryBuilder, Sql, register

__all__ = [
    "CLICKHOUSE",
    "DASHBOARD_FOLDER",
    "FOLDERS",
    "PROMETHEUS",
    "REFRESH",
    "THB",
    "TIMEZONE",
    "any_in_variable",
    "bar_panel",
    "base_dashboard",
    "custom_variable",
    "district_link",
    "in_variable",
    "pie_panel",
    "prom_target",
    "query_variable",
    "sql_label",
    "stat_panel",
    "steps",
    "table_panel",
    "timeseries_panel",
    "variable_uint",
    "variable_values",
]

CLICKHOUSE: Final = DataSourceRef(type_val=CLICKHOUSE_TYPE, uid="warroom-clickhouse")
PROMETHEUS: Final = DataSourceRef(type_val="prometheus", uid="warroom-prometheus")

TIMEZONE: Final = "Asia/Bangkok"
REFRESH: Final = "10s"

# Grafana has no Baht unit; its custom "currency:" unit scales (K, M, B) with the symbol in front
THB: Final = "currency:฿"
PERCENT: Final = "percent"
COUNT: Final = "short"
SECONDS: Final = "s"

#: folder uid -> title, one folder per audience
FOLDERS: Final[dict[str, str]] = {
    "warroom-folder-warroom": "ห้องปฏิบัติการ (War room)",
    "warroom-folder-districts": "อำเภอ (Districts)",
    "warroom-folder-ops": "ทีมปฏิบัติการระบบ (Ops)",
}
#: dashboard uid -> folder uid
DASHBOARD_FOLDER: Final[dict[str, str]] = {
    "warroom-national": "warroom-folder-warroom",
    "warroom-grievances": "warroom-folder-warroom",
    "warroom-projects": "warroom-folder-warroom",
    "warroom-district": "warroom-folder-districts",
    "warroom-quality": "warroom-folder-ops",
    "warroom-ops": "warroom-folder-ops",
}


def quote(value: str) -> str:
    """A ClickHouse string literal (labels are ours, but quotes must never break the SQL)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_list(values: Iterable[str]) -> str:
    return ", ".join(quote(v) for v in values)


def sql_label(expr: str, labels: Mapping[str, str]) -> str:
    """SQL that shows a code as its Thai label (unknown codes stay as they are)."""
    return f"transform({expr}, [{sql_list(labels)}], [{sql_list(labels.values())}], {expr})"


def steps(*pairs: tuple[str, float | None]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds: steps(("green", None), ("red", 10))."""
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(color=color, value=value) for color, value in pairs])
    )


def base_dashboard(
    uid: str, title: str, description: str, tags: Sequence[str]
) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["warroom", *tags])
        .timezone(TIMEZONE)
        .refresh(REFRESH)
        .time("now-24h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .timepicker(
            dashboard.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m", "1h"])
        )
        .link(
            dashboard.DashboardLink("แดชบอร์ด warroom")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["warroom"])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )


def ch_target(sql: Sql, ref_id: str = "A") -> ClickHouseQueryBuilder:
    return ClickHouseQueryBuilder(sql, CLICKHOUSE).ref_id(ref_id)


def prom_target(expr: str, legend: str, ref_id: str = "A") -> prometheus_builder.Dataquery:
    return (
        prometheus_builder.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .range()
        .ref_id(ref_id)
        .datasource(PROMETHEUS)
    )


def stat_panel(
    title: str,
    sql: Sql,
    *,
    unit: str = COUNT,
    description: str = "",
    thresholds: dashboard.ThresholdsConfig | None = None,
    decimals: int = 0,
    labels: Mapping[str, str] | None = None,
    width: int = 4,
    height: int = 4,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(CLICKHOUSE)
        .with_target(ch_target(sql))
        .unit(unit)
        .decimals(decimals)
        .thresholds(thresholds or steps(("blue", None)))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(
            common.BigValueTextMode.VALUE_AND_NAME if labels else common.BigValueTextMode.VALUE
        )
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("0")
        .span(width)
        .height(height)
    )
    for name, label in (labels or {}).items():
        panel = panel.override_by_name(
            name, [DynamicConfigValue(id_val="displayName", value=label)]
        )
    return panel


def table_panel(
    title: str,
    sql: Sql,
    *,
    description: str = "",
    labels: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    colored: Mapping[str, dashboard.ThresholdsConfig] | None = None,
    links: Mapping[str, tuple[str, str]] | None = None,
    width: int = 12,
    height: int = 9,
) -> table.Panel:
    """A table; `labels` names columns in Thai, `colored` paints cells by thresholds and `links`
    turns a column into a link (column -> (title, url))."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(CLICKHOUSE)
        .with_target(ch_target(sql))
        .cell_height(common.TableCellHeight.SM)
        .footer(common_builder.TableFooterOptions().show(False).reducer(["sum"]))
        .span(width)
        .height(height)
    )
    props: dict[str, list[DynamicConfigValue]] = {}
    for name, label in (labels or {}).items():
        props.setdefault(name, []).append(DynamicConfigValue(id_val="displayName", value=label))
    for name, unit in (units or {}).items():
        props.setdefault(name, []).append(DynamicConfigValue(id_val="unit", value=unit))
    for name, config in (colored or {}).items():
        props.setdefault(name, []).extend(
            [
                DynamicConfigValue(id_val="thresholds", value=config.build()),
                DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background", "mode": "basic"}
                ),
            ]
        )
    for name, (link_title, url) in (links or {}).items():
        props.setdefault(name, []).append(
            DynamicConfigValue(id_val="links", value=[{"title": link_title, "url": url}])
        )
    for name in sorted(props):
        panel = panel.override_by_name(name, props[name])
    return panel


def timeseries_panel(
    title: str,
    *targets: ClickHouseQueryBuilder | prometheus_builder.Dataquery,
    unit: str = COUNT,
    description: str = "",
    labels: Mapping[str, str] | None = None,
    datasource: DataSourceRef = CLICKHOUSE,
    stacked: bool = False,
    width: int = 12,
    height: int = 8,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .unit(unit)
        .line_width(2)
        .fill_opacity(15)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .span(width)
        .height(height)
    )
    if stacked:
        panel = panel.stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
    for target in targets:
        panel = panel.with_target(target)
    for name, label in (labels or {}).items():
        panel = panel.override_by_name(
            name, [DynamicConfigValue(id_val="displayName", value=label)]
        )
    return panel


def bar_panel(
    title: str,
    sql: Sql,
    *,
    x_field: str,
    unit: str = COUNT,
    description: str = "",
    labels: Mapping[str, str] | None = None,
    stacked: bool = False,
    horizontal: bool = False,
    width: int = 12,
    height: int = 8,
) -> barchart.Panel:
    panel = (
        barchart.Panel()
        .title(title)
        .description(description)
        .datasource(CLICKHOUSE)
        .with_target(ch_target(sql))
        .x_field(x_field)
        .unit(unit)
        .orientation(common.VizOrientation.HORIZONTAL if horizontal else common.VizOrientation.AUTO)
        .x_tick_label_rotation(0 if horizontal else -30)
        .show_value(common.VisibilityMode.AUTO)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .span(width)
        .height(height)
    )
    if stacked:
        panel = panel.stacking(common.StackingMode.NORMAL)
    for name, label in (labels or {}).items():
        panel = panel.override_by_name(
            name, [DynamicConfigValue(id_val="displayName", value=label)]
        )
    return panel


def pie_panel(
    title: str, sql: Sql, *, description: str = "", width: int = 8, height: int = 8
) -> piechart.Panel:
    """A pie chart of a two-column (label, value) result: one slice per row."""
    return (
        piechart.Panel()
        .title(title)
        .description(description)
        .datasource(CLICKHOUSE)
        .with_target(ch_target(sql))
        .pie_type(PieChartType.DONUT)
        .reduce_options(common_builder.ReduceDataOptions().values(True).calcs(["lastNotNull"]))
        .legend(
            piechart.PieChartLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .values([PieChartLegendValues.VALUE, PieChartLegendValues.PERCENT])
        )
        .unit(COUNT)
        .span(width)
        .height(height)
    )


# --- template variables in SQL ----------------------------------------------------------------
# A variable's value is data, never SQL. Grafana's sqlstring/singlequote formats escape quotes but
# not backslashes, and ClickHouse reads `\'` inside a literal as a quote: a value ending in a
# backslash closes the literal early. percentencode leaves only A-Z a-z 0-9 - _ . ~ % in the SQL
# (a multi-value becomes `{a,b}` encoded), which no ClickHouse literal rule can break, and
# ClickHouse decodes it back. Codes never hold ',' '{' '}', so the split below is exact for them;
# anything else stays a (non-matching) string.


def variable_values(name: str) -> str:
    """The selected values of template variable `name` as a ClickHouse Array(String)."""
    d = f"decodeURLComponent('${{{name}:percentencode}}')"
    # a multi-value arrives as {a,b}: unwrap it (no `$` here: the plugin's conditionalAll
    # substitution would read `$'` as a JavaScript replacement pattern)
    braced = f"startsWith({d}, '{{') AND endsWith({d}, '}}')"
    unwrapped = f"if({braced}, substring({d}, 2, length({d}) - 2), {d})"
    return f"splitByChar(',', {unwrapped})"


def in_variable(column: str, name: str) -> str:
    """`column` is one of the selected values of `name`; everything on All (the plugin's
    $__conditionalAll turns the condition into 1=1)."""
    return f"$__conditionalAll(has({variable_values(name)}, {column}), ${name})"


def any_in_variable(array: str, name: str) -> str:
    """`array` holds at least one of the selected values of `name` (a project serving any of
    the selected goals); everything on All, also rows whose array is empty."""
    return f"$__conditionalAll(hasAny({variable_values(name)}, {array}), ${name})"


def variable_uint(name: str) -> str:
    """A single-value numeric variable as UInt32: a non-number is a query error, never SQL."""
    return f"toUInt32(decodeURLComponent('${{{name}:percentencode}}'))"


def district_link(field: str = "district_code") -> tuple[str, str]:
    """(title, url) of the district drill-down for the code in `field` of the clicked row."""
    return (
        "เปิดแดชบอร์ดอำเภอ (district drill-down)",
        f"/d/warroom-district/?var-district=${{__data.fields.{field}}}&${{__url_time_range}}",
    )


def query_variable(
    name: str, label: str, sql: Sql, *, description: str = "", multi: bool = True
) -> dashboard.QueryVariable:
    """A ClickHouse query variable: first column = value, second = text (the plugin's rule)."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .query(
            {"editorType": "sql", "format": 1, "queryType": "table", "rawSql": register(sql).text}
        )
        .datasource(CLICKHOUSE)
        .current(VariableOption(selected=True, text="ทั้งหมด", value="$__all"))
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.DISABLED)
        .multi(multi)
        .include_all(True)
        .allow_custom_value(False)  # codes come from the store, never typed in
    )


def custom_variable(
    name: str, label: str, options: Mapping[str, str], *, all_: bool = True, default: str = ""
) -> dashboard.CustomVariable:
    """A fixed list of values shown with Thai texts ("text : value" pairs, Grafana's syntax)."""
    query = ",".join(f"{text} : {value}" for value, text in options.items())
    current = (
        VariableOption(selected=True, text="ทั้งหมด", value="$__all")
        if all_
        else VariableOption(selected=True, text=options[default], value=default)
    )
    return (
        dashboard.CustomVariable(name)
        .label(label)
        .values(query)
        .current(current)
        .options(
            [
                VariableOption(selected=(not all_ and v == default), text=t, value=v)
                for v, t in options.items()
            ]
        )
        .multi(all_)
        .include_all(all_)
        .allow_custom_value(False)
    )
