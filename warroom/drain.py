"""Before `up` stops its worker: wait, bounded, until the worker has committed every record
the embedded broker holds — a memory log forgets what the worker never read."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from warroom.probe import quiet

__all__ = ["unread_after_drain"]

log = logging.getLogger(__name__)


async def _true_ends(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Each partition's end: one past its last record. Tansu reports a partition's end as its
    last batch's *first* offset + 1, so the last batch is read to find its last offset."""
    reported: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    ends = dict(reported)
    todo = {tp for tp, end in reported.items() if end > 0}
    for tp in todo:
        consumer.seek(tp, reported[tp] - 1)
    deadline = time.monotonic() + 3.0
    while todo and time.monotonic() < deadline:
        batches = await consumer.getmany(*todo, timeout_ms=200)
        for tp, records in batches.items():
            if records:
                ends[tp] = max(ends[tp], records[-1].offset + 1)
                todo.discard(tp)
    return ends


async def _unread(
    bootstrap: str, group: str, topics: list[str], timeout: float, stop: Callable[[], bool]
) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        await consumer.topics()  # metadata of every topic, for partitions_for_topic
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(tps)
        ends = await _true_ends(consumer, tps)
        deadline = time.monotonic() + timeout
        while True:
            unread = 0
            for tp, end in ends.items():
                unread += max(0, end - (await consumer.committed(tp) or 0))
            if unread == 0 or stop() or time.monotonic() >= deadline:
                return unread
            await asyncio.sleep(0.25)
    finally:
        await consumer.stop()


def unread_after_drain(
    bootstrap: str,
    group: str,
    topics: list[str],
    timeout: float,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Wait up to `timeout` seconds (or until `stop()`) for the consumer group to commit every
    record of `topics`; return how many were still uncommitted (0: all read)."""
    with quiet():
        try:
            return asyncio.run(_unread(bootstrap, group, topics, timeout, stop))
        except Exception as exc:  # the broker went away: nothing left to wait for
            log.warning("could not check what the worker has read: %r", exc)
            return -1
