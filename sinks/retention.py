"""Retention as policy: how long each table keeps its rows (docs/retention.md says why).

One registry (``RULES``) names every table that expires, the time its TTL counts from and the
setting that holds its days; ``problems`` refuses settings that would make a panel lie, and
``apply`` makes each existing table's TTL equal to the policy at migrate time.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Final

from sinks.backends import Backend

if TYPE_CHECKING:
    from warroom.settings import Settings

__all__ = [
    "CHAINS",
    "MINUTE_FLOOR_DAYS",
    "NEVER_EXPIRE",
    "RULES",
    "YEAR_OVER_YEAR_DAYS",
    "Rule",
    "apply",
    "policy",
    "problems",
    "ttl_expression",
]

log = logging.getLogger(__name__)

#: the longest range the dashboards read at minute grain (longer ranges read the rollups)
MINUTE_FLOOR_DAYS: Final = 2
#: "this month against the same month last year": from the 1st of last year's month to today
YEAR_OVER_YEAR_DAYS: Final = 366 + 31


@dataclass(frozen=True)
class Rule:
    """One table's retention: rows expire ``days`` after ``column`` (0 = keep forever)."""

    table: str
    column: str
    field: str  # the warroom.settings.Settings field holding the days
    whole_months: bool  # expire by calendar month (the tables' partitions), not row by row
    floor_days: int = 0  # shortest allowed, besides 0
    #: the time as an expression of ``column`` when the column is not a time itself
    expr: str = ""

    @property
    def time(self) -> str:
        return self.expr or self.column

    @property
    def env(self) -> str:
        from warroom.settings import Settings

        return str(next(f for f in fields(Settings) if f.name == self.field).metadata["env"])


RULES: Final[tuple[Rule, ...]] = (
    Rule("grievance_events", "occurred_at", "retain_grievance_events_days", True),
    Rule("project_events", "occurred_at", "retain_project_events_days", True),
    Rule("metric_buckets", "bucket", "retain_metric_buckets_days", False, MINUTE_FLOOR_DAYS),
    Rule("metric_gauges", "bucket", "retain_metric_gauges_days", False, MINUTE_FLOOR_DAYS),
    Rule("quality_buckets", "bucket", "retain_quality_buckets_days", False, MINUTE_FLOOR_DAYS),
    # the rollups (issue 14 item 2): applied once their migration has created them
    Rule("metric_buckets_hourly", "bucket", "retain_metric_buckets_hourly_days", True),
    Rule(
        "metric_buckets_daily",
        "bucket",
        "retain_metric_buckets_daily_days",
        True,
        YEAR_OVER_YEAR_DAYS,
    ),
    Rule("quality_buckets_hourly", "bucket", "retain_quality_buckets_hourly_days", True),
    Rule(
        "quality_buckets_daily",
        "bucket",
        "retain_quality_buckets_daily_days",
        True,
        YEAR_OVER_YEAR_DAYS,
    ),
    # the latest state of each case and project (migration 004) goes with its latest event:
    # the keyed pseudonym in grievance_latest must not outlive the events it came from
    Rule(
        "grievance_latest",
        "last",
        "retain_grievance_events_days",
        True,
        expr="tupleElement(last, 1)",
    ),
    Rule(
        "project_latest", "last", "retain_project_events_days", True, expr="tupleElement(last, 1)"
    ),
    Rule("dead_letters", "received_at", "retain_dead_letters_days", False),
    Rule("alerts_history", "at", "retain_alerts_history_days", True),
)

#: finer to coarser: a table may not keep its rows longer than the next one
CHAINS: Final[tuple[tuple[str, ...], ...]] = (
    ("metric_buckets", "metric_buckets_hourly", "metric_buckets_daily"),
    ("quality_buckets", "quality_buckets_hourly", "quality_buckets_daily"),
)

#: reference and bookkeeping tables: never expire
NEVER_EXPIRE: Final = ("ref_provinces", "ref_districts", "schema_migrations")

_BY_TABLE: Final = {rule.table: rule for rule in RULES}


def policy(settings: Settings) -> dict[str, int]:
    """Days each table keeps its rows under ``settings`` (0 = forever), by table."""
    return {rule.table: int(getattr(settings, rule.field)) for rule in RULES}


def _span(days: int) -> float:
    return float("inf") if days == 0 else float(days)


def _said(rule: Rule, days: int) -> str:
    return f"{rule.env}={days}" + (" (keep forever)" if days == 0 else "")


def problems(settings: Settings) -> list[str]:
    """One plain line per retention setting that cannot stand, each naming the settings."""
    days = policy(settings)
    found: list[str] = []
    for rule in RULES:
        n = days[rule.table]
        if n < 0:
            found.append(f"{rule.env}={n}: give a number of days, or 0 to keep forever")
        elif 0 < n < rule.floor_days:
            what = (
                f"the {MINUTE_FLOOR_DAYS} days the dashboards read at minute grain"
                if rule.floor_days == MINUTE_FLOOR_DAYS
                else f"the {rule.floor_days} days 'this month against the same month last "
                "year' reads"
            )
            found.append(
                f"{rule.env}={n} is shorter than {what}: set {rule.floor_days} or more "
                "(0 keeps forever)"
            )
    found = list(dict.fromkeys(found))  # two tables may share a setting: say it once
    for chain in CHAINS:
        for finer, coarser in itertools.pairwise(chain):
            a, b = _BY_TABLE[finer], _BY_TABLE[coarser]
            if min(days[finer], days[coarser]) >= 0 and _span(days[finer]) > _span(days[coarser]):
                found.append(
                    f"{_said(a, days[finer])} outlives {_said(b, days[coarser])}: {finer} "
                    f"must not keep rows longer than its rollup {coarser}; lower {a.env} or "
                    f"raise {b.env}"
                )
    return found


def ttl_expression(rule: Rule, days: int) -> str:
    """The TTL as ClickHouse prints it back in system.tables.engine_full."""
    if rule.whole_months:  # the end of the row's month + days: a month's rows expire together
        return f"(toStartOfMonth({rule.time}) + toIntervalMonth(1)) + toIntervalDay({days})"
    return f"{rule.time} + toIntervalDay({days})"


_TTL = re.compile(r"\sTTL\s(.*?)(?:\sSETTINGS\s|$)", re.DOTALL)
_SETTINGS = re.compile(r"\sSETTINGS\s(.*)$", re.DOTALL)


def _normal(expr: str) -> str:
    return re.sub(r"[\s()`]", "", expr)


def _table_settings(engine_full: str) -> dict[str, str]:
    match = _SETTINGS.search(engine_full)
    found: dict[str, str] = {}
    for item in match.group(1).split(",") if match else []:
        key, sep, value = item.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


def _wanted_settings(rule: Rule, engine_full: str) -> dict[str, str]:
    # recalculate only: changing a TTL must not rewrite every part of a year of data at once;
    # the expired rows go at the next TTL merge (whole parts, where parts are months)
    wanted = {"materialize_ttl_recalculate_only": "1"}
    if rule.whole_months and f"PARTITION BY toYYYYMM({rule.column})" in engine_full:
        wanted["ttl_only_drop_parts"] = "1"
    return wanted


def apply(backend: Backend, days: Mapping[str, int]) -> list[str]:
    """Make each existing table's TTL the policy's; the tables changed, in registry order.

    Compares with the TTL the table has (system.tables) and alters only on a difference, so
    it is idempotent; two processes doing it at once both write the same TTL. Tables not yet
    created (the rollups before their migration) are skipped.
    """
    db = backend.database.replace("'", "\\'")
    engines = {
        str(name): str(engine)
        for name, engine in backend.query_rows(
            f"SELECT name, engine_full FROM system.tables WHERE database = '{db}'"
        )
    }
    changed: list[str] = []
    for rule in RULES:
        if rule.table not in engines or rule.table not in days:
            continue
        n = days[rule.table]
        engine = engines[rule.table]
        match = _TTL.search(engine)
        current = match.group(1).strip() if match else ""
        target = f"`{backend.database}`.`{rule.table}`"
        wanted = ttl_expression(rule, n) if n > 0 else ""
        if _normal(current) == _normal(wanted):
            continue
        if wanted:
            have = _table_settings(engine)
            missing = {k: v for k, v in _wanted_settings(rule, engine).items() if have.get(k) != v}
            if missing:
                pairs = ", ".join(f"{k} = {v}" for k, v in missing.items())
                backend.execute(f"ALTER TABLE {target} MODIFY SETTING {pairs}")
            # the TTL now, its application to the rows already stored in the background: a
            # worker's start must not wait for a year of parts (chdb waits by default)
            backend.execute(
                f"ALTER TABLE {target} MODIFY TTL {wanted} "
                "SETTINGS materialize_ttl_after_modify = 0"
            )
            backend.execute(f"ALTER TABLE {target} MATERIALIZE TTL SETTINGS mutations_sync = 0")
        else:
            backend.execute(f"ALTER TABLE {target} REMOVE TTL")
        log.info(
            "retention changed",
            extra={
                "table": rule.table,
                "ttl": wanted or "none (keep forever)",
                "previous": current or "none",
            },
        )
        changed.append(rule.table)
    return changed
