"""The embedded broker keeps every batch as it was sent (memory storage frees nothing but deleted
topics), so warroom's producers and the worker's changelogs send compressed batches; the
pipeline over them stays exact, also across a killed worker (test_pipeline.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords

from producers.simulator.generator import Item
from streams.broker import EmbeddedBroker, ensure_topics
from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import oracle, simulate
from tests.kafka_io import produce_items, read_back, run
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

N = 30_000


def rss_mb(pid: int | None) -> float:
    assert pid is not None, "the session broker is not running"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc")


async def produce_uncompressed(bootstrap: str, topics: Topics, items: Iterable[Item]) -> None:
    """The same records the way a plain client sends them: batched, not compressed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1 << 20)
    await producer.start()
    try:
        for it in items:
            key = it.key.encode() if it.key is not None else None
            await producer.send(topics.for_stream(it.stream), it.payload, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def batch_codecs(bootstrap: str, topic: str, partitions: int) -> list[int]:
    """The compression codec of every batch the broker stores for the topic, as it serves them
    (a raw Fetch: consumers decompress, so only the wire shows how a batch was stored)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    codecs: list[int] = []
    try:
        node = next(iter(client.cluster.brokers())).nodeId
        for partition in range(partitions):
            offset = 0
            while True:
                req = FetchRequest(100, 1, 8 << 20, 0, [(topic, [(partition, offset, 8 << 20)])])
                resp = await client.send(node, req)
                (_, parts), *_ = resp.topics
                _, error, high, *data = parts[0]
                assert error == 0, error
                records = MemoryRecords(data[-1])
                if not records.has_next():
                    break
                while (batch := records.next_batch()) is not None:
                    assert isinstance(batch, DefaultRecordBatch)
                    codecs.append(batch.compression_type)
                    offset = batch.base_offset + batch.last_offset_delta + 1
                if offset >= high:
                    break
    finally:
        await client.close()
    return codecs


def test_records_and_changelogs_reach_the_broker_compressed(
    broker: EmbeddedBroker,
    bootstrap: str,
    topics: Topics,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    items = simulate(N, seed=23)
    raw_mb = sum(len(it.payload) for it in items) / 1e6
    control = Topics(prefix=f"c{uuid.uuid4().hex[:10]}-")
    asyncio.run(ensure_topics(bootstrap, control.all(), partitions=4))

    # the same events, compressed by warroom's producer and plain, measured in the same run
    before = rss_mb(broker.pid)
    run(produce_items(bootstrap, topics, items))
    compressed_mb = rss_mb(broker.pid) - before
    before = rss_mb(broker.pid)
    run(produce_uncompressed(bootstrap, control, items))
    plain_mb = rss_mb(broker.pid) - before
    assert plain_mb > 0.8 * raw_mb, (plain_mb, raw_mb)  # the broker keeps what it is sent
    assert compressed_mb < plain_mb / 3, (compressed_mb, plain_mb)

    # the worker reads them exactly, and what it writes (changelogs, dead letters) is compressed
    worker = make_worker().start()
    compare.wait_settled(worker, N)
    compare.assert_matches(
        worker, oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
    )
    assert worker.stop() == 0, worker.tail()
    written = {
        name: run(batch_codecs(bootstrap, name, 4))
        for name in (
            topics.grievance,
            f"{topics.prefix}oracle-grievance-state-changelog",
            f"{topics.prefix}oracle-project-state-changelog",
            topics.dead_letter,
        )
    }
    gzip = DefaultRecordBatch.CODEC_GZIP
    # the codec check tells the two apart: the control topic's batches are plain
    assert set(run(batch_codecs(bootstrap, control.grievance, 4))) == {
        DefaultRecordBatch.CODEC_NONE
    }
    assert all(codecs and set(codecs) == {gzip} for codecs in written.values()), written
