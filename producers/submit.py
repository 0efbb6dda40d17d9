"""Single-event intake for an officer: validate locally, then send one event and await the ack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from producers.kafka import make_producer
from streams.contract import STREAM_OF_SCHEMA
from streams.reasons import Rejection
from streams.topics import Topics
from streams.validation import Validator
from warroom.telemetry import get as telemetry

__all__ = ["Delivered", "check", "send_one"]


@dataclass(frozen=True, slots=True)
class Delivered:
    topic: str
    partition: int
    offset: int
    event_id: str
    district_code: str


def check(raw: bytes, validator: Validator | None = None) -> dict[str, Any] | Rejection:
    """The checked event, or why it is rejected (the same checks as the worker's)."""
    return (validator or Validator()).payload(raw)


async def send_one(bootstrap: str, topics: Topics, raw: bytes, event: dict[str, Any]) -> Delivered:
    """Send the payload exactly as given (acks=all) to its stream's topic, keyed by district."""
    topic = topics.for_stream(STREAM_OF_SCHEMA[event["schema"]])
    producer = make_producer(bootstrap, linger_ms=0, client_id="warroom-submit")
    await producer.start()
    try:
        md = await producer.send_and_wait(topic, raw, key=event["district_code"].encode())
    except Exception:
        telemetry().producer("submit").error()
        raise
    finally:
        await producer.stop()
    telemetry().producer("submit").sent(STREAM_OF_SCHEMA[event["schema"]])
    return Delivered(md.topic, md.partition, md.offset, event["event_id"], event["district_code"])
