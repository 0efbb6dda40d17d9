"""Helpers for the producers' integration tests: read topics back from the real broker."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_topics(bootstrap: str, names: list[str]) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) of every record now in the topics, group-less, from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[str, bytes | None, bytes]] = []
    try:
        await consumer.topics()
        tps = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, recs in batch.items():
                for r in recs:
                    out.append((tp.topic, r.key, r.value))
                if recs and recs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
    return out
