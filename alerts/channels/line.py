"""LINE Messaging API push through LINE's official SDK (linebot.v3.messaging, async client).

`POST {base_url}/v2/bot/message/push` with `Authorization: Bearer <channel access token>` and
`X-Line-Retry-Key`: a UUID derived from (notification id, recipient), so every retry of the
same delivery, also after a restart, carries the same key and LINE executes it once. A 409
answer to a retry key means an earlier try was accepted: that is success. 429 (rate limit) and
5xx are retried with backoff (Retry-After honoured when present); 401/403 (the token, the
plan) stay queued until the configuration is fixed; 400 and any other 4xx (an id LINE does
not accept, a user who is not a friend of the official account) refuse that push for good.
The text is split into at most 4 messages of 5,000 chars; the fifth is the buttons template
(alerts/line_buttons.py: รับทราบ, เปิดแดชบอร์ด) when buttons are configured.
"""

from __future__ import annotations

import logging
import uuid

import aiohttp
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    PushMessageRequest,
    TemplateMessage,
    TextMessage,
)

from alerts.channels.base import Channel, DeliveryError, RetryPolicy
from alerts.channels.http import error_for_status
from alerts.line_buttons import LineButtons
from alerts.messages import MessageRenderer
from alerts.model import Notification, Recipient

__all__ = ["DEFAULT_LINE_API", "LineChannel", "retry_key"]

log = logging.getLogger(__name__)

DEFAULT_LINE_API = "https://api.line.me"
# a fixed namespace makes the retry key a pure function of (notification, recipient)
_RETRY_NAMESPACE = uuid.UUID("6f0a3c1e-52b4-4d0e-9a53-7d1c2b8e4f10")


def retry_key(notification_id: str, address: str) -> str:
    return str(uuid.uuid5(_RETRY_NAMESPACE, f"{notification_id}\x1f{address}"))


class LineApi:
    """LINE's async Messaging API client for one channel token, made on first use (the SDK opens
    an aiohttp session in its constructor: it must be built inside the running loop)."""

    def __init__(self, token: str, base_url: str) -> None:
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._client: AsyncApiClient | None = None
        self._api: AsyncMessagingApi | None = None

    def messaging(self) -> AsyncMessagingApi:
        if self._api is None:
            self._client = AsyncApiClient(Configuration(access_token=self._token))
            self._api = AsyncMessagingApi(self._client)
            self._api.line_base_path = self._base_url
        return self._api

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._api = None


class LineChannel(Channel):
    """Recipient address: a LINE user (U…), group (C…) or room (R…) id."""

    name = "line"

    def __init__(
        self,
        renderer: MessageRenderer,
        token: str,
        base_url: str = DEFAULT_LINE_API,
        retry: RetryPolicy | None = None,
        buttons: LineButtons | None = None,
    ) -> None:
        super().__init__(renderer, retry)
        self._token = token
        self.buttons = buttons
        self._line = LineApi(token, base_url)

    async def send_once(self, notification: Notification, recipient: Recipient) -> None:
        if not self._token:
            raise DeliveryError(
                "LINE channel access token is not set (WARROOM_LINE_CHANNEL_TOKEN)", permanent=True
            )
        messages: list[TextMessage | TemplateMessage]
        if self.buttons is not None:
            texts = self.renderer.line_messages(notification, max_messages=4)
            messages = [TextMessage(text=t) for t in texts]
            messages.append(self.buttons.message(notification, recipient))
        else:
            messages = [TextMessage(text=t) for t in self.renderer.line_messages(notification)]
        request = PushMessageRequest(to=recipient.address, messages=messages)
        key = retry_key(notification.notification_id, recipient.address)
        try:
            await self._line.messaging().push_message(
                request,
                x_line_retry_key=key,
                _request_timeout=aiohttp.ClientTimeout(total=self.retry.timeout),
            )
        except ApiException as exc:
            if exc.status == 409:
                # the retry key was accepted by an earlier try whose answer we did not see
                log.info(
                    "LINE had already accepted this push (409 for the retry key)",
                    extra={"notification_id": notification.notification_id, "retry_key": key},
                )
                return
            headers = exc.headers or {}
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else ""
            raise error_for_status(
                int(exc.status or 0), body or str(exc.reason), headers.get("Retry-After")
            ) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._line.close()
