"""A batch fetched again after a restart or a handover: its records are skipped at their stamp
and counted as replayed, so warroom_events_consumed_total stays accepted + rejected +
duplicate (the README's 'nothing dropped silently' invariant)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.pipeline import record_batch_stats
from streams.processor import PartitionProcessor
from tests.unit.streams.test_clock_bound import NOW, T0, Rec, Sink, cfg, received
from warroom.telemetry import Telemetry


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(
        s.value
        for m in reg.collect()
        for s in m.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_a_batch_fetched_again_counts_as_replayed_not_consumed() -> None:
    reg = CollectorRegistry()
    metrics = Telemetry(reg).stream("grievance", "g")
    proc = PartitionProcessor("grievance", "g", 0, cfg(0))
    recs = [Rec(i, NOW, b"1004", received(T0 + i * 1000)) for i in range(8)]
    bad = Rec(8, NOW, b"1004", b"{not json")
    proc.process([*recs[:5]], Sink(), now_ms=NOW)
    record_batch_stats(metrics, proc.take_stats(), 0.001)
    # the consumer sought back to offset 2: 2..4 again, then 5..7 and a bad one for the first time
    proc.process([*recs[2:], bad], Sink(), now_ms=NOW)
    record_batch_stats(metrics, proc.take_stats(), 0.001)
    assert value(reg, "warroom_events_replayed_total", topic="g") == 3
    consumed = value(reg, "warroom_events_consumed_total", topic="g")
    accepted = value(reg, "warroom_events_accepted_total")
    rejected = value(reg, "warroom_events_rejected_total")
    assert (consumed, accepted, rejected) == (9, 8, 1)


def test_the_consumed_only_mode_skips_replays_too() -> None:
    """bench/pipeline.py's mode (no per-outcome counters) reads consumed as 'records done'."""
    reg = CollectorRegistry()
    metrics = Telemetry(reg).stream("grievance", "g")
    proc = PartitionProcessor("grievance", "g", 0, cfg(0))
    recs = [Rec(i, NOW, b"1004", received(T0 + i * 1000)) for i in range(4)]
    proc.process(recs, Sink(), now_ms=NOW)
    proc.process(recs, Sink(), now_ms=NOW)
    record_batch_stats(metrics, proc.take_stats(), None)
    assert value(reg, "warroom_events_consumed_total", topic="g") == 4
    assert value(reg, "warroom_events_replayed_total", topic="g") == 4
