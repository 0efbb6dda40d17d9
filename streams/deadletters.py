"""Dead letters without personal data: where a rejected record is, why, and the payload's shape.

A dead letter keeps what an engineer needs to fix a producer — topic, partition, offset, size,
reason, field, detail, a keyed digest of the bytes and the payload's structure (field names
and value types) — and no value the event sent, except plain codes: enumeration values, known
district codes, a UUID event_id, a source that is a system name. The original bytes stay in the
source topic under its retention; the offset finds them there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from streams import contract as c
from streams.geography import district_codes, subdistrict_codes
from streams.pdpa import Pseudonymizer, personal_number, plain_name
from streams.reasons import Reason, Rejection
from streams.validation import SOURCE_PATTERN

__all__ = ["DeadLetter", "dead_letter", "rejected_claims", "structure"]

_DISTRICTS: Final = district_codes()
_SUBDISTRICTS: Final = subdistrict_codes()
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
_CLAIMED = re.compile(r"[0-9]{4}").fullmatch
_SOURCE = re.compile(SOURCE_PATTERN).fullmatch
#: the values a field may keep in a structure: the contract's closed sets
_CODES: Final[dict[str, frozenset[Any]]] = {
    "schema": c.SCHEMAS,
    "type": frozenset(c.GRIEVANCE_TYPES),
    "category": frozenset(c.CATEGORIES),
    "channel": frozenset(c.CHANNELS),
    "priority": frozenset(c.PRIORITIES),
    "program": frozenset(c.PROGRAMS),
    "status": frozenset(c.PROJECT_STATUSES),
    "tpmap_dimensions": frozenset(c.TPMAP_DIMENSIONS),
    "district_code": _DISTRICTS,
    "subdistrict_code": _SUBDISTRICTS,
}
_MAX_DEPTH: Final = 4
_MAX_ENTRIES: Final = 64
_MAX_ITEMS: Final = 4


class Record(Protocol):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: its dead_letters row, its dead-letter topic record and key, and the
    event's own claims (for counters, quality rows and the log line)."""

    row: tuple[Any, ...]
    record: bytes
    key: bytes | None
    claimed: str
    district: str
    source: str
    event_id: str
    digest: str


def _parse(rec: Record, rej: Rejection) -> Any:
    if rec.value is None or rej.reason in (Reason.MALFORMED_JSON, Reason.OVERSIZED):
        return None
    try:
        return orjson.loads(rec.value)
    except orjson.JSONDecodeError:
        return None


def _claims(obj: Any) -> tuple[str, str, str, str]:
    """(claimed district, known district or '', source, event_id): each only when it is a
    plain code, since a bad event may carry a name or a number in any field."""
    fields = obj if isinstance(obj, dict) else {}
    claimed = fields.get("district_code")
    claimed = claimed if isinstance(claimed, str) and _CLAIMED(claimed) else ""
    source = fields.get("source")
    if not (isinstance(source, str) and _SOURCE(source) and not personal_number(source)):
        source = ""
    event_id = fields.get("event_id")
    event_id = event_id if isinstance(event_id, str) and _UUID(event_id) else ""
    return claimed, claimed if claimed in _DISTRICTS else "", source, event_id


def rejected_claims(rec: Record, rej: Rejection) -> tuple[Any, str, str, str, str]:
    """What a rejected record says of itself that may be kept: (parsed JSON or None, claimed
    district, known district or "", source, event_id)."""
    obj = _parse(rec, rej)
    return (obj, *_claims(obj))


def structure(value: Any, name: str = "", depth: int = 0) -> Any:
    """The shape of a decoded payload: keys that are field names (others as ?1, ?2, ...),
    values as their JSON type (strings with their length), closed-set codes as themselves."""
    if isinstance(value, dict):
        if depth >= _MAX_DEPTH:
            return f"object({len(value)})"
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items(), 1):
            if i > _MAX_ENTRIES:
                out["…"] = f"{len(value) - _MAX_ENTRIES} more"
                break
            key = k if plain_name(k) else f"?{i}"
            out[key] = structure(v, key, depth + 1)
        return out
    if isinstance(value, list):
        if depth >= _MAX_DEPTH:
            return f"list({len(value)})"
        items = [structure(v, name, depth + 1) for v in value[:_MAX_ITEMS]]
        return [f"list({len(value)})", *items]
    if isinstance(value, str):
        codes = _CODES.get(name)
        return value if codes is not None and value in codes else f"string({len(value)})"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "null"


def _unparsed(raw: bytes | None, rej: Rejection) -> dict[str, Any]:
    if raw is None:
        return {"json": "tombstone"}
    if rej.reason is Reason.OVERSIZED:
        return {"json": "not read: oversized"}
    try:
        raw.decode()
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    return {"json": "invalid", "utf8": utf8}


def dead_letter(
    rec: Record,
    rej: Rejection,
    topic: str,
    partition: int,
    pseudonymizer: Pseudonymizer,
    stamp: int | None = None,
) -> DeadLetter:
    """The dead letter of ``rec``, rejected for ``rej``, read from ``topic``/``partition``.
    ``stamp``: the record's offset across log generations (the table's key; default: its
    offset); the topic record keeps the Kafka offset, where the bytes are."""
    obj = _parse(rec, rej)
    claimed, district, source, event_id = _claims(obj)
    raw = rec.value
    shape = structure(obj) if obj is not None else _unparsed(raw, rej)
    size = len(raw) if raw is not None else 0
    digest = pseudonymizer.digest(raw) if raw is not None else ""
    ts = rec.timestamp if rec.timestamp is not None else 0
    payload = orjson.dumps(shape).decode()
    row = (
        ts,
        topic,
        partition,
        rec.offset if stamp is None else stamp,
        rej.reason.value,
        rej.field,
        rej.detail,
        source,
        district,
        event_id,
        payload,
        size,
        digest,
    )
    record = orjson.dumps(
        {
            "reason": rej.reason.value,
            "field": rej.field,
            "detail": rej.detail,
            "explain": rej.explain(),
            "topic": topic,
            "partition": partition,
            "offset": rec.offset,
            "timestamp": ts,
            "source": source,
            "district_code": district,
            "event_id": event_id,
            "size": size,
            "digest": digest,
            "structure": shape,
        }
    )
    return DeadLetter(
        row, record, district.encode() or None, claimed, district, source, event_id, digest
    )
