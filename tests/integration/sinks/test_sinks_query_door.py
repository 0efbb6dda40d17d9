"""The query endpoint as a door (issue 12, defect 10), against real chdb over real HTTP: every
bypass of the old string block list is refused by the engine's own parse, nothing is written or
fetched, every query runs under limits, a client that leaves takes its query with it, and a
refused query leaves nothing behind for the next one."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout, web

from sinks.backends import Backend
from sinks.http_query import QueryLimits, QueryService, make_app
from sinks.migrate import migrate
from streams.broker import free_port

pytestmark = pytest.mark.integration

SECRET_FILE_TEXT = "warroom-door-secret-7f3a"
# a long read within the rows limit below: about a minute of hashing on this machine
LONG = "SELECT count() FROM numbers(20000000000) WHERE sipHash64(number) = 0"


@dataclass
class Door:
    url: str
    service: QueryService
    database: str
    hits: list[str]  # requests that reached the canary HTTP server
    canary: str  # its address
    secret: Path  # a host file no query may read
    outdir: Path  # where no query may write


@pytest.fixture
async def door(chdb_backend: Backend, chdb_url: str, tmp_path: Path) -> AsyncIterator[Door]:
    migrate(chdb_backend)
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_FILE_TEXT)
    outdir = tmp_path / "out"
    outdir.mkdir()
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="a\n")

    canary_app = web.Application()
    canary_app.router.add_route("*", "/{tail:.*}", record)
    canary = web.AppRunner(canary_app)
    await canary.setup()
    canary_port = free_port()
    await web.TCPSite(canary, "127.0.0.1", canary_port).start()

    limits = QueryLimits(
        max_execution_time=120,
        max_memory_usage=300_000_000,
        max_rows_to_read=50_000_000_000,
        max_result_rows=100_000,
    )
    service = QueryService(chdb_url, connections=2, limits=limits)
    runner = web.AppRunner(make_app(service))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Door(
            f"http://127.0.0.1:{port}",
            service,
            chdb_backend.database,
            hits,
            f"http://127.0.0.1:{canary_port}",
            secret,
            outdir,
        )
    finally:
        await runner.cleanup()
        await canary.cleanup()


async def _post(door: Door, sql: str, **params: str) -> tuple[int, str, str]:
    async with (
        ClientSession() as http,
        http.post(f"{door.url}/", params={"database": door.database, **params}, data=sql) as resp,
    ):
        return resp.status, resp.headers.get("X-ClickHouse-Exception-Code", ""), await resp.text()


def _bypasses(door: Door) -> list[str]:
    f, out, url = door.secret, door.outdir, door.canary
    return [
        # the table functions, quoted, split by comments, in other cases and places
        f"SELECT * FROM `file`('{f}', 'LineAsString')",
        f"SELECT * FROM \"file\"('{f}', 'LineAsString')",
        f"SELECT * FROM file/**/('{f}', 'LineAsString')",
        f"SELECT * FROM FiLe('{f}', 'LineAsString')",
        f"SELECT * FROM file -- x\n('{f}', 'LineAsString')",
        f"WITH t AS (SELECT * FROM file('{f}', 'LineAsString')) SELECT * FROM t",
        f"SELECT 1 WHERE 1 IN (SELECT 1 FROM file('{f}', 'LineAsString'))",
        f"SELECT * FROM numbers(1) AS n, file('{f}', 'LineAsString') AS x",
        f"DESCRIBE file('{f}', 'LineAsString')",
        f"EXPLAIN PIPELINE SELECT * FROM file('{f}', 'LineAsString')",
        # the scalar function file() reads a host file too (readonly=1 does not stop it)
        f"SELECT file('{f}')",
        f"SELECT `file`('{f}')",
        # writing files
        f"SELECT 1 INTO OUTFILE '{out}/a.txt'",
        f"SELECT 1 INTO OUTFILE '{out}/b.txt' APPEND",
        f"SELECT 1 INTO OUTFILE '{out}/c.txt' TRUNCATE FORMAT CSV",
        f"SELECT 1 INTO OUTFILE '{out}/d.txt.gz' COMPRESSION 'gzip'",
        f"SHOW TABLES INTO OUTFILE '{out}/e.txt'",
        f"EXPLAIN SELECT 1 INTO OUTFILE '{out}/f.txt'",
        # the network and the host
        f"SELECT * FROM url('{url}/u1', 'LineAsString')",
        f"SELECT * FROM `url`('{url}/u2', 'LineAsString')",
        f"SELECT * FROM URL/**/('{url}/u3', 'LineAsString')",
        f"SELECT * FROM urlCluster('default', '{url}/u4', 'LineAsString')",
        "SELECT * FROM remote('127.0.0.1', system.one)",
        "SELECT * FROM executable('ls', TSV, 'x String')",
        "SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV', 'a String')",
        "SELECT aiGenerate('x')",
        # the worker's own Python memory (chdb's Python() table function)
        "SELECT * FROM Python(service)",
        "SELECT * FROM python(service)",
        # endless or other tables through table functions, and the host's state
        "SELECT * FROM loop(numbers(3)) LIMIT 5",
        "SELECT * FROM merge('system', '^one$')",
        "SELECT * FROM system.stack_trace",
        "SELECT * FROM system.processes",
        # not reads
        "KILL QUERY WHERE 1",
        "SYSTEM DROP DNS CACHE",
        "SET readonly = 0",
        "SELECT 1; DROP TABLE metric_buckets",
        "CREATE TEMPORARY TABLE t (a UInt8)",
    ]


async def test_every_bypass_is_refused_and_nothing_leaks(door: Door) -> None:
    for sql in _bypasses(door):
        status, code, body = await _post(door, sql)
        assert status >= 400, (sql, body)
        assert code in ("164", "497", "62"), (sql, body)
        assert SECRET_FILE_TEXT not in body, sql
    # a table named through a query parameter is vetted with the parameter substituted
    status, code, body = await _post(
        door, "SELECT * FROM {t:Identifier}", param_t="system.stack_trace"
    )
    assert (status, code) == (403, "497"), body
    assert door.hits == []  # the worker fetched nothing
    assert list(door.outdir.iterdir()) == []  # and wrote nothing
    # the same words as data are fine, and harmless generators still work
    status, _, body = await _post(
        door,
        "SELECT 'file(x) INTO OUTFILE ''y''' AS s, (SELECT count() FROM numbers(10)) AS n",
        default_format="TabSeparatedRaw",
    )
    assert (status, body) == (200, "file(x) INTO OUTFILE 'y'\t10\n")


async def test_settings_cannot_lift_the_limits(door: Door) -> None:
    ceilings = door.service.limits
    # asked higher, or 0 (= unlimited): the endpoint's ceiling applies
    for asked in ("0", "999999999999"):
        status, _, body = await _post(
            door, "SELECT getSetting('max_memory_usage')", max_memory_usage=asked
        )
        assert (status, body) == (200, f"{ceilings.max_memory_usage}\n")
    # asked lower: granted
    status, _, body = await _post(door, "SELECT getSetting('max_result_rows')", max_result_rows="5")
    assert (status, body) == (200, "5\n")
    # a SETTINGS clause cannot raise them either (readonly=1 on the session)
    status, code, body = await _post(door, "SELECT 1 SETTINGS max_memory_usage = 0")
    assert (status, code) == (500, "164"), body
    # nor may a reader turn on what the endpoint keeps off
    status, code, _ = await _post(door, "SELECT 1", allow_introspection_functions="1")
    assert code == "164"
    # readonly in the URL is the transport's; the session stays readonly=1
    status, _, body = await _post(door, "SELECT getSetting('readonly')", readonly="0")
    assert (status, body) == (200, "1\n")


async def test_limits_stop_runaway_queries_and_leave_no_state(door: Door) -> None:
    started = time.monotonic()
    # numbers(1e12): refused by the rows limit before it reads anything
    status, code, body = await _post(door, "SELECT count() FROM numbers(1000000000000000)")
    assert (status, code) == (500, "158"), body
    # groupArray of a big range: stopped by the memory limit, not by the machine
    status, code, body = await _post(
        door, "SELECT length(groupArray(toString(number))) FROM numbers(200000000)"
    )
    assert code == "241", body
    # a result over the rows limit
    status, code, body = await _post(door, "SELECT number FROM numbers(200000)")
    assert code == "396", body
    assert time.monotonic() - started < 60
    # chdb 4.4 could refuse the next query of a session after TOO_MANY_ROWS: each query has
    # its own session, so the next ones (on both slots) answer normally
    for _ in range(4):
        assert await _post(door, "SELECT count() FROM numbers(1000)") == (200, "", "1000\n")


async def _wait_idle(door: Door, backend: Backend, timeout: float) -> float:
    """Seconds until no query of the service runs in the engine (read by another session)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        running = backend.query_rows(
            "SELECT count() FROM system.processes WHERE query LIKE '%sipHash64(number) = 0%' "
            "AND query NOT LIKE '%system.processes%'"
        )
        if running == [(0,)] and door.service.running == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"queries still running after {timeout}s")


async def test_a_client_that_leaves_takes_its_query_along(
    door: Door, chdb_backend: Backend
) -> None:
    async def leave_after(seconds: float) -> None:
        async with ClientSession(timeout=ClientTimeout(total=seconds)) as http:
            with pytest.raises(TimeoutError):
                await http.post(f"{door.url}/", data=LONG)

    # two long queries take both slots, and both clients give up after a second
    await asyncio.gather(leave_after(1.0), leave_after(1.0))
    waited = await _wait_idle(door, chdb_backend, timeout=10)
    assert waited < 5
    assert door.service.cancelled == 2
    # the slots are free: the next query answers at once
    started = time.monotonic()
    assert await _post(door, "SELECT 42") == (200, "", "42\n")
    assert time.monotonic() - started < 2


async def test_a_password_guards_the_endpoint(chdb_backend: Backend, chdb_url: str) -> None:
    migrate(chdb_backend)
    secret = "a-long-test-password-0123456789"
    runner = web.AppRunner(make_app(QueryService(chdb_url), password=secret))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/"

    def basic(password: str) -> dict[str, str]:
        token = base64.b64encode(f"grafana:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    try:
        async with ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/ping") as resp:
                assert resp.status == 200  # probes stay open
            for headers, params in (
                ({}, {}),
                (basic("wrong"), {}),
                ({"X-ClickHouse-Key": "wrong"}, {}),
                ({}, {"password": "wrong"}),
            ):
                async with http.post(url, data="SELECT 1", headers=headers, params=params) as r:
                    assert r.status == 401, await r.text()
                    assert r.headers["X-ClickHouse-Exception-Code"] == "516"
            for headers, params in (
                (basic(secret), {}),
                ({"X-ClickHouse-Key": secret}, {}),
                ({}, {"password": secret}),
            ):
                async with http.post(url, data="SELECT 1", headers=headers, params=params) as r:
                    assert (r.status, await r.text()) == (200, "1\n")
    finally:
        await runner.cleanup()


def _own_address() -> str | None:
    """A non-loopback address of this machine, to be another machine's client."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks the interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


async def test_without_a_password_only_this_machine_gets_in(
    chdb_backend: Backend, chdb_url: str
) -> None:
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    migrate(chdb_backend)
    runner = web.AppRunner(make_app(QueryService(chdb_url)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # bound beyond loopback
    try:
        async with ClientSession() as http:
            async with http.post(f"http://{address}:{port}/", data="SELECT 1") as resp:
                assert resp.status == 403
                assert "WARROOM_WEB_PASSWORD" in await resp.text()
            async with http.get(f"http://{address}:{port}/ping") as resp:
                assert resp.status == 200  # probes stay open
            async with http.post(f"http://127.0.0.1:{port}/", data="SELECT 1") as resp:
                assert (resp.status, await resp.text()) == (200, "1\n")
    finally:
        await runner.cleanup()
