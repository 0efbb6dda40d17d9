"""The latest-state tables (migration 004) that the whole-table panels read, kept by the store
itself while the real worker writes the fixture's events (duplicates, late events, a restart
between two phases), equal what plain Python computes from the raw event rows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _grievance_oracle(warehouse: Any) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Per case: the latest event by (occurred_at, offset), the latest due time any event
    gave, the earliest event's time, the non-empty pseudonym."""
    _, rows = warehouse.query(
        "SELECT district_code, grievance_id, toUnixTimestamp64Milli(occurred_at), kafka_offset, "
        "type, category, priority, toUnixTimestamp64Milli(due_at), complainant_pseudonym "
        "FROM grievance_events"
    )
    cases: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for district, gid, *rest in rows:
        cases[(district, gid)].append(tuple(rest))
    out = {}
    for key, events in cases.items():
        _, _, kind, cat, prio, _, _ = max(events, key=lambda e: (e[0], e[1]))
        dues = [e for e in events if e[5] is not None]
        due = max(dues, key=lambda e: (e[0], e[1]))[5] if dues else None
        names = {e[6] for e in events} - {""}
        assert len(names) <= 1, key
        out[key] = (kind, cat, prio, due, min(e[0] for e in events), min(names, default=""))
    return out


def test_grievance_latest_equals_the_events(warehouse: Any) -> None:
    expected = _grievance_oracle(warehouse)
    _, late = warehouse.query(
        "SELECT count() FROM (SELECT district_code, grievance_id, "
        "argMax(kafka_offset, occurred_at) AS at_latest, max(kafka_offset) AS highest "
        "FROM grievance_events GROUP BY district_code, grievance_id) WHERE at_latest < highest"
    )
    assert late[0][0] > 0, "some case's latest event arrived before an older one (late events)"
    _, rows = warehouse.query(
        "SELECT district_code, grievance_id, tupleElement(last, 3), tupleElement(last, 4), "
        "tupleElement(last, 5), if(toUnixTimestamp64Milli(tupleElement(due, 1)) = 0, NULL, "
        "toUnixTimestamp64Milli(tupleElement(due, 3))), toUnixTimestamp64Milli(first_seen), "
        "pseudonym FROM grievance_latest FINAL"
    )
    got = {(r[0], r[1]): tuple(r[2:]) for r in rows}
    assert len(got) == len(rows), "one row per case"
    assert len(got) > 1000
    assert got == expected


def test_project_latest_equals_the_reports(warehouse: Any) -> None:
    _, rows = warehouse.query(
        "SELECT project_id, district_code, toUnixTimestamp64Milli(occurred_at), kafka_offset, "
        "program, status, fiscal_year, progress_pct, planned_pct, budget_allocated_thb, "
        "budget_obligated_thb, budget_disbursed_thb, sdg_goals, tpmap_dimensions "
        "FROM project_events"
    )
    expected: dict[tuple[str, str], tuple[Any, ...]] = {}
    for pid, district, *report in rows:
        old = expected.get((district, pid))
        if old is None or (report[0], report[1]) > (old[0], old[1]):
            expected[(district, pid)] = tuple(report)
    _, rows = warehouse.query(
        "SELECT project_id, district_code, toUnixTimestamp64Milli(tupleElement(last, 1)), "
        + ", ".join(f"tupleElement(last, {i})" for i in range(2, 13))
        + " FROM project_latest FINAL"
    )
    got = {(r[1], r[0]): tuple(r[2:]) for r in rows}
    assert len(got) == len(rows) > 100
    assert got == expected
