"""Grafana's ClickHouse account: the settings profile of deploy/clickhouse/users.d/warroom.xml,
applied to a chdb session (chdb has no access management, so the users, grants and the
changeable_in_readonly constraint are checked statically in tests/unit/test_compose.py).
Under the profile, writes, DDL and lifting a limit are refused and the limits are in force."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from chdb_once import Outcome, run_chdb

USERS_XML = (
    Path(__file__).resolve().parents[3] / "deploy" / "clickhouse" / "users.d" / "warroom.xml"
)


def _profile() -> dict[str, str]:
    profile = ET.parse(USERS_XML).getroot().find("profiles/warroom_grafana")
    assert profile is not None
    return {e.tag: (e.text or "").strip() for e in profile if e.tag != "constraints"}


def _as_grafana(statements: list[str]) -> list[Outcome]:
    """Setup as the session's owner, then the profile's settings (readonly last), then the
    statements under test; one Outcome per statement under test."""
    profile = _profile()
    setup = [
        "CREATE DATABASE warroom",
        "CREATE TABLE warroom.metric_counts (d String, n UInt64) ENGINE = MergeTree ORDER BY d",
        "INSERT INTO warroom.metric_counts SELECT toString(number), number FROM numbers(1000)",
    ]
    sets = [f"SET {k} = '{v}'" for k, v in profile.items() if k != "readonly"]
    sets.append(f"SET readonly = {profile['readonly']}")
    outcomes = run_chdb(setup + sets + statements)
    assert all(o.ok for o in outcomes[: len(setup) + len(sets)]), outcomes
    return outcomes[len(setup) + len(sets) :]


@pytest.fixture(scope="module")
def profile() -> dict[str, str]:
    return _profile()


WRITES = [
    "INSERT INTO warroom.metric_counts VALUES ('x', 1)",
    "CREATE TABLE warroom.t (x UInt8) ENGINE = Memory",
    "DROP TABLE warroom.metric_counts",
    "TRUNCATE TABLE warroom.metric_counts",
    "ALTER TABLE warroom.metric_counts DELETE WHERE 1",
    "ALTER TABLE warroom.metric_counts ADD COLUMN y UInt8",
    "RENAME TABLE warroom.metric_counts TO warroom.gone",
    "CREATE DATABASE other",
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
]
LIFTS = ["SET readonly = 0", "SET max_memory_usage = 0", "SET max_result_rows = 0"]


def test_writes_ddl_and_host_access_are_refused() -> None:
    outcomes = _as_grafana([*WRITES, "SELECT count() FROM warroom.metric_counts"])
    for sql, outcome in zip(WRITES, outcomes, strict=False):
        assert not outcome.ok and "READONLY" in (outcome.error or ""), (sql, outcome)
    assert outcomes[-1].rows == [[1000]], "reading still works, and nothing was changed"


def test_limits_cannot_be_lifted() -> None:
    for sql, outcome in zip(LIFTS, _as_grafana(LIFTS), strict=True):
        assert not outcome.ok and "readonly mode" in (outcome.error or ""), (sql, outcome)


def test_limits_are_in_force(profile: dict[str, str]) -> None:
    rows = int(profile["max_result_rows"])
    checks = [
        f"SELECT getSetting('{name}')"
        for name in ("max_execution_time", "max_memory_usage", "max_result_rows", "readonly")
    ]
    outcomes = _as_grafana(
        [
            *checks,
            f"SELECT number FROM numbers({rows + 1})",
        ]
    )
    # its own session: after a result-size error chdb 4.4 sometimes hands the refused rows to
    # the session's next query
    (aggregated,) = _as_grafana([f"SELECT count() FROM (SELECT number FROM numbers({rows + 1}))"])
    got = [str(o.rows[0][0]) if o.rows else o.error for o in outcomes[: len(checks)]]
    assert got == [
        profile["max_execution_time"],
        profile["max_memory_usage"],
        profile["max_result_rows"],
        profile["readonly"],
    ]
    too_many = outcomes[len(checks)]
    assert not too_many.ok and "TOO_MANY_ROWS_OR_BYTES" in (too_many.error or "")
    assert aggregated.rows == [[rows + 1]], "aggregating many rows is fine"
