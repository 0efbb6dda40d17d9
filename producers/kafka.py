"""The one way warroom puts events on Kafka: aiokafka, acks=all, keyed by district_code."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.contract import STREAM_OF_SCHEMA, encode
from streams.topics import Topics

__all__ = ["EventSender", "make_producer"]

log = logging.getLogger(__name__)


def make_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """A producer tuned for throughput without giving up durability (acks=all)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 50,  # ~50 ms linger with ~1 MB batches measured +40 % here
        "max_batch_size": 1 << 20,
        "max_request_size": 4 << 20,
        "request_timeout_ms": 30000,
        "client_id": "warroom-producer",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


class EventSender:
    """Routes events to their stream's topic, keyed by district_code, with bounded in-flight sends.

    Events that are not dicts or carry no known schema still go out (to the grievance topic)
    when ``raw`` is used: the simulator's bad events must reach the worker to be dead-lettered.
    """

    def __init__(self, bootstrap: str, topics: Topics, *, max_in_flight: int = 20000) -> None:
        self.topics = topics
        self._producer = make_producer(bootstrap)
        self._pending: list[asyncio.Future[Any]] = []
        self._max = max_in_flight
        self.sent = 0
        self.errors = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    def topic_for(self, event: Any) -> str:
        schema = event.get("schema") if isinstance(event, dict) else None
        stream = STREAM_OF_SCHEMA.get(schema, "grievance") if isinstance(schema, str) else None
        return self.topics.for_stream(stream or "grievance")

    async def send(self, event: dict[str, Any]) -> None:
        key = event.get("district_code")
        await self.send_raw(
            self.topic_for(event), encode(event), key if isinstance(key, str) else None
        )

    async def send_raw(self, topic: str, value: bytes, key: str | None) -> None:
        fut = await self._producer.send(topic, value, key=key.encode() if key else None)
        self._pending.append(fut)
        if len(self._pending) >= self._max:
            await self.flush()

    async def send_many(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            await self.send(event)

    async def flush(self) -> None:
        """Wait until every send so far is acknowledged; count the failures."""
        pending, self._pending = self._pending, []
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                self.errors += 1
                log.error("send failed: %r", result)
            else:
                self.sent += 1
