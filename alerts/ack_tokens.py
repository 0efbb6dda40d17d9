"""Signed, expiring acknowledge tokens: HMAC-SHA256 over (alert, contact, expiry), URL-safe.

Form: ``a1.<alert_id>.<district>.<contact>.<expiry, epoch s in base 36>.<signature>``; the signature
is the first 16 bytes of HMAC-SHA256(secret, the part before it), base64url without padding.
A LINE postback's `data` holds at most 300 characters: with a LINE user id as contact a token
is about 105. The district lets any worker route the ack to the one holding it. The contact
is a LINE user id (the postback's sender must be that user) or a directory key such as
``chief:5001`` for e-mail links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from alerts.ack import ALERT_ID
from alerts.model import base36

__all__ = ["AckToken", "TokenProblem", "TokenSigner", "base36"]

PREFIX: Final = "a1"
_CONTACT: Final = re.compile(r"^[A-Za-z0-9:_-]{1,80}$")
_DISTRICT: Final = re.compile(r"^[0-9]{4}$")
_SIG_BYTES: Final = 16


class TokenProblem(StrEnum):
    MALFORMED = "malformed"  # not a token at all, or its signature does not match
    EXPIRED = "expired"


@dataclass(frozen=True)
class AckToken:
    alert_id: str
    district_code: str
    contact: str
    expires_s: int


class TokenSigner:
    """Signs and checks tokens with one secret (WARROOM_ACK_SECRET)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the acknowledge token secret is empty")
        self._key = secret.encode()

    def _sig(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:_SIG_BYTES]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, alert_id: str, district_code: str, contact: str, expires_s: int) -> str:
        if not ALERT_ID.match(alert_id):
            raise ValueError(f"{alert_id!r} is not an alert id")
        if not _DISTRICT.match(district_code):
            raise ValueError(f"{district_code!r} is not a district code")
        if not _CONTACT.match(contact):
            raise ValueError(f"{contact!r} cannot name a contact in a token")
        body = f"{PREFIX}.{alert_id}.{district_code}.{contact}.{base36(expires_s)}"
        return f"{body}.{self._sig(body)}"

    def verify(self, token: str, now_s: float) -> AckToken | TokenProblem:
        """The token's content, or why it cannot be used. The signature is checked before the
        expiry, so a forged token is never reported as merely expired."""
        parts = token.split(".")
        if len(parts) != 6 or parts[0] != PREFIX:
            return TokenProblem.MALFORMED
        body, sig = token.rsplit(".", 1)
        if not hmac.compare_digest(sig.encode(), self._sig(body).encode()):
            return TokenProblem.MALFORMED
        _, alert_id, district_code, contact, expiry, _ = parts
        try:
            expires_s = int(expiry, 36)
        except ValueError:
            return TokenProblem.MALFORMED
        if now_s >= expires_s:
            return TokenProblem.EXPIRED
        return AckToken(alert_id, district_code, contact, expires_s)
