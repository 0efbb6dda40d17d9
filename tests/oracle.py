"""An independent oracle: the metrics warroom must produce, computed in plain Python from the
records as they sit in Kafka. It shares no code with streams/ (only the written rules):

- per topic-partition, in offset order; bad payloads are known from the simulator's labels;
- a duplicate is an event_id already seen earlier in the same topic-partition;
- the watermark is the highest occurred_at so far; an event more than `late` behind it is
  late, more than `grace` behind it too late (counted, its 1-minute bucket not updated);
- quality counts are per source, not per district, except rejections: a rejected record's
  district is its district_code when that is a real district, its source the source string
  when it is a system name (1-64 ASCII letters, digits, _ . : / -, not starting with a sign,
  fewer than 9 digits: no phone number), else ''; an oversized payload is not parsed at all;
- quality rows go to minute(max(t, watermark - grace)) with t = occurred_at (or the Kafka
  timestamp for rejected records);
- a case's status is its latest step by (occurred_at, lifecycle order); resolution time needs
  the received step to have been seen before the resolved one;
- a project's state is its latest report by occurred_at (a tie goes to the later offset);
- gauges are taken at the partition's final watermark.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import geothai
import orjson

ICT = timezone(timedelta(hours=7))
LIFECYCLE = [
    "received",
    "assigned",
    "in_progress",
    "forwarded",
    "escalated",
    "reopened",
    "resolved",
    "rejected",
    "closed",
]
OPEN = {"received", "assigned", "in_progress", "forwarded", "reopened", "escalated"}
LE = [3600, 14400, 86400, 259200, 604800, 1296000, 2592000]
QUARTERS = (0.30, 0.52, 0.75, 0.93)


def system_name(s: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/-")
    return (
        0 < len(s) <= 64
        and set(s) <= allowed
        and s[0].isalnum()
        and sum(ch.isdigit() for ch in s) < 9
    )


def to_ms(text: str) -> int:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ICT)
    return round(dt.timestamp() * 1000)


@dataclass
class Rec:
    """A record as read back from Kafka."""

    stream: str
    partition: int
    offset: int
    timestamp: int
    value: bytes


@dataclass
class Expected:
    buckets: dict[tuple[str, str, str, str, int], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    quality: dict[tuple[str, str, str, str, str, int], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    gauges: dict[tuple[str, str, str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    accepted_ids: set[str] = field(default_factory=set)
    rejected: int = 0
    duplicates: int = 0
    consumed: int = 0


def _planned_fraction(fy_be: int, at_ms: int) -> float:
    year = fy_be - 543 - 1
    bounds = [datetime(year, 10, 1, tzinfo=ICT)]
    for month, y in ((1, year + 1), (4, year + 1), (7, year + 1), (10, year + 1)):
        bounds.append(datetime(y, month, 1, tzinfo=ICT))
    at = datetime.fromtimestamp(at_ms / 1000, ICT)
    if at < bounds[0]:
        return 0.0
    if at >= bounds[4]:
        return QUARTERS[3]
    for q in range(4):
        if at < bounds[q + 1]:
            prev = QUARTERS[q - 1] if q else 0.0
            frac = (at - bounds[q]) / (bounds[q + 1] - bounds[q])
            return prev + (QUARTERS[q] - prev) * frac
    raise AssertionError


def compute(
    records: Iterable[Rec],
    bad_payloads: dict[bytes, str],
    *,
    grace_s: int,
    late_s: int,
    stale_days: int = 14,
) -> Expected:
    """`bad_payloads`: payload -> the rejection reason the simulator made it for."""
    exp = Expected()
    grace = grace_s * 1000
    late = late_s * 1000
    by_tp: dict[tuple[str, int], list[Rec]] = defaultdict(list)
    for r in records:
        by_tp[(r.stream, r.partition)].append(r)
    for (stream, _partition), recs in by_tp.items():
        recs.sort(key=lambda r: r.offset)
        wm = 0
        seen: set[str] = set()
        cases: dict[tuple[str, str], dict[str, Any]] = {}
        projects: dict[tuple[str, str], list[Any]] = {}
        last_event: dict[str, int] = {}
        for r in recs:
            exp.consumed += 1
            reason = bad_payloads.get(r.value)
            if reason is not None:
                exp.rejected += 1
                # an oversized payload is not parsed: its district and source stay unknown
                ev = _try_json(r.value) if reason != "oversized" else None
                district = ""
                source = ""
                if isinstance(ev, dict):
                    d = ev.get("district_code")
                    if isinstance(d, str) and geothai.district(d) is not None:
                        district = d
                    s = ev.get("source")
                    source = s if isinstance(s, str) and system_name(s) else ""
                minute = max(r.timestamp, wm - grace) // 60000
                exp.quality[(district, stream, source, "rejected", reason, minute)] += 1
                continue
            ev = orjson.loads(r.value)
            eid = ev["event_id"]
            ms = to_ms(ev["occurred_at"])
            district = ev["district_code"]
            source = ev["source"]
            qminute = max(ms, wm - grace) // 60000
            if eid in seen:
                exp.duplicates += 1
                exp.quality[("", stream, source, "duplicate", "", qminute)] += 1
                continue
            seen.add(eid)
            exp.accepted_ids.add(eid)
            exp.quality[("", stream, source, "accepted", "", qminute)] += 1
            in_window = True
            if ms > wm:
                wm = ms
            elif wm - ms > late:
                if ms < wm - grace:
                    in_window = False
                    exp.quality[("", stream, source, "too_late", "", qminute)] += 1
                else:
                    exp.quality[("", stream, source, "late", "", qminute)] += 1
            last_event[district] = max(last_event.get(district, 0), ms)
            minute = ms // 60000
            if stream == "grievance":
                _grievance(exp, cases, ev, ms, minute, in_window)
            else:
                key = (district, ev["project_id"])
                old = projects.get(key)
                if old is None or ms >= old[0]:
                    projects[key] = [ms, ev]
                if in_window:
                    exp.buckets[
                        (district, "project_report", ev["program"], ev["status"], minute)
                    ] += 1
        _gauges(exp, stream, cases, projects, last_event, wm, stale_days)
    return exp


def _try_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _grievance(
    exp: Expected,
    cases: dict[tuple[str, str], dict[str, Any]],
    ev: dict[str, Any],
    ms: int,
    minute: int,
    in_window: bool,
) -> None:
    district = ev["district_code"]
    typ = ev["type"]
    cat = ev["category"]
    key = (district, ev["grievance_id"])
    due = to_ms(ev["due_at"]) if ev.get("due_at") else None
    case = cases.get(key)
    if case is None:
        case = {
            "status": typ,
            "at": ms,
            "category": cat,
            "priority": ev["priority"],
            "received": ms if typ == "received" else None,
            "due": due,
        }
        cases[key] = case
    else:
        if typ == "received":
            if case["received"] is None or ms < case["received"]:
                case["received"] = ms
            if due is not None:
                case["due"] = due
        elif case["due"] is None and due is not None:
            case["due"] = due
        newer = ms > case["at"] or (
            ms == case["at"] and LIFECYCLE.index(typ) >= LIFECYCLE.index(case["status"])
        )
        if newer:
            case.update(status=typ, at=ms, category=cat, priority=ev["priority"])
    if not in_window:
        return
    b = exp.buckets
    if typ in ("forwarded", "resolved", "reopened", "escalated", "rejected"):  # docs/schema.md
        b[(district, "grievance_event", typ, cat, minute)] += 1
    if typ == "received":
        b[(district, "grievance_received", cat, ev["channel"], minute)] += 1
    if typ == "resolved":
        if case["received"] is not None and ms >= case["received"]:
            secs = (ms - case["received"]) / 1000
            b[(district, "grievance_resolved_seconds_sum", cat, "", minute)] += secs
            b[(district, "grievance_resolved_seconds_count", cat, "", minute)] += 1
            for le in LE:
                if secs <= le:
                    b[(district, "grievance_resolved_seconds_bucket", cat, str(le), minute)] += 1
            b[(district, "grievance_resolved_seconds_bucket", cat, "+Inf", minute)] += 1
        due_at = case["due"]
        sla = "unknown" if due_at is None else ("met" if ms <= due_at else "missed")
        b[(district, "grievance_resolved_sla", cat, sla, minute)] += 1


def _gauges(
    exp: Expected,
    stream: str,
    cases: dict[tuple[str, str], dict[str, Any]],
    projects: dict[tuple[str, str], list[Any]],
    last_event: dict[str, int],
    clock: int,
    stale_days: int,
) -> None:
    g = exp.gauges
    oldest: dict[str, int] = {}
    for (district, _), c in cases.items():
        if c["status"] not in OPEN:
            continue
        g[(district, "grievance_open", c["category"], c["priority"])] += 1
        if c["due"] is not None and c["due"] < clock:
            g[(district, "grievance_overdue", c["category"], c["priority"])] += 1
        if c["priority"] == "urgent" and c["status"] == "received":
            g[(district, "grievance_urgent_unassigned", c["category"], "")] += 1
            since = c["received"] if c["received"] is not None else c["at"]
            oldest[district] = max(oldest.get(district, 0), clock - since)
    for district, age in oldest.items():
        if age > 0:
            g[(district, "grievance_urgent_unassigned_max_age_seconds", "", "")] += age / 1000
    for (district, _), (ms, ev) in projects.items():
        program = ev["program"]
        fy = str(ev["fiscal_year"])
        g[(district, "project_count", program, ev["status"])] += 1
        g[(district, "project_budget_allocated_thb", program, fy)] += ev["budget_allocated_thb"]
        g[(district, "project_budget_obligated_thb", program, fy)] += ev["budget_obligated_thb"]
        g[(district, "project_budget_disbursed_thb", program, fy)] += ev["budget_disbursed_thb"]
        g[(district, "project_budget_planned_disbursed_thb", program, fy)] += ev[
            "budget_allocated_thb"
        ] * _planned_fraction(ev["fiscal_year"], clock)
        if ev["status"] in ("completed", "cancelled"):
            continue
        g[(district, "project_active", program, "")] += 1
        g[(district, "project_progress_pct_sum", program, "")] += ev["progress_pct"]
        g[(district, "project_planned_pct_sum", program, "")] += ev["planned_pct"]
        if ev["planned_pct"] - ev["progress_pct"] > 10:
            g[(district, "project_behind_plan", program, "")] += 1
        if clock - ms > stale_days * 86_400_000:
            g[(district, "project_stale", program, "")] += 1
    for district, ms in last_event.items():
        g[(district, "last_event_age_seconds", stream, "")] += (clock - ms) / 1000
