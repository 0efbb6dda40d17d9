"""`warroom query` and `warroom migrate`: through a worker's endpoint, directly on an unlocked
chdb store, and a clear error when another process holds the store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aiohttp import web

from sinks.backends import Backend
from sinks.http_query import QueryService, make_app
from sinks.migrate import migrate
from sinks.query_client import QueryFailed, run_query
from streams.broker import free_port

pytestmark = pytest.mark.integration

WARROOM = str(Path(sys.executable).with_name("warroom"))


async def test_query_through_endpoint_and_directly(chdb_backend: Backend, chdb_url: str) -> None:
    migrate(chdb_backend)
    sql = "SELECT count() FROM ref_districts WHERE province_code = '10'"
    closed = f"http://127.0.0.1:{free_port()}"
    # nothing listens: the store is opened directly (same process, same data path)
    assert run_query(sql, endpoint=closed, fmt="TSV", store=chdb_url) == b"50\n"
    with pytest.raises(QueryFailed, match="readonly"):
        run_query("DROP TABLE ref_districts", endpoint=closed, fmt="TSV", store=chdb_url)
    service = QueryService(chdb_url)
    runner = web.AppRunner(make_app(service))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        got = await asyncio.to_thread(
            run_query, sql, endpoint=f"http://127.0.0.1:{port}", fmt="CSV", store="chdb:///nope"
        )
        assert got == b"50\n"
        with pytest.raises(QueryFailed, match="Code: 60"):
            await asyncio.to_thread(
                run_query,
                "SELECT * FROM nope",
                endpoint=f"http://127.0.0.1:{port}",
                fmt="CSV",
                store="chdb:///nope",
            )
    finally:
        await runner.cleanup()


def test_cli_migrate_then_query_and_locked_store(tmp_path: Path) -> None:
    store = f"chdb://{tmp_path / 'store'}?database=warroom"
    env = {**os.environ, "WARROOM_STORE": store, "WARROOM_WEB_PORT": str(free_port())}
    out = subprocess.run(
        [WARROOM, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert "migrations applied: 1" in out.stdout and "928 districts" in out.stdout
    out = subprocess.run(
        [WARROOM, "query", "SELECT count() FROM ref_provinces", "--format", "TSV"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stdout) == (0, "77\n"), out.stderr
    # another process holds the store: a clear message, exit 1
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from chdb import session
                s = session.Session({str(tmp_path / "store")!r})
                print("held", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        out = subprocess.run(
            [WARROOM, "query", "SELECT 1"], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 1
        assert "locked by another process" in out.stderr
        # migrate says it in one line of its own (chdb's engine printed its error first)
        out = subprocess.run(
            [WARROOM, "migrate"], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 2
        assert out.stderr.strip() == (
            f"warroom migrate: the store {tmp_path / 'store'} is in use by pid {holder.pid}; "
            "stop it first (a worker applies the migrations itself when it starts)"
        )
    finally:
        holder.kill()
        holder.wait(10)
    out = subprocess.run(
        [WARROOM, "query", "SELECT 1", "--format", "TSV"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stdout) == (0, "1\n"), out.stderr


def test_cli_migrate_takes_the_data_dir_as_up_and_query_do(tmp_path: Path) -> None:
    """`warroom migrate --data-dir D` migrates D's store (D/clickhouse), even with another
    store in WARROOM_STORE; `query --data-dir D` then reads it."""
    data = tmp_path / "data"
    elsewhere = f"chdb://{tmp_path / 'elsewhere'}?database=warroom"
    env = {**os.environ, "WARROOM_STORE": elsewhere, "WARROOM_WEB_PORT": str(free_port())}
    out = subprocess.run(
        [WARROOM, "migrate", "--data-dir", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"chdb://{(data / 'clickhouse').resolve()}" in out.stdout
    assert (data / "clickhouse").is_dir() and not (tmp_path / "elsewhere").exists()
    env.pop("WARROOM_STORE")
    out = subprocess.run(
        [
            WARROOM,
            "query",
            "SELECT count() FROM ref_districts",
            "--format=TSV",
            f"--data-dir={data}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stdout) == (0, "928\n"), out.stderr
