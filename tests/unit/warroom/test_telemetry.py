"""The metric objects: exact names and labels of issue 4, per-batch recording, bounded labels."""

from __future__ import annotations

import importlib.metadata
import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from warroom.telemetry import (
    LATENCY_BUCKETS,
    BoundedLabel,
    Telemetry,
    observe_many,
    observe_repeated,
)

# (name as exposed, type, label names) — copied from the common brief, the fixed contract
CONTRACT = {
    "warroom_events_consumed": ("counter", {"topic"}),
    "warroom_events_accepted": ("counter", {"stream", "source"}),
    "warroom_events_rejected": ("counter", {"stream", "reason", "source"}),
    "warroom_events_duplicate": ("counter", {"stream"}),
    "warroom_events_late": ("counter", {"stream", "kind"}),
    "warroom_consumer_lag": ("gauge", {"topic", "partition"}),
    "warroom_batch_processing_seconds": ("histogram", set()),
    "warroom_end_to_end_latency_seconds": ("histogram", set()),
    "warroom_sink_batch_rows": ("histogram", {"backend", "table"}),
    "warroom_sink_write_seconds": ("histogram", {"backend"}),
    "warroom_sink_write_errors": ("counter", {"backend"}),
    "warroom_sink_retries": ("counter", {"backend"}),
    "warroom_sink_buffered_rows": ("gauge", {"backend"}),
    "warroom_backpressure_seconds": ("counter", set()),
    "warroom_alerts_evaluated": ("counter", {"rule"}),
    "warroom_alerts_firing": ("gauge", {"rule", "severity"}),
    "warroom_notifications_sent": ("counter", {"channel"}),
    "warroom_notifications_failed": ("counter", {"channel"}),
    "warroom_notifications_queued": ("gauge", {"channel"}),
    "warroom_notifications_held_back": ("counter", set()),
    # issue 15: notifications marked failed for good (refused by the receiver, or expired)
    "warroom_notifications_given_up": ("counter", {"channel", "reason"}),
    # issue 13: the LINE webhook (bad signatures counted, redeliveries skipped)
    "warroom_line_webhook_requests": ("counter", {"outcome"}),
    "warroom_line_webhook_events": ("counter", {"type", "outcome"}),
    "warroom_producer_events_sent": ("counter", {"producer", "stream"}),
    "warroom_producer_send_errors": ("counter", {"producer"}),
    "warroom_build_info": ("gauge", {"version"}),
    # issue 10: where the simulator of `warroom up` is (backfill, live, paced)
    "warroom_simulator_phase": ("gauge", {"phase"}),
    "warroom_simulator_backfill_progress_ratio": ("gauge", set()),
    "warroom_simulator_backfill_events": ("gauge", set()),
    "warroom_simulator_backfill_seconds": ("gauge", set()),
    "warroom_simulator_event_time_seconds": ("gauge", set()),
    # records read again after a restart and skipped at their stamp (not consumed twice)
    "warroom_events_replayed": ("counter", {"topic"}),
}


def populated() -> tuple[CollectorRegistry, Telemetry]:
    """A registry where every metric has at least one sample."""
    reg = CollectorRegistry()
    tel = Telemetry(reg)
    grievances = tel.stream("grievance", "grievance-events")
    grievances.record_batch(
        accepted_by_source={"sim": 3},
        rejected_by_reason_source={("unknown_district", "sim"): 1},
        duplicates=1,
        late=1,
        seconds=0.004,
    )
    grievances.record_batch(consumed=0, replayed=2)
    tel.set_lag({("grievance-events", 0): 7})
    sink = tel.sink("chdb")
    sink.record_write({"grievance_events": 3}, 0.02)
    sink.write_error()
    sink.retry()
    sink.set_buffered(12)
    sink.observe_latency(0.7, 3)
    tel.add_backpressure(0.5)
    tel.notifier.evaluated("backlog_spike")
    tel.notifier.set_firing({("backlog_spike", "warning"): 2})
    tel.notifier.sent("line")
    tel.notifier.failed("email")
    tel.notifier.given_up("webhook", "refused")
    tel.notifier.set_queued("line", 4)
    tel.line_webhook("request", "", "bad_signature")
    tel.line_webhook("event", "postback", "acknowledged")
    tel.producer("simulator").sent("grievance", 5)
    tel.producer("simulator").error()
    tel.simulator.set_phase("backfill")
    tel.simulator.set_backfill(0.5, 1000, 2.0)
    tel.simulator.set_event_time(1_780_000_000_000)
    return reg, tel


def test_every_metric_of_the_contract_is_exposed_with_its_type_and_labels() -> None:
    reg, _ = populated()
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    for name, (typ, labels) in CONTRACT.items():
        assert name in families, name
        fam = families[name]
        assert fam.type == typ, name
        assert fam.documentation, f"{name} has no help text"
        assert fam.samples, f"{name} has no sample"
        for s in fam.samples:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
    # counters end in _total, durations in _seconds, as the brief fixes them
    text = generate_latest(reg).decode()
    assert "warroom_events_consumed_total{" in text
    assert "warroom_backpressure_seconds_total " in text
    # nothing warroom-specific outside the contract
    extra = {n for n in families if n.startswith("warroom_")} - CONTRACT.keys()
    assert not extra
    assert "process_start_time_seconds" in families


def test_build_info_carries_the_package_version() -> None:
    reg, _ = populated()
    version = importlib.metadata.version("warroom")
    assert reg.get_sample_value("warroom_build_info", {"version": version}) == 1.0


def test_record_batch_totals_match_the_batches_computed_independently() -> None:
    reg = CollectorRegistry()
    tel = Telemetry(reg)
    rng = random.Random(4)
    sources = ["sim", "hotline", "traffy", ""]
    reasons = ["malformed_json", "unknown_district", "invalid_citizen_id"]
    expected: dict[tuple[str, ...], int] = {}

    def add(key: tuple[str, ...], n: int) -> None:
        expected[key] = expected.get(key, 0) + n

    for _ in range(200):
        stream = rng.choice(["grievance", "project"])
        sm = tel.stream(stream, f"{stream}-events")
        acc = {s: rng.randint(0, 50) for s in rng.sample(sources, 2)}
        rej = {(r, rng.choice(sources)): rng.randint(0, 5) for r in rng.sample(reasons, 2)}
        dup, late, too_late = rng.randint(0, 3), rng.randint(0, 4), rng.randint(0, 2)
        sm.record_batch(
            accepted_by_source=acc,
            rejected_by_reason_source=rej,
            duplicates=dup,
            late=late,
            too_late=too_late,
            seconds=rng.random() / 100,
        )
        for s, n in acc.items():
            add(("accepted", stream, s or "unknown"), n)
        for (r, s), n in rej.items():
            add(("rejected", stream, r, s or "unknown"), n)
        add(("dup", stream), dup)
        add(("late", stream), late)
        add(("too_late", stream), too_late)
        add(("consumed", f"{stream}-events"), sum(acc.values()) + sum(rej.values()) + dup)
        add(("batches",), 1)

    def v(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    for key, n in expected.items():
        kind = key[0]
        if kind == "accepted":
            got = v("warroom_events_accepted_total", stream=key[1], source=key[2])
        elif kind == "rejected":
            got = v("warroom_events_rejected_total", stream=key[1], reason=key[2], source=key[3])
        elif kind == "dup":
            got = v("warroom_events_duplicate_total", stream=key[1])
        elif kind in ("late", "too_late"):
            got = v("warroom_events_late_total", stream=key[1], kind=kind)
        elif kind == "consumed":
            got = v("warroom_events_consumed_total", topic=key[1])
        else:
            got = v("warroom_batch_processing_seconds_count")
        assert got == n, key


def test_bounded_label_caps_distinct_sources_and_keeps_totals() -> None:
    reg = CollectorRegistry()
    tel = Telemetry(reg, source_limit=5)
    sm = tel.stream("project", "project-events")
    for i in range(20):
        sm.record_batch(accepted_by_source={f"district-app-{i}": 2})
    samples = [
        s
        for f in text_string_to_metric_families(generate_latest(reg).decode())
        if f.name == "warroom_events_accepted"
        for s in f.samples
    ]
    by_source = {s.labels["source"]: s.value for s in samples}
    assert len(by_source) == 6  # 5 kept + other
    assert by_source["other"] == 15 * 2
    assert sum(by_source.values()) == 40


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("sim", "sim"),
        ("district-system_2.1", "district-system_2.1"),
        ("", "unknown"),
        ("0812345678", "invalid"),  # a phone number is no source name
        ("1234567890123", "invalid"),
        ("นาย สมชาย", "invalid"),
        ("has space", "invalid"),
        ("x" * 65, "invalid"),
    ],
)
def test_bounded_label_keeps_only_short_identifiers(raw: str, label: str) -> None:
    assert BoundedLabel("source", 10)(raw) == label


def test_lag_of_revoked_partitions_disappears() -> None:
    reg = CollectorRegistry()
    tel = Telemetry(reg)
    tel.set_lag({("g", 0): 5, ("g", 1): 9, ("p", 0): 2})
    tel.set_lag({("g", 1): 3, ("p", 0): -4})  # partition g/0 revoked; negative lag clamps to 0
    assert reg.get_sample_value("warroom_consumer_lag", {"topic": "g", "partition": "0"}) is None
    assert reg.get_sample_value("warroom_consumer_lag", {"topic": "g", "partition": "1"}) == 3
    assert reg.get_sample_value("warroom_consumer_lag", {"topic": "p", "partition": "0"}) == 0


def test_firing_alerts_left_out_go_to_zero() -> None:
    reg = CollectorRegistry()
    tel = Telemetry(reg)
    tel.notifier.set_firing({("a", "critical"): 2, ("b", "warning"): 1})
    tel.notifier.set_firing({("b", "warning"): 4})
    get = reg.get_sample_value
    assert get("warroom_alerts_firing", {"rule": "a", "severity": "critical"}) == 0
    assert get("warroom_alerts_firing", {"rule": "b", "severity": "warning"}) == 4


def _buckets(reg: CollectorRegistry, name: str) -> dict[str, float]:
    out = {}
    for f in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in f.samples:
            if s.name == name + "_bucket":
                out[s.labels["le"]] = s.value
            elif s.name in (name + "_sum", name + "_count"):
                out[s.name[len(name) :]] = s.value
    return out


def test_observe_many_equals_cumulative_counts_computed_by_hand() -> None:
    reg = CollectorRegistry()
    h = Histogram("h_seconds", "test", registry=reg, buckets=(0.1, 0.5, 1.0))
    values = [0.05, 0.1, 0.1000001, 0.5, 0.7, 1.0, 3.0, 0.0]  # bounds are inclusive (le)
    observe_many(h, values)
    got = _buckets(reg, "h_seconds")
    assert got["0.1"] == 3  # 0.05, 0.1, 0.0
    assert got["0.5"] == 5
    assert got["1.0"] == 7
    assert got["+Inf"] == 8
    assert got["_count"] == 8
    assert got["_sum"] == pytest.approx(sum(values))


def test_observe_many_and_repeated_agree_with_one_observe_per_value() -> None:
    rng = random.Random(7)
    values = [rng.expovariate(1 / 3) for _ in range(2000)] + list(LATENCY_BUCKETS)
    a, b, c = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    ha = Histogram("x_seconds", "t", registry=a, buckets=LATENCY_BUCKETS)
    hb = Histogram("x_seconds", "t", ["k"], registry=b, buckets=LATENCY_BUCKETS)
    hc = Histogram("x_seconds", "t", registry=c, buckets=LATENCY_BUCKETS)
    for v in values:
        ha.observe(v)
    observe_many(hb.labels(k="1"), iter(values))
    for v in values:
        observe_repeated(hc, v, 1)
    expected = _buckets(a, "x_seconds")
    for reg in (b, c):
        got = _buckets(reg, "x_seconds")
        assert got.keys() == expected.keys()
        for k in expected:
            assert got[k] == pytest.approx(expected[k]), k
    d = CollectorRegistry()
    hd = Histogram("x_seconds", "t", registry=d, buckets=LATENCY_BUCKETS)
    observe_repeated(hd, 2.0, 500)
    observe_repeated(hd, 2.0, 0)
    got = _buckets(d, "x_seconds")
    assert got["1.0"] == 0 and got["2.0"] == 500 and got["+Inf"] == 500
    assert got["_sum"] == 1000.0
