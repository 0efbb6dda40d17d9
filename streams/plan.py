"""The cumulative budget-disbursement plan across a Thai fiscal year (quarterly targets)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from streams.timeutil import BANGKOK

__all__ = ["DEFAULT_QUARTER_TARGETS", "planned_fraction"]

#: Cumulative share of the allocation planned as disbursed by the end of Q1..Q4. The FY2026
#: overall target is >= 93 %; the quarterly steps are illustrative defaults, not official.
DEFAULT_QUARTER_TARGETS: Final = (0.30, 0.52, 0.75, 0.93)


def _fy_start(fiscal_year_be: int) -> datetime:
    return datetime(fiscal_year_be - 543 - 1, 10, 1, tzinfo=BANGKOK)


def planned_fraction(
    fiscal_year_be: int,
    at_ms: int,
    targets: tuple[float, float, float, float] = DEFAULT_QUARTER_TARGETS,
) -> float:
    """Share of the allocation that should be disbursed at ``at_ms``: linear within a quarter
    from the previous quarter's target to this quarter's."""
    start = _fy_start(fiscal_year_be)
    at = datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(BANGKOK)
    if at < start:
        return 0.0
    bounds = [start]
    for q in range(1, 5):
        month = 10 + 3 * q
        year = start.year + (month - 1) // 12
        bounds.append(datetime(year, (month - 1) % 12 + 1, 1, tzinfo=BANGKOK))
    if at >= bounds[4]:
        return targets[3]
    for q in range(4):
        if at < bounds[q + 1]:
            prev = targets[q - 1] if q else 0.0
            span = (bounds[q + 1] - bounds[q]).total_seconds()
            done = (at - bounds[q]).total_seconds() / span
            return prev + (targets[q] - prev) * done
    return targets[3]
