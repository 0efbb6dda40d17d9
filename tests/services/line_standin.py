"""A local stand-in for LINE's Messaging API push endpoint that checks each request as LINE
documents it (developers.line.biz/en/reference/messaging-api/#send-push-message and
/en/docs/messaging-api/retrying-api-request/):

- `POST /v2/bot/message/push`, `Authorization: Bearer <channel access token>`,
  `Content-Type: application/json`;
- `X-Line-Retry-Key`: a UUID in hexadecimal form; once a key was accepted, a request with the
  same key gets 409 and the header `x-line-accepted-request-id`, and nothing is sent again;
- body `{"to": <user U…/group C…/room R… id>, "messages": [1..5 message objects],
  "notificationDisabled"?: bool, "customAggregationUnits"?: [str]}`;
- text message `{"type": "text", "text": 1..5000 characters}`;
- template message (developers.line.biz/en/reference/messaging-api/#template-messages)
  `{"type": "template", "altText": 1..400, "template": {"type": "buttons", "text": 1..160
  (60 with a title or image), "title"?: ..40, "actions": 1..4}}`; a postback action has a
  `label` of 1..20, `data` of 1..300 and an optional `displayText` of 1..300; a uri action a
  `label` of 1..20 and an http(s)/line/tel `uri` of 1..1000 characters;
- reply (#send-reply-message): `POST /v2/bot/message/reply`, the same auth, body
  `{"replyToken", "messages": [1..5], "notificationDisabled"?}`; a reply token is one the
  stand-in put in a webhook event it sent, usable once (a second use is 400 "Invalid reply
  token", as LINE answers).

It also plays LINE's side of the webhook: `send_events` posts a body signed as LINE signs it
(base64 HMAC-SHA256 of the body with the channel secret, header `X-Line-Signature`), with
`destination`, and each event with `webhookEventId`, `deliveryContext.isRedelivery`,
`timestamp`, `mode` and `source`; `redeliver` sends an event again with `isRedelivery: true`.

Contract breaches are answered 400 and recorded in `violations` (tests assert it stays empty);
a wrong token gets 401. `fail_next(429 | 500, ...)` injects failures, also after accepting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.services.webhook_receiver import ThreadedHttpServer

__all__ = ["LineStandIn", "Push"]

_TO = re.compile(r"^[UCR][0-9a-f]{32}$")
_TOP_KEYS = {"to", "messages", "notificationDisabled", "customAggregationUnits"}
_TEXT_KEYS = {"type", "text", "emojis", "quoteToken", "quickReply", "sender"}
TEXT_LIMIT = 5000
MAX_MESSAGES = 5
ALT_TEXT_LIMIT = 400
BUTTONS_TEXT_LIMIT = 160
BUTTONS_TEXT_LIMIT_WITH_TITLE = 60
MAX_ACTIONS = 4
LABEL_LIMIT = 20
POSTBACK_DATA_LIMIT = 300
URI_LIMIT = 1000
_TEMPLATE_KEYS = {"type", "altText", "template", "quickReply", "sender"}
_BUTTONS_KEYS = {"type", "text", "title", "actions", "thumbnailImageUrl", "imageAspectRatio",
                 "imageSize", "imageBackgroundColor", "defaultAction"}  # fmt: skip
_REPLY_KEYS = {"replyToken", "messages", "notificationDisabled"}


@dataclass(frozen=True)
class Push:
    to: str
    texts: list[str]
    retry_key: str
    request_id: str
    messages: list[dict[str, Any]]  # as sent, templates included

    @property
    def postbacks(self) -> list[dict[str, Any]]:
        return [
            a
            for m in self.messages
            if m.get("type") == "template"
            for a in m["template"]["actions"]
            if a.get("type") == "postback"
        ]


@dataclass(frozen=True)
class Reply:
    reply_token: str
    to: str  # the source of the event the token was issued for
    texts: list[str]


def line_signature(secret: str, body: bytes) -> str:
    """How LINE signs a webhook body (independent of warroom's code)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class LineStandIn(ThreadedHttpServer):
    def __init__(self, token: str, port: int = 0, secret: str = "") -> None:
        super().__init__(port)
        self.token = token
        self.secret = secret
        self.violations: list[str] = []
        self._reply_tokens: dict[str, str] = {}  # issued token -> source id
        self._replies: list[Reply] = []
        self._accepted: dict[str, Push] = {}  # retry key -> push (dict keeps order)
        self._conflicts = 0
        self._requests = 0

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/bot/message/push", self._push)
        app.router.add_post("/v2/bot/message/reply", self._reply)
        return app

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _reply(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"message": "Authentication failed."}, status=401)
        if request.content_type != "application/json":
            return self._bad(f"reply: Content-Type is {request.content_type}, not JSON")
        try:
            body = await request.json()
        except ValueError:
            return self._bad("reply: the request body is not JSON")
        if not isinstance(body, dict) or body.keys() - _REPLY_KEYS:
            return self._bad(f"reply: unexpected body {body!r}")
        problem = _check_messages(body.get("messages"))
        if problem:
            return self._bad(f"reply: {problem}")
        token = body.get("replyToken")
        with self.lock:
            source = self._reply_tokens.pop(token, None) if isinstance(token, str) else None
            if source is not None:
                texts = [m.get("text", "") for m in body["messages"]]
                self._replies.append(Reply(str(token), source, texts))
        if source is None:  # unknown or used before: what LINE answers (not a contract breach)
            return web.json_response({"message": "Invalid reply token"}, status=400)
        return web.json_response({"sentMessages": [{"id": uuid.uuid4().hex}]})

    # -- LINE's side of the webhook -------------------------------------------------------

    def event(self, kind: str, source: str, **fields: Any) -> dict[str, Any]:
        """A webhook event object as LINE documents it; `source` is a user (U...) id, or
        "C...:U..." for a member of a group. Events that can be answered get a reply token."""
        group, _, user = source.partition(":") if ":" in source else ("", "", source)
        src: dict[str, Any] = {"type": "group", "groupId": group, "userId": user} if group else {
            "type": "user", "userId": user}  # fmt: skip
        event: dict[str, Any] = {
            "type": kind,
            "mode": "active",
            "timestamp": int(time.time() * 1000),
            "source": src,
            "webhookEventId": uuid.uuid4().hex.upper()[:26],
            "deliveryContext": {"isRedelivery": False},
            **fields,
        }
        if kind in ("message", "follow", "postback", "join"):
            token = uuid.uuid4().hex
            event["replyToken"] = token
            with self.lock:
                self._reply_tokens[token] = group or user
        return event

    def text_event(self, source: str, text: str) -> dict[str, Any]:
        message_id = str(uuid.uuid4().int)[:18]
        message = {"type": "text", "id": message_id, "quoteToken": "q", "text": text}
        return self.event("message", source, message=message)

    def send_events(
        self, url: str, events: list[dict[str, Any]], *, secret: str | None = None,
        signature: str | None = None,
    ) -> tuple[int, bytes]:  # fmt: skip
        """POST them as LINE does; `secret`/`signature` forge a wrong one. (status, body)."""
        body = json.dumps(
            {"destination": "U" + "0" * 32, "events": events}, ensure_ascii=False
        ).encode()
        sig = signature if signature is not None else line_signature(secret or self.secret, body)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "LineBotWebhook/2.0",
        }
        if sig:
            headers["X-Line-Signature"] = sig
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    @staticmethod
    def redelivered(event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "deliveryContext": {"isRedelivery": True}}

    def replies(self) -> list[Reply]:
        with self.lock:
            return list(self._replies)

    def _bad(self, text: str) -> web.Response:
        with self.lock:
            self.violations.append(text)
        return web.json_response({"message": text}, status=400)

    async def _push(self, request: web.Request) -> web.Response:
        with self.lock:
            self._requests += 1
        failure = self.take_failure()
        if failure is not None and not failure[2]:
            return web.json_response(
                {"message": "injected failure"}, status=failure[0], headers=failure[1]
            )
        if not self._authorised(request):
            return web.json_response(
                {
                    "message": "Authentication failed. Confirm that the access token in the "
                    "authorization header is valid."
                },
                status=401,
            )
        if request.content_type != "application/json":
            return self._bad(f"Content-Type must be application/json, got {request.content_type}")
        key = request.headers.get("X-Line-Retry-Key")
        if key is None:
            return self._bad("X-Line-Retry-Key missing (warroom always sends one)")
        try:
            if str(uuid.UUID(key)) != key.lower():
                raise ValueError
        except ValueError:
            return self._bad(f"X-Line-Retry-Key {key!r} is not a UUID in hexadecimal format")
        try:
            body = await request.json()
        except ValueError:
            return self._bad("the request body is not JSON")
        problem = _check_body(body)
        if problem:
            return self._bad(problem)
        with self.lock:
            earlier = self._accepted.get(key)
            if earlier is not None:
                self._conflicts += 1
        if earlier is not None:
            return web.json_response(
                {
                    "message": "The retry key is already accepted",
                    "sentMessages": [
                        {"id": f"{earlier.request_id}-{i}"} for i in range(len(earlier.messages))
                    ],
                },
                status=409,
                headers={"x-line-accepted-request-id": earlier.request_id},
            )
        request_id = uuid.uuid4().hex
        texts = [m["text"] for m in body["messages"] if m["type"] == "text"]
        push = Push(body["to"], texts, key, request_id, body["messages"])
        with self.lock:
            self._accepted[key] = push
        if failure is not None:  # accepted, but the sender never sees the answer
            return web.json_response({"message": "injected failure"}, status=failure[0])
        return web.json_response(
            {
                "sentMessages": [
                    {"id": f"{request_id}-{i}", "quoteToken": "q"}
                    for i in range(len(push.messages))
                ]
            },
            headers={"x-line-request-id": request_id},
        )

    def pushes(self) -> list[Push]:
        with self.lock:
            return list(self._accepted.values())

    @property
    def conflicts(self) -> int:
        """409 answers given: retries of a push that had been accepted."""
        with self.lock:
            return self._conflicts

    @property
    def requests(self) -> int:
        with self.lock:
            return self._requests


def _check_body(body: Any) -> str:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    extra = body.keys() - _TOP_KEYS
    if extra:
        return f"unknown properties {sorted(extra)}"
    to = body.get("to")
    if not isinstance(to, str) or not _TO.match(to):
        return f"'to' must be a user, group or room id, got {to!r}"
    if "notificationDisabled" in body and not isinstance(body["notificationDisabled"], bool):
        return "notificationDisabled must be a boolean"
    return _check_messages(body.get("messages"))


def _units(text: str) -> int:
    # LINE counts UTF-16 code units (an emoji outside the BMP counts 2)
    return len(text.encode("utf-16-le")) // 2


def _check_text(value: Any, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string"
    if _units(value) > limit:
        return f"{what} is longer than {limit} characters ({_units(value)})"
    return ""


def _check_action(a: Any, what: str) -> str:
    if not isinstance(a, dict):
        return f"{what} must be an object"
    problem = _check_text(a.get("label"), LABEL_LIMIT, f"{what}.label")
    if problem:
        return problem
    if a.get("type") == "postback":
        if a.keys() - {"type", "label", "data", "displayText", "inputOption", "fillInText"}:
            return f"{what}: unknown postback properties"
        return _check_text(a.get("data"), POSTBACK_DATA_LIMIT, f"{what}.data") or (
            _check_text(a["displayText"], 300, f"{what}.displayText") if "displayText" in a else ""
        )
    if a.get("type") == "uri":
        if a.keys() - {"type", "label", "uri", "altUri"}:
            return f"{what}: unknown uri properties"
        uri = a.get("uri")
        problem = _check_text(uri, URI_LIMIT, f"{what}.uri")
        if problem:
            return problem
        if not re.match(r"^(https?|line|tel):", str(uri)):
            return f"{what}.uri must be http, https, line or tel: {uri!r}"
        return ""
    return f"{what}: action type {a.get('type')!r} is not one warroom sends"


def _check_template(m: dict[str, Any], what: str) -> str:
    if m.keys() - _TEMPLATE_KEYS:
        return f"{what}: unknown properties {sorted(m.keys() - _TEMPLATE_KEYS)}"
    problem = _check_text(m.get("altText"), ALT_TEXT_LIMIT, f"{what}.altText")
    if problem:
        return problem
    t = m.get("template")
    if not isinstance(t, dict) or t.get("type") != "buttons":
        return f"{what}.template must be a buttons template"
    if t.keys() - _BUTTONS_KEYS:
        return f"{what}.template: unknown properties {sorted(t.keys() - _BUTTONS_KEYS)}"
    titled = "title" in t or "thumbnailImageUrl" in t
    limit = BUTTONS_TEXT_LIMIT_WITH_TITLE if titled else BUTTONS_TEXT_LIMIT
    problem = _check_text(t.get("text"), limit, f"{what}.template.text")
    if problem:
        return problem
    if "title" in t and (problem := _check_text(t["title"], 40, f"{what}.template.title")):
        return problem
    actions = t.get("actions")
    if not isinstance(actions, list) or not 1 <= len(actions) <= MAX_ACTIONS:
        return f"{what}.template.actions must hold 1 to {MAX_ACTIONS} actions"
    for j, a in enumerate(actions):
        if problem := _check_action(a, f"{what}.template.actions[{j}]"):
            return problem
    return ""


def _check_messages(messages: Any) -> str:
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        return f"'messages' must be an array of 1 to {MAX_MESSAGES} message objects"
    for i, m in enumerate(messages):
        if isinstance(m, dict) and m.get("type") == "template":
            if problem := _check_template(m, f"messages[{i}]"):
                return problem
            continue
        if not isinstance(m, dict) or m.get("type") != "text":
            return f"messages[{i}]: only text and template messages are expected from warroom"
        if m.keys() - _TEXT_KEYS:
            return f"messages[{i}]: unknown properties {sorted(m.keys() - _TEXT_KEYS)}"
        text = m.get("text")
        if not isinstance(text, str) or not text:
            return f"messages[{i}].text must be a non-empty string"
        # LINE counts UTF-16 code units (an emoji outside the BMP counts 2)
        if len(text.encode("utf-16-le")) // 2 > TEXT_LIMIT:
            return f"messages[{i}].text is longer than {TEXT_LIMIT} characters"
    return ""
