"""Panels over the 1-minute buckets and the raw event tables equal plain Python over the raw
event rows: grievances received per category and channel, reopen and escalation rates, new
today (Bangkok), the surge table, SLA compliance, stale projects and projects behind plan."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import dash_oracle
import pytest
from dash_data import BURST_DISTRICT, BURST_MIN, BURST_SIZE
from dash_panels import PanelQuery, all_selected, clickhouse_queries, context, custom_options, run

from dashboards.macros import Variable
from streams import geography
from streams.labels import CATEGORY_TH, CHANNEL_TH, PROGRAM_TH, STATUS_TH
from streams.timeutil import BANGKOK

pytestmark = pytest.mark.integration

QUERIES = clickhouse_queries()
WEEK_S = 7 * 86400


def panel(uid: str, title: str) -> PanelQuery:
    return next(q for q in QUERIES if q.uid == uid and q.title == title)


def _run(
    warehouse: Any, uid: str, title: str, to: int | None = None, **selected: Any
) -> tuple[list[str], list[Any]]:
    q = panel(uid, title)
    variables = all_selected(uid, custom_options(uid))
    variables.update({k: Variable(v) for k, v in selected.items()})
    frm, end = warehouse.time_range
    return run(warehouse, q.raw_sql, context((frm, end if to is None else to), variables))


@pytest.fixture(scope="module")
def events(warehouse: Any) -> list[dict[str, Any]]:
    """In-window grievance events (those the 1-minute buckets count)."""
    evs = dash_oracle.grievance_events(warehouse)
    assert any(not e["in_window"] for e in evs), "too-late events exist (and are left out)"
    return [e for e in evs if e["in_window"]]


def test_received_by_category_and_channel(warehouse: Any, events: list[dict[str, Any]]) -> None:
    received = [e for e in events if e["type"] == "received"]
    by_category = Counter(CATEGORY_TH[e["category"]] for e in received)
    by_channel = Counter(CHANNEL_TH[e["channel"]] for e in received)
    _, rows = _run(warehouse, "warroom-grievances", "รับเรื่องตามหมวดหมู่")
    assert dict(rows) == by_category
    _, rows = _run(warehouse, "warroom-grievances", "รับเรื่องตามช่องทาง")
    assert dict(rows) == by_channel
    # two categories selected
    _, rows = _run(warehouse, "warroom-grievances", "รับเรื่องตามหมวดหมู่", category=["debt", "flood"])
    assert dict(rows) == {k: v for k, v in by_category.items() if k in ("หนี้สิน", "อุทกภัย")}
    # over time: one series per category, adding up to the same totals
    _, rows = _run(warehouse, "warroom-grievances", "รับเรื่องตามหมวดหมู่ (ตามเวลา)")
    over_time: Counter[str] = Counter()
    for _t, category, n in rows:
        over_time[category] += n
    assert over_time == by_category


def test_reopen_and_escalation_rates(warehouse: Any, events: list[dict[str, Any]]) -> None:
    kinds = Counter(e["type"] for e in events)
    assert kinds["reopened"] and kinds["escalated"]
    _, rows = _run(warehouse, "warroom-grievances", "อัตราเปิดซ้ำ / ส่งต่อ (ทั้งช่วงเวลา)")
    assert rows[0] == pytest.approx(
        (
            100 * kinds["reopened"] / kinds["resolved"],
            100 * kinds["escalated"] / kinds["received"],
        ),
        abs=0.051,
    )
    _, rows = _run(warehouse, "warroom-national", "รับเรื่อง vs ยุติเรื่อง")
    assert (sum(r[1] for r in rows), sum(r[2] for r in rows)) == (
        kinds["received"],
        kinds["resolved"],
    )


def test_new_today_counts_received_since_bangkok_midnight(
    warehouse: Any, events: list[dict[str, Any]]
) -> None:
    to = warehouse.time_range[1]
    for end in (to, warehouse.past_ms):
        local = datetime.fromtimestamp(end / 1000, tz=BANGKOK)
        if local.hour < 2:
            # just after Bangkok midnight "today" holds (almost) nothing yet: look from three
            # hours earlier, where the day has events (the test ran red at 00:10 Bangkok)
            end -= 3 * 3_600_000
            local = datetime.fromtimestamp(end / 1000, tz=BANGKOK)
        midnight_ms = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000
        expected = sum(
            1
            for e in events
            if e["type"] == "received" and midnight_ms <= e["ms"] // 60_000 * 60_000 <= end
        )
        _, rows = _run(warehouse, "warroom-national", "เรื่องร้องเรียนใหม่วันนี้", to=end)
        assert expected > 0
        assert rows[0][0] == expected


def _surge_oracle(events: list[dict[str, Any]], to_s: int) -> tuple[Counter[str], Counter[str]]:
    """(received in the last hour, received in the same hour of the 4 weeks before) per
    district, by 1-minute bucket start."""
    last: Counter[str] = Counter()
    past: Counter[str] = Counter()
    for e in events:
        if e["type"] != "received":
            continue
        ago = to_s - e["ms"] // 60_000 * 60
        if ago < 0 or ago % WEEK_S >= 3600:
            continue
        weeks = ago // WEEK_S
        if weeks == 0:
            last[e["district_code"]] += 1
        elif weeks <= 4:
            past[e["district_code"]] += 1
    return last, past


def test_surge_table_equals_last_hour_against_the_same_hour_of_past_weeks(
    warehouse: Any, events: list[dict[str, Any]]
) -> None:
    title = "20 อำเภอที่เรื่องร้องเรียนพุ่งสูง (ชั่วโมงล่าสุด)"
    to = warehouse.time_range[1]
    with_baseline = compared = 0
    # the range end and every 6 hours before it, on this day and the four before: at night
    # (Bangkok) the synthetic intake is thin, an hour may have no event at all (then the panel
    # must be empty) and no district a baseline hour
    hours = (0, 6, 12, 18)
    ends = [to - h * 3_600_000 - k * 86_400_000 for h in hours for k in range(5)]
    for end in ends:
        last, past = _surge_oracle(events, end // 1000)
        if not last:
            assert _run(warehouse, "warroom-national", title, to=end)[1] == [], end
            continue
        compared += 1
        ratio = {d: (n + 1) / (past[d] / 4 + 1) for d, n in last.items()}

        def check(rows: list[Any], end: int = end, last: Any = last, past: Any = past) -> None:
            for r in rows:
                d = r[0]
                assert (r[3], r[4], r[5]) == (
                    last[d],
                    pytest.approx(past[d] / 4, abs=0.006),
                    pytest.approx((last[d] + 1) / (past[d] / 4 + 1), abs=0.006),
                ), (end, d)
            ratios = [r[5] for r in rows]
            assert ratios == sorted(ratios, reverse=True)

        _, rows = _run(warehouse, "warroom-national", title, to=end)
        assert len(rows) == min(20, len(last)) > 0
        check(rows)
        left_out = [v for d, v in ratio.items() if d not in {r[0] for r in rows}]
        assert not left_out or max(left_out) <= min(r[5] for r in rows) + 0.006
        # districts with a baseline rank low nationally: pick them on the district dashboard
        based = sorted(d for d in last if past[d])
        if based:
            _, rows = _run(warehouse, "warroom-district", title, to=end, district=based)
            assert len(rows) == min(20, len(based))
            assert {r[0] for r in rows} <= set(based)
            check(rows)
            with_baseline += len(rows)
    assert compared, "some hour before the range end had events"
    assert with_baseline, "some district has a baseline in the weeks before"
    # the burst district leads the table just after its burst
    after_burst = warehouse.end_ms - (BURST_MIN[1] - 1) * 60_000
    _, rows = _run(warehouse, "warroom-national", title, to=after_burst)
    assert rows[0][0] == BURST_DISTRICT and rows[0][3] >= BURST_SIZE


def test_stale_projects_equal_the_raw_reports(warehouse: Any) -> None:
    to = warehouse.time_range[1]
    latest = dash_oracle.latest_projects(warehouse)
    expected = {
        # dateDiff counts second boundaries
        pid: (to // 1000 - r["ms"] // 1000) // 86400
        for pid, r in latest.items()
        if r["status"] not in dash_oracle.INACTIVE and r["ms"] < to - dash_oracle.STALE_MS
    }
    names, rows = _run(warehouse, "warroom-projects", "โครงการที่ไม่รายงานเกิน 14 วัน")
    assert expected, "some projects stopped reporting 14 days ago"
    assert len(rows) == min(200, len(expected))
    got = {r[0]: r[names.index("days_silent")] for r in rows}
    assert got == {pid: expected[pid] for pid in got}
    assert all(STATUS_TH[latest[pid]["status"]] == r[5] for pid, r in zip(got, rows, strict=True))
    # one program selected
    program = latest[next(iter(expected))]["program"]
    _, rows = _run(warehouse, "warroom-projects", "โครงการที่ไม่รายงานเกิน 14 วัน", program=[program])
    assert {r[0] for r in rows} == {p for p in expected if latest[p]["program"] == program}
    assert {r[4] for r in rows} == {PROGRAM_TH[program]}


@pytest.mark.parametrize("when", ["now", "past"])
def test_projects_behind_plan_of_a_district(warehouse: Any, when: str) -> None:
    """Each project's latest report up to the end of the range: after the data, or at the end
    of the fixture's first phase (projects reported since are then read from their events)."""
    to = int(warehouse.time_range[1] if when == "now" else warehouse.past_ms)
    latest = dash_oracle.latest_projects(warehouse, to_ms=to)
    behind: dict[str, list[str]] = defaultdict(list)
    for pid, r in latest.items():
        gap = r["planned_pct"] - r["progress_pct"]
        if r["status"] not in dash_oracle.INACTIVE and gap > dash_oracle.BEHIND_PLAN_POINTS:
            behind[r["district_code"]].append(pid)
    district = max(behind, key=lambda d: (len(behind[d]), d))
    names, rows = _run(
        warehouse, "warroom-district", "โครงการที่ล่าช้ากว่าแผน", to=to, district=[district]
    )
    assert sorted(r[0] for r in rows) == sorted(behind[district])
    for r in rows:
        p = latest[r[0]]
        assert r[names.index("gap_pts")] == pytest.approx(
            p["planned_pct"] - p["progress_pct"], abs=0.051
        )
        assert r[names.index("allocated_thb")] == pytest.approx(p["budget_allocated_thb"])
    gaps = [r[names.index("gap_pts")] for r in rows]
    assert gaps == sorted(gaps, reverse=True)


def test_sla_compliance_per_province(warehouse: Any) -> None:
    """Each in-window resolution against the due time its case had when it was resolved (from
    a `received` step earlier in the partition): met, missed, or unknown without one."""
    due: dict[str, int] = {}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for e in dash_oracle.grievance_events(warehouse):  # per partition, in offset order
        gid = e["grievance_id"]
        if e["type"] == "received" and e["due_ms"] is not None:
            due[gid] = e["due_ms"]
        elif e["type"] == "resolved" and e["in_window"]:
            d = due.get(gid)
            outcome = "unknown" if d is None else ("met" if e["ms"] <= d else "missed")
            counts[e["district_code"][:2]][outcome] += 1
    _, rows = _run(warehouse, "warroom-grievances", "การแก้ไขตามกำหนด (SLA) รายจังหวัด")
    province_th = {p.code: p.name_th for p in geography.provinces()}
    expected = {}
    for code, c in counts.items():
        decided = c["met"] + c["missed"]
        pct = 100 * c["met"] / decided if decided else None  # the panel's is to 0.1
        expected[province_th[code]] = (c["met"], c["missed"], c["unknown"], pct)
    assert any(c["missed"] for c in counts.values()), "some resolutions come late"
    assert any(c["unknown"] for c in counts.values()), "cases opened before the simulation"
    got = {r[0]: (r[2], r[3], r[4], r[5]) for r in rows}
    assert got.keys() == expected.keys()
    for province, e in expected.items():
        assert got[province][:3] == e[:3], province
        assert got[province][3] == (None if e[3] is None else pytest.approx(e[3], abs=0.051))
    pcts = [r[5] for r in rows if r[5] is not None]
    assert pcts == sorted(pcts), "worst compliance first"
