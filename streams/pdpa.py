"""PDPA: keyed pseudonyms for complainants and redaction of payloads kept for dead letters."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import unicodedata
from typing import Any, Final

from streams.contract import Complainant

__all__ = ["DEV_KEY", "Pseudonymizer", "redact_event", "redact_text"]

log = logging.getLogger(__name__)

#: used only in embedded (development) mode; production refuses to start without a real key
DEV_KEY: Final = "warroom-development-key-not-for-production"
#: runs of 6+ digits (with separators) may be citizen IDs, phones or account numbers
_DIGIT_RUN = re.compile(r"(?:\+?\d[\d\s\-]{4,}\d)")
_MAX_REDACTED: Final = 1000


class Pseudonymizer:
    """HMAC-SHA256 pseudonyms: the same person gives the same pseudonym, which cannot be reversed
    without the key. The citizen ID is preferred, then the phone number, then the name."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:32]

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


def redact_text(text: str) -> str:
    """Mask digit runs (IDs, phones) and cut the length: for payloads we cannot parse."""
    return _DIGIT_RUN.sub("[masked]", text[:_MAX_REDACTED])


def redact_event(obj: Any) -> Any:
    """A copy of a decoded payload safe to keep: the complainant is removed entirely and every
    string is digit-masked, since a bad event may carry personal data in any field."""
    if isinstance(obj, dict):
        return {
            str(k)[:64]: ("[redacted]" if k == "complainant" else redact_event(v))
            for k, v in list(obj.items())[:64]
        }
    if isinstance(obj, list):
        return [redact_event(v) for v in obj[:64]]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj
