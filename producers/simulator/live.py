"""Live mode: a backfill of recent history, then events dated now at a real national volume."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from producers.simulator.generator import SimOptions
from producers.simulator.model import HOUR_MS

__all__ = [
    "CAUGHT_UP_MS",
    "DEFAULT_BACKFILL_HOURS",
    "DEFAULT_NATIONAL_CASES_PER_DAY",
    "LOADED_BACKFILL_HOURS",
    "LivePlan",
]

#: new grievance cases a day nationally: domain.md gives "a few hundred to a thousand" for the
#: Damrongdhama centres (about 5 lifecycle steps each, plus ~660 weekly project reports a day)
DEFAULT_NATIONAL_CASES_PER_DAY: Final = 1_000.0
#: the grievance surge rules (alerts/rules.yaml) compare the last hour with the same hour of
#: each of the past 4 weeks (`baseline_weeks: 4`, `window: 1h`): 4 weeks + 1 hour of history
#: gives them their full baseline from the first live minute
DEFAULT_BACKFILL_HOURS: Final = 4 * 7 * 24 + 1.0
#: with --load above 1 (and no --backfill-hours): the surge rules' trailing 24-hour fallback
#: baseline (`fallback_hours: 24`) plus its hour, so a load demo starts in minutes, not hours
LOADED_BACKFILL_HOURS: Final = 24 + 1.0
#: an event this close to the wall clock ends the backfill: from then on events wait for the
#: clock and are dated now
CAUGHT_UP_MS: Final = 2_000


@dataclass(frozen=True)
class LivePlan:
    """How `warroom up` simulates by default: ``backfill_hours`` of history sent unpaced, then
    live at ``cases_per_day`` x ``load`` new cases a day (the same volume in both phases, so
    the surge baselines of the backfill match the live intake)."""

    backfill_hours: float | None = None  # None: DEFAULT_BACKFILL_HOURS, or LOADED_ at a load
    cases_per_day: float = DEFAULT_NATIONAL_CASES_PER_DAY
    load: float = 1.0

    def __post_init__(self) -> None:
        if self.backfill_hours is not None and not 0 <= self.backfill_hours <= 24 * 366:
            raise ValueError("backfill hours must be between 0 and 8784 (a year)")
        if self.cases_per_day <= 0:
            raise ValueError("cases per day must be positive")
        if self.load <= 0:
            raise ValueError("load must be positive")

    @property
    def hours(self) -> float:
        if self.backfill_hours is not None:
            return self.backfill_hours
        return DEFAULT_BACKFILL_HOURS if self.load <= 1 else LOADED_BACKFILL_HOURS

    @property
    def national_cases_per_day(self) -> float:
        return self.cases_per_day * self.load

    def sim_options(self, base: SimOptions, now_ms: int) -> SimOptions:
        """``base`` starting ``hours`` before ``now_ms``, its intake set by the national volume
        (speedup None: the simulated density no longer depends on a wall rate)."""
        return dataclasses.replace(
            base,
            start_ms=now_ms - int(self.hours * HOUR_MS),
            speedup=None,
            cases_per_day=self.national_cases_per_day,
        )
