"""Pipeline fixtures: simulated items, a real worker on its own topics and chdb store."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from producers.simulator.generator import Item, SimOptions, Simulator
from streams.topics import Topics
from tests.oracle import Expected, compute
from tests.services.worker import WorkerProcess

GRACE_S = 3600
LATE_S = 10
#: eleven days ago: historical data, so the partitions' clock is their watermark
START_MS = 1_793_000_000_000

WORKER_ENV = {
    "WARROOM_GRACE_SECONDS": str(GRACE_S),
    "WARROOM_LATE_SECONDS": str(LATE_S),
    "WARROOM_FLUSH_INTERVAL": "0.2",
    "WARROOM_COMMIT_INTERVAL": "1",
    "WARROOM_GAUGE_INTERVAL": "1",
}


def helper_worker(
    bootstrap: str, topics: Topics, folder: Path, owner: WorkerProcess
) -> WorkerProcess:
    """A second worker of the owner's group that writes through the owner's store (chdb is
    one process's)."""
    return WorkerProcess(
        bootstrap,
        topics.prefix,
        folder,
        env={
            **WORKER_ENV,
            "WARROOM_GROUP_ID": "oracle",
            "WARROOM_STORE": "chdb+http://" + owner.url.removeprefix("http://"),
        },
    )


def simulate(n: int, seed: int = 7, **options: Any) -> list[Item]:
    """n items of a busy simulated fortnight: lifecycles, projects, bad, late and duplicates."""
    opts = SimOptions(
        seed=seed,
        start_ms=START_MS,
        rate=2000,
        speedup=100_000,  # ~11 simulated days for 20 000 events: lifecycles and weekly reports
        bad_share=0.02,
        duplicate_share=0.01,
        late_share=0.03,
        **options,
    )
    return list(itertools.islice(Simulator(opts).items(), n))


def oracle(records: list[Any], items: list[Item]) -> Expected:
    bad = {it.payload: it.reason.value for it in items if it.reason is not None}
    return compute(records, bad, grace_s=GRACE_S, late_s=LATE_S)


@dataclass
class Run:
    bootstrap: str
    topics: Topics
    worker: WorkerProcess


@pytest.fixture
def make_worker(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    made: list[WorkerProcess] = []

    def make(**env: str) -> WorkerProcess:
        w = WorkerProcess(
            bootstrap,
            topics.prefix,
            tmp_path / "worker",
            env={**WORKER_ENV, "WARROOM_GROUP_ID": "oracle", **env},
        )
        made.append(w)
        return w

    yield make
    for w in made:
        w.kill()
