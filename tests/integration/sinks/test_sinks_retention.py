"""Retention on real chdb: after the TTLs the settings give, exactly the rows a plain-Python
oracle says are past their time are gone; a changed setting changes the TTL on the next
migrate, and an unchanged one alters nothing."""

from __future__ import annotations

import calendar
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from sinks.backends import Backend
from sinks.migrate import migrate
from sinks.retention import RULES, policy, ttl_expression
from streams.topics import Topics
from tests.services.worker import WorkerProcess
from warroom.settings import Settings, load

pytestmark = pytest.mark.integration

DAY = 86_400
# short spans, so that 15 months of rows fall on both sides of every one
SPANS = {
    "WARROOM_RETAIN_GRIEVANCE_EVENTS_DAYS": "60",
    "WARROOM_RETAIN_PROJECT_EVENTS_DAYS": "200",
    "WARROOM_RETAIN_METRIC_BUCKETS_DAYS": "3",
    "WARROOM_RETAIN_METRIC_GAUGES_DAYS": "9",
    "WARROOM_RETAIN_QUALITY_BUCKETS_DAYS": "5",
    "WARROOM_RETAIN_DEAD_LETTERS_DAYS": "12",
    "WARROOM_RETAIN_ALERTS_HISTORY_DAYS": "300",
}
# the tables' time columns and how a row is written with only them and its key
TIME_COLUMN = {
    "grievance_events": "occurred_at",
    "project_events": "occurred_at",
    "metric_buckets": "bucket",
    "metric_gauges": "bucket",
    "quality_buckets": "bucket",
    "dead_letters": "received_at",
    "alerts_history": "at",
}
KEY_COLUMN = {
    "grievance_events": "grievance_id",
    "project_events": "project_id",
    "metric_buckets": "dim1",
    "metric_gauges": "dim1",
    "quality_buckets": "reason",
    "dead_letters": "kafka_offset",
    "alerts_history": "fingerprint",
}
SECONDS = {"metric_buckets", "metric_gauges", "quality_buckets"}  # DateTime, not DateTime64(3)
# latest-state tables (fed by materialized views from the events): one row per case here, as
# each inserted event has its own id; they expire with their latest event, under its setting
LATEST = {"grievance_latest": "grievance_events", "project_latest": "project_events"}
# the tables that get a TTL, in the order migrate reports them (every rule's table exists)
EXPIRING = [r.table for r in RULES]
MONTHLY = {"grievance_events", "project_events", "alerts_history"}  # whole months expire


def _month_end(t: int) -> int:
    d = datetime.fromtimestamp(t, UTC)
    days = calendar.monthrange(d.year, d.month)[1]
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()) + days * DAY


def _expires(table: str, t: int, days: int) -> int:
    """When a row of `table` dated `t` is due to go, as docs/retention.md states it."""
    return (_month_end(t) if table in MONTHLY else t) + days * DAY


def _times(now: int, days: int, table: str) -> list[int]:
    """Row times over 15 months back, none within two days of being due (the clock moves
    while the test runs)."""
    out = []
    for i in range(0, 456 * 24, 7):  # every 7 hours
        t = now - i * 3600
        if abs(_expires(table, t, days) - now) > 2 * DAY:
            out.append(t)
    return out


def _insert(backend: Backend, table: str, times: list[int]) -> None:
    column = TIME_COLUMN[table]
    stamps = times if table in SECONDS else [t * 1000 for t in times]
    key = KEY_COLUMN[table]
    keys: list[object] = (
        list(range(len(times))) if key == "kafka_offset" else [f"k{i}" for i in range(len(times))]
    )
    columns: dict[str, list[object]] = {column: list(stamps), key: keys}
    if table in ("grievance_events", "project_events"):
        columns["event_id"] = [str(uuid.uuid4()) for _ in times]
        columns["district_code"] = ["1001"] * len(times)
    backend.insert(table, columns)


def _force(backend: Backend, table: str) -> None:
    """What the background TTL merges do in their own time, now: wait for the MATERIALIZE
    TTL that migrate started, then merge."""
    pending = (
        "SELECT count() FROM system.mutations WHERE NOT is_done "
        f"AND database = '{backend.database}' AND table = '{table}'"
    )
    deadline = time.monotonic() + 180
    while backend.query_rows(pending)[0][0] and time.monotonic() < deadline:
        time.sleep(0.2)
    backend.execute(f"OPTIMIZE TABLE `{backend.database}`.{table} FINAL")


def _ttl(backend: Backend, table: str) -> str:
    rows = backend.query_rows(
        f"SELECT engine_full FROM system.tables WHERE database = '{backend.database}' "
        f"AND name = '{table}'"
    )
    engine = str(rows[0][0])
    return engine.split(" TTL ", 1)[1].split(" SETTINGS ", 1)[0] if " TTL " in engine else ""


def test_rows_past_their_time_are_gone_and_all_others_kept(chdb_backend: Backend) -> None:
    days = policy(load(SPANS))
    migrate(chdb_backend, reference=False)  # the tables, no TTL yet: rows of every age
    now = int(time.time())
    written = {table: _times(now, days[table], table) for table in TIME_COLUMN}
    for table, times in written.items():
        _insert(chdb_backend, table, times)
    result = migrate(chdb_backend, reference=False, retention=days)
    assert result.retention == EXPIRING
    for table, events in LATEST.items():
        _force(chdb_backend, table)
        kept = sorted(t for t in written[events] if _expires(events, t, days[events]) > now)
        got = sorted(
            int(r[0])
            for r in chdb_backend.query_rows(
                "SELECT toUnixTimestamp(tupleElement(last, 1)) "
                f"FROM `{chdb_backend.database}`.{table} FINAL"
            )
        )
        assert got == kept, (table, len(got), len(kept))
    for table, times in written.items():
        _force(chdb_backend, table)
        kept = sorted(t for t in times if _expires(table, t, days[table]) > now)
        assert 0 < len(kept) < len(times), table  # both sides of the line are exercised
        column = TIME_COLUMN[table]
        seconds = f"toUnixTimestamp({column})"
        got = sorted(
            int(r[0])
            for r in chdb_backend.query_rows(
                f"SELECT {seconds} FROM `{chdb_backend.database}`.{table} FINAL"
            )
        )
        assert got == kept, (table, len(got), len(kept))


def test_a_changed_setting_changes_the_ttl_on_the_next_migrate(chdb_backend: Backend) -> None:
    first = migrate(chdb_backend, reference=False, retention=policy(load({})))
    assert set(first.retention) == set(EXPIRING)
    assert _ttl(chdb_backend, "metric_buckets") == "bucket + toIntervalDay(40)"
    assert _ttl(chdb_backend, "grievance_events") == (
        "(toStartOfMonth(occurred_at) + toIntervalMonth(1)) + toIntervalDay(365)"
    )
    # the same settings again: nothing to alter (a second worker starting does nothing)
    assert migrate(chdb_backend, reference=False, retention=policy(load({}))).retention == []
    changed = load(
        {"WARROOM_RETAIN_METRIC_BUCKETS_DAYS": "7", "WARROOM_RETAIN_DEAD_LETTERS_DAYS": "0"}
    )
    assert migrate(chdb_backend, reference=False, retention=policy(changed)).retention == [
        "metric_buckets",
        "dead_letters",
    ]
    assert _ttl(chdb_backend, "metric_buckets") == "bucket + toIntervalDay(7)"
    assert _ttl(chdb_backend, "dead_letters") == ""  # 0: kept forever
    assert _ttl(chdb_backend, "metric_gauges") == "bucket + toIntervalDay(40)"
    assert migrate(chdb_backend, reference=False, retention=policy(changed)).retention == []
    # whole months where the table is partitioned by month: parts are dropped, not rewritten
    engine = chdb_backend.query_rows(
        f"SELECT engine_full FROM system.tables WHERE database = '{chdb_backend.database}' "
        "AND name = 'project_events'"
    )[0][0]
    assert "ttl_only_drop_parts = 1" in engine
    # reference tables never expire
    for table in ("ref_provinces", "ref_districts"):
        assert _ttl(chdb_backend, table) == ""


def test_migrate_command_applies_the_settings_and_says_which(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    store = f"chdb://{tmp_path / 'store'}"

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "warroom.cli", "migrate", "--store", store],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert "retention changed: " + ", ".join(EXPIRING) in first.stdout
    again = run()
    assert "retention changed: none (as configured)" in again.stdout, again.stdout
    changed = run(WARROOM_RETAIN_ALERTS_HISTORY_DAYS="730")
    assert changed.returncode == 0, changed.stderr
    assert "retention changed: alerts_history" in changed.stdout


def _changes(worker: WorkerProcess) -> dict[str, str]:
    lines = worker.log_path.read_text(errors="replace").splitlines()
    found = [orjson.loads(line) for line in lines if "retention changed" in line]
    return {entry["table"]: entry["ttl"] for entry in found}


def test_a_worker_start_applies_the_defaults_and_logs_each_change_once(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    defaults = policy(Settings())
    env = {rule.env: str(defaults[rule.table]) for rule in RULES}  # the test workers keep all
    worker = WorkerProcess(bootstrap, topics.prefix, tmp_path / "w", env=env)
    try:
        worker.start()
        worker.stop()
        assert _changes(worker) == {
            rule.table: ttl_expression(rule, defaults[rule.table])
            for rule in RULES
            if rule.table in EXPIRING
        }
        worker.start()  # the same settings: nothing to change, nothing logged
        engines = worker.query(
            "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()"
        )
        worker.stop()
        assert _changes(worker) == {}
    finally:
        worker.kill()
    ttl = {r["name"]: r["engine_full"] for r in engines}
    assert "TTL bucket + toIntervalDay(40)" in ttl["metric_buckets"]
    assert " TTL " not in ttl["ref_districts"]


def test_every_rule_names_a_setting_of_its_table() -> None:
    for rule in RULES:
        table = LATEST.get(rule.table, rule.table)
        assert rule.env == f"WARROOM_RETAIN_{table.upper()}_DAYS"
