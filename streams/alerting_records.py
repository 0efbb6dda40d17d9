"""What the alert service writes: `alerts_history` rows and `alerts` topic records.

Every history row (an engine transition, or one delivery attempt to one recipient) is also
published to the `alerts` topic as a JSON record, keyed by district; each notification is
published once more as a record of its own (who it went to, the Thai text). Records:

    {"schema": "warroom.alert_event.v1", "event": "state", "at": "...Z", "at_ms": ...,
     <every alerts_history column except at>, "notification_id": "" | "...",
     "attempt": 0 | n, "error": ""}
    {"schema": "warroom.alert_event.v1", "event": "notification", "notification_id": "...",
     "kind": "firing|repeat|resolved|escalation", "district_code": "...", "created_at": "...Z",
     "created_at_ms": ..., "alert_ids": [...],
     "recipients": [{"role", "name", "channel"}], "text": "<Thai message>"}

Recipient addresses (LINE ids, e-mail addresses) stay in the outbox; rows and records name the
recipient as ``role:name``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson

from alerts.messages import MessageRenderer
from alerts.model import Alert, Notification, Recipient
from alerts.notifier import DeliveryOutcome
from alerts.transitions import Transition, history_row, history_rows
from sinks.tables import INSERT_COLUMNS
from streams.timeutil import from_ms, to_rfc3339

__all__ = [
    "HISTORY_COLUMNS",
    "SCHEMA",
    "delivery_rows",
    "notification_record",
    "recipient_label",
    "state_record",
    "transition_rows",
]

SCHEMA: Final = "warroom.alert_event.v1"
HISTORY_COLUMNS: Final = INSERT_COLUMNS["alerts_history"]
_AT: Final = HISTORY_COLUMNS.index("at")
_MESSAGE_MAX: Final = 2000


def _iso(ms: int) -> str:
    return to_rfc3339(from_ms(ms)).replace("+00:00", "Z")


def recipient_label(r: Recipient) -> str:
    return r.label


def transition_rows(transitions: Sequence[Transition]) -> list[tuple[Any, ...]]:
    """alerts_history rows (sinks.tables order, `at` in epoch ms) of engine transitions."""
    out = []
    for t, row in zip(transitions, history_rows(transitions), strict=True):
        row["at"] = t.at_ms
        out.append(tuple(row[c] for c in HISTORY_COLUMNS))
    return out


#: why a notification was given up (DeliveryOutcome.reason), as the history message says it
_GIVEN_UP: Final = {
    "refused": "refused by the receiver, not retried",
    "expired": "still failing after the give-up time",
    "": "given up",
}


def _delivery_row(outcome: DeliveryOutcome, a: Alert) -> tuple[Any, ...]:
    n = outcome.notification
    message = f"{n.kind} {n.notification_id}"
    if outcome.state != "notified":
        final = f" (failed for good: {_GIVEN_UP[outcome.reason]})" if outcome.final else ""
        message = f"{message}: attempt {outcome.attempt}{final}: {outcome.error}"
    row = history_row(
        a,
        outcome.at_ms,
        outcome.state,
        message[:_MESSAGE_MAX],
        outcome.recipient.channel,
        recipient_label(outcome.recipient),
    )
    return tuple(row[c] for c in HISTORY_COLUMNS)


def delivery_rows(outcome: DeliveryOutcome) -> list[tuple[Any, ...]]:
    """One `notified` / `notify_failed` row per alert of the notification, for one recipient
    (`at` is when the attempt ended, wall time)."""
    return [_delivery_row(outcome, a) for a in outcome.notification.alerts]


def state_record(
    row: Sequence[Any], notification_id: str = "", attempt: int = 0, error: str = ""
) -> bytes:
    """The `alerts` topic record of one history row."""
    at = int(row[_AT])
    body: dict[str, Any] = {"schema": SCHEMA, "event": "state", "at": _iso(at), "at_ms": at}
    body.update((c, v) for c, v in zip(HISTORY_COLUMNS, row, strict=True) if c != "at")
    body.update(notification_id=notification_id, attempt=attempt, error=error)
    return orjson.dumps(body)


def notification_record(
    n: Notification,
    recipients: Iterable[Recipient],
    renderer: MessageRenderer,
    *,
    held_back: bool = False,
) -> bytes:
    """The `alerts` topic record of one notification (published when it is queued, or when it
    is held back because it speaks of the past: alerts/catchup.py)."""
    return orjson.dumps(
        {
            "schema": SCHEMA,
            "event": "notification",
            "notification_id": n.notification_id,
            "kind": str(n.kind),
            "district_code": n.district_code,
            "created_at": _iso(n.created_at_ms),
            "created_at_ms": n.created_at_ms,
            "alert_ids": [a.alert_id for a in n.alerts],
            "recipients": [
                {"role": r.role, "name": r.name, "channel": r.channel} for r in recipients
            ],
            "text": renderer.text(n, limit=None),
            "held_back": held_back,
        }
    )
