"""A webhook receiver for tests (aiohttp in its own thread), and the threaded-server base the LINE
stand-in shares.

    hook = WebhookReceiver()
    hook.start()                     # http://127.0.0.1:<port>/hook
    hook.fail_next(500, count=2)     # the next two requests get 500
    hook.clear_failures()            # ... or not, after all
    hook.stop(); hook.start()        # down for a while, same port
    hook.deliveries()                # every accepted request, in order
    hook.violations                  # requests that broke the documented contract

It checks what alerts/channels/webhook.py documents: POST, Content-Type application/json, an
Idempotency-Key header, a JSON object body whose notification_id equals that key.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streams.broker import free_port

__all__ = ["Delivery", "ThreadedHttpServer", "WebhookReceiver"]


class ThreadedHttpServer:
    """An aiohttp application served from a background thread with its own event loop, so it is
    independent of the test's loop and can be stopped and started again on the same port."""

    def __init__(self, port: int = 0) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._failures: deque[tuple[int, dict[str, str], bool]] = deque()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def make_app(self) -> web.Application:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> str:
        if self._thread is not None:
            return self.url
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=type(self).__name__, daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout)
        return self.url

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (recorded requests are kept): connections are refused until start()."""
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
        self._loop = self._thread = None
        self._runner = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def fail_next(
        self,
        status: int,
        count: int = 1,
        headers: dict[str, str] | None = None,
        *,
        after_accepting: bool = False,
    ) -> None:
        """Answer the next `count` requests with `status`. `after_accepting`: take the request
        first and then fail (a lost response: the sender cannot know it arrived)."""
        with self.lock:
            for _ in range(count):
                self._failures.append((status, dict(headers or {}), after_accepting))

    def clear_failures(self) -> None:
        """Forget the injected failures not used yet (the receiver has recovered)."""
        with self.lock:
            self._failures.clear()

    def take_failure(self) -> tuple[int, dict[str, str], bool] | None:
        with self.lock:
            return self._failures.popleft() if self._failures else None

    def __enter__(self) -> ThreadedHttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    duplicate: bool = False  # the Idempotency-Key had been accepted before


@dataclass
class _State:
    accepted: list[Delivery] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    requests: int = 0


class WebhookReceiver(ThreadedHttpServer):
    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._state = _State()
        self.violations: list[str] = []

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def _violation(self, text: str) -> web.Response:
        with self.lock:
            self.violations.append(text)
        return web.json_response({"error": text}, status=400)

    async def _handle(self, request: web.Request) -> web.Response:
        with self.lock:
            self._state.requests += 1
        failure = self.take_failure()
        if failure is not None and not failure[2]:
            return web.json_response({"error": "injected"}, status=failure[0], headers=failure[1])
        if request.method != "POST":
            return self._violation(f"method {request.method}")
        if request.content_type != "application/json":
            return self._violation(f"content type {request.content_type!r}")
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return self._violation("no Idempotency-Key header")
        try:
            body = await request.json()
        except ValueError:
            return self._violation("body is not JSON")
        if not isinstance(body, dict) or body.get("notification_id") != key:
            return self._violation("notification_id does not match the Idempotency-Key")
        with self.lock:
            duplicate = key in self._state.keys
            self._state.keys.add(key)
            self._state.accepted.append(
                Delivery(request.path, dict(request.headers), body, duplicate)
            )
        if failure is not None:
            return web.json_response({"error": "injected"}, status=failure[0], headers=failure[1])
        return web.json_response({"ok": True, "duplicate": duplicate})

    def deliveries(self) -> list[Delivery]:
        with self.lock:
            return list(self._state.accepted)

    @property
    def requests(self) -> int:
        with self.lock:
            return self._state.requests
