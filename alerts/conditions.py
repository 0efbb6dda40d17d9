"""Rule conditions: what each kind of rule measures in one district's data at a given time."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from alerts.officehours import office_ms_between
from alerts.rules import Kind, Rule
from alerts.state import HOUR_MIN, MINUTE_MS, DistrictData, HourRing, Selector
from streams.timeutil import BANGKOK, format_bangkok, from_ms

__all__ = ["Measurement", "evaluate", "fiscal_quarter_days_left"]

WEEK_MIN = 7 * 24 * 60
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Measurement:
    """The state of one alert series at one evaluation: the numbers and the verdict."""

    firing: bool
    value: float
    threshold: float
    fields: Mapping[str, Any] = field(default_factory=dict)  # extra numbers for the summary


#: None = cannot tell (not enough data): the alert keeps its state
Result = dict[str, Measurement | None]
Condition = Callable[[Rule, DistrictData, int, int, Collection[str]], Result]


def evaluate(
    rule: Rule, data: DistrictData, now_ms: int, coverage_ms: int, dims: Collection[str]
) -> Result:
    """Measure `rule` in one district at `now_ms`.

    `coverage_ms` is when the engine's data starts (history before it is unknown, not zero);
    `dims` are dimensions with a live alert, so that they are measured even without new data.
    """
    return _KINDS[rule.kind](rule, data, now_ms, coverage_ms, dims)


# --- surge ----------------------------------------------------------------------------------


def _overlap_sum(ring: HourRing | None, first: int, last: int) -> float:
    """Count in minutes [first, last] from hourly sums, assuming a uniform rate within an hour
    (exact when the window is aligned to whole hours)."""
    if ring is None:
        return 0.0
    total = 0.0
    for hour in range(first // HOUR_MIN, last // HOUR_MIN + 1):
        lo = max(first, hour * HOUR_MIN)
        hi = min(last, hour * HOUR_MIN + HOUR_MIN - 1)
        total += ring.get(hour) * (hi - lo + 1) / HOUR_MIN
    return total


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def baseline(
    rule: Rule, ring: HourRing | None, now_minute: int, coverage_ms: int
) -> tuple[float, float, int] | None:
    """(mean, population stddev, weeks used; 0 = trailing-hours fallback) or None."""
    p = rule.params
    window = p["window_ms"] // MINUTE_MS
    covered_from = coverage_ms  # an hour counts only when it started at or after this

    def covered(first_minute: int) -> bool:
        return (first_minute // HOUR_MIN) * HOUR_MIN * MINUTE_MS >= covered_from

    weeks: list[float] = []
    for w in range(1, p["baseline_weeks"] + 1):
        last = now_minute - w * WEEK_MIN
        first = last - window + 1
        if covered(first):
            weeks.append(_overlap_sum(ring, first, last))
    if len(weeks) >= p["min_weeks"]:
        mean, std = _mean_std(weeks)
        return mean, std, len(weeks)
    if p["fallback_hours"]:
        start_hour = (now_minute - window + 1) // HOUR_MIN
        hours = [
            (ring.get(h) if ring else 0.0) * window / HOUR_MIN
            for h in range(start_hour - p["fallback_hours"], start_hour)
            if h * HOUR_MS >= covered_from
        ]
        if len(hours) >= p["min_fallback_hours"]:
            mean, std = _mean_std(hours)
            return mean, std, 0
    return None


def _surge(
    rule: Rule, data: DistrictData, now_ms: int, coverage_ms: int, dims: Collection[str]
) -> Result:
    p = rule.params
    family = data.family(Selector.of(rule))
    now_minute = now_ms // MINUTE_MS
    window = p["window_ms"] // MINUTE_MS
    out: Result = {}
    for dim in set(family) | set(dims):
        series = family.get(dim)
        current = series.window_sum(now_minute - window + 1, now_minute) if series else 0.0
        cached = series.baselines.get(rule.id) if series else None
        if cached is not None and cached[:2] == (now_minute, coverage_ms):
            base = cached[2]
        else:
            base = baseline(rule, series.ring if series else None, now_minute, coverage_ms)
            if series is not None:
                series.baselines[rule.id] = (now_minute, coverage_ms, base)
        if base is None:
            out[dim] = None
            continue
        mean, std, weeks = base
        stat = {"mean": mean, "stddev": mean + p["k"] * std, "ratio": p["ratio"] * mean}[
            p["method"]
        ]
        firing = current >= p["min_count"] and current > stat
        out[dim] = Measurement(
            firing,
            current,
            max(stat, float(p["min_count"])),
            {"baseline": mean, "weeks": weeks, "window_hours": window / HOUR_MIN},
        )
    return out


# --- fixed thresholds -----------------------------------------------------------------------


def _threshold(
    rule: Rule, data: DistrictData, now_ms: int, coverage_ms: int, dims: Collection[str]
) -> Result:
    p = rule.params
    if rule.is_gauge:
        values = data.gauge_sums(rule.metric, rule)
    else:
        now_minute = now_ms // MINUTE_MS
        first = now_minute - p["window_ms"] // MINUTE_MS + 1
        family = data.family(Selector.of(rule))
        values = {dim: s.window_sum(first, now_minute) for dim, s in family.items()}
    threshold = p["threshold"]
    out: Result = {}
    for dim in set(values) | set(dims):
        v = values.get(dim, 0.0)
        firing = v > threshold if p["op"] == "above" else v < threshold
        extra = {"value_hours": v / 3600, "threshold_hours": threshold / 3600}
        out[dim] = Measurement(firing, v, threshold, extra)
    return out


def _mean_gap(
    rule: Rule, data: DistrictData, now_ms: int, coverage_ms: int, dims: Collection[str]
) -> Result:
    p = rule.params
    planned = data.gauge_sums("project_planned_pct_sum", rule)
    progress = data.gauge_sums("project_progress_pct_sum", rule)
    active = data.gauge_sums("project_active", rule)
    out: Result = {}
    for dim in set(active) | set(dims):
        n = active.get(dim, 0.0)
        gap = (planned.get(dim, 0.0) - progress.get(dim, 0.0)) / n if n > 0 else 0.0
        firing = n >= p["min_projects"] and gap > p["points"]
        out[dim] = Measurement(firing, gap, p["points"], {"active": n})
    return out


def fiscal_quarter_days_left(now_ms: int) -> int:
    """Days from today (Asia/Bangkok) to the first day of the next quarter. Thai fiscal
    quarters (Q1 Oct-Dec ... Q4 Jul-Sep) end where calendar quarters end."""
    today = from_ms(now_ms).astimezone(BANGKOK).date()
    month = (today.month - 1) // 3 * 3 + 4
    nxt = date(today.year + (month > 12), (month - 1) % 12 + 1, 1)
    return (nxt - today).days


def _fiscal_year_text(now_ms: int) -> str:
    local = from_ms(now_ms).astimezone(BANGKOK)
    return str(local.year + 543 + (local.month >= 10))


def _disbursement(
    rule: Rule, data: DistrictData, now_ms: int, coverage_ms: int, dims: Collection[str]
) -> Result:
    p = rule.params
    fy = _fiscal_year_text(now_ms)
    planned = data.gauge_sums("project_budget_planned_disbursed_thb", rule, extra_dim2=fy)
    disbursed = data.gauge_sums("project_budget_disbursed_thb", rule, extra_dim2=fy)
    days_left = fiscal_quarter_days_left(now_ms)
    near_end = days_left <= 7 * p["weeks_before_quarter_end"]
    out: Result = {}
    for dim in set(planned) | set(dims):
        plan = planned.get(dim, 0.0)
        done = disbursed.get(dim, 0.0)
        pct = 100.0 * done / plan if plan > 0 else 100.0
        firing = near_end and plan > 0 and plan >= p["min_planned_thb"] and pct < p["min_ratio_pct"]
        extra = {"disbursed_thb": done, "planned_thb": plan, "days_left": days_left}
        out[dim] = Measurement(firing, pct, p["min_ratio_pct"], extra)
    return out


def _silent(
    rule: Rule, data: DistrictData, now_ms: int, coverage_ms: int, dims: Collection[str]
) -> Result:
    p = rule.params
    last = data.last_event_ms
    if last is None:
        return {}
    hours = office_ms_between(last, now_ms, p["office_start_min"], p["office_end_min"]) / HOUR_MS
    extra = {"last_event": format_bangkok(last)}
    return {"": Measurement(hours > p["office_hours"], hours, p["office_hours"], extra)}


_KINDS: dict[Kind, Condition] = {
    Kind.SURGE: _surge,
    Kind.THRESHOLD: _threshold,
    Kind.MEAN_GAP: _mean_gap,
    Kind.DISBURSEMENT: _disbursement,
    Kind.SILENT: _silent,
}
