"""The readiness verdict for a consumer that is behind: applying, or stalled (and what to do)."""

from __future__ import annotations

from streams.pipeline import stall_detail


def test_a_consumer_still_within_the_limit_is_applying() -> None:
    assert stall_detail(900.0, 59.0, 60.0) == (True, "applying")
    assert stall_detail(900.0, 60.0, 60.0) == (True, "applying")


def test_a_consumer_still_past_the_limit_is_stalled_and_the_line_says_what_to_do() -> None:
    ok, detail = stall_detail(6248.0, 61.4, 60.0)
    assert not ok
    assert detail.startswith("6248 records behind and none applied for 61s")
    assert "restart the worker" in detail
