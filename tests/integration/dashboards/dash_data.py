"""The simulated input of the dashboard tests: ~3 weeks of the national simulator's events
ending shortly before the wall clock, plus a surge burst in one district."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from producers.simulator.generator import Item, SimOptions, Simulator
from streams.contract import encode
from streams.sla import sla_days
from streams.timeutil import BANGKOK_OFFSET

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: simulated days: more than the 14 days after which a silent project is stale, plus the week
#: a project may wait for its first report, so stale projects exist
SPAN_DAYS = 24
#: the data ends this long before the wall clock: further back than the worker's "live"
#: threshold (15 min), so each partition's clock is its watermark (gauges are deterministic),
#: while dead letters and rejections are stamped with the wall clock at production
END_BEFORE_NOW_MS = 20 * MINUTE_MS
#: phase 1 holds the events before this many hours before the end
PAST_HOURS = 36
#: ~2 500 simulated events a day (rate / speedup per simulated second): ~60 000 events
SIM: dict[str, Any] = {
    "seed": 20251001,
    "rate": 2000.0,
    "speedup": 70_000.0,
    "bad_share": 0.02,
    "duplicate_share": 0.01,
    "late_share": 0.03,
    "surge_share": 0.25,
}
#: a burst of flood complaints in one district early in the last hour. The simulator's own
#: surges (flood/drought over 2-4 provinces) are real but too thin at this test volume for any
#: district to reach the surge rules' minimum of 10 received in an hour
BURST_DISTRICT = "5001"
BURST_SIZE = 16
BURST_MIN = (58, 44)  # from .. to, minutes before the end
#: later steps of some burst cases (assigned), minutes before the end: the district's stream
#: clock is its partition's watermark, and on a quiet evening or weekend the simulator may send
#: that partition nothing for longer than the surge rules' `for` (10 min), so without these the
#: surge stays pending whenever the test runs at such an hour
BURST_FOLLOW_UP_MIN = (40, 32, 20, 8)


def simulate(end_ms: int) -> list[Item]:
    """Every item the simulator makes for SPAN_DAYS ending at end_ms (late items still held
    back at the end are never sent, like events that never arrived)."""
    opts = SimOptions(start_ms=end_ms - SPAN_DAYS * DAY_MS, **SIM)
    items = []
    for it in Simulator(opts).items():
        if it.occurred_ms > end_ms and not it.is_late:
            break
        items.append(it)
    return burst(items, end_ms)


def burst(items: list[Item], end_ms: int) -> list[Item]:
    """BURST_SIZE new flood cases (received events) in BURST_DISTRICT, made from simulated
    received events (their channel, priority, source), merged in time order."""
    templates = [
        it for it in items if it.reason is None and it.event and it.event.get("type") == "received"
    ]
    first, last = (end_ms - m * MINUTE_MS for m in BURST_MIN)
    made = []
    for i in range(BURST_SIZE):
        template = templates[i * 97 % len(templates)].event
        assert template is not None
        ms = first + (last - first) * i // (BURST_SIZE - 1)
        event = {
            k: v
            for k, v in template.items()
            if k not in ("complainant", "subdistrict_code", "agency")
        }
        event.update(
            event_id=str(uuid.UUID(int=(end_ms << 16) + i, version=4)),
            occurred_at=_rfc3339(ms),
            district_code=BURST_DISTRICT,
            grievance_id=f"G-{BURST_DISTRICT}-burst{i:04d}",
            category="flood",
            due_at=_rfc3339(ms + sla_days("flood", event["priority"]) * DAY_MS),
        )
        made.append(Item("grievance", BURST_DISTRICT, encode(event), event, None, ms))
    for i, m in enumerate(BURST_FOLLOW_UP_MIN):
        ms = end_ms - m * MINUTE_MS
        case = made[i].event
        assert case is not None
        event = {k: v for k, v in case.items() if k != "due_at"}
        event.update(
            event_id=str(uuid.UUID(int=(end_ms << 16) + BURST_SIZE + i, version=4)),
            occurred_at=_rfc3339(ms),
            type="assigned",
        )
        made.append(Item("grievance", BURST_DISTRICT, encode(event), event, None, ms))
    out = list(items)
    for it in made:
        at = next(
            (i for i, o in enumerate(out) if not o.is_late and o.occurred_ms > it.occurred_ms),
            len(out),  # nothing later (a quiet end): it goes last
        )
        out.insert(at, it)
    return out


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, BANGKOK_OFFSET).isoformat(timespec="milliseconds")


def split(items: list[Item], at_ms: int) -> int:
    """Index of the first item of phase 2: the first on-time item at or after at_ms (so every
    phase-1 watermark, and snapshot minute, is before at_ms's minute)."""
    return next(i for i, it in enumerate(items) if not it.is_late and it.occurred_ms >= at_ms)
