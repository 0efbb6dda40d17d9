"""A data-query variant for the official ClickHouse plugin (the SDK ships no builder for it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = [
    "CLICKHOUSE_TYPE",
    "FORMAT_TABLE",
    "FORMAT_TIME_SERIES",
    "ClickHouseQuery",
    "ClickHouseQueryBuilder",
    "Sql",
    "known_sql",
    "register",
    "variant_config",
]

#: plugin id of grafana-clickhouse-datasource
CLICKHOUSE_TYPE: Final = "grafana-clickhouse-datasource"
#: sqlutil.FormatQueryOption of the plugin backend: 0 = time series (long frames are widened),
#: 1 = table
FORMAT_TIME_SERIES: Final = 0
FORMAT_TABLE: Final = 1

Kind = Literal["table", "timeseries"]


@dataclass(frozen=True)
class Sql:
    """A panel's SQL and the columns (in order) its panel expects back; tests run it on chdb."""

    text: str
    columns: tuple[str, ...]
    kind: Kind = "table"

    def __post_init__(self) -> None:
        # rawSql is stored verbatim in the JSON: keep it stable and free of edge whitespace
        object.__setattr__(self, "text", self.text.strip())


_KNOWN: dict[str, Sql] = {}


def register(sql: Sql) -> Sql:
    """Remember a query placed on a dashboard, so tests can find the columns it promises."""
    _KNOWN[sql.text] = sql
    return sql


def known_sql() -> dict[str, Sql]:
    """rawSql -> Sql of every query placed on a dashboard built in this process."""
    return dict(_KNOWN)


class ClickHouseQuery(cogvariants.Dataquery):
    """The plugin's CHSqlQuery model: editorType "sql", rawSql, format and queryType."""

    def __init__(
        self,
        raw_sql: str,
        *,
        kind: Kind = "table",
        datasource: DataSourceRef | None = None,
        ref_id: str | None = None,
        hide: bool | None = None,
    ) -> None:
        self.raw_sql = raw_sql
        self.kind: Kind = kind
        self.datasource = datasource
        self.ref_id = ref_id
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "editorType": "sql",
            "format": FORMAT_TIME_SERIES if self.kind == "timeseries" else FORMAT_TABLE,
            "queryType": self.kind,
            "rawSql": self.raw_sql,
        }
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        if self.ref_id is not None:
            payload["refId"] = self.ref_id
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        ds = data.get("datasource")
        return cls(
            data.get("rawSql", ""),
            kind="timeseries" if data.get("format") == FORMAT_TIME_SERIES else "table",
            datasource=DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
            ref_id=data.get("refId"),
            hide=data.get("hide"),
        )


def variant_config() -> cogruntime.DataqueryConfig:
    """Lets the SDK decode dashboards holding ClickHouse targets (Runtime registration)."""
    return cogruntime.DataqueryConfig(identifier=CLICKHOUSE_TYPE, from_json_hook=_from_json)


def _from_json(data: dict[str, Any]) -> cogvariants.Dataquery:
    return ClickHouseQuery.from_json(data)


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    """Builder in the SDK's style: `ClickHouseQueryBuilder(sql).ref_id("A")`."""

    def __init__(self, sql: Sql, datasource: DataSourceRef) -> None:
        register(sql)
        self._internal = ClickHouseQuery(sql.text, kind=sql.kind, datasource=datasource)

    def build(self) -> ClickHouseQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def hide(self, hide: bool) -> Self:
        self._internal.hide = hide
        return self
