"""`POST /store/insert` needs the store token (issue 12, defect 10): a forged metric row without
it, or with a wrong one, never reaches the store; the other workers' real client, holding the
token, still writes (real chdb, real HTTP, the real WorkerStoreBackend)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web

from sinks.backends import Backend, StoreError
from sinks.backends.worker import WorkerStoreBackend
from sinks.http_auth import STORE_TOKEN_HEADER, guard
from sinks.http_insert import add_insert_route
from sinks.http_query import QueryService, add_routes
from sinks.migrate import migrate
from sinks.url import parse_store_url
from sinks.writer import Writer
from streams.broker import free_port
from warroom.telemetry import Telemetry

pytestmark = pytest.mark.integration

pa: Any = importlib.import_module("pyarrow")
TOKEN = "store-token-for-this-test-0123456789"
ROW = ("1001", "grievance_received", "land", "web", 1_767_225_600, 0, 999.0, 1)
COLUMNS = (
    "district_code",
    "metric",
    "dim1",
    "dim2",
    "bucket",
    "kafka_partition",
    "value",
    "version",
)


async def _open_door(
    backend: Backend, url: str, telemetry: Telemetry, port: int
) -> Callable[[], Awaitable[None]]:
    """The store owner's HTTP door (query and insert routes) on `port`; returns a closer."""
    writer = Writer(backend, telemetry=telemetry)
    app = web.Application(middlewares=[guard("", TOKEN)])
    service = QueryService(url)
    add_routes(app, service)
    add_insert_route(app, writer, TOKEN)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    async def close() -> None:
        await runner.cleanup()
        await service.close()
        await writer.close()

    return close


@pytest.fixture
async def owner(chdb_backend: Backend, chdb_url: str, telemetry: Telemetry) -> AsyncIterator[str]:
    """The store owner's door on a free port: its address."""
    migrate(chdb_backend)
    port = free_port()
    close = await _open_door(chdb_backend, chdb_url, telemetry, port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await close()


def _forged_batch() -> bytes:
    table = pa.Table.from_pylist([dict(zip(COLUMNS, ROW, strict=True))])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _count(backend: Backend) -> int:
    return int(backend.query_rows("SELECT count() FROM metric_buckets WHERE value = 999")[0][0])


async def test_forged_inserts_are_refused(owner: str, chdb_backend: Backend) -> None:
    address = owner
    url = f"http://{address}/store/insert?table=metric_buckets"
    async with ClientSession() as http:
        for headers in ({}, {STORE_TOKEN_HEADER: "wrong"}, {"X-ClickHouse-Key": TOKEN}):
            async with http.post(url, data=_forged_batch(), headers=headers) as resp:
                assert resp.status == 403, await resp.text()
    assert _count(chdb_backend) == 0


async def test_the_other_workers_write_with_the_token(owner: str, chdb_backend: Backend) -> None:
    address = owner
    db = chdb_backend.database

    def insert(token: str) -> int:
        backend = WorkerStoreBackend(
            parse_store_url(f"chdb+http://{address}?database={db}", {"WARROOM_STORE_TOKEN": token})
        )
        try:
            return backend.insert(
                "metric_buckets", {c: [v] for c, v in zip(COLUMNS, ROW, strict=True)}
            )
        finally:
            backend.close()

    with pytest.raises(StoreError):
        await asyncio.to_thread(insert, "not-the-token-at-all")
    assert _count(chdb_backend) == 0
    assert await asyncio.to_thread(insert, TOKEN) == 1
    assert _count(chdb_backend) == 1


def test_no_token_no_route(telemetry: Telemetry, chdb_backend: Backend) -> None:
    with pytest.raises(ValueError):
        add_insert_route(web.Application(), Writer(chdb_backend, telemetry=telemetry), "")


async def test_a_write_emptied_by_the_fence_waits_for_the_store_to_answer(
    chdb_backend: Backend, chdb_url: str, telemetry: Telemetry
) -> None:
    """Another worker writes through the owner's door; the owner dies. A handover's fence
    then drops every row of the retried write, so nothing is left to retry. That says nothing
    of the store: it stays away (the worker stays paused and unready) until the store answers
    again, then it is back without a new write. (CI: an emptied write said "back" while the
    owner was dead, and without anything to retry a worker could stay paused for good.)"""
    migrate(chdb_backend)
    port = free_port()
    close = await _open_door(chdb_backend, chdb_url, telemetry, port)
    backend = WorkerStoreBackend(
        parse_store_url(
            f"chdb+http://127.0.0.1:{port}?database={chdb_backend.database}",
            {"WARROOM_STORE_TOKEN": TOKEN},
        )
    )
    writer = Writer(
        backend, flush_interval=0.05, retry_initial=0.05, retry_max=0.2, telemetry=telemetry
    )
    await writer.start()
    gauge = ("1001", "grievance_open", "land", "urgent", 1_767_225_600, 1, 1.0, 7)
    writer.add("metric_gauges_latest", gauge)
    await asyncio.wait_for(writer.flush(), 30)
    assert writer.store_away() is None
    await close()  # the owner is gone: its port refuses
    writer.add_many("metric_gauges_latest", [(*gauge[:3], f"u{i}", *gauge[4:]) for i in range(20)])
    for _ in range(200):
        if writer.store_away() is not None:
            break
        await asyncio.sleep(0.02)
    assert writer.store_away() is not None
    dropped, settled = await writer.fence(("metric_gauges_latest",), lambda row: True, timeout=5)
    assert (dropped, settled) == (20, True)
    await asyncio.wait_for(writer.flush(rollups=False), 10)  # nothing is left to write
    assert writer.buffered_rows == 0
    await asyncio.sleep(1.0)  # several idle rounds: each asks the dead store, none answers
    away = writer.store_away()
    assert away is not None and "unreachable" in away[1], away
    close = await _open_door(chdb_backend, chdb_url, telemetry, port)  # the owner is back
    try:
        for _ in range(100):
            if writer.store_away() is None:
                break
            await asyncio.sleep(0.05)
        assert writer.store_away() is None
        assert writer.store_writable() == (True, "chdb: the store answers again")
        got = chdb_backend.query_rows("SELECT count() FROM metric_gauges_latest")
        assert got == [(1,)]  # the dropped rows never landed
    finally:
        await writer.close()
        backend.close()
        await close()
