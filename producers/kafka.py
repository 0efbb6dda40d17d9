"""The one way warroom puts events on Kafka: aiokafka, acks=all, keyed by district_code."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from streams.contract import STREAM_OF_SCHEMA, encode
from streams.topics import COMPRESSION, Topics
from warroom.telemetry import get as telemetry

__all__ = ["BrokerUnavailable", "EventSender", "make_producer"]

#: how long a broker may refuse or fail sends before a producer gives up (bounded retry)
RETRY_S = 30.0


def _outage(exc: BaseException | None) -> bool:
    """An error that a broker coming back can cure (not, e.g., a record too large)."""
    return isinstance(exc, KafkaTimeoutError) or (
        isinstance(exc, KafkaError) and bool(exc.retriable)
    )


class BrokerUnavailable(RuntimeError):
    """Kafka did not acknowledge anything for longer than the retry budget: stop sending."""


log = logging.getLogger(__name__)


def make_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """A producer tuned for throughput without giving up durability (acks=all)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 50,  # ~50 ms linger with ~1 MB batches measured +40 % here
        "max_batch_size": 1 << 20,
        "max_request_size": 4 << 20,
        "compression_type": COMPRESSION,  # the embedded broker keeps batches as sent
        "request_timeout_ms": 30000,
        "client_id": "warroom-producer",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


class EventSender:
    """Routes events to their stream's topic, keyed by district_code, with bounded in-flight sends.

    Events that are not dicts or carry no known schema still go out (to the grievance topic)
    when ``raw`` is used: the simulator's bad events must reach the worker to be dead-lettered.
    Acknowledgements are counted as they arrive (``sent``, ``errors`` and the producer
    counters of warroom.telemetry, labelled with ``producer``).
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        max_in_flight: int = 20000,
        producer: str = "warroom",
        retry_s: float = RETRY_S,
        **producer_overrides: Any,
    ) -> None:
        self.topics = topics
        self.name = producer
        # a send fails within the retry budget (so the budget bounds the whole wait)
        timeout_ms = int(min(30.0, max(1.0, retry_s)) * 1000)
        self._producer = make_producer(
            bootstrap,
            **{
                "client_id": f"warroom-{producer}",
                "request_timeout_ms": timeout_ms,
                **producer_overrides,
            },
        )
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._max = max_in_flight
        self._metrics = telemetry().producer(producer)
        self.sent = 0
        #: events given up on: never acknowledged (retried for ``retry_s`` first)
        self.errors = 0
        self.last_error: BaseException | None = None
        self.retry_s = retry_s
        #: failed sends waiting to be sent again, and since when nothing was acknowledged
        self._retry: list[tuple[str, bytes, str | None]] = []
        self._failing_since: float | None = None
        #: a send failed after the budget ran out: the broker is gone, stop sending
        self.broker_lost = False

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()
            # whatever is still waiting to be sent again is given up on
            self._give_up(self._retry)
            self._retry = []

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
        """Send one record; raises BrokerUnavailable once Kafka has failed every send for
        ``retry_s`` (failed sends are sent again until then: event ids make that safe)."""
        if self._retry:
            await self._resend()
        try:
            await self._send(topic, value, key)
        except BrokerUnavailable:
            self._give_up([(topic, value, key)])
            raise
        if len(self._pending) >= self._max:
            # wait for the oldest half: a sliding window keeps the pipeline full
            await self._drain(self._max // 2)

    async def _send(self, topic: str, value: bytes, key: str | None) -> None:
        while True:
            self._check_budget()
            try:
                fut = await self._producer.send(topic, value, key=key.encode() if key else None)
                break
            except KafkaError as exc:  # no metadata: the broker is away
                self._failed(exc)
                await asyncio.sleep(0.5)
        stream = "project" if topic == self.topics.project else "grievance"
        fut.add_done_callback(lambda f: self._done(f, stream, topic, value, key))
        self._pending.append(fut)

    async def _resend(self) -> None:
        """Failed sends again, after a pause (the broker is away, or was)."""
        await asyncio.sleep(0.5)
        retry, self._retry = self._retry, []
        for n, (topic, value, key) in enumerate(retry):
            try:
                await self._send(topic, value, key)
            except BrokerUnavailable:
                self._give_up(retry[n:])
                raise

    def _failed(self, exc: BaseException) -> None:
        self.last_error = exc
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("Kafka is not acknowledging sends; retrying for %gs: %r", self.retry_s, exc)

    def _check_budget(self) -> None:
        since = self._failing_since
        if self.broker_lost or (since is not None and time.monotonic() - since > self.retry_s):
            raise BrokerUnavailable(
                f"acknowledged nothing for {self.retry_s:g} s "
                f"(last error: {type(self.last_error).__name__})"
            )

    def _give_up(self, records: list[tuple[str, bytes, str | None]]) -> None:
        self.errors += len(records)
        for _ in records:
            self._metrics.error()

    async def send_many(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            await self.send(event)

    async def flush(self) -> None:
        """Wait until every send so far is acknowledged, retrying failed ones within the
        budget; raises BrokerUnavailable (the rest counted in ``errors``) past it."""
        await self._drain(len(self._pending))
        while self._retry:
            await self._resend()
            await self._drain(len(self._pending))
        self._check_budget()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def _drain(self, n: int) -> None:
        oldest = [self._pending.popleft() for _ in range(min(n, len(self._pending)))]
        if oldest:
            await asyncio.gather(*oldest, return_exceptions=True)

    def _done(
        self, fut: asyncio.Future[Any], stream: str, topic: str, value: bytes, key: str | None
    ) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            if exc is not None and _outage(exc) and self._within_budget():
                self._failed(exc)
                self._retry.append((topic, value, key))
                return
            self.errors += 1
            self._metrics.error()
            if _outage(exc):
                self.broker_lost = True
            if self.errors <= 5 or self.errors % 1000 == 0:
                log.error("send failed (%d so far): %r", self.errors, exc or "cancelled")
            self.last_error = exc
        else:
            self.sent += 1
            self._failing_since = None
            self._metrics.sent(stream)

    def _within_budget(self) -> bool:
        since = self._failing_since
        return since is None or time.monotonic() - since <= self.retry_s
