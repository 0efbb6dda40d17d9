"""The simulated country: district weights, daily and weekly rhythm, category mix, surges."""

from __future__ import annotations

import bisect
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from streams import geography
from streams.contract import CATEGORIES
from streams.timeutil import BANGKOK_OFFSET

__all__ = [
    "DEFAULT_CATEGORY_MIX",
    "Country",
    "Surge",
    "SurgeSchedule",
    "Weighted",
    "event_density",
    "is_office_hours",
    "local_hour",
    "local_weekday",
    "next_office_time",
    "rhythm",
]

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
_BKK_MS: Final = 7 * HOUR_MS  # Thailand keeps UTC+7 all year

#: the reported Damrongdhama mix: informal debt first, then livelihood hardship, land
#: encroachment, drugs, gambling, pollution, utilities (domain.md); shares are our guess
DEFAULT_CATEGORY_MIX: Final[Mapping[str, float]] = {
    "debt": 0.22,
    "poverty": 0.14,
    "land": 0.13,
    "drugs": 0.09,
    "utilities": 0.08,
    "environment": 0.07,
    "gambling": 0.06,
    "consumer": 0.05,
    "misconduct": 0.05,
    "other": 0.05,
    "wastewater": 0.03,
    "flood": 0.02,
    "drought": 0.01,
}

# relative intake by local hour: the 1567 hotline runs 24 h, walk-ins follow office hours
_HOURLY: Final = (
    0.15, 0.10, 0.08, 0.08, 0.10, 0.20, 0.40, 0.70, 1.40, 2.00, 2.20, 2.00,
    1.20, 1.90, 2.00, 1.80, 1.30, 0.80, 0.60, 0.55, 0.50, 0.40, 0.30, 0.20,
)  # fmt: skip
# Monday .. Sunday
_DAILY: Final = (1.10, 1.05, 1.00, 1.00, 0.90, 0.45, 0.30)
_MEAN: Final = sum(_HOURLY) * sum(_DAILY) / (24 * 7)
RHYTHM_MAX: Final = max(_HOURLY) * max(_DAILY) / _MEAN

# provinces heavier than their district count suggests (large populations)
_PROVINCE_FACTOR: Final = {
    "10": 1.0, "11": 1.6, "12": 1.7, "13": 1.5, "20": 1.5, "21": 1.3, "30": 1.4,
    "34": 1.3, "40": 1.4, "41": 1.3, "50": 1.4, "90": 1.4, "74": 1.3, "73": 1.2,
}  # fmt: skip


def local_hour(ms: int) -> int:
    return ((ms + _BKK_MS) // HOUR_MS) % 24


def local_weekday(ms: int) -> int:
    """0 = Monday (1970-01-01 was a Thursday)."""
    return ((ms + _BKK_MS) // DAY_MS + 3) % 7


def rhythm(ms: int) -> float:
    """Intake intensity at this time relative to the weekly mean (mean 1)."""
    return _HOURLY[local_hour(ms)] * _DAILY[local_weekday(ms)] / _MEAN


def event_density(ms: int) -> float:
    """All events at this time relative to the weekly mean: a fifth are new cases (intake
    rhythm), the rest are staff steps, which happen in office hours (40 of 168 hours)."""
    return 0.2 * rhythm(ms) + (0.8 * 168 / 40 if is_office_hours(ms) else 0.0)


def is_office_hours(ms: int) -> bool:
    minute = ((ms + _BKK_MS) // 60_000) % 1440
    return local_weekday(ms) < 5 and 510 <= minute < 990  # 08:30-16:30


def next_office_time(ms: int, rng: random.Random) -> int:
    """Staff act in office hours: a time outside them moves into the next office morning."""
    if is_office_hours(ms):
        return ms
    day_start = (ms + _BKK_MS) // DAY_MS * DAY_MS - _BKK_MS
    minute = ((ms + _BKK_MS) // 60_000) % 1440
    day = day_start if minute < 510 else day_start + DAY_MS
    while local_weekday(day) >= 5:
        day += DAY_MS
    return day + 510 * 60_000 + int(rng.random() * 3 * HOUR_MS)


class Weighted:
    """Cheap weighted choice over a fixed list (bisect over cumulative weights)."""

    __slots__ = ("_cum", "_total", "items")

    def __init__(self, items: list[str], weights: list[float]) -> None:
        self.items = items
        self._cum: list[float] = []
        total = 0.0
        for w in weights:
            total += w
            self._cum.append(total)
        self._total = total

    def pick(self, rng: random.Random) -> str:
        return self.items[bisect.bisect_right(self._cum, rng.random() * self._total)]


def _district_weight(code: str) -> float:
    # stable per code, independent of the seed: the country does not change between runs
    frac = zlib.crc32(code.encode()) / 0xFFFFFFFF
    weight = 0.35 + 1.65 * frac * frac
    if code[:2] == "10":
        weight *= 2.5  # Bangkok khet are dense
    elif code[2:] == "01":
        weight *= 3.0  # provincial capital districts (อำเภอเมือง)
    return weight * _PROVINCE_FACTOR.get(code[:2], 1.0)


@dataclass(frozen=True, slots=True)
class Surge:
    kind: str  # flood or drought
    provinces: frozenset[str]
    start_ms: int
    end_ms: int


class Country:
    """Districts with their weights and subdistricts, provinces by region."""

    def __init__(self, category_mix: Mapping[str, float]) -> None:
        unknown = set(category_mix) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories in the mix: {sorted(unknown)}")
        ds = sorted(geography.districts(), key=lambda d: d.code)
        self.district_codes = [d.code for d in ds]
        self.weights = {code: _district_weight(code) for code in self.district_codes}
        self.districts = Weighted(
            self.district_codes, [self.weights[c] for c in self.district_codes]
        )
        subs: dict[str, list[str]] = {}
        for code in sorted(geography.subdistrict_codes()):
            subs.setdefault(code[:4], []).append(code)
        self.subdistricts = subs
        self.provinces_by_region: dict[str, list[str]] = {}
        for p in sorted(geography.provinces(), key=lambda p: p.code):
            self.provinces_by_region.setdefault(p.region, []).append(p.code)
        by_province: dict[str, list[str]] = {}
        for code in self.district_codes:
            by_province.setdefault(code[:2], []).append(code)
        self.by_province = {
            p: Weighted(codes, [self.weights[c] for c in codes]) for p, codes in by_province.items()
        }
        cats = [c for c in CATEGORIES if category_mix.get(c, 0) > 0]
        self.categories = Weighted(cats, [float(category_mix[c]) for c in cats])


class SurgeSchedule:
    """Floods (rainy season) and droughts (dry season) in a few provinces at a time."""

    def __init__(self, rng: random.Random, country: Country, start_ms: int, share: float) -> None:
        self._rng = rng
        self._country = country
        self.share = share  # extra national intake per active surge
        self.max_active = 3 if share > 0 else 0
        self.active: list[Surge] = []
        self._next_ms = start_ms + int(rng.expovariate(1 / (2 * DAY_MS))) if share > 0 else -1

    def at(self, ms: int) -> list[Surge]:
        """The surges active at ``ms`` (ms never decreases between calls)."""
        if self.active and any(s.end_ms <= ms for s in self.active):
            self.active = [s for s in self.active if s.end_ms > ms]
        while 0 <= self._next_ms <= ms:
            if len(self.active) < self.max_active:
                self.active.append(self._new(self._next_ms))
            self._next_ms += int(self._rng.expovariate(1 / (4 * DAY_MS))) + HOUR_MS
        return self.active

    def _new(self, ms: int) -> Surge:
        rng = self._rng
        # floods peak in the rainy season (June-November), droughts in the dry months
        month = datetime.fromtimestamp(ms / 1000, BANGKOK_OFFSET).month
        kind = "flood" if 6 <= month <= 11 else "drought"
        region = rng.choice(sorted(self._country.provinces_by_region))
        candidates = self._country.provinces_by_region[region]
        provinces = frozenset(rng.sample(candidates, min(len(candidates), rng.randint(2, 4))))
        return Surge(kind, provinces, ms, ms + int(rng.uniform(3, 10) * DAY_MS))
