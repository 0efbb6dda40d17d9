"""The pure simulator: determinism per seed and a realistic national workload (no Kafka)."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import geothai
import orjson
import pytest

from producers.simulator import Item, SimOptions, Simulator
from streams.reasons import Reason, Rejection
from streams.validation import Validator

# Monday 1 June 2026, 00:00 Bangkok (17:00 UTC the day before): a fixed, past start
START = datetime(2026, 5, 31, 17, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
MIX = {"debt": 0.30, "land": 0.20, "drugs": 0.15, "utilities": 0.15, "flood": 0.10, "other": 0.10}
N = 150_000


def run(n: int, **options: Any) -> list[Item]:
    opts = SimOptions(start_ms=START_MS, **options)
    return list(itertools.islice(Simulator(opts).items(), n))


@pytest.fixture(scope="module")
def items() -> list[Item]:
    """About 17 simulated days, no surges (so the category mix is the configured one)."""
    return run(N, seed=11, speedup=20_000, surge_share=0.0, warmup_days=0, category_mix=MIX)


def good(items: list[Item], stream: str = "grievance") -> list[dict[str, Any]]:
    return [
        orjson.loads(it.payload)
        for it in items
        if it.reason is None and not it.is_duplicate and it.stream == stream
    ]


def test_same_seed_same_bytes_other_seed_other_events() -> None:
    a = run(6000, seed=5, warmup_days=1)
    b = run(6000, seed=5, warmup_days=1)
    c = run(6000, seed=6, warmup_days=1)
    fields = lambda it: (it.stream, it.key, it.payload, it.reason, it.is_duplicate, it.is_late)  # noqa: E731
    assert [fields(x) for x in a] == [fields(x) for x in b]
    assert len({x.payload for x in a} & {x.payload for x in c}) < 60  # only constant bad payloads


def test_every_district_of_the_reference_list_is_active(items: list[Item]) -> None:
    reference = {d.code for p in geothai.provinces() for d in geothai.districts(p.code)}
    assert len(reference) == 928
    received = Counter(e["district_code"] for e in good(items) if e["type"] == "received")
    assert set(received) == reference
    # different weights: Bangkok khet and provincial capitals are busier than the rest
    capitals = [c for c in reference if c.endswith("01") and not c.startswith("10")]
    khet = [c for c in reference if c.startswith("10")]
    others = [c for c in reference if c not in capitals and c not in khet]
    mean = lambda codes: sum(received[c] for c in codes) / len(codes)  # noqa: E731
    assert mean(capitals) > 2 * mean(others)
    assert mean(khet) > 1.5 * mean(others)


def test_category_shares_follow_the_configured_mix(items: list[Item]) -> None:
    cats = Counter(e["category"] for e in good(items) if e["type"] == "received")
    total = sum(cats.values())
    assert total > 20_000
    assert set(cats) == set(MIX)
    for category, share in MIX.items():
        assert abs(cats[category] / total - share) < 0.015, (category, cats[category] / total)


def test_lifecycles_are_ordered_in_time(items: list[Item]) -> None:
    allowed = {
        "received": {"assigned", "rejected"},
        "assigned": {"in_progress"},
        "in_progress": {"forwarded", "escalated", "resolved"},
        "forwarded": {"escalated", "resolved"},
        "escalated": {"resolved"},
        "resolved": {"reopened", "closed"},
        "reopened": {"in_progress"},
        "closed": set(),
        "rejected": set(),
    }
    cases: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in good(items):
        cases[e["grievance_id"]].append((e["occurred_at"], e["type"]))
    # a late step (held back up to 3 h) may still be in flight when the window ends
    end = datetime.fromtimestamp(max(it.occurred_ms for it in items) / 1000, UTC)
    cases = {
        g: s
        for g, s in cases.items()
        if max(datetime.fromisoformat(t) for t, _ in s) < end - timedelta(hours=4)
    }
    fates: Counter[str] = Counter()
    for steps in cases.values():
        times = [datetime.fromisoformat(t) for t, _ in steps]
        order = sorted(range(len(steps)), key=lambda i: times[i])
        kinds = [steps[i][1] for i in order]
        assert kinds[0] == "received"
        assert len(set(times)) == len(times)  # strictly increasing once sorted
        for a, b in itertools.pairwise(kinds):
            assert b in allowed[a], kinds
        fates[kinds[-1]] += 1
    # cases end in every way: closed, rejected, and still open (overdue candidates)
    assert fates["closed"] and fates["rejected"] and fates["assigned"] and fates["in_progress"]
    kinds_seen = {k for steps in cases.values() for _, k in steps}
    assert kinds_seen == set(allowed)


def test_due_at_follows_the_sla_defaults(items: list[Item]) -> None:
    sla = {"flood": 7, "drought": 7}  # documented defaults: 15 days, disasters 7, urgent 3
    for e in good(items)[:20_000]:
        if e["type"] != "received":
            continue
        days = 3 if e["priority"] == "urgent" else sla.get(e["category"], 15)
        gap = datetime.fromisoformat(e["due_at"]) - datetime.fromisoformat(e["occurred_at"])
        assert gap == timedelta(days=days)
    urgent = sum(1 for e in good(items) if e["type"] == "received" and e["priority"] == "urgent")
    received = sum(1 for e in good(items) if e["type"] == "received")
    assert 0.05 < urgent / received < 0.11


def test_office_hours_and_weekdays_are_busier(items: list[Item]) -> None:
    received = [e for e in good(items) if e["type"] == "received"]
    bkk = [datetime.fromisoformat(e["occurred_at"]) for e in received]
    # occurred_at carries +07:00, so .hour and .weekday() are Bangkok's
    assert all(t.utcoffset() == timedelta(hours=7) for t in bkk)
    by_hour = Counter(t.hour for t in bkk)
    office = sum(by_hour[h] for h in range(9, 16)) / 7
    night = sum(by_hour[h] for h in range(0, 5)) / 5
    assert office > 4 * night
    days = Counter(t.date() for t in bkk)
    full = sorted(days)[1:-1]  # whole days only
    weekday = [days[d] for d in full if d.weekday() < 5]
    sunday = [days[d] for d in full if d.weekday() == 6]
    assert sunday and weekday
    assert min(weekday) > 1.5 * max(sunday)


def test_complainants_carry_valid_citizen_ids(items: list[Item]) -> None:
    received = [e for e in good(items) if e["type"] == "received"]
    people = [e["complainant"] for e in received if "complainant" in e]
    assert 0.25 < len(people) / len(received) < 0.45
    ids = [p["citizen_id"] for p in people if "citizen_id" in p]
    assert ids and all(p for p in people)
    for cid in ids[:5000]:
        total = sum(int(d) * (13 - i) for i, d in enumerate(cid[:12]))
        assert int(cid[12]) == (11 - total % 11) % 10
    assert any("phone" in p for p in people) and any("name" in p for p in people)


def test_bad_events_validate_to_their_intended_reason(items: list[Item]) -> None:
    validator = Validator()
    bad = [it for it in items if it.reason is not None]
    assert 0.007 < len(bad) / len(items) < 0.013
    seen: Counter[Reason] = Counter()
    for it in bad:
        got = validator.payload(it.payload)
        if it.reason is Reason.WRONG_TOPIC:
            # a valid project report sent to the grievance topic
            assert not isinstance(got, Rejection)
            assert it.stream == "grievance" and got["schema"] == "project.v1"
        elif it.reason is Reason.WRONG_KEY:
            # a valid event under another key than its district (the worker rejects it)
            assert not isinstance(got, Rejection)
            assert it.key != got["district_code"]
        else:
            assert isinstance(got, Rejection) and got.reason is it.reason, (it.reason, got)
        seen[it.reason] += 1
    assert set(seen) == set(Reason)
    # and every good event is accepted
    for it in items[:30_000]:
        if it.reason is None:
            got = validator.payload(it.payload)
            assert not isinstance(got, Rejection), (got, it.payload)
            assert got["schema"] == ("grievance.v1" if it.stream == "grievance" else "project.v1")
            assert it.key == got["district_code"]


def test_duplicates_are_exact_repeats_sent_later(items: list[Item]) -> None:
    first_at: dict[bytes, int] = {}
    dups = 0
    for i, it in enumerate(items):
        if it.is_duplicate:
            dups += 1
            assert it.payload in first_at and first_at[it.payload] < i
            original = items[first_at[it.payload]]
            assert (original.key, original.stream) == (it.key, it.stream)
            assert not original.is_duplicate and original.reason is None
        else:
            first_at.setdefault(it.payload, i)
    assert 0.003 < dups / len(items) < 0.007
    ids = Counter(orjson.loads(it.payload)["event_id"] for it in items if it.reason is None)
    assert sum(c - 1 for c in ids.values()) == dups


def test_late_events_arrive_after_later_events(items: list[Item]) -> None:
    newest = 0
    small, large = 0, 0
    for it in items:
        if it.is_late:
            lag = newest - it.occurred_ms
            assert lag > 0
            if lag < 60_000:
                small += 1
            elif lag > 3_600_000:
                large += 1
        elif not it.is_duplicate:
            assert it.occurred_ms >= newest  # everything else is in time order
        newest = max(newest, it.occurred_ms)
    late = sum(it.is_late for it in items)
    assert 0.007 < late / len(items) < 0.013
    assert small > 0.4 * late and large > 0.15 * late


def test_project_reports(items: list[Item]) -> None:
    reports = good(items, "project")
    assert len(reports) > 3000
    statuses = Counter(r["status"] for r in reports)
    assert {"on_track", "delayed", "procurement"} <= set(statuses)
    for r in reports:
        assert r["budget_allocated_thb"] >= r["budget_obligated_thb"] >= r["budget_disbursed_thb"]
        assert r["fiscal_year"] in (2569, 2570)  # June 2026 is FY2569; projects may start later
        assert set(r["sdg_goals"]) <= set(range(1, 18))
    # weekly: a project reports about once a week
    by_project = defaultdict(list)
    for r in reports:
        by_project[r["project_id"]].append(datetime.fromisoformat(r["occurred_at"]))
    gaps = [
        (b - a).days for times in by_project.values() for a, b in itertools.pairwise(sorted(times))
    ]
    assert gaps and all(6 <= g <= 7 for g in gaps)


def test_surges_raise_flood_or_drought_in_a_few_provinces() -> None:
    out = run(40_000, seed=3, speedup=20_000, surge_share=0.3, warmup_days=0)
    received = [e for e in good(out) if e["type"] == "received"]
    disaster = [e for e in received if e["category"] in ("flood", "drought")]
    assert len(disaster) / len(received) > 0.10  # the base mix has 3 %
    provinces = Counter(e["district_code"][:2] for e in disaster)
    top = sum(n for _, n in provinces.most_common(8))
    assert top > 0.6 * len(disaster)
