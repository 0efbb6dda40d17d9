"""The notifier: route a Notification, persist it in the outbox, deliver it in the background.

    notifier = Notifier(directory, channels, Outbox(data_dir / "alerts" / "outbox.sqlite3"))
    notifier.submit(notification)      # fast: resolves recipients and commits to the outbox
    task = asyncio.create_task(notifier.run())
    ...
    await notifier.close()             # stops the loop, closes the channels (not the outbox)

Delivery is at least once per (notification, recipient): an item stays pending, retried with
exponential backoff, until its channel accepts it. Receivers de-duplicate through the ids we
send (LINE retry key, webhook Idempotency-Key, Alertmanager label set, e-mail Message-ID).

One bad recipient does not hold the others:
- each recipient has its own queue (alerts/outbox.py): only its head is tried, so its order is
  kept, and its failures delay only its own later items;
- sends are limited per destination (the LINE API, the SMTP relay, a webhook or Alertmanager
  host), not overall: a destination that fails or hangs uses up its own slots only;
- a refusal of one notification (DeliveryError.refused: a 4xx such as 400/404, a rejected
  address) is final at once: the item is marked failed (one warning line, the
  `warroom_notifications_given_up_total{reason="refused"}` counter, a final `notify_failed`
  history row, `warroom alerts outbox --state failed`) and the recipient's later items go on.
  Each notification stands on its own: a refused one does not block the next;
- a transient failure (5xx, 408/425/429, no connection) waits base * 2^(attempts-1) up to the
  cap (60 s), so a recovered receiver is tried again within a minute; when one delivery to a
  destination succeeds again, its other recipients' waiting heads are tried at once;
- a permanent failure that needs configuration (no token, 401/403, channel not configured)
  stays queued and is tried at the longest wait: once fixed, every queued item goes out;
- anything still failing `give_up_after` (24 h) after it was queued is marked failed
  (reason `expired`).
Addresses (LINE ids, e-mail addresses, webhook URLs) never appear in logs or history rows:
recipients are named `role:name` and errors have the address cut out.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from alerts.channels.alertmanager import AlertmanagerChannel
from alerts.channels.base import Channel, DeliveryError, RetryPolicy, redact
from alerts.channels.email import AckLinkMaker, EmailChannel, SmtpConfig
from alerts.channels.line import DEFAULT_LINE_API, LineChannel
from alerts.channels.log import LogChannel
from alerts.channels.webhook import WebhookChannel
from alerts.directory import Directory
from alerts.line_buttons import LineButtons
from alerts.messages import MessageRenderer
from alerts.model import Notification, Recipient
from alerts.outbox import FAILED, PENDING, Outbox, OutboxItem
from warroom import telemetry

__all__ = [
    "Backoff",
    "DeliveryOutcome",
    "Notifier",
    "build_channels",
    "destination",
    "outbox_path",
]

log = logging.getLogger(__name__)


def outbox_path(data_dir: Path) -> Path:
    """Where the worker keeps its outbox: under the data folder, next to the embedded store."""
    return data_dir / "alerts" / "outbox.sqlite3"


def build_channels(
    dashboard_url: str,
    *,
    line_token: str = "",
    line_api_url: str = DEFAULT_LINE_API,
    smtp: SmtpConfig | None = None,
    alertmanager_ttl: float = 24 * 3600.0,
    retry: RetryPolicy | None = None,
    line_buttons: Callable[[MessageRenderer], LineButtons] | None = None,
    ack_links: AckLinkMaker | None = None,
) -> dict[str, Channel]:
    """Every channel, configured from settings. LINE without a token is still present, so its
    items stay queued with an error that names the missing variable; e-mail without an SMTP
    host is left out (its items stay queued as "channel 'email' is not configured").
    `line_buttons` adds the one-tap buttons to LINE pushes, `ack_links` signed links to
    e-mails (both need WARROOM_ACK_SECRET and the public listener)."""
    renderer = MessageRenderer(dashboard_url)
    buttons = line_buttons(renderer) if line_buttons is not None else None
    channels: dict[str, Channel] = {
        "log": LogChannel(renderer, retry),
        "webhook": WebhookChannel(renderer, retry),
        "alertmanager": AlertmanagerChannel(renderer, retry, firing_ttl=alertmanager_ttl),
        "line": LineChannel(
            renderer, line_token, base_url=line_api_url, retry=retry, buttons=buttons
        ),
    }
    if smtp is not None and smtp.host:
        channels["email"] = EmailChannel(renderer, smtp, retry, ack_links=ack_links)
    return channels


def _now_ms() -> int:
    return int(time.time() * 1000)


def destination(recipient: Recipient) -> str:
    """Where a delivery goes on the wire; recipients of one destination share its send slots
    (and its recovery). HTTP addresses: channel and host; LINE and e-mail: the one API or
    relay of the channel."""
    if recipient.address.startswith(("http://", "https://")):
        url = urlsplit(recipient.address)
        return f"{recipient.channel} {url.scheme}://{url.netloc}"
    return recipient.channel


@dataclass(frozen=True)
class Backoff:
    """Wait before the outbox tries an item again: base * 2^(attempts-1), capped, jittered.
    A permanent failure that needs configuration (bad token) waits `permanent_wait`
    (default 5 x cap): it needs a human, and then the recovery of its destination brings its
    items forward anyway."""

    base: float = 5.0
    cap: float = 60.0
    jitter: float = 0.2
    permanent_wait: float | None = None

    def delay(self, attempts: int, error: DeliveryError) -> float:
        if error.permanent:
            wait = self.permanent_wait if self.permanent_wait is not None else 5 * self.cap
        else:
            wait = min(self.cap, self.base * 2 ** (attempts - 1))
        wait *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(wait, error.retry_after or 0.0)


@dataclass(frozen=True)
class DeliveryOutcome:
    """What the history hook receives after every delivery attempt of an item.

    state: "notified" (accepted by the channel) or "notify_failed" (this attempt failed; the
    item stays queued unless `final`: marked failed for good, `reason` "refused" (the receiver
    refused it) or "expired" (still failing after `give_up_after`)). `error` never holds the
    recipient's address."""

    notification: Notification
    recipient: Recipient
    state: str
    at_ms: int
    attempt: int
    error: str = ""
    final: bool = False
    reason: str = ""


OnDelivery = Callable[[DeliveryOutcome], Awaitable[None] | None]


class Notifier:
    def __init__(
        self,
        directory: Directory,
        channels: Mapping[str, Channel],
        outbox: Outbox,
        *,
        on_delivery: OnDelivery | None = None,
        backoff: Backoff | None = None,
        concurrency: int = 8,
        give_up_after: float | None = 24 * 3600.0,
        metrics: telemetry.NotifierMetrics | None = None,
    ) -> None:
        self.directory = directory
        self.channels = dict(channels)
        self.outbox = outbox
        self.on_delivery = on_delivery
        self.backoff = backoff or Backoff()
        self.give_up_after_ms = int(give_up_after * 1000) if give_up_after is not None else None
        self.metrics = metrics or telemetry.get().notifier
        self._concurrency = concurrency  # per destination
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._failing: set[str] = set()  # destinations whose last attempt failed
        self._in_flight: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._stopped: asyncio.Event | None = None
        missing = directory.channels_used() - self.channels.keys()
        if missing:
            log.warning(
                "the alert directory uses channels that are not configured; their "
                "notifications stay queued until they are",
                extra={"channels": sorted(missing)},
            )
        self._refresh_queued()

    # --- submission (any thread) ---

    def submit(self, notification: Notification) -> list[Recipient]:
        """Route and persist; returns the recipients. Idempotent per notification id."""
        return self.submit_many([notification])[0]

    def submit_many(self, notifications: list[Notification]) -> list[list[Recipient]]:
        """`submit` for a tick's notifications: one outbox transaction (one fsync) for all."""
        routed = [(n, n.recipients or self.directory.recipients_for(n)) for n in notifications]
        added = self.outbox.add_many(routed, _now_ms())
        for (n, recipients), new in zip(routed, added, strict=True):
            log.info(
                "notification queued",
                extra={
                    "notification_id": n.notification_id,
                    "kind": str(n.kind),
                    "district_code": n.district_code,
                    "recipients": len(recipients),
                    "new": new,
                },
            )
        self._refresh_queued()
        self._poke()
        return [recipients for _, recipients in routed]

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    # --- the delivery loop ---

    async def run(self, poll_interval: float = 1.0) -> None:
        """Deliver until close(); pending items from an earlier process are picked up too."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._slots = {}  # semaphores belong to this loop
        try:
            while not self._stopping:
                self._wake.clear()
                now = _now_ms()
                wait = poll_interval
                try:
                    heads = self.outbox.heads()
                except Exception:  # e.g. disk full: keep the loop alive and try again
                    log.exception("reading the outbox failed")
                    heads = []
                for item in heads:
                    if item.key in self._in_flight:
                        continue
                    if item.next_attempt_ms > now:
                        wait = min(wait, (item.next_attempt_ms - now) / 1000)
                        break  # heads come earliest first
                    self._in_flight[item.key] = asyncio.create_task(self._deliver(item))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, wait))
        finally:
            tasks = list(self._in_flight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._in_flight.clear()
            self._stopped.set()

    def _slot(self, where: str) -> asyncio.Semaphore:
        sem = self._slots.get(where)
        if sem is None:
            sem = self._slots[where] = asyncio.Semaphore(self._concurrency)
        return sem

    async def _deliver(self, item: OutboxItem) -> None:
        n, r = item.notification, item.recipient
        where = destination(r)
        try:
            async with self._slot(where):
                channel = self.channels.get(r.channel)
                try:
                    if channel is None:
                        raise DeliveryError(
                            f"channel {r.channel!r} is not configured", permanent=True
                        )
                    await channel.deliver(n, r)
                except DeliveryError as exc:
                    self._failing.add(where)
                    await self._failed(item, exc)
                except Exception as exc:  # a bug in a channel must not stop the loop
                    log.exception("channel raised unexpectedly", extra={"channel": r.channel})
                    self._failing.add(where)
                    await self._failed(item, DeliveryError(f"{type(exc).__name__}: {exc}"))
                else:
                    now = _now_ms()
                    self.outbox.mark_delivered(item, now)
                    self.metrics.sent(r.channel)
                    if where in self._failing:
                        self._recovered(where, r, now)
                    log.info(
                        "notification delivered",
                        extra={
                            "notification_id": n.notification_id,
                            "channel": r.channel,
                            "recipient_role": r.role,
                            "attempt": item.attempts + 1,
                            "delay_ms": now - n.created_at_ms,
                        },
                    )
                    await self._report(DeliveryOutcome(n, r, "notified", now, item.attempts + 1))
        except Exception:
            # the outbox could not record the result: the item stays pending and is sent again
            # (receivers de-duplicate); pause so a broken disk does not become a send loop
            log.exception("recording a delivery in the outbox failed", extra={"channel": r.channel})
            await asyncio.sleep(5)
        finally:
            self._in_flight.pop(item.key, None)
            self._refresh_queued()
            if self._wake is not None:
                self._wake.set()  # the recipient's next item may be due now

    def _recovered(self, where: str, r: Recipient, now: int) -> None:
        """A delivery to a destination that was failing went through: its other recipients'
        heads need not wait out their backoff."""
        self._failing.discard(where)
        prefix = where.split(" ", 1)[1] if " " in where else ""
        try:
            moved = self.outbox.retry_now(r.channel, prefix, now)
        except Exception:
            log.exception("bringing the waiting notifications forward failed")
            return
        if moved:
            log.info(
                "destination accepts notifications again; its waiting ones are sent now",
                extra={"channel": r.channel, "waiting": moved},
            )

    async def _failed(self, item: OutboxItem, exc: DeliveryError) -> None:
        n, r = item.notification, item.recipient
        now = _now_ms()
        attempt = item.attempts + 1
        error = redact(str(exc), r.address)
        self.metrics.failed(r.channel)
        if exc.refused:
            reason = "refused"
        elif self.give_up_after_ms is not None and now - item.queued_ms > self.give_up_after_ms:
            reason = "expired"
        else:
            reason = ""
        if reason:
            self.outbox.mark_failed(item, now, error)
            self.metrics.given_up(r.channel, reason)
            log.warning(
                "notification failed for good (%s); kept in the outbox as failed, the "
                "recipient's later notifications go on: see `warroom alerts outbox --state "
                "failed`",
                "refused by the receiver"
                if reason == "refused"
                else f"still failing after {(self.give_up_after_ms or 0) / 3_600_000:g} h",
                extra={
                    "notification_id": n.notification_id,
                    "channel": r.channel,
                    "recipient": r.label,
                    "attempt": attempt,
                    "reason": reason,
                    "error": error,
                },
            )
        else:
            wait = self.backoff.delay(attempt, exc)
            self.outbox.mark_retry(item, now, now + int(wait * 1000), error)
            log.warning(
                "notification delivery failed; it stays queued",
                extra={
                    "notification_id": n.notification_id,
                    "channel": r.channel,
                    "recipient": r.label,
                    "attempt": attempt,
                    "retry_in_s": round(wait, 1),
                    "permanent": exc.permanent,
                    "error": error,
                },
            )
        await self._report(
            DeliveryOutcome(
                n,
                r,
                "notify_failed",
                now,
                attempt,
                error=error,
                final=bool(reason),
                reason=reason,
            )
        )

    async def _report(self, outcome: DeliveryOutcome) -> None:
        if self.on_delivery is None:
            return
        try:
            result = self.on_delivery(outcome)
            if inspect.isawaitable(result):
                await result
        except Exception:  # history is a record, not a reason to resend
            log.exception("delivery hook failed")

    def _refresh_queued(self) -> None:
        pending: dict[str, int] = dict.fromkeys(self.channels, 0)
        for (channel, state), count in self.outbox.counts().items():
            if state == PENDING:
                pending[channel] = pending.get(channel, 0) + count
        for channel, count in pending.items():
            self.metrics.set_queued(channel, count)

    def queued(self) -> dict[str, int]:
        """Pending items per channel (what the gauge shows)."""
        return {
            channel: count
            for (channel, state), count in self.outbox.counts().items()
            if state == PENDING
        }

    def failed(self) -> dict[str, int]:
        """Items marked failed for good per channel (kept until an operator looks at them)."""
        return {
            channel: count
            for (channel, state), count in self.outbox.counts().items()
            if state == FAILED
        }

    async def wait_idle(self, timeout: float) -> bool:
        """Until nothing is pending (True) or the timeout passes (False): for shutdown and tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.queued() and not self._in_flight:
                return True
            await asyncio.sleep(0.05)
        return False

    async def close(self) -> None:
        """Stop the loop (in-flight attempts are cancelled; their items stay pending) and close
        the channels. The outbox stays open: its owner closes it."""
        self._stopping = True
        self._poke()
        if self._stopped is not None:
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout=10)
            except TimeoutError:
                log.warning("the delivery loop did not stop within 10 s")
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception:
                log.exception("closing channel failed", extra={"channel": channel.name})
