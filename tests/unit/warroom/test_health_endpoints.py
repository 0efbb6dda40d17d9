"""/healthz and /readyz over real HTTP (aiohttp test server on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from warroom.health import Health, add_routes
from warroom.telemetry import Telemetry

Serve = Callable[[Health], Awaitable[TestClient[web.Request, web.Application]]]


class World:
    """What the probes look at; the tests change it."""

    def __init__(self) -> None:
        self.broker_up = True
        self.partitions: float | None = 4
        self.lag: float | None = 0


@pytest.fixture
async def served() -> AsyncIterator[Serve]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(health: Health) -> TestClient[web.Request, web.Application]:
        reg = CollectorRegistry()
        Telemetry(reg).stream("grievance", "g").record_batch(accepted_by_source={"sim": 2})
        app = web.Application()
        add_routes(app, health, registry=reg)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


def worker_health(world: World, max_lag: float = 100) -> Health:
    async def broker() -> bool:
        await asyncio.sleep(0)
        if not world.broker_up:
            raise ConnectionError("connection refused")
        return True

    h = Health(timeout=0.5)
    h.standard(
        broker=broker,
        partitions=lambda: world.partitions,
        lag=lambda: world.lag,
        max_lag=max_lag,
    )
    return h


async def test_readyz_flips_to_503_when_a_probe_fails_and_back(served: Serve) -> None:
    world = World()
    health = worker_health(world)
    client = await served(health)

    # the store check is pushed: unready until the sink reports a write
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 503
    assert body["failing"] == ["store"]

    health.report("store", True, "wrote 10 rows")
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 200, body
    assert body["status"] == "ready"
    assert [c["name"] for c in body["checks"]] == ["broker", "partitions", "lag", "store"]
    assert all(c["ok"] for c in body["checks"])

    world.broker_up = False
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 503
    assert body["failing"] == ["broker"]
    broker = next(c for c in body["checks"] if c["name"] == "broker")
    assert "connection refused" in broker["detail"]

    world.broker_up = True
    world.lag = 101
    r = await client.get("/readyz")
    assert r.status == 503
    assert (await r.json())["failing"] == ["lag"]

    world.lag = 100  # the threshold itself is still ready
    health.report("store", False, "Cannot lock file")
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 503 and body["failing"] == ["store"]
    assert "Cannot lock file" in body["checks"][-1]["detail"]

    health.report("store", True)
    world.partitions = 0
    r = await client.get("/readyz")
    assert r.status == 503 and (await r.json())["failing"] == ["partitions"]

    world.partitions = 1
    r = await client.get("/readyz")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")


async def test_a_hanging_probe_fails_after_its_timeout(served: Serve) -> None:
    async def hangs() -> bool:
        await asyncio.sleep(30)
        return True

    health = Health(timeout=0.2)
    health.add_probe("broker", hangs)
    health.add_probe("sync", lambda: (True, "fine"))
    client = await served(health)
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 503
    assert body["failing"] == ["broker"]
    assert "0.2s" in body["checks"][0]["detail"]
    sync = body["checks"][1]
    assert (sync["name"], sync["ok"], sync["detail"]) == ("sync", True, "fine")


async def test_unknown_lag_is_not_ready() -> None:
    world = World()
    world.lag = None
    health = worker_health(world)
    health.report("store", True)
    results = {r.name: r for r in await health.check()}
    assert not results["lag"].ok and results["lag"].detail == "not known yet"


async def test_stale_pushed_result_counts_as_failed() -> None:
    health = Health()
    health.expect("store", stale_after=0.05)
    health.report("store", True)
    assert all(r.ok for r in await health.check())
    await asyncio.sleep(0.1)
    (result,) = await health.check()
    assert not result.ok and "old" in result.detail


async def test_healthz_is_200_while_the_loop_beats_and_503_when_it_stalls(served: Serve) -> None:
    health = Health(stall_after=0.1)
    client = await served(health)
    r = await client.get("/healthz")
    assert r.status == 200  # no beat yet: answering is proof enough
    health.beat()
    r = await client.get("/healthz")
    assert r.status == 200
    await asyncio.sleep(0.2)
    r = await client.get("/healthz")
    body = await r.json()
    assert r.status == 503 and body["status"] == "stalled"
    health.beat()
    assert (await client.get("/healthz")).status == 200


async def test_metrics_route_serves_the_registry(served: Serve) -> None:
    client = await served(Health())
    r = await client.get("/metrics")
    text = await r.text()
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert 'warroom_events_accepted_total{source="sim",stream="grievance"} 2.0' in text
