"""Test helpers that talk to the real broker: produce simulated items, read topics back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from producers.kafka import EventSender
from producers.simulator.generator import Item
from streams.topics import Topics
from tests.oracle import Rec


async def produce_items(
    bootstrap: str,
    topics: Topics,
    items: Iterable[Item],
    *,
    rate: float | None = None,
    topic_of: Callable[[str], str] | None = None,
) -> int:
    """Send items in order (at about ``rate`` per second when given) and wait for the acks;
    to each stream's live topic, or to ``topic_of(stream)`` (e.g. ``topics.backfill_for``)."""
    topic_of = topic_of or topics.for_stream
    sender = EventSender(bootstrap, topics)
    await sender.start()
    started = time.monotonic()
    try:
        for n, it in enumerate(items, 1):
            await sender.send_raw(topic_of(it.stream), it.payload, it.key)
            if rate and n % 200 == 0:
                ahead = n / rate - (time.monotonic() - started)
                if ahead > 0:
                    await sender.flush()
                    await asyncio.sleep(ahead)
    finally:
        await sender.stop()
    assert sender.errors == 0
    return sender.sent


async def read_records(
    bootstrap: str, topic_names: Iterable[str]
) -> list[ConsumerRecord[Any, Any]]:
    """Every record now in the topics (all partitions, from the start), group-less."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[ConsumerRecord[Any, Any]] = []
    try:
        await consumer.topics()  # fetches the metadata partitions_for_topic reads
        tps = [
            TopicPartition(name, p)
            for name in topic_names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, recs in batch.items():
                out.extend(recs)
                if recs and recs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        # aiokafka 0.14's group-less coordinator cancels its own routine on stop
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
    return out


async def read_back(bootstrap: str, topics: Topics, streams: Iterable[str]) -> list[Rec]:
    """Every record of the streams' topics, with partition, offset and timestamp."""
    stream_of = {topics.for_stream(stream): stream for stream in streams}
    out = []
    for r in await read_records(bootstrap, stream_of):
        assert r.value is not None
        out.append(Rec(stream_of[r.topic], r.partition, r.offset, r.timestamp, r.value))
    return out


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


class _FaustNamedAssignor(RoundRobinPartitionAssignor):
    """Round robin under the name of Faust's assignor: a group joined by a Faust app accepts
    only members that speak its protocol."""

    name = "faust"


async def reset_offsets(bootstrap: str, group: str, topic_names: Iterable[str]) -> None:
    """Commit offset 0 for every partition of the topics in `group` (no other member may be
    running), as `kafka-consumer-groups --reset-offsets --to-earliest` does: as a member of the
    group (the broker refuses a commit from outside a group it knows)."""
    names = list(topic_names)
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        partition_assignment_strategy=(_FaustNamedAssignor,),
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while (
            len(consumer.assignment())
            < sum(len(consumer.partitions_for_topic(n) or ()) for n in names)
            or not consumer.assignment()
        ):
            assert asyncio.get_running_loop().time() < deadline, "no assignment in 60 s"
            await consumer.getmany(timeout_ms=200, max_records=1)
        await consumer.commit({tp: 0 for tp in consumer.assignment()})
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
