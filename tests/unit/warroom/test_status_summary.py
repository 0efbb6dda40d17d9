"""The status summary from captured /metrics expositions: totals, rates, quantiles, rendering."""

from __future__ import annotations

import io
import math
from dataclasses import replace

import pytest
from rich.console import Console

from warroom.status import (
    bucket_quantile,
    parse_exposition,
    render_text,
    summarize,
)

# A worker's answer, trimmed to what the summary reads (HELP lines as prometheus_client writes)
FIRST = """\
# HELP warroom_events_accepted_total Events accepted.
# TYPE warroom_events_accepted_total counter
warroom_events_accepted_total{source="sim",stream="grievance"} 1000.0
warroom_events_accepted_total{source="hotline",stream="grievance"} 200.0
warroom_events_accepted_total{source="sim",stream="project"} 300.0
# HELP warroom_events_rejected_total Events rejected.
# TYPE warroom_events_rejected_total counter
warroom_events_rejected_total{reason="malformed_json",source="sim",stream="grievance"} 40.0
warroom_events_rejected_total{reason="unknown_district",source="hotline",stream="grievance"} 10.0
warroom_events_rejected_total{reason="malformed_json",source="hotline",stream="grievance"} 5.0
warroom_events_rejected_total{reason="budget_inconsistent",source="sim",stream="project"} 5.0
# HELP warroom_events_duplicate_total Duplicates.
# TYPE warroom_events_duplicate_total counter
warroom_events_duplicate_total{stream="grievance"} 7.0
warroom_events_duplicate_total{stream="project"} 0.0
# HELP warroom_events_late_total Late.
# TYPE warroom_events_late_total counter
warroom_events_late_total{kind="late",stream="grievance"} 12.0
warroom_events_late_total{kind="too_late",stream="grievance"} 3.0
# HELP warroom_consumer_lag Lag.
# TYPE warroom_consumer_lag gauge
warroom_consumer_lag{partition="0",topic="grievance-events"} 5.0
warroom_consumer_lag{partition="1",topic="grievance-events"} 10.0
warroom_consumer_lag{partition="0",topic="project-events"} 0.0
# HELP warroom_sink_write_seconds Write time.
# TYPE warroom_sink_write_seconds histogram
warroom_sink_write_seconds_bucket{backend="chdb",le="0.01"} 50.0
warroom_sink_write_seconds_bucket{backend="chdb",le="0.05"} 90.0
warroom_sink_write_seconds_bucket{backend="chdb",le="0.1"} 99.0
warroom_sink_write_seconds_bucket{backend="chdb",le="0.5"} 100.0
warroom_sink_write_seconds_bucket{backend="chdb",le="+Inf"} 100.0
warroom_sink_write_seconds_count{backend="chdb"} 100.0
warroom_sink_write_seconds_sum{backend="chdb"} 2.0
# HELP warroom_sink_write_errors_total Errors.
# TYPE warroom_sink_write_errors_total counter
warroom_sink_write_errors_total{backend="chdb"} 2.0
# HELP warroom_sink_retries_total Retries.
# TYPE warroom_sink_retries_total counter
warroom_sink_retries_total{backend="chdb"} 3.0
# HELP warroom_sink_buffered_rows Buffered.
# TYPE warroom_sink_buffered_rows gauge
warroom_sink_buffered_rows{backend="chdb"} 1500.0
# HELP warroom_end_to_end_latency_seconds Latency.
# TYPE warroom_end_to_end_latency_seconds histogram
warroom_end_to_end_latency_seconds_bucket{le="0.5"} 0.0
warroom_end_to_end_latency_seconds_bucket{le="1.0"} 40.0
warroom_end_to_end_latency_seconds_bucket{le="2.0"} 80.0
warroom_end_to_end_latency_seconds_bucket{le="+Inf"} 80.0
warroom_end_to_end_latency_seconds_count 80.0
warroom_end_to_end_latency_seconds_sum 90.0
# HELP warroom_backpressure_seconds_total Paused.
# TYPE warroom_backpressure_seconds_total counter
warroom_backpressure_seconds_total 1.5
# HELP warroom_alerts_firing Firing.
# TYPE warroom_alerts_firing gauge
warroom_alerts_firing{rule="backlog_spike",severity="warning"} 2.0
warroom_alerts_firing{rule="silent_district",severity="critical"} 0.0
# HELP warroom_notifications_sent_total Sent.
# TYPE warroom_notifications_sent_total counter
warroom_notifications_sent_total{channel="line"} 5.0
# HELP warroom_notifications_failed_total Failed.
# TYPE warroom_notifications_failed_total counter
warroom_notifications_failed_total{channel="email"} 1.0
# HELP warroom_notifications_queued Queued.
# TYPE warroom_notifications_queued gauge
warroom_notifications_queued{channel="line"} 2.0
# HELP warroom_producer_events_sent_total Sent by producers.
# TYPE warroom_producer_events_sent_total counter
warroom_producer_events_sent_total{producer="simulator",stream="grievance"} 1300.0
# HELP warroom_build_info Build.
# TYPE warroom_build_info gauge
warroom_build_info{version="0.1.0"} 1.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1000.0
"""

# two seconds later: grievance +110 accepted, +4 rejected, +1 duplicate; the project worker
# restarted (its counter fell from 300 to 30); ten writes all in (0.1, 0.5]
CHANGES = {
    'source="sim",stream="grievance"} 1000.0': 'source="sim",stream="grievance"} 1100.0',
    'source="hotline",stream="grievance"} 200.0': 'source="hotline",stream="grievance"} 210.0',
    'source="sim",stream="project"} 300.0': 'source="sim",stream="project"} 30.0',
    'source="sim",stream="grievance"} 40.0': 'source="sim",stream="grievance"} 44.0',
    'warroom_events_duplicate_total{stream="grievance"} 7.0': (
        'warroom_events_duplicate_total{stream="grievance"} 8.0'
    ),
    'backend="chdb",le="0.5"} 100.0': 'backend="chdb",le="0.5"} 110.0',
    'backend="chdb",le="+Inf"} 100.0': 'backend="chdb",le="+Inf"} 110.0',
    'count{backend="chdb"} 100.0': 'count{backend="chdb"} 110.0',
    'simulator",stream="grievance"} 1300.0': 'simulator",stream="grievance"} 1420.0',
}


def second() -> str:
    text = FIRST
    for old, new in CHANGES.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_totals_from_one_scrape() -> None:
    s = summarize(parse_exposition(FIRST, at=1100.0))
    g, p = s.streams
    assert (g.stream, p.stream) == ("grievance", "project")
    assert (g.accepted, g.rejected, g.duplicates) == (1200, 55, 7)
    assert g.events == 1200 + 55 + 7
    assert (g.late, g.too_late) == (12, 3)
    assert (p.accepted, p.rejected, p.duplicates, p.events) == (300, 5, 0, 305)
    assert g.events_per_s is None and s.interval_s is None
    assert s.rejected == [
        ("grievance", "malformed_json", 45),
        ("grievance", "unknown_district", 10),
        ("project", "budget_inconsistent", 5),
    ]
    assert s.lag == {"grievance-events": 15, "project-events": 0}
    (sink,) = s.sinks
    assert (sink.backend, sink.writes, sink.errors, sink.retries) == ("chdb", 100, 2, 3)
    assert sink.buffered_rows == 1500
    assert not sink.recent
    # p50: rank 50 reaches the first bucket exactly -> its upper bound
    assert sink.p50_s == pytest.approx(0.01)
    # p99: rank 99 in (0.05, 0.1], 9 of 9 observations in it -> 0.05 + 0.05 * 9/9
    assert sink.p99_s == pytest.approx(0.1)
    # latency p50: rank 40 in (0.5, 1.0] holding 40 -> 1.0; p99: rank 79.2 in (1, 2] -> 1.98
    assert s.latency_p50_s == pytest.approx(1.0)
    assert s.latency_p99_s == pytest.approx(1.0 + 1.0 * (79.2 - 40) / 40)
    assert s.backpressure_s == 1.5
    assert s.alerts_firing == [("backlog_spike", "warning", 2)]
    assert [(c.channel, c.sent, c.failed, c.queued) for c in s.channels] == [
        ("email", 0, 1, 0),
        ("line", 5, 0, 2),
    ]
    assert s.version == "0.1.0"
    assert s.uptime_s == 100.0


def test_rates_between_two_scrapes_with_a_restart() -> None:
    prev = parse_exposition(FIRST, at=1100.0)
    cur = parse_exposition(second(), at=1102.0)
    s = summarize(cur, prev)
    g, p = s.streams
    assert s.interval_s == 2.0
    assert g.events_per_s == pytest.approx((100 + 10 + 4 + 1) / 2)
    # a counter that went down restarted: its whole value is the increase
    assert p.events_per_s == pytest.approx(30 / 2)
    (sink,) = s.sinks
    assert sink.recent
    # the ten recent writes all lie in (0.1, 0.5]: p50 = 0.1 + 0.4 * 5/10
    assert sink.p50_s == pytest.approx(0.3)
    assert sink.p99_s == pytest.approx(0.1 + 0.4 * 9.9 / 10)
    ((producer, stream, sent, per_s),) = s.producers
    assert (producer, stream, sent) == ("simulator", "grievance", 1420)
    assert per_s == pytest.approx(60.0)


def test_same_or_older_previous_scrape_gives_no_rates() -> None:
    snap = parse_exposition(FIRST, at=1100.0)
    assert summarize(snap, snap).streams[0].events_per_s is None


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [(1.0, 10), (2.0, 20), (math.inf, 20)], 1.0),
        (0.75, [(1.0, 10), (2.0, 20), (math.inf, 20)], 1.5),
        (0.5, [(1.0, 0), (2.0, 0), (math.inf, 0)], None),  # no observations
        (0.9, [(1.0, 1), (2.0, 1), (math.inf, 10)], 2.0),  # rank in +Inf: highest finite bound
        (0.5, [(math.inf, 4), (1.0, 4)], 0.5),  # order of the input does not matter
        (0.5, [(1.0, 4), (2.0, 3), (math.inf, 4)], 0.5),  # non-monotonic counts are repaired
        (0.5, [(1.0, 5)], None),  # no +Inf bucket
    ],
)
def test_bucket_quantile(q: float, buckets: list[tuple[float, float]], expected: float) -> None:
    got = bucket_quantile(q, buckets)
    assert got == (None if expected is None else pytest.approx(expected))


def test_render_shows_the_numbers_an_operator_reads() -> None:
    s = summarize(
        parse_exposition(second(), at=1102.0),
        parse_exposition(FIRST, at=1100.0),
        top_districts=[
            {
                "district_code": "1001",
                "name_th": "พระนคร",
                "province_th": "กรุงเทพมหานคร",
                "events": 50,
                "rejected": 2,
            },
            {"district_code": "5001", "name_th": "เมืองเชียงใหม่", "events": 30, "rejected": 0},
        ],
    )
    text = render_text(s, width=120)
    for needle in [
        "warroom 0.1.0",
        "rates over 2.0s",
        "57.5/s",  # grievance events per second
        "15.0/s",  # project after its restart
        "1,310",  # grievance accepted
        "malformed_json",
        "lag grievance-events",
        "300.0 ms",  # recent p50 of the store writes
        "backlog_spike (warning)",
        "1001 พระนคร (กรุงเทพมหานคร)",
        "5001 เมืองเชียงใหม่",
        "60.0/s",  # producer
    ]:
        assert needle in text, (needle, text)
    assert "silent_district" not in text  # not firing


def test_empty_answer_renders_a_note() -> None:
    s = summarize(parse_exposition("", at=1.0))
    assert s.streams == [] and s.notes == ["no metrics in the answer"]
    assert "no events yet" in render_text(s)


def test_latency_past_the_last_bucket_reads_as_a_lower_bound() -> None:
    # events hours old (the simulator replays simulated time behind the clock): every
    # observation lands in +Inf, so the quantile is only "more than the last bound"
    old = """\
# HELP warroom_end_to_end_latency_seconds Latency.
# TYPE warroom_end_to_end_latency_seconds histogram
warroom_end_to_end_latency_seconds_bucket{le="1.0"} 0.0
warroom_end_to_end_latency_seconds_bucket{le="3600.0"} 1.0
warroom_end_to_end_latency_seconds_bucket{le="+Inf"} 100.0
warroom_end_to_end_latency_seconds_count 100.0
warroom_end_to_end_latency_seconds_sum 900000.0
# HELP warroom_batch_processing_seconds Batch.
# TYPE warroom_batch_processing_seconds histogram
warroom_batch_processing_seconds_bucket{le="0.05"} 90.0
warroom_batch_processing_seconds_bucket{le="0.1"} 100.0
warroom_batch_processing_seconds_bucket{le="+Inf"} 100.0
warroom_batch_processing_seconds_count 100.0
warroom_batch_processing_seconds_sum 3.0
"""
    s = summarize(parse_exposition(old, at=1.0))
    assert s.latency_top_s == 3600.0
    assert s.batch_p99_s == pytest.approx(0.05 + 0.05 * 9 / 10)
    text = render_text(s, width=160)
    assert "end-to-end p50 > 60.0 min p99 > 60.0 min" in text, text
    assert "batch p99 95.0 ms" in text, text
    # within the buckets the number is shown as it is
    fresh = summarize(parse_exposition(FIRST, at=1100.0))
    assert "end-to-end p50 1.00 s p99 1.98 s" in render_text(fresh, width=160)


def test_live_alert_ids_survive_a_narrow_terminal() -> None:
    # the id is what `warroom alerts ack ID` takes: the Thai title and place give way instead
    alert_id = "8bd012bfad348ae1-mhz3k2q0"
    live = [
        {
            "alert_id": alert_id,
            "title_th": "เรื่องร้องเรียนเร่งด่วนยังไม่มีผู้รับผิดชอบ",
            "district_th": "อำเภอเมืองกาฬสินธุ์",
            "province_th": "จังหวัดกาฬสินธุ์",
            "state": "firing",
            "severity": "critical",
            "value": 14.68,
            "threshold": 4,
        },
        {
            "alert_id": "c290b58cf40b072a-mt8fydgu",
            "rule_id": "grievance_urgent_unassigned",
            "metric": "grievance_urgent_unassigned_max_age_seconds",
            "state": "firing",
            "severity": "critical",
            "value": 16499.9,
            "threshold": 14400,
        },
    ]
    s = replace(summarize(parse_exposition(FIRST, at=1100.0)), live_alerts=live)
    text = render_text(s, width=80)
    assert alert_id in text, text
    assert "firing/critical" in text and "14.68 / 4" in text, text
    assert "4.6 h / 4 h" in text, text  # an age in seconds reads in hours


def _shown_values(alerts: list[dict[str, object]]) -> list[str]:
    from warroom.status import _live_alerts

    console = Console(file=io.StringIO(), width=200)
    console.print(_live_alerts(alerts))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return [line for line in out.splitlines() if "firing" in line]


def test_live_alerts_show_each_rule_in_its_own_unit() -> None:
    base = {"alert_id": "a1", "state": "firing", "severity": "warning", "title_th": "t"}
    silent, age, count = _shown_values(
        [
            # silence is counted in office hours, not seconds
            {**base, "kind": "silent", "metric": "last_event_age_seconds", "value": 4.5,
             "threshold": 4},
            {**base, "kind": "age", "metric": "oldest_unassigned_seconds", "value": 16_560,
             "threshold": 14_400},
            {**base, "kind": "threshold", "metric": "grievance_received", "value": 12,
             "threshold": 8},
        ]
    )  # fmt: skip
    assert "4.5 / 4 office h" in silent
    assert "4.6 h / 4 h" in age
    assert "12 / 8" in count
