"""The pipeline against an independent oracle: normal run, crash, replay."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import helper_worker, oracle, simulate
from tests.kafka_io import produce_items, read_back, reset_offsets, run
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

N = 20_000


def test_metrics_equal_the_oracle(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    items = simulate(N)
    # the simulated mix really exercises every path the oracle checks
    assert sum(it.reason is not None for it in items) > 100
    assert sum(it.is_duplicate for it in items) > 50
    assert sum(it.is_late for it in items) > 100
    assert sum(it.stream == "project" and it.reason is None for it in items) > 200
    run(produce_items(bootstrap, topics, items))
    worker = make_worker().start()
    compare.wait_settled(worker, N)
    exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
    assert exp.consumed == N
    assert exp.duplicates > 0 and exp.rejected > 0
    assert any(k[3] == "late" for k in exp.quality) and any(k[3] == "too_late" for k in exp.quality)
    compare.assert_matches(worker, exp)
    # produced = accepted + rejected + duplicate, also in the worker's own counters
    assert worker.counter("warroom_events_consumed_total") == N
    accepted = worker.counter("warroom_events_accepted_total")
    rejected = worker.counter("warroom_events_rejected_total")
    duplicates = worker.counter("warroom_events_duplicate_total")
    assert (accepted, rejected, duplicates) == (len(exp.accepted_ids), exp.rejected, exp.duplicates)
    assert worker.stop() == 0, worker.tail()


def test_offsets_reset_to_the_start_under_a_stopped_worker_change_nothing(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    """The group's offsets set back to the start under a stopped worker (an operator's reset,
    or a commit that did not land): the restarted worker continues from its restored
    checkpoint. The tables stay equal to the oracle and nothing is counted again (a record
    that is fetched again anyway counts as replayed, not consumed)."""
    n = 4_000
    items = simulate(n, seed=31)
    run(produce_items(bootstrap, topics, items))
    worker = make_worker().start()
    compare.wait_settled(worker, n)
    exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
    assert worker.stop() == 0, worker.tail()
    names = [topics.for_stream(s) for s in ("grievance", "project")]
    run(reset_offsets(bootstrap, f"{topics.prefix}oracle", names))
    worker.start()
    compare.wait_settled(worker, 0)
    time.sleep(2.0)  # a fetch from the reset offsets would have been applied by now
    compare.assert_matches(worker, exp)
    assert worker.counter("warroom_events_replayed_total") <= n
    for name in ("consumed", "accepted", "rejected", "duplicate"):
        assert worker.counter(f"warroom_events_{name}_total") == 0, name
    assert worker.stop() == 0, worker.tail()


def test_killed_worker_restarts_to_the_same_tables(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    """SIGKILL mid-stream (no flush, no checkpoint, no commit), restart: nothing lost, nothing
    counted twice."""
    items = simulate(N, seed=11)
    run(produce_items(bootstrap, topics, items[: N // 2]))
    worker = make_worker(WARROOM_COMMIT_INTERVAL="0.5").start()
    worker.wait_for(
        lambda: worker.counter("warroom_events_consumed_total") >= N // 2,
        what="the first half consumed",
    )
    time.sleep(1.5)  # at least one checkpoint lands
    # the second half arrives while the worker runs; kill it in the middle of that
    second = produce_items(bootstrap, topics, items[N // 2 :], rate=3000)
    sender = threading.Thread(target=run, args=(second,))
    sender.start()
    worker.wait_for(
        lambda: worker.counter("warroom_events_consumed_total") >= N // 2 + 2000,
        what="the second half flowing",
    )
    consumed_at_kill = worker.counter("warroom_events_consumed_total")
    worker.kill()
    sender.join()
    assert consumed_at_kill < N, "the kill did not land mid-stream"
    exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
    worker.start()
    worker.wait_for(lambda: compare.outcomes_total(worker) >= N, what="every record counted")
    compare.wait_settled(worker, 1)
    compare.assert_matches(worker, exp)
    assert worker.stop() == 0, worker.tail()


def test_replaying_the_same_file_twice_changes_nothing(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """`warroom replay` of one JSONL file, twice: metrics and raw tables unchanged the second
    time; each repeat is counted as a duplicate (and each bad line dead-lettered again)."""
    items = [it for it in simulate(8_000, seed=5) if not it.is_duplicate]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(it.payload + b"\n" for it in items if b"\n" not in it.payload))
    lines = path.read_bytes().count(b"\n")
    worker = make_worker().start()

    def replay() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "warroom.cli", "replay", str(path), "--format", "jsonl"],
            env={**worker.env, "WARROOM_LOG_LEVEL": "warning"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    replay()
    compare.wait_settled(worker, lines)
    first_buckets = compare.buckets(worker)
    first_gauges = compare.gauges(worker)
    first_quality = compare.quality(worker)
    raw = "SELECT count() AS n FROM grievance_events FINAL"
    raw_first = worker.query(raw)[0]["n"]
    replay()
    compare.wait_settled(worker, 2 * lines)
    assert compare.diff(first_buckets, compare.buckets(worker)) == []
    assert compare.diff(first_gauges, compare.gauges(worker)) == []
    assert worker.query(raw)[0]["n"] == raw_first
    second = compare.quality(worker)

    def total(q: dict[Any, int], outcome: str) -> int:
        return sum(c for k, c in q.items() if k[3] == outcome)

    assert total(second, "accepted") == total(first_quality, "accepted")
    rejected_once = total(first_quality, "rejected")
    assert total(second, "rejected") == 2 * rejected_once
    assert total(second, "duplicate") - total(first_quality, "duplicate") == (lines - rejected_once)
    assert worker.stop() == 0, worker.tail()


def test_two_workers_share_the_partitions_and_the_store(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Scale-out on one machine: the second worker writes through the first one's store (chdb
    is one process's), the group splits the partitions, the tables still equal the oracle."""
    items = simulate(N, seed=13)
    owner = make_worker().start()
    helper = helper_worker(bootstrap, topics, tmp_path / "helper", owner).start()
    try:
        # both in the group before any event arrives, or the first takes everything
        for w in (owner, helper):
            w.wait_for(lambda w=w: w.ready_check("partitions"), what="partitions assigned")
        run(produce_items(bootstrap, topics, items))
        owner.wait_for(lambda: compare.outcomes_total(owner) >= N, what="every record counted")
        compare.wait_settled(owner, 1, also=(helper,))
        both = (
            owner.counter("warroom_events_consumed_total"),
            helper.counter("warroom_events_consumed_total"),
        )
        assert all(n > 0 for n in both), f"one worker consumed nothing: {both}"
        exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
        compare.assert_matches(owner, exp)
        # the owner recomputed the rollups of the rows it inserted for the helper
        compare.assert_rollups_match(owner, exp)
        assert helper.stop() == 0, helper.tail()
    finally:
        helper.kill()
    assert owner.stop() == 0, owner.tail()
