"""Event contract v1: schemas, fields, enumerations and the orjson encoding of events."""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "GRIEVANCE_SCHEMA",
    "GRIEVANCE_TYPES",
    "OPEN_TYPES",
    "PRIORITIES",
    "PROGRAMS",
    "PROJECT_SCHEMA",
    "PROJECT_STATUSES",
    "SCHEMAS",
    "STREAM_OF_SCHEMA",
    "TPMAP_DIMENSIONS",
    "decode",
    "encode",
]

GRIEVANCE_SCHEMA: Final = "grievance.v1"
PROJECT_SCHEMA: Final = "project.v1"
SCHEMAS: Final = frozenset({GRIEVANCE_SCHEMA, PROJECT_SCHEMA})
#: the stream (and topic family) each schema belongs to
STREAM_OF_SCHEMA: Final = {GRIEVANCE_SCHEMA: "grievance", PROJECT_SCHEMA: "project"}

GRIEVANCE_TYPES: Final = (
    "received",
    "assigned",
    "in_progress",
    "forwarded",
    "resolved",
    "closed",
    "reopened",
    "escalated",
    "rejected",
)
#: after one of these a case counts as open (in the backlog)
OPEN_TYPES: Final = frozenset(
    {"received", "assigned", "in_progress", "forwarded", "reopened", "escalated"}
)
CATEGORIES: Final = (
    "land",
    "debt",
    "flood",
    "drought",
    "wastewater",
    "environment",
    "utilities",
    "misconduct",
    "consumer",
    "drugs",
    "gambling",
    "poverty",
    "other",
)
CHANNELS: Final = (
    "hotline_1567",
    "walk_in",
    "web",
    "line",
    "letter",
    "mobile_unit",
    "traffy",
    "other",
)
PRIORITIES: Final = ("normal", "urgent")

PROGRAMS: Final = (
    "kok_nong_na",
    "otop_nawatwithi",
    "sufficiency_village",
    "poverty_household",
    "strong_tambon",
    "household_vegetables",
    "informal_debt",
    "water_management",
    "infrastructure",
    "other",
)
PROJECT_STATUSES: Final = (
    "not_started",
    "procurement",
    "on_track",
    "delayed",
    "stalled",
    "completed",
    "cancelled",
)
TPMAP_DIMENSIONS: Final = ("income", "living", "health", "education", "public_services")

#: fields every event carries (optional ones: subdistrict_code)
COMMON_REQUIRED: Final = ("schema", "event_id", "occurred_at", "district_code", "source")
COMMON_OPTIONAL: Final = ("subdistrict_code",)
GRIEVANCE_REQUIRED: Final = ("grievance_id", "type", "category", "channel", "priority")
GRIEVANCE_OPTIONAL: Final = ("due_at", "agency", "complainant")
COMPLAINANT_FIELDS: Final = ("citizen_id", "name", "phone")
PROJECT_REQUIRED: Final = (
    "project_id",
    "program",
    "fiscal_year",
    "status",
    "progress_pct",
    "planned_pct",
    "budget_allocated_thb",
    "budget_obligated_thb",
    "budget_disbursed_thb",
)
PROJECT_OPTIONAL: Final = (
    "target_households",
    "reached_households",
    "sdg_goals",
    "tpmap_dimensions",
)

_OPT_KEYS = orjson.OPT_NON_STR_KEYS


def encode(event: dict[str, Any]) -> bytes:
    """The wire form of an event: compact UTF-8 JSON (orjson)."""
    return orjson.dumps(event, option=_OPT_KEYS)


def decode(payload: bytes | str) -> Any:
    """Parse a wire payload; raises orjson.JSONDecodeError when it is not JSON."""
    return orjson.loads(payload)
