"""The clickhouse-driver backend against a real server (Debian's 18.16): batching, retry and
reconnect while the server is killed and restarted mid-write; every row arrives exactly once.

18.16 is far too old for warroom's schema (no DateTime64, ...), so a simple table stands in.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from sinks.backends import StoreError, open_backend
from sinks.writer import Writer
from tests.services.clickhouse_server import ClickHouseServer
from warroom.telemetry import Telemetry

pytestmark = pytest.mark.integration

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
COLUMNS = ("id", "v", "at", "ver")


def _table(database: str) -> str:
    return (
        f"CREATE TABLE {database}.t (id UInt64, v Float64, at DateTime, ver UInt64) "
        "ENGINE = ReplacingMergeTree(ver) ORDER BY id"
    )


async def test_native_backend_survives_server_restart_mid_write(
    clickhouse_server: ClickHouseServer, telemetry: Telemetry
) -> None:
    db = f"t_{uuid.uuid4().hex[:10]}"
    backend = open_backend(clickhouse_server.url(db))
    assert backend.name == "native"
    backend.execute(_table(db))
    writer = Writer(
        backend,
        flush_rows=500,
        flush_interval=0.05,
        retry_initial=0.1,
        retry_max=1.0,
        columns={"t": COLUMNS},
        telemetry=telemetry,
    )
    await writer.start()
    rng = random.Random(1)
    n = 12_000
    rows = [(i, float(rng.randint(0, 10_000)) / 4, T0 + i, 1) for i in range(n)]
    outage = range(n // 3, n // 3 + 1_000, 200)
    try:
        for start in range(0, n, 200):
            if start == outage[0]:
                # a crash, not a clean shutdown: in-flight inserts may or may not have landed
                await asyncio.to_thread(clickhouse_server.kill)
            writer.add_many("t", rows[start : start + 200])
            await asyncio.sleep(0.25 if start in outage else 0.01)
            if start == outage[-1]:
                assert not writer.store_writable()[0]  # writes fail and are retried
                await asyncio.to_thread(clickhouse_server.start)
    finally:
        if not clickhouse_server.running:
            clickhouse_server.start()
    await asyncio.wait_for(writer.flush(), 60)
    assert writer.retries >= 1  # the outage was really hit
    final = backend.query_rows(f"SELECT count(), sum(v), min(at), max(at) FROM {db}.t FINAL")
    count, total, first, last = final[0]
    assert count == n
    assert total == sum(r[1] for r in rows)
    assert (first.timestamp(), last.timestamp()) == (T0, T0 + n - 1)
    assert backend.query_rows(f"SELECT uniqExact(id), min(id), max(id) FROM {db}.t") == [
        (n, 0, n - 1)
    ]
    raw = backend.query_rows(f"SELECT count() FROM {db}.t")[0][0]
    assert raw >= n  # a retry after an ambiguous failure may repeat a block; FINAL collapses it
    reg = telemetry.registry
    assert reg is not None
    assert reg.get_sample_value("warroom_sink_retries_total", {"backend": "native"}) == (
        writer.retries
    )
    assert writer.store_writable()[0]
    await writer.close()
    backend.execute(f"DROP DATABASE {db}")
    backend.close()


def test_native_errors_are_classified(clickhouse_server: ClickHouseServer) -> None:
    backend = open_backend(clickhouse_server.url("default"))
    try:
        with pytest.raises(StoreError) as info:
            backend.query_rows("SELECT * FROM default.no_such_table_here")
        assert info.value.code == 60
        assert info.value.name == "UNKNOWN_TABLE"
        assert not info.value.transient
        assert backend.query_bytes("SELECT 1 AS a, 'x' AS b", "TabSeparatedWithNames") == (
            b"a\tb\n1\tx\n"
        )
    finally:
        backend.close()


def test_native_readonly_connection_refuses_writes(clickhouse_server: ClickHouseServer) -> None:
    db = f"t_{uuid.uuid4().hex[:10]}"
    rw = open_backend(clickhouse_server.url(db))
    rw.execute(_table(db))
    ro = open_backend(clickhouse_server.url(db), readonly=True)
    try:
        with pytest.raises(StoreError) as info:
            ro.insert("t", {"id": [1], "v": [1.0], "at": [T0], "ver": [1]})
        assert info.value.code == 164
        assert ro.query_rows(f"SELECT count() FROM {db}.t") == [(0,)]
    finally:
        ro.close()
        rw.execute(f"DROP DATABASE {db}")
        rw.close()
