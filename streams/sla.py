"""Grievance SLA deadlines per category. No official SLA is published (a 15-day reply rule is
often quoted but unconfirmed), so every value here is a default that WARROOM_SLA_DAYS overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from streams.contract import CATEGORIES

__all__ = ["DEFAULT_SLA_DAYS", "URGENT_SLA_DAYS", "parse_overrides", "sla_days"]

DEFAULT_SLA_DAYS: Final[Mapping[str, int]] = {
    **dict.fromkeys(CATEGORIES, 15),
    # disasters need a faster answer
    "flood": 7,
    "drought": 7,
}
URGENT_SLA_DAYS: Final = 3


def parse_overrides(text: str) -> dict[str, int]:
    """'land=30,debt=15' -> {'land': 30, 'debt': 15}; unknown categories are an error."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, days = part.partition("=")
        name = name.strip()
        if not sep or (name not in DEFAULT_SLA_DAYS and name != "urgent"):
            raise ValueError(f"WARROOM_SLA_DAYS: {part!r} is not CATEGORY=DAYS")
        out[name] = int(days)
        if out[name] <= 0:
            raise ValueError(f"WARROOM_SLA_DAYS: {part!r} must be a positive number of days")
    return out


def sla_days(category: str, priority: str, overrides: Mapping[str, int] | None = None) -> int:
    table = {**DEFAULT_SLA_DAYS, "urgent": URGENT_SLA_DAYS, **(overrides or {})}
    if priority == "urgent":
        return min(table["urgent"], table[category])
    return table[category]
