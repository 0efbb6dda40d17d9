"""Validation of contract-v1 events: a checked event, or a Rejection with its reason.

Runs on every event, so the good path is fast: msgspec decodes straight into the typed
models of streams/contract.py (types, enumerations, required and unknown fields in one C
pass), then the rules types cannot express are checked on the attributes. Only an event
that fails the typed decode is looked at again, as a dict, to name the precise reason.

A rejection's ``detail`` never repeats what the event said, except values that are plain codes
(streams.pdpa.plain_code) or 4/6-digit area codes: it is stored and logged, and a bad event
may carry personal data in any field. A citizen ID or phone number in a field that is not the
complainant's is a rejection of its own (personal_data_in_field).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import orjson

from streams import contract as c
from streams.contract import GrievanceEvent, ProjectEvent
from streams.geography import district_codes, subdistrict_codes
from streams.pdpa import citizen_id_ok, maybe_number, personal_number, plain_code, plain_name
from streams.reasons import Reason, Rejection
from streams.timeutil import parse_ms

__all__ = [
    "DISTRICT_KEYS",
    "MAX_PAYLOAD_BYTES",
    "SOURCE_PATTERN",
    "Checked",
    "Validator",
    "citizen_id_ok",
    "wrong_key",
]

#: (event, occurred_at in epoch ms UTC, due_at in epoch ms or None); the event is a
#: GrievanceEvent or a ProjectEvent (Any: the hot path reads its attributes unchecked)
Checked = tuple[Any, int, int | None]

MAX_PAYLOAD_BYTES: Final = 64 * 1024
_YEAR_2000_MS: Final = 946_684_800_000
_MAX_DUE_AHEAD_MS: Final = 3 * 366 * 86_400_000  # an SLA deadline within three years
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
_DIGITS = re.compile(r"[0-9]+").fullmatch
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{7,18}[0-9]").fullmatch
#: a producing system's name: no spaces, no Thai, so free text (a name) is not taken as one
SOURCE_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}"
_SOURCE = re.compile(SOURCE_PATTERN).fullmatch
_MAX_TEXT: Final = 200
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)

_COMMON: Final = frozenset(c.COMMON_REQUIRED + c.COMMON_OPTIONAL)
_ALLOWED = {
    c.GRIEVANCE_SCHEMA: _COMMON | frozenset(c.GRIEVANCE_REQUIRED + c.GRIEVANCE_OPTIONAL),
    c.PROJECT_SCHEMA: _COMMON | frozenset(c.PROJECT_REQUIRED + c.PROJECT_OPTIONAL),
}
_REQUIRED = {
    c.GRIEVANCE_SCHEMA: c.COMMON_REQUIRED + c.GRIEVANCE_REQUIRED,
    c.PROJECT_SCHEMA: c.COMMON_REQUIRED + c.PROJECT_REQUIRED,
}
_STR = (str,)
_NUM = (int, float)
_INT = (int,)
#: field -> (accepted types, allowed values or None); what the typed decode enforces
_SHAPES: Final[dict[str, tuple[tuple[type, ...], frozenset[str] | None]]] = {
    "event_id": (_STR, None),
    "occurred_at": (_STR, None),
    "district_code": (_STR, None),
    "subdistrict_code": (_STR, None),
    "source": (_STR, None),
    "grievance_id": (_STR, None),
    "type": (_STR, frozenset(c.GRIEVANCE_TYPES)),
    "category": (_STR, frozenset(c.CATEGORIES)),
    "channel": (_STR, frozenset(c.CHANNELS)),
    "priority": (_STR, frozenset(c.PRIORITIES)),
    "due_at": (_STR, None),
    "agency": (_STR, None),
    "project_id": (_STR, None),
    "program": (_STR, frozenset(c.PROGRAMS)),
    "status": (_STR, frozenset(c.PROJECT_STATUSES)),
    "fiscal_year": (_INT, None),
    "progress_pct": (_NUM, None),
    "planned_pct": (_NUM, None),
    "budget_allocated_thb": (_NUM, None),
    "budget_obligated_thb": (_NUM, None),
    "budget_disbursed_thb": (_NUM, None),
    "target_households": (_INT, None),
    "reached_households": (_INT, None),
}
_TPMAP = frozenset(c.TPMAP_DIMENSIONS)
_COMPLAINANT = frozenset(c.COMPLAINANT_FIELDS)
#: the string fields outside the complainant: none of them may carry an ID or a phone number
_NOT_PERSONAL: Final = tuple(k for k, (types, _) in _SHAPES.items() if types is _STR)
#: the Kafka key each district's events must carry (the partition of its state)
DISTRICT_KEYS: Final = {d: d.encode() for d in district_codes()}


def wrong_key(key: bytes | None) -> Rejection:
    """The rejection of a valid event whose Kafka key is not its district code."""
    if key is None:
        detail = "no key"
    elif key.decode("ascii", "replace") in DISTRICT_KEYS:
        detail = f"key {key.decode()} is another district"
    else:
        detail = "the key is not a district code"
    return Rejection(Reason.WRONG_KEY, "key", detail)


def _malformed(field: str, value: str, expected: str) -> Rejection:
    """A value in the wrong format; its own reason when it is a citizen ID or phone number."""
    kind = personal_number(value)
    if kind:
        return Rejection(Reason.PERSONAL_DATA_IN_FIELD, field, f"a {kind.replace('_', ' ')}")
    return Rejection(Reason.INVALID_FORMAT, field, expected)


def _personal(field: str, value: str | None) -> Rejection | None:
    kind = personal_number(value) if value else ""
    if kind:
        return Rejection(Reason.PERSONAL_DATA_IN_FIELD, field, f"a {kind.replace('_', ' ')}")
    return None


def _utc(ms: int) -> str:
    """The time as warroom read it (not the text sent): safe to repeat."""
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return "out of range"


def _type_ok(v: Any, types: tuple[type, ...]) -> bool:
    # exact types: a JSON true is not a number here
    return type(v) in types or (types is _NUM and type(v) is int)


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
        self._decode = msgspec.json.Decoder(GrievanceEvent | ProjectEvent).decode

    # -- the hot path --------------------------------------------------------------------------

    def check(self, raw: bytes | None, now_ms: float | None = None) -> Checked | Rejection:
        """Decode and check one wire payload: (event, occurred ms, due ms) or a Rejection."""
        if raw is None:
            return Rejection(Reason.MALFORMED_JSON, detail="empty message (tombstone)")
        if len(raw) > MAX_PAYLOAD_BYTES:
            return Rejection(Reason.OVERSIZED, detail=f"{len(raw)} bytes > {MAX_PAYLOAD_BYTES}")
        try:
            ev = self._decode(raw)
        except _DECODE_ERRORS as exc:
            return _explain(raw, str(exc))
        now = self._clock() * 1000 if now_ms is None else now_ms
        # common fields, inline: this runs for every event
        event_id = ev.event_id
        if len(event_id) != 36 or not _UUID(event_id):
            return _malformed("event_id", event_id, "expected a UUID")
        district = ev.district_code
        if district not in self._districts:
            if len(district) != 4 or not _DIGITS(district):
                return _malformed("district_code", district, "expected 4 digits")
            return Rejection(Reason.UNKNOWN_DISTRICT, "district_code", district)
        sub = ev.subdistrict_code
        if sub is not None and (sub not in self._subdistricts or sub[:4] != district):
            if len(sub) != 6 or not _DIGITS(sub):
                return _malformed("subdistrict_code", sub, "expected 6 digits")
            return Rejection(Reason.UNKNOWN_SUBDISTRICT, "subdistrict_code", sub)
        source = ev.source
        if len(source) > 64 or not _SOURCE(source):
            return _malformed("source", source, "1-64 of A-Z a-z 0-9 _ . : / -")
        try:
            ms = parse_ms(ev.occurred_at)
        except ValueError:
            return _malformed("occurred_at", ev.occurred_at, "expected RFC 3339")
        if ms < _YEAR_2000_MS or ms > now + self._skew_ms:
            return Rejection(Reason.IMPOSSIBLE_TIME, "occurred_at", _utc(ms))
        if isinstance(ev, GrievanceEvent):  # narrows the decoder's union for the type checker
            return _grievance(ev, ms)
        # one first look at the free-text fields together (a line break joins no number)
        if maybe_number(f"{source}\n{ev.project_id}"):
            rej = _personal("source", source) or _personal("project_id", ev.project_id)
            if rej is not None:
                return rej
        rej = _project(ev)
        return (ev, ms, None) if rej is None else rej

    # -- dict interface (intake, tests): same rules, the checked dict back ---------------------

    def payload(self, raw: bytes | None, now_ms: float | None = None) -> dict[str, Any] | Rejection:
        """Check one payload; on success the decoded dict with ``_ms`` (and ``_due_ms``)."""
        checked = self.check(raw, now_ms)
        if type(checked) is Rejection:
            return checked
        assert raw is not None and type(checked) is tuple
        d: dict[str, Any] = orjson.loads(raw)
        d["_ms"] = checked[1]
        if d["schema"] == c.GRIEVANCE_SCHEMA:
            d["_due_ms"] = checked[2]
        return d

    def event(self, d: Any, now_ms: float | None = None) -> dict[str, Any] | Rejection:
        """Check one decoded event (a dict), as if it had arrived on the wire."""
        if type(d) is not dict:
            return Rejection(Reason.NOT_AN_OBJECT, detail=type(d).__name__)
        try:
            raw = orjson.dumps(d)
        except TypeError:
            return Rejection(Reason.WRONG_TYPE, detail="not serialisable as JSON")
        return self.payload(raw, now_ms)


def _grievance(ev: GrievanceEvent, ms: int) -> Checked | Rejection:
    gid = ev.grievance_id
    if not gid or len(gid) > 64:
        return _malformed("grievance_id", gid, "1-64 characters")
    agency = ev.agency
    # one first look at the free-text fields together (a line break joins no number)
    if maybe_number(f"{ev.source}\n{gid}\n{agency}"):
        rej = (
            _personal("source", ev.source)
            or _personal("grievance_id", gid)
            or _personal("agency", agency)
        )
        if rej is not None:
            return rej
    due = ev.due_at
    due_ms: int | None = None
    if due is None:
        if ev.type == "received":
            return Rejection(Reason.MISSING_FIELD, "due_at", "required on received")
    else:
        try:
            due_ms = parse_ms(due)
        except ValueError:
            return _malformed("due_at", due, "expected RFC 3339")
        if due_ms < ms:
            return Rejection(Reason.INCONSISTENT, "due_at", "due before occurred_at")
        if due_ms > ms + _MAX_DUE_AHEAD_MS:
            return Rejection(Reason.IMPOSSIBLE_TIME, "due_at", _utc(due_ms))
    if ev.agency is not None and len(ev.agency) > _MAX_TEXT:
        return Rejection(Reason.INVALID_FORMAT, "agency", f"at most {_MAX_TEXT} characters")
    person = ev.complainant
    if person is not None:
        if person.citizen_id is not None and not citizen_id_ok(
            person.citizen_id.replace("-", "").replace(" ", "")
        ):
            # never echo the number itself: it is personal data
            return Rejection(Reason.INVALID_CITIZEN_ID, "complainant.citizen_id")
        if person.name is not None and len(person.name) > _MAX_TEXT:
            return Rejection(Reason.INVALID_FORMAT, "complainant.name", "too long")
        if person.phone is not None and not _PHONE(person.phone):
            return Rejection(Reason.INVALID_FORMAT, "complainant.phone", "not a phone number")
    return ev, ms, due_ms


def _project(ev: ProjectEvent) -> Rejection | None:
    if not ev.project_id or len(ev.project_id) > 64:
        return _malformed("project_id", ev.project_id, "1-64 characters")
    # the numbers are not repeated in details: a misused number field may hold an ID or phone
    fy = ev.fiscal_year
    if not 2543 <= fy <= 2643:
        return Rejection(Reason.OUT_OF_RANGE, "fiscal_year", "expected a B.E. year 2543-2643")
    for name, v in (("progress_pct", ev.progress_pct), ("planned_pct", ev.planned_pct)):
        if not 0 <= v <= 100:
            return Rejection(Reason.PROGRESS_OUT_OF_RANGE, name, "expected 0-100")
    alloc, oblig, disb = ev.budget_allocated_thb, ev.budget_obligated_thb, ev.budget_disbursed_thb
    for name, v in (
        ("budget_allocated_thb", alloc),
        ("budget_obligated_thb", oblig),
        ("budget_disbursed_thb", disb),
    ):
        if v < 0 or v > 1e13:
            return Rejection(Reason.OUT_OF_RANGE, name, "expected 0-1e13")
    if disb > oblig:
        return Rejection(Reason.BUDGET_INCONSISTENT, "budget_disbursed_thb", "above obligated")
    if oblig > alloc:
        return Rejection(Reason.BUDGET_INCONSISTENT, "budget_obligated_thb", "above allocated")
    for name, h in (
        ("target_households", ev.target_households),
        ("reached_households", ev.reached_households),
    ):
        if h is not None and not 0 <= h <= 10_000_000:
            return Rejection(Reason.OUT_OF_RANGE, name, "expected 0-10000000")
    goals = ev.sdg_goals
    if goals is not None:
        for g in goals:
            if not 1 <= g <= 17:
                return Rejection(Reason.OUT_OF_RANGE, "sdg_goals", "expected goals 1-17")
        if len(set(goals)) != len(goals):
            return Rejection(Reason.INCONSISTENT, "sdg_goals", "repeated goal")
    dims = ev.tpmap_dimensions
    if dims is not None and len(set(dims)) != len(dims):
        return Rejection(Reason.INCONSISTENT, "tpmap_dimensions", "repeated dimension")
    return None


# -- naming the reason of a payload the typed decode refused (the rare path) -------------------


def _explain(raw: bytes, decode_error: str) -> Rejection:
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # where, not what: orjson's message is position only, but say it ourselves
        try:
            raw.decode()
        except UnicodeDecodeError as bad:
            return Rejection(Reason.MALFORMED_JSON, detail=f"not UTF-8 at byte {bad.start}")
        return Rejection(Reason.MALFORMED_JSON, detail=f"not JSON at character {exc.pos}")
    if type(d) is not dict:
        return Rejection(Reason.NOT_AN_OBJECT, detail=type(d).__name__)
    for name in _NOT_PERSONAL:
        v = d.get(name)
        rej = _personal(name, v) if type(v) is str else None
        if rej is not None:
            return rej
    schema = d.get("schema")
    if schema is None:
        return Rejection(Reason.MISSING_FIELD, "schema")
    if type(schema) is not str:
        return Rejection(Reason.WRONG_TYPE, "schema", "expected a string")
    if schema not in _ALLOWED:
        return Rejection(Reason.UNKNOWN_SCHEMA, "schema", schema if plain_code(schema) else "")
    if not d.keys() <= _ALLOWED[schema]:
        return _unknown_field("", [k for k in d if k not in _ALLOWED[schema]])
    for name in _REQUIRED[schema]:
        if name not in d:
            return Rejection(Reason.MISSING_FIELD, name)
    for name, value in d.items():
        if value is None or name not in _SHAPES:
            continue
        types, allowed = _SHAPES[name]
        if not _type_ok(value, types):
            return Rejection(Reason.WRONG_TYPE, name, f"expected {types[0].__name__}")
        if allowed is not None and value not in allowed:
            return Rejection(Reason.UNKNOWN_ENUM, name, value if plain_code(value) else "")
    rej = _explain_lists(d)
    if rej is None and d.get("complainant") is not None:
        rej = _complainant(d["complainant"])
    # the typed decode saw something the checks above did not: say where it looked
    return rej or Rejection(Reason.INVALID_FORMAT, detail=_where(decode_error))


def _where(decode_error: str) -> str:
    """The JSON path of msgspec's message (contract names and indexes by now), not the rest."""
    m = _MSGSPEC_PATH(decode_error)
    return f"refused at {m.group(1)}" if m else "refused by the typed decode"


_MSGSPEC_PATH = re.compile(r".* - at `(\$[A-Za-z0-9_.\[\]]{0,80})`$").fullmatch


def _unknown_field(prefix: str, extra: list[Any]) -> Rejection:
    """Names a field missing from the contract only when it looks like a field name: a JSON
    key can be anything, also a person's name or number."""
    plain = sorted(str(k) for k in extra if plain_name(k))
    if plain:
        return Rejection(Reason.UNKNOWN_FIELD, prefix + plain[0])
    return Rejection(Reason.UNKNOWN_FIELD, prefix + "?", "a key that is not a field name")


def _explain_lists(d: dict[str, Any]) -> Rejection | None:
    goals = d.get("sdg_goals")
    if goals is not None:
        if type(goals) is not list:
            return Rejection(Reason.WRONG_TYPE, "sdg_goals", "expected a list of 1-17")
        if any(type(g) is not int for g in goals):
            return Rejection(Reason.WRONG_TYPE, "sdg_goals", "expected integers")
    dims = d.get("tpmap_dimensions")
    if dims is not None:
        if type(dims) is not list:
            return Rejection(Reason.WRONG_TYPE, "tpmap_dimensions", "expected a list")
        for v in dims:
            if type(v) is not str:
                return Rejection(Reason.WRONG_TYPE, "tpmap_dimensions", "expected strings")
            if v not in _TPMAP:
                shown = v if plain_code(v) else ""
                return Rejection(Reason.UNKNOWN_ENUM, "tpmap_dimensions", shown)
    return None


def _complainant(person: Any) -> Rejection | None:
    if type(person) is not dict:
        return Rejection(Reason.WRONG_TYPE, "complainant", "expected an object")
    if not person.keys() <= _COMPLAINANT:
        return _unknown_field("complainant.", [k for k in person if k not in _COMPLAINANT])
    for name in c.COMPLAINANT_FIELDS:
        v = person.get(name)
        if v is not None and type(v) is not str:
            return Rejection(Reason.WRONG_TYPE, f"complainant.{name}", "expected a string")
    return None
