"""Which notifications speak of the past: split by stream time against the wall clock."""

from __future__ import annotations

from alerts.catchup import split_stale
from alerts.model import Notification, NotificationKind

HOUR = 3_600_000
NOW = 1_780_000_000_000


def note(age_ms: int) -> Notification:
    return Notification(f"n{age_ms}", NotificationKind.FIRING, "5001", [], NOW - age_ms)


def test_older_than_the_allowance_is_held_back_in_order() -> None:
    notes = [note(0), note(7 * HOUR), note(HOUR), note(6 * HOUR + 1), note(6 * HOUR)]
    fresh, held = split_stale(notes, NOW, 6 * HOUR)
    assert [n.created_at_ms for n in fresh] == [NOW, NOW - HOUR, NOW - 6 * HOUR]
    assert [n.created_at_ms for n in held] == [NOW - 7 * HOUR, NOW - 6 * HOUR - 1]


def test_zero_or_negative_allowance_sends_everything() -> None:
    notes = [note(400 * 24 * HOUR), note(0)]
    for allowance in (0, -1):
        fresh, held = split_stale(notes, NOW, allowance)
        assert fresh == notes and held == []


def test_a_clock_behind_the_events_holds_nothing() -> None:
    # events dated slightly ahead of this machine's clock are current, not past
    fresh, held = split_stale([note(-5_000)], NOW, HOUR)
    assert len(fresh) == 1 and held == []
