"""Numbered SQL migrations (sinks/migrations/NNN_name.sql), applied once each, in order.

Safe when several workers start at once: every statement is `IF NOT EXISTS`, and the
bookkeeping table is a ReplacingMergeTree keyed by version, so a migration two workers both
applied is recorded once. The reference geography is refreshed after the migrations, and the
tables' TTLs are made those of the retention policy when one is given (sinks/retention.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

from sinks import retention as retention_policy
from sinks.backends import Backend
from streams import geography

__all__ = ["Migration", "MigrationResult", "load_migrations", "migrate", "refresh_reference"]

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d+)_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, database: str) -> list[str]:
        """The file's statements for `database`: comments dropped, split at ';' ending a line."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        parts = re.split(r";\s*$", body, flags=re.MULTILINE)
        return [p.strip().replace("{db}", f"`{database}`") for p in parts if p.strip()]


@dataclass(frozen=True)
class MigrationResult:
    applied: list[int]
    provinces: int
    districts: int
    retention: list[str] = field(default_factory=list)  # tables whose TTL changed


def load_migrations() -> list[Migration]:
    """Every migration shipped in the package, by version; refuses duplicate versions."""
    found: dict[int, Migration] = {}
    folder = resources.files("sinks").joinpath("migrations")
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations have version {version}: {entry.name}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def _bookkeeping(backend: Backend) -> str:
    table = f"`{backend.database}`.schema_migrations"
    backend.execute(f"CREATE DATABASE IF NOT EXISTS `{backend.database}`")
    backend.execute(
        f"CREATE TABLE IF NOT EXISTS {table} (version UInt32, name String, applied_at DateTime) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    return table


def migrate(
    backend: Backend, *, reference: bool = True, retention: Mapping[str, int] | None = None
) -> MigrationResult:
    """Apply pending migrations in order, record each, then refresh the reference tables.

    ``retention``: days per table (sinks.retention.policy); None leaves the TTLs as they are.
    """
    table = _bookkeeping(backend)
    done = {int(row[0]) for row in backend.query_rows(f"SELECT DISTINCT version FROM {table}")}
    applied: list[int] = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        log.info(
            "applying migration",
            extra={"version": migration.version, "migration": migration.name},
        )
        for statement in migration.statements(backend.database):
            backend.execute(statement)
        backend.insert(
            table,
            {
                "version": [migration.version],
                "name": [migration.name],
                "applied_at": [int(time.time())],
            },
        )
        applied.append(migration.version)
    provinces = districts = 0
    if reference:
        provinces, districts = refresh_reference(backend)
    changed = retention_policy.apply(backend, retention) if retention is not None else []
    return MigrationResult(applied, provinces, districts, changed)


def _reference_rows() -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    provinces: list[tuple[str, ...]] = []
    for prov in geography.provinces():
        region_th, region_en, _ = geography.REGIONS[prov.region]
        provinces.append((prov.code, prov.name_th, prov.name_en, prov.region, region_th, region_en))
    by_code = {row[0]: row for row in provinces}
    districts: list[tuple[str, ...]] = []
    for d in geography.districts():
        row = by_code[d.province_code]
        districts.append((d.code, d.name_th, d.name_en, d.province_code, row[1], row[2], *row[3:]))
    return sorted(provinces), sorted(districts)


def refresh_reference(backend: Backend) -> tuple[int, int]:
    """Make ref_provinces / ref_districts equal to streams.geography; (provinces, districts).

    Writes only when the content differs, then merges so a plain count() is exact too.
    """
    from sinks.tables import columns_of

    provinces, districts = _reference_rows()
    for table, rows in (("ref_provinces", provinces), ("ref_districts", districts)):
        columns = columns_of(table)
        qualified = f"`{backend.database}`.{table}"
        current = sorted(
            tuple(str(v) for v in row)
            for row in backend.query_rows(f"SELECT {', '.join(columns)} FROM {qualified} FINAL")
        )
        if current == rows:
            continue
        backend.insert(
            qualified, {name: [row[i] for row in rows] for i, name in enumerate(columns)}
        )
        backend.execute(f"OPTIMIZE TABLE {qualified} FINAL")
        log.info("reference table refreshed", extra={"table": table, "rows": len(rows)})
    return len(provinces), len(districts)
