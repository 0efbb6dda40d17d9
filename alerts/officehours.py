"""Office time (Mon-Fri, a daily window in Asia/Bangkok) elapsed between two instants.

Public holidays are not modelled: warroom has no authoritative holiday calendar, so a holiday
counts as an office day (a silent-district alert can fire on one).
"""

from __future__ import annotations

__all__ = ["office_ms_between", "office_ms_since_epoch"]

_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
_BANGKOK_MS = 7 * 3_600_000  # Thailand has no daylight saving: UTC+7 all year
_MONDAY_MS = 4 * _DAY_MS  # 1970-01-05 was a Monday (the epoch was a Thursday)
_WORKDAYS = 5  # Monday..Friday


def office_ms_since_epoch(t_ms: int, start_min: int = 510, end_min: int = 990) -> int:
    """Office milliseconds from Monday 1970-01-05 00:00 Bangkok to `t_ms` (a cumulative clock).

    Defined for t_ms at or after that Monday; the difference of two readings is the office
    time between two instants, in O(1) whatever the gap.
    """
    local = t_ms + _BANGKOK_MS - _MONDAY_MS
    day_len = (end_min - start_min) * 60_000
    weeks, rest = divmod(local, _WEEK_MS)
    day, ms_of_day = divmod(rest, _DAY_MS)
    total = weeks * _WORKDAYS * day_len + min(day, _WORKDAYS) * day_len
    if day < _WORKDAYS:
        total += min(max(ms_of_day - start_min * 60_000, 0), day_len)
    return total


def office_ms_between(start_ms: int, end_ms: int, start_min: int = 510, end_min: int = 990) -> int:
    """Office milliseconds in [start_ms, end_ms); 0 when end is not after start."""
    if end_ms <= start_ms:
        return 0
    return office_ms_since_epoch(end_ms, start_min, end_min) - office_ms_since_epoch(
        start_ms, start_min, end_min
    )
