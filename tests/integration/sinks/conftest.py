"""Fixtures of the sinks tests: one chdb data path per session, one database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sinks.backends import Backend, open_backend
from tests.services.clickhouse_server import ClickHouseServer
from tests.services.clickhouse_server import available as clickhouse_available
from warroom.telemetry import Telemetry


@pytest.fixture(scope="session")
def chdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's chdb data path (chdb serves one path per process)."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def chdb_url(chdb_root: Path) -> str:
    return f"chdb://{chdb_root}?database=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def chdb_backend(chdb_url: str) -> Iterator[Backend]:
    """A writable connection to a fresh database; dropped and closed afterwards so that the
    data path is free again for other packages' tests."""
    backend = open_backend(chdb_url)
    yield backend
    try:
        backend.execute(f"DROP DATABASE IF EXISTS `{backend.database}`")
    finally:
        backend.close()


@pytest.fixture
def telemetry() -> Telemetry:
    """Metrics on a private registry, so tests can read their own counters."""
    return Telemetry(CollectorRegistry())


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[ClickHouseServer]:
    """Debian's clickhouse-server (18.16), started once per session on free loopback ports."""
    if not clickhouse_available():
        pytest.skip("clickhouse-server is not installed (./dev test installs it)")
    server = ClickHouseServer()
    server.start()
    yield server
    server.cleanup()
