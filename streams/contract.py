"""Event contract v1: schemas, fields, enumerations and the orjson encoding of events."""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
import orjson

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "GRIEVANCE_SCHEMA",
    "GRIEVANCE_TYPES",
    "OPEN_TYPES",
    "OUTCOME_TYPES",
    "PRIORITIES",
    "PROGRAMS",
    "PROJECT_SCHEMA",
    "PROJECT_STATUSES",
    "SCHEMAS",
    "STREAM_OF_SCHEMA",
    "TPMAP_DIMENSIONS",
    "Complainant",
    "GrievanceEvent",
    "ProjectEvent",
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
#: the types the `grievance_event` metric counts: turns in a case's course (the routine steps
#: assigned, in_progress and closed are left to the raw table, received has its own metric);
#: counting every event there made one bucket row per event and cost ~15 % of throughput
OUTCOME_TYPES: Final = ("forwarded", "resolved", "reopened", "escalated", "rejected")
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


# -- typed models: what a structurally valid event is (streams/validation.py adds the rules
# types cannot say: known district, time in range, check digits, consistent numbers) --------


class Complainant(msgspec.Struct, forbid_unknown_fields=True):
    """Personal data: replaced by a keyed pseudonym at ingest, never stored in clear."""

    citizen_id: str | None = None
    name: str | None = None
    phone: str | None = None


class GrievanceEvent(
    msgspec.Struct, tag_field="schema", tag=GRIEVANCE_SCHEMA, forbid_unknown_fields=True
):
    event_id: str
    occurred_at: str
    district_code: str
    source: str
    grievance_id: str
    type: Literal[GRIEVANCE_TYPES]  # type: ignore[valid-type]
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    channel: Literal[CHANNELS]  # type: ignore[valid-type]
    priority: Literal[PRIORITIES]  # type: ignore[valid-type]
    subdistrict_code: str | None = None
    due_at: str | None = None
    agency: str | None = None
    complainant: Complainant | None = None


class ProjectEvent(
    msgspec.Struct, tag_field="schema", tag=PROJECT_SCHEMA, forbid_unknown_fields=True
):
    event_id: str
    occurred_at: str
    district_code: str
    source: str
    project_id: str
    program: Literal[PROGRAMS]  # type: ignore[valid-type]
    fiscal_year: int
    status: Literal[PROJECT_STATUSES]  # type: ignore[valid-type]
    progress_pct: float
    planned_pct: float
    budget_allocated_thb: float
    budget_obligated_thb: float
    budget_disbursed_thb: float
    subdistrict_code: str | None = None
    target_households: int | None = None
    reached_households: int | None = None
    sdg_goals: list[int] | None = None
    tpmap_dimensions: list[Literal[TPMAP_DIMENSIONS]] | None = None  # type: ignore[valid-type]
