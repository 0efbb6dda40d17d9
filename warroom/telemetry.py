"""Prometheus metrics of every warroom process, with cheap per-batch recording for the hot path.

Names and labels are fixed by issue 4 (see README "Metrics"). Labels stay bounded: topic,
stream, reason, source, backend, table, rule, severity, channel, producer — never a district
code or an event id. `source` comes from producers, so it is sanitised and capped (see
`BoundedLabel`).

Several workers on one host can share one `/metrics` through prometheus_client's multiprocess
mode: the supervisor calls `prepare_multiprocess_dir(path)` once before starting them (this
sets PROMETHEUS_MULTIPROC_DIR, which the children inherit, and empties the folder), each
process then writes its values to memory-mapped files there, `metrics_registry()` sums them,
and the supervisor calls `mark_process_dead(pid)` when a child exits so its live gauges drop
out. Gauge aggregation across processes:

- `warroom_consumer_lag` — livemax: a partition belongs to one worker at a time, and a worker
  zeroes the partitions it no longer holds (`set_lag`), so the max is the owner's value;
- `warroom_sink_buffered_rows`, `warroom_alerts_firing`, `warroom_notifications_queued` —
  livesum: each process holds its own share;
- `warroom_build_info` — livemax (1 per version still running).
Counters and histograms are summed over all processes, dead ones included, so totals never go
backwards when a worker exits. Process metrics (`process_*`) then describe the process that
serves `/metrics`.
"""

from __future__ import annotations

import bisect
import importlib.metadata
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from aiohttp.typedefs import Handler
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    multiprocess,
    values,
)
from prometheus_client.aiohttp import make_aiohttp_handler

__all__ = [
    "BATCH_ROWS_BUCKETS",
    "BATCH_SECONDS_BUCKETS",
    "LATENCY_BUCKETS",
    "SINK_SECONDS_BUCKETS",
    "BoundedLabel",
    "NotifierMetrics",
    "ProducerMetrics",
    "SimulatorMetrics",
    "SinkMetrics",
    "StreamMetrics",
    "Telemetry",
    "get",
    "mark_process_dead",
    "metrics_handler",
    "metrics_registry",
    "multiprocess_dir",
    "observe_many",
    "prepare_multiprocess_dir",
]

log = logging.getLogger(__name__)

#: the variable prometheus_client itself reads; warroom only passes it on
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

#: one consumed batch, in seconds (a few ms is normal, seconds means trouble)
BATCH_SECONDS_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: event time -> written: seconds-scale freshness, with room to see late arrivals
LATENCY_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
)  # fmt: skip
SINK_SECONDS_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: rows per write; WARROOM_FLUSH_ROWS defaults to 200 000
BATCH_ROWS_BUCKETS: Final = (
    1.0, 10.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0, 100_000.0, 200_000.0,
    500_000.0, 1_000_000.0,
)  # fmt: skip

_EMPTY_COUNTS: Final[Mapping[str, int]] = MappingProxyType({})
_EMPTY_PAIRS: Final[Mapping[tuple[str, str], int]] = MappingProxyType({})
_SAFE_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")

# `_created` series double the series count and nothing here reads them
disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> str | None:
    """The multiprocess folder when that mode is on (PROMETHEUS_MULTIPROC_DIR), else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: str | Path) -> Path:
    """Turn multiprocess mode on for this process and its future children, with an empty folder.

    Call once in the supervisor before any worker starts: a left-over file from an earlier run
    would add its old counts to the new totals. Metrics this process made before the call
    stay in memory (single-process values): call it first.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    # only prometheus_client's own files: a mistyped path must not cost anyone their data
    for entry in folder.glob("*.db"):
        entry.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    # prometheus_client picks its value class at import; metrics made from now on use mmap files
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return folder


def mark_process_dead(pid: int, path: str | Path | None = None) -> None:
    """Drop the live gauges of an exited worker (supervisor side, multiprocess mode only)."""
    folder = path or multiprocess_dir()
    if folder:
        multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


def metrics_registry(
    registry: CollectorRegistry | None = None, *, multiproc_dir: str | Path | None = None
) -> CollectorRegistry:
    """The registry `/metrics` should expose: the processes' files summed in multiprocess mode,
    else `registry` (the default registry when None)."""
    folder = multiproc_dir or multiprocess_dir()
    if not folder:
        return registry or REGISTRY
    merged = CollectorRegistry(auto_describe=True)
    multiprocess.MultiProcessCollector(merged, path=str(folder))  # type: ignore[no-untyped-call]
    ProcessCollector(registry=merged)
    return merged


def metrics_handler(
    registry: CollectorRegistry | None = None, *, multiproc_dir: str | Path | None = None
) -> Handler:
    """An aiohttp handler for `/metrics` (text format; OpenMetrics when the scraper asks)."""
    return make_aiohttp_handler(metrics_registry(registry, multiproc_dir=multiproc_dir))


def package_version() -> str:
    try:
        return importlib.metadata.version("warroom")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def observe_many(histogram: Histogram, amounts: Iterable[float]) -> None:
    """Observe many values at once: one bucket update per bucket instead of one per value.

    `histogram` must be a child without labels left (e.g. `h.labels(...)` or an unlabelled
    histogram). Uses prometheus_client's histogram internals when they are there (checked),
    else falls back to `observe` per value.
    """
    bounds: list[float] | None = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(buckets) != len(bounds):
        for amount in amounts:
            histogram.observe(amount)
        return
    counts = [0] * len(bounds)
    acc = 0.0
    for amount in amounts:
        # bisect_left: the first bound >= amount, as observe() does (le is inclusive)
        counts[bisect.bisect_left(bounds, amount)] += 1
        acc += amount
    if not any(counts):
        return
    total.inc(acc)
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)


def observe_repeated(histogram: Histogram, amount: float, count: int) -> None:
    """Observe the same value `count` times (e.g. one latency for a whole batch)."""
    if count <= 0:
        return
    bounds: list[float] | None = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(buckets) != len(bounds):
        for _ in range(count):
            histogram.observe(amount)
        return
    total.inc(amount * count)
    buckets[bisect.bisect_left(bounds, amount)].inc(count)


class BoundedLabel:
    """Keeps a label from producer data bounded and safe: the first `limit` distinct clean values
    pass; later ones become `other`; empty becomes `unknown`; values that are not short
    identifiers (spaces, digits-first, personal-looking text) become `invalid`."""

    def __init__(self, name: str, limit: int = 64) -> None:
        self.name = name
        self.limit = limit
        self._seen: set[str] = set()
        self._warned = False

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if not value:
            return "unknown"
        if not _SAFE_LABEL.fullmatch(value) or value.isdigit():
            return "invalid"
        if len(self._seen) >= self.limit:
            if not self._warned:
                self._warned = True
                log.warning(
                    "too many distinct label values; further ones are counted as 'other'",
                    extra={"label": self.name, "limit": self.limit},
                )
            return "other"
        self._seen.add(value)
        return value


class StreamMetrics:
    """The per-stream counters with their label children bound once (worker hot path)."""

    def __init__(self, tel: Telemetry, stream: str, topic: str) -> None:
        self.stream = stream
        self.topic = topic
        self._tel = tel
        self._consumed = tel.events_consumed.labels(topic=topic)
        self._replayed = tel.events_replayed.labels(topic=topic)
        self._duplicate = tel.events_duplicate.labels(stream=stream)
        self._late = tel.events_late.labels(stream=stream, kind="late")
        self._too_late = tel.events_late.labels(stream=stream, kind="too_late")
        self._accepted: dict[str, Counter] = {}
        self._rejected: dict[tuple[str, str], Counter] = {}

    def _accepted_child(self, source: str) -> Counter:
        child = self._accepted.get(source)
        if child is None:
            child = self._tel.events_accepted.labels(
                stream=self.stream, source=self._tel.source_label(source)
            )
            if len(self._accepted) < 4 * self._tel.source_label.limit:
                self._accepted[source] = child
        return child

    def _rejected_child(self, reason: str, source: str) -> Counter:
        key = (reason, source)
        child = self._rejected.get(key)
        if child is None:
            child = self._tel.events_rejected.labels(
                stream=self.stream, reason=reason, source=self._tel.source_label(source)
            )
            if len(self._rejected) < 16 * self._tel.source_label.limit:
                self._rejected[key] = child
        return child

    def record_batch(
        self,
        *,
        accepted_by_source: Mapping[str, int] = _EMPTY_COUNTS,
        rejected_by_reason_source: Mapping[tuple[str, str], int] = _EMPTY_PAIRS,
        duplicates: int = 0,
        late: int = 0,
        too_late: int = 0,
        consumed: int | None = None,
        replayed: int = 0,
        seconds: float | None = None,
    ) -> None:
        """Count one processed batch. `consumed` defaults to accepted + rejected + duplicates
        (every consumed message has exactly one of these outcomes); late and too_late are
        subsets of accepted. `replayed`: records read again and skipped as already applied (not
        in `consumed`). `seconds`: how long the batch took, for the batch histogram."""
        n = duplicates
        for source, count in accepted_by_source.items():
            if count:
                self._accepted_child(source).inc(count)
                n += count
        for (reason, source), count in rejected_by_reason_source.items():
            if count:
                self._rejected_child(reason, source).inc(count)
                n += count
        if duplicates:
            self._duplicate.inc(duplicates)
        if late:
            self._late.inc(late)
        if too_late:
            self._too_late.inc(too_late)
        total = n if consumed is None else consumed
        if total:
            self._consumed.inc(total)
        if replayed:
            self._replayed.inc(replayed)
        if seconds is not None:
            self._tel.batch_processing.observe(seconds)


class SinkMetrics:
    """Write-side metrics of one store backend (chdb, clickhouse)."""

    def __init__(self, tel: Telemetry, backend: str) -> None:
        self.backend = backend
        self._tel = tel
        self._write_seconds = tel.sink_write_seconds.labels(backend=backend)
        self._errors = tel.sink_write_errors.labels(backend=backend)
        self._retries = tel.sink_retries.labels(backend=backend)
        self._buffered = tel.sink_buffered_rows.labels(backend=backend)
        self._rows: dict[str, Histogram] = {}

    def record_write(self, rows_by_table: Mapping[str, int], seconds: float) -> None:
        """One successful write: rows per table in it and how long it took."""
        for table, rows in rows_by_table.items():
            child = self._rows.get(table)
            if child is None:
                child = self._rows[table] = self._tel.sink_batch_rows.labels(
                    backend=self.backend, table=table
                )
            child.observe(rows)
        self._write_seconds.observe(seconds)

    def write_error(self, count: int = 1) -> None:
        self._errors.inc(count)

    def retry(self, count: int = 1) -> None:
        self._retries.inc(count)

    def set_buffered(self, rows: int) -> None:
        self._buffered.set(rows)

    def observe_latencies(self, seconds: Iterable[float]) -> None:
        """End-to-end latencies (event time -> written) of the rows just written."""
        observe_many(self._tel.end_to_end_latency, seconds)

    def observe_latency(self, seconds: float, count: int = 1) -> None:
        """One end-to-end latency shared by `count` events (cheaper for big batches)."""
        observe_repeated(self._tel.end_to_end_latency, seconds, count)


class NotifierMetrics:
    """Alert evaluation and notification metrics."""

    def __init__(self, tel: Telemetry) -> None:
        self._tel = tel
        self._firing: set[tuple[str, str]] = set()

    def evaluated(self, rule: str, count: int = 1) -> None:
        self._tel.alerts_evaluated.labels(rule=rule).inc(count)

    def set_firing(self, counts: Mapping[tuple[str, str], int]) -> None:
        """The number of firing alerts per (rule, severity) now; pairs left out go to 0."""
        for key in self._firing - counts.keys():
            self._tel.alerts_firing.labels(rule=key[0], severity=key[1]).set(0)
        for (rule, severity), n in counts.items():
            self._tel.alerts_firing.labels(rule=rule, severity=severity).set(n)
        self._firing = set(counts) | self._firing

    def sent(self, channel: str, count: int = 1) -> None:
        self._tel.notifications_sent.labels(channel=channel).inc(count)

    def failed(self, channel: str, count: int = 1) -> None:
        self._tel.notifications_failed.labels(channel=channel).inc(count)

    def given_up(self, channel: str, reason: str) -> None:
        self._tel.notifications_given_up.labels(channel=channel, reason=reason).inc()

    def set_queued(self, channel: str, count: int) -> None:
        self._tel.notifications_queued.labels(channel=channel).set(count)

    def held_back(self, count: int) -> None:
        self._tel.notifications_held_back.inc(count)


class ProducerMetrics:
    """Send-side metrics of one producer (simulator, replay, intake, ...)."""

    def __init__(self, tel: Telemetry, producer: str) -> None:
        self._tel = tel
        self.producer = producer
        self._errors = tel.producer_send_errors.labels(producer=producer)
        self._sent: dict[str, Counter] = {}

    def sent(self, stream: str, count: int = 1) -> None:
        child = self._sent.get(stream)
        if child is None:
            child = self._sent[stream] = self._tel.producer_events_sent.labels(
                producer=self.producer, stream=stream
            )
        child.inc(count)

    def error(self, count: int = 1) -> None:
        self._errors.inc(count)


#: the simulator's phases, as the `phase` label of warroom_simulator_phase
SIMULATOR_PHASES: Final = ("backfill", "live", "paced")


class SimulatorMetrics:
    """Where the simulator is: its phase (1 on the current one), the backfill's progress (share
    of the simulated span sent, events, wall seconds) and the newest event time sent."""

    def __init__(self, tel: Telemetry) -> None:
        self._tel = tel

    def set_phase(self, phase: str) -> None:
        for p in SIMULATOR_PHASES:
            self._tel.simulator_phase.labels(phase=p).set(1 if p == phase else 0)

    def set_backfill(self, progress: float, events: int, seconds: float) -> None:
        self._tel.simulator_backfill_progress.set(min(max(progress, 0.0), 1.0))
        self._tel.simulator_backfill_events.set(events)
        self._tel.simulator_backfill_seconds.set(seconds)

    def set_event_time(self, ms: int) -> None:
        self._tel.simulator_event_time.set(ms / 1000)


class Telemetry:
    """Every warroom metric on one registry. Most code uses the process-wide `get()`; tests make
    their own on a fresh `CollectorRegistry` (in multiprocess mode the files are shared anyway)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        version: str | None = None,
        source_limit: int = 64,
    ) -> None:
        r = registry
        self.registry = registry
        self.source_label = BoundedLabel("source", source_limit)
        self.events_consumed = Counter(
            "warroom_events_consumed",
            "Messages consumed from the event topics (each ends accepted, rejected or duplicate).",
            ["topic"],
            registry=r,
        )
        self.events_replayed = Counter(
            "warroom_events_replayed",
            "Messages read again (a replay from the last commit after a crash, a restart or a "
            "handover) and skipped: their effect is already in the state and the store.",
            ["topic"],
            registry=r,
        )
        self.events_accepted = Counter(
            "warroom_events_accepted",
            "Events that passed validation and were counted (late ones included).",
            ["stream", "source"],
            registry=r,
        )
        self.events_rejected = Counter(
            "warroom_events_rejected",
            "Events sent to the dead-letter topic, by rejection reason and source.",
            ["stream", "reason", "source"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "warroom_events_duplicate",
            "Events skipped because their event_id was already seen.",
            ["stream"],
            registry=r,
        )
        self.events_late = Counter(
            "warroom_events_late",
            "Accepted events behind the event-time watermark: late (bucket updated again) or "
            "too_late (beyond the grace period, only counted).",
            ["stream", "kind"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "warroom_consumer_lag",
            "Messages between the committed offset and the end of each assigned partition.",
            ["topic", "partition"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.batch_processing = Histogram(
            "warroom_batch_processing_seconds",
            "Time to process one consumed batch (validate, aggregate, hand to the sink).",
            registry=r,
            buckets=BATCH_SECONDS_BUCKETS,
        )
        self.end_to_end_latency = Histogram(
            "warroom_end_to_end_latency_seconds",
            "From an event's occurred_at to its write to the store.",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.sink_batch_rows = Histogram(
            "warroom_sink_batch_rows",
            "Rows per table in one store write.",
            ["backend", "table"],
            registry=r,
            buckets=BATCH_ROWS_BUCKETS,
        )
        self.sink_write_seconds = Histogram(
            "warroom_sink_write_seconds",
            "Duration of one successful store write (all tables of a flush).",
            ["backend"],
            registry=r,
            buckets=SINK_SECONDS_BUCKETS,
        )
        self.sink_write_errors = Counter(
            "warroom_sink_write_errors",
            "Store writes that failed (each is retried).",
            ["backend"],
            registry=r,
        )
        self.sink_retries = Counter(
            "warroom_sink_retries", "Store write retries.", ["backend"], registry=r
        )
        self.sink_buffered_rows = Gauge(
            "warroom_sink_buffered_rows",
            "Rows waiting to be written to the store.",
            ["backend"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.backpressure = Counter(
            "warroom_backpressure_seconds",
            "Time consumption was paused because the store could not keep up (counted while "
            "paused).",
            registry=r,
        )
        self.alerts_evaluated = Counter(
            "warroom_alerts_evaluated", "Alert rule evaluations.", ["rule"], registry=r
        )
        self.alerts_firing = Gauge(
            "warroom_alerts_firing",
            "Alerts firing now, by rule and severity.",
            ["rule", "severity"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.notifications_sent = Counter(
            "warroom_notifications_sent", "Notifications delivered.", ["channel"], registry=r
        )
        self.notifications_failed = Counter(
            "warroom_notifications_failed",
            "Notifications that failed after their retries.",
            ["channel"],
            registry=r,
        )
        self.notifications_given_up = Counter(
            "warroom_notifications_given_up",
            "Notifications marked failed for good, one per (notification, recipient): reason "
            "refused (the receiver refused it: a 4xx, a rejected address) or expired (still "
            "failing 24 h after it was queued). `warroom alerts outbox` lists them.",
            ["channel", "reason"],
            registry=r,
        )
        self.notifications_held_back = Counter(
            "warroom_notifications_held_back",
            "Notifications recorded but not sent: their stream time was older than "
            "WARROOM_ALERT_NOTIFY_MAX_AGE_SECONDS (the worker was catching up).",
            registry=r,
        )
        self.notifications_queued = Gauge(
            "warroom_notifications_queued",
            "Notifications waiting to be sent.",
            ["channel"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.line_webhook_requests = Counter(
            "warroom_line_webhook_requests",
            "LINE webhook requests by outcome (accepted, bad_signature, bad_body, busy, "
            "too_large); bad_signature answers 401 and changes nothing.",
            ["outcome"],
            registry=r,
        )
        self.line_webhook_events = Counter(
            "warroom_line_webhook_events",
            "LINE webhook events processed, by type and outcome (duplicate: a redelivery of an "
            "event already handled).",
            ["type", "outcome"],
            registry=r,
        )
        self.producer_events_sent = Counter(
            "warroom_producer_events_sent",
            "Events a producer handed to Kafka and saw acknowledged.",
            ["producer", "stream"],
            registry=r,
        )
        self.producer_send_errors = Counter(
            "warroom_producer_send_errors",
            "Events a producer failed to send.",
            ["producer"],
            registry=r,
        )
        self.build_info = Gauge(
            "warroom_build_info",
            "Always 1; the version label says which warroom is running.",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.build_info.labels(version=version or package_version()).set(1)
        # the simulator's gauges: one simulator per `warroom up`, so livemax is its value
        self.simulator_phase = Gauge(
            "warroom_simulator_phase",
            "1 on the simulator's current phase: backfill (recent history, unpaced), live "
            "(events dated now) or paced (--rate/--speedup).",
            ["phase"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.simulator_backfill_progress = Gauge(
            "warroom_simulator_backfill_progress_ratio",
            "Share of the backfill's simulated span sent so far (1 once live).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.simulator_backfill_events = Gauge(
            "warroom_simulator_backfill_events",
            "Events the simulator sent in its backfill phase.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.simulator_backfill_seconds = Gauge(
            "warroom_simulator_backfill_seconds",
            "Wall seconds the backfill phase took (so far).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.simulator_event_time = Gauge(
            "warroom_simulator_event_time_seconds",
            "occurred_at of the newest event the simulator sent (Unix seconds).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.simulator = SimulatorMetrics(self)
        self.notifier = NotifierMetrics(self)
        self._streams: dict[tuple[str, str], StreamMetrics] = {}
        self._sinks: dict[str, SinkMetrics] = {}
        self._producers: dict[str, ProducerMetrics] = {}
        self._lag_keys: set[tuple[str, int]] = set()
        if registry is not None and registry is not REGISTRY and multiprocess_dir() is None:
            ProcessCollector(registry=registry)

    def stream(self, stream: str, topic: str) -> StreamMetrics:
        """Bound counters of one stream (grievance | project) read from `topic`."""
        key = (stream, topic)
        if key not in self._streams:
            self._streams[key] = StreamMetrics(self, stream, topic)
        return self._streams[key]

    def sink(self, backend: str) -> SinkMetrics:
        if backend not in self._sinks:
            self._sinks[backend] = SinkMetrics(self, backend)
        return self._sinks[backend]

    def producer(self, name: str) -> ProducerMetrics:
        if name not in self._producers:
            self._producers[name] = ProducerMetrics(self, name)
        return self._producers[name]

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Lag of every partition this process holds now, {(topic, partition): messages}.

        Partitions it held before and not any more are cleared: removed, or set to 0 in
        multiprocess mode (the files keep every series; the new owner's value wins the max).
        """
        for topic, partition in self._lag_keys - lags.keys():
            if multiprocess_dir():
                self.consumer_lag.labels(topic=topic, partition=str(partition)).set(0)
            else:
                self.consumer_lag.remove(topic, str(partition))
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(max(lag, 0))
        self._lag_keys = set(lags)

    def line_webhook(self, what: str, kind: str, outcome: str) -> None:
        """alerts.line_webhook.WebhookCounters reports here: a request or an event."""
        if what == "request":
            self.line_webhook_requests.labels(outcome).inc()
        else:
            self.line_webhook_events.labels(kind or "unknown", outcome).inc()

    def add_backpressure(self, seconds: float) -> None:
        if seconds > 0:
            self.backpressure.inc(seconds)


_default: Telemetry | None = None


def get() -> Telemetry:
    """The process-wide metrics on the default registry, made on first use.

    In multiprocess mode, call `prepare_multiprocess_dir` (supervisor) or inherit
    PROMETHEUS_MULTIPROC_DIR (workers) before the first call.
    """
    global _default
    if _default is None:
        _default = Telemetry()
    return _default
