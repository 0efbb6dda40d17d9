"""History beside live: the processor of a backfill topic-partition (its own clock and lane).

`warroom replay --backfill FILE` sends old events to ``<prefix>grievance-backfill`` /
``<prefix>project-backfill``. Their partitions get processors of this class, which share the
live processor's validation, dedup, stamps and row shapes, and differ in what old events may
and may not touch:

- **Nothing is too late.** Every accepted event updates its minute bucket, however old and in
  whatever order. A bucket no longer in memory (evicted once it was stored and fell
  ``hold_ms`` behind this partition's own clock, or held by a previous run of the worker) is
  read back from the store before the batch is applied, so its full value stays exact.
- **Own lane.** Rows carry ``kafka_partition = BACKFILL_LANE + partition``: the buckets of a
  minute that live and backfill both touched are two rows, summed by every reader, never one
  row overwriting the other. Versions are offsets of the backfill partition, as on live.
- **Own clock and checkpoint.** The watermark is the latest event time seen on the backfill
  partition; it only decides eviction. The checkpoint and the case books go to their own
  changelog-backed table. Live watermarks, lateness counts, gauges and alerts never see a
  backfilled record: the pipeline writes backfill rows straight to the writer (not through
  the alert engine's tap) and keeps backfill processors out of every stream clock.
- **History only.** Backfilled events update history (metric buckets, quality counts, raw
  events, dead letters). Their cases live in books of their own, used only for resolution
  times; the live case and project books (open backlog, overdue, project gauges) and the
  alert state are not changed by old events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from streams.contract import GrievanceEvent, ProjectEvent
from streams.processor import (
    _LE,
    _MINUTE_MS,
    _NOBODY,
    _OUTCOMES,
    PartitionProcessor,
    ProcessorConfig,
    Record,
    RowSink,
    rejected_claims,
)
from streams.reasons import Reason, Rejection
from streams.state.cases import CaseBook
from streams.validation import DISTRICT_KEYS, wrong_key

__all__ = ["BACKFILL_LANE", "BackfillProcessor", "Checked"]

#: kafka_partition of backfill rows = BACKFILL_LANE + the backfill topic's partition
BACKFILL_LANE: Final = 32768
_SLA: Final = ("met", "missed", "unknown")

BucketKey = tuple[str, str, str, str, int]
#: a record with its validation result (a Rejection, or (event, occurred_ms, due_ms))
Checked = tuple[Record, Any]


class BackfillProcessor(PartitionProcessor):
    """All state and work for one partition of a backfill topic (see the module docstring)."""

    def __init__(
        self, stream: str, topic: str, partition: int, cfg: ProcessorConfig, hold_ms: int
    ) -> None:
        super().__init__(stream, topic, partition, cfg)
        self.lane = BACKFILL_LANE + partition
        self.hold_ms = hold_ms
        #: minute below which a bucket missing from memory may be in the store (-1: none)
        self.stored_below = -1
        #: set while a batch waits for buckets read back: eviction must not run meanwhile
        self.busy = False
        self._event_type: Any = GrievanceEvent if stream == "grievance" else ProjectEvent

    def restored_floor(self, minute: int) -> None:
        """After a restore that loaded the buckets from ``minute`` on: older ones are stored."""
        self.stored_below = max(self.stored_below, minute)

    # -- two steps: check (and find the buckets to read back), then apply ---------------------

    def check(self, records: Sequence[Record], now_ms: int | None = None) -> list[Checked]:
        """Validate the records not applied yet; an event of the other stream is rejected."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        check = self.cfg.validator.check
        out: list[Checked] = []
        base, last = self.base, self.offset
        for rec in records:
            if rec.offset + base <= last:
                continue
            res = check(rec.value, now)
            if not isinstance(res, Rejection):
                if type(res[0]) is not self._event_type:
                    res = Rejection(Reason.WRONG_TOPIC, "schema", res[0].__struct_config__.tag)
                elif rec.key != DISTRICT_KEYS[res[0].district_code]:
                    res = wrong_key(rec.key)
            out.append((rec, res))
        return out

    def wanted(self, checked: Iterable[Checked]) -> tuple[set[BucketKey], set[BucketKey]]:
        """Metric and quality bucket keys these records may touch that are not in memory but
        may be in the store (a superset is harmless: extra keys are just read)."""
        below = self.stored_below
        if below < 0:
            return set(), set()
        metric: set[BucketKey] = set()
        quality: set[BucketKey] = set()
        for rec, res in checked:
            if type(res) is Rejection:
                _obj, _claimed, district, source, _eid = rejected_claims(rec, res)
                minute = (rec.timestamp or 0) // _MINUTE_MS
                quality.add((district, "rejected", res.reason.value, source, minute))
                continue
            ev, ms, _due = res
            minute = ms // _MINUTE_MS
            quality.add(("", "accepted", "", ev.source, minute))
            quality.add(("", "duplicate", "", ev.source, minute))
            metric.update(_metric_keys(ev, self.stream, minute))
        return (
            {k for k in metric if k[4] < below and k not in self.buckets},
            {k for k in quality if k[4] < below and k not in self.quality},
        )

    def adopt(
        self,
        buckets: Iterable[tuple[str, str, str, str, int, float, int]],
        quality: Iterable[tuple[str, str, str, str, int, int, int]],
    ) -> None:
        """Buckets read back from the store (rows of this lane, FINAL), unless in memory."""
        lane = self.lane
        for district, metric, dim1, dim2, minute, value, version in buckets:
            self.buckets.setdefault(
                (district, metric, dim1, dim2, minute),
                [district, metric, dim1, dim2, minute * 60, lane, value, version],
            )
        for district, outcome, reason, source, minute, count, version in quality:
            self.quality.setdefault(
                (district, outcome, reason, source, minute),
                [district, self.stream, source, outcome, reason, minute * 60, lane, count, version],
            )

    def apply(self, checked: Sequence[Checked], sink: RowSink) -> None:
        """Apply checked records in offset order: every accepted event to its bucket."""
        stats = self.stats
        stats.consumed += len(checked)
        grievance = self.stream == "grievance"
        dedup = self._dedup
        window = self.cfg.dedup_window
        pseudonym_of = self.cfg.pseudonymizer.complainant
        bump = self._bump
        qbump = self._qbump
        last = self.offset
        wm = self.watermark_ms
        raw_rows: list[tuple[Any, ...]] = []
        base = self.base
        for rec, res in checked:
            o = rec.offset + base
            if o <= last:
                stats.skipped_replay += 1
                continue
            last = o
            if type(res) is Rejection:
                # wm 0: the quality row goes to the record's own minute (see wanted())
                self._reject(rec, res, 0, sink, o)
                continue
            ev, ms, due_ms = res
            district = ev.district_code
            source = ev.source
            eid = ev.event_id
            minute = ms // _MINUTE_MS
            seen = dedup.get(eid)
            if seen is None or seen <= o - window:
                dedup[eid] = o
            elif seen != o:
                stats.duplicate += 1
                qbump(("", "duplicate", "", source, minute), o)
                continue
            stats.accepted[source] = stats.accepted.get(source, 0) + 1
            qbump(("", "accepted", "", source, minute), o)
            if ms > wm:
                wm = ms
            if grievance:
                book = self.books.get(district)
                if book is None:
                    book = self.books[district] = CaseBook()
                typ, cat = ev.type, ev.category
                received_ms = case_due_ms = None
                apply_state = o > book.stamp
                if apply_state:
                    received_ms, case_due_ms = book.apply(
                        ev.grievance_id, typ, cat, ev.priority, ms, due_ms
                    )
                    book.stamp = o
                    self.dirty_books.add(district)
                if typ in _OUTCOMES:
                    bump((district, "grievance_event", typ, cat, minute), 1.0, o)
                if typ == "received":
                    bump((district, "grievance_received", cat, ev.channel, minute), 1.0, o)
                elif typ == "resolved" and apply_state:
                    self._resolution(district, cat, ms, received_ms, case_due_ms, minute, o)
                person = ev.complainant
                kind, pseudonym = pseudonym_of(person) if person is not None else _NOBODY
                raw_rows.append(_grievance_row(ev, ms, due_ms, kind, pseudonym, self.lane, o))
            else:
                bump((district, "project_report", ev.program, ev.status, minute), 1.0, o)
                raw_rows.append(_project_row(ev, ms, self.lane, o))
        self.offset = last
        self.watermark_ms = wm
        if len(dedup) > window + window // 4:
            self._dedup = {k: v for k, v in dedup.items() if v > last - window}
        if raw_rows:
            sink.add_many("grievance_events" if grievance else "project_events", raw_rows)

    def evict(self) -> None:
        """Drop stored buckets ``hold_ms`` behind this clock; forget old finished cases."""
        if self.busy or not self.watermark_ms:
            return
        floor = (self.watermark_ms - self.hold_ms) // _MINUTE_MS
        if floor <= self._evicted_floor:
            return
        dropped = unwritten = False
        for store, dirty in (
            (self.buckets, self.dirty_buckets),
            (self.quality, self.dirty_quality),
        ):
            below = [k for k in store if k[4] < floor]
            old = [k for k in below if k not in dirty]
            for k in old:
                del store[k]
            dropped = dropped or bool(old)
            unwritten = unwritten or len(old) < len(below)
        if not unwritten:
            # done with this floor; buckets not written yet are dropped at a later cycle's
            # scan (a backfill's clock stops when its file ends: without it, the last batch's
            # buckets stayed in memory until the next backfill)
            self._evicted_floor = floor
        if dropped:
            self.stored_below = max(self.stored_below, floor)
        retention_floor = self.watermark_ms - self.cfg.case_retention_ms
        for book in self.books.values():
            book.purge_closed(retention_floor)

    def gauge_rows(self, sink: RowSink, wall_ms: int, version: int) -> int:
        return 0  # history has no "now": gauges are the live partitions' business


def _metric_keys(ev: Any, stream: str, minute: int) -> list[BucketKey]:
    d = ev.district_code
    if stream != "grievance":
        return [(d, "project_report", ev.program, ev.status, minute)]
    typ, cat = ev.type, ev.category
    keys: list[BucketKey] = []
    if typ in _OUTCOMES:
        keys.append((d, "grievance_event", typ, cat, minute))
    if typ == "received":
        keys.append((d, "grievance_received", cat, ev.channel, minute))
    elif typ == "resolved":
        keys.append((d, "grievance_resolved_seconds_sum", cat, "", minute))
        keys.append((d, "grievance_resolved_seconds_count", cat, "", minute))
        keys.extend((d, "grievance_resolved_seconds_bucket", cat, lbl, minute) for _, lbl in _LE)
        keys.append((d, "grievance_resolved_seconds_bucket", cat, "+Inf", minute))
        keys.extend((d, "grievance_resolved_sla", cat, sla, minute) for sla in _SLA)
    return keys


def _grievance_row(
    ev: Any, ms: int, due_ms: Any, kind: str, pseudonym: str, lane: int, o: int
) -> tuple[Any, ...]:
    """A grievance_events row (sinks.tables.INSERT_COLUMNS order), as the live path builds it."""
    return (
        ev.event_id,
        ms,
        ev.district_code,
        ev.subdistrict_code or "",
        ev.source,
        ev.grievance_id,
        ev.type,
        ev.category,
        ev.channel,
        ev.priority,
        due_ms,
        ev.agency or "",
        kind,
        pseudonym,
        lane,
        o,
    )


def _project_row(ev: Any, ms: int, lane: int, o: int) -> tuple[Any, ...]:
    """A project_events row (sinks.tables.INSERT_COLUMNS order), as the live path builds it."""
    return (
        ev.event_id,
        ms,
        ev.district_code,
        ev.subdistrict_code or "",
        ev.source,
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
        lane,
        o,
    )
