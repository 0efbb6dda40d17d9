"""Notifications about the past are recorded, not sent: the stream is catching up."""

from __future__ import annotations

from collections.abc import Sequence

from alerts.model import Notification

__all__ = ["split_stale"]


def split_stale(
    notifications: Sequence[Notification], wall_ms: float, max_age_ms: float
) -> tuple[list[Notification], list[Notification]]:
    """(to send, to hold back): a notification whose stream time is more than ``max_age_ms``
    behind the wall clock speaks of a past the worker is only now reading (a backlog after an
    outage, the history `warroom up` loads first). Paging a district chief with it helps nobody;
    an alert that still fires is sent with its rule's next repeat, once the stream is current.
    ``max_age_ms`` <= 0 sends everything."""
    if max_age_ms <= 0:
        return list(notifications), []
    floor = wall_ms - max_age_ms
    fresh = [n for n in notifications if n.created_at_ms >= floor]
    if len(fresh) == len(notifications):
        return fresh, []
    return fresh, [n for n in notifications if n.created_at_ms < floor]
