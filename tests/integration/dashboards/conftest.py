"""Fixtures of the dashboard tests: the real pipeline's store to run every panel's SQL against.

`warehouse` (once per session): a real `warroom worker` subprocess on the session's Tansu
broker, with its own topic prefix and its own chdb store, consumes ~3 weeks of simulated
events (grievance lifecycles, weekly project reports, surges, bad, duplicate and late events).
In two phases, with a clean worker restart between them (as a deploy does): the events up to
PAST_HOURS before the end, settled; a restart; the rest, settled (everything consumed and
written, and a gauge snapshot taken after the last record). So the gauges hold an older
snapshot that a past time range must show, and keys that dropped to zero after the restart
(which a restarted worker does not write as 0 rows). Panels are then queried through the
worker's read-only ClickHouse-HTTP endpoint, as Grafana's plugin would query a server:

    warehouse.query(sql) -> (column_names, rows)
    warehouse.time_range -> (from_ms, to_ms)   # covers every row the pipeline wrote
    warehouse.past_ms                          # a time range end that sees phase 1 only
    warehouse.phase1_offsets                   # (table, partition) -> last offset of phase 1
    warehouse.items                            # what was produced (the inputs, for oracles)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from producers.simulator.generator import Item, SimOptions, Simulator
from streams.broker import EmbeddedBroker, ensure_topics
from streams.topics import Topics
from tests.integration.streams.compare import wait_settled
from tests.kafka_io import produce_items
from tests.services.worker import WorkerProcess

log = logging.getLogger(__name__)

_INT_TYPES = ("Int", "UInt")
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: simulated days: more than the 14 days after which a silent project is stale, plus the week
#: a project may wait for its first report, so stale projects exist
SPAN_DAYS = 24
#: the data ends this long before the wall clock: further back than the worker's "live"
#: threshold (15 min), so each partition's clock is its watermark (gauges are deterministic),
#: while dead letters and rejections are stamped with the wall clock at production
END_BEFORE_NOW_MS = 20 * MINUTE_MS
#: phase 1 holds the events before this many hours before the end
PAST_HOURS = 36
#: ~2 500 simulated events a day (rate / speedup per simulated second): ~60 000 events
SIM: dict[str, Any] = {
    "seed": 20251001,
    "rate": 2000.0,
    "speedup": 70_000.0,
    "bad_share": 0.02,
    "duplicate_share": 0.01,
    "late_share": 0.03,
    "surge_share": 0.25,
}
WORKER_ENV = {
    "WARROOM_GROUP_ID": "dashboards",
    "WARROOM_FLUSH_INTERVAL": "0.3",
    "WARROOM_COMMIT_INTERVAL": "1",
    "WARROOM_GAUGE_INTERVAL": "1",
}
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


def simulate(end_ms: int) -> list[Item]:
    """Every item the simulator makes for SPAN_DAYS ending at end_ms (late items still held
    back at the end are never sent, like events that never arrived)."""
    opts = SimOptions(start_ms=end_ms - SPAN_DAYS * DAY_MS, **SIM)
    items = []
    for it in Simulator(opts).items():
        if it.occurred_ms > end_ms and not it.is_late:
            break
        items.append(it)
    return items


def split(items: list[Item], at_ms: int) -> int:
    """Index of the first item of phase 2: the first on-time item at or after at_ms (so every
    phase-1 watermark, and snapshot minute, is before at_ms's minute)."""
    return next(i for i, it in enumerate(items) if not it.is_late and it.occurred_ms >= at_ms)


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
        assert worker.stop() == 0, worker.tail()
        worker.env.update(RESTART_ENV)
        worker.spawn()
        asyncio.run(produce_items(bootstrap, topics, items[cut:]))
        worker.wait_started()
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
            timings=timings,
        )
    finally:
        code = worker.stop()
        if code != 0:
            log.warning("dashboard worker exited with %s:\n%s", code, worker.tail())
