"""PDPA: keyed pseudonyms for complainants, and spotting personal data where it must not be."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import unicodedata
from typing import Final

from streams.contract import Complainant

__all__ = [
    "DEV_KEY",
    "Pseudonymizer",
    "citizen_id_ok",
    "maybe_number",
    "personal_number",
    "plain_code",
    "plain_name",
]

log = logging.getLogger(__name__)

#: used only in embedded (development) mode; production refuses to start without a real key
DEV_KEY: Final = "warroom-development-key-not-for-production"

_THAI_DIGITS: Final = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")
#: cheap first look: 9+ digits (the shortest phone) with at most one separator between each
_MAYBE_NUMBER = re.compile(r"[0-9๐-๙](?:[ .\-]?[0-9๐-๙]){8,}").search
#: the first look alone, for a hot path that joins several fields with a line break
maybe_number: Final = _MAYBE_NUMBER
#: a written number: digit groups joined by single separators. A Latin letter or digit next to
#: it makes it part of a longer token (a UUID, a hex id), which is not a phone or an ID
_NUMBER = re.compile(r"(?<![0-9A-Za-z])\+?[0-9]+(?:[ .\-][0-9]+)*(?![0-9A-Za-z])")
_GROUP = re.compile(r"[0-9]+")
#: Thai numbers: mobile 06/08/09 + 8 digits, fixed line 02-07 + 7 digits
_PHONE_DIGITS = re.compile(r"0[689][0-9]{8}|0[2-7][0-9]{7}").fullmatch
_PLAIN_CODE = re.compile(r"[a-z][a-z0-9_.\-]{0,39}").fullmatch
_PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}").fullmatch


def citizen_id_ok(cid: str) -> bool:
    """13 digits whose last is the check digit: (11 - sum(d_i * (14 - i)) mod 11) mod 10."""
    if len(cid) != 13 or not cid.isascii() or not cid.isdigit():
        return False
    b = cid.encode()
    # unrolled weighted sum of the digits; 4320 = ord("0") * (13 + 12 + ... + 2)
    total = (
        b[0] * 13 + b[1] * 12 + b[2] * 11 + b[3] * 10 + b[4] * 9 + b[5] * 8
        + b[6] * 7 + b[7] * 6 + b[8] * 5 + b[9] * 4 + b[10] * 3 + b[11] * 2 - 4320
    )  # fmt: skip
    return (11 - total % 11) % 10 == b[12] - 48


def personal_number(text: str) -> str:
    """'citizen_id' or 'phone' when ``text`` carries a valid Thai citizen ID or a Thai phone
    number (plain, grouped with spaces, dashes or dots, +66, Thai digits), else ''.

    A written number counts as a whole and group by group, so "G-1001-0812345678" carries a
    phone; digits glued to Latin letters (hex ids, UUIDs) do not count.
    """
    if not _MAYBE_NUMBER(text) or text in _CLEAN:
        return ""
    kind = _personal_number(text)
    if not kind:
        # ids repeat (a project's weekly reports, a case's steps): remember the clean ones
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(text)
    return kind


_CLEAN: set[str] = set()
_CLEAN_MAX: Final = 100_000


def _personal_number(text: str) -> str:
    for m in _NUMBER.finditer(text.translate(_THAI_DIGITS)):
        groups = _GROUP.findall(m.group())
        for digits in ("".join(groups), *groups) if len(groups) > 1 else groups:
            if len(digits) == 13 and citizen_id_ok(digits):
                return "citizen_id"
            if digits[:2] == "66" and len(digits) in (10, 11):
                digits = "0" + digits[2:]
            if _PHONE_DIGITS(digits):
                return "phone"
    return ""


def plain_code(text: object) -> bool:
    """Whether a rejected value may be repeated to engineers: a code-like token (lowercase ASCII
    letters, digits, _ . -; at most 40) without a phone number or citizen ID in it. Free text
    (names, Thai, spaces, capitals) never is."""
    return isinstance(text, str) and bool(_PLAIN_CODE(text)) and not personal_number(text)


def plain_name(text: object) -> bool:
    """Whether an unknown JSON key may be repeated: a snake_case field name (see plain_code)."""
    return isinstance(text, str) and bool(_PLAIN_NAME(text)) and not personal_number(text)


class Pseudonymizer:
    """HMAC-SHA256 pseudonyms: the same person gives the same pseudonym, which cannot be reversed
    without the key. The citizen ID is preferred, then the phone number, then the name."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def digest(self, raw: bytes) -> str:
        """A keyed digest of a whole payload (dead letters): equal payloads, equal digests;
        nothing about the bytes can be learnt or confirmed without the key."""
        return hmac.new(self._key, b"payload:" + raw, hashlib.sha256).hexdigest()[:32]

    def complainant(self, person: Complainant | None) -> tuple[str, str]:
        """(kind, pseudonym) where kind is citizen_id, phone, name or '' when nobody is named."""
        if person is None:
            return "", ""
        if person.citizen_id:
            cid = person.citizen_id.replace("-", "").replace(" ", "")
            return "citizen_id", self._mac("cid:" + cid)
        if person.phone:
            digits = "".join(ch for ch in person.phone if ch.isdigit())
            if digits.startswith("66"):
                digits = "0" + digits[2:]
            return "phone", self._mac("tel:" + digits)
        if person.name:
            norm = " ".join(unicodedata.normalize("NFC", person.name).split()).casefold()
            return "name", self._mac("name:" + norm)
        return "", ""
