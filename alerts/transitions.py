"""Alert state transitions as the engine reports them, and their rows for `alerts_history`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from alerts.model import Alert, Notification
from sinks.tables import COLUMNS
from streams import geography
from streams.timeutil import from_ms

__all__ = ["HISTORY_COLUMNS", "TickResult", "Transition", "history_row", "history_rows"]

#: alerts_history columns, in table order (sinks/migrations)
HISTORY_COLUMNS: Final = COLUMNS["alerts_history"]
#: states the engine reports; delivery adds `notified` and `notify_failed`
ENGINE_STATES: Final = ("pending", "firing", "resolved", "acknowledged", "escalated")


@dataclass(frozen=True)
class Transition:
    """One change of one alert series. `alert` is a copy taken at the change."""

    at_ms: int
    state: str  # one of ENGINE_STATES
    alert: Alert


@dataclass
class TickResult:
    """What one engine call produced: history transitions and notifications to deliver."""

    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.transitions or self.notifications)


def _region(province_code: str) -> str:
    try:
        return geography.region_of_province(province_code)
    except KeyError:
        return ""


def history_row(
    a: Alert, at: Any, state: str, message: str, channel: str = "", recipient: str = ""
) -> dict[str, Any]:
    """One alerts_history row of alert `a` (column -> value)."""
    return {
        "at": at,
        "alert_id": a.alert_id,
        "fingerprint": a.fingerprint,
        "rule_id": a.rule_id,
        "state": state,
        "severity": a.severity.value,
        "district_code": a.district_code,
        "province_code": a.province_code,
        "region": _region(a.province_code),
        "dimension": a.dimension,
        "value": float(a.value),
        "threshold": float(a.threshold),
        "title_th": a.title_th,
        "title_en": a.title_en,
        "message": message,
        "channel": channel,
        "recipient": recipient,
    }


def history_rows(transitions: Iterable[Transition]) -> list[dict[str, Any]]:
    """Rows for `alerts_history` (one per transition; channel and recipient are empty: the
    delivery side writes its own `notified` / `notify_failed` rows). `at` is an aware UTC
    datetime, the other values are plain str / float."""
    rows: list[dict[str, Any]] = []
    for t in transitions:
        a = t.alert
        at: datetime = from_ms(t.at_ms)
        message = a.summary_th
        if t.state == "acknowledged" and a.acknowledged_by:
            message = f"{message} — รับทราบโดย {a.acknowledged_by}"
        rows.append(history_row(a, at, t.state, message))
    return rows
