"""Handovers between two workers on one store (issue 15, item 2): while events flow, either
worker is killed (SIGKILL) at a random moment and restarted, round after round; at the end
every table, the latest gauges included, equals the oracle computed from the events.

Three rounds in CI. The soak runs more, outside CI:

    WARROOM_HANDOVER_ROUNDS=10 .venv/bin/pytest -q tests/integration/streams/test_handover.py \
        --basetemp=/tmp/pt-soak

(``WARROOM_HANDOVER_SEED`` repeats one run's kill schedule; a failure prints its seed.)
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import WORKER_ENV, oracle, simulate
from tests.kafka_io import produce_items, read_back, run
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("WARROOM_HANDOVER_ROUNDS", "3"))
#: events sent during one round, at RATE a second: the kill lands while they flow
PER_ROUND = 5_000
RATE = 1_000.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _send(bootstrap: str, topics: Topics, items: list[object]) -> threading.Thread:
    sender = threading.Thread(
        target=run,
        args=(produce_items(bootstrap, topics, items, rate=RATE),),  # type: ignore[arg-type]
    )
    sender.start()
    return sender


@pytest.mark.timeout(180 + 120 * ROUNDS)  # about a minute a round on 2 loaded cores
def test_repeated_handovers_end_equal_to_the_oracle(
    bootstrap: str, topics: Topics, tmp_path: Path, make_worker: Callable[..., WorkerProcess]
) -> None:
    seed = int(os.environ.get("WARROOM_HANDOVER_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    print(f"handover seed {seed}, {ROUNDS} rounds")
    port = _free_port()
    # the store owner keeps its address across restarts: the other worker writes through it
    owner = make_worker(WARROOM_WEB_PORT=str(port))
    helper = WorkerProcess(
        bootstrap,
        topics.prefix,
        tmp_path / "helper",
        env={
            **WORKER_ENV,
            "WARROOM_GROUP_ID": "oracle",
            "WARROOM_STORE": f"chdb+http://127.0.0.1:{port}",
        },
    )
    items = simulate(PER_ROUND * (ROUNDS + 1), seed=seed % 1000 + 17)
    n = len(items)
    owner.start()
    helper.start()
    crashed: list[str] = []
    try:
        for w in (owner, helper):
            w.wait_for(lambda w=w: w.ready_check("partitions"), what="partitions assigned")
        for r in range(ROUNDS):
            sender = _send(bootstrap, topics, items[r * PER_ROUND : (r + 1) * PER_ROUND])
            time.sleep(rng.uniform(0.3, PER_ROUND / RATE - 0.5))
            victim = rng.choice((owner, helper))
            victim.kill()
            # restarted at once (events still flowing): the handover back happens mid-stream
            time.sleep(rng.uniform(0.0, 3.0))
            victim.start(timeout=180)
            sender.join()
            crashed += _restart_the_dead(owner, helper)
            # the next kill lands on workers with state: checkpoints, books, gauges
            sent = (r + 1) * PER_ROUND
            crashed += _wait_counted(owner, helper, sent, f"round {r + 1}'s records counted")
            name = "owner" if victim is owner else "helper"
            print(f"round {r + 1}: killed and restarted the {name}")
        sender = _send(bootstrap, topics, items[ROUNDS * PER_ROUND :])
        sender.join()
        exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
        assert exp.consumed == n
        crashed += _restart_the_dead(owner, helper)
        crashed += _wait_counted(owner, helper, n, "every record counted")
        compare.wait_settled(owner, 1, also=(helper,))
        # gauges are snapshots: give both workers' timers a few turns to write their last one
        deadline = time.monotonic() + 20
        while True:
            try:
                compare.assert_matches(owner, exp)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    print(f"handover seed {seed}: tables differ from the oracle")
                    raise
                time.sleep(1.0)
        assert compare.outcomes_total(owner) == n
        crashed += _restart_the_dead(owner, helper)
        print(f"workers that died on their own (restarted): {crashed or 'none'}")
        # the store away at a restore no longer crashes a worker (it waits for the store);
        # Faust's table recovery can still stop one on a changelog whose end Tansu misreports
        # (see the report of issue 15 item 2): restarted as `warroom up` does, not failed here
        store_crashes = [c for c in crashed if "StoreError" in c]
        assert not store_crashes, f"a worker died while the store was away: {store_crashes}"
        assert helper.stop() == 0, helper.tail()
    finally:
        helper.kill()
    assert owner.stop() == 0, owner.tail()


def _wait_counted(owner: WorkerProcess, helper: WorkerProcess, n: int, what: str) -> list[str]:
    """Until the store counts `n` records. A worker that dies by itself meanwhile (Faust's table
    recovery, see the end of the test) is restarted as between rounds, and the wait goes on;
    returns why each died."""
    deadline = time.monotonic() + 300
    crashed: list[str] = []
    while True:
        try:
            owner.wait_for(
                lambda: compare.outcomes_total(owner) >= n,
                timeout=max(1.0, deadline - time.monotonic()),
                what=what,
            )
            return crashed
        except RuntimeError:  # "worker died while waiting"
            dead = _restart_the_dead(owner, helper)
            if not dead:
                raise
            crashed += dead


def _restart_the_dead(*workers: WorkerProcess) -> list[str]:
    """Restart a worker that died without being killed (as `warroom up` would); say why."""
    dead = []
    for w in workers:
        if w.proc is not None and w.proc.poll() is not None:
            reason = next(
                (
                    line[line.index("Crashed reason=") : line.index("Crashed reason=") + 120]
                    for line in w.log_path.read_text(errors="replace").splitlines()
                    if "Crashed reason=" in line
                ),
                "no crash line",
            )
            dead.append(f"{w.log_path} exited {w.proc.returncode}: {reason}")
            w.start(timeout=180)
    return dead


class _AsFaust(RoundRobinPartitionAssignor):
    """Joins the workers' group (its protocol is Faust's assignor's); alone in the group, it
    assigns itself everything."""

    name = "faust"


async def _commit_ends(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """As a member of the group (alone in it), commit every partition's end offset, as a
    revoked owner's late commit would: beyond the checkpoint the changelog holds. Returns the
    offsets committed per topic."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        partition_assignment_strategy=(_AsFaust,),
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        while len(consumer.assignment()) < 4 * len(topics):
            assert time.monotonic() < deadline, "no assignment for the late committer"
            await consumer.getmany(timeout_ms=500, max_records=1)
        tps = sorted(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: ends[tp] for tp in tps})
        return {t: sum(ends[tp] for tp in tps if tp.topic == t) for t in topics}
    finally:
        await consumer.stop()


def test_an_offset_committed_past_the_checkpoint_skips_nothing(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    """The mechanism of the diverged handover: the offsets a previous owner committed after
    the checkpoint the next owner restored. Reading from there skipped records the books never
    saw (a district's project count 7 instead of 17); now the restored state says where the
    new owner continues."""
    items = simulate(12_000, seed=23)
    half = len(items) // 2
    run(produce_items(bootstrap, topics, items[:half]))
    worker = make_worker().start()
    compare.wait_settled(worker, half)
    assert worker.stop() == 0, worker.tail()  # clean: checkpoint and commit at the same offsets
    # the second half arrives; a late commit from the old owner moves the group past it
    run(produce_items(bootstrap, topics, items[half:]))
    live = [topics.for_stream(s) for s in ("grievance", "project")]
    ends = run(_commit_ends(bootstrap, f"{topics.prefix}oracle", live))
    assert all(ends.values()), ends
    worker.start()
    exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
    with contextlib.suppress(TimeoutError):  # the old code never gets there: show the diff
        worker.wait_for(
            lambda: compare.outcomes_total(worker) >= len(items), timeout=60, what="every record"
        )
    compare.wait_settled(worker, 1)
    compare.assert_matches(worker, exp)
    assert "fetched past" not in worker.log_path.read_text()  # the restore commit was enough
    assert worker.stop() == 0, worker.tail()
