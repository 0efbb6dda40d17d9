"""The alert vocabulary shared by evaluation, routing and delivery."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "Alert",
    "AlertState",
    "Notification",
    "NotificationKind",
    "Notified",
    "Recipient",
    "Severity",
    "fingerprint",
]


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(StrEnum):
    PENDING = "pending"  # condition true, `for` not yet elapsed
    FIRING = "firing"
    RESOLVED = "resolved"


class NotificationKind(StrEnum):
    FIRING = "firing"  # first notification of a firing episode
    REPEAT = "repeat"  # still firing after the rule's repeat interval
    RESOLVED = "resolved"
    ESCALATION = "escalation"  # critical and unacknowledged: goes to the governor


def base36(n: int) -> str:
    """`n` in base 36 (0-9a-z), as the alert ids and ack tokens write times."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def fingerprint(rule_id: str, district_code: str, dimension: str) -> str:
    """Stable identity of an alert series: rule + district + dimension."""
    raw = f"{rule_id}\x1f{district_code}\x1f{dimension}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class Alert:
    """One alert series of one district; `alert_id` names one firing episode of it."""

    rule_id: str
    district_code: str
    dimension: str
    severity: Severity
    state: AlertState
    value: float  # the number that triggered (or the latest while firing)
    threshold: float
    title_th: str
    title_en: str
    summary_th: str  # the numbers in Thai words, e.g. "รับเรื่อง 42 เรื่องใน 1 ชม. (ปกติ 8)"
    summary_en: str
    pending_since_ms: int
    fired_at_ms: int | None = None
    resolved_at_ms: int | None = None
    acknowledged_at_ms: int | None = None
    acknowledged_by: str = ""
    escalated_at_ms: int | None = None
    last_notified_at_ms: int | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule_id, self.district_code, self.dimension)

    @property
    def alert_id(self) -> str:
        """fingerprint + start of the episode (epoch ms in base 36): what `warroom alerts ack ID`
        takes. Base 36 because a 13-digit number looks like a citizen ID to the log filter that
        masks personal data, which would hide the id in the log sink."""
        return f"{self.fingerprint}-{base36(self.pending_since_ms)}"

    @property
    def province_code(self) -> str:
        return self.district_code[:2]


@dataclass(frozen=True)
class Recipient:
    """Someone (or something) that receives notifications on one channel."""

    role: str  # chief | governor | war_room | ops
    name: str
    channel: str  # line | email | webhook | alertmanager | log
    address: str  # LINE user/group id, e-mail address, URL; '' for log

    @property
    def label(self) -> str:
        """How logs, history rows and listings name the recipient: never by its address."""
        return f"{self.role}:{self.name}"


@dataclass(frozen=True)
class Notified:
    """A delivery that already reached someone about the same alert (told in escalations)."""

    role: str
    name: str
    channel: str
    at_ms: int


@dataclass
class Notification:
    """One message about one district: several alerts of that district are grouped into it."""

    notification_id: str  # deterministic, so a retry after a crash is recognisably the same
    kind: NotificationKind
    district_code: str
    alerts: list[Alert]
    created_at_ms: int
    recipients: list[Recipient] = field(default_factory=list)
    #: escalations only: who was told before, when and how (the governor reads the story)
    notified: list[Notified] = field(default_factory=list)

    @property
    def province_code(self) -> str:
        return self.district_code[:2]
