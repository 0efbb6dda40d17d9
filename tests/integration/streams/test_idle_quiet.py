"""An idle worker writes nothing to its changelogs: a checkpoint is written when it changes,
not on every commit interval (issue 15 item 5)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import oracle, simulate
from tests.kafka_io import produce_items, read_back, run
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

N = 3000
IDLE_S = 8  # eight commit intervals of the test worker (WARROOM_COMMIT_INTERVAL=1)


async def changelog_ends(bootstrap: str, topics: Topics) -> dict[TopicPartition, int]:
    names = [f"{topics.prefix}oracle-{s}-state-changelog" for s in ("grievance", "project")]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for name in names for p in range(4)]
        return dict(await consumer.end_offsets(tps))
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


def test_idle_worker_writes_no_checkpoints(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    items = simulate(N, seed=41)
    worker = make_worker().start(timeout=300)
    run(produce_items(bootstrap, topics, items))
    compare.wait_settled(worker, N)
    time.sleep(3)  # the checkpoint after the last record is written
    before = run(changelog_ends(bootstrap, topics))
    assert sum(before.values()) > 0  # the books and checkpoints of the records are there
    time.sleep(IDLE_S)
    after = run(changelog_ends(bootstrap, topics))
    grown = {f"{tp.topic}[{tp.partition}]": after[tp] - before[tp] for tp in before}
    assert not any(grown.values()), f"an idle worker wrote to its changelogs: {grown}"

    # and a restart resumes from those checkpoints exactly (nothing replayed, nothing lost)
    assert worker.stop() == 0, worker.tail()
    worker.start(timeout=300)
    more = simulate(N + 500, seed=41)[N:]
    run(produce_items(bootstrap, topics, more))
    compare.wait_settled(worker, 500)
    assert worker.counter("warroom_events_consumed_total") == 500
    exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items + more)
    compare.assert_matches(worker, exp)
    assert worker.stop() == 0, worker.tail()
