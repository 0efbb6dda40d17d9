"""Development projects per district and their weekly progress reports (CDD-style tracking)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from producers.simulator.model import DAY_MS, HOUR_MS, Country, local_weekday
from streams.contract import PROJECT_SCHEMA
from streams.timeutil import BANGKOK_OFFSET, fiscal_year_be

__all__ = ["PROGRAM_PROFILE", "Portfolio", "Project"]

_BKK_MS: Final = 7 * HOUR_MS
WEEK_MS: Final = 7 * DAY_MS

#: program -> (weight, median budget THB, SDG goals, TPMAP dimensions, counts households)
PROGRAM_PROFILE: Final[dict[str, tuple[float, float, tuple[int, ...], tuple[str, ...], bool]]] = {
    "kok_nong_na": (0.18, 190_000, (1, 2, 6), ("income", "living"), True),
    "otop_nawatwithi": (0.10, 800_000, (8, 11), ("income",), False),
    "sufficiency_village": (0.14, 300_000, (1, 2, 12), ("income", "living"), True),
    "poverty_household": (0.14, 250_000, (1, 10), ("income", "living", "health"), True),
    "strong_tambon": (0.08, 500_000, (11, 16), ("public_services",), False),
    "household_vegetables": (0.10, 60_000, (2, 3), ("health", "living"), True),
    "informal_debt": (0.06, 150_000, (1, 8, 16), ("income",), True),
    "water_management": (0.10, 3_000_000, (6, 13), ("living", "public_services"), False),
    "infrastructure": (0.07, 5_000_000, (9, 11), ("public_services",), False),
    "other": (0.03, 400_000, (17,), ("education",), False),
}


@dataclass(slots=True)
class Project:
    project_id: str
    district_code: str
    subdistrict_code: str | None
    program: str
    fiscal_year: int
    start_ms: int
    end_ms: int
    procurement_end_ms: int
    allocated: float
    performance: float  # < 1: slips behind plan
    stall_at_ms: int  # progress freezes from here (huge = never)
    silent_at_ms: int  # stops reporting from here (huge = never)
    cancel_at_ms: int
    report_weekday: int
    report_minute: int
    target_households: int | None
    sdg_goals: list[int]
    tpmap: list[str]
    progress: float = 0.0
    obligated: float = 0.0


_NEVER: Final = 1 << 62


class Portfolio:
    """All projects; ``report`` turns one due report into an event and says when the next is."""

    def __init__(self, rng: random.Random, country: Country, per_district: float) -> None:
        self._rng = rng
        self._country = country
        self._per_district = per_district
        programs = sorted(PROGRAM_PROFILE)
        self._programs = programs
        self._program_weights = [PROGRAM_PROFILE[p][0] for p in programs]

    def initial(self, start_ms: int) -> list[Project]:
        """The projects running (or about to start) when the simulation begins."""
        projects = []
        mean_weight = sum(self._country.weights.values()) / len(self._country.weights)
        for code in self._country.district_codes:
            n = max(1, round(self._per_district * self._country.weights[code] / mean_weight))
            for _ in range(n):
                begun = start_ms - int(self._rng.uniform(-60, 240) * DAY_MS)
                projects.append(self.new(code, begun))
        return projects

    def new(self, district_code: str, start_ms: int) -> Project:
        rng = self._rng
        program = rng.choices(self._programs, self._program_weights)[0]
        _, budget, sdg, tpmap, households = PROGRAM_PROFILE[program]
        duration = int(rng.uniform(120, 330) * DAY_MS)
        subs = self._country.subdistricts.get(district_code, [])
        fy = fiscal_year_be(datetime.fromtimestamp(start_ms / 1000, BANGKOK_OFFSET))
        fate = rng.random()
        return Project(
            project_id=f"PRJ-{district_code}-{fy}-{rng.getrandbits(32):08x}",
            district_code=district_code,
            subdistrict_code=rng.choice(subs) if subs and rng.random() < 0.6 else None,
            program=program,
            fiscal_year=fy,
            start_ms=start_ms,
            end_ms=start_ms + duration,
            procurement_end_ms=start_ms + int(duration * rng.uniform(0.05, 0.2)),
            allocated=round(budget * rng.lognormvariate(0, 0.5), -3),
            performance=rng.choice((1.0, 1.0, 0.97, 0.93, 0.85, 0.7, 0.55)),
            stall_at_ms=start_ms + int(duration * rng.uniform(0.2, 0.8)) if fate < 0.06 else _NEVER,
            silent_at_ms=start_ms + int(duration * rng.uniform(0.1, 0.9))
            if 0.06 <= fate < 0.10
            else _NEVER,
            cancel_at_ms=start_ms + int(duration * rng.uniform(0.1, 0.5))
            if 0.10 <= fate < 0.11
            else _NEVER,
            report_weekday=rng.randint(0, 4),
            report_minute=rng.randint(9 * 60, 16 * 60),
            target_households=rng.randint(20, 400) if households else None,
            sdg_goals=list(sdg),
            tpmap=list(tpmap),
        )

    def next_report_ms(self, p: Project, after_ms: int) -> int:
        """The project's weekly slot (its weekday and minute, Bangkok time) after ``after_ms``."""
        day = (after_ms + _BKK_MS) // DAY_MS * DAY_MS - _BKK_MS
        slot = day + p.report_minute * 60_000 + self._rng.randint(0, 59) * 1000
        slot += ((p.report_weekday - local_weekday(day)) % 7) * DAY_MS
        while slot <= after_ms:
            slot += WEEK_MS
        return slot

    def report(self, p: Project, ms: int) -> tuple[dict[str, Any], bool]:
        """The progress report due at ``ms`` (without event_id, occurred_at) and whether the
        project goes on reporting afterwards."""
        rng = self._rng
        span = p.end_ms - p.start_ms
        planned = min(100.0, max(0.0, (ms - p.start_ms) / span * 100))
        going_on = True
        if ms >= p.cancel_at_ms:
            status, going_on = "cancelled", False
        elif ms < p.start_ms:
            status = "not_started"
        elif ms < p.procurement_end_ms:
            status = "procurement"
        elif ms >= p.stall_at_ms:
            # a stalled project is written off after some months
            status = "stalled" if ms < p.stall_at_ms + 150 * DAY_MS else "cancelled"
            going_on = status == "stalled"
        else:
            work = (ms - p.procurement_end_ms) / max(1, p.end_ms - p.procurement_end_ms) * 100
            target = min(100.0, work * p.performance + rng.uniform(-3, 3))
            p.progress = max(p.progress, round(target, 1))
            if p.progress >= 100 or (planned >= 100 and p.performance >= 0.97):
                p.progress = 100.0
                status, going_on = "completed", False
            else:
                status = "delayed" if planned - p.progress > 10 else "on_track"
        if ms >= p.procurement_end_ms and p.obligated == 0:
            p.obligated = round(p.allocated * rng.uniform(0.6, 0.9), 2)
        if p.progress > 60:
            p.obligated = max(p.obligated, round(p.allocated * rng.uniform(0.9, 1.0), 2))
        obligated = min(p.obligated, p.allocated)
        disbursed = min(
            round(p.allocated * p.progress / 100 * rng.uniform(0.8, 0.97), 2), obligated
        )
        event: dict[str, Any] = {
            "schema": PROJECT_SCHEMA,
            "district_code": p.district_code,
            "source": "cdd-bpm",
            "project_id": p.project_id,
            "program": p.program,
            "fiscal_year": p.fiscal_year,
            "status": status,
            "progress_pct": p.progress,
            "planned_pct": round(planned, 1),
            "budget_allocated_thb": p.allocated,
            "budget_obligated_thb": obligated,
            "budget_disbursed_thb": disbursed,
            "sdg_goals": p.sdg_goals,
            "tpmap_dimensions": p.tpmap,
        }
        if p.subdistrict_code:
            event["subdistrict_code"] = p.subdistrict_code
        if p.target_households is not None:
            event["target_households"] = p.target_households
            event["reached_households"] = int(p.target_households * p.progress / 100)
        if ms >= p.silent_at_ms:
            going_on = False  # this report is the last one anybody sees
        return event, going_on
