"""Helpers for the producers' integration tests: read topics back from the real broker."""

from __future__ import annotations

from tests.kafka_io import read_records


async def read_topics(bootstrap: str, names: list[str]) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) of every record now in the topics, group-less, from the start."""
    return [(r.topic, r.key, r.value) for r in await read_records(bootstrap, names)]
