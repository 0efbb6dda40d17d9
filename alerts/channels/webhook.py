"""Generic webhook: POST the notification as JSON, idempotent by notification id.

Request: `POST <recipient URL>`, `Content-Type: application/json`,
`Idempotency-Key: <notification_id>` (the same on every retry, also after a restart, so the
receiver can drop repeats), `User-Agent: warroom-notifier`. Body (schema
`warroom.notification.v1`)::

    {"schema": "warroom.notification.v1",
     "notification_id": "...", "kind": "firing|repeat|resolved|escalation",
     "created_at": "2026-06-01T07:10:00.000Z", "created_at_bangkok": "01/06/2569 14:10 น.",
     "district": {"code": "5001", "name_th": "อำเภอเมืองเชียงใหม่", "name_en": "..."},
     "province": {"code": "50", "name_th": "จังหวัดเชียงใหม่", "name_en": "Chiang Mai"},
     "region": "north",
     "dashboard_url": "<WARROOM_DASHBOARD_URL>/d/warroom-district/?var-district=5001",
     "recipient": {"role": "chief|governor|war_room|ops", "name": "..."},
     "alerts": [{"alert_id", "fingerprint", "rule_id", "state", "severity", "dimension",
                 "value", "threshold", "title_th", "title_en", "summary_th", "summary_en",
                 "pending_since", "fired_at", "resolved_at", "acknowledged_at",
                 "acknowledged_by", "escalated_at"}],
     "text": "<the Thai message as sent to LINE, untruncated>"}

Any 2xx is success; 408/425/429/5xx and connection failures are retried; 401/403/407 stay
queued until the receiver accepts our requests again (retried at the longest backoff); any
other 4xx refuses that notification for good: it is marked failed in the outbox, and the
recipient's later notifications are sent.
"""

from __future__ import annotations

from alerts.channels.base import Channel, RetryPolicy
from alerts.channels.http import HttpClient
from alerts.messages import MessageRenderer
from alerts.model import Notification, Recipient

__all__ = ["WebhookChannel"]


class WebhookChannel(Channel):
    name = "webhook"

    def __init__(self, renderer: MessageRenderer, retry: RetryPolicy | None = None) -> None:
        super().__init__(renderer, retry)
        self._http = HttpClient(self.retry.timeout)

    async def send_once(self, notification: Notification, recipient: Recipient) -> None:
        await self._http.post_json(
            recipient.address,
            self.renderer.payload(notification, recipient),
            {
                "Idempotency-Key": notification.notification_id,
                "User-Agent": "warroom-notifier",
            },
        )

    async def close(self) -> None:
        await self._http.close()
