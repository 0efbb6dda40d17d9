"""Project state of one district: each project's latest progress report."""

from __future__ import annotations

from typing import Any, Final

import orjson

from streams.contract import ProjectEvent
from streams.plan import planned_fraction

__all__ = ["BEHIND_PLAN_POINTS", "ProjectBook"]

BEHIND_PLAN_POINTS: Final = 10.0
_INACTIVE: Final = frozenset({"completed", "cancelled"})
# positions in a report list
_MS, _PROGRAM, _FY, _STATUS, _PROGRESS, _PLANNED, _ALLOC, _OBLIG, _DISB = range(9)


class ProjectBook:
    """Latest report per project of one district in one topic-partition (see CaseBook.stamp)."""

    __slots__ = ("events", "last_event_ms", "projects", "stamp")

    def __init__(self) -> None:
        self.projects: dict[str, list[Any]] = {}
        self.stamp = -1
        self.last_event_ms = 0
        self.events = 0  # applied by this process (for the live summary; not persisted)

    def apply(self, ev: ProjectEvent, ms: int) -> None:
        self.events += 1
        if ms > self.last_event_ms:
            self.last_event_ms = ms
        old = self.projects.get(ev.project_id)
        # the latest report by occurred_at wins; on a tie the later offset (this one) wins
        if old is None or ms >= old[_MS]:
            self.projects[ev.project_id] = [
                ms,
                ev.program,
                ev.fiscal_year,
                ev.status,
                float(ev.progress_pct),
                float(ev.planned_pct),
                float(ev.budget_allocated_thb),
                float(ev.budget_obligated_thb),
                float(ev.budget_disbursed_thb),
            ]

    def gauges(self, clock_ms: int, stale_ms: int) -> dict[tuple[str, str, str], float]:
        """(metric, dim1, dim2) -> value of every non-zero gauge at ``clock_ms``."""
        out: dict[tuple[str, str, str], float] = {}

        def add(key: tuple[str, str, str], v: float) -> None:
            out[key] = out.get(key, 0.0) + v

        fractions: dict[int, float] = {}
        for r in self.projects.values():
            program = r[_PROGRAM]
            add(("project_count", program, r[_STATUS]), 1)
            fy = r[_FY]
            fy_text = str(fy)
            add(("project_budget_allocated_thb", program, fy_text), r[_ALLOC])
            add(("project_budget_obligated_thb", program, fy_text), r[_OBLIG])
            add(("project_budget_disbursed_thb", program, fy_text), r[_DISB])
            if fy not in fractions:
                fractions[fy] = planned_fraction(fy, clock_ms)
            add(
                ("project_budget_planned_disbursed_thb", program, fy_text),
                r[_ALLOC] * fractions[fy],
            )
            if r[_STATUS] in _INACTIVE:
                continue
            add(("project_active", program, ""), 1)
            add(("project_progress_pct_sum", program, ""), r[_PROGRESS])
            add(("project_planned_pct_sum", program, ""), r[_PLANNED])
            if r[_PLANNED] - r[_PROGRESS] > BEHIND_PLAN_POINTS:
                add(("project_behind_plan", program, ""), 1)
            if clock_ms - r[_MS] > stale_ms:
                add(("project_stale", program, ""), 1)
        if self.last_event_ms:
            out[("last_event_age_seconds", "project", "")] = max(
                0.0, (clock_ms - self.last_event_ms) / 1000
            )
        return {k: v for k, v in out.items() if v}

    def dumps(self) -> bytes:
        return orjson.dumps(
            {"stamp": self.stamp, "last": self.last_event_ms, "projects": self.projects}
        )

    @classmethod
    def loads(cls, raw: bytes) -> ProjectBook:
        data = orjson.loads(raw)
        book = cls()
        book.stamp = data["stamp"]
        book.last_event_ms = data["last"]
        book.projects = data["projects"]
        return book
