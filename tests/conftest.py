"""Shared fixtures: real services started once per test session, on loopback, on free ports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker, ensure_topics
from streams.topics import Topics


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One Tansu broker for the whole session; each test isolates itself with a topic prefix."""
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    b = EmbeddedBroker(log_path=log_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def bootstrap(broker: EmbeddedBroker) -> str:
    return broker.bootstrap


@pytest.fixture
def topics(bootstrap: str) -> Topics:
    """Fresh, created topics for this test (4 partitions)."""
    t = Topics(prefix=f"t{uuid.uuid4().hex[:10]}-")
    asyncio.run(ensure_topics(bootstrap, t.all(), partitions=4))
    return t


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
