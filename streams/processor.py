"""The per-partition batch processor: validate, dedup, pseudonymise, aggregate, build rows.

Exactly-once results under at-least-once delivery rest on *stamps*. Every piece of state
belongs to one topic-partition and remembers the offset of the last event applied to it:
a metric bucket (its ClickHouse row's ``version``), a district's case or project book, and
the partition checkpoint (offset + watermark, written to the table changelog after the rows
it covers are in ClickHouse). After a crash the worker resumes from the committed offset
with state loaded from the changelog and ClickHouse; an event at or below a stamp was
applied already and is skipped for that piece of state. Every decision (duplicate, late,
too late) depends only on the partition's log and the restored checkpoint, so a replay
makes the same decisions and converges to the same rows.

Stamps are offsets in the partition's *log generations*: a Kafka offset plus the base of the
generation it belongs to (0 for the first). A broker that loses its log (the embedded one keeps
it in memory) starts the partition again at offset 0, below every stamp: the pipeline detects
that and starts a new generation whose base lies above every stamp so far, so the new log's
records are applied as new and every row version keeps growing (``new_generation``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from streams.contract import OUTCOME_TYPES, GrievanceEvent, ProjectEvent
from streams.deadletters import dead_letter, rejected_claims
from streams.geography import district_codes
from streams.pdpa import Pseudonymizer
from streams.reasons import Reason, Rejection
from streams.state.cases import RESOLUTION_BUCKETS, CaseBook
from streams.state.projects import ProjectBook
from streams.validation import DISTRICT_KEYS, Validator, wrong_key
from warroom.logs import DeadLetterLog

log = logging.getLogger(__name__)

__all__ = [
    "Checkpoint",
    "PartitionProcessor",
    "ProcessorConfig",
    "Record",
    "RowSink",
    "rejected_claims",
]

_MINUTE_MS: Final = 60_000
_OUTCOMES: Final = frozenset(OUTCOME_TYPES)  # the grievance types grievance_event counts
_DISTRICTS: Final = district_codes()
_LE: Final = [(float(le), str(le)) for le in RESOLUTION_BUCKETS]
_NOBODY: Final = ("", "")


class Record(Protocol):
    """What the processor needs of a Kafka record (aiokafka's ConsumerRecord fits)."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class RowSink(Protocol):
    """Where rows go (sinks.writer.Writer): tuples in sinks.tables.INSERT_COLUMNS order."""

    def add_many(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...


@dataclass
class ProcessorConfig:
    validator: Validator
    pseudonymizer: Pseudonymizer
    grace_ms: int = 3_600_000
    late_ms: int = 60_000
    dedup_window: int = 500_000
    stale_ms: int = 14 * 86_400_000
    #: forget finished cases this long after their last step (event time)
    case_retention_ms: int = 30 * 86_400_000
    #: rejected events are logged through this (rate-limited per reason, never the payload)
    dead_letter_log: DeadLetterLog = field(default_factory=lambda: DeadLetterLog(log))
    #: a partition whose watermark is within this of the wall clock is live: its clock
    #: follows wall time between events, so overdue and stale counts advance on their own
    live_ms: int = 15 * 60_000
    #: the gauge history (metric_gauges) keeps the first minute of each slot of this length;
    #: every snapshot goes to metric_gauges_latest (one row per key)
    gauge_history_s: int = 3600
    #: an accepted event more than this ahead of the partition's watermark, and dated no
    #: earlier than this before its own Kafka timestamp (a current event on a lagging
    #: partition), moves the watermark only once the next accepted event confirms the jump
    #: (0 = no bound): one stray record cannot turn a lagging stream into "too late"
    max_jump_ms: int = 0


@dataclass
class Checkpoint:
    """State of a partition as of an offset: what the changelog records and restores."""

    offset: int = -1
    watermark_ms: int = 0
    #: occurred_at of the last event whose jump was bounded, while unconfirmed (else 0)
    ahead_ms: int = 0
    #: the stamp of Kafka offset 0 in the current log generation (see the module docstring)
    base: int = 0
    #: the consumer-group generation of the assignment it was taken under (who wrote it)
    generation: int = 0

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "offset": self.offset,
                "wm": self.watermark_ms,
                "ahead": self.ahead_ms,
                "base": self.base,
                "gen": self.generation,
            }
        )

    @classmethod
    def loads(cls, raw: bytes) -> Checkpoint:
        d = orjson.loads(raw)
        return cls(d["offset"], d["wm"], d.get("ahead", 0), d.get("base", 0), d.get("gen", 0))

    @property
    def next_offset(self) -> int:
        """The Kafka offset to resume from (what is committed for this checkpoint)."""
        return self.offset - self.base + 1


@dataclass
class BatchStats:
    """Counts since the last take(): the worker turns them into Prometheus counters."""

    consumed: int = 0
    accepted: dict[str, int] = field(default_factory=dict)  # source -> n
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)  # (reason, source) -> n
    duplicate: int = 0
    late: int = 0
    too_late: int = 0
    ahead: int = 0  # events whose jump ahead of the watermark was bounded
    skipped_replay: int = 0


class PartitionProcessor:
    """All state and work for one topic-partition of one stream (grievance or project)."""

    def __init__(self, stream: str, topic: str, partition: int, cfg: ProcessorConfig) -> None:
        self.stream = stream
        self.topic = topic
        self.partition = partition
        #: the kafka_partition written on metric, quality and raw rows (backfill: its own lane)
        self.lane = partition
        self.cfg = cfg
        self.checkpoint = Checkpoint()
        #: the consumer-group generation whose assignment this processor was restored for:
        #: its checkpoints and offsets are written only while that assignment holds
        self.generation = 0
        self.offset = -1  # stamp of the last record processed
        #: added to a Kafka offset to give its stamp: the current log generation's start
        self.base = 0
        self.watermark_ms = 0
        self.ahead_ms = 0  # see Checkpoint.ahead_ms
        self.books: dict[str, Any] = {}  # district -> CaseBook | ProjectBook
        self.dirty_books: set[str] = set()
        self.buckets: dict[tuple[str, str, str, str, int], list[Any]] = {}
        self.dirty_buckets: set[tuple[str, str, str, str, int]] = set()
        self.quality: dict[tuple[str, str, str, str, int], list[Any]] = {}
        self.dirty_quality: set[tuple[str, str, str, str, int]] = set()
        #: event_id -> offset of its first occurrence in this partition
        self._dedup: dict[str, int] = {}
        self.stats = BatchStats()
        self.dead_letters: list[tuple[bytes | None, bytes]] = []  # (key, record) for the topic
        #: per district, the gauge keys of the last snapshot written to metric_gauges_latest:
        #: a key gone since gets a 0 row there
        self._gauge_keys: dict[str, set[tuple[str, str, str]]] = {}
        #: per district, what the history's current minute holds (key -> value; None: not
        #: known, after a restore)
        self._history: dict[str, dict[tuple[str, str, str], float | None]] = {}
        self._history_slot = -1
        self._history_minute = -1
        #: occurred_at of the events accepted since the last take (end-to-end latency)
        self.event_ms: list[int] = []
        self._evicted_floor = -1  # the minute evict() last dropped below

    # -- restore ------------------------------------------------------------------------------

    def restore(
        self,
        checkpoint: Checkpoint | None,
        books: dict[str, bytes],
        buckets: Iterable[tuple[str, str, str, str, int, float, int]],
        quality: Iterable[tuple[str, str, str, str, int, int, int]],
        dedup: Iterable[tuple[str, int]],
        gauge_keys: Iterable[tuple[str, str, str, str]] = (),
    ) -> None:
        """Load the state a restart resumes from (see the module docstring)."""
        if checkpoint is not None:
            self.checkpoint = checkpoint
            self.offset = checkpoint.offset
            self.watermark_ms = checkpoint.watermark_ms
            self.ahead_ms = checkpoint.ahead_ms
            self.base = checkpoint.base
        loads = CaseBook.loads if self.stream == "grievance" else ProjectBook.loads
        self.books = {district: loads(raw) for district, raw in books.items()}
        p = self.lane
        for district, metric, dim1, dim2, minute, value, version in buckets:
            self.buckets[(district, metric, dim1, dim2, minute)] = [
                district,
                metric,
                dim1,
                dim2,
                minute * 60,
                p,
                value,
                version,
            ]
        for district, outcome, reason, source, minute, count, version in quality:
            self.quality[(district, outcome, reason, source, minute)] = [
                district,
                self.stream,
                source,
                outcome,
                reason,
                minute * 60,
                p,
                count,
                version,
            ]
        for district, metric, dim1, dim2 in gauge_keys:
            self._gauge_keys.setdefault(district, set()).add((metric, dim1, dim2))
            self._history.setdefault(district, {})[(metric, dim1, dim2)] = None
        for event_id, offset in dedup:
            if self._dedup.get(event_id, offset + 1) > offset:
                self._dedup[event_id] = offset

    # -- the hot path -------------------------------------------------------------------------

    def process(self, records: Sequence[Record], sink: RowSink, now_ms: int | None = None) -> None:
        """Process records of this partition in offset order; rows go to ``sink``."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        cfg = self.cfg
        check = cfg.validator.check
        last = self.offset
        grace = cfg.grace_ms
        late_ms = cfg.late_ms
        window = cfg.dedup_window
        dedup = self._dedup
        stats = self.stats
        accepted = stats.accepted
        books = self.books
        dirty_books = self.dirty_books
        grievance = self.stream == "grievance"
        book_type: type[CaseBook] | type[ProjectBook] = CaseBook if grievance else ProjectBook
        event_type: Any = GrievanceEvent if grievance else ProjectEvent
        wm = self.watermark_ms
        max_jump = cfg.max_jump_ms
        ahead_ms = self.ahead_ms
        partition = self.lane
        raw_rows: list[tuple[Any, ...]] = []
        event_ms = self.event_ms
        bump = self._bump
        qbump = self._qbump
        buckets_get = self.buckets.get
        dirty_buckets_add = self.dirty_buckets.add
        outcomes = _OUTCOMES
        quality_get = self.quality.get
        dirty_quality_add = self.dirty_quality.add
        pseudonym_of = cfg.pseudonymizer.complainant
        table = "grievance_events" if grievance else "project_events"
        base = self.base
        ev: Any  # GrievanceEvent or ProjectEvent, by the stream
        keys = DISTRICT_KEYS
        stats.consumed += len(records)
        for rec in records:
            o = rec.offset + base
            if o <= last:
                # Already applied: covered by the restored checkpoint, or fetched again after
                # Faust re-seeked to the committed offset (recovery does that after assignment)
                stats.skipped_replay += 1
                continue
            last = o
            res = check(rec.value, now)
            if type(res) is Rejection:
                self._reject(rec, res, wm, sink, o)
                continue
            ev, ms, due_ms = res  # type: ignore[misc]
            if type(ev) is not event_type:
                wrong = Rejection(Reason.WRONG_TOPIC, "schema", ev.__struct_config__.tag)
                self._reject(rec, wrong, wm, sink, o)
                continue
            district = ev.district_code
            if rec.key != keys[district]:
                # another partition than the district's: applying it would split its state
                self._reject(rec, wrong_key(rec.key), wm, sink, o)
                continue
            source = ev.source
            eid = ev.event_id
            seen = dedup.get(eid)
            floor = wm - grace
            qminute = (ms if ms >= floor else floor) // _MINUTE_MS
            if seen is None or seen <= o - window:
                dedup[eid] = o
            elif seen != o:  # the same event_id earlier in this partition, within the window
                stats.duplicate += 1
                qbump(("", "duplicate", "", source, qminute), o)
                continue
            accepted[source] = accepted.get(source, 0) + 1
            event_ms.append(ms)
            qkey = ("", "accepted", "", source, qminute)
            q = quality_get(qkey)
            if q is None:
                qbump(qkey, o)
            elif o > q[8]:
                q[7] += 1
                q[8] = o
                dirty_quality_add(qkey)
            in_window = True
            if ms > wm:
                if (
                    max_jump
                    and wm
                    and ms - wm > max_jump
                    and ms >= rec.timestamp - max_jump
                    and not (ahead_ms and -max_jump <= ms - ahead_ms <= max_jump)
                ):
                    # a current (or future) event far ahead of a lagging clock, and the event
                    # before did not say the same: the clock stays until the next one confirms
                    # the jump. The event itself is ahead of the window: it gets its bucket.
                    ahead_ms = ms
                    stats.ahead += 1
                    qbump(("", "ahead", "", source, qminute), o)
                else:
                    wm = ms
                    ahead_ms = 0
            else:
                ahead_ms = 0
                if wm - ms > late_ms:
                    if ms < floor:
                        in_window = False
                        stats.too_late += 1
                        qbump(("", "too_late", "", source, qminute), o)
                    else:
                        stats.late += 1
                        qbump(("", "late", "", source, qminute), o)
            book: Any = books.get(district)
            if book is None:
                book = books[district] = book_type()
            apply_state = o > book.stamp
            minute = ms // _MINUTE_MS
            if grievance:
                typ = ev.type
                cat = ev.category
                if apply_state:
                    received_ms, case_due_ms = book.apply(
                        ev.grievance_id, typ, cat, ev.priority, ms, due_ms
                    )
                    book.stamp = o
                    dirty_books.add(district)
                else:
                    received_ms = case_due_ms = None
                if in_window:
                    if typ in outcomes:
                        key = (district, "grievance_event", typ, cat, minute)
                        b = buckets_get(key)
                        if b is None:
                            bump(key, 1.0, o)
                        elif o > b[7]:
                            b[6] += 1.0
                            b[7] = o
                            dirty_buckets_add(key)
                    if typ == "received":
                        bump((district, "grievance_received", cat, ev.channel, minute), 1.0, o)
                    elif typ == "resolved" and apply_state:
                        self._resolution(district, cat, ms, received_ms, case_due_ms, minute, o)
                person = ev.complainant
                kind, pseudonym = pseudonym_of(person) if person is not None else _NOBODY
                raw_rows.append(
                    (
                        eid,
                        ms,
                        district,
                        ev.subdistrict_code or "",
                        source,
                        ev.grievance_id,
                        typ,
                        cat,
                        ev.channel,
                        ev.priority,
                        due_ms,
                        ev.agency or "",
                        kind,
                        pseudonym,
                        partition,
                        o,
                    )
                )
            else:
                if apply_state:
                    book.apply(ev, ms)
                    book.stamp = o
                    dirty_books.add(district)
                if in_window:
                    bump((district, "project_report", ev.program, ev.status, minute), 1.0, o)
                raw_rows.append(
                    (
                        eid,
                        ms,
                        district,
                        ev.subdistrict_code or "",
                        source,
                        ev.project_id,
                        ev.program,
                        ev.fiscal_year,
                        ev.status,
                        float(ev.progress_pct),
                        float(ev.planned_pct),
                        float(ev.budget_allocated_thb),
                        float(ev.budget_obligated_thb),
                        float(ev.budget_disbursed_thb),
                        ev.target_households,
                        ev.reached_households,
                        ev.sdg_goals or [],
                        ev.tpmap_dimensions or [],
                        partition,
                        o,
                    )
                )
        self.offset = last
        self.watermark_ms = wm
        self.ahead_ms = ahead_ms
        if len(dedup) > window + window // 4:
            # forget event ids that fell out of the window (lookups check the window anyway);
            # at a quarter over, not twice: 2x the window on 4 partitions was 130 MB at 160 B an id
            self._dedup = {k: v for k, v in dedup.items() if v > last - window}
        if raw_rows:
            sink.add_many(table, raw_rows)

    # Buckets are kept as their row (a list in sinks.tables.INSERT_COLUMNS order) so a flush
    # turns a dirty one into a row with one tuple() call: metric_buckets ends in value, version
    # and quality_buckets in count, version (the version is the offset stamp).

    def _bump(self, key: tuple[str, str, str, str, int], v: float, o: int) -> None:
        b = self.buckets.get(key)
        if b is None:
            district, metric, dim1, dim2, minute = key
            self.buckets[key] = [district, metric, dim1, dim2, minute * 60, self.lane, v, o]
        elif o > b[7]:
            b[6] += v
            b[7] = o
        else:
            return
        self.dirty_buckets.add(key)

    def _qbump(self, key: tuple[str, str, str, str, int], o: int) -> None:
        q = self.quality.get(key)
        if q is None:
            district, outcome, reason, source, minute = key
            self.quality[key] = [
                district,
                self.stream,
                source,
                outcome,
                reason,
                minute * 60,
                self.lane,
                1,
                o,
            ]
        elif o > q[8]:
            q[7] += 1
            q[8] = o
        else:
            return
        self.dirty_quality.add(key)

    def _resolution(
        self,
        district: str,
        cat: str,
        ms: int,
        received_ms: int | None,
        due_ms: int | None,
        minute: int,
        o: int,
    ) -> None:
        bump = self._bump
        if received_ms is not None and ms >= received_ms:
            secs = (ms - received_ms) / 1000
            bump((district, "grievance_resolved_seconds_sum", cat, "", minute), secs, o)
            bump((district, "grievance_resolved_seconds_count", cat, "", minute), 1.0, o)
            for le, label in _LE:
                if secs <= le:
                    bump(
                        (district, "grievance_resolved_seconds_bucket", cat, label, minute), 1.0, o
                    )
            bump((district, "grievance_resolved_seconds_bucket", cat, "+Inf", minute), 1.0, o)
        sla = "unknown" if due_ms is None else ("met" if ms <= due_ms else "missed")
        bump((district, "grievance_resolved_sla", cat, sla, minute), 1.0, o)

    def _reject(self, rec: Record, rej: Rejection, wm: int, sink: RowSink, o: int) -> None:
        """A rejected record (stamp ``o``): counted, logged, dead-lettered with its reason."""
        dl = dead_letter(rec, rej, self.topic, self.partition, self.cfg.pseudonymizer, o)
        key = (rej.reason.value, dl.source)
        self.stats.rejected[key] = self.stats.rejected.get(key, 0) + 1
        self.cfg.dead_letter_log.rejected(
            reason=rej.reason.value,
            topic=self.topic,
            partition=self.partition,
            offset=rec.offset,
            event_id=dl.event_id,
            district=dl.claimed,  # what the event said, known or not: it helps find the sender
            source=dl.source,
            field=rej.field,
            detail=rej.detail,
            digest=dl.digest,
        )
        floor = wm - self.cfg.grace_ms
        ts = rec.timestamp if rec.timestamp is not None else 0
        self._qbump(
            (dl.district, "rejected", rej.reason.value, dl.source, max(ts, floor) // _MINUTE_MS),
            o,
        )
        sink.add_many("dead_letters", [dl.row])
        self.dead_letters.append((dl.key, dl.record))

    # -- flush cycle --------------------------------------------------------------------------

    def take_bucket_rows(self, sink: RowSink) -> int:
        """Rows for buckets changed since the last call (full values, version = stamp)."""
        buckets, quality = self.buckets, self.quality
        rows = [tuple(buckets[key]) for key in self.dirty_buckets]
        qrows = [tuple(quality[key]) for key in self.dirty_quality]
        self.dirty_buckets.clear()
        self.dirty_quality.clear()
        if rows:
            sink.add_many("metric_buckets", rows)
        if qrows:
            sink.add_many("quality_buckets", qrows)
        return len(rows) + len(qrows)

    def evict(self) -> None:
        """Drop buckets that can no longer change (older than watermark - grace).

        Called every flush cycle; it scans only when the floor moved a minute (event time):
        between scans the buckets are one cycle's events plus the grace, however fast a
        backfill of history arrives."""
        floor = (self.watermark_ms - self.cfg.grace_ms) // _MINUTE_MS
        if floor <= self._evicted_floor:
            return
        self._evicted_floor = floor
        for store, dirty in (
            (self.buckets, self.dirty_buckets),
            (self.quality, self.dirty_quality),
        ):
            old = [k for k in store if k[4] < floor and k not in dirty]
            for k in old:
                del store[k]

    def clock_ms(self, wall_ms: int) -> int:
        """Stream time: the watermark, following the wall clock while the partition is live."""
        wm = self.watermark_ms
        if wm and wall_ms - wm < self.cfg.live_ms:
            return max(wm, wall_ms)
        return wm

    def gauge_rows(self, sink: RowSink, wall_ms: int, version: int) -> int:
        """A snapshot of every district's gauges at the current stream minute: every key to
        metric_gauges_latest (its current value), and the snapshots of the first minute of
        each history slot to metric_gauges too (the states that ranges ending in the past
        read). A key gone since the previous snapshot written to a table gets a 0 row there."""
        clock = self.clock_ms(wall_ms)
        if not clock:
            return 0
        minute_s = clock // _MINUTE_MS * 60
        # the history keeps each slot's first minute: its first snapshot writes every key, the
        # later ones of that minute the keys that changed (ReplacingMergeTree per key and
        # bucket), so it holds the minute's last state. A clock that stands still (a stream
        # that is not live) stays in that minute without rewriting it every snapshot.
        slot = minute_s // self.cfg.gauge_history_s
        same_minute = minute_s == self._history_minute
        history = slot != self._history_slot or same_minute
        if history:
            self._history_slot, self._history_minute = slot, minute_s
        partition = self.partition
        grievance = self.stream == "grievance"
        retention_floor = clock - self.cfg.case_retention_ms
        rows: list[tuple[Any, ...]] = []
        kept: list[tuple[Any, ...]] = []

        def zeros(district: str, keys: Iterable[tuple[str, str, str]]) -> Iterable[tuple[Any, ...]]:
            """A 0 row at this snapshot for each of a district's keys that dropped."""
            return (
                (district, metric, dim1, dim2, minute_s, partition, 0.0, version)
                for metric, dim1, dim2 in keys
            )

        for district, book in self.books.items():
            if grievance:
                book.purge_closed(retention_floor)
                values = book.gauges(clock)
            else:
                values = book.gauges(clock, self.cfg.stale_ms)
            keys = set(values)
            current = [
                (district, metric, dim1, dim2, minute_s, partition, value, version)
                for (metric, dim1, dim2), value in values.items()
            ]
            rows.extend(current)
            rows.extend(zeros(district, self._gauge_keys.get(district, set()) - keys))
            self._gauge_keys[district] = keys
            if history:
                held = self._history.get(district, {})
                kept.extend(
                    row
                    for row in current
                    if not same_minute or held.get((row[1], row[2], row[3])) != row[6]
                )
                kept.extend(zeros(district, held.keys() - keys))
                self._history[district] = dict(values)
        # a district whose keys were restored from the store but whose book was not (its
        # changelog lost with the broker's log): nothing of it is known any more, so its keys
        # are 0 here, written once; kept, its last values stayed "current" for good
        for district in self._gauge_keys.keys() - self.books.keys():
            rows.extend(zeros(district, self._gauge_keys.pop(district)))
        if history:
            for district in self._history.keys() - self.books.keys():
                kept.extend(zeros(district, self._history.pop(district)))
        if rows:
            sink.add_many("metric_gauges_latest", rows)
        if kept:
            sink.add_many("metric_gauges", kept)
        return len(rows) + len(kept)

    def take_checkpoint(self) -> tuple[Checkpoint, dict[str, bytes]]:
        """The checkpoint as of now and the books changed since the last call, serialised."""
        books = {d: self.books[d].dumps() for d in self.dirty_books}
        self.dirty_books.clear()
        ckpt = Checkpoint(self.offset, self.watermark_ms, self.ahead_ms, self.base, self.generation)
        return ckpt, books

    @property
    def next_offset(self) -> int:
        """The Kafka offset of the next record to apply in the current log generation."""
        return self.offset - self.base + 1

    def log_restarted(self, end_offset: int) -> bool:
        """Whether the partition's log ends (``end_offset``: the next offset to be written)
        below a record already applied from it: only a new log can (the broker lost it)."""
        return self.offset >= 0 and end_offset < self.next_offset

    def new_generation(self) -> None:
        """Continue on a new log: its offset 0 gets the stamp after every stamp so far, and
        every book is written again (the new log's changelog starts empty too)."""
        self.base = self.offset + 1
        self.dirty_books.update(self.books)

    def take_stats(self) -> BatchStats:
        stats, self.stats = self.stats, BatchStats()
        return stats
