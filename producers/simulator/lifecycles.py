"""Grievance case lifecycles: the ordered steps of one case, from received to closed (or not)."""

from __future__ import annotations

import math
import random
from typing import Final

from producers.simulator.model import DAY_MS, HOUR_MS, next_office_time

__all__ = ["AGENCIES", "plan_case"]

#: who a case is assigned to, by category (Thai, as the centres write it)
AGENCIES: Final[dict[str, tuple[str, ...]]] = {
    "land": ("สำนักงานที่ดินจังหวัด", "ที่ว่าการอำเภอ"),
    "debt": ("ศูนย์ดำรงธรรมอำเภอ", "สถานีตำรวจภูธร"),
    "flood": ("สำนักงานป้องกันและบรรเทาสาธารณภัยจังหวัด", "องค์การบริหารส่วนตำบล"),
    "drought": ("สำนักงานป้องกันและบรรเทาสาธารณภัยจังหวัด", "สำนักงานชลประทาน"),
    "wastewater": ("เทศบาล", "สำนักงานทรัพยากรธรรมชาติและสิ่งแวดล้อมจังหวัด"),
    "environment": ("สำนักงานทรัพยากรธรรมชาติและสิ่งแวดล้อมจังหวัด", "สำนักงานอุตสาหกรรมจังหวัด"),
    "utilities": ("การไฟฟ้าส่วนภูมิภาค", "การประปาส่วนภูมิภาค", "องค์การบริหารส่วนตำบล"),
    "misconduct": ("สำนักงานจังหวัด", "ที่ว่าการอำเภอ"),
    "consumer": ("สำนักงานคุ้มครองผู้บริโภคจังหวัด", "สำนักงานพาณิชย์จังหวัด"),
    "drugs": ("สถานีตำรวจภูธร", "ที่ว่าการอำเภอ"),
    "gambling": ("สถานีตำรวจภูธร", "ที่ว่าการอำเภอ"),
    "poverty": ("สำนักงานพัฒนาชุมชนอำเภอ", "สำนักงานพัฒนาสังคมและความมั่นคงของมนุษย์จังหวัด"),
    "other": ("ศูนย์ดำรงธรรมอำเภอ",),
}

_LN2: Final = math.log(2)


def _after(rng: random.Random, median_hours: float, sigma: float = 0.8) -> int:
    """A lognormal delay in ms with the given median."""
    return int(rng.lognormvariate(math.log(median_hours), sigma) * HOUR_MS) + 60_000


def plan_case(rng: random.Random, t0: int, due_ms: int, urgent: bool) -> list[tuple[int, str]]:
    """The steps of one case as (occurred ms, type), strictly increasing in time.

    Urgent cases are assigned around the clock except about 3 % that wait for office hours.
    Outcomes: about 5 % rejected (not a matter for the centre), 9 % never closed (stuck after
    assignment; they go overdue past due_at), the rest resolved and closed, some forwarded,
    escalated or reopened on the way.
    """
    steps: list[tuple[int, str]] = [(t0, "received")]
    t = t0

    def step(delay: int, kind: str, office: bool = True) -> None:
        nonlocal t
        when = t + delay
        if office:
            when = next_office_time(when, rng)
        t = max(when, t + 1000)
        steps.append((t, kind))

    fate = rng.random()
    if fate < 0.05:
        step(_after(rng, 20), "rejected")
        return steps
    if urgent and rng.random() >= 0.03:
        # the 1567 duty officer assigns urgent cases around the clock; the few left for the
        # morning shift are what the "urgent unassigned" alert is for
        step(_after(rng, 1.0), "assigned", office=False)
    else:
        step(_after(rng, 1.0 if urgent else 4.0), "assigned")
    if fate < 0.09:
        return steps  # never acted upon: stays open, goes overdue
    step(_after(rng, 6 if urgent else 20), "in_progress")
    if fate < 0.14:
        return steps  # stuck in progress
    if rng.random() < 0.12:
        step(_after(rng, 24), "forwarded")
    if rng.random() < (0.25 if urgent else 0.05):
        step(_after(rng, 24), "escalated")
    # resolution time from receipt; some miss their SLA
    resolve_at = t0 + _after(rng, 30 if urgent else 130, 0.9)
    step(max(resolve_at - t, 60_000), "resolved")
    if rng.random() < 0.07:
        # the complainant is not satisfied: the case comes back and is handled again
        step(_after(rng, 48, 0.6), "reopened", office=False)
        step(_after(rng, 12), "in_progress")
        step(_after(rng, 72), "resolved")
    step(_after(rng, 30, 0.6), "closed")
    return steps


def due_ms(t0: int, days: int) -> int:
    return t0 + days * DAY_MS
