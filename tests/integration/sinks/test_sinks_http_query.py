"""The read-only ClickHouse-HTTP endpoint over real chdb, read by a real clickhouse-connect
client and by plain HTTP: results equal values computed from the written rows; writes refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import clickhouse_connect
import pytest
from aiohttp import ClientSession, web
from clickhouse_connect.driver.exceptions import DatabaseError

from sinks.backends import Backend
from sinks.http_query import QueryService, make_app
from sinks.migrate import migrate
from sinks.writer import Writer
from streams.broker import free_port
from warroom.telemetry import Telemetry

pytestmark = pytest.mark.integration

BUCKET0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass
class Served:
    url: str
    port: int
    database: str
    rows: list[tuple[object, ...]]


@pytest.fixture
async def served(
    chdb_backend: Backend, chdb_url: str, telemetry: Telemetry
) -> AsyncIterator[Served]:
    migrate(chdb_backend)
    rng = random.Random(42)
    rows: list[tuple[object, ...]] = []
    for i in range(3_000):
        district = f"{rng.choice(['10', '50', '90'])}{rng.randint(1, 9):02d}"
        rows.append(
            (
                district,
                rng.choice(["grievance_received", "grievance_event"]),
                rng.choice(["land", "debt"]),
                "web",
                BUCKET0 + i * 60,
                i % 4,
                float(rng.randint(0, 500)) / 2,
                1,
            )
        )
    writer = Writer(chdb_backend, telemetry=telemetry)
    writer.add_many("metric_buckets", rows)
    await writer.close()
    service = QueryService(chdb_url, connections=2)
    runner = web.AppRunner(make_app(service))
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", port, chdb_backend.database, rows)
    finally:
        await runner.cleanup()


async def test_clickhouse_connect_reads_the_store(served: Served) -> None:
    def read() -> tuple[list[tuple[object, ...]], ...]:
        client = clickhouse_connect.get_client(
            host="127.0.0.1", port=served.port, database=served.database
        )
        try:
            sums = client.query(
                "SELECT district_code, metric, sum(value), count() FROM metric_buckets FINAL "
                "GROUP BY district_code, metric ORDER BY district_code, metric"
            ).result_rows
            first = client.query(
                "SELECT district_code, bucket, kafka_partition, value FROM metric_buckets "
                "ORDER BY bucket LIMIT 2"
            ).result_rows
            bound = client.query(
                "SELECT count() FROM metric_buckets WHERE district_code = {d:String}",
                parameters={"d": "1001"},
            ).result_rows
            refs = client.query("SELECT count() FROM ref_districts").result_rows
            return sums, first, bound, refs
        finally:
            client.close()

    sums, first, bound, refs = await asyncio.to_thread(read)
    expected: dict[tuple[str, str], list[float]] = {}
    for r in served.rows:
        acc = expected.setdefault((str(r[0]), str(r[1])), [0.0, 0])
        acc[0] += float(r[6])  # type: ignore[arg-type]
        acc[1] += 1
    assert [(d, m, s, c) for d, m, s, c in sums] == [
        (d, m, v[0], v[1]) for (d, m), v in sorted(expected.items())
    ]
    assert [tuple(r) for r in first] == [
        (
            served.rows[i][0],
            dt.datetime(2026, 1, 1, 0, i),
            served.rows[i][5],
            served.rows[i][6],
        )
        for i in range(2)
    ]
    assert bound == [(sum(1 for r in served.rows if r[0] == "1001"),)]
    assert refs == [(928,)]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO metric_buckets (district_code) VALUES ('1001')",
        "  /* sneaky */ insert into metric_buckets SELECT * FROM metric_buckets",
        "CREATE TABLE x (a UInt8) ENGINE = Memory",
        "DROP TABLE metric_buckets",
        "ALTER TABLE metric_buckets DELETE WHERE 1",
        "TRUNCATE TABLE metric_buckets",
        "OPTIMIZE TABLE metric_buckets FINAL",
        "SET readonly = 0",
        "SYSTEM SHUTDOWN",
    ],
)
async def test_writes_are_refused(served: Served, statement: str) -> None:
    def attempt() -> int:
        client = clickhouse_connect.get_client(
            host="127.0.0.1", port=served.port, database=served.database
        )
        try:
            with pytest.raises(DatabaseError) as info:
                client.command(statement)
            assert "164" in str(info.value) and "readonly" in str(info.value)
            return int(client.command("SELECT count() FROM metric_buckets"))
        finally:
            client.close()

    assert await asyncio.to_thread(attempt) == len(served.rows)


async def test_plain_http_interface(served: Served) -> None:
    db = served.database
    n_1001 = sum(1 for r in served.rows if r[0] == "1001")
    async with ClientSession() as http:
        async with http.get(f"{served.url}/ping") as resp:
            assert (resp.status, await resp.text()) == (200, "Ok.\n")
        async with http.get(f"{served.url}/") as resp:
            assert await resp.text() == "Ok.\n"
        # query in the URL, default format TabSeparated
        q = f"SELECT count() FROM {db}.metric_buckets WHERE district_code = '1001'"
        async with http.get(f"{served.url}/", params={"query": q}) as resp:
            assert resp.status == 200
            assert await resp.text() == f"{n_1001}\n"
            assert resp.headers["X-ClickHouse-Format"] == "TabSeparated"
        # URL part and body are joined; the database parameter applies
        async with http.post(
            f"{served.url}/",
            params={"query": "SELECT district_code, count() AS n", "database": db},
            data="FROM metric_buckets WHERE district_code = '1001' GROUP BY district_code",
        ) as resp:
            assert await resp.text() == f"1001\t{n_1001}\n"
        # default_format, and a FORMAT clause overriding it
        async with http.post(
            f"{served.url}/",
            params={"default_format": "JSONEachRow", "database": db},
            data="SELECT 1 AS a, 'x' AS b",
        ) as resp:
            assert await resp.text() == '{"a":1,"b":"x"}\n'
            assert resp.headers["Content-Type"].startswith("application/octet-stream") is False
        async with http.post(
            f"{served.url}/",
            params={"default_format": "JSONEachRow"},
            data="SELECT 1 AS a, 'x' AS b FORMAT CSVWithNames",
        ) as resp:
            assert await resp.text() == '"a","b"\n1,"x"\n'
            assert resp.headers["X-ClickHouse-Format"] == "CSVWithNames"
        # settings apply to their query only
        async with http.post(
            f"{served.url}/",
            params={"max_execution_time": "7"},
            data="SELECT getSetting('max_execution_time')",
        ) as resp:
            assert await resp.text() == "7\n"
        for _ in range(2):  # the next queries run under the endpoint's own limit again
            async with http.post(
                f"{served.url}/", data="SELECT getSetting('max_execution_time')"
            ) as resp:
                assert await resp.text() == "60\n"
        # compression on request
        async with http.post(
            f"{served.url}/",
            params={"enable_http_compression": "1", "database": db},
            headers={"Accept-Encoding": "gzip"},
            data="SELECT district_code FROM metric_buckets ORDER BY bucket",
            auto_decompress=False,
        ) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            text = gzip.decompress(await resp.read()).decode()
            assert text == "".join(f"{r[0]}\n" for r in served.rows)


@pytest.mark.parametrize(
    ("sql", "status", "code"),
    [
        ("SELECT * FROM no_such_table", 404, "60"),
        ("SELECT 1 +", 400, "62"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", 403, "497"),
        ("SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", 403, "497"),
        ("INSERT INTO metric_buckets SELECT * FROM metric_buckets", 500, "164"),
    ],
)
async def test_errors_look_like_clickhouse(
    served: Served, sql: str, status: int, code: str
) -> None:
    async with (
        ClientSession() as http,
        http.post(f"{served.url}/", params={"database": served.database}, data=sql) as resp,
    ):
        body = await resp.text()
        assert resp.status == status, body
        assert resp.headers["X-ClickHouse-Exception-Code"] == code
        assert body.startswith(f"Code: {code}. DB::Exception: ")


async def test_file_function_named_in_a_string_is_fine(served: Served) -> None:
    async with (
        ClientSession() as http,
        http.post(f"{served.url}/", data="SELECT 'file(x)' AS s, length('url(') AS n") as resp,
    ):
        assert (resp.status, await resp.text()) == (200, "file(x)\t4\n")
