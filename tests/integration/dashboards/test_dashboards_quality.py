"""The data-quality dashboard against its oracles: what was produced (the simulator's labelled
items) for accepted / rejected / duplicate per reason and source, the raw event rows for late
events and silent districts, and no complainant identity in the dead letters it shows."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from dash_panels import PanelQuery, all_selected, clickhouse_queries, context, custom_options, run

from dashboards.macros import Variable
from dashboards.quality import REASON_TH
from streams import geography
from streams.reasons import Reason
from tests.oracle import system_name

pytestmark = pytest.mark.integration

QUERIES = clickhouse_queries()
UID = "warroom-quality"
GRACE_MS = 3_600_000  # WARROOM_GRACE_SECONDS default
LATE_MS = 60_000  # WARROOM_LATE_SECONDS default


def panel(title: str) -> PanelQuery:
    return next(q for q in QUERIES if q.uid == UID and q.title == title)


def _run(warehouse: Any, title: str, **selected: Any) -> tuple[list[str], list[Any]]:
    q = panel(title)
    variables = all_selected(UID, custom_options(UID))
    variables.update({k: Variable(v) for k, v in selected.items()})
    return run(warehouse, q.raw_sql, context(warehouse.time_range, variables))


def _source_of_rejected(item: Any) -> str:
    """The source a dead letter is counted under: the payload's string `source` when the
    payload is parsed at all and the source is a system name (tests/oracle.py)."""
    if item.reason in (Reason.MALFORMED_JSON, Reason.OVERSIZED):
        return ""
    try:
        obj = orjson.loads(item.payload)
    except orjson.JSONDecodeError:
        return ""
    source = obj.get("source") if isinstance(obj, dict) else None
    return source if isinstance(source, str) and system_name(source) else ""


@pytest.fixture(scope="module")
def produced(warehouse: Any) -> dict[str, Any]:
    """Per (source, stream): accepted, rejected, duplicate as the inputs say; rejections per
    reason."""
    by_source: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    for it in warehouse.items:
        if it.reason is not None:
            by_source[(_source_of_rejected(it), it.stream)]["rejected"] += 1
            reasons[it.reason.value] += 1
        elif it.is_duplicate:
            by_source[(it.event["source"], it.stream)]["duplicate"] += 1
        else:
            by_source[(it.event["source"], it.stream)]["accepted"] += 1
    return {"by_source": by_source, "reasons": reasons}


@pytest.fixture(scope="module")
def late_counts(warehouse: Any) -> Counter[tuple[str, str, str]]:
    """(stream, source, late | too_late) from the raw rows: per partition in offset order, the
    watermark is the highest occurred_at so far; an event more than LATE_MS behind it is late,
    more than GRACE_MS behind it too late."""
    out: Counter[tuple[str, str, str]] = Counter()
    for stream, table in (("grievance", "grievance_events"), ("project", "project_events")):
        _, rows = warehouse.query(
            "SELECT DISTINCT kafka_partition, kafka_offset, source, "
            f"toUnixTimestamp64Milli(occurred_at) FROM {table}"
        )
        wm: dict[int, int] = defaultdict(int)
        for part, _offset, source, ms in sorted(rows):
            if ms > wm[part]:
                wm[part] = ms
            elif wm[part] - ms > LATE_MS:
                out[(stream, source, "too_late" if ms < wm[part] - GRACE_MS else "late")] += 1
    return out


def test_totals_equal_what_was_produced(
    warehouse: Any, produced: dict[str, Any], late_counts: Counter[tuple[str, str, str]]
) -> None:
    names, rows = _run(warehouse, "เหตุการณ์ในช่วงเวลา")
    got = dict(zip(names, rows[0], strict=True))
    sums = Counter[str]()
    for c in produced["by_source"].values():
        sums.update(c)
    assert (got["accepted"], got["rejected"], got["duplicate"]) == (
        sums["accepted"],
        sums["rejected"],
        sums["duplicate"],
    )
    assert got["accepted"] + got["rejected"] + got["duplicate"] == len(warehouse.items)
    late = sum(n for (_, _, kind), n in late_counts.items() if kind == "late")
    too_late = sum(n for (_, _, kind), n in late_counts.items() if kind == "too_late")
    assert (got["late"], got["too_late"]) == (late, too_late)
    assert late > 0 and too_late > 0 and sums["duplicate"] > 0 and sums["rejected"] > 0
    total = got["accepted"] + got["rejected"] + got["duplicate"]
    assert got["rejected_pct"] == pytest.approx(round(100 * got["rejected"] / total, 2))
    # one stream selected: only its events
    names, rows = _run(warehouse, "เหตุการณ์ในช่วงเวลา", stream=["project"])
    got = dict(zip(names, rows[0], strict=True))
    projects = Counter[str]()
    for (_, stream), c in produced["by_source"].items():
        if stream == "project":
            projects.update(c)
    assert (got["accepted"], got["rejected"]) == (projects["accepted"], projects["rejected"])


def test_outcomes_over_time_add_up_to_the_totals(warehouse: Any) -> None:
    names, rows = _run(warehouse, "เหตุการณ์ในช่วงเวลา")
    totals = dict(zip(names, rows[0], strict=True))
    _, series = _run(warehouse, "รับเข้า vs ปฏิเสธ (ตามเวลา)")
    by_outcome: Counter[str] = Counter()
    for _time, outcome_th, n in series:
        by_outcome[outcome_th] += n
    assert by_outcome["รับเข้า"] == totals["accepted"]
    assert by_outcome["ปฏิเสธ"] == totals["rejected"]
    assert by_outcome["ซ้ำ"] == totals["duplicate"]
    _, series = _run(warehouse, "เหตุการณ์มาช้าและซ้ำ")
    assert sum(r[1] for r in series) == totals["late"]
    assert sum(r[2] for r in series) == totals["too_late"]
    assert sum(r[3] for r in series) == totals["duplicate"]


def test_rejections_by_reason_equal_the_bad_events_produced(
    warehouse: Any, produced: dict[str, Any]
) -> None:
    _, rows = _run(warehouse, "ปฏิเสธตามเหตุผล")
    expected = {REASON_TH[r]: n for r, n in produced["reasons"].items()}
    assert dict(rows) == expected
    assert len(expected) >= 10, "the simulator exercises most rejection reasons"


def test_quality_by_source_equals_what_each_source_sent(
    warehouse: Any, produced: dict[str, Any], late_counts: Counter[tuple[str, str, str]]
) -> None:
    names, rows = _run(warehouse, "คุณภาพตามแหล่งข้อมูล (source)")
    got = {
        (r[0], r[1]): dict(zip(names[2:], r[2:], strict=True)) for r in rows
    }  # (source_name, stream) -> columns
    expected = {}
    for (source, stream), c in produced["by_source"].items():
        late = late_counts[(stream, source, "late")] + late_counts[(stream, source, "too_late")]
        expected[(source or "(ไม่ระบุ)", stream)] = (
            c["accepted"],
            c["rejected"],
            c["duplicate"],
            late,
        )
    assert {
        k: (v["accepted"], v["rejected"], v["duplicate"], v["late"]) for k, v in got.items()
    } == (expected)
    pcts = [v["rejected_pct"] or 0 for v in got.values()]
    assert pcts == sorted(pcts, reverse=True), "worst rejection rate first"


def _silent_oracle(warehouse: Any, hours: int) -> tuple[dict[str, float], set[str]]:
    """(district -> hours silent, districts without any event in 30 days) at the range end,
    from the raw event rows of both streams."""
    to_s = warehouse.time_range[1] / 1000
    last: dict[str, float] = {}
    for table in ("grievance_events", "project_events"):
        _, rows = warehouse.query(
            f"SELECT district_code, toUnixTimestamp64Milli(max(occurred_at)) FROM {table} "
            "GROUP BY district_code"
        )
        for district, ms in rows:
            # the panel knows the last event to the second
            t = ms // 1000
            if to_s - 30 * 86400 < t <= to_s:
                last[district] = max(last.get(district, 0), t)
    every = {d.code for d in geography.districts()}
    silent = {d: round((to_s - t) / 3600, 1) for d, t in last.items() if t < to_s - hours * 3600}
    return silent, every - set(last)


@pytest.mark.parametrize("hours", [6, 24])
def test_silent_districts_equal_the_raw_event_oracle(warehouse: Any, hours: int) -> None:
    silent, no_data = _silent_oracle(warehouse, hours)
    assert silent, "small districts go quiet for hours in the simulated data"
    _, rows = _run(warehouse, "อำเภอที่ไม่ส่งข้อมูล", silent_hours=str(hours))
    got = {r[0]: r[4] for r in rows if r[4] is not None}
    assert len(rows) == min(300, len(silent) + len(no_data))
    hours_shown = [r[4] for r in rows if r[4] is not None]
    assert hours_shown == sorted(hours_shown, reverse=True), "longest silence first"
    # each shown district as silent as the raw events say (rounding to 0.1 h may differ)
    assert got.keys() <= silent.keys()
    for district, h in got.items():
        assert h == pytest.approx(silent[district], abs=0.11), district
    # and none left out that was silent longer than the least silent one shown
    if len(got) < len(silent):
        assert max(h for d, h in silent.items() if d not in got) <= min(got.values()) + 0.11
    else:
        assert {r[0] for r in rows if r[4] is None} == no_data
    _, counts = _run(warehouse, "อำเภอที่เงียบ", silent_hours=str(hours))
    assert counts == [(len(silent), len(no_data))]


def test_dead_letters_show_the_latest_rejections_without_personal_data(warehouse: Any) -> None:
    names, rows = _run(warehouse, "Dead letters ล่าสุด")
    bad = [it for it in warehouse.items if it.reason is not None]
    assert len(rows) == min(100, len(bad))
    times = [datetime.fromisoformat(str(r[0])).replace(tzinfo=UTC) for r in rows]
    assert times == sorted(times, reverse=True)
    assert {r[names.index("reason_th")] for r in rows} <= set(REASON_TH.values())
    # PDPA: no complainant identity of any produced event appears in what the panel shows
    secrets = set()
    for it in warehouse.items:
        person = (it.event or {}).get("complainant") if isinstance(it.event, dict) else None
        if isinstance(person, dict):
            secrets |= {str(v) for v in person.values() if isinstance(v, str) and len(v) >= 6}
    assert secrets, "the simulated events carry complainants"
    shown = "\n".join(str(v) for r in rows for v in r)
    assert not [s for s in secrets if s in shown]
