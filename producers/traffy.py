"""Traffy Fondue open-data CSV rows -> grievance lifecycle events (no free text copied).

State mapping (a row is a snapshot of a ticket, not its history, so only what the row proves
is emitted; every ticket gets ``received`` at ``timestamp``; the final state's event is dated
``last_activity``):

=================  ==========================  ================================================
Traffy state       events                      why
=================  ==========================  ================================================
start              received                    reported, nobody has taken it yet
inprogress         received, in_progress       an agency is working on it
follow             received, in_progress       "follow-up": still being worked on
forward            received, forwarded         passed to another agency
finish             received, resolved          Traffy's "finished" is the agency's resolution;
                                               there is no separate citizen confirmation, so no
                                               ``closed`` is invented
irrelevant         received, rejected          not a matter for the agency
=================  ==========================  ================================================

``count_reopen`` = n adds n ``reopened`` events spread evenly between the two known times (the
row does not say when they happened). Thai state labels of the export (เสร็จสิ้น,
กำลังดำเนินการ, รอรับเรื่อง, ส่งต่อ, ติดตาม, ไม่เกี่ยวข้อง) are read too.

Type mapping: see TYPE_CATEGORY; a ticket with several types takes the first that maps to
something other than ``other``.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import geothai
from geothai._normalize import normalize

from streams.contract import GRIEVANCE_SCHEMA
from streams.sla import sla_days
from streams.timeutil import BANGKOK_OFFSET, to_rfc3339

__all__ = [
    "COLUMNS",
    "STATE_STEPS",
    "TYPE_CATEGORY",
    "Mapped",
    "TraffySummary",
    "read_traffy",
    "resolve_district",
]

COLUMNS: Final = (
    "ticket_id", "type", "organization", "comment", "photo", "photo_after", "coords", "address",
    "subdistrict", "district", "province", "timestamp", "state", "star", "count_reopen",
    "last_activity",
)  # fmt: skip

#: Traffy problem type (Bangkok's list) -> our category
TYPE_CATEGORY: Final[dict[str, str]] = {
    "น้ำท่วม": "flood",  # flooding
    "ท่อระบายน้ำ": "wastewater",  # drains
    "คลอง": "wastewater",  # canals
    "ความสะอาด": "environment",  # cleanliness, rubbish
    "เสียงรบกวน": "environment",  # noise
    "PM2.5": "environment",
    "ต้นไม้": "environment",  # trees
    "สัตว์จรจัด": "environment",  # stray animals
    "ถนน": "utilities",  # roads
    "ทางเท้า": "utilities",  # footpaths
    "แสงสว่าง": "utilities",  # street lighting
    "สะพาน": "utilities",  # bridges
    "สายไฟ": "utilities",  # overhead cables
    "ป้าย": "utilities",  # signs
    "ป้ายจราจร": "utilities",  # traffic signs
    "จราจร": "utilities",  # traffic
    "กีดขวาง": "utilities",  # obstructions on public ways
    "การเดินทาง": "utilities",  # public transport
    "ห้องน้ำ": "utilities",  # public toilets
    "น้ำประปา": "utilities",  # tap water
    "ไฟฟ้า": "utilities",  # electricity
    "ร้องเรียน": "misconduct",  # complaints about officials / services
    "คนจรจัด": "poverty",  # homeless people
    "ความปลอดภัย": "other",  # safety
    "เสนอแนะ": "other",  # suggestions
    "สอบถาม": "other",  # questions
}

#: state -> lifecycle event types after `received`
STATE_STEPS: Final[dict[str, tuple[str, ...]]] = {
    "start": (),
    "inprogress": ("in_progress",),
    "follow": ("in_progress",),
    "forward": ("forwarded",),
    "finish": ("resolved",),
    "irrelevant": ("rejected",),
}
_THAI_STATES: Final = {
    "รอรับเรื่อง": "start",
    "กำลังดำเนินการ": "inprogress",
    "ติดตาม": "follow",
    "ส่งต่อ": "forward",
    "ส่งเรื่องต่อ": "forward",
    "เสร็จสิ้น": "finish",
    "ไม่เกี่ยวข้อง": "irrelevant",
}
_TICKET = re.compile(r"[A-Za-z0-9_-]{1,56}").fullmatch
#: namespace of the event ids: uuid5(namespace, "ticket:step") is the same on every import
NAMESPACE: Final = uuid.UUID("6f0c2a52-3f55-5c0e-9a7e-5b2f7f0e7a11")
_BANGKOK_ALIASES: Final = {"กทม", "กรุงเทพ", "กรุงเทพฯ", "bangkok", "กรุงเทพมหานคร"}


@dataclass(frozen=True, slots=True)
class Mapped:
    """One event made from a row: when it happened, its key and the event."""

    occurred_ms: int
    row: int
    event: dict[str, Any]


@dataclass
class TraffySummary:
    rows: int = 0
    mapped_rows: int = 0
    events: int = 0
    unmapped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)  # reason -> first row numbers
    no_subdistrict: int = 0

    def reject(self, reason: str, row: int) -> None:
        self.unmapped[reason] += 1
        rows = self.examples.setdefault(reason, [])
        if len(rows) < 5:
            rows.append(row)


@cache
def _provinces() -> dict[str, str]:
    out: dict[str, str] = {}
    for p in geothai.provinces():
        out[normalize(p.name_th)] = p.code
        out[normalize(p.name_en)] = p.code
    for alias in _BANGKOK_ALIASES:
        out[normalize(alias)] = "10"
    out[normalize("อยุธยา")] = "14"
    return out


@cache
def _districts_by_name() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for p in geothai.provinces():
        for d in geothai.districts(p.code):
            for key in {normalize(d.name_th), normalize(d.name_en)}:
                out.setdefault(key, []).append(d.code)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def resolve_district(district: str, province: str) -> tuple[str | None, str]:
    """(district code, '') or (None, reason) for Thai/English names as people write them."""
    p_name = normalize(province.strip()) if province.strip() else ""
    province_code = _provinces().get(p_name) if p_name else None
    if p_name and province_code is None:
        return None, "unknown_province"
    d_name = normalize(district.strip())
    if not d_name:
        return None, "missing_district"
    if d_name in ("เมือง", "mueang", "อเมือง"):
        # "อ.เมือง": the capital district, code XX01; Bangkok has none
        if province_code is None:
            return None, "ambiguous_district"
        if province_code == "10":
            return None, "unknown_district"
        return province_code + "01", ""
    everywhere = _districts_by_name().get(d_name, ())
    candidates = everywhere
    if province_code is not None:
        candidates = tuple(c for c in everywhere if c[:2] == province_code)
        if not candidates:
            # "เมืองขอนแก่น" written as "เมือง ขอนแก่น" or the province name alone
            capital = _districts_by_name().get("เมือง" + p_name, ())
            if d_name == p_name and capital:
                return capital[0], ""
            return None, "district_not_in_province" if everywhere else "unknown_district"
    if not candidates:
        return None, "unknown_district"
    if len(candidates) > 1:
        return None, "ambiguous_district"
    return candidates[0], ""


@cache
def _subdistricts_of(district_code: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in geothai.subdistricts(district_code):
        out[normalize(s.name_th)] = s.code
        out[normalize(s.name_en)] = s.code
    return out


def _parse_time(text: str) -> int | None:
    """Epoch ms of a Traffy time; naive times are Bangkok time."""
    text = text.strip()
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=BANGKOK_OFFSET)
    return int(dt.timestamp() * 1000)


def _category(types: str) -> str:
    names = [t.strip() for t in types.strip().strip("{}").split(",") if t.strip()]
    mapped = [TYPE_CATEGORY.get(n, "other") for n in names]
    return next((m for m in mapped if m != "other"), "other")


def _time_text(ms: int) -> str:
    return to_rfc3339(datetime.fromtimestamp(ms / 1000, BANGKOK_OFFSET))


def map_row(row: dict[str, str], number: int, summary: TraffySummary) -> list[Mapped]:
    """The events of one row (empty when it cannot be mapped; the reason goes to the summary)."""
    ticket = (row.get("ticket_id") or "").strip()
    if not ticket:
        summary.reject("missing_ticket_id", number)
        return []
    if not _TICKET(ticket):
        summary.reject("invalid_ticket_id", number)
        return []
    raw_state = (row.get("state") or "").strip()
    state = _THAI_STATES.get(raw_state, raw_state.lower())
    if state not in STATE_STEPS:
        summary.reject("unknown_state", number)
        return []
    t0 = _parse_time(row.get("timestamp") or "")
    if t0 is None:
        summary.reject("invalid_timestamp", number)
        return []
    district, why = resolve_district(row.get("district") or "", row.get("province") or "")
    if district is None:
        summary.reject(why, number)
        return []
    last = _parse_time(row.get("last_activity") or "")
    t_end = max(t0 + 1000, last if last is not None else t0 + 1000)
    reopen_text = (row.get("count_reopen") or "0").strip() or "0"
    try:
        reopens = max(0, min(int(float(reopen_text)), 50))
    except ValueError:
        summary.reject("invalid_count_reopen", number)
        return []
    category = _category(row.get("type") or "")
    base: dict[str, Any] = {
        "schema": GRIEVANCE_SCHEMA,
        "district_code": district,
        "source": "traffy",
        "grievance_id": f"traffy-{ticket}",
        "category": category,
        "channel": "traffy",
        "priority": "normal",
    }
    sub = _subdistricts_of(district).get(normalize(row.get("subdistrict") or "-"))
    if sub:
        base["subdistrict_code"] = sub
    else:
        summary.no_subdistrict += 1
    steps: list[tuple[int, str]] = [(t0, "received")]
    final = STATE_STEPS[state]
    for i in range(1, reopens + 1):
        steps.append((t0 + (t_end - t0) * i // (reopens + 1), "reopened"))
    steps += [(t_end, kind) for kind in final]
    out = []
    for n, (ms, kind) in enumerate(steps):
        event = {
            **base,
            "event_id": str(uuid.uuid5(NAMESPACE, f"{ticket}:{n}:{kind}")),
            "occurred_at": _time_text(ms),
            "type": kind,
        }
        if kind == "received":
            event["due_at"] = _time_text(ms + sla_days(category, "normal") * 86_400_000)
        out.append(Mapped(ms, number, event))
    summary.mapped_rows += 1
    summary.events += len(out)
    return out


def read_traffy(path: Path, summary: TraffySummary) -> Iterator[Mapped]:
    """Every event of the file in occurred_at order (rows are numbered from 2: line 1 is the
    header). Events are sorted in memory: about 1 KB per event."""
    events: list[Mapped] = []
    for number, row in _rows(path, summary):
        summary.rows += 1
        events.extend(map_row(row, number, summary))
    events.sort(key=lambda m: (m.occurred_ms, m.event["event_id"]))
    yield from events


def _rows(path: Path, summary: TraffySummary) -> Iterable[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"ticket_id", "district", "province", "timestamp", "state"} - set(
            reader.fieldnames or ()
        )
        if missing:
            raise ValueError(f"{path}: not a Traffy Fondue export (missing {sorted(missing)})")
        yield from enumerate(reader, start=2)
