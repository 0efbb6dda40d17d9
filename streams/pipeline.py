"""The pipeline service: batches in, processors per partition, rows out, checkpoints, timers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP
from mode import Service

from sinks import rollups
from sinks.backends import StoreError
from sinks.writer import Writer
from streams import geography
from streams.app import StreamApp
from streams.backfill import BackfillProcessor
from streams.pdpa import DEV_KEY, Pseudonymizer
from streams.processor import BatchStats, Checkpoint, PartitionProcessor, ProcessorConfig
from streams.transport import register_batch_topic
from streams.validation import Validator
from warroom.drain import _true_ends
from warroom.settings import Settings
from warroom.telemetry import StreamMetrics, Telemetry

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)

_CHECKPOINT = "__checkpoint__"
_BUCKET_METRICS = {
    "grievance": (
        "grievance_received",
        "grievance_event",
        "grievance_resolved_seconds_sum",
        "grievance_resolved_seconds_count",
        "grievance_resolved_seconds_bucket",
        "grievance_resolved_sla",
    ),
    "project": ("project_report",),
}
#: the gauges a project partition writes (the rest come from grievance partitions)
_PROJECT_GAUGE = (
    "(startsWith(metric, 'project') OR (metric = 'last_event_age_seconds' AND dim1 = 'project'))"
)
_RAW_TABLE = {"grievance": "grievance_events", "project": "project_events"}
_REVOKE_TIMEOUT_S = 15.0
#: the watch loop's period: pause/resume, paused time counted, liveness while the store is away
_WATCH_S = 0.25
#: the lag gauge's period (end offsets asked from the broker: they move while paused too)
_LAG_S = 1.0
#: /readyz: behind, not paused, not recovering, and nothing applied for this long = stalled
_STALL_S = 60.0
#: how often a restore that waits for the store says so again
_STORE_WAIT_LOG_S = 10.0


def _gauge_family(row: tuple[Any, ...]) -> str:
    """The stream a gauge row (sinks.tables order) belongs to (see _PROJECT_GAUGE)."""
    metric = row[1]
    project = metric.startswith("project") or (
        metric == "last_event_age_seconds" and row[2] == "project"
    )
    return "project" if project else "grievance"


def _now_ms() -> int:
    return int(time.time() * 1000)


MetricListener = Callable[[str, list[tuple[Any, ...]]], None]
#: metric_gauges (the history) holds copies of some snapshots written to metric_gauges_latest
_TAPPED = frozenset({"metric_buckets", "metric_gauges_latest"})


class _Tap:
    """The processors' sink: rows go on to the writer; metric rows are also kept for the
    listeners (the alert engine), which get them once the flush that stored them is done."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.listeners: list[MetricListener] = []
        self.pending: list[tuple[str, list[tuple[Any, ...]]]] = []

    def add_many(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.writer.add_many(table, rows)
        if self.listeners and table in _TAPPED:
            self.pending.append((table, rows))

    def deliver(self, count: int) -> None:
        """Hand the first ``count`` pending batches (those a completed flush wrote) over."""
        ready, self.pending = self.pending[:count], self.pending[count:]
        for table, rows in ready:
            for listener in self.listeners:
                try:
                    listener(table, rows)
                except Exception:
                    log.exception("metric listener failed", extra={"table": table})


class Pipeline(Service):
    """Owns the processors of the assigned partitions and the write/checkpoint cycle.

    Cycle (every flush_interval): dirty bucket rows → writer; writer.flush() makes every row
    added so far durable. Every commit_interval the cycle is also a checkpoint: the
    processors' checkpoints and changed district books are taken *before* the flush (so they
    describe exactly the rows being flushed), and after the flush they go to the table
    changelog, the producer is flushed (dead letters too) and only then are the offsets
    committed.
    """

    def __init__(
        self,
        stream_app: StreamApp,
        settings: Settings,
        writer: Writer,
        telemetry: Telemetry,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sa = stream_app
        self.app = stream_app.app
        self.settings = settings
        self.writer = writer
        self._sink = _Tap(writer)
        self.tel = telemetry
        self._sink_metrics = telemetry.sink(writer.backend.name)
        self._record = settings.metrics == "on"
        self.health: Any = None  # warroom.health.Health, set by the worker: beaten each cycle
        key = settings.pseudonym_key or DEV_KEY
        if not settings.pseudonym_key:
            log.warning("WARROOM_PSEUDONYM_KEY is not set: using the development key")
        self.cfg = ProcessorConfig(
            validator=Validator(max_future_skew_s=settings.max_future_skew),
            pseudonymizer=Pseudonymizer(key),
            grace_ms=settings.grace_seconds * 1000,
            late_ms=settings.late_seconds * 1000,
            dedup_window=settings.dedup_window,
            stale_ms=settings.stale_days * 86_400_000,
            gauge_history_s=settings.gauge_history_minutes * 60,
            # at most the grace: one record may never push a stream's events into too late
            max_jump_ms=min(settings.clock_max_jump_seconds, settings.grace_seconds) * 1000,
        )
        #: live partitions only: the stream clocks, gauges and alerts are theirs
        self.processors: dict[TP, PartitionProcessor] = {}
        self.stream_of_topic = {t.get_topic_name(): s for s, t in self.sa.source_topics.items()}
        #: backfill partitions (streams/backfill.py): history on clocks of their own
        self.backfill: dict[TP, BackfillProcessor] = {}
        self.backfill_of_topic = {t.get_topic_name(): s for s, t in self.sa.backfill_topics.items()}
        self._table_of_topic = {
            **{t: self.sa.state_tables[s] for t, s in self.stream_of_topic.items()},
            **{t: self.sa.backfill_tables[s] for t, s in self.backfill_of_topic.items()},
        }
        self._metrics = {
            s: StreamMetrics(telemetry, s, t.get_topic_name())
            for s, t in self.sa.source_topics.items()
        }
        # backfill counts under their own stream label: live lateness counters stay live
        self._backfill_metrics = {
            s: StreamMetrics(telemetry, f"{s}-backfill", t.get_topic_name())
            for s, t in self.sa.backfill_topics.items()
        }
        self._cycle_lock = asyncio.Lock()
        self._last_checkpoint = time.monotonic()
        #: partitions paused by backpressure (store away or buffer full), since when, why
        self._paused: set[TP] = set()
        self._paused_since: float | None = None
        self._pause_reason = ""
        self._pause_counted = 0.0  # monotonic time up to which paused time is counted
        self._gauges_skipped = 0
        #: the cycle waits for the store: the flush loop is not stuck, the store is slow/away
        self._in_flush = False
        #: end offsets last asked from the broker; group offsets of partitions not restored yet
        self._ends: dict[TP, int] = {}
        self._group_offsets: dict[TP, int] = {}
        self.committed: dict[TP, int] = {}
        #: the checkpoint record last written per partition: an idle one is not written again
        self._written_checkpoints: dict[TP, bytes] = {}
        self._sent: list[Any] = []
        self._shutting_down = False
        self._cycles = 0
        self.lag_total: float | None = None
        self.last_write_ok = 0.0
        self.last_write_error = ""
        for topic in self.stream_of_topic:
            register_batch_topic(self.app, topic, self._on_batch)
        for topic in self.backfill_of_topic:
            register_batch_topic(self.app, topic, self._on_backfill_batch)
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]
        self._ready_generation = -1
        self._not_ready_logged = -1
        #: when the applied offsets last moved (or the worker had no lag): see progress_check
        self._progress_at = time.monotonic()
        self._applied_total = -1
        #: partitions being revoked -> when their fence falls: past it the group may have
        #: handed them to another worker, so nothing computed here for them is written any
        #: more (checkpoint, books, offsets, gauge snapshots): half the rebalance timeout,
        #: the time the group coordinator waits for this worker to rejoin
        self._fence_s = min(_REVOKE_TIMEOUT_S, settings.rebalance_timeout / 2)
        self._fences: dict[TP, float] = {}
        #: revocations so far: a restore that sees this move was revoked before it finished
        self._revocations = 0
        #: since when the current assignment waits for its table recovery (None: recovered)
        self._recovering_since: float | None = time.monotonic()
        #: partitions found on a new log generation -> the end offset seen then: the worker
        #: is not ready until it has applied and committed the new log up to there
        self.new_logs: dict[TP, int] = {}
        #: backfill partitions waiting for buckets read back from the store, and those tasks
        self._reading_back: set[TP] = set()
        self._read_back_tasks: set[asyncio.Task[None]] = set()

    # -- batches ------------------------------------------------------------------------------

    async def _on_rebalance_complete(self, sender: Any, **kwargs: Any) -> None:
        """Faust sends this once the tables of the new assignment are recovered (it then
        resumes the partitions and seeks them to the committed offsets). Every assigned
        partition gets its processor now, not at its first record: the gauge timer must keep
        snapshotting a partition that receives nothing after a rebalance. Backfill partitions
        too, so one on a new log (see _restart_new_logs) is found before Faust seeks it."""
        generation = self.app.consumer_generation_id
        restored: dict[TP, int] = {}
        new: list[TP] = []
        for tp in sorted(self.app.consumer.assignment()):
            if tp.topic not in self.stream_of_topic and tp.topic not in self.backfill_of_topic:
                continue
            kept = self.processors.get(tp) or self.backfill.get(tp)
            if kept is not None:
                kept.generation = generation  # still this worker's in the new generation
            else:
                new.append(tp)
        ends = await self._end_offsets(new)
        for tp in new:
            live = tp.topic in self.stream_of_topic
            proc = await self._restore_when_stored(tp, generation, ends)
            if proc is None or generation != self.app.consumer_generation_id:
                log.warning(
                    "restore of an assignment dropped: the group rebalanced meanwhile",
                    extra={
                        "generation": generation,
                        "now": self.app.consumer_generation_id,
                        "restored": proc is not None,
                    },
                )
                return  # rebalancing again
            if live:
                self.processors[tp] = proc
            else:
                assert isinstance(proc, BackfillProcessor)
                self.backfill[tp] = proc
            restored[tp] = proc.next_offset
        if restored:
            # Faust seeks to the committed offsets next. Those may be ahead of the restored
            # checkpoint (a previous owner's commit that landed after its checkpoint was read
            # here): reading from there would skip records the books never saw. The restored
            # state says where this owner continues.
            consumer: Any = self.app.consumer
            try:
                await consumer.commit_offsets(restored)
                self.committed.update(restored)
            except Exception as exc:  # the batch check (_gap) still reads from the state
                log.warning("commit of the restored offsets failed", extra={"error": str(exc)})
        await self._restart_new_logs()
        self._ready_generation = generation
        self._recovering_since = None

    async def _restart_new_logs(self) -> None:
        """Partitions found on a new log and not read from it yet start at its beginning.
        Committed here because Faust seeks to the committed offsets next, and the group's
        offset on the new broker may be one the worker committed from the old log (a seek
        beyond the new log's end waits there, skipping everything below)."""
        consumer: Any = self.app.consumer
        fresh = [
            tp
            for tp in self.new_logs
            if (p := self.processors.get(tp) or self.backfill.get(tp)) is not None
            and p.offset == p.base - 1
        ]
        if fresh:
            starts = await consumer.earliest_offsets(*fresh)
            await consumer.commit_offsets({tp: starts.get(tp) or 0 for tp in fresh})

    async def _on_batch(self, tp: TP, records: Sequence[Any]) -> None:
        if self._ready_generation != self.app.consumer_generation_id:
            # fetched after an assignment but before its table recovery finished: the state
            # to apply them to is not there yet. Rewind so they are fetched again (skipping
            # them without the rewind would lose them: the processor never goes back).
            self._not_ready_batch(tp)
            await self._rewind(tp, records[0].offset)
            return
        if await self._held(tp, records):
            return
        proc = self.processors.get(tp)
        if proc is None:
            generation = self.app.consumer_generation_id
            restored = await self._restore_when_stored(tp, generation)
            if restored is None or generation != self.app.consumer_generation_id:
                return  # rebalanced while restoring: Faust seeks to the committed offsets
            proc = self.processors[tp] = restored
        if await self._from_new_log(tp, proc, records) or await self._gap(tp, proc, records):
            return
        started = time.perf_counter()
        proc.process(records, self._sink)
        self._record_stats(self._metrics[proc.stream], proc, started)
        if self.writer.over_capacity:
            self._pause(tp)

    def _record_stats(
        self, metrics: StreamMetrics, proc: PartitionProcessor, started: float
    ) -> None:
        seconds = time.perf_counter() - started
        record_batch_stats(metrics, proc.take_stats(), seconds if self._record else None)

    async def _on_backfill_batch(self, tp: TP, records: Sequence[Any]) -> None:
        """A backfill batch: check, read back the evicted buckets it needs, apply. Rows go
        to the writer directly: the alert engine never sees history."""
        if tp in self._reading_back:
            return  # fetched while its partition waits for the store: fetched again after
        generation = self.app.consumer_generation_id
        if self._ready_generation != generation:
            self._not_ready_batch(tp)
            await self._rewind(tp, records[0].offset)
            return
        if await self._held(tp, records):
            return
        proc = self.backfill.get(tp)
        if proc is None:
            restored = await self._restore_when_stored(tp, generation)
            if restored is None or generation != self.app.consumer_generation_id:
                return
            assert isinstance(restored, BackfillProcessor)
            proc = self.backfill[tp] = restored
        if await self._from_new_log(tp, proc, records) or await self._gap(tp, proc, records):
            return
        started = time.perf_counter()
        checked = proc.check(records)
        metric_keys, quality_keys = proc.wanted(checked)
        if metric_keys or quality_keys:
            # the store answers in its own time: off the fetch loop, so live partitions keep
            # flowing; this partition is paused and sought back when its batch is applied
            proc.busy = True  # no eviction between finding what is in memory and applying
            self._reading_back.add(tp)
            self.app.consumer.pause_partitions([tp])
            task = asyncio.create_task(
                self._read_back_then_apply(tp, proc, checked, metric_keys, quality_keys)
            )
            self._read_back_tasks.add(task)
            task.add_done_callback(self._read_back_tasks.discard)
            return
        proc.apply(checked, self.writer)
        self._record_stats(self._backfill_metrics[proc.stream], proc, started)
        if self.writer.over_capacity:
            self._pause(tp)

    async def _read_back_then_apply(
        self,
        tp: TP,
        proc: BackfillProcessor,
        checked: list[Any],
        metric_keys: set[tuple[str, str, str, str, int]],
        quality_keys: set[tuple[str, str, str, str, int]],
    ) -> None:
        generation = self.app.consumer_generation_id
        started = time.perf_counter()
        try:
            buckets, quality = await self._read_back(proc, metric_keys, quality_keys)
            if generation != self.app.consumer_generation_id or self.backfill.get(tp) is not proc:
                return  # revoked meanwhile: the next owner starts from the commit
            proc.adopt(buckets, quality)
            log.info(
                "backfill buckets read back",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "wanted": len(metric_keys) + len(quality_keys),
                    "stored": len(buckets) + len(quality),
                },
            )
            proc.apply(checked, self.writer)
            self._record_stats(self._backfill_metrics[proc.stream], proc, started)
        except Exception as exc:  # the store is down or slow: the batch is fetched again
            log.warning(
                "backfill read-back failed; retrying",
                extra={"topic": tp.topic, "partition": tp.partition, "error": str(exc)},
            )
            await asyncio.sleep(1.0)
        finally:
            proc.busy = False
            self._reading_back.discard(tp)
            if not self._shutting_down and generation == self.app.consumer_generation_id:
                # whatever was fetched for it meanwhile was skipped: from the next unapplied
                await self._rewind(tp, proc.offset + 1)
                if tp not in self._paused and tp in self.app.consumer.assignment():
                    self.app.consumer.resume_partitions([tp])
        if self.writer.over_capacity:
            self._pause(tp)

    async def _read_back(
        self,
        proc: BackfillProcessor,
        metric_keys: set[tuple[str, str, str, str, int]],
        quality_keys: set[tuple[str, str, str, str, int]],
    ) -> tuple[list[Any], list[Any]]:
        """The stored rows of evicted backfill buckets, in chunks (ClickHouse's query size)."""
        buckets: list[Any] = []
        quality: list[Any] = []
        lane = proc.lane
        for chunk in _chunks(sorted(metric_keys), 500):
            keys = ", ".join(
                f"({_lit(d)}, {_lit(m)}, {_lit(a)}, {_lit(b)}, {t * 60})" for d, m, a, b, t in chunk
            )
            buckets += await self.writer.query_rows(
                "SELECT district_code, metric, dim1, dim2, intDiv(toUInt32(bucket), 60), "
                "value, version FROM metric_buckets FINAL "
                f"WHERE kafka_partition = {lane} AND {_narrowing(chunk)} "
                f"AND (district_code, metric, dim1, dim2, toUInt32(bucket)) IN ({keys})"
            )
        for chunk in _chunks(sorted(quality_keys), 500):
            keys = ", ".join(
                f"({_lit(d)}, {_lit(o)}, {_lit(r)}, {_lit(s)}, {t * 60})" for d, o, r, s, t in chunk
            )
            quality += await self.writer.query_rows(
                "SELECT district_code, outcome, reason, source, intDiv(toUInt32(bucket), 60), "
                "count, version FROM quality_buckets FINAL "
                f"WHERE stream = '{proc.stream}' AND kafka_partition = {lane} "
                f"AND {_narrowing(chunk)} "
                f"AND (district_code, outcome, reason, source, toUInt32(bucket)) IN ({keys})"
            )
        return buckets, quality

    def _not_ready_batch(self, tp: TP) -> None:
        generation = self.app.consumer_generation_id
        if self._not_ready_logged == generation:
            return
        self._not_ready_logged = generation
        log.warning(
            "batch fetched before this assignment's restore finished: fetched again later",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "generation": generation,
                "ready_generation": self._ready_generation,
            },
        )

    async def _rewind(self, tp: TP, offset: int) -> None:
        consumer: Any = self.app.consumer
        await consumer.seek_back(tp, offset)

    async def _held(self, tp: TP, records: Sequence[Any]) -> bool:
        """Backpressure before applying: a batch fetched while the store is away is not
        applied; its partition is paused and sought back to the batch, fetched again after
        the resume. With the store answering and only the buffer full, a batch already
        fetched is applied (one fetch of rows over the limit at most) and its partition
        paused after it (_on_batch): sought back, the batch fetched after each resume could
        land in the next pause every time, and consumption never moved (seen with every gauge
        snapshot alone over the limit, on a loaded machine)."""
        if self._paused_since is None and not self._hold_reason():
            return False
        if self.writer.store_away() is None:
            return False
        await self._rewind(tp, records[0].offset)
        self._pause(tp)
        return True

    def _hold_reason(self) -> str:
        """Why consumption must pause now ('' when it need not)."""
        away = self.writer.store_away()
        if away is not None:
            since, detail = away
            return f"store away since {_utc(since)}: {detail}"
        if self.writer.over_capacity:
            w = self.writer
            return (
                f"{w.buffered_rows} rows ({w.buffered_bytes / 1e6:.1f} MB) wait for the store: "
                f"limit {w.max_buffered_rows} rows / {w.max_buffered_bytes / 1e6:.1f} MB"
            )
        return ""

    def _pause(self, tp: TP) -> None:
        """Backpressure: stop fetching this partition until the store catches up."""
        self.app.consumer.pause_partitions([tp])
        self._paused.add(tp)
        if self._paused_since is None:
            self._paused_since = self._pause_counted = time.monotonic()
            self._pause_reason = self._hold_reason() or "store is behind"
            log.warning(
                "pausing consumption: %s (the worker stays in its group and keeps its "
                "partitions; it resumes by itself once the store has caught up)",
                self._pause_reason,
                extra={
                    "buffered_rows": self.writer.buffered_rows,
                    "buffered_bytes": self.writer.buffered_bytes,
                },
            )

    def _count_paused(self, now: float) -> None:
        """warroom_backpressure_seconds_total grows while paused, once, as time passes."""
        if self._paused_since is not None:
            self.tel.add_backpressure(now - self._pause_counted)
            self._pause_counted = now

    def _pause_all(self) -> None:
        """Pause every assigned input partition (again: Faust resumes partitions after a
        table recovery). Fetching stops; polling, heartbeats and the assignment go on."""
        consumer = self.app.consumer
        try:
            assigned = consumer.assignment()
        except Exception:  # consumer not started or stopping
            return
        tps = [tp for tp in assigned if tp.topic in self._table_of_topic]
        if tps:
            consumer.pause_partitions(tps)
            for tp in tps:
                self._pause(tp)

    def _resume_all(self, now: float) -> None:
        assert self._paused_since is not None
        assigned = self.app.consumer.assignment()
        # a backfill partition reading back buckets resumes itself when its batch is applied
        tps = [tp for tp in self._paused if tp in assigned and tp not in self._reading_back]
        if tps:
            self.app.consumer.resume_partitions(tps)
        paused_s = now - self._paused_since
        self._paused.clear()
        self._paused_since = None
        self._progress_at = now  # the stall clock starts again at the resume
        why = "store away" if self._pause_reason.startswith("store away") else "buffer full"
        log.info(
            "consumption resumed: the store has caught up after %.0fs paused (%s); "
            "%d gauge snapshot(s) skipped meanwhile, the next one supersedes them",
            paused_s,
            why,
            self._gauges_skipped,
            extra={
                "paused_seconds": round(paused_s, 3),
                "buffered_rows": self.writer.buffered_rows,
            },
        )
        self._gauges_skipped = 0
        self._pause_reason = ""

    @Service.task
    async def _watch(self) -> None:
        """Backpressure and liveness on a timer that never waits for the store: pause every
        input partition while the store is away or the buffer is full, resume once the store
        answers and the buffer is at its low watermark; count the paused time as it passes;
        the lag has its own timer (_lag_loop): a broker slow to answer must not hold this one."""
        while not self.should_stop:
            await self.sleep(_WATCH_S)
            now = time.monotonic()
            if self._in_flush and self.health is not None:
                # the flush loop waits for the store: a store outage is unreadiness (the
                # store check and /readyz say so), not a stuck worker to be killed
                self.health.beat()
            if self._shutting_down:
                continue
            self._count_paused(now)
            if self._hold_reason():
                self._pause_all()
            elif self._paused_since is not None and self.writer.below_low_watermark:
                self._resume_all(now)

    @Service.task
    async def _lag_loop(self) -> None:
        """The lag every second, paused or not, from the first second after a restart."""
        while not self.should_stop:
            await self.sleep(_LAG_S)
            if self._shutting_down:
                return
            await self._refresh_ends()
            self.refresh_lag()

    def consumption_check(self) -> tuple[bool, str]:
        """Readiness: not ready while consumption is paused by backpressure, with the reason."""
        since = self._paused_since
        if since is None:
            return True, "consuming"
        return False, (
            f"consumption paused for {time.monotonic() - since:.0f}s: {self._pause_reason}"
        )

    async def _restore_rows(self, sql: str) -> list[tuple[Any, ...]]:
        """A read a partition's restore needs. While the store is away (its owner died), wait
        for it instead of failing the table recovery (which stopped the worker): the watch
        keeps consumption paused and /readyz says why. When the assignment changes meanwhile,
        give up with no rows: the caller drops a restore of an older generation."""
        generation = self.app.consumer_generation_id
        waiting_since: float | None = None
        while True:
            try:
                return await self.writer.query_rows(sql)
            except StoreError as exc:
                if generation != self.app.consumer_generation_id or self._shutting_down:
                    return []
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    log.warning("partition restore waits for the store: %s", exc)
                await asyncio.sleep(1.0)

    async def _gap(self, tp: TP, proc: PartitionProcessor, records: Sequence[Any]) -> bool:
        """True when the batch starts beyond the next record this partition's state needs (the
        consumer was sought to an offset another owner committed after the checkpoint restored
        here): it is read again from the state's next record, nothing is skipped."""
        want = proc.next_offset
        first = records[0].offset
        if first <= want:
            return False
        consumer: Any = self.app.consumer
        start = (await consumer.earliest_offsets(tp)).get(tp) or 0
        if want < start:
            log.error(
                "records between this partition's checkpoint and the log's start are gone "
                "(retention?): they were never applied",
                extra={"topic": tp.topic, "partition": tp.partition, "from": want, "to": start},
            )
            return False
        log.warning(
            "fetched past this partition's restored state (an offset committed by its previous "
            "owner after the checkpoint restored here): reading again from the checkpoint",
            extra={"topic": tp.topic, "partition": tp.partition, "from": want, "fetched": first},
        )
        await self._rewind(tp, want)
        return True

    async def _end_offsets(self, tps: Sequence[TP]) -> dict[TP, int]:
        """The end offsets of partitions about to be restored, in one request: Faust asks its
        consumer thread, which answers between long polls, so one request per partition took
        1.5 s each (24 s for a worker's 16 partitions). Empty when the broker does not answer
        now: each restore then asks for its own."""
        if not tps:
            return {}
        try:
            ends = await self.app.consumer.highwaters(*tps)
        except Exception as exc:
            log.warning("end offsets unknown at restore", extra={"error": str(exc)})
            return {}
        return {tp: end for tp, end in ends.items() if end is not None}

    async def _restore_when_stored(
        self, tp: TP, generation: int, ends: Mapping[TP, int] | None = None
    ) -> PartitionProcessor | None:
        """_restore, waiting for a store that does not answer (its owner restarting) instead of
        crashing the worker; None when the assignment changed meanwhile. `ends`: end offsets
        already read for this assignment."""
        said = 0.0
        revocations = self._revocations
        while True:
            try:
                proc = await self._restore(tp, (ends or {}).get(tp))
            except StoreError as exc:
                if self._shutting_down or generation != self.app.consumer_generation_id:
                    return None
                if time.monotonic() - said >= _STORE_WAIT_LOG_S:
                    said = time.monotonic()
                    log.warning(
                        "the store does not answer: the partition's state is restored once it does",
                        extra={"topic": tp.topic, "partition": tp.partition, "error": str(exc)},
                    )
                await asyncio.sleep(1.0)
                continue
            if self._revocations != revocations:
                # revoked while restoring (the generation id moves only at the next join):
                # kept, it would carry this state into a later assignment of the partition,
                # past whatever another owner applied meanwhile
                return None
            proc.generation = generation
            return proc

    async def _restore(self, tp: TP, end: int | None = None) -> PartitionProcessor:
        """State for a newly assigned partition: changelog books + checkpoint, then buckets,
        quality counts and recent event ids from the store (only when a checkpoint exists: a
        partition without one is replayed from its start, which rebuilds everything)."""
        backfill = tp.topic in self.backfill_of_topic
        proc: PartitionProcessor
        if backfill:
            stream = self.backfill_of_topic[tp.topic]
            hold_ms = self.settings.backfill_hold_seconds * 1000
            proc = BackfillProcessor(stream, tp.topic, tp.partition, self.cfg, hold_ms)
        else:
            stream = self.stream_of_topic[tp.topic]
            proc = PartitionProcessor(stream, tp.topic, tp.partition, self.cfg)
        table = self._table_of_topic[tp.topic]
        lane = proc.lane
        suffix = f":{tp.partition}".encode()
        books: dict[str, bytes] = {}
        checkpoint: Checkpoint | None = None
        for key, value in list(table.data.items()):
            if not key.endswith(suffix):
                continue
            name = key[: -len(suffix)].decode()
            if name == _CHECKPOINT:
                checkpoint = Checkpoint.loads(value)
            else:
                books[name] = value
        if end is None:
            try:
                end = (await self.app.consumer.highwaters(tp)).get(tp)
            except Exception as exc:  # no answer now: the batch check finds a new log later
                log.warning(
                    "end offset unknown at restore", extra={"topic": tp.topic, "error": str(exc)}
                )
        checked_to = checkpoint.offset if checkpoint is not None else -1
        if checkpoint is None:
            checkpoint = await self._orphan_stamps(proc, end)
        buckets: list[Any] = []
        quality: list[Any] = []
        dedup: list[Any] = []
        if checkpoint is not None:
            keep_ms = proc.hold_ms if isinstance(proc, BackfillProcessor) else self.cfg.grace_ms
            floor_s = max(0, (checkpoint.watermark_ms - keep_ms) // 60_000 * 60)
            metrics = ", ".join(f"'{m}'" for m in _BUCKET_METRICS[stream])
            buckets = await self._restore_rows(
                "SELECT district_code, metric, dim1, dim2, intDiv(toUInt32(bucket), 60), "
                "value, version FROM metric_buckets FINAL "
                f"WHERE kafka_partition = {lane} AND metric IN ({metrics}) "
                f"AND bucket >= toDateTime({floor_s}, 'UTC')"
            )
            quality = await self._restore_rows(
                "SELECT district_code, outcome, reason, source, intDiv(toUInt32(bucket), 60), "
                "count, version FROM quality_buckets FINAL "
                f"WHERE stream = '{stream}' AND kafka_partition = {lane} "
                f"AND bucket >= toDateTime({floor_s}, 'UTC')"
            )
            low = max(0, checkpoint.offset - self.cfg.dedup_window)
            dedup = await self._restore_rows(
                f"SELECT toString(event_id), kafka_offset FROM {_RAW_TABLE[stream]} "
                f"WHERE kafka_partition = {lane} AND kafka_offset > {low}"
            )
            if isinstance(proc, BackfillProcessor):
                proc.restored_floor(floor_s // 60)
            self._touch_unchecked_hours(checked_to, buckets, quality)
        # every gauge key this partition's stream shows non-zero: the first snapshot after
        # this writes 0 for those that dropped (in both gauge tables), so a non-zero row of
        # metric_gauges_latest is always its key's current value
        family = _PROJECT_GAUGE if stream == "project" else f"NOT {_PROJECT_GAUGE}"
        gauge_keys = (
            []
            if backfill
            else await self._restore_rows(
                "SELECT district_code, metric, dim1, dim2 FROM metric_gauges_latest FINAL "
                f"WHERE kafka_partition = {tp.partition} AND {family} AND value != 0"
            )
        )
        proc.restore(checkpoint, books, buckets, quality, dedup, gauge_keys)
        if end is not None and proc.log_restarted(end):
            end = await self._true_end(tp, end)
            if proc.log_restarted(end):
                self._new_generation(tp, proc, end)
        log.info(
            "partition restored",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "checkpoint": checkpoint.offset if checkpoint else None,
                "checkpoint_generation": checkpoint.generation if checkpoint else None,
                "generation": self.app.consumer_generation_id,
                "books": len(books),
                "buckets": len(buckets),
                "event_ids": len(dedup),
            },
        )
        return proc

    def _touch_unchecked_hours(
        self, checked_to: int, buckets: Sequence[Any], quality: Sequence[Any]
    ) -> None:
        """Minute rows stamped above the checkpoint (`checked_to`; -1 for none: a log lost with
        its changelog) were written by an owner that stopped before its next checkpoint, which
        is where their hours' rollups are recomputed. The replay skips their records as
        applied, so nothing would touch those hours again: they go to the next recompute."""
        for source, rows in (("metric_buckets", buckets), ("quality_buckets", quality)):
            minutes = {r[4] for r in rows if r[6] > checked_to}
            self.writer.touch(source, rollups.touched_hours(m * 60 for m in minutes))

    async def _orphan_stamps(self, proc: PartitionProcessor, end: int | None) -> Checkpoint | None:
        """No checkpoint in the changelog: a partition never checkpointed, or a changelog
        lost with its log (a restarted embedded broker). The store tells them apart: rows
        stamped at or above the log's end offset cannot come from this log. Then the
        stamps already in the store stand for the missing checkpoint (the books are lost)."""
        if end is None:
            return None
        lane = proc.lane
        raw = _RAW_TABLE[proc.stream]
        rows = await self._restore_rows(
            f"SELECT max(kafka_offset), toUnixTimestamp64Milli(max(occurred_at)), count() "
            f"FROM {raw} WHERE kafka_partition = {lane}"
        )
        qrows = await self._restore_rows(
            "SELECT max(version), count() FROM quality_buckets "
            f"WHERE stream = '{proc.stream}' AND kafka_partition = {lane}"
        )
        if not rows or not qrows:
            return None  # reassigned while waiting for the store: this restore is dropped
        stamps = [int(r[0]) for r, n in ((rows[0], rows[0][2]), (qrows[0], qrows[0][1])) if n]
        if not stamps or max(stamps) < end:
            return None
        wm = int(rows[0][1]) if rows[0][2] else 0
        log.error(
            "the changelog has no checkpoint for a partition the store holds rows of, and the "
            "log ends below them: the broker lost its log and changelogs (restarted with "
            "memory storage?); counting continues from the stored buckets, the case and "
            "project books of the lost log are gone (gauges restart from the new log)",
            extra={"topic": proc.topic, "partition": proc.partition, "stamp": max(stamps)},
        )
        return Checkpoint(max(stamps), wm, 0, 0)

    async def _from_new_log(self, tp: TP, proc: PartitionProcessor, records: Sequence[Any]) -> bool:
        """Detect a new log under a running partition; True when the batch must be fetched
        again from the new log's start (all of a new log is new: nothing may be skipped)."""
        consumer: Any = self.app.consumer
        end = consumer.highwater(tp)
        if end is not None and proc.log_restarted(end):
            end = await self._true_end(tp, end)
            if proc.log_restarted(end):
                self._new_generation(tp, proc, end)
        if proc.base == 0 or proc.offset != proc.base - 1:
            return False  # the first log, or the new one has been read from its start
        start = (await consumer.earliest_offsets(tp)).get(tp) or 0
        if records[0].offset <= start:
            return False
        await self._rewind(tp, start)
        return True

    async def _true_end(self, tp: TP, reported: int) -> int:
        """The partition's end, read: Tansu reports its last batch's *first* offset + 1, so a
        checkpoint inside the last batch (a restore after the stream went quiet) looked like a
        log that restarted below it. Only asked when the reported end says so."""
        bootstrap = ",".join(f"{u.host}:{u.port}" for u in self.app.conf.broker)
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        part = TopicPartition(tp.topic, tp.partition)
        try:
            await reader.start()
            reader.assign([part])
            return max(reported, (await _true_ends(reader, [part])).get(part, reported))
        except Exception as exc:  # no answer: the reported end stands
            log.warning("end offset not read", extra={"topic": tp.topic, "error": str(exc)})
            return reported
        finally:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader.stop()

    def _new_generation(self, tp: TP, proc: PartitionProcessor, end: int) -> None:
        """The partition's log starts again below what was applied: a new log generation."""
        log.error(
            "NEW LOG GENERATION: the broker's log of this partition ends below the last "
            "record applied from it (the broker lost its log: restarted with memory "
            "storage?). Its records are applied as new records from offset 0; the worker "
            "reports unready until it has caught up",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "end_offset": end,
                "applied_offset": proc.next_offset - 1,
            },
        )
        proc.new_generation()
        self.committed.pop(tp, None)
        self.new_logs[tp] = end

    def new_log_check(self) -> tuple[bool, str]:
        """Readiness: unready while a partition found on a new log has not caught up."""
        for tp, end in list(self.new_logs.items()):
            if self.committed.get(tp, 0) >= end or tp not in self.app.consumer.assignment():
                del self.new_logs[tp]
        if not self.new_logs:
            return True, "no new log generation pending"
        tps = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(self.new_logs))
        return False, f"the broker lost its log: re-reading the new log of {tps}"

    def progress_check(self) -> tuple[bool, str]:
        """Readiness: a consumer that is behind must be applying records. Pauses and table
        recovery have their own checks; anything else that holds it still (a fetch that
        skipped its records once did, silently) makes the worker unready, and says so."""
        lag = self.lag_total
        if not lag or self._paused_since is not None or self._recovering_since is not None:
            return True, "applying" if lag else "caught up"
        return stall_detail(lag, time.monotonic() - self._progress_at, _STALL_S)

    def recovery_check(self) -> tuple[bool, str]:
        """Readiness: the assigned partitions' tables are recovered (Faust resumes them)."""
        since = self._recovering_since
        if since is None:
            return True, "tables recovered"
        return False, (
            f"table recovery not finished after {time.monotonic() - since:.0f}s "
            "(a changelog the broker no longer serves keeps it waiting)"
        )

    # -- the cycle ----------------------------------------------------------------------------

    @Service.task
    async def _flush_loop(self) -> None:
        interval = self.settings.flush_interval
        while not self.should_stop:
            await self.sleep(interval)
            if self.health is not None:
                self.health.beat()  # /healthz fails when this loop stops turning
            if self._shutting_down:
                return
            try:
                due = time.monotonic() - self._last_checkpoint >= self.settings.commit_interval
                await self.cycle(checkpoint=due)
            except Exception:
                log.exception("flush cycle failed; retrying next cycle")

    @Service.task
    async def _gauge_loop(self) -> None:
        """Snapshots of the per-district gauges: a timer, so overdue and stale counts move
        even when no event arrives."""
        while not self.should_stop:
            await self.sleep(self.settings.gauge_interval)
            if self._shutting_down:
                return
            if self._paused_since is not None or self.writer.over_capacity:
                # rows that do not come from consumption must not grow a full buffer: this
                # snapshot is skipped; the first one after the resume supersedes it
                self._gauges_skipped += 1
                if self._gauges_skipped == 1:
                    log.warning(
                        "gauge snapshots skipped while consumption is paused; the first "
                        "snapshot after the resume supersedes them",
                        extra={"buffered_rows": self.writer.buffered_rows},
                    )
                continue
            wall = _now_ms()
            version = time.time_ns()
            for tp, proc in list(self.processors.items()):
                if self._writable(tp, proc):
                    proc.gauge_rows(self._sink, wall, version)

    async def cycle(self, *, checkpoint: bool, only: set[TP] | None = None) -> None:
        if only is not None and self.writer.store_away() is not None:
            # revoked while the store is away: their rows cannot be made durable, so no final
            # checkpoint; waiting would hold the rebalance and drop this worker from its
            # group. The next owner replays from the last commit (stamps keep it exact).
            log.warning(
                "partitions revoked while the store is away: no final checkpoint; the next "
                "owner replays them from the last commit",
                extra={"partitions": len(only)},
            )
            return
        async with self._cycle_lock:
            procs = {
                tp: p
                for tp, p in (*self.processors.items(), *self.backfill.items())
                if only is None or tp in only
            }
            for proc in procs.values():
                # backfill rows bypass the tap: the alert engine sees live rows only
                proc.take_bucket_rows(
                    self.writer if isinstance(proc, BackfillProcessor) else self._sink
                )
            for proc in procs.values():
                messages, proc.dead_letters = proc.dead_letters, []
                for key, value in messages:
                    self._sent.append(
                        await self.app.producer.send(
                            self.sa.topics.dead_letter, key, value, None, None, None
                        )
                    )
            taken = {tp: p.take_checkpoint() for tp, p in procs.items()} if checkpoint else {}
            flushed = len(self._sink.pending)
            written: list[int] = []
            for proc in procs.values():
                written.extend(proc.event_ms)
                proc.event_ms = []
            self._in_flush = True
            try:
                # the rollups of the written hours are recomputed before offsets are committed
                await self.writer.flush(rollups=checkpoint)
            finally:
                self._in_flush = False
            self.last_write_ok = time.monotonic()
            if written and self._record:
                now_s = time.time()
                self._sink_metrics.observe_latencies([now_s - ms / 1000 for ms in written])
            # the metric rows of this flush are stored: the alert engine may read them now
            self._sink.deliver(flushed)
            if checkpoint:
                # never cut short by a revocation's bound: books without the checkpoint after
                # them would end the changelog partition (see _checkpoint)
                await asyncio.shield(self._checkpoint(taken, procs))
                self._last_checkpoint = time.monotonic()
            self._cycles += 1
            self.refresh_lag()
            # every cycle: buckets of a fast backfill of history piled up between scans
            # (256 000 in memory at 60 days × 1,000 cases/day, bench/history.py); evict()
            # scans only when its event-time floor moved
            for proc in procs.values():
                proc.evict()

    def _writable(self, tp: TP, proc: PartitionProcessor) -> bool:
        """The fence: whether what ``proc`` computed for ``tp`` may still be written. Only the
        partition's processor of the current group generation writes, and a partition being
        revoked only until its fence falls (then the group may have handed it over: the next
        owner restores from the changelog and the commit, which must not move under it)."""
        fence = self._fences.get(tp)
        if fence is not None and time.monotonic() >= fence:
            return False
        current = self.processors.get(tp) or self.backfill.get(tp)
        return current is proc and proc.generation == self.app.consumer_generation_id

    async def _checkpoint(
        self,
        taken: dict[TP, tuple[Checkpoint, dict[str, bytes]]],
        procs: dict[TP, PartitionProcessor],
    ) -> None:
        """Books, then the checkpoint records, then the offsets, each step acknowledged first.

        The checkpoint record of a changelog partition is sent alone, after the books are
        acknowledged, so it is always a batch of its own at the end of the partition: Tansu
        reports a partition's end as the last batch's *first* offset + 1, and Faust's table
        recovery reads only up to that end. A checkpoint sharing a batch would be lost in
        recovery while its offsets were already committed.

        Fenced (see _writable): a partition handed over meanwhile gets none of it, and its
        offsets are committed only while it is still this worker's.
        """
        offsets: dict[TP, int] = {}
        send = self.app.producer.send
        checkpoints: list[tuple[Any, str, TP, bytes, bytes]] = []
        fenced: set[TP] = set()
        for tp, (ckpt, books) in taken.items():
            if ckpt.offset < 0:
                continue
            if not self._writable(tp, procs[tp]):
                fenced.add(tp)
                procs[tp].dirty_books.update(books)  # unwritten: due again if it stays here
                continue
            table = self._table_of_topic[tp.topic]
            changelog = table.changelog_topic.get_topic_name()
            for district, raw in books.items():
                key = f"{district}:{tp.partition}".encode()
                table.data[key] = raw
                self._sent.append(await send(changelog, key, raw, tp.partition, None, None))
            key = f"{_CHECKPOINT}:{tp.partition}".encode()
            raw = ckpt.dumps()
            # after books always: the checkpoint must stay the partition's last batch
            if books or raw != self._written_checkpoints.get(tp):
                checkpoints.append((table, changelog, tp, key, raw))
            if self.committed.get(tp) != ckpt.next_offset:
                offsets[tp] = ckpt.next_offset
        # dead letters and books acknowledged before any checkpoint is sent ...
        sent, self._sent = self._sent, []
        await asyncio.gather(*sent)
        last = []
        for table, changelog, tp, key, raw in checkpoints:
            # not fenced here: books sent are always followed by their checkpoint, which must
            # stay the changelog partition's last batch (a late one is harmless: stamps)
            table.data[key] = raw
            last.append(await send(changelog, key, raw, tp.partition, None, None))
        # ... and checkpoints acknowledged before any offset moves
        await asyncio.gather(*last)
        for _table, _changelog, tp, _key, raw in checkpoints:
            self._written_checkpoints[tp] = raw
        for tp in list(offsets):
            if tp in fenced or not self._writable(tp, procs[tp]):
                fenced.add(tp)
                del offsets[tp]
        if fenced:
            log.warning(
                "checkpoint not written for partitions handed over meanwhile (their fence "
                "fell): the next owner continues from the last checkpoint and commit",
                extra={"partitions": _names(fenced)},
            )
        if offsets:
            consumer: Any = self.app.consumer  # streams.transport.Consumer
            await consumer.commit_offsets(offsets)
            self.committed.update(offsets)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        """Before partitions move: make their rows durable, checkpoint, commit, forget them.

        Fenced: the group coordinator waits about the rebalance timeout for this worker to
        rejoin, then hands the partitions to another. Past half of it (the fence) nothing of
        these partitions is written any more — no checkpoint, book, offset or gauge snapshot —
        so a new owner never restores under a write of the old one."""
        self._revocations += 1  # a restore running now is dropped (see _restore_when_stored)
        if self._recovering_since is None:
            self._recovering_since = time.monotonic()
        mine = {tp for tp in revoked if tp in self.processors or tp in self.backfill}
        if not mine:
            return
        started = time.monotonic()
        for tp in mine:
            self._fences[tp] = started + self._fence_s
        try:
            # bounded: a slow store or a broker that restarted empty may never let it finish,
            # and an unbounded wait here holds the whole rebalance. Stamps make the replay
            # from the last commit that follows exact.
            await asyncio.wait_for(self.cycle(checkpoint=True, only=mine), self._fence_s)
            took_ms = round(1000 * (time.monotonic() - started))
            log.info(
                "partitions handed over: rows, checkpoints and offsets written",
                extra={"partitions": len(mine), "took_ms": took_ms},
            )
        except TimeoutError:  # expected with a slow store: nothing is lost, only replayed
            log.warning(
                "partitions handed over without their final checkpoint: not written within "
                "the fence, after which the group may give them to another worker; nothing "
                "more of them is written here, the next owner replays from the last commit",
                extra={"partitions": _names(mine), "fence_s": self._fence_s},
            )
        finally:
            await self._drop_unwritten_snapshots(mine, started)
            for tp in mine:
                self._written_checkpoints.pop(tp, None)
                self.processors.pop(tp, None)
                self.backfill.pop(tp, None)
                self._paused.discard(tp)
                self._fences.pop(tp, None)

    async def _drop_unwritten_snapshots(self, revoked: set[TP], started: float) -> None:
        """Gauge snapshots of revoked partitions not written yet (waiting, or held in a write
        retried while the store is away) would land after the next owner restored, which
        seeds the keys it must zero from what is stored then: a key it never held would keep
        this owner's value for good. They are dropped, and a write attempt running now is
        waited for until the fence falls."""
        streams = self.stream_of_topic
        gauged = {(streams[tp.topic], tp.partition) for tp in revoked if tp in self.processors}
        if not gauged:
            return
        dropped, settled = await self.writer.fence(
            ("metric_gauges_latest", "metric_gauges"),
            lambda row: (_gauge_family(row), row[5]) in gauged,
            max(0.0, started + self._fence_s - time.monotonic()),
        )
        if dropped:
            log.info(
                "unwritten gauge snapshots of handed-over partitions dropped: the next owner "
                "writes its own",
                extra={"partitions": _names(revoked), "rows": dropped},
            )
        if not settled:
            log.warning(
                "a store write holding gauge snapshots of handed-over partitions was still "
                "running when their fence fell: if it lands after the next owner's restore, a "
                "gauge key that owner does not hold shows this worker's value until it "
                "writes that key",
                extra={"partitions": _names(revoked)},
            )

    async def on_start(self) -> None:
        await self.writer.start()
        self.app.on_before_shutdown.connect(self._on_app_shutdown)  # type: ignore[arg-type]

    async def _on_app_shutdown(self, sender: Any, **kwargs: Any) -> None:
        """Clean shutdown: Faust has stopped fetching but the producer and the consumer's
        group membership are still alive, so rows, changelog and offsets can all be settled."""
        self._shutting_down = True
        for task in list(self._read_back_tasks):
            task.cancel()  # its batch is not applied: the next start fetches it again
        away = self.writer.store_away()
        if away is not None:
            log.error(
                "stopping while the store is away (since %s): the rows not written are not "
                "checkpointed; the next start replays them from the last commit",
                _utc(away[0]),
                extra={"buffered_rows": self.writer.buffered_rows},
            )
            return
        try:
            if self.processors or self.backfill:
                await self.cycle(checkpoint=True)
            # (no partitions left: their revocation flushed and checkpointed them already)
            log.info("final flush and checkpoint done")
        except Exception:
            log.exception("final flush failed: the next start replays from the last commit")

    async def on_shutdown(self) -> None:
        await self.writer.close(timeout=30)

    # -- for the alert engine and the web endpoints ------------------------------------------

    def add_metric_listener(self, listener: MetricListener) -> None:
        """``listener(table, rows)`` gets every metric_buckets / metric_gauges_latest row (in
        sinks.tables.INSERT_COLUMNS order) once the flush that wrote it has completed."""
        self._sink.listeners.append(listener)

    def stream_clock_ms(self, wall_ms: int | None = None) -> int:
        """The latest stream time over this worker's partitions (0 before any event)."""
        wall = _now_ms() if wall_ms is None else wall_ms
        return max((p.clock_ms(wall) for p in self.processors.values()), default=0)

    def district_clocks(self, wall_ms: int | None = None) -> dict[str, int]:
        """Each district's own stream time: the clock of the partitions its events arrive on
        (the later of its grievance and project partitions)."""
        wall = _now_ms() if wall_ms is None else wall_ms
        clocks: dict[str, int] = {}
        for proc in self.processors.values():
            clock = proc.clock_ms(wall)
            for district in proc.books:
                if clock > clocks.get(district, 0):
                    clocks[district] = clock
        return clocks

    async def _refresh_ends(self) -> None:
        """Ask the broker for the end offsets of the held partitions (a paused partition's
        fetch highwater stops moving), and, for partitions not restored yet, the group's
        committed offsets (bounded: the lag is a gauge, not a reason to wait)."""
        consumer: Any = self.app.consumer
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic in self._table_of_topic]
            if not tps:
                return
            ends = await asyncio.wait_for(consumer.highwaters(*tps), 2.0)
            self._ends = {tp: int(end) for tp, end in ends.items() if end is not None}
            unknown = [
                tp
                for tp in tps
                if tp not in self.processors
                and tp not in self.backfill
                and tp not in self._group_offsets
            ]
            if unknown:
                aio = consumer._ensure_consumer()
                for tp in unknown:
                    committed = await asyncio.wait_for(
                        consumer.call_thread(aio.committed, TopicPartition(tp.topic, tp.partition)),
                        2.0,
                    )
                    if committed is not None:
                        self._group_offsets[tp] = int(committed)
        except Exception as exc:  # no answer now: the next refresh asks again
            log.debug("end offsets not refreshed: %r", exc)

    def _applied(self, tp: TP) -> int | None:
        """The next offset this worker applies on tp: its processor's position (restored from
        the checkpoint), else the group's committed offset, else unknown."""
        proc = self.processors.get(tp) or self.backfill.get(tp)
        if proc is not None:
            return proc.next_offset
        return self._group_offsets.get(tp, self.committed.get(tp))

    def refresh_lag(self) -> None:
        """Consumer lag per partition held (warroom_consumer_lag; others cleared) and in total
        (/readyz): end offset - the position the worker has applied."""
        consumer = self.app.consumer
        lags: dict[tuple[str, int], int] = {}
        live: int | None = 0
        applied_total = 0
        try:
            assignment = consumer.assignment()
        except Exception:  # consumer stopping or not started: keep the last values
            return
        for tp in assignment:
            if tp.topic not in self.stream_of_topic and tp.topic not in self.backfill_of_topic:
                continue
            ends = [e for e in (self._ends.get(tp), consumer.highwater(tp)) if e is not None]
            applied = self._applied(tp)
            applied_total += applied or 0
            if not ends or applied is None:
                if tp.topic in self.stream_of_topic:
                    live = None  # a live partition's lag is not known yet: neither is the total
                continue
            lag = lags[(tp.topic, tp.partition)] = max(0, max(ends) - applied)
            if tp.topic in self.stream_of_topic and live is not None:
                live += lag
        for tp in list(self._group_offsets):
            if tp not in assignment:
                del self._group_offsets[tp]
        self.tel.set_lag(lags)
        # a backfill in progress is not a reason to call the worker unready
        self.lag_total = float(live) if lags and live is not None else None
        if applied_total != self._applied_total or not self.lag_total:
            self._applied_total = applied_total
            self._progress_at = time.monotonic()

    # -- views for the web endpoints ----------------------------------------------------------

    def top_districts(self, n: int = 10) -> list[dict[str, Any]]:
        """Districts with the most events applied since this worker started."""
        totals: dict[str, int] = {}
        for proc in self.processors.values():
            for district, book in proc.books.items():
                totals[district] = totals.get(district, 0) + book.events
        out = []
        for code, count in sorted(totals.items(), key=lambda kv: -kv[1])[:n]:
            d = geography.district(code)
            p = geography.province(code[:2])
            out.append(
                {
                    "district_code": code,
                    "name_th": d.name_th if d else code,
                    "province_th": p.name_th if p else "",
                    "events": count,
                }
            )
        return out


def _utc(wall_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall_s))


def _names(tps: set[TP]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _narrowing(keys: list[tuple[str, str, str, str, int]]) -> str:
    """Conditions the store can prune by (monthly partitions, district key) before FINAL."""
    lo = min(k[4] for k in keys) * 60
    hi = max(k[4] for k in keys) * 60
    districts = ", ".join(_lit(d) for d in sorted({k[0] for k in keys}))
    return (
        f"bucket BETWEEN toDateTime({lo}, 'UTC') AND toDateTime({hi}, 'UTC') "
        f"AND district_code IN ({districts})"
    )


def _lit(text: str) -> str:
    """A ClickHouse string literal (sources are free text from the events)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def record_batch_stats(metrics: StreamMetrics, stats: BatchStats, seconds: float | None) -> None:
    """Count a processed batch; with `seconds` None only the consumed count (which
    bench/pipeline.py reads). A record read again and skipped at its stamp (fetched again
    after a restart or a handover) was counted as consumed the first time: it counts as
    replayed, so consumed stays accepted + rejected + duplicate."""
    consumed = stats.consumed - stats.skipped_replay
    if seconds is None:
        metrics.record_batch(consumed=consumed, replayed=stats.skipped_replay)
        return
    metrics.record_batch(
        accepted_by_source=stats.accepted,
        rejected_by_reason_source=stats.rejected,
        duplicates=stats.duplicate,
        late=stats.late,
        too_late=stats.too_late,
        consumed=consumed,
        replayed=stats.skipped_replay,
        seconds=seconds,
    )


def stall_detail(lag: float, still_s: float, limit_s: float) -> tuple[bool, str]:
    """The progress check's verdict for a consumer `lag` records behind whose applied offsets
    have not moved for `still_s` seconds."""
    if still_s <= limit_s:
        return True, "applying"
    return False, (
        f"{lag:.0f} records behind and none applied for {still_s:.0f}s: the consumer is "
        "stalled; restart the worker (it continues from its last checkpoint)"
    )
