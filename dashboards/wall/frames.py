"""Runs a wall panel's queries through the worker's read-only query service and returns frames.

The SQL is the panel's own (from the generated JSON), expanded with `dashboards.macros.expand`
under a checked selection; every query runs with its own time and memory limits, at most
`concurrency` at once, and its result is cut at `max_rows` rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dashboards.macros import MacroError, QueryContext, expand
from dashboards.wall.catalog import Dashboard, VariableSpec
from dashboards.wall.selection import Refused, TimeRange, interval_for, resolve_variables
from sinks.backends import StoreError
from sinks.http_query import QueryError, QueryService

__all__ = ["WallQueries"]

log = logging.getLogger(__name__)

_TIME_TYPES = ("DateTime", "Nullable(DateTime")
_PROMETHEUS_NOTE = (
    "แผงนี้อ่านค่าจาก Prometheus ซึ่งไม่มีในโหมดฝังตัว: ดูค่าปัจจุบันของ worker ได้ที่ /metrics "
    "หรือเปิดแดชบอร์ดนี้ใน Grafana ของชุด docker compose"
)


def _base_type(ch_type: str) -> str:
    return ch_type.removeprefix("Nullable(").removeprefix("LowCardinality(").rstrip(")")


def _convert(value: Any, ch_type: str) -> Any:
    """Times as epoch ms (the browser shows them in Asia/Bangkok), 64-bit ints as numbers."""
    base = _base_type(ch_type)
    if value is None:
        return None
    if base.startswith("DateTime"):
        return round(float(value) * 1000)
    if base.startswith(("Int", "UInt")) and isinstance(value, str):
        return int(value)
    return value


class WallQueries:
    """The wall's only way to the store."""

    def __init__(
        self,
        service: QueryService,
        *,
        timeout_s: float = 20.0,
        max_memory_bytes: int = 1 << 30,
        max_rows: int = 2000,
        concurrency: int = 2,
        options_ttl_s: float = 30.0,
    ) -> None:
        self.service = service
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.options_ttl_s = options_ttl_s
        self._gate = asyncio.Semaphore(concurrency)
        self._options: dict[tuple[str, str], tuple[float, list[tuple[str, str]]]] = {}
        self._settings = {
            "max_execution_time": str(int(timeout_s)),
            "max_memory_usage": str(max_memory_bytes),
            "date_time_output_format": "unix_timestamp",
            "output_format_json_quote_64bit_integers": "0",
        }
        #: query seconds of the last panel answers, by (uid, panel id), for bench/ and logs
        self.timings: dict[tuple[str, int], float] = {}

    async def frame(self, sql: str) -> dict[str, Any]:
        """One expanded query's result: columns (name, type) and rows."""
        async with self._gate:
            try:
                raw = await asyncio.wait_for(
                    self.service.run(sql, "JSONCompact", settings=self._settings),
                    timeout=self.timeout_s + 5,
                )
            except TimeoutError as exc:
                raise Refused("คำค้นใช้เวลานานเกินกำหนด", "query timed out", 504) from exc
            except QueryError as exc:
                raise Refused("คำค้นถูกปฏิเสธ", str(exc), exc.status) from exc
            except StoreError as exc:
                log.warning("wall query failed", extra={"error": str(exc)[:300]})
                raise Refused("ฐานข้อมูลตอบไม่ได้ในขณะนี้", str(exc)[:300], 502) from exc
        body = orjson.loads(raw)
        meta = body.get("meta", [])
        types = [m["type"] for m in meta]
        data = body.get("data", [])
        rows = [[_convert(v, t) for v, t in zip(row, types, strict=True)] for row in data]
        return {
            "columns": [{"name": m["name"], "type": m["type"]} for m in meta],
            "rows": rows[: self.max_rows],
            "truncated": len(rows) > self.max_rows,
        }

    async def options(self, spec: VariableSpec, ctx: QueryContext) -> list[tuple[str, str]]:
        """(value, text) options of a variable under the selections before it (cached briefly)."""
        if spec.kind == "custom":
            return list(spec.options)
        if spec.kind != "query" or spec.source != "grafana-clickhouse-datasource" or not spec.sql:
            return []  # e.g. the ops dashboard's Prometheus instance: only All is possible
        try:
            sql = expand(spec.sql, ctx)
        except MacroError as exc:
            raise Refused("ตัวแปรนี้ใช้ไม่ได้", str(exc)) from exc
        key = (spec.name, sql)
        hit = self._options.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.options_ttl_s:
            return hit[1]
        frame = await self.frame(sql)
        out = [(str(r[0]), str(r[1] if len(r) > 1 else r[0])) for r in frame["rows"]]
        if len(self._options) > 512:
            self._options.clear()
        self._options[key] = (time.monotonic(), out)
        return out

    async def panel(
        self,
        dash: Dashboard,
        panel_id: int,
        given: Mapping[str, Sequence[str]],
        rng: TimeRange,
    ) -> dict[str, Any]:
        """Every query of one panel under a checked selection: {"frames": [...]} or a notice."""
        panel = dash.panels.get(panel_id)
        if panel is None or panel.type == "row":
            raise Refused(
                "ไม่มีแผงนี้ในแดชบอร์ด", f"{dash.uid} has no data panel {panel_id}", status=404
            )
        variables = await resolve_variables(dash, given, rng, self.options)
        if panel.source != "clickhouse":
            return {"frames": [], "notice": _PROMETHEUS_NOTE}
        ctx = QueryContext(rng.from_ms, rng.to_ms, interval_for(rng), variables)
        started = time.perf_counter()
        frames = []
        for raw_sql in panel.sql:
            try:
                sql = expand(raw_sql, ctx)
            except MacroError as exc:
                raise Refused("แผงนี้ใช้ไม่ได้กับค่าที่เลือก", str(exc)) from exc
            frames.append(await self.frame(sql))
        self.timings[(dash.uid, panel_id)] = time.perf_counter() - started
        return {"frames": frames}
