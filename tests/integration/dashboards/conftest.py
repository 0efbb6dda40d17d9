"""Fixtures of the dashboard tests: the real pipeline's store to run every panel's SQL against.

`warehouse` (once per session): a real `warroom worker` subprocess (its alert engine on) on
the session's Tansu broker, with its own topic prefix and its own chdb store, consumes ~3 weeks
of simulated events (dash_data.py: grievance lifecycles, weekly project reports, surges, bad,
duplicate and late events). In two phases, with a clean worker restart between them (as a
deploy does): the events up to PAST_HOURS before the end, settled; a stop, the events up to
the last hour arriving meanwhile (a backlog for the restarted worker), a restart, the last hour
in steps the alert engine evaluates one by one, settled (everything consumed and written, and
a gauge snapshot taken after the last record). So the gauges hold an older
snapshot that a past time range must show, and keys that dropped to zero after the restart
(which a restarted worker does not write as 0 rows); alerts fire and are stored as they would
live. Panels are then queried through the worker's read-only ClickHouse-HTTP endpoint, as
Grafana's plugin would query a server:

    warehouse.query(sql) -> (column_names, rows)
    warehouse.time_range -> (from_ms, to_ms)   # covers every row the pipeline wrote
    warehouse.past_ms                          # a time range end that sees phase 1 only
    warehouse.phase1_offsets                   # (table, partition) -> last offset of phase 1
    warehouse.items                            # what was produced (the inputs, for oracles)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dash_data import (
    DAY_MS,
    END_BEFORE_NOW_MS,
    HOUR_MS,
    MINUTE_MS,
    PAST_HOURS,
    SPAN_DAYS,
    simulate,
    split,
)

from producers.simulator.generator import Item
from streams.broker import EmbeddedBroker, ensure_topics
from streams.topics import Topics
from tests.integration.streams.compare import wait_settled
from tests.kafka_io import produce_items
from tests.services.worker import WorkerProcess

log = logging.getLogger(__name__)
_HERE = Path(__file__).resolve().parent
#: session workers started by `warehouse` (stopped after the last test of this folder)
_WORKERS: list[WorkerProcess] = []

_INT_TYPES = ("Int", "UInt")
WORKER_ENV = {
    "WARROOM_GROUP_ID": "dashboards",
    "WARROOM_FLUSH_INTERVAL": "0.3",
    "WARROOM_COMMIT_INTERVAL": "1",
    "WARROOM_GAUGE_INTERVAL": "1",
    # gauge history every minute: the "past" gauge panels read the history at the end of the
    # fixture's phase 1, which the oracle computes to the minute
    "WARROOM_GAUGE_HISTORY_MINUTES": "1",
    # evaluations follow the stream clock at least every second
    "WARROOM_ALERT_TICK_SECONDS": "1",
    # the overdue list reads an open-case snapshot of the worker's (one writer thread: no
    # insert can be under way during a rebuild, so no margin)
    "WARROOM_OPEN_CASES_EVERY": "2",
    "WARROOM_OPEN_CASES_MARGIN": "0",
    # the oracles take a partition's clock as its latest event. The clock bound (an event far
    # ahead of a lagging clock moves it only once the next one confirms it) would hold it back
    # when the simulator's last event of a partition is such a jump: the overdue counts then
    # differed by a few cases (seen once, 1,030 against 1,033). tests/unit/streams/
    # test_clock_bound.py covers the bound itself.
    "WARROOM_CLOCK_MAX_JUMP_SECONDS": "0",
}
#: the last hour is sent in steps (minutes before the end), each consumed and evaluated by the
#: worker's alert engine before the next: an alert fires only after its condition held for its
#: `for` (10 min of stream time for a surge), which a backfill consumed at once never shows
TAIL_STEPS_MIN = (45, 30)
#: the restarted worker snapshots on the default timer: the events it consumes before its
#: first snapshot make keys drop to zero that it never writes as 0 rows
RESTART_ENV = {"WARROOM_GAUGE_INTERVAL": "5"}


class WarehouseError(RuntimeError):
    """The store refused a query; the message carries ClickHouse's error text."""


def _convert(value: Any, ch_type: str) -> Any:
    # JSONCompact quotes 64-bit integers; return them as Python numbers
    base = ch_type.removeprefix("Nullable(").removeprefix("LowCardinality(")
    if isinstance(value, str) and base.startswith(_INT_TYPES):
        return int(value)
    return value


@dataclass
class Warehouse:
    """Queries the worker's ClickHouse-HTTP-compatible endpoint."""

    url: str
    time_range: tuple[int, int]
    database: str = "warroom"
    worker: WorkerProcess | None = None
    items: list[Item] = field(default_factory=list)
    #: a time range end after every phase-1 snapshot and before any phase-2 event
    past_ms: int = 0
    #: (raw table, kafka_partition) -> highest offset of an event consumed in phase 1
    phase1_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    #: items produced in phase 1 (before the restart)
    phase1_items: int = 0
    #: the simulated data ends here (END_BEFORE_NOW_MS before the fixture started)
    end_ms: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        req = urllib.request.Request(
            f"{self.url}/?database={self.database}&default_format=JSONCompact",
            data=sql.encode(),
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise WarehouseError(exc.read().decode(errors="replace")) from exc
        names = [m["name"] for m in body["meta"]]
        types = [m["type"] for m in body["meta"]]
        rows = [
            tuple(_convert(v, t) for v, t in zip(row, types, strict=True)) for row in body["data"]
        ]
        return names, rows


def _alert_clock(w: WorkerProcess) -> int:
    with urllib.request.urlopen(w.url + "/status/alerts", timeout=10) as resp:
        return int(json.load(resp)["clock_ms"])


def _evaluated(w: WorkerProcess, clock_ms: int) -> None:
    """Until the alert engine evaluated at clock_ms or later with every row stored so far:
    its clock reached clock_ms, then two more evaluations (the first may have started before
    the last rows were stored)."""
    w.wait_for(lambda: _alert_clock(w) >= clock_ms, timeout=60, what="the alert clock")
    for _ in range(2):
        n = w.counter("warroom_alerts_evaluated_total")
        w.wait_for(
            lambda n=n: w.counter("warroom_alerts_evaluated_total") > n,  # type: ignore[misc]
            timeout=60,
            what="an alert evaluation",
        )


def _restart_with_tail(
    w: WorkerProcess, bootstrap: str, topics: Topics, items: list[Item], end_ms: int
) -> None:
    """Phase 2: the worker stops; what happened up to the first tail step arrives while it is
    down (a backlog it consumes at its restart, before its first gauge snapshot); then the
    tail in TAIL_STEPS_MIN steps, each (but the last) consumed and evaluated before the next."""
    assert w.stop() == 0, w.tail()
    w.env.update(RESTART_ENV)
    cuts = [split(items, end_ms - m * MINUTE_MS) for m in TAIL_STEPS_MIN]
    done = 0
    for i, (a, b) in enumerate(itertools.pairwise([0, *cuts])):
        step = items[a:b]
        asyncio.run(produce_items(bootstrap, topics, step))
        if i == 0:
            w.spawn().wait_started()
        done += len(step)
        w.wait_for(
            lambda done=done: w.counter("warroom_events_consumed_total") >= done,  # type: ignore[misc]
            timeout=240,
            what=f"{done} records consumed",
        )
        _evaluated(w, max(it.occurred_ms for it in step if it.reason is None and not it.is_late))
    asyncio.run(produce_items(bootstrap, topics, items[cuts[-1] :]))


def _phase1_offsets(w: WorkerProcess) -> dict[tuple[str, int], int]:
    out = {}
    for table in ("grievance_events", "project_events"):
        rows = w.query(
            f"SELECT kafka_partition AS p, max(kafka_offset) AS o FROM {table} GROUP BY p"
        )
        out.update({(table, int(r["p"])): int(r["o"]) for r in rows})
    return out


@pytest.fixture(scope="session")
def warehouse(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    started = time.monotonic()
    bootstrap = broker.bootstrap
    topics = Topics(prefix=f"dash{uuid.uuid4().hex[:8]}-")
    asyncio.run(ensure_topics(bootstrap, topics.all(), partitions=4))
    end_ms = (int(time.time() * 1000) - END_BEFORE_NOW_MS) // MINUTE_MS * MINUTE_MS
    past_ms = end_ms - PAST_HOURS * HOUR_MS
    items = simulate(end_ms)
    cut = split(items, past_ms)
    timings = {"simulate": time.monotonic() - started}
    worker = WorkerProcess(
        bootstrap, topics.prefix, tmp_path_factory.mktemp("dash-worker"), env=WORKER_ENV
    )
    _WORKERS.append(worker)
    # the worker starts (Faust, group join) while the events are produced
    worker.spawn()
    try:
        t = time.monotonic()
        asyncio.run(produce_items(bootstrap, topics, items[:cut]))
        worker.wait_started()
        wait_settled(worker, cut, timeout=240)
        offsets = _phase1_offsets(worker)
        timings["phase1"] = time.monotonic() - t
        t = time.monotonic()
        _restart_with_tail(worker, bootstrap, topics, items[cut:], end_ms)
        # the restarted worker counts from zero, and replays nothing already committed
        wait_settled(worker, len(items) - cut, timeout=240)
        timings["phase2"] = time.monotonic() - t
        # rejections and dead letters carry the Kafka (wall-clock) time: the range reaches now
        to_ms = (int(time.time() * 1000) // MINUTE_MS + 1) * MINUTE_MS
        from_ms = (end_ms - (SPAN_DAYS + 1) * DAY_MS) // DAY_MS * DAY_MS
        timings["total"] = time.monotonic() - started
        log.warning("dashboard warehouse ready: %d events, %s", len(items), timings)
        yield Warehouse(
            worker.url,
            (from_ms, to_ms),
            worker=worker,
            items=items,
            past_ms=past_ms - 1000,
            phase1_offsets=offsets,
            phase1_items=cut,
            end_ms=end_ms,
            timings=timings,
        )
    finally:
        code = worker.stop()
        if code != 0:
            log.warning("dashboard worker exited with %s:\n%s", code, worker.tail())


def _here(item: pytest.Item | None) -> bool:
    return item is not None and _HERE in item.path.parents


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the session worker after the last test of this folder, not at the end of the
    session: it snapshots gauges and evaluates alerts every second, on the machine's two
    shared cores, while the rest of the suite runs."""
    if not _WORKERS or _here(nextitem):
        return
    items = item.session.items
    rest = items[items.index(item) + 1 :] if item in items else []
    if any(_here(i) for i in rest):
        return
    for w in _WORKERS:
        if w.proc is not None:
            log.info("last dashboard test done: stopping the session worker")
            w.stop()
