"""The store unavailable under a running pipeline: nothing lost, nothing doubled, caught up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import oracle, simulate
from tests.kafka_io import produce_items, read_back, run
from tests.services.store_faults import chattr_unavailable, immutable
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

N = 12_000
TABLES = (
    "grievance_events",
    "project_events",
    "metric_buckets",
    "metric_gauges",
    "metric_gauges_latest",
    "quality_buckets",
    "dead_letters",
)


def test_store_down_for_a_while_then_caught_up_exactly(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    why = chattr_unavailable()
    if why:
        pytest.skip(why)
    items = simulate(N, seed=17)
    # a small buffer bound, so the outage also exercises backpressure (consumption pauses)
    worker = make_worker(WARROOM_MAX_BUFFERED_ROWS="20000").start()
    run(produce_items(bootstrap, topics, items[: N // 4]))
    worker.wait_for(lambda: compare.outcomes_total(worker) >= N // 4, what="a first quarter")
    rows = worker.query(
        "SELECT data_paths FROM system.tables WHERE database = 'warroom' AND name IN ("
        + ", ".join(f"'{t}'" for t in TABLES)
        + ")"
    )
    paths = [p for r in rows for p in r["data_paths"]]
    assert len(paths) == len(TABLES)
    with immutable(paths):
        sender = threading.Thread(
            target=run, args=(produce_items(bootstrap, topics, items[N // 4 :], rate=4000),)
        )
        sender.start()
        # writes fail and are retried; consumption pauses once the buffer bound is reached
        worker.wait_for(
            lambda: worker.counter("warroom_sink_write_errors_total") > 0, what="write errors"
        )
        worker.wait_for(
            lambda: (
                worker.counter("warroom_backpressure_seconds_total") > 0
                or worker.counter("warroom_sink_buffered_rows") >= 20000
            ),
            what="backpressure",
        )
        time.sleep(2)
        stalled_at = compare.outcomes_total(worker)
        assert stalled_at < N, "nothing was held back while the store was down"
        sender.join()
    # back: every record ends up stored exactly once
    worker.wait_for(lambda: compare.outcomes_total(worker) >= N, timeout=180, what="catch-up")
    compare.wait_settled(worker, 1)
    exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
    compare.assert_matches(worker, exp)
    assert worker.counter("warroom_sink_retries_total") > 0
    assert worker.stop() == 0, worker.tail()
