"""A local stand-in for LINE's Messaging API push endpoint that checks each request as LINE
documents it (developers.line.biz/en/reference/messaging-api/#send-push-message and
/en/docs/messaging-api/retrying-api-request/):

- `POST /v2/bot/message/push`, `Authorization: Bearer <channel access token>`,
  `Content-Type: application/json`;
- `X-Line-Retry-Key`: a UUID in hexadecimal form; once a key was accepted, a request with the
  same key gets 409 and the header `x-line-accepted-request-id`, and nothing is sent again;
- body `{"to": <user U…/group C…/room R… id>, "messages": [1..5 message objects],
  "notificationDisabled"?: bool, "customAggregationUnits"?: [str]}`;
- text message `{"type": "text", "text": 1..5000 characters}`.

Contract breaches are answered 400 and recorded in `violations` (tests assert it stays empty);
a wrong token gets 401. `fail_next(429 | 500, ...)` injects failures, also after accepting.
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class Push:
    to: str
    texts: list[str]
    retry_key: str
    request_id: str


class LineStandIn(ThreadedHttpServer):
    def __init__(self, token: str, port: int = 0) -> None:
        super().__init__(port)
        self.token = token
        self.violations: list[str] = []
        self._accepted: dict[str, Push] = {}  # retry key -> push (dict keeps order)
        self._conflicts = 0
        self._requests = 0

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/bot/message/push", self._push)
        return app

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
        if request.headers.get("Authorization") != f"Bearer {self.token}":
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
                        {"id": f"{earlier.request_id}-{i}"} for i in range(len(earlier.texts))
                    ],
                },
                status=409,
                headers={"x-line-accepted-request-id": earlier.request_id},
            )
        request_id = uuid.uuid4().hex
        push = Push(body["to"], [m["text"] for m in body["messages"]], key, request_id)
        with self.lock:
            self._accepted[key] = push
        if failure is not None:  # accepted, but the sender never sees the answer
            return web.json_response({"message": "injected failure"}, status=failure[0])
        return web.json_response(
            {
                "sentMessages": [
                    {"id": f"{request_id}-{i}", "quoteToken": "q"} for i in range(len(push.texts))
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
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        return f"'messages' must be an array of 1 to {MAX_MESSAGES} message objects"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("type") != "text":
            return f"messages[{i}]: only text messages are expected from warroom"
        if m.keys() - _TEXT_KEYS:
            return f"messages[{i}]: unknown properties {sorted(m.keys() - _TEXT_KEYS)}"
        text = m.get("text")
        if not isinstance(text, str) or not text:
            return f"messages[{i}].text must be a non-empty string"
        # LINE counts UTF-16 code units (an emoji outside the BMP counts 2)
        if len(text.encode("utf-16-le")) // 2 > TEXT_LIMIT:
            return f"messages[{i}].text is longer than {TEXT_LIMIT} characters"
    return ""
