"""Validation of contract-v1 events: a checked event dict, or a Rejection with its reason.

Runs on every event, so it is written for speed: plain dict lookups, exact type checks,
frozenset membership, no exceptions on the good path. Checked events gain two private keys:
``_ms`` (occurred_at, epoch ms UTC) and, for grievances, ``_due_ms`` (due_at or None).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from streams import contract as c
from streams.geography import district_codes, subdistrict_codes
from streams.reasons import Reason, Rejection
from streams.timeutil import parse_ms

__all__ = ["MAX_PAYLOAD_BYTES", "Validator", "citizen_id_ok"]

MAX_PAYLOAD_BYTES: Final = 64 * 1024
_YEAR_2000_MS: Final = 946_684_800_000
_MAX_DUE_AHEAD_MS: Final = 3 * 366 * 86_400_000  # an SLA deadline within three years
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
_DIGITS = re.compile(r"[0-9]+").fullmatch
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{7,18}[0-9]").fullmatch
_MAX_TEXT: Final = 200

_COMMON: Final = frozenset(c.COMMON_REQUIRED + c.COMMON_OPTIONAL)
_ALLOWED = {
    c.GRIEVANCE_SCHEMA: _COMMON | frozenset(c.GRIEVANCE_REQUIRED + c.GRIEVANCE_OPTIONAL),
    c.PROJECT_SCHEMA: _COMMON | frozenset(c.PROJECT_REQUIRED + c.PROJECT_OPTIONAL),
}
_TYPES = frozenset(c.GRIEVANCE_TYPES)
_CATEGORIES = frozenset(c.CATEGORIES)
_CHANNELS = frozenset(c.CHANNELS)
_PRIORITIES = frozenset(c.PRIORITIES)
_PROGRAMS = frozenset(c.PROGRAMS)
_STATUSES = frozenset(c.PROJECT_STATUSES)
_TPMAP = frozenset(c.TPMAP_DIMENSIONS)
_COMPLAINANT = frozenset(c.COMPLAINANT_FIELDS)


def citizen_id_ok(cid: str) -> bool:
    """13 digits whose last is the check digit: (11 - sum(d_i * (14 - i)) mod 11) mod 10."""
    if len(cid) != 13 or not cid.isascii() or not cid.isdigit():
        return False
    b = cid.encode()
    # unrolled weighted sum of the digits; 4320 = ord("0") * (13 + 12 + ... + 2)
    total = (
        b[0] * 13 + b[1] * 12 + b[2] * 11 + b[3] * 10 + b[4] * 9 + b[5] * 8
        + b[6] * 7 + b[7] * 6 + b[8] * 5 + b[9] * 4 + b[10] * 3 + b[11] * 2 - 4320
    )  # fmt: skip
    return (11 - total % 11) % 10 == b[12] - 48


def _num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


class Validator:
    """Checks events against contract v1. One instance per process; call it per event."""

    def __init__(
        self,
        *,
        max_future_skew_s: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._districts = district_codes()
        self._subdistricts = subdistrict_codes()
        self._skew_ms = max_future_skew_s * 1000
        self._clock = clock

    def payload(self, raw: bytes | None, now_ms: int | None = None) -> dict[str, Any] | Rejection:
        """Decode and check one wire payload."""
        if raw is None:
            return Rejection(Reason.MALFORMED_JSON, detail="empty message (tombstone)")
        if len(raw) > MAX_PAYLOAD_BYTES:
            return Rejection(Reason.OVERSIZED, detail=f"{len(raw)} bytes > {MAX_PAYLOAD_BYTES}")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejection(Reason.MALFORMED_JSON, detail=str(exc)[:200])
        return self.event(obj, now_ms)

    def event(self, d: Any, now_ms: int | None = None) -> dict[str, Any] | Rejection:
        """Check one decoded event. On success the same dict is returned, with _ms (and _due_ms)."""
        if type(d) is not dict:
            return Rejection(Reason.NOT_AN_OBJECT, detail=type(d).__name__)
        schema = d.get("schema")
        if schema is None:
            return Rejection(Reason.MISSING_FIELD, "schema")
        if type(schema) is not str:
            return Rejection(Reason.WRONG_TYPE, "schema", "expected a string")
        if schema not in _ALLOWED:
            return Rejection(Reason.UNKNOWN_SCHEMA, "schema", schema[:64])
        if not d.keys() <= _ALLOWED[schema]:
            extra = sorted(k for k in d if k not in _ALLOWED[schema])
            return Rejection(Reason.UNKNOWN_FIELD, str(extra[0])[:64])
        rej = self._common(d, self._clock() * 1000 if now_ms is None else now_ms)
        if rej is not None:
            return rej
        rej = self._grievance(d) if schema == c.GRIEVANCE_SCHEMA else self._project(d)
        return d if rej is None else rej

    # -- common fields -------------------------------------------------------------------------

    def _common(self, d: dict[str, Any], now_ms: float) -> Rejection | None:
        for name in c.COMMON_REQUIRED:
            if name not in d:
                return Rejection(Reason.MISSING_FIELD, name)
        event_id = d["event_id"]
        if type(event_id) is not str:
            return Rejection(Reason.WRONG_TYPE, "event_id", "expected a UUID string")
        if len(event_id) != 36 or not _UUID(event_id):
            return Rejection(Reason.INVALID_FORMAT, "event_id", "expected a UUID")
        district = d["district_code"]
        if type(district) is not str:
            return Rejection(Reason.WRONG_TYPE, "district_code", "expected a 4-digit string")
        if district not in self._districts:
            if len(district) != 4 or not _DIGITS(district):
                return Rejection(Reason.INVALID_FORMAT, "district_code", "expected 4 digits")
            return Rejection(Reason.UNKNOWN_DISTRICT, "district_code", district)
        sub = d.get("subdistrict_code")
        if sub is not None:
            if type(sub) is not str:
                return Rejection(Reason.WRONG_TYPE, "subdistrict_code", "expected a string")
            if sub not in self._subdistricts or sub[:4] != district:
                if len(sub) != 6 or not _DIGITS(sub):
                    return Rejection(Reason.INVALID_FORMAT, "subdistrict_code", "expected 6 digits")
                return Rejection(Reason.UNKNOWN_SUBDISTRICT, "subdistrict_code", sub)
        source = d["source"]
        if type(source) is not str:
            return Rejection(Reason.WRONG_TYPE, "source", "expected a string")
        if not source or len(source) > 64:
            return Rejection(Reason.INVALID_FORMAT, "source", "1-64 characters")
        occurred = d["occurred_at"]
        if type(occurred) is not str:
            return Rejection(Reason.WRONG_TYPE, "occurred_at", "expected an RFC 3339 string")
        try:
            ms = parse_ms(occurred)
        except ValueError:
            return Rejection(Reason.INVALID_FORMAT, "occurred_at", "expected RFC 3339")
        if ms < _YEAR_2000_MS or ms > now_ms + self._skew_ms:
            return Rejection(Reason.IMPOSSIBLE_TIME, "occurred_at", occurred[:40])
        d["_ms"] = ms
        return None

    # -- grievances ----------------------------------------------------------------------------

    def _grievance(self, d: dict[str, Any]) -> Rejection | None:
        for name in c.GRIEVANCE_REQUIRED:
            if name not in d:
                return Rejection(Reason.MISSING_FIELD, name)
        gid = d["grievance_id"]
        if type(gid) is not str:
            return Rejection(Reason.WRONG_TYPE, "grievance_id", "expected a string")
        if not gid or len(gid) > 64:
            return Rejection(Reason.INVALID_FORMAT, "grievance_id", "1-64 characters")
        for name, allowed in (
            ("type", _TYPES),
            ("category", _CATEGORIES),
            ("channel", _CHANNELS),
            ("priority", _PRIORITIES),
        ):
            v = d[name]
            if type(v) is not str:
                return Rejection(Reason.WRONG_TYPE, name, "expected a string")
            if v not in allowed:
                return Rejection(Reason.UNKNOWN_ENUM, name, v[:64])
        due = d.get("due_at")
        if due is None:
            if d["type"] == "received":
                return Rejection(Reason.MISSING_FIELD, "due_at", "required on received")
            d["_due_ms"] = None
        else:
            if type(due) is not str:
                return Rejection(Reason.WRONG_TYPE, "due_at", "expected an RFC 3339 string")
            try:
                due_ms = parse_ms(due)
            except ValueError:
                return Rejection(Reason.INVALID_FORMAT, "due_at", "expected RFC 3339")
            if due_ms < d["_ms"]:
                return Rejection(Reason.INCONSISTENT, "due_at", "due before occurred_at")
            if due_ms > d["_ms"] + _MAX_DUE_AHEAD_MS:
                return Rejection(Reason.IMPOSSIBLE_TIME, "due_at", due[:40])
            d["_due_ms"] = due_ms
        agency = d.get("agency")
        if agency is not None:
            if type(agency) is not str:
                return Rejection(Reason.WRONG_TYPE, "agency", "expected a string")
            if len(agency) > _MAX_TEXT:
                return Rejection(Reason.INVALID_FORMAT, "agency", f"at most {_MAX_TEXT} characters")
        person = d.get("complainant")
        if person is not None:
            return _complainant(person)
        return None

    # -- projects ------------------------------------------------------------------------------

    def _project(self, d: dict[str, Any]) -> Rejection | None:
        for name in c.PROJECT_REQUIRED:
            if name not in d:
                return Rejection(Reason.MISSING_FIELD, name)
        pid = d["project_id"]
        if type(pid) is not str:
            return Rejection(Reason.WRONG_TYPE, "project_id", "expected a string")
        if not pid or len(pid) > 64:
            return Rejection(Reason.INVALID_FORMAT, "project_id", "1-64 characters")
        for name, allowed in (("program", _PROGRAMS), ("status", _STATUSES)):
            v = d[name]
            if type(v) is not str:
                return Rejection(Reason.WRONG_TYPE, name, "expected a string")
            if v not in allowed:
                return Rejection(Reason.UNKNOWN_ENUM, name, v[:64])
        fy = d["fiscal_year"]
        if type(fy) is not int:
            return Rejection(Reason.WRONG_TYPE, "fiscal_year", "expected a Buddhist-Era year")
        if not 2543 <= fy <= 2643:
            return Rejection(Reason.OUT_OF_RANGE, "fiscal_year", f"{fy} is not a B.E. year")
        for name in ("progress_pct", "planned_pct"):
            v = d[name]
            if not _num(v):
                return Rejection(Reason.WRONG_TYPE, name, "expected a number")
            if not 0 <= v <= 100:
                return Rejection(Reason.PROGRESS_OUT_OF_RANGE, name, str(v))
        alloc = d["budget_allocated_thb"]
        oblig = d["budget_obligated_thb"]
        disb = d["budget_disbursed_thb"]
        for name, v in (
            ("budget_allocated_thb", alloc),
            ("budget_obligated_thb", oblig),
            ("budget_disbursed_thb", disb),
        ):
            if not _num(v):
                return Rejection(Reason.WRONG_TYPE, name, "expected a number")
            if v < 0 or v > 1e13:
                return Rejection(Reason.OUT_OF_RANGE, name, str(v))
        if disb > oblig or oblig > alloc:
            return Rejection(
                Reason.BUDGET_INCONSISTENT,
                "budget_disbursed_thb" if disb > oblig else "budget_obligated_thb",
                f"allocated {alloc}, obligated {oblig}, disbursed {disb}",
            )
        for name in ("target_households", "reached_households"):
            v = d.get(name)
            if v is not None:
                if type(v) is not int:
                    return Rejection(Reason.WRONG_TYPE, name, "expected an integer")
                if not 0 <= v <= 10_000_000:
                    return Rejection(Reason.OUT_OF_RANGE, name, str(v))
        goals = d.get("sdg_goals")
        if goals is not None:
            if type(goals) is not list:
                return Rejection(Reason.WRONG_TYPE, "sdg_goals", "expected a list of 1-17")
            for g in goals:
                if type(g) is not int:
                    return Rejection(Reason.WRONG_TYPE, "sdg_goals", "expected integers")
                if not 1 <= g <= 17:
                    return Rejection(Reason.OUT_OF_RANGE, "sdg_goals", str(g))
            if len(set(goals)) != len(goals):
                return Rejection(Reason.INCONSISTENT, "sdg_goals", "repeated goal")
        dims = d.get("tpmap_dimensions")
        if dims is not None:
            if type(dims) is not list:
                return Rejection(Reason.WRONG_TYPE, "tpmap_dimensions", "expected a list")
            for v in dims:
                if type(v) is not str:
                    return Rejection(Reason.WRONG_TYPE, "tpmap_dimensions", "expected strings")
                if v not in _TPMAP:
                    return Rejection(Reason.UNKNOWN_ENUM, "tpmap_dimensions", v[:64])
            if len(set(dims)) != len(dims):
                return Rejection(Reason.INCONSISTENT, "tpmap_dimensions", "repeated dimension")
        return None


def _complainant(person: Any) -> Rejection | None:
    if type(person) is not dict:
        return Rejection(Reason.WRONG_TYPE, "complainant", "expected an object")
    if not person.keys() <= _COMPLAINANT:
        extra = sorted(k for k in person if k not in _COMPLAINANT)
        return Rejection(Reason.UNKNOWN_FIELD, f"complainant.{str(extra[0])[:40]}")
    cid = person.get("citizen_id")
    if cid is not None:
        if type(cid) is not str:
            return Rejection(Reason.WRONG_TYPE, "complainant.citizen_id", "expected a string")
        if not citizen_id_ok(cid.replace("-", "").replace(" ", "")):
            # never echo the number itself: it is personal data
            return Rejection(Reason.INVALID_CITIZEN_ID, "complainant.citizen_id")
    name = person.get("name")
    if name is not None:
        if type(name) is not str:
            return Rejection(Reason.WRONG_TYPE, "complainant.name", "expected a string")
        if len(name) > _MAX_TEXT:
            return Rejection(Reason.INVALID_FORMAT, "complainant.name", "too long")
    phone = person.get("phone")
    if phone is not None:
        if type(phone) is not str:
            return Rejection(Reason.WRONG_TYPE, "complainant.phone", "expected a string")
        if not _PHONE(phone):
            return Rejection(Reason.INVALID_FORMAT, "complainant.phone", "not a phone number")
    return None
