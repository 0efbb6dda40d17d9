"""Where the gauge snapshots go: every snapshot to metric_gauges_latest (a row per key, a 0 row
for a key that dropped), and only the first minute of each history slot to metric_gauges.
Before, every snapshot of every stream minute stayed in metric_gauges (9 to 70 million rows a
day live)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.pdpa import DEV_KEY, Pseudonymizer
from streams.processor import PartitionProcessor, ProcessorConfig
from streams.validation import Validator
from tests.unit.streams.test_clock_bound import Rec, Sink

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_780_000_000_000 // HOUR * HOUR + 10 * MIN  # 10 minutes into an hour (UTC)


def _event(ms: int, district: str, gid: str, typ: str, category: str) -> bytes:
    iso = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
    event: dict[str, Any] = {
        "schema": "grievance.v1",
        "event_id": str(uuid.uuid4()),
        "occurred_at": iso,
        "district_code": district,
        "source": "test",
        "grievance_id": gid,
        "type": typ,
        "category": category,
        "channel": "hotline_1567",
        "priority": "normal",
    }
    if typ == "received":
        event["due_at"] = datetime.fromtimestamp((ms + 24 * HOUR) / 1000, UTC).isoformat()
    return orjson.dumps(event)


def _processor(history_minutes: int) -> PartitionProcessor:
    cfg = ProcessorConfig(
        validator=Validator(max_future_skew_s=3600),
        pseudonymizer=Pseudonymizer(DEV_KEY),
        gauge_history_s=history_minutes * 60,
        live_ms=2 * HOUR,  # the clock follows the wall through every tick below
    )
    return PartitionProcessor("grievance", "g", 0, cfg)


def _feed(proc: PartitionProcessor, events: list[tuple[int, str, str, str, str]]) -> None:
    base = proc.offset + 1
    recs = [
        Rec(base + i, ms, district.encode(), _event(ms, district, gid, typ, cat))
        for i, (ms, district, gid, typ, cat) in enumerate(events)
    ]
    proc.process(recs, Sink(), now_ms=events[-1][0])


def _open(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str, int], float]:
    """(district, category, bucket_s) -> grievance_open value, from the rows written."""
    return {(r[0], r[2], r[4]): r[6] for r in rows if r[1] == "grievance_open"}


def test_every_snapshot_goes_to_the_latest_table_the_slot_start_to_the_history() -> None:
    proc = _processor(history_minutes=60)
    _feed(
        proc,
        [
            (T0, "1001", "G1", "received", "land"),
            (T0 + 1000, "1001", "G2", "received", "debt"),
            (T0 + 2000, "5001", "G3", "received", "land"),
        ],
    )
    m0 = T0 // 1000  # the stream minute of the events (T0 is on a minute)
    ticks: list[Sink] = []
    # live: the clock follows the wall; ticks 5 s apart in the first minute, then later ones
    for wall in (T0 + 5_000, T0 + 50_000, T0 + 2 * MIN, T0 + 49 * MIN, T0 + 50 * MIN + 5_000):
        sink = Sink()
        proc.gauge_rows(sink, wall, version=wall)
        ticks.append(sink)
    latest = [_open(t.rows.get("metric_gauges_latest", [])) for t in ticks]
    history = [_open(t.rows.get("metric_gauges", [])) for t in ticks]
    # every snapshot: both districts' open cases, at that tick's minute
    assert latest[0] == {("1001", "land", m0): 1, ("1001", "debt", m0): 1, ("5001", "land", m0): 1}
    assert latest[2] == {("1001", "land", m0 + 120): 1, ("1001", "debt", m0 + 120): 1} | {
        ("5001", "land", m0 + 120): 1
    }
    # the history: the slot's first minute (its second snapshot there changed nothing), then
    # nothing until the next hour starts (T0 is 10 minutes into an hour: 50 minutes on)
    assert history[0] == latest[0] and history[1] == {}
    assert history[2] == {} and history[3] == {}
    assert history[4] == latest[4] and {k[2] for k in history[4]} == {m0 + 50 * 60}
    assert (m0 + 50 * 60) % 3600 == 0


def test_a_key_that_drops_gets_a_zero_in_each_table_at_its_next_write() -> None:
    proc = _processor(history_minutes=60)
    _feed(
        proc,
        [(T0, "1001", "G1", "received", "land"), (T0 + 1000, "1001", "G2", "received", "debt")],
    )
    m0 = T0 // 1000
    proc.gauge_rows(Sink(), T0 + 5_000, version=1)  # history and latest: land 1, debt 1
    _feed(proc, [(T0 + 3 * MIN, "1001", "G1", "resolved", "land")])
    later = Sink()
    proc.gauge_rows(later, T0 + 3 * MIN + 5_000, version=2)
    assert _open(later.rows["metric_gauges_latest"]) == {
        ("1001", "land", m0 + 180): 0,
        ("1001", "debt", m0 + 180): 1,
    }
    assert "metric_gauges" not in later.rows  # not a history minute
    again = Sink()
    proc.gauge_rows(again, T0 + 4 * MIN, version=3)  # the zero was written once
    assert _open(again.rows["metric_gauges_latest"]) == {("1001", "debt", m0 + 240): 1}
    slot = Sink()
    proc.gauge_rows(slot, T0 + 50 * MIN, version=4)  # next hour: the history gets its zero
    assert _open(slot.rows["metric_gauges"]) == {
        ("1001", "land", m0 + 3000): 0,
        ("1001", "debt", m0 + 3000): 1,
    }


def test_one_minute_slots_keep_every_minute() -> None:
    proc = _processor(history_minutes=1)
    _feed(proc, [(T0, "1001", "G1", "received", "land")])
    minutes = set()
    for wall in (T0 + 5_000, T0 + MIN + 5_000, T0 + 2 * MIN + 5_000):
        sink = Sink()
        proc.gauge_rows(sink, wall, version=wall)
        minutes |= {k[2] for k in _open(sink.rows["metric_gauges"])}
    assert minutes == {T0 // 1000, T0 // 1000 + 60, T0 // 1000 + 120}


def test_a_clock_that_stands_still_rewrites_only_changed_keys_into_the_history() -> None:
    """A stream that is not live keeps its clock at the watermark: its snapshots stay in one
    minute. The history gets that minute once, then only what changed in it."""
    proc = _processor(history_minutes=60)
    _feed(
        proc,
        [(T0, "1001", "G1", "received", "land"), (T0 + 1000, "1001", "G2", "received", "debt")],
    )
    m0 = T0 // 1000
    wall = T0 + 3 * HOUR  # hours after the watermark: not live, the clock stays at T0 + 1 s
    first, idle = Sink(), Sink()
    proc.gauge_rows(first, wall, version=1)
    proc.gauge_rows(idle, wall + 5_000, version=2)
    assert _open(first.rows["metric_gauges"]) == {("1001", "land", m0): 1, ("1001", "debt", m0): 1}
    assert "metric_gauges" not in idle.rows
    # the latest table still gets every key each snapshot
    assert _open(idle.rows["metric_gauges_latest"]) == _open(first.rows["metric_gauges_latest"])
    _feed(proc, [(T0 + 2000, "1001", "G1", "resolved", "land")])
    changed = Sink()
    proc.gauge_rows(changed, wall + 10_000, version=3)
    assert _open(changed.rows["metric_gauges"]) == {("1001", "land", m0): 0}


def test_stored_keys_of_a_district_without_a_book_are_zeroed_once() -> None:
    """A partition restored without some books (their changelog lost with the broker's log)
    still has those districts' gauges in the store: they go to 0 at the first snapshot, in
    both tables, instead of showing their last values as current for good."""
    proc = _processor(history_minutes=60)
    stored = [("5001", "grievance_open", "land", ""), ("5001", "grievance_open", "debt", "")]
    proc.restore(None, {}, [], [], [], gauge_keys=stored)
    _feed(proc, [(T0, "1001", "G1", "received", "land")])
    m0 = T0 // 1000
    first = Sink()
    proc.gauge_rows(first, T0 + 5_000, version=1)
    zeros = {("5001", "land", m0): 0, ("5001", "debt", m0): 0}
    assert _open(first.rows["metric_gauges_latest"]) == {("1001", "land", m0): 1} | zeros
    assert _open(first.rows["metric_gauges"]) == {("1001", "land", m0): 1} | zeros
    second = Sink()
    proc.gauge_rows(second, T0 + MIN + 5_000, version=2)
    assert _open(second.rows["metric_gauges_latest"]) == {("1001", "land", m0 + 60): 1}
