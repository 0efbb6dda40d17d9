"""The buttons under a LINE alert: รับทราบ (postback with a signed token) and เปิดแดชบอร์ด (URI).

A buttons template message, within LINE's documented limits
(developers.line.biz/en/reference/messaging-api/#buttons): altText at most 400 characters,
text at most 160 (no title, no image), at most 4 actions, an action label at most 20, postback
data at most 300, a URI at most 1,000. One acknowledge button per alert, at most three (the
fourth action opens the dashboard); more alerts are acknowledged from the dashboard or CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from linebot.v3.messaging import ButtonsTemplate, PostbackAction, TemplateMessage, URIAction

from alerts.ack_tokens import TokenSigner
from alerts.messages import MessageRenderer, truncate_text
from alerts.model import Notification, NotificationKind, Recipient

__all__ = ["ALT_TEXT_LIMIT", "MAX_ACTIONS", "TEXT_LIMIT", "LineButtons"]

ALT_TEXT_LIMIT: Final = 400
TEXT_LIMIT: Final = 160
MAX_ACTIONS: Final = 4
LABEL_LIMIT: Final = 20
ACK_LABEL: Final = "รับทราบ"
DASHBOARD_LABEL: Final = "เปิดแดชบอร์ด"
_ACKABLE: Final = frozenset(
    {NotificationKind.FIRING, NotificationKind.REPEAT, NotificationKind.ESCALATION}
)


class LineButtons:
    """Builds the template message; `signer` None: only the dashboard button."""

    def __init__(
        self,
        renderer: MessageRenderer,
        signer: TokenSigner | None,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.renderer = renderer
        self.signer = signer
        self.ttl_s = ttl_s
        self._clock = clock

    def message(self, notification: Notification, recipient: Recipient) -> TemplateMessage:
        actions: list[PostbackAction | URIAction] = []
        ackable = [a for a in notification.alerts if a.acknowledged_at_ms is None]
        if self.signer is not None and notification.kind in _ACKABLE:
            # the token's clock is the wall clock: a token from stream time would be born
            # expired when the worker replays the past
            expires = int(self._clock()) + self.ttl_s
            shown = ackable[: MAX_ACTIONS - 1]
            for i, alert in enumerate(shown, 1):
                label = ACK_LABEL if len(shown) == 1 else f"{ACK_LABEL} ข้อ {i}"
                token = self.signer.sign(
                    alert.alert_id, alert.district_code, recipient.address, expires
                )
                actions.append(PostbackAction(label=label, data=token, displayText=label))
        actions.append(URIAction(label=DASHBOARD_LABEL, uri=self.renderer.link(notification)))
        headline = self.renderer.headline(notification)
        text = truncate_text(headline, TEXT_LIMIT, "…")
        return TemplateMessage(
            altText=truncate_text(headline, ALT_TEXT_LIMIT, "…"),
            template=ButtonsTemplate(text=text, actions=actions),
        )
