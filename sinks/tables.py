"""Column order of every warroom table, as the migrations create them (tests check the match).

Rows handed to the writer are tuples in the order of ``INSERT_COLUMNS``: every column except
those ClickHouse computes itself (``DERIVED``: province and region from the district code, the
write time). Time columns take ints in the
column's unit: DateTime (bucket, applied_at) epoch seconds, DateTime64(3) epoch milliseconds;
see sinks.backends for the other value conventions.
"""

from __future__ import annotations

from typing import Final

__all__ = ["COLUMNS", "DERIVED", "INSERT_COLUMNS", "columns_of"]

_RAW_COMMON: Final = (
    "event_id",
    "occurred_at",
    "district_code",
    "province_code",
    "region",
    "subdistrict_code",
    "source",
)
_METRIC: Final = (
    "district_code",
    "province_code",
    "region",
    "metric",
    "dim1",
    "dim2",
    "bucket",
    "kafka_partition",
    "value",
    "version",
    "updated_at",
)

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "grievance_events": (
        *_RAW_COMMON,
        "grievance_id",
        "type",
        "category",
        "channel",
        "priority",
        "due_at",
        "agency",
        "complainant_kind",
        "complainant_pseudonym",
        "kafka_partition",
        "kafka_offset",
        "ingested_at",
    ),
    "project_events": (
        *_RAW_COMMON,
        "project_id",
        "program",
        "fiscal_year",
        "status",
        "progress_pct",
        "planned_pct",
        "budget_allocated_thb",
        "budget_obligated_thb",
        "budget_disbursed_thb",
        "target_households",
        "reached_households",
        "sdg_goals",
        "tpmap_dimensions",
        "kafka_partition",
        "kafka_offset",
        "ingested_at",
    ),
    "metric_buckets": _METRIC,
    "metric_gauges": _METRIC,
    "metric_gauges_latest": _METRIC,
    "quality_buckets": (
        "district_code",
        "province_code",
        "region",
        "stream",
        "source",
        "outcome",
        "reason",
        "bucket",
        "kafka_partition",
        "count",
        "version",
    ),
    "dead_letters": (
        "received_at",
        "topic",
        "kafka_partition",
        "kafka_offset",
        "reason",
        "field",
        "detail",
        "source",
        "district_code",
        "event_id",
        "payload",
        "payload_bytes",
        "digest",
    ),
    "alerts_history": (
        "at",
        "alert_id",
        "fingerprint",
        "rule_id",
        "state",
        "severity",
        "district_code",
        "province_code",
        "region",
        "dimension",
        "value",
        "threshold",
        "title_th",
        "title_en",
        "message",
        "channel",
        "recipient",
    ),
    "ref_provinces": ("province_code", "name_th", "name_en", "region", "region_th", "region_en"),
    "ref_districts": (
        "district_code",
        "name_th",
        "name_en",
        "province_code",
        "province_th",
        "province_en",
        "region",
        "region_th",
        "region_en",
    ),
}


#: columns with a DEFAULT the store computes (see the migration); the writer never sends them
DERIVED: Final[dict[str, frozenset[str]]] = {
    "grievance_events": frozenset({"province_code", "region", "ingested_at"}),
    "project_events": frozenset({"province_code", "region", "ingested_at"}),
    "metric_buckets": frozenset({"province_code", "region", "updated_at"}),
    "metric_gauges": frozenset({"province_code", "region", "updated_at"}),
    "metric_gauges_latest": frozenset({"province_code", "region", "updated_at"}),
    "quality_buckets": frozenset({"province_code", "region"}),
}

#: what a row handed to the writer holds, in order
INSERT_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    table: tuple(c for c in cols if c not in DERIVED.get(table, frozenset()))
    for table, cols in COLUMNS.items()
}


def columns_of(table: str) -> tuple[str, ...]:
    """Column order of a warroom table; KeyError names the known tables."""
    try:
        return COLUMNS[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; known: {', '.join(sorted(COLUMNS))}") from None
