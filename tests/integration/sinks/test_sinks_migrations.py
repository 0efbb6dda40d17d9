"""Migrations on real chdb: every table with the brief's columns, applied once, reference rows;
004 moves a store with events forward (latest-state tables back-filled, then kept by views)."""

from __future__ import annotations

import uuid
from typing import Any

import geothai
import pytest

from sinks.backends import Backend
from sinks.migrate import load_migrations, migrate
from sinks.tables import COLUMNS, INSERT_COLUMNS

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
    "metric_gauges_latest": _METRIC,
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
    # 004: one row per case, kept by materialized views
    "grievance_latest": [
        ("region", LC),
        ("province_code", LC),
        ("district_code", LC),
        ("grievance_id", "String"),
        ("last", f"SimpleAggregateFunction(max, Tuple({DT3}, UInt64, String, String, String))"),
        ("due", f"SimpleAggregateFunction(max, Tuple({DT3}, UInt64, {DT3}))"),
        ("first_seen", f"SimpleAggregateFunction(min, {DT3})"),
        ("pseudonym", "SimpleAggregateFunction(max, String)"),
    ],
    "project_latest": [
        ("region", LC),
        ("province_code", LC),
        ("district_code", LC),
        ("project_id", "String"),
        (
            "last",
            f"SimpleAggregateFunction(max, Tuple({DT3}, UInt64, String, String, UInt16, "
            "Float64, Float64, Float64, Float64, Float64, Array(UInt8), Array(String)))",
        ),
    ],
    # 006: snapshots of the open cases, rebuilt by the store's owner
    "grievance_open": [
        ("generation", DT3),
        ("region", LC),
        ("province_code", LC),
        ("district_code", LC),
        ("grievance_id", "String"),
        ("last_at", DT3),
        ("last_type", LC),
        ("category_code", LC),
        ("priority_code", LC),
        ("due", f"Nullable({DT3})"),
        ("first_seen", DT3),
        ("pseudonym", "String"),
    ],
    "grievance_open_generations": [
        ("generation", DT3),
        ("cases", "UInt64"),
        ("built_at", DT3),
    ],
}
ENGINES = {
    "metric_buckets": "ReplacingMergeTree(version)",
    "metric_gauges": "ReplacingMergeTree(version)",
    "metric_gauges_latest": "ReplacingMergeTree(version)",
    "quality_buckets": "ReplacingMergeTree(version)",
    "metric_buckets_hourly": "ReplacingMergeTree(version)",
    "metric_buckets_daily": "ReplacingMergeTree(version)",
    "quality_buckets_hourly": "ReplacingMergeTree(version)",
    "quality_buckets_daily": "ReplacingMergeTree(version)",
    "grievance_latest": "AggregatingMergeTree",
    "project_latest": "AggregatingMergeTree",
    "grievance_latest_mv": "MaterializedView",
    "project_latest_mv": "MaterializedView",
    "grievance_open": "MergeTree",
    "grievance_open_generations": "MergeTree",
}


def _columns(backend: Backend) -> dict[str, list[tuple[str, str]]]:
    rows = backend.query_rows(
        "SELECT table, name, type FROM system.columns "
        f"WHERE database = '{backend.database}' AND table NOT LIKE '%\\_mv' "
        "ORDER BY table, position"
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for table, name, typ in rows:
        out.setdefault(table, []).append((name, typ))
    return out


def test_fresh_database_gets_every_table_with_the_briefs_columns(chdb_backend: Backend) -> None:
    result = migrate(chdb_backend)
    assert result.applied == [1, 2, 3, 4, 5, 6]
    assert _columns(chdb_backend) == EXPECTED
    # the writer's column orders are the tables' orders
    for table, cols in COLUMNS.items():
        assert list(cols) == [c for c, _ in EXPECTED[table]], table
    engines = dict(
        chdb_backend.query_rows(
            "SELECT name, if(engine_full = '', engine, engine_full) FROM system.tables "
            f"WHERE database = '{chdb_backend.database}'"
        )
    )
    for table in EXPECTED:
        if table not in ENGINES:
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
    assert chdb_backend.query_rows(f"SELECT count() FROM {db}.schema_migrations") == [(6,)]
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
    assert migrate(chdb_backend, reference=False).applied == [2, 3, 4, 5, 6]
    rows = chdb_backend.query_rows(
        "SELECT topic, kafka_partition, kafka_offset, reason, field, district_code, detail, "
        f"source, event_id, payload, payload_bytes, digest FROM {db}.dead_letters"
    )
    assert rows == [
        ("grievance-events", 2, 17, "unknown_enum", "category", "1001", "", "", "", "", 0, "")
    ]


T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
H = 3_600_000


def _grievance(
    gid: str, district: str, offset: int, ms: int, kind: str, **kw: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": ms,
        "district_code": district,
        "subdistrict_code": district + "01",
        "source": "1111",
        "grievance_id": gid,
        "type": kind,
        "category": kw.get("category", "road"),
        "channel": "line",
        "priority": kw.get("priority", "normal"),
        "due_at": kw.get("due"),
        "agency": "",
        "complainant_kind": "citizen",
        "complainant_pseudonym": kw.get("pseudonym", ""),
        "kafka_partition": 3,
        "kafka_offset": offset,
    }
    return row


def _project(
    pid: str, district: str, offset: int, ms: int, status: str, pct: float
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": ms,
        "district_code": district,
        "subdistrict_code": district + "01",
        "source": "egp",
        "project_id": pid,
        "program": "kok_nong_na",
        "fiscal_year": 2569,
        "status": status,
        "progress_pct": pct,
        "planned_pct": 50.0,
        "budget_allocated_thb": 1000.0,
        "budget_obligated_thb": 500.0,
        "budget_disbursed_thb": pct * 10,
        "target_households": None,
        "reached_households": None,
        "sdg_goals": [1, 2],
        "tpmap_dimensions": ["income"],
        "kafka_partition": 5,
        "kafka_offset": offset,
    }


def _store_at(backend: Backend, version: int) -> None:
    """A store as the migrations up to `version` left it."""
    db = backend.database
    backend.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    backend.execute(
        f"CREATE TABLE {db}.schema_migrations (version UInt32, name String, applied_at DateTime)"
        " ENGINE = ReplacingMergeTree ORDER BY version"
    )
    for m in load_migrations():
        if m.version <= version:
            for statement in m.statements(db):
                backend.execute(statement)
            backend.execute(f"INSERT INTO {db}.schema_migrations VALUES ({m.version}, '', now())")


def _insert(backend: Backend, table: str, rows: list[dict[str, Any]]) -> None:
    backend.insert(
        f"`{backend.database}`.{table}",
        {c: [r[c] for r in rows] for c in INSERT_COLUMNS[table]},
    )


def _grievance_oracle(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Per case: the latest event by (occurred_at, offset), the latest due time any event gave,
    the first event's time, a non-empty pseudonym."""
    out: dict[tuple[str, str], tuple[Any, ...]] = {}
    cases: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        cases.setdefault((r["district_code"], r["grievance_id"]), []).append(r)
    for key, events in cases.items():
        last = max(events, key=lambda r: (r["occurred_at"], r["kafka_offset"]))
        dues = [r for r in events if r["due_at"] is not None]
        due = (
            max(dues, key=lambda r: (r["occurred_at"], r["kafka_offset"]))["due_at"]
            if dues
            else None
        )
        names = {r["complainant_pseudonym"] for r in events} - {""}
        assert len(names) <= 1
        out[key] = (
            last["type"],
            last["category"],
            last["priority"],
            due,
            min(r["occurred_at"] for r in events),
            names.pop() if names else "",
        )
    return out


def _grievance_table(backend: Backend) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = backend.query_rows(
        "SELECT district_code, grievance_id, tupleElement(last, 3), tupleElement(last, 4), "
        "tupleElement(last, 5), if(toUnixTimestamp64Milli(tupleElement(due, 1)) = 0, NULL, "
        "toUnixTimestamp64Milli(tupleElement(due, 3))), toUnixTimestamp64Milli(first_seen), "
        "pseudonym, province_code = substring(district_code, 1, 2) AND region != '' "
        f"FROM `{backend.database}`.grievance_latest FINAL"
    )
    assert all(r[-1] for r in rows), "province and region filled"
    assert len({(r[0], r[1]) for r in rows}) == len(rows), "one row per case"
    return {(r[0], r[1]): tuple(r[2:-1]) for r in rows}


def _project_table(backend: Backend) -> dict[str, tuple[Any, ...]]:
    rows = backend.query_rows(
        "SELECT project_id, toUnixTimestamp64Milli(tupleElement(last, 1)), tupleElement(last, 2), "
        "tupleElement(last, 4), tupleElement(last, 6) "
        f"FROM `{backend.database}`.project_latest FINAL"
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def _project_oracle(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for pid in {r["project_id"] for r in rows}:
        last = max(
            (r for r in rows if r["project_id"] == pid),
            key=lambda r: (r["occurred_at"], r["kafka_offset"]),
        )
        out[pid] = (last["occurred_at"], last["kafka_offset"], last["status"], last["progress_pct"])
    return out


def test_004_moves_a_store_with_events_forward(chdb_backend: Backend) -> None:
    """A store at 002 holding events: 004 back-fills the latest state of every case from
    them; events written afterwards (late ones, duplicates, ties) keep it equal to the events."""
    db = chdb_backend.database
    _store_at(chdb_backend, 2)
    before = [
        _grievance("G1", "1001", 10, T0, "received", due=T0 + 72 * H, pseudonym="ab12cd34ef"),
        _grievance("G1", "1001", 11, T0 + H, "assigned"),
        _grievance("G2", "1001", 12, T0, "received", due=T0 + 24 * H, priority="urgent"),
        _grievance("G2", "1001", 13, T0 + 2 * H, "escalated", due=T0 + 48 * H),
        _grievance("G3", "5001", 14, T0 + 3 * H, "received", due=T0 + 96 * H, category="water"),
    ]
    projects_before = [
        _project("P1", "1001", 20, T0, "in_progress", 10.0),
        _project("P2", "5001", 21, T0 + H, "planned", 0.0),
    ]
    _insert(chdb_backend, "grievance_events", before)
    _insert(chdb_backend, "project_events", projects_before)

    assert migrate(chdb_backend, reference=False).applied == [3, 4, 5, 6]
    assert _grievance_table(chdb_backend) == _grievance_oracle(before)
    assert _project_table(chdb_backend) == _project_oracle(projects_before)

    after = [
        # G1: resolved at the same millisecond as assigned, later offset: the tie goes to it;
        # a late in_progress (earlier time, later offset) changes nothing but its presence
        _grievance("G1", "1001", 30, T0 + H, "resolved"),
        _grievance("G1", "1001", 31, T0 + H // 2, "in_progress"),
        # G2: a later step without a due time keeps the escalation's due time
        _grievance("G2", "1001", 32, T0 + 5 * H, "in_progress"),
        # a late first event of G3: first_seen moves back, the latest stays
        _grievance("G3", "5001", 33, T0 + H, "received", due=T0 + 90 * H, category="water"),
        _grievance("G4", "1001", 34, T0 + 6 * H, "received", due=T0 + 30 * H),
    ]
    projects_after = [
        _project("P1", "1001", 40, T0 + 7 * H, "in_progress", 30.0),
        _project("P1", "1001", 41, T0 + 7 * H, "delayed", 25.0),  # tie: the later offset
        _project("P2", "5001", 42, T0, "planned", 5.0),  # late
    ]
    _insert(chdb_backend, "grievance_events", after)
    _insert(chdb_backend, "project_events", projects_after)
    # a replayed batch: the same events stored twice
    _insert(chdb_backend, "grievance_events", after[:2])
    _insert(chdb_backend, "project_events", projects_after[1:2])

    expected = _grievance_oracle(before + after)
    assert expected[("1001", "G1")][0] == "resolved"
    assert expected[("1001", "G2")][3] == T0 + 48 * H
    assert _grievance_table(chdb_backend) == expected
    assert _project_table(chdb_backend) == _project_oracle(projects_before + projects_after)
    # merged parts hold the same (the engine's own folding agrees with FINAL)
    chdb_backend.execute(f"OPTIMIZE TABLE {db}.grievance_latest FINAL")
    assert chdb_backend.query_rows(f"SELECT count() FROM {db}.grievance_latest") == [(4,)]
    assert _grievance_table(chdb_backend) == expected


def _gauge_oracle(rows: list[tuple[Any, ...]]) -> dict[tuple[str, int, str, str, str], float]:
    """What a reader of the history took as current: per district, partition and family, the
    rows of the latest snapshot (bucket), the highest version per key; other keys are 0."""

    def family(metric: str, dim1: str) -> str:
        project = metric.startswith("project") or (
            metric == "last_event_age_seconds" and dim1 == "project"
        )
        return "project" if project else "grievance"

    final: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for r in rows:  # (district, metric, dim1, dim2, bucket_s, partition, value, version)
        key = (r[0], r[1], r[2], r[3], r[4], r[5])
        if key not in final or r[7] >= final[key][7]:
            final[key] = r
    latest: dict[tuple[str, int, str], int] = {}
    for r in final.values():
        g = (r[0], r[5], family(r[1], r[2]))
        latest[g] = max(latest.get(g, 0), r[4])
    return {
        (r[0], r[5], r[1], r[2], r[3]): r[6]
        for r in final.values()
        if r[4] == latest[(r[0], r[5], family(r[1], r[2]))] and r[6] != 0
    }


def test_005_moves_the_gauge_history_into_the_latest_table(chdb_backend: Backend) -> None:
    """A store at 004 whose gauges are only the per-minute history: 005 puts each key's current
    value (what the history's latest snapshot said) into metric_gauges_latest, and keeps the
    history as it was."""
    db = chdb_backend.database
    _store_at(chdb_backend, 4)
    t = T0 // 1000
    rows = [
        # 1001: two snapshots; 'land' dropped to zero (a 0 row), 'debt' dropped after a
        # restart (no row in the latest snapshot at all), 'water' is new
        ("1001", "grievance_open", "land", "normal", t, 0, 3.0, 1),
        ("1001", "grievance_open", "debt", "normal", t, 0, 2.0, 1),
        ("1001", "grievance_open", "land", "normal", t + 60, 0, 0.0, 2),
        ("1001", "grievance_open", "water", "urgent", t + 60, 0, 5.0, 2),
        # the same minute written twice: the higher version wins
        ("1001", "grievance_open", "water", "urgent", t + 60, 0, 6.0, 3),
        ("1001", "last_event_age_seconds", "grievance", "", t + 60, 0, 30.0, 3),
        # 1001's projects snapshot at their own stream minute
        ("1001", "project_count", "kok_nong_na", "planned", t - 600, 0, 4.0, 1),
        ("1001", "last_event_age_seconds", "project", "", t - 600, 0, 7.0, 1),
        # 5001 on partition 1: one snapshot
        ("5001", "grievance_overdue", "land", "urgent", t + 120, 1, 1.0, 4),
    ]
    columns = ("district_code", "metric", "dim1", "dim2", "bucket", "kafka_partition")
    chdb_backend.insert(
        f"`{db}`.metric_gauges",
        {
            **{c: [r[i] for r in rows] for i, c in enumerate(columns)},
            "value": [r[6] for r in rows],
            "version": [r[7] for r in rows],
        },
    )
    history_before = chdb_backend.query_rows(
        f"SELECT * EXCEPT updated_at FROM {db}.metric_gauges FINAL ORDER BY ALL"
    )
    assert migrate(chdb_backend, reference=False).applied == [5, 6]
    got = {
        (d, int(p), m, a, b): float(v)
        for d, p, m, a, b, v in chdb_backend.query_rows(
            "SELECT district_code, kafka_partition, metric, dim1, dim2, value "
            f"FROM {db}.metric_gauges_latest FINAL WHERE value != 0"
        )
    }
    expected = _gauge_oracle(rows)
    assert expected[("1001", 0, "grievance_open", "water", "urgent")] == 6.0
    assert ("1001", 0, "grievance_open", "debt", "normal") not in expected
    assert got == expected
    # one row per key: the zeros are there too, and nothing else
    keys = {(r[0], r[5], r[1], r[2], r[3]) for r in rows}
    assert chdb_backend.query_rows(f"SELECT count() FROM {db}.metric_gauges_latest FINAL") == [
        (len(keys),)
    ]
    assert (
        chdb_backend.query_rows(
            f"SELECT * EXCEPT updated_at FROM {db}.metric_gauges FINAL ORDER BY ALL"
        )
        == history_before
    )
