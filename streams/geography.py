"""Reference geography: provinces, districts and regions from geothai, with the six-region grouping.

Regions follow the six-region system of Thailand's National Geographical Committee
(คณะกรรมการภูมิศาสตร์แห่งชาติ, 1977), the grouping the Royal Society and most ministries use
for statistics: North 9, Northeast 20, Central 22 (with Bangkok), East 7, West 5, South 14
provinces. Bueng Kan (38, created 2011) is in the Northeast.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import geothai

__all__ = [
    "REGIONS",
    "District",
    "Province",
    "district",
    "district_codes",
    "districts",
    "province",
    "provinces",
    "region_of_province",
]

#: region id -> (Thai name, English name, province codes)
REGIONS: dict[str, tuple[str, str, frozenset[str]]] = {
    "north": (
        "ภาคเหนือ",
        "North",
        frozenset({"50", "51", "52", "53", "54", "55", "56", "57", "58"}),
    ),
    "northeast": (
        "ภาคตะวันออกเฉียงเหนือ",
        "Northeast",
        frozenset(str(code) for code in range(30, 50)),
    ),
    "central": (
        "ภาคกลาง",
        "Central",
        frozenset(
            {"10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "26"}
            | {"60", "61", "62", "64", "65", "66", "67", "72", "73", "74", "75"}
        ),
    ),
    "east": ("ภาคตะวันออก", "East", frozenset({"20", "21", "22", "23", "24", "25", "27"})),
    "west": ("ภาคตะวันตก", "West", frozenset({"63", "70", "71", "76", "77"})),
    "south": (
        "ภาคใต้",
        "South",
        frozenset({"80", "81", "82", "83", "84", "85", "86"})
        | frozenset({"90", "91", "92", "93", "94", "95", "96"}),
    ),
}


@dataclass(frozen=True, slots=True)
class Province:
    code: str
    name_th: str
    name_en: str
    region: str


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name_th: str
    name_en: str
    province_code: str

    @property
    def is_bangkok_khet(self) -> bool:
        return self.province_code == "10"


def region_of_province(code: str) -> str:
    for region, (_, _, codes) in REGIONS.items():
        if code in codes:
            return region
    raise KeyError(f"province {code!r} is in no region")


@cache
def _provinces() -> dict[str, Province]:
    return {
        p.code: Province(p.code, p.name_th, p.name_en, region_of_province(p.code))
        for p in geothai.provinces()
    }


@cache
def _districts() -> dict[str, District]:
    return {
        d.code: District(d.code, d.name_th, d.name_en, d.province_code)
        for p in geothai.provinces()
        for d in geothai.districts(p.code)
    }


def provinces() -> list[Province]:
    return list(_provinces().values())


def province(code: str) -> Province | None:
    return _provinces().get(code)


def districts(province_code: str | None = None) -> list[District]:
    all_ = _districts().values()
    return [d for d in all_ if province_code is None or d.province_code == province_code]


def district(code: str) -> District | None:
    return _districts().get(code)


@cache
def district_codes() -> frozenset[str]:
    """The set the validator checks district_code against (hot path: a frozenset lookup)."""
    return frozenset(_districts())


@cache
def subdistrict_codes() -> frozenset[str]:
    return frozenset(s.code for d in _districts() for s in geothai.subdistricts(d))
