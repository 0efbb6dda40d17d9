"""The open-case snapshot (migration 006, sinks/open_cases.py) and the overdue-case list that
reads it: on a real chdb store, with cases closed, reopened, created and sent late after the
snapshot was built, the list equals what plain Python computes from the events, with the
newest generation, with none, and with a watermark that covers nothing."""

from __future__ import annotations

import random
import time
import uuid
import zlib
from collections import defaultdict
from typing import Any

import pytest

from dashboards.district import OVERDUE_CASES_SQL
from dashboards.macros import ALL, QueryContext, Variable, expand
from sinks import open_cases
from sinks.backends import Backend
from sinks.migrate import migrate
from sinks.tables import INSERT_COLUMNS
from streams.contract import OPEN_TYPES

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
DISTRICTS = ("1001", "1002", "5001", "9001")
CLOSED = ("resolved", "closed", "rejected")
STEPS = ("assigned", "in_progress", "forwarded", "escalated")


class Events:
    """Grievance events as the pipeline writes them, and the oracle of the overdue list."""

    def __init__(self, seed: int, now_ms: int) -> None:
        self.rng = random.Random(seed)
        self.now_ms = now_ms
        self.offset = 0
        self.rows: list[dict[str, Any]] = []
        self.cases: dict[str, str] = {}  # grievance_id -> district

    def add(
        self, gid: str, typ: str, at_ms: int, due_ms: int | None = None, *, cat: str = "land"
    ) -> dict[str, Any]:
        self.offset += 1
        row = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "occurred_at": at_ms,
            "district_code": self.cases[gid],
            "subdistrict_code": self.cases[gid] + "01",
            "source": "damrongdhama",
            "grievance_id": gid,
            "type": typ,
            "category": cat,
            "channel": "hotline_1567",
            "priority": "urgent" if zlib.crc32(gid.encode()) % 3 == 0 else "normal",
            "due_at": due_ms,
            "agency": "",
            "complainant_kind": "citizen",
            "complainant_pseudonym": f"{zlib.crc32(gid.encode()):064x}",
            "kafka_partition": 0,
            "kafka_offset": self.offset,
        }
        self.rows.append(row)
        return row

    def new_case(self, start_ms: int, end_ms: int) -> str:
        gid = f"G-T{len(self.cases):05d}"
        self.cases[gid] = self.rng.choice(DISTRICTS)
        received = self.rng.randrange(start_ms, end_ms)
        due = received + self.rng.randrange(1, 20) * DAY_MS // 2
        self.add(gid, "received", received, None if self.rng.random() < 0.1 else due)
        at = received
        for _ in range(self.rng.randrange(0, 4)):
            at += self.rng.randrange(60_000, DAY_MS)
            if at >= end_ms:
                break
            self.add(gid, self.rng.choice(STEPS), at)
        if self.rng.random() < 0.45 and at + 3_600_000 < end_ms:
            self.add(gid, self.rng.choice(CLOSED), self.rng.randrange(at + 1, end_ms))
        return gid

    def insert(self, backend: Backend, rows: list[dict[str, Any]]) -> None:
        columns = INSERT_COLUMNS["grievance_events"]
        backend.insert("grievance_events", {c: [r[c] for r in rows] for c in columns})

    def state(self, to_ms: int) -> dict[str, tuple[Any, ...]]:
        """Per case as of `to_ms`: (type, category, priority, due, first_seen, pseudonym)."""
        by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in self.rows:
            if r["occurred_at"] <= to_ms:
                by_case[r["grievance_id"]].append(r)
        out = {}
        for gid, events in by_case.items():
            last = max(events, key=lambda e: (e["occurred_at"], e["kafka_offset"]))
            dues = [e for e in events if e["due_at"] is not None]
            due = max(dues, key=lambda e: (e["occurred_at"], e["kafka_offset"])) if dues else None
            out[gid] = (
                last["type"],
                last["category"],
                last["priority"],
                due["due_at"] if due else None,
                min(e["occurred_at"] for e in events),
                events[0]["complainant_pseudonym"],
            )
        return out

    def overdue(self, to_ms: int) -> list[tuple[str, int, int]]:
        """The list as the panel orders it: (grievance_id, due, overdue seconds)."""
        rows = [
            (due, gid)
            for gid, (typ, _c, _p, due, _f, _s) in self.state(to_ms).items()
            if typ in OPEN_TYPES and due is not None and due < to_ms
        ]
        return [(gid, due, to_ms // 1000 - due // 1000) for due, gid in sorted(rows)][:200]


def _listed(backend: Backend, to_ms: int) -> list[tuple[Any, ...]]:
    everything = {name: Variable(ALL) for name in ("region", "province", "district", "category")}
    span = QueryContext(to_ms - 30 * DAY_MS, to_ms, 60_000, everything)
    return backend.query_rows(expand(OVERDUE_CASES_SQL.text, span))


def _assert_equal(backend: Backend, events: Events, to_ms: int) -> list[str]:
    got = _listed(backend, to_ms)
    expected = events.overdue(to_ms)
    assert [r[0] for r in got] == [g for g, _, _ in expected]
    state = events.state(to_ms)
    for row, (gid, due, overdue_s) in zip(got, expected, strict=True):
        assert int(row[3].timestamp() * 1000) == due, gid
        # dateDiff counts whole seconds between the two times
        assert abs(row[5] - overdue_s) <= 1, gid
        assert row[6] == state[gid][5][:8]
    return [g for g, _, _ in expected]


@pytest.fixture
def store(chdb_backend: Backend) -> Backend:
    migrate(chdb_backend, reference=False)
    return chdb_backend


def test_the_overdue_list_equals_the_events_before_and_after_a_snapshot(store: Backend) -> None:
    now = int(time.time() * 1000)
    events = Events(seed=20261203, now_ms=now)
    start = now - 30 * DAY_MS
    for _ in range(400):
        events.new_case(start, now - DAY_MS)
    events.insert(store, events.rows)
    first = _assert_equal(store, events, now)  # no generation yet: every case is "touched"
    assert len(first) > 50

    cases = open_cases.rebuild(store, margin_s=0)
    open_now = {g for g, s in events.state(now).items() if s[0] in OPEN_TYPES}
    assert cases == len(open_now)
    snapshot = {r[0] for r in store.query_rows("SELECT grievance_id FROM grievance_open")}
    assert snapshot == open_now
    time.sleep(0.01)  # the changes below are ingested after the watermark

    # after the snapshot: close listed cases, reopen closed ones (one with a new due time),
    # open new ones, send a late step and a late due, and write one event twice
    rng = random.Random(7)
    listed = rng.sample(first, 15)
    closed_before = sorted(g for g, s in events.state(now).items() if s[0] in CLOSED)
    reopened = rng.sample(closed_before, 15)
    later: list[dict[str, Any]] = []
    for gid in listed:
        later.append(events.add(gid, "closed", now - 3_600_000))
    for i, gid in enumerate(reopened):
        due = now - DAY_MS if i % 2 else None
        later.append(events.add(gid, "reopened", now - 1_800_000, due))
    before = len(events.rows)
    for _ in range(20):
        events.new_case(now - 5 * DAY_MS, now - DAY_MS)
    later += events.rows[before:]
    late = rng.sample(sorted(open_now - set(listed)), 10)
    for gid in late:
        first_seen = events.state(now)[gid][4]
        later.append(events.add(gid, "assigned", first_seen + 1, first_seen - DAY_MS))
    later.append(dict(later[0]))
    events.rows.append(later[-1])
    events.insert(store, later)

    after = _assert_equal(store, events, now)
    touched = set(listed) | set(reopened) | set(late)
    assert not set(listed) & set(after), "a case closed after the snapshot is not listed"
    assert set(reopened) & set(after), "a case reopened after the snapshot is listed"
    assert set(after) - touched, "most of the list comes from the snapshot"
    # a range ending in the past: the cases touched since its end are regrouped from events
    _assert_equal(store, events, now - 10 * DAY_MS)
    _assert_equal(store, events, now - 2 * DAY_MS)

    # a watermark that covers nothing: every case read from grievance_latest, same list
    store.execute("TRUNCATE TABLE grievance_open_generations")
    open_later = sum(1 for s in events.state(now).values() if s[0] in OPEN_TYPES)
    assert open_cases.rebuild(store, margin_s=3600) == open_later
    newest = store.query_rows("SELECT max(generation) FROM grievance_open_generations")[0][0]
    assert newest.timestamp() < time.time() - 3500
    _assert_equal(store, events, now)
    # and a fresh one again
    open_cases.rebuild(store, margin_s=0)
    assert _assert_equal(store, events, now) == after


def test_a_rebuild_keeps_the_newest_generations_and_one_under_way(store: Backend) -> None:
    events = Events(seed=5, now_ms=int(time.time() * 1000))
    for _ in range(50):
        events.new_case(events.now_ms - 10 * DAY_MS, events.now_ms - DAY_MS)
    events.insert(store, events.rows)
    open_count = sum(1 for s in events.state(events.now_ms).values() if s[0] in OPEN_TYPES)
    # a rebuild elsewhere, under way: its rows are in, its generation not marked yet
    store.execute(
        "INSERT INTO grievance_open (generation, region, province_code, district_code, "
        "grievance_id, last_at, last_type, category_code, priority_code, due, first_seen, "
        "pseudonym) VALUES (now64(3) + INTERVAL 1 HOUR, 'central', '10', '1001', 'G-X', "
        "now64(3), 'received', 'land', 'normal', NULL, now64(3), '')"
    )
    for _ in range(open_cases.KEEP_GENERATIONS + 2):
        assert open_cases.rebuild(store, margin_s=0) == open_count
        time.sleep(0.01)
    marked = [r[0] for r in store.query_rows("SELECT generation FROM grievance_open_generations")]
    assert len(marked) == open_cases.KEEP_GENERATIONS + 2
    kept = store.query_rows(
        "SELECT generation, count() FROM grievance_open GROUP BY generation ORDER BY generation"
    )
    newest = sorted(marked)[-open_cases.KEEP_GENERATIONS :]
    assert [g for g, _ in kept[:-1]] == newest
    assert all(n == open_count for _, n in kept[:-1])
    assert kept[-1][1] == 1, "the generation under way stays"


def test_a_clock_behind_the_newest_generation_builds_nothing(store: Backend) -> None:
    store.execute(
        "INSERT INTO grievance_open_generations (generation, cases) "
        "VALUES (now64(3) + INTERVAL 1 HOUR, 0)"
    )
    assert open_cases.rebuild(store, margin_s=0) == 0
    assert store.query_rows("SELECT count() FROM grievance_open") == [(0,)]
