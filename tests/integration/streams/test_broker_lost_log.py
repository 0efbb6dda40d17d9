"""A broker that loses its log (the embedded one keeps it in memory) starts every partition
again at offset 0, below the stamps the worker applied: the new log's records must be counted,
never skipped as already applied, and the worker must say so and be unready meanwhile."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from streams.broker import EmbeddedBroker, ensure_topics, free_port
from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import WORKER_ENV, oracle, simulate
from tests.kafka_io import produce_items, read_back, run
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

N1, N2 = 4000, 2000
#: the oracle reads the second log after the first: one partition, two log generations
SECOND_LOG = 10**9


class Readiness(threading.Thread):
    """Polls /readyz and remembers every failing check it saw (name -> detail)."""

    def __init__(self, worker: WorkerProcess) -> None:
        super().__init__(daemon=True)
        self.worker = worker
        self.failing: dict[str, str] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            if not self.worker.url:
                continue
            try:
                with urllib.request.urlopen(self.worker.url + "/readyz", timeout=5) as r:
                    body = orjson.loads(r.read())
            except urllib.error.HTTPError as exc:
                body = orjson.loads(exc.read())
            except OSError:
                continue
            for check in body["checks"]:
                if not check["ok"]:
                    self.failing.setdefault(check["name"], check["detail"])


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[list[EmbeddedBroker]]:
    """A broker of this test alone (it is restarted); the list holds the current one."""
    port = free_port()
    brokers = [EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log")]
    brokers[0].start()
    yield brokers
    brokers[-1].stop()


def restart(brokers: list[EmbeddedBroker], topics: Topics) -> str:
    """Stop the broker and start an empty one on the same port (memory storage: all gone)."""
    old = brokers[-1]
    old.stop()
    new = EmbeddedBroker(port=old.port, log_path=old.log_path)
    brokers.append(new)
    new.start()
    asyncio.run(ensure_topics(new.bootstrap, topics.all(), partitions=4))
    return new.bootstrap


@pytest.mark.parametrize("worker_restarts", [False, True], ids=["running", "restarted"])
def test_new_log_is_counted_not_skipped(
    own_broker: list[EmbeddedBroker], tmp_path: Path, worker_restarts: bool
) -> None:
    worker = WorkerProcess(own_broker[0].bootstrap, "lost-", tmp_path / "worker", env=_ENV)
    try:
        _lose_the_log(own_broker, worker, worker_restarts)
    finally:
        worker.kill()


_ENV = {**WORKER_ENV, "WARROOM_GROUP_ID": "oracle"}


def _lose_the_log(
    own_broker: list[EmbeddedBroker], worker: WorkerProcess, worker_restarts: bool
) -> None:
    bootstrap = own_broker[0].bootstrap
    topics = Topics(prefix="lost-")
    asyncio.run(ensure_topics(bootstrap, topics.all(), partitions=4))
    first, second = simulate(N1, seed=31), simulate(N2, seed=32)
    worker.start(timeout=300)
    run(produce_items(bootstrap, topics, first))
    compare.wait_settled(worker, N1)
    first_log = run(read_back(bootstrap, topics, ("grievance", "project")))
    if worker_restarts:
        assert worker.stop() == 0, worker.tail()
    restart(own_broker, topics)
    readiness = Readiness(worker)
    readiness.start()
    try:
        if worker_restarts:
            # the new log already holds records when the worker comes back
            run(produce_items(bootstrap, topics, second))
            worker.start(timeout=300)
            consumed = N2
        else:
            run(produce_items(bootstrap, topics, second))
            consumed = N1 + N2
        compare.wait_settled(worker, consumed)
        worker.wait_for(lambda: worker.ready_check("log"), timeout=60, what="ready again")
    finally:
        readiness.done.set()
        readiness.join()
    second_log = run(read_back(bootstrap, topics, ("grievance", "project")))
    assert len(second_log) == N2
    records = first_log + [replace(r, offset=r.offset + SECOND_LOG) for r in second_log]
    exp = oracle(records, first + second)

    assert compare.outcomes_total(worker) == N1 + N2  # nothing skipped as "already applied"
    if worker_restarts:
        # the books of the lost log went with its changelog: counts stay exact, gauges not
        compare.assert_counts_match(worker, exp)
        logs = worker.log_path.read_text()
        assert "the changelog has no checkpoint for a partition the store holds rows of" in logs
    else:
        compare.assert_matches(worker, exp)
        logs = worker.log_path.read_text()
    assert "NEW LOG GENERATION" in logs
    # said on /readyz while it re-read the new log (the running worker finds it at the
    # rebalance, maybe before any record: then there is nothing to catch up on)
    if worker_restarts:
        assert "the broker lost its log" in readiness.failing.get("log", ""), readiness.failing
    assert worker.stop() == 0, worker.tail()
