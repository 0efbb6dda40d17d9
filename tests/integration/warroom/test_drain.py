"""`up`'s stop drain against the real broker: it waits for the group to commit every record,
including the last records of a multi-record batch (whose end Tansu under-reports)."""

from __future__ import annotations

import asyncio
import threading
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.topics import Topics
from warroom.drain import unread_after_drain

GROUP_SUFFIX = "drain-test"


async def _produce_batches(bootstrap: str, topic: str, per_partition: int) -> dict[int, int]:
    """Send `per_partition` records to partitions 0 and 1 in few, large batches (linger);
    return the number sent per partition (the true ends)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, b"x", partition=p)
            for p in (0, 1)
            for _ in range(per_partition)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return {0: per_partition, 1: per_partition}


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def test_drain_counts_what_the_group_has_not_committed_and_waits_for_it(
    bootstrap: str, topics: Topics
) -> None:
    group = topics.prefix + GROUP_SUFFIX
    ends = asyncio.run(_produce_batches(bootstrap, topics.grievance, 50))
    inputs = [topics.grievance, topics.project]

    # nothing committed: every record is unread (the oracle is what was sent)
    assert unread_after_drain(bootstrap, group, inputs, timeout=0) == sum(ends.values())

    # partition 0 read to its end, partition 1 up to all but its last 7 records
    tp0, tp1 = TopicPartition(topics.grievance, 0), TopicPartition(topics.grievance, 1)
    asyncio.run(_commit(bootstrap, group, {tp0: ends[0], tp1: ends[1] - 7}))
    assert unread_after_drain(bootstrap, group, inputs, timeout=0) == 7

    # a worker that commits the rest 1.5 s later: the drain waits for it, then reports 0
    def late_commit() -> None:
        time.sleep(1.5)
        asyncio.run(_commit(bootstrap, group, {tp1: ends[1]}))

    committer = threading.Thread(target=late_commit)
    committer.start()
    t0 = time.monotonic()
    try:
        assert unread_after_drain(bootstrap, group, inputs, timeout=20) == 0
    finally:
        committer.join()
    assert 1.0 < time.monotonic() - t0 < 20


def test_drain_gives_up_at_its_bound_and_when_told_to_stop(bootstrap: str, topics: Topics) -> None:
    group = topics.prefix + GROUP_SUFFIX
    ends = asyncio.run(_produce_batches(bootstrap, topics.project, 5))
    inputs = [topics.grievance, topics.project]
    t0 = time.monotonic()
    assert unread_after_drain(bootstrap, group, inputs, timeout=1.0) == sum(ends.values())
    assert time.monotonic() - t0 < 8
    t0 = time.monotonic()
    assert unread_after_drain(bootstrap, group, inputs, 30, stop=lambda: True) == 10
    assert time.monotonic() - t0 < 8


def test_drain_of_an_unreachable_broker_says_it_could_not_check() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert unread_after_drain(f"127.0.0.1:{port}", "g", ["t"], timeout=1) == -1
