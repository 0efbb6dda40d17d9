"""The log channel: writes the rendered Thai message through logging (the default sink)."""

from __future__ import annotations

import logging

from alerts.channels.base import Channel
from alerts.model import Notification, Recipient

__all__ = ["LogChannel"]

log = logging.getLogger(__name__)


class LogChannel(Channel):
    name = "log"

    async def send_once(self, notification: Notification, recipient: Recipient) -> None:
        log.warning(
            "%s\n%s",
            "ALERT NOTIFICATION",
            self.renderer.text(notification, limit=None),
            extra={
                "notification_id": notification.notification_id,
                "kind": str(notification.kind),
                "district_code": notification.district_code,
                "recipient_role": recipient.role,
                "alerts": [a.alert_id for a in notification.alerts],
            },
        )
