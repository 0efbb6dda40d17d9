"""Migrations on real chdb: every table with the brief's columns, applied once, reference rows."""

from __future__ import annotations

import geothai
import pytest

from sinks.backends import Backend
from sinks.migrate import load_migrations, migrate
from sinks.tables import COLUMNS

pytestmark = pytest.mark.integration

LC = "LowCardinality(String)"
DT3 = "DateTime64(3, 'UTC')"
_RAW = [
    ("event_id", "UUID"),
    ("occurred_at", DT3),
    ("district_code", LC),
    ("province_code", LC),
    ("region", LC),
    ("subdistrict_code", "String"),
    ("source", LC),
]
_TAIL = [("kafka_partition", "UInt16"), ("kafka_offset", "UInt64"), ("ingested_at", DT3)]
_METRIC = [
    ("district_code", LC),
    ("province_code", LC),
    ("region", LC),
    ("metric", LC),
    ("dim1", LC),
    ("dim2", LC),
    ("bucket", "DateTime('UTC')"),
    ("kafka_partition", "UInt16"),
    ("value", "Float64"),
    ("version", "UInt64"),
    ("updated_at", DT3),
]
# written from the brief, not from the DDL
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "grievance_events": [
        *_RAW,
        ("grievance_id", "String"),
        ("type", LC),
        ("category", LC),
        ("channel", LC),
        ("priority", LC),
        ("due_at", f"Nullable({DT3})"),
        ("agency", "String"),
        ("complainant_kind", LC),
        ("complainant_pseudonym", "String"),
        *_TAIL,
    ],
    "project_events": [
        *_RAW,
        ("project_id", "String"),
        ("program", LC),
        ("fiscal_year", "UInt16"),
        ("status", LC),
        ("progress_pct", "Float64"),
        ("planned_pct", "Float64"),
        ("budget_allocated_thb", "Float64"),
        ("budget_obligated_thb", "Float64"),
        ("budget_disbursed_thb", "Float64"),
        ("target_households", "Nullable(UInt32)"),
        ("reached_households", "Nullable(UInt32)"),
        ("sdg_goals", "Array(UInt8)"),
        ("tpmap_dimensions", f"Array({LC})"),
        *_TAIL,
    ],
    "metric_buckets": _METRIC,
    "metric_gauges": _METRIC,
    "quality_buckets": [
        ("district_code", LC),
        ("province_code", LC),
        ("region", LC),
        ("stream", LC),
        ("source", LC),
        ("outcome", LC),
        ("reason", LC),
        ("bucket", "DateTime('UTC')"),
        ("kafka_partition", "UInt16"),
        ("count", "UInt64"),
        ("version", "UInt64"),
    ],
    "dead_letters": [
        ("received_at", DT3),
        ("topic", LC),
        ("kafka_partition", "UInt16"),
        ("kafka_offset", "UInt64"),
        ("reason", LC),
        ("field", "String"),
        ("detail", "String"),
        ("source", LC),
        ("district_code", LC),
        ("event_id", "String"),
        ("payload", "String"),
        ("payload_bytes", "UInt32"),
        ("digest", "String"),
    ],
    "alerts_history": [
        ("at", DT3),
        ("alert_id", "String"),
        ("fingerprint", "String"),
        ("rule_id", LC),
        ("state", LC),
        ("severity", LC),
        ("district_code", LC),
        ("province_code", LC),
        ("region", LC),
        ("dimension", "String"),
        ("value", "Float64"),
        ("threshold", "Float64"),
        ("title_th", "String"),
        ("title_en", "String"),
        ("message", "String"),
        ("channel", LC),
        ("recipient", "String"),
    ],
    "ref_provinces": [
        ("province_code", "String"),
        ("name_th", "String"),
        ("name_en", "String"),
        ("region", LC),
        ("region_th", "String"),
        ("region_en", "String"),
    ],
    "ref_districts": [
        ("district_code", "String"),
        ("name_th", "String"),
        ("name_en", "String"),
        ("province_code", "String"),
        ("province_th", "String"),
        ("province_en", "String"),
        ("region", LC),
        ("region_th", "String"),
        ("region_en", "String"),
    ],
    # rollups (003): a province's hour or day of metric_buckets, a district's of quality
    **{
        f"metric_buckets_{grain}": [
            ("province_code", LC),
            ("region", LC),
            ("metric", LC),
            ("dim1", LC),
            ("dim2", LC),
            ("bucket", "DateTime('UTC')"),
            ("value", "Float64"),
            ("version", "UInt64"),
        ]
        for grain in ("hourly", "daily")
    },
    **{
        f"quality_buckets_{grain}": [
            ("district_code", LC),
            ("province_code", LC),
            ("region", LC),
            ("stream", LC),
            ("source", LC),
            ("outcome", LC),
            ("reason", LC),
            ("bucket", "DateTime('UTC')"),
            ("count", "UInt64"),
            ("version", "UInt64"),
        ]
        for grain in ("hourly", "daily")
    },
    "schema_migrations": [
        ("version", "UInt32"),
        ("name", "String"),
        ("applied_at", "DateTime"),
    ],
}
ENGINES = {
    "metric_buckets": "ReplacingMergeTree(version)",
    "metric_gauges": "ReplacingMergeTree(version)",
    "quality_buckets": "ReplacingMergeTree(version)",
    "metric_buckets_hourly": "ReplacingMergeTree(version)",
    "metric_buckets_daily": "ReplacingMergeTree(version)",
    "quality_buckets_hourly": "ReplacingMergeTree(version)",
    "quality_buckets_daily": "ReplacingMergeTree(version)",
}


def _columns(backend: Backend) -> dict[str, list[tuple[str, str]]]:
    rows = backend.query_rows(
        "SELECT table, name, type FROM system.columns "
        f"WHERE database = '{backend.database}' ORDER BY table, position"
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for table, name, typ in rows:
        out.setdefault(table, []).append((name, typ))
    return out


def test_fresh_database_gets_every_table_with_the_briefs_columns(chdb_backend: Backend) -> None:
    result = migrate(chdb_backend)
    assert result.applied == [1, 2, 3]
    assert _columns(chdb_backend) == EXPECTED
    # the writer's column orders are the tables' orders
    for table, cols in COLUMNS.items():
        assert list(cols) == [c for c, _ in EXPECTED[table]], table
    engines = dict(
        chdb_backend.query_rows(
            "SELECT name, engine_full FROM system.tables "
            f"WHERE database = '{chdb_backend.database}'"
        )
    )
    for table in EXPECTED:
        assert engines[table].startswith("ReplacingMergeTree"), table
    for table, engine in ENGINES.items():
        assert engines[table].startswith(engine), (table, engines[table])
    assert "PARTITION BY toYYYYMM(occurred_at)" in engines["grievance_events"]
    assert "ORDER BY (district_code, grievance_id, event_id)" in engines["grievance_events"]


def test_second_run_applies_nothing_and_reference_is_exact(chdb_backend: Backend) -> None:
    migrate(chdb_backend)
    again = migrate(chdb_backend)
    assert again.applied == []
    db = chdb_backend.database
    assert chdb_backend.query_rows(f"SELECT count() FROM {db}.schema_migrations") == [(3,)]
    # oracle: geothai itself (the geography module is built from it)
    provinces = list(geothai.provinces())
    n_districts = sum(len(list(geothai.districts(p.code))) for p in provinces)
    assert (len(provinces), n_districts) == (77, 928)
    assert chdb_backend.query_rows(f"SELECT count() FROM {db}.ref_provinces") == [(77,)]
    assert chdb_backend.query_rows(f"SELECT count() FROM {db}.ref_districts") == [(928,)]
    bangkok = next(p for p in provinces if p.code == "10")
    assert chdb_backend.query_rows(
        f"SELECT name_th, region, region_en FROM {db}.ref_provinces WHERE province_code = '10'"
    ) == [(bangkok.name_th, "central", "Central")]
    khet = chdb_backend.query_rows(
        f"SELECT count(), uniqExact(province_th) FROM {db}.ref_districts WHERE province_code = '10'"
    )
    assert khet == [(50, 1)]
    # every district's province row exists and agrees on the region
    assert chdb_backend.query_rows(
        f"SELECT count() FROM {db}.ref_districts AS d "
        f"LEFT ANY JOIN {db}.ref_provinces AS p USING province_code "
        "WHERE p.region != d.region OR p.name_th != d.province_th"
    ) == [(0,)]


def test_dead_letters_written_before_002_lose_what_they_said(chdb_backend: Backend) -> None:
    """Rows of the old shape may hold names in payload and detail: 002 keeps where they are
    and why, and empties what the event said."""
    first, *_ = load_migrations()
    db = chdb_backend.database
    chdb_backend.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    for statement in first.statements(db):
        chdb_backend.execute(statement)
    chdb_backend.execute(
        f"CREATE TABLE {db}.schema_migrations (version UInt32, name String, applied_at DateTime)"
        " ENGINE = ReplacingMergeTree ORDER BY version"
    )
    chdb_backend.execute(f"INSERT INTO {db}.schema_migrations VALUES (1, 'init', now())")
    chdb_backend.execute(
        f"INSERT INTO {db}.dead_letters VALUES (now64(3), 'grievance-events', 2, 17, "
        "'unknown_enum', 'category', 'สมหญิง ทดสอบนาม', 'สมหญิง', '1001', 'สมหญิง', "
        '\'{"complainant": "สมหญิง ทดสอบนาม"}\')'
    )
    assert migrate(chdb_backend, reference=False).applied == [2, 3]
    rows = chdb_backend.query_rows(
        "SELECT topic, kafka_partition, kafka_offset, reason, field, district_code, detail, "
        f"source, event_id, payload, payload_bytes, digest FROM {db}.dead_letters"
    )
    assert rows == [
        ("grievance-events", 2, 17, "unknown_enum", "category", "1001", "", "", "", "", 0, "")
    ]
