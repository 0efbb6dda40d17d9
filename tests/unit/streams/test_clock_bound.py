"""The bound on one record's jump of a live clock, and the backfill processor's own clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from streams.backfill import BACKFILL_LANE, BackfillProcessor
from streams.pdpa import DEV_KEY, Pseudonymizer
from streams.processor import Checkpoint, PartitionProcessor, ProcessorConfig
from streams.validation import Validator

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_780_000_000_000  # a day in 2026: the lagging partition's clock
NOW = T0 + 90 * 24 * HOUR  # three months later: the wall clock


@dataclass
class Rec:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class Sink:
    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}

    def add_many(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.rows.setdefault(table, []).extend(rows)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def received(ms: int, district: str = "1004") -> bytes:
    return orjson.dumps(
        {
            "schema": "grievance.v1",
            "event_id": str(uuid.uuid4()),
            "occurred_at": _iso(ms),
            "district_code": district,
            "source": "test",
            "grievance_id": f"G-x{uuid.uuid4().hex[:8]}",
            "type": "received",
            "category": "debt",
            "channel": "hotline_1567",
            "priority": "normal",
            "due_at": _iso(ms + 24 * HOUR),
        }
    )


def cfg(max_jump_ms: int) -> ProcessorConfig:
    return ProcessorConfig(
        validator=Validator(max_future_skew_s=3600),
        pseudonymizer=Pseudonymizer(DEV_KEY),
        grace_ms=HOUR,
        late_ms=MIN,
        max_jump_ms=max_jump_ms,
    )


def run(proc: PartitionProcessor, times: list[int], first_offset: int = 0) -> Sink:
    sink = Sink()
    recs = [Rec(first_offset + i, NOW, b"1004", received(t)) for i, t in enumerate(times)]
    proc.process(recs, sink, now_ms=NOW)
    return sink


def lagging_with_stray(n_after: int) -> list[int]:
    """A partition three months behind (one event a second), one event dated now, then more."""
    before = [T0 + i * 1000 for i in range(100)]
    after = [T0 + (100 + i) * 1000 for i in range(n_after)]
    return [*before, NOW, *after]


def test_unbounded_clock_turns_the_lagging_stream_too_late() -> None:
    """The storm of issue 10, reproduced with the bound off (max_jump 0)."""
    proc = PartitionProcessor("grievance", "g", 0, cfg(0))
    run(proc, lagging_with_stray(500))
    stats = proc.take_stats()
    assert stats.too_late == 500
    assert proc.watermark_ms == NOW


def test_one_stray_record_does_not_move_a_lagging_clock() -> None:
    proc = PartitionProcessor("grievance", "g", 0, cfg(HOUR))
    sink = run(proc, lagging_with_stray(500))
    stats = proc.take_stats()
    assert (stats.too_late, stats.late, stats.ahead) == (0, 0, 1)
    received = sum(b[6] for b in proc.buckets.values() if b[1] == "grievance_received")
    assert received == 601  # every event, the stray one too
    assert proc.watermark_ms == T0 + 599_000
    assert len(sink.rows["grievance_events"]) == 601
    ahead = [q for q in proc.quality.values() if q[3] == "ahead"]
    assert [q[7] for q in ahead] == [1] and ahead[0][5] == NOW // MIN * 60


def test_an_old_record_far_ahead_still_moves_the_clock() -> None:
    """The bound is for current events on a lagging partition: a replayed history (every
    event long before it was sent) keeps the plain watermark rule, gaps and all."""
    proc = PartitionProcessor("grievance", "g", 0, cfg(HOUR))
    run(proc, [T0, T0 + 5 * HOUR, T0 + 5 * HOUR - 2 * HOUR])
    stats = proc.take_stats()
    assert (stats.ahead, stats.too_late) == (0, 1)
    assert proc.watermark_ms == T0 + 5 * HOUR


def test_a_confirmed_jump_moves_the_clock() -> None:
    """Two events in a row far ahead and close together: the stream really moved."""
    proc = PartitionProcessor("grievance", "g", 0, cfg(HOUR))
    run(proc, [T0, T0 + 1000, NOW, NOW + 5000, NOW + 6000])
    stats = proc.take_stats()
    assert stats.ahead == 1
    assert proc.watermark_ms == NOW + 6000


def test_the_pending_jump_survives_a_checkpoint() -> None:
    c = cfg(HOUR)
    proc = PartitionProcessor("grievance", "g", 0, c)
    run(proc, [T0, NOW])
    ckpt, _ = proc.take_checkpoint()
    again = PartitionProcessor("grievance", "g", 0, c)
    again.restore(Checkpoint.loads(ckpt.dumps()), {}, [], [], [])
    run(again, [NOW + 1000], first_offset=2)
    assert again.watermark_ms == NOW + 1000
    assert again.take_stats().ahead == 0


def test_backfill_counts_every_old_event_and_reads_back_evicted_buckets() -> None:
    c = cfg(30 * MIN)
    proc = BackfillProcessor("grievance", "gb", 1, c, hold_ms=HOUR)
    # two days of history, then an event three hours older than the clock
    times = [T0 + i * MIN for i in range(2 * 24 * 60)] + [T0 + 47 * HOUR - 3 * HOUR]
    recs = [Rec(i, NOW, b"1004", received(t)) for i, t in enumerate(times)]
    sink = Sink()
    proc.apply(proc.check(recs[:-1], NOW), sink)
    proc.take_bucket_rows(sink)
    proc.evict()
    stored = {(r[0], r[1], r[2], r[3], r[4] // 60): r for r in sink.rows["metric_buckets"]}
    assert proc.stored_below > 0
    checked = proc.check(recs[-1:], NOW)
    metric_keys, _quality_keys = proc.wanted(checked)
    assert len(metric_keys) == 1
    (key,) = metric_keys
    row = stored[key]
    proc.adopt([(*key, row[6], row[7])], [])
    proc.apply(checked, sink)
    assert proc.buckets[key][6] == 2.0  # the stored 1 and this event
    assert proc.take_stats().too_late == 0
    assert {r[5] for r in sink.rows["metric_buckets"]} == {BACKFILL_LANE + 1}
    assert {r[-2] for r in sink.rows["grievance_events"]} == {BACKFILL_LANE + 1}
    assert proc.gauge_rows(sink, NOW, 1) == 0


def test_backfill_buckets_written_after_the_floor_moved_are_evicted_at_a_later_cycle() -> None:
    """The floor moved while the buckets below it were not written yet: they stay only until a
    later cycle finds them written, though the floor does not move again (a backfill's clock
    stops when its file ends)."""
    proc = BackfillProcessor("grievance", "gb", 1, cfg(30 * MIN), hold_ms=HOUR)
    times = [T0 + i * MIN for i in range(3 * 60)]
    recs = [Rec(i, NOW, b"1004", received(t)) for i, t in enumerate(times)]
    proc.apply(proc.check(recs, NOW), Sink())
    floor = (times[-1] - HOUR) // MIN
    below = [k for k in proc.buckets if k[4] < floor]
    assert below
    proc.evict()  # nothing written yet: nothing dropped
    assert all(k in proc.buckets for k in below) and proc.stored_below == -1
    proc.take_bucket_rows(Sink())  # written
    proc.evict()  # the same floor
    assert not any(k in proc.buckets for k in below)
    assert proc.stored_below == floor


def test_read_back_literals_are_quoted() -> None:
    from streams.pipeline import _lit, _narrowing

    assert _lit("it's a \\ source") == "'it\\'s a \\\\ source'"
    cond = _narrowing([("1004", "accepted", "", "x", 10), ("", "accepted", "", "y", 12)])
    assert "BETWEEN toDateTime(600, 'UTC') AND toDateTime(720, 'UTC')" in cond
    assert "district_code IN ('', '1004')" in cond


def test_settings_of_the_bound_and_the_backfill_hold() -> None:
    import pytest

    from warroom.settings import SettingsError, load

    s = load({"WARROOM_CLOCK_MAX_JUMP_SECONDS": "0", "WARROOM_BACKFILL_HOLD_SECONDS": "600"})
    assert (s.clock_max_jump_seconds, s.backfill_hold_seconds) == (0, 600)
    with pytest.raises(SettingsError, match="WARROOM_CLOCK_MAX_JUMP_SECONDS"):
        load({"WARROOM_CLOCK_MAX_JUMP_SECONDS": "-1"})
    with pytest.raises(SettingsError, match="WARROOM_BACKFILL_HOLD_SECONDS"):
        load({"WARROOM_BACKFILL_HOLD_SECONDS": "10"})
