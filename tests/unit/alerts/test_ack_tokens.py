"""Acknowledge tokens: the signature is HMAC-SHA256 as computed here independently; a changed
field, another key, or the expiry each make the token unusable."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from alerts.ack_tokens import AckToken, TokenProblem, TokenSigner

ALERT = "3355d0ac35808cab-mjuohs00"
USER = "U" + "a" * 32


def _expected_sig(secret: str, body: str) -> str:
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_token_is_signed_as_documented_and_fits_a_postback() -> None:
    token = TokenSigner("k1").sign(ALERT, "5001", USER, 2_000_000_000)
    body, sig = token.rsplit(".", 1)
    prefix, expiry = body.rsplit(".", 1)
    assert prefix == f"a1.{ALERT}.5001.{USER}"
    assert int(expiry, 36) == 2_000_000_000
    assert sig == _expected_sig("k1", body)
    assert len(token) <= 300  # LINE's postback data limit


def test_verify_gives_back_what_was_signed_until_it_expires() -> None:
    signer = TokenSigner("k1")
    token = signer.sign(ALERT, "5001", "chief:5001", 1000)
    assert signer.verify(token, 999.0) == AckToken(ALERT, "5001", "chief:5001", 1000)
    assert signer.verify(token, 1000.0) is TokenProblem.EXPIRED


@pytest.mark.parametrize("field", [1, 2, 3, 4])
def test_any_changed_field_breaks_the_signature(field: int) -> None:
    signer = TokenSigner("k1")
    parts = signer.sign(ALERT, "5001", USER, 5000).split(".")
    replacement = {1: "0000000000000000-abc", 2: "5002", 3: "U" + "b" * 32, 4: "zzzz"}
    parts[field] = replacement[field]
    assert signer.verify(".".join(parts), 1.0) is TokenProblem.MALFORMED


def test_another_key_or_garbage_is_malformed_not_expired() -> None:
    token = TokenSigner("k1").sign(ALERT, "5001", USER, 10)
    assert TokenSigner("k2").verify(token, 50.0) is TokenProblem.MALFORMED
    for junk in ("", "a1", "hello.world", token + "x", "a1....."):
        assert TokenSigner("k1").verify(junk, 1.0) is TokenProblem.MALFORMED


def test_bad_inputs_are_refused_when_signing() -> None:
    signer = TokenSigner("k1")
    with pytest.raises(ValueError):
        signer.sign("not-an-id", "5001", USER, 1)
    with pytest.raises(ValueError):
        signer.sign(ALERT, "50", USER, 1)
    with pytest.raises(ValueError):
        signer.sign(ALERT, "5001", "a.b", 1)
    with pytest.raises(ValueError):
        TokenSigner("")
