"""Synthetic complainants: valid Thai citizen IDs, Thai names and phones (to exercise PDPA)."""

from __future__ import annotations

import random
from typing import Final

__all__ = ["citizen_id", "complainant", "corrupt_citizen_id", "phone"]

_FIRST: Final = (
    "สมชาย", "สมศักดิ์", "สมหญิง", "วิชัย", "ประเสริฐ", "สุดารัตน์", "มาลี", "บุญมี", "นภา", "ธนพล",
    "กิตติพงษ์", "ปวีณา", "อรุณี", "จันทร์เพ็ญ", "สายสุนีย์", "ชัยวัฒน์", "ณัฐพล", "ศิริพร", "อนันต์", "บุญเรือน",
)  # fmt: skip
_LAST: Final = (
    "ใจดี", "แสงทอง", "ศรีสุข", "บุญมา", "ทองดี", "วงศ์สวัสดิ์", "พรหมมา", "สุขเจริญ", "แก้วมณี", "จันทร์หอม",
    "รักไทย", "มั่นคง", "ชัยมงคล", "ปัญญาดี", "อินทรสุวรรณ", "สิทธิชัย", "คำแก้ว", "บุญยืน", "ทองคำ", "นาคสวัสดิ์",
)  # fmt: skip


def _check_digit(first12: str) -> int:
    total = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return (11 - total % 11) % 10


def citizen_id(rng: random.Random) -> str:
    """13 digits with a correct check digit; the first digit (1-8) is a real category."""
    first12 = str(rng.randint(1, 8)) + f"{rng.getrandbits(40) % 10**11:011d}"
    return first12 + str(_check_digit(first12))


def corrupt_citizen_id(rng: random.Random) -> str:
    """13 digits whose check digit is wrong."""
    good = citizen_id(rng)
    return good[:12] + str((int(good[12]) + rng.randint(1, 9)) % 10)


def phone(rng: random.Random) -> str:
    """A Thai mobile number, written 081-234-5678, 0812345678 or +66812345678."""
    digits = f"{rng.choice('689')}{rng.getrandbits(30) % 10**8:08d}"
    style = rng.random()
    if style < 0.5:
        return f"0{digits[:2]}-{digits[2:5]}-{digits[5:]}"
    if style < 0.8:
        return "0" + digits
    return "+66" + digits


def complainant(rng: random.Random) -> dict[str, str]:
    """Some of citizen_id, name and phone; never empty."""
    person: dict[str, str] = {}
    if rng.random() < 0.7:
        person["citizen_id"] = citizen_id(rng)
    if rng.random() < 0.8:
        person["name"] = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if rng.random() < 0.6 or not person:
        person["phone"] = phone(rng)
    return person
