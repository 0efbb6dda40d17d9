"""Fixtures for the observability tests: a metrics app served from a thread, a real Prometheus."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from streams.broker import free_port
from tests.services.prometheus import PrometheusServer, available
from warroom.health import Health, add_routes
from warroom.telemetry import Telemetry


class ThreadedApp:
    """An aiohttp app on its own event loop in a thread, so blocking tests (CLI, Prometheus
    waits) can talk to it. Stops only what it started."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()

        async def up() -> None:
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(up(), self._loop).result(10)
        return self.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class MetricsApp:
    """A fresh registry with warroom's metrics, served at /metrics, /healthz, /readyz and
    /status/top-districts (set `districts`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tel = Telemetry(self.registry)
        self.health = Health()
        self.districts: Any = None
        app = web.Application()
        add_routes(app, self.health, registry=self.registry)

        async def top(request: web.Request) -> web.Response:
            if self.districts is None:
                raise web.HTTPNotFound()
            return web.json_response(self.districts)

        app.router.add_get("/status/top-districts", top)
        self.server = ThreadedApp(app)
        self.url = self.server.url


@pytest.fixture
def metrics_app() -> Iterator[MetricsApp]:
    m = MetricsApp()
    m.server.start()
    yield m
    m.server.stop()


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    """One real Prometheus for the session (scrape every second); tests add their targets."""
    if not available():
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    prom = PrometheusServer(scrape_interval="1s")
    prom.start()
    yield prom
    prom.stop()
