"""A real Prometheus scrapes /metrics: throughput by PromQL rate(), exact totals, quantiles."""

from __future__ import annotations

import importlib.metadata
import threading
import time
import uuid

import pytest

from tests.integration.warroom.conftest import MetricsApp
from tests.services.prometheus import PrometheusServer
from warroom.status import fetch_snapshot, summarize

pytestmark = pytest.mark.integration


class Feeder:
    """Adds `per_tick` accepted events every `tick` seconds and keeps its own timeline."""

    def __init__(self, m: MetricsApp, per_tick: int = 25, tick: float = 0.05) -> None:
        self.stream = m.tel.stream("grievance", "grievance-events")
        self.per_tick = per_tick
        self.tick = tick
        self.timeline: list[tuple[float, int]] = [(time.time(), 0)]
        self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self.stream.record_batch(accepted_by_source={"simulator": self.per_tick})
            self.total += self.per_tick
            self.timeline.append((time.time(), self.total))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def total_at(self, t: float) -> int:
        return max((n for at, n in self.timeline if at <= t), default=0)


def test_prometheus_rate_matches_what_was_counted(
    metrics_app: MetricsApp, prometheus: PrometheusServer
) -> None:
    job = f"app-{uuid.uuid4().hex[:6]}"
    prometheus.add_targets(job, [metrics_app.url.removeprefix("http://")])
    prometheus.wait_for_target(job)
    feeder = Feeder(metrics_app)
    feeder.start()
    try:
        time.sleep(7)
        at = time.time() - 1.0  # an instant Prometheus has scraped around on both sides
    finally:
        feeder.stop()

    sel = f'warroom_events_accepted_total{{job="{job}",stream="grievance",source="simulator"}}'
    got = prometheus.value(f"rate({sel}[4s])", at=at)
    expected = (feeder.total_at(at) - feeder.total_at(at - 4)) / 4
    assert expected > 100  # the feeder did run (about 500/s planned)
    assert got is not None
    assert got == pytest.approx(expected, rel=0.35), (got, expected)

    # once the feeder stopped, the scraped value is exactly what was counted
    prometheus.wait_for(lambda: prometheus.value(sel) == feeder.total, timeout=10)
    consumed = f'warroom_events_consumed_total{{job="{job}",topic="grievance-events"}}'
    assert prometheus.value(consumed) == feeder.total
    assert prometheus.value(f'up{{job="{job}"}}') == 1.0
    version = importlib.metadata.version("warroom")
    assert prometheus.value(f'warroom_build_info{{job="{job}",version="{version}"}}') == 1.0
    assert prometheus.value(f'process_start_time_seconds{{job="{job}"}}') is not None


def test_status_quantiles_agree_with_promql_histogram_quantile(
    metrics_app: MetricsApp, prometheus: PrometheusServer
) -> None:
    job = f"app-{uuid.uuid4().hex[:6]}"
    sink = metrics_app.tel.sink("chdb")
    # write durations spread over several buckets
    for i in range(200):
        sink.record_write({"grievance_events": 100}, 0.002 + (i % 40) * 0.0125)
    prometheus.add_targets(job, [metrics_app.url.removeprefix("http://")])
    prometheus.wait_for_target(job)
    count = f'warroom_sink_write_seconds_count{{job="{job}"}}'
    prometheus.wait_for(lambda: prometheus.value(count) == 200, timeout=10)

    s = summarize(fetch_snapshot(metrics_app.url))
    (ours,) = s.sinks
    for q, mine in ((0.5, ours.p50_s), (0.99, ours.p99_s)):
        theirs = prometheus.value(
            f'histogram_quantile({q}, warroom_sink_write_seconds_bucket{{job="{job}"}})'
        )
        assert theirs is not None and mine is not None
        assert mine == pytest.approx(theirs, rel=1e-9), q
