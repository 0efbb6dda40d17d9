"""A changelog that ends below what a running worker already read from it (lost or replaced by
the broker, or an end it under-reports) stopped the worker at the next rebalance with Faust's
ConsistencyError (streams/recovery.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import helper_worker, oracle, simulate
from tests.kafka_io import produce_items, read_back, run
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

N1, N2 = 3000, 2000


async def _recreate_changelogs(bootstrap: str, prefix: str) -> list[str]:
    """Delete this deployment's changelog topics and create them again, empty."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        names = [
            t
            for t in await admin.list_topics()
            if t.startswith(prefix) and t.endswith("-changelog")
        ]
        described = await admin.describe_topics(names)
        partitions = {d["topic"]: len(d["partitions"]) for d in described}
        await admin.delete_topics(names)
        await admin.create_topics(
            [
                NewTopic(n, partitions[n], 1, topic_configs={"cleanup.policy": "compact"})
                for n in names
            ]
        )
        return names
    finally:
        await admin.close()


def test_a_changelog_that_ends_below_what_was_read_is_read_again(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """The worker says so, reads the partition again, and every count ends equal to the
    oracle. The case and project books that went with the old changelog are not rebuilt (as
    when the broker loses everything, test_broker_lost_log.py): gauges are not compared."""
    first, second = simulate(N1, seed=41), simulate(N2, seed=42)
    owner = make_worker().start()
    run(produce_items(bootstrap, topics, first))
    compare.wait_settled(owner, N1)
    assert owner.stop() == 0, owner.tail()
    # a restarted worker reads its changelogs back: Faust remembers how far, per partition
    owner = make_worker().start()
    owner.wait_for(lambda: owner.ready_check("recovery"), what="tables recovered")
    assert run(_recreate_changelogs(bootstrap, topics.prefix))
    helper = helper_worker(bootstrap, topics, tmp_path / "helper", owner).start()
    try:
        # the helper's join is a rebalance in which the owner keeps partitions it read
        for w in (owner, helper):
            w.wait_for(lambda w=w: w.ready_check("partitions"), what="partitions assigned")
        run(produce_items(bootstrap, topics, second))
        owner.wait_for(
            lambda: compare.outcomes_total(owner) >= N1 + N2, timeout=180, what="every record"
        )
        compare.wait_settled(owner, 1, also=(helper,))
        logs = owner.log_path.read_text()
        assert "ConsistencyError" not in logs
        assert "changelog end reported below what this worker already read from it" in logs
        exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), first + second)
        assert compare.outcomes_total(owner) == N1 + N2
        compare.assert_counts_match(owner, exp)
        assert helper.stop() == 0, helper.tail()
    finally:
        helper.kill()
    assert owner.stop() == 0, owner.tail()
