"""Grievance state of one district: its cases, their latest step and due times."""

from __future__ import annotations

from typing import Any, Final

import orjson

from streams.contract import OPEN_TYPES

__all__ = ["RESOLUTION_BUCKETS", "Case", "CaseBook"]

#: upper bounds (seconds) of the cumulative resolution-time histogram
RESOLUTION_BUCKETS: Final = (3600, 14400, 86400, 259200, 604800, 1296000, 2592000)
#: tie-break for events of one case with the same occurred_at: the later lifecycle step wins
_RANK: Final = {
    "received": 0,
    "assigned": 1,
    "in_progress": 2,
    "forwarded": 3,
    "escalated": 4,
    "reopened": 5,
    "resolved": 6,
    "rejected": 7,
    "closed": 8,
}
_OPEN: Final = OPEN_TYPES


class Case:
    """One grievance case, as far as the district's metrics need it (no personal data)."""

    __slots__ = ("category", "due_ms", "priority", "received_ms", "status", "status_ms")

    def __init__(
        self,
        category: str,
        priority: str,
        status: str,
        status_ms: int,
        received_ms: int | None,
        due_ms: int | None,
    ) -> None:
        self.category = category
        self.priority = priority
        self.status = status
        self.status_ms = status_ms
        self.received_ms = received_ms
        self.due_ms = due_ms

    @property
    def open(self) -> bool:
        return self.status in _OPEN

    def as_list(self) -> list[Any]:
        return [
            self.category,
            self.priority,
            self.status,
            self.status_ms,
            self.received_ms,
            self.due_ms,
        ]


class CaseBook:
    """The cases of one district in one topic-partition.

    ``stamp`` is the offset of the last event applied: an event at or below it was applied
    already (a replay after a crash) and is skipped, which makes re-delivery harmless.
    """

    __slots__ = ("cases", "events", "last_event_ms", "stamp")

    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.stamp = -1
        self.last_event_ms = 0
        self.events = 0  # applied by this process (for the live summary; not persisted)

    def apply(
        self,
        gid: str,
        typ: str,
        category: str,
        priority: str,
        ms: int,
        due_ms: int | None,
    ) -> tuple[int | None, int | None]:
        """Apply one checked grievance event (a lifecycle step of case ``gid``).

        Returns (received_ms, due_ms) of the case when the step is a resolution, for the
        resolution-time and SLA metrics; (None, None) otherwise.
        """
        case = self.cases.get(gid)
        self.events += 1
        if ms > self.last_event_ms:
            self.last_event_ms = ms
        if case is None:
            case = Case(category, priority, typ, ms, ms if typ == "received" else None, due_ms)
            self.cases[gid] = case
        else:
            if typ == "received":
                if case.received_ms is None or ms < case.received_ms:
                    case.received_ms = ms
                if due_ms is not None:
                    case.due_ms = due_ms
            elif case.due_ms is None and due_ms is not None:
                case.due_ms = due_ms
            if ms > case.status_ms or (ms == case.status_ms and _RANK[typ] >= _RANK[case.status]):
                case.status = typ
                case.status_ms = ms
                case.category = category
                case.priority = priority
        if typ == "resolved":
            return case.received_ms, case.due_ms
        return None, None

    def purge_closed(self, before_ms: int) -> int:
        """Forget finished cases (resolved, closed, rejected) last touched before ``before_ms``.

        A late step for a forgotten case re-creates it; only its resolution time is lost then.
        """
        drop = [gid for gid, c in self.cases.items() if not c.open and c.status_ms < before_ms]
        for gid in drop:
            del self.cases[gid]
        return len(drop)

    def gauges(self, clock_ms: int) -> dict[tuple[str, str, str], float]:
        """(metric, dim1, dim2) -> value of every non-zero gauge at ``clock_ms``."""
        out: dict[tuple[str, str, str], float] = {}
        max_age = 0
        for c in self.cases.values():
            if c.status not in _OPEN:
                continue
            key = ("grievance_open", c.category, c.priority)
            out[key] = out.get(key, 0) + 1
            if c.due_ms is not None and c.due_ms < clock_ms:
                key = ("grievance_overdue", c.category, c.priority)
                out[key] = out.get(key, 0) + 1
            if c.priority == "urgent" and c.status == "received":
                key = ("grievance_urgent_unassigned", c.category, "")
                out[key] = out.get(key, 0) + 1
                since = c.received_ms if c.received_ms is not None else c.status_ms
                max_age = max(max_age, clock_ms - since)
        if max_age > 0:
            out[("grievance_urgent_unassigned_max_age_seconds", "", "")] = max_age / 1000
        if self.last_event_ms:
            out[("last_event_age_seconds", "grievance", "")] = max(
                0.0, (clock_ms - self.last_event_ms) / 1000
            )
        return out

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "stamp": self.stamp,
                "last": self.last_event_ms,
                "cases": {gid: c.as_list() for gid, c in self.cases.items()},
            }
        )

    @classmethod
    def loads(cls, raw: bytes) -> CaseBook:
        data = orjson.loads(raw)
        book = cls()
        book.stamp = data["stamp"]
        book.last_event_ms = data["last"]
        book.cases = {gid: Case(*fields) for gid, fields in data["cases"].items()}
        return book
