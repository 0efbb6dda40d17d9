"""The pure, deterministic simulator: options in, an endless time-ordered stream of items out."""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from producers.simulator import badevents
from producers.simulator.lifecycles import AGENCIES, plan_case
from producers.simulator.model import (
    DAY_MS,
    DEFAULT_CATEGORY_MIX,
    HOUR_MS,
    RHYTHM_MAX,
    Country,
    SurgeSchedule,
    Weighted,
    is_office_hours,
    rhythm,
)
from producers.simulator.people import complainant
from producers.simulator.projects import Portfolio, Project
from streams.contract import GRIEVANCE_SCHEMA, encode
from streams.reasons import Reason
from streams.sla import sla_days
from streams.timeutil import BANGKOK_OFFSET

__all__ = ["Item", "SimOptions", "Simulator"]

log = logging.getLogger(__name__)

#: mean events per grievance case (measured on the generator, see tests) for sizing intake
EVENTS_PER_CASE: Final = 5.0
#: national intake when --speedup is not given: about ten times the Damrongdhama centres'
#: reported volume (220,662 matters in ~4 months of 2014), to exercise the pipeline
DEFAULT_CASES_PER_DAY: Final = 20_000.0

_CHANNELS: Final = {
    "hotline_1567": 0.35,
    "walk_in": 0.25,
    "web": 0.12,
    "line": 0.12,
    "letter": 0.06,
    "mobile_unit": 0.04,
    "traffy": 0.04,
    "other": 0.02,
}
# channels that only exist in office hours, and what people use instead at night
_OFFICE_ONLY: Final = {"walk_in": "hotline_1567", "mobile_unit": "line", "letter": "web"}
_SOURCE_OF_CHANNEL: Final = {"hotline_1567": "hotline-1567", "traffy": "traffy"}


@dataclass(frozen=True)
class SimOptions:
    """What the simulated workload looks like. ``start_ms`` is required for generation."""

    seed: int = 1
    start_ms: int = 0
    rate: float = 2000.0  # events per wall second
    # mean simulated seconds per wall second; None: whatever gives cases_per_day at this rate
    speedup: float | None = None
    cases_per_day: float = DEFAULT_CASES_PER_DAY  # used only when speedup is None
    bad_share: float = 0.01
    duplicate_share: float = 0.005
    late_share: float = 0.01
    category_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CATEGORY_MIX))
    urgent_share: float = 0.08
    complainant_share: float = 0.35
    subdistrict_share: float = 0.7
    surge_share: float = 0.04  # extra national intake per active flood/drought surge; 0 = off
    warmup_days: float = 7.0  # cases opened this long before start_ms are in flight at start
    projects_per_district: float = 5.0
    sla_overrides: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        for name in ("bad_share", "duplicate_share", "late_share"):
            v = getattr(self, name)
            if not 0 <= v < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5), got {v}")
        if self.rate <= 0 or (self.speedup is not None and self.speedup <= 0):
            raise ValueError("rate and speedup must be positive")
        if self.cases_per_day <= 0:
            raise ValueError("cases_per_day must be positive")

    @property
    def effective_speedup(self) -> float:
        """Simulated seconds per wall second (given, or derived from the intake and rate)."""
        if self.speedup is not None:
            return self.speedup
        reports_per_s = self.projects_per_district * 928 / (7 * 86_400)
        return self.rate / (self.cases_per_day * EVENTS_PER_CASE / 86_400 + reports_per_s)


@dataclass(slots=True)
class Item:
    """One message the simulator produces, with what it is (for tests and the lead's oracle)."""

    stream: str  # the topic's stream: grievance or project
    key: str | None  # the Kafka key (district_code)
    payload: bytes
    event: dict[str, Any] | None  # the event as sent, None when the payload is not an object
    reason: Reason | None  # the rejection the worker must give it, None for a good event
    occurred_ms: int  # the event's time (for bad events: when it was made)
    is_duplicate: bool = False
    is_late: bool = False


@dataclass(slots=True)
class _Case:
    grievance_id: str
    district_code: str
    subdistrict_code: str | None
    category: str
    channel: str
    priority: str
    due_ms: int
    agency: str
    person: dict[str, str] | None


_CASE: Final = 0
_PROJECT: Final = 1
_MAX_TIME: Final = 1 << 62


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, BANGKOK_OFFSET).isoformat(timespec="milliseconds")


class Simulator:
    """``Simulator(options).items()`` yields the same items for the same options, byte for byte."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        root = random.Random(options.seed)
        # independent streams per concern, all derived from the one seed
        self._rng = random.Random(root.getrandbits(64))
        self._bad_rng = random.Random(root.getrandbits(64))
        self.country = Country(options.category_mix)
        self._portfolio = Portfolio(
            random.Random(root.getrandbits(64)), self.country, options.projects_per_district
        )
        cases_per_day = self._cases_per_day(options)
        # the warm-up costs ~20 µs per case before the first event: cap it at ~150 000 cases
        warm_days = min(options.warmup_days, 150_000 / cases_per_day)
        self._warm_ms = options.start_ms - int(warm_days * DAY_MS)
        if cases_per_day > 200_000:
            log.warning(
                "a very large simulated country: %.0f new cases a simulated day (rate %s, "
                "speedup %.0f); cases in flight are held in memory (~1 KB each): a larger "
                "--speedup keeps it small",
                cases_per_day,
                options.rate,
                options.effective_speedup,
            )
        self.surges = SurgeSchedule(
            random.Random(root.getrandbits(64)), self.country, self._warm_ms, options.surge_share
        )
        self._channels = Weighted(list(_CHANNELS), list(_CHANNELS.values()))
        # the simulated intake: events per simulated ms that make `rate` per wall second
        # at `speedup`, minus the project reports
        self._projects: list[Project] = []
        events_per_ms = options.rate / options.effective_speedup / 1000
        n_projects = len(self.country.district_codes) * options.projects_per_district
        reports_per_ms = n_projects / (7 * DAY_MS)
        case_events_per_ms = max(events_per_ms - reports_per_ms, events_per_ms * 0.2)
        self._case_rate = case_events_per_ms / EVENTS_PER_CASE  # cases per ms at rhythm 1
        self._lam_max = (
            self._case_rate * RHYTHM_MAX * (1 + self.surges.max_active * options.surge_share)
        )
        self._heap: list[tuple[int, int, int, Any]] = []
        self._next_arrival = 0
        self._seq = 0

    @staticmethod
    def _cases_per_day(o: SimOptions) -> float:
        events_per_day = o.rate / o.effective_speedup * 86_400
        reports_per_day = 928 * o.projects_per_district / 7
        return max(events_per_day - reports_per_day, events_per_day * 0.2) / EVENTS_PER_CASE

    # -- the stream ----------------------------------------------------------------------------

    def items(self) -> Iterator[Item]:
        o = self.options
        bad_rng = self._bad_rng
        for p in self._portfolio.initial(o.start_ms):
            self._push(self._portfolio.next_report_ms(p, o.start_ms - 1), _PROJECT, p)
        self._next_arrival = self._warm_ms + int(self._rng.expovariate(self._lam_max))
        late: list[tuple[int, int, Item]] = []  # (release ms, seq, item)
        dups: list[tuple[int, int, Item]] = []  # (release at item count, seq, item)
        produced = 0
        now = o.start_ms
        started = False
        while True:
            produced += 1
            if dups and dups[0][0] <= produced:
                yield heapq.heappop(dups)[2]
                continue
            if late and late[0][0] <= now:
                yield heapq.heappop(late)[2]
                continue
            if started and bad_rng.random() < o.bad_share:
                yield self._bad(now)
                continue
            item = self._next_good()
            started = True
            if bad_rng.random() < o.late_share:
                # held back: delivered after events that happened later; most only a little late
                delay = (
                    bad_rng.randint(5_000, 55_000)
                    if bad_rng.random() < 0.7
                    else bad_rng.randint(HOUR_MS + 60_000, 3 * HOUR_MS)
                )
                item.is_late = True
                heapq.heappush(late, (item.occurred_ms + delay, self._tick(), item))
                produced -= 1
                continue
            # the newest time delivered so far: late events are released against it
            now = item.occurred_ms
            if bad_rng.random() < o.duplicate_share:
                copy = Item(
                    item.stream,
                    item.key,
                    item.payload,
                    item.event,
                    None,
                    item.occurred_ms,
                    is_duplicate=True,
                )
                heapq.heappush(dups, (produced + bad_rng.randint(1, 2000), self._tick(), copy))
            yield item

    def _next_good(self) -> Item:
        """The next good event in time order: a step already planned, or a new case."""
        o, rng, heap = self.options, self._rng, self._heap
        surge_max = 1 + self.surges.max_active * o.surge_share
        while True:
            if not heap or self._next_arrival < heap[0][0]:
                t = self._next_arrival
                self._next_arrival = t + int(rng.expovariate(self._lam_max)) + 1
                # thinning: accept in proportion to the intensity at t
                accept = rhythm(t) * (1 + len(self.surges.at(t)) * o.surge_share)
                if rng.random() * RHYTHM_MAX * surge_max < accept:
                    self._new_case(t)
                continue
            ms, _, kind, ref = heapq.heappop(heap)
            if ms < o.start_ms:
                continue  # a warm-up step that happened before the simulation starts
            if kind == _CASE:
                event = self._case_event(ref[0], ref[1], ms)
                return Item("grievance", ref[0].district_code, encode(event), event, None, ms)
            event = self._project_event(ref, ms)
            return Item("project", ref.district_code, encode(event), event, None, ms)

    # -- grievances ----------------------------------------------------------------------------

    def _new_case(self, t: int) -> None:
        o, rng, country = self.options, self._rng, self.country
        active = self.surges.active
        if active and rng.random() * (1 + len(active) * o.surge_share) >= 1:
            surge = active[rng.randrange(len(active))]
            province = sorted(surge.provinces)[rng.randrange(len(surge.provinces))]
            district = country.by_province[province].pick(rng)
            category = surge.kind
        else:
            district = country.districts.pick(rng)
            category = country.categories.pick(rng)
        urgent = rng.random() < o.urgent_share
        priority = "urgent" if urgent else "normal"
        channel = self._channels.pick(rng)
        if channel in _OFFICE_ONLY and not is_office_hours(t):
            channel = _OFFICE_ONLY[channel]
        subs = country.subdistricts.get(district)
        due = t + sla_days(category, priority, o.sla_overrides) * DAY_MS
        case = _Case(
            grievance_id=f"G-{district}-C{rng.getrandbits(40):010x}",
            district_code=district,
            subdistrict_code=rng.choice(subs)
            if subs and rng.random() < o.subdistrict_share
            else None,
            category=category,
            channel=channel,
            priority=priority,
            due_ms=due,
            agency=rng.choice(AGENCIES[category]),
            # only the received event carries the complainant; warm-up cases skip it
            person=complainant(rng)
            if t >= o.start_ms and rng.random() < o.complainant_share
            else None,
        )
        start = o.start_ms
        for ms, kind in plan_case(rng, t, due, urgent):
            if ms >= start:  # warm-up steps before the start are never sent
                self._push(ms, _CASE, (case, kind))

    def _case_event(self, case: _Case, kind: str, ms: int) -> dict[str, Any]:
        event: dict[str, Any] = {
            "schema": GRIEVANCE_SCHEMA,
            "event_id": self._uuid(),
            "occurred_at": _rfc3339(ms),
            "district_code": case.district_code,
            "source": _SOURCE_OF_CHANNEL.get(case.channel, "damrongdhama-center"),
            "grievance_id": case.grievance_id,
            "type": kind,
            "category": case.category,
            "channel": case.channel,
            "priority": case.priority,
        }
        if case.subdistrict_code:
            event["subdistrict_code"] = case.subdistrict_code
        if kind == "received":
            event["due_at"] = _rfc3339(case.due_ms)
            if case.person:
                event["complainant"] = case.person
        elif kind in ("assigned", "forwarded", "escalated"):
            event["agency"] = case.agency
        return event

    # -- projects ------------------------------------------------------------------------------

    def _project_event(self, p: Project, ms: int) -> dict[str, Any]:
        event, going_on = self._portfolio.report(p, ms)
        if going_on:
            self._push(self._portfolio.next_report_ms(p, ms + 6 * DAY_MS), _PROJECT, p)
        else:
            # the district starts another project some weeks later
            nxt = self._portfolio.new(p.district_code, ms + int(self._rng.uniform(14, 60) * DAY_MS))
            self._push(self._portfolio.next_report_ms(nxt, nxt.start_ms), _PROJECT, nxt)
        return {"event_id": self._uuid(), "occurred_at": _rfc3339(ms), **event}

    # -- bad events ----------------------------------------------------------------------------

    def _bad(self, now: int) -> Item:
        rng = self._bad_rng
        reason = badevents.PRODUCIBLE[rng.randrange(len(badevents.PRODUCIBLE))]
        district = self.country.districts.pick(rng)
        other = self.country.districts.pick(rng)
        while other == district:
            other = self.country.districts.pick(rng)
        foreign = self.country.subdistricts[other][0]
        grievance = self._bad_base_grievance(district, now)
        p = self._portfolio.new(district, now - 90 * DAY_MS)
        project = {"event_id": self._uuid(), "occurred_at": _rfc3339(now)}
        project.update(self._portfolio.report(p, now)[0])
        stream, payload, event = badevents.make_bad(rng, reason, grievance, project, foreign)
        # wrong_key: a valid event keyed by another district (or by none), as a producer that
        # ignores the contract's key would send it
        key = (other if rng.random() < 0.5 else None) if reason is Reason.WRONG_KEY else district
        return Item(stream, key, payload, event, reason, now)

    def _bad_base_grievance(self, district: str, now: int) -> dict[str, Any]:
        rng = self._bad_rng
        category = self.country.categories.pick(rng)
        return {
            "schema": GRIEVANCE_SCHEMA,
            "event_id": self._uuid(),
            "occurred_at": _rfc3339(now),
            "district_code": district,
            "subdistrict_code": self.country.subdistricts[district][0],
            "source": "legacy-gateway",
            "grievance_id": f"G-{district}-C{rng.getrandbits(40):010x}",
            "type": "received",
            "category": category,
            "channel": "web",
            "priority": "normal",
            "due_at": _rfc3339(now + sla_days(category, "normal") * DAY_MS),
        }

    # -- helpers -------------------------------------------------------------------------------

    def _tick(self) -> int:
        self._seq += 1
        return self._seq

    def _push(self, ms: int, kind: int, ref: Any) -> None:
        heapq.heappush(self._heap, (ms, self._tick(), kind, ref))

    def _uuid(self) -> str:
        h = f"{self._rng.getrandbits(128):032x}"
        # a version-4, RFC 4122 variant UUID made from the seeded generator
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
