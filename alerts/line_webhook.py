"""LINE webhook: `POST /line/webhook`, signature checked as LINE documents, events processed apart.

developers.line.biz/en/reference/messaging-api/#signature-validation: the `X-Line-Signature`
header is base64(HMAC-SHA256(channel secret, raw request body)). A missing or wrong signature
gets 401 and is counted; nothing in the body is looked at. A signed request is answered 200 at
once and its events go to a queue that one task works through, because LINE expects a quick
answer and the replies and acknowledgements take round trips. Each event is handled once: its
`webhookEventId` is remembered durably, so a redelivery (`deliveryContext.isRedelivery`) of an
event already handled is skipped.

Events: `message` (text: an enrolment code), `follow` (welcome, or a blocked contact is
reachable again), `unfollow` / `leave` (the contact becomes unreachable: routing falls back to
its other channels and the war room is told), `postback` (a one-tap acknowledge token).
Replies use the Reply API (`POST /v2/bot/message/reply`, the event's one-time `replyToken`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web
from linebot.v3.messaging import (
    ApiException,
    ReplyMessageRequest,
    TextMessage,
)

from alerts.ack_tokens import AckToken, TokenSigner
from alerts.channels.line import LineApi
from alerts.contacts_store import CODE_LENGTH, Binding, ContactsStore
from alerts.enrolment import REPLIES as ENROL_REPLIES
from alerts.enrolment import area_th, redeem_text
from alerts.one_tap import Acknowledger, use_token

__all__ = ["PATH", "LineReplier", "LineWebhook", "WebhookCounters", "signature"]

log = logging.getLogger(__name__)

PATH: Final = "/line/webhook"
#: events waiting to be processed; past this the request gets 503 and LINE may redeliver
_QUEUE_LIMIT: Final = 10_000
_MAX_BODY: Final = 1 << 20


def signature(secret: str, body: bytes) -> str:
    """The X-Line-Signature LINE computes for `body`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class WebhookCounters:
    """Counts for /metrics (a Telemetry hook) and for tests."""

    def __init__(self, on_count: Callable[[str, str, str], None] | None = None) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        self._on_count = on_count

    def add(self, what: str, kind: str, outcome: str) -> None:
        key = (what, kind, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self._on_count is not None:
            self._on_count(what, kind, outcome)

    def get(self, what: str, kind: str = "", outcome: str = "") -> int:
        return sum(
            n
            for (w, k, o), n in self.counts.items()
            if w == what and kind in ("", k) and outcome in ("", o)
        )


class LineReplier:
    """Sends a Thai text answer with the event's reply token (LINE's SDK, async client)."""

    def __init__(self, token: str, base_url: str, timeout: float = 10.0) -> None:
        self._token = token
        self._timeout = timeout
        self._line = LineApi(token, base_url)

    async def reply(self, reply_token: str, text: str) -> bool:
        """One try: a reply token is good once and only for a short while."""
        if not self._token:
            log.warning("LINE reply not sent: WARROOM_LINE_CHANNEL_TOKEN is not set")
            return False
        request = ReplyMessageRequest(replyToken=reply_token, messages=[TextMessage(text=text)])
        try:
            await self._line.messaging().reply_message(
                request, _request_timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        except ApiException as exc:
            log.warning("LINE reply refused", extra={"status": exc.status, "reason": exc.reason})
            return False
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("LINE reply failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return False
        return True

    async def close(self) -> None:
        await self._line.close()


@dataclass(frozen=True)
class _Event:
    raw: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.raw.get("type", ""))

    @property
    def event_id(self) -> str:
        return str(self.raw.get("webhookEventId", ""))

    @property
    def redelivery(self) -> bool:
        ctx = self.raw.get("deliveryContext")
        return bool(isinstance(ctx, dict) and ctx.get("isRedelivery"))

    @property
    def reply_token(self) -> str:
        return str(self.raw.get("replyToken", ""))

    @property
    def user(self) -> str:
        source = self.raw.get("source")
        return str(source.get("userId", "")) if isinstance(source, dict) else ""

    @property
    def contact(self) -> str:
        """Where the event happened: the group or room, else the user (a 1:1 chat)."""
        source = self.raw.get("source")
        if not isinstance(source, dict):
            return ""
        return str(source.get("groupId") or source.get("roomId") or source.get("userId") or "")


class LineWebhook:
    """Mount with `add_routes`; run `process` as a task; `close` at the end."""

    def __init__(
        self,
        *,
        secret: str,
        store: ContactsStore,
        replier: LineReplier,
        signer: TokenSigner | None,
        acknowledge: Acknowledger | None,
        identify: Callable[[str], str],
        on_contacts_changed: Callable[[str, list[Binding]], None],
        counters: WebhookCounters | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the LINE channel secret is empty (WARROOM_LINE_CHANNEL_SECRET)")
        self._secret = secret
        self.store = store
        self.replier = replier
        self.signer = signer
        self.acknowledge = acknowledge
        self.identify = identify
        self.on_contacts_changed = on_contacts_changed
        self.counters = counters or WebhookCounters()
        self._clock = clock
        self._queue: asyncio.Queue[_Event] = asyncio.Queue(_QUEUE_LIMIT)
        self._idle = asyncio.Event()
        self._idle.set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.handle)

    # -- the request: verify, queue, answer -------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.content.read(_MAX_BODY + 1)
        given = request.headers.get("X-Line-Signature", "")
        if len(body) > _MAX_BODY or not given:
            self.counters.add("request", "", "bad_signature" if not given else "too_large")
            return web.json_response({"error": "missing or invalid signature"}, status=401)
        if not hmac.compare_digest(given.encode(), signature(self._secret, body).encode()):
            self.counters.add("request", "", "bad_signature")
            log.warning("LINE webhook request with a wrong signature refused")
            return web.json_response({"error": "missing or invalid signature"}, status=401)
        try:
            payload = orjson.loads(body)
            events = payload["events"]
            if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
                raise TypeError("events must be a list of objects")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            self.counters.add("request", "", "bad_body")
            log.warning("signed LINE webhook body unreadable", extra={"error": str(exc)})
            return web.json_response({"error": "body is not a webhook payload"}, status=400)
        if self._queue.qsize() + len(events) > _QUEUE_LIMIT:
            self.counters.add("request", "", "busy")
            return web.json_response({"error": "busy"}, status=503)
        for e in events:  # an empty list is LINE's "Verify" button in the console: 200
            self._idle.clear()
            self._queue.put_nowait(_Event(e))
        self.counters.add("request", "", "accepted")
        return web.json_response({})

    async def drained(self, timeout: float = 10.0) -> None:
        """Until every queued event was processed (tests, shutdown)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # -- processing ----------------------------------------------------------------------------

    async def process(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._one(event)
            except Exception:
                self.counters.add("event", event.type, "error")
                log.exception("LINE webhook event failed", extra={"event_type": event.type})
            finally:
                self._queue.task_done()
                if self._queue.empty():
                    self._idle.set()

    async def _one(self, event: _Event) -> None:
        now_ms = int(self._clock() * 1000)
        if event.event_id and not await asyncio.to_thread(
            self.store.first_delivery, event.event_id, now_ms
        ):
            self.counters.add("event", event.type, "duplicate")
            log.info(
                "LINE event already handled; redelivery skipped",
                extra={"event_type": event.type, "redelivery": event.redelivery},
            )
            return
        handler = {
            "message": self._message,
            "follow": self._follow,
            "unfollow": self._unfollow,
            "leave": self._unfollow,
            "postback": self._postback,
        }.get(event.type)
        if handler is None:
            self.counters.add("event", event.type, "ignored")
            return
        outcome = await handler(event, now_ms)
        self.counters.add("event", event.type, outcome)

    async def _reply(self, event: _Event, text: str) -> None:
        if event.reply_token:
            await self.replier.reply(event.reply_token, text)

    async def _message(self, event: _Event, now_ms: int) -> str:
        message = event.raw.get("message")
        if not isinstance(message, dict) or message.get("type") != "text" or not event.contact:
            return "ignored"
        text = str(message.get("text", ""))
        outcome, reply, invite = await asyncio.to_thread(
            redeem_text, self.store, text, event.contact, now_ms
        )
        if invite is not None and outcome == "bound":
            log.info(
                "LINE contact enrolled",
                extra={"role": invite.role, "area": invite.area, "code": invite.code},
            )
            self.on_contacts_changed("bound", self.store.binding_of(event.contact))
        await self._reply(event, reply)
        return outcome

    async def _follow(self, event: _Event, now_ms: int) -> str:
        back = await asyncio.to_thread(self.store.set_reachable, event.contact, True, now_ms)
        if back:
            self.on_contacts_changed("reachable", back)
            places = ", ".join(area_th(b.role, b.area) for b in back)
            await self._reply(event, ENROL_REPLIES["welcome_back"].format(area=places))
            return "reachable_again"
        await self._reply(event, ENROL_REPLIES["welcome"].format(length=CODE_LENGTH))
        return "welcomed"

    async def _unfollow(self, event: _Event, now_ms: int) -> str:
        gone = await asyncio.to_thread(self.store.set_reachable, event.contact, False, now_ms)
        if gone:
            self.on_contacts_changed("unreachable", gone)
            return "unreachable"
        return "no_binding"

    async def _postback(self, event: _Event, now_ms: int) -> str:
        postback = event.raw.get("postback")
        data = str(postback.get("data", "")) if isinstance(postback, dict) else ""
        if self.signer is None or self.acknowledge is None:
            await self._reply(event, "ขออภัย ระบบรับทราบผ่าน LINE ยังไม่เปิดใช้งาน")
            return "ack_off"

        def by(token: AckToken) -> str:
            name = self.identify(token.contact) or "ผู้รับแจ้งเตือน"
            return f"{name} (LINE)"

        result = await use_token(
            self.signer,
            data,
            sender=event.contact,
            by=by,
            via="line",
            now_ms=now_ms,
            acknowledge=self.acknowledge,
        )
        log.info(
            "LINE acknowledge button",
            extra={
                "outcome": result.outcome,
                "alert_id": result.token.alert_id if result.token else "",
            },
        )
        await self._reply(event, result.reply_th)
        return result.outcome

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await self.drained(timeout=5.0)
        await self.replier.close()
