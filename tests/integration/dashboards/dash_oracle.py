"""Expected gauge values recomputed in plain Python from the raw event rows of the store.

Independent of the pipeline's state code and of the panels' SQL; only the written rules:
- a grievance case's state is its latest step by (occurred_at, lifecycle order); its due time
  comes from its `received` step; open = one of the contract's open types; overdue = open and
  due before the clock; urgent unassigned = urgent and still `received`;
- a project's state is its latest report by occurred_at (a tie goes to the later offset);
  active = not completed/cancelled; behind plan = planned - progress > 10 points; stale = no
  report for 14 days; planned disbursement = allocated x the cumulative quarterly plan;
- the clock of a topic-partition is its watermark: the highest occurred_at it accepted (the
  fixture's data ends well before the wall clock, so no partition is "live").

`limits` ((raw table, partition) -> highest offset) restricts the events to a prefix of each
partition (the fixture's phase 1), for a time range that ends in the past.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from streams import geography
from streams.contract import OPEN_TYPES

ICT = timezone(timedelta(hours=7))
RANK = {
    t: i
    for i, t in enumerate(
        (
            "received",
            "assigned",
            "in_progress",
            "forwarded",
            "escalated",
            "reopened",
            "resolved",
            "rejected",
            "closed",
        )
    )
}
STALE_MS = 14 * 86_400_000
BEHIND_PLAN_POINTS = 10.0
QUARTER_TARGETS = (0.30, 0.52, 0.75, 0.93)
INACTIVE = ("completed", "cancelled")

Key = tuple[str, str, str, str]  # district, metric, dim1, dim2
Limits = dict[tuple[str, int], int] | None


def region_of(district: str) -> str:
    d = geography.district(district)
    assert d is not None
    return next(r for r, (_, _, codes) in geography.REGIONS.items() if d.province_code in codes)


def _rows(warehouse: Any, sql: str) -> list[tuple[Any, ...]]:
    return warehouse.query(sql)[1]


def _within(table: str, partition: int, offset: int, limits: Limits) -> bool:
    return limits is None or offset <= limits.get((table, partition), -1)


def grievance_gauges(warehouse: Any, limits: Limits = None) -> dict[Key, float]:
    """grievance_open, grievance_overdue, grievance_urgent_unassigned per district and dims."""
    rows = _rows(
        warehouse,
        "SELECT district_code, kafka_partition, kafka_offset, grievance_id, type, category, "
        "priority, toUnixTimestamp64Milli(occurred_at), toUnixTimestamp64Milli(due_at) "
        "FROM grievance_events FINAL",
    )
    clock: dict[int, int] = defaultdict(int)
    latest: dict[tuple[str, str], tuple[tuple[int, int], str, str, str, int]] = {}
    due: dict[tuple[str, str], int] = {}
    partition_of: dict[str, int] = {}
    for district, part, offset, gid, typ, cat, prio, ms, due_ms in rows:
        if not _within("grievance_events", part, offset, limits):
            continue
        clock[part] = max(clock[part], ms)
        partition_of[district] = part
        key = (district, gid)
        order = (ms, RANK[typ])
        if key not in latest or order >= latest[key][0]:
            latest[key] = (order, typ, cat, prio, ms)
        if typ == "received" and due_ms is not None:
            due[key] = due_ms
    out: dict[Key, float] = defaultdict(float)
    for (district, gid), (_, typ, cat, prio, _ms) in latest.items():
        if typ not in OPEN_TYPES:
            continue
        out[(district, "grievance_open", cat, prio)] += 1
        d = due.get((district, gid))
        if d is not None and d < clock[partition_of[district]]:
            out[(district, "grievance_overdue", cat, prio)] += 1
        if prio == "urgent" and typ == "received":
            out[(district, "grievance_urgent_unassigned", cat, "")] += 1
    return dict(out)


def planned_fraction(fy_be: int, at_ms: int) -> float:
    """Cumulative disbursement plan: linear within each quarter up to its target."""
    year = fy_be - 543 - 1
    bounds = [datetime(year, 10, 1, tzinfo=ICT)]
    bounds += [datetime(year + 1, m, 1, tzinfo=ICT) for m in (1, 4, 7, 10)]
    at = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(ICT)
    if at < bounds[0]:
        return 0.0
    for q in range(4):
        if at < bounds[q + 1]:
            prev = QUARTER_TARGETS[q - 1] if q else 0.0
            frac = (at - bounds[q]) / (bounds[q + 1] - bounds[q])
            return prev + (QUARTER_TARGETS[q] - prev) * frac
    return QUARTER_TARGETS[3]


def project_gauges(warehouse: Any, limits: Limits = None) -> dict[Key, float]:
    """project_count, project_active, the pct sums, behind plan, stale and budgets."""
    rows = _rows(
        warehouse,
        "SELECT district_code, kafka_partition, kafka_offset, project_id, program, "
        "fiscal_year, status, progress_pct, planned_pct, budget_allocated_thb, "
        "budget_obligated_thb, budget_disbursed_thb, toUnixTimestamp64Milli(occurred_at) "
        "FROM project_events FINAL",
    )
    clock: dict[int, int] = defaultdict(int)
    latest: dict[tuple[str, str], tuple[tuple[int, int], tuple[Any, ...], int]] = {}
    for district, part, offset, pid, *report, ms in rows:
        if not _within("project_events", part, offset, limits):
            continue
        clock[part] = max(clock[part], ms)
        key = (district, pid)
        if key not in latest or (ms, offset) > latest[key][0]:
            latest[key] = ((ms, offset), tuple(report), part)
    out: dict[Key, float] = defaultdict(float)
    for (district, _), ((ms, _), report, part) in latest.items():
        program, fy, status, progress, planned, alloc, oblig, disb = report
        now = clock[part]
        fy_text = str(fy)
        out[(district, "project_count", program, status)] += 1
        out[(district, "project_budget_allocated_thb", program, fy_text)] += alloc
        out[(district, "project_budget_obligated_thb", program, fy_text)] += oblig
        out[(district, "project_budget_disbursed_thb", program, fy_text)] += disb
        out[(district, "project_budget_planned_disbursed_thb", program, fy_text)] += (
            alloc * planned_fraction(fy, now)
        )
        if status in INACTIVE:
            continue
        out[(district, "project_active", program, "")] += 1
        out[(district, "project_progress_pct_sum", program, "")] += progress
        out[(district, "project_planned_pct_sum", program, "")] += planned
        if planned - progress > BEHIND_PLAN_POINTS:
            out[(district, "project_behind_plan", program, "")] += 1
        if now - ms > STALE_MS:
            out[(district, "project_stale", program, "")] += 1
    return dict(out)


def total(gauges: dict[Key, float], metric: str, **match: Any) -> float:
    """Sum of a metric over the keys whose district / dim1 / dim2 pass the filters (each a
    callable or a value)."""
    out = 0.0
    for (district, m, dim1, dim2), v in gauges.items():
        if m != metric:
            continue
        fields = {"district": district, "dim1": dim1, "dim2": dim2}
        ok = True
        for name, want in match.items():
            have = fields[name]
            ok = ok and (want(have) if callable(want) else have == want)
        if ok:
            out += v
    return out


GRACE_MS = 3_600_000  # WARROOM_GRACE_SECONDS default


def grievance_events(warehouse: Any) -> list[dict[str, Any]]:
    """Every accepted grievance event of the store, with `in_window`: False for an event more
    than the grace period behind its partition's watermark (counted as too late: it changes
    the case, but not the 1-minute buckets)."""
    names, rows = warehouse.query(
        "SELECT kafka_partition, kafka_offset, district_code, grievance_id, type, category, "
        "channel, priority, toUnixTimestamp64Milli(occurred_at) AS ms, "
        "toUnixTimestamp64Milli(due_at) AS due_ms FROM grievance_events FINAL"
    )
    out = []
    wm: dict[int, int] = defaultdict(int)
    for row in sorted(rows):
        ev = dict(zip(names, row, strict=True))
        part, ms = ev["kafka_partition"], ev["ms"]
        wm[part] = max(wm[part], ms)
        ev["in_window"] = ms >= wm[part] - GRACE_MS
        out.append(ev)
    return out


def latest_projects(
    warehouse: Any, district: str | None = None, to_ms: int | None = None
) -> dict[str, dict[str, Any]]:
    """project_id -> its latest report (by occurred_at; a tie goes to the later offset), among
    the reports that occurred at or before to_ms when given."""
    where = f"WHERE district_code = '{district}'" if district else ""
    names, rows = warehouse.query(
        "SELECT project_id, district_code, kafka_offset, program, status, fiscal_year, "
        "progress_pct, planned_pct, budget_allocated_thb, budget_obligated_thb, "
        "budget_disbursed_thb, sdg_goals, tpmap_dimensions, "
        f"toUnixTimestamp64Milli(occurred_at) AS ms FROM project_events FINAL {where}"
    )
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        r = dict(zip(names, row, strict=True))
        if to_ms is not None and r["ms"] > to_ms:
            continue
        old = out.get(r["project_id"])
        if old is None or (r["ms"], r["kafka_offset"]) > (old["ms"], old["kafka_offset"]):
            out[r["project_id"]] = r
    return out


def selected(
    reports: dict[str, dict[str, Any]],
    program: list[str] | None = None,
    sdg: list[int] | None = None,
    tpmap: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The latest reports a selection keeps (None = All): its program is one of `program`, it
    serves one of the `sdg` goals, it addresses one of the `tpmap` dimensions."""
    return [
        r
        for r in reports.values()
        if (program is None or r["program"] in program)
        and (sdg is None or set(sdg) & set(r["sdg_goals"]))
        and (tpmap is None or set(tpmap) & set(r["tpmap_dimensions"]))
    ]


def project_panels(reports: list[dict[str, Any]], to_ms: int) -> dict[str, Any]:
    """What the projects dashboard shows for these latest reports at the range end to_ms."""
    active = [r for r in reports if r["status"] not in INACTIVE]
    n = len(active)
    progress = sum(r["progress_pct"] for r in active)
    planned = sum(r["planned_pct"] for r in active)
    summary = (
        n,
        sum(1 for r in active if r["planned_pct"] - r["progress_pct"] > BEHIND_PLAN_POINTS),
        sum(1 for r in active if r["ms"] < to_ms - STALE_MS),
        progress / n if n else None,
        (planned - progress) / n if n else None,
    )
    by_status: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    gap: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    budget: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    disbursement: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for r in reports:
        by_status[r["program"]][r["status"]] += 1
        alloc, disb = r["budget_allocated_thb"], r["budget_disbursed_thb"]
        plan = alloc * planned_fraction(r["fiscal_year"], to_ms)
        b = budget[(r["district_code"][:2], str(r["fiscal_year"]))]
        b[0] += alloc
        b[1] += r["budget_obligated_thb"]
        b[2] += disb
        b[3] += plan
        d = disbursement[r["program"]]
        d[0] += alloc
        d[1] += disb
        d[2] += plan
        if r["status"] not in INACTIVE:
            g = gap[r["program"]]
            g[0] += 1
            g[1] += r["progress_pct"]
            g[2] += r["planned_pct"]
    return {
        "summary": summary,
        "by_status": {p: dict(c) for p, c in by_status.items()},
        "gap": {p: (g[1] / g[0], g[2] / g[0]) for p, g in gap.items()},
        # (province, fiscal year) -> allocated, obligated, disbursed, planned %
        "budget": {
            k: (b[0], b[1], b[2], 100 * b[3] / b[0] if b[0] else None) for k, b in budget.items()
        },
        # program -> disbursed %, planned %
        "disbursement": {
            p: (100 * d[1] / d[0], 100 * d[2] / d[0]) for p, d in disbursement.items() if d[0]
        },
        "stale": {r["project_id"] for r in active if r["ms"] < to_ms - STALE_MS},
    }
