"""Bad events of every rejection kind a producer can cause, made from otherwise good events."""

from __future__ import annotations

import random
from typing import Any, Final

import orjson

from producers.simulator.people import citizen_id, corrupt_citizen_id, phone
from streams.contract import encode
from streams.reasons import Reason
from streams.validation import MAX_PAYLOAD_BYTES

__all__ = ["PRODUCIBLE", "make_bad"]

#: every reason a producer can cause (all of them: the dead-letter path must always be exercised)
PRODUCIBLE: Final = tuple(Reason)

# which base event each reason corrupts
_PROJECT_ONLY: Final = frozenset(
    {
        Reason.WRONG_TOPIC,
        Reason.OUT_OF_RANGE,
        Reason.PROGRESS_OUT_OF_RANGE,
        Reason.BUDGET_INCONSISTENT,
    }
)
_GRIEVANCE_ONLY: Final = frozenset({Reason.INVALID_CITIZEN_ID})


def make_bad(
    rng: random.Random,
    reason: Reason,
    grievance: dict[str, Any],
    project: dict[str, Any],
    foreign_subdistrict: str,
) -> tuple[str, bytes, dict[str, Any] | None]:
    """(topic stream, payload, decoded event or None) of a bad event that is rejected for
    ``reason`` (for wrong_key: a valid event, the caller sends it under another key).
    ``grievance`` must be a valid *received* event and ``project`` a valid report
    (both are modified); ``foreign_subdistrict`` a real subdistrict of another district."""
    if reason in _PROJECT_ONLY:
        use_project = True
    elif reason in _GRIEVANCE_ONLY:
        use_project = False
    else:
        use_project = rng.random() < 0.3
    e = project if use_project else grievance
    stream = "project" if use_project else "grievance"
    variant = rng.randrange(3)

    if reason is Reason.MALFORMED_JSON:
        raw = encode(e)
        options = (
            raw[: rng.randint(1, len(raw) - 1)],  # cut off in transit
            raw.replace(b'"', b"'"),  # a Python repr, not JSON
            b"\xff\xfe" + raw[:40],  # a UTF-16 byte-order mark and garbage
        )
        return stream, options[variant], None
    if reason is Reason.NOT_AN_OBJECT:
        options = (orjson.dumps([e]), b'"grievance.v1"', b"null")
        return stream, options[variant], None
    if reason is Reason.OVERSIZED:
        raw = encode(e)
        return stream, raw + b" " * (MAX_PAYLOAD_BYTES + 1 - len(raw)), None
    if reason is Reason.WRONG_TOPIC:
        return "grievance", encode(e), e  # a valid project report on the grievance topic
    if reason is Reason.WRONG_KEY:
        return stream, encode(e), e

    if reason is Reason.UNKNOWN_SCHEMA:
        e["schema"] = ("grievance.v2", "project.v0", "complaint")[variant]
    elif reason is Reason.MISSING_FIELD:
        required = ["schema", "event_id", "occurred_at", "district_code", "source"]
        required += (
            ["project_id", "program", "status", "budget_disbursed_thb"]
            if use_project
            else ["grievance_id", "type", "category", "due_at"]
        )
        del e[rng.choice(required)]
    elif reason is Reason.UNKNOWN_FIELD:
        # personal data at the top level is a classic integration mistake
        e[("remarks", "citizen_id", "province")[variant]] = (
            citizen_id(rng) if variant == 1 else "ไม่ระบุ"
        )
    elif reason is Reason.WRONG_TYPE:
        if variant == 0:
            e["district_code"] = int(e["district_code"])
        elif variant == 1 and use_project:
            e["progress_pct"] = str(e["progress_pct"])
        else:
            e["source"] = 1567
    elif reason is Reason.INVALID_FORMAT:
        if variant == 0:
            e["event_id"] = f"EVT-{rng.getrandbits(24)}"
        elif variant == 1:
            e["occurred_at"] = "03/05/2568 10:00"  # a Thai B.E. date, not RFC 3339
        else:
            e["district_code"] = e["district_code"][:2] + "-" + e["district_code"][2:]
    elif reason is Reason.UNKNOWN_DISTRICT:
        e["district_code"] = ("1099", "3899", "9999")[variant]
        e.pop("subdistrict_code", None)
    elif reason is Reason.UNKNOWN_SUBDISTRICT:
        e["subdistrict_code"] = foreign_subdistrict if variant else e["district_code"] + "99"
    elif reason is Reason.UNKNOWN_ENUM:
        if use_project:
            e["status"] = ("late", "done", "on_hold")[variant]
        else:
            e[("category", "channel", "type")[variant]] = ("weather", "fax", "pending")[variant]
    elif reason is Reason.IMPOSSIBLE_TIME:
        e["occurred_at"] = ("1999-12-31T23:59:59+07:00", "2100-01-01T09:00:00+07:00")[variant % 2]
        e.pop("due_at", None)
        if not use_project:
            e["type"] = "assigned"  # due_at is only required on received
    elif reason is Reason.INVALID_CITIZEN_ID:
        e["complainant"] = {"citizen_id": corrupt_citizen_id(rng)}
    elif reason is Reason.OUT_OF_RANGE:
        if variant == 0:
            e["fiscal_year"] = e["fiscal_year"] - 543  # a Gregorian year, not B.E.
        elif variant == 1:
            e["sdg_goals"] = [1, 18]
        else:
            e["budget_allocated_thb"] = -float(e["budget_allocated_thb"]) - 1
    elif reason is Reason.PROGRESS_OUT_OF_RANGE:
        e["progress_pct"] = (120.0, -5.0, 100.5)[variant]
    elif reason is Reason.BUDGET_INCONSISTENT:
        e["budget_disbursed_thb"] = round(e["budget_obligated_thb"] * 1.2 + 1000, 2)
        e["budget_allocated_thb"] = max(e["budget_allocated_thb"], e["budget_disbursed_thb"])
    elif reason is Reason.PERSONAL_DATA_IN_FIELD:
        # a person's number where a system's identifier belongs
        if variant == 0:
            e["source"] = phone(rng)
        elif variant == 1:
            e["project_id" if use_project else "grievance_id"] = f"C-{citizen_id(rng)}"
        else:
            e["event_id"] = citizen_id(rng)
    elif reason is Reason.INCONSISTENT:
        if use_project:
            e["sdg_goals"] = [1, 1]
        else:
            e["due_at"] = "2001-01-01T00:00:00+07:00"  # due before it was received
    return stream, encode(e), e
