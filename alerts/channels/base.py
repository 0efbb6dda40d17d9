"""The channel contract: send one notification to one recipient, retrying transient failures."""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from alerts.messages import MessageRenderer
from alerts.model import Notification, Recipient

__all__ = ["Channel", "DeliveryError", "RetryPolicy", "parse_retry_after", "redact"]

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A delivery attempt failed. `permanent`: retrying the same request cannot succeed until
    someone fixes configuration (bad token, unconfigured channel): the item stays queued and is
    tried again at the longest wait; `refused`: the receiver refused this notification for this
    recipient (a 4xx such as 400/404/410, an address the mail server rejects, a LINE id it does
    not accept): it never will, so the outbox marks the item failed at once and the recipient's
    later notifications go on; `retry_after`: the receiver asked us to wait this many seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.refused = refused
        self.permanent = permanent or refused


@dataclass(frozen=True)
class RetryPolicy:
    """Quick retries inside one delivery; the outbox retries again later, with longer waits."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    timeout: float = 15.0  # per request

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with full jitter (so many senders do not retry in lockstep)."""
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = random.uniform(backoff / 2, backoff)
        return max(wait, retry_after or 0.0)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare for APIs and treated as absent)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def redact(text: str, address: str) -> str:
    """`text` (an error a receiver or a library gave) without the recipient's address: LINE ids,
    e-mail addresses and webhook paths (which may carry a token) stay in the outbox only."""
    if not address:
        return text
    parts = {address}
    split = urlsplit(address)
    if split.scheme and split.path not in ("", "/"):
        parts.add(split.path)
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(part, "<address>")
    return text


class Channel(ABC):
    """One delivery channel. Subclasses implement `send_once` and map every failure to
    DeliveryError; `deliver` adds the retries."""

    name: ClassVar[str]

    def __init__(self, renderer: MessageRenderer, retry: RetryPolicy | None = None) -> None:
        self.renderer = renderer
        self.retry = retry or RetryPolicy()

    async def deliver(self, notification: Notification, recipient: Recipient) -> None:
        """Send, retrying transient failures; raises the last DeliveryError when out of tries."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.send_once(notification, recipient)
                return
            except DeliveryError as exc:
                wait = self.retry.delay(attempt, exc.retry_after)
                # a long Retry-After is better served by the outbox than by a sleeping task
                if exc.permanent or attempt >= self.retry.attempts or wait > self.retry.max_delay:
                    raise
                log.info(
                    "delivery attempt failed, retrying",
                    extra={
                        "channel": self.name,
                        "notification_id": notification.notification_id,
                        "attempt": attempt,
                        "wait_s": round(wait, 2),
                        "error": redact(str(exc), recipient.address),
                    },
                )
                await asyncio.sleep(wait)

    @abstractmethod
    async def send_once(self, notification: Notification, recipient: Recipient) -> None:
        """One request to the receiver; raises DeliveryError on any failure."""

    async def close(self) -> None:  # noqa: B027 - most channels hold nothing to close
        """Release connections (called once by the notifier on shutdown)."""
