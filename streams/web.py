"""The worker's web server: /metrics, /healthz, /readyz, the read-only query endpoint, status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from mode import Service

from sinks.http_auth import guard

__all__ = ["WebServer"]

log = logging.getLogger(__name__)


class WebServer(Service):
    """An aiohttp server run as part of the worker. Routes are added before start."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        port_file: Path | None = None,
        password: str = "",
        store_token: str = "",
        public: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.port = port
        self.port_file = port_file
        # everything but the probes needs the password, or a client on this machine; a public
        # listener (LINE's webhook, e-mail ack links) checks each request's own signature
        self.web_app = web.Application(
            client_max_size=64 * 1024 * 1024,
            middlewares=[] if public else [guard(password, store_token)],
        )
        self._runner: web.AppRunner | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` when the server stops (e.g. close the query connections)."""
        self._closers.append(closer)

    def add_json(self, path: str, produce: Callable[[], Any]) -> None:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=orjson.dumps(produce()), content_type="application/json")

        self.web_app.router.add_get(path, handler)

    async def on_start(self) -> None:
        self._runner = web.AppRunner(self.web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server: Any = site._server
        if server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        if self.port_file is not None:
            self.port_file.parent.mkdir(parents=True, exist_ok=True)
            self.port_file.write_text(orjson.dumps({"host": self.host, "port": self.port}).decode())
        log.info("web server listening", extra={"url": self.url})

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for closer in self._closers:
            await closer()
