"""The ops dashboard's PromQL returns series from a real Prometheus scraping the session's real
`warroom worker` (the one that filled the dashboards' store) and two busy synthetic targets
that expose warroom's telemetry (warroom.telemetry, the names every process uses); the
production Prometheus config and rules pass promtool."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from dash_panels import prometheus_queries
from prometheus_client import CollectorRegistry

from dashboards.ops import JOB
from streams.broker import free_port
from tests.services.prometheus import PrometheusError, PrometheusServer, available
from warroom.telemetry import Telemetry, metrics_handler

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="Debian package prometheus not installed"),
]
ROOT = Path(__file__).resolve().parents[3]
QUERIES = prometheus_queries()


class FakeWorker:
    """An aiohttp /metrics with warroom's metrics, kept moving like a busy worker."""

    def __init__(self) -> None:
        self.port = free_port()
        self.tel = Telemetry(CollectorRegistry(), version="test")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return f"127.0.0.1:{self.port}"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", metrics_handler(self.tel.registry))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        rng = random.Random(7)
        tel = self.tel
        grievance = tel.stream("grievance", "grievance-events")
        project = tel.stream("project", "project-events")
        sink = tel.sink("chdb")
        while True:
            for s in (grievance, project):
                s.record_batch(
                    accepted_by_source={"hotline-1567": rng.randint(50, 200)},
                    rejected_by_reason_source={("unknown_district", "hotline-1567"): 2},
                    duplicates=1,
                    late=3,
                    seconds=rng.uniform(0.001, 0.05),
                )
            sink.record_write({"metric_buckets": rng.randint(100, 5000)}, rng.uniform(0.01, 0.2))
            sink.write_error()
            sink.retry()
            sink.set_buffered(rng.randint(0, 1000))
            sink.observe_latency(rng.uniform(0.1, 2.0), 100)
            tel.backpressure.inc(0.01)
            tel.set_lag({("grievance-events", 0): rng.randint(0, 50), ("project-events", 0): 3})
            tel.notifier.set_firing({("overdue_backlog", "critical"): 2})
            tel.notifier.sent("line")
            tel.notifier.failed("email")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        async def _stop() -> None:
            if self._task:
                self._task.cancel()
            if self._runner:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def real_instance(warehouse: Any) -> str:
    """host:port of the session worker (its web server serves /metrics)."""
    return str(warehouse.worker.url.removeprefix("http://"))


@pytest.fixture(scope="module")
def prometheus(real_instance: str) -> Iterator[PrometheusServer]:
    workers = [FakeWorker(), FakeWorker()]
    targets = [w.start() for w in workers]
    prom = PrometheusServer(targets={JOB: [*targets, real_instance]}, scrape_interval="1s")
    prom.start()
    try:
        prom.wait_for_target(JOB)
        # rate() needs two samples inside its window, of every target
        prom.wait_for(
            lambda: (
                (prom.value("count(rate(warroom_events_consumed_total[10s]) >= 0)") or 0)
                >= 2 * len(workers) + 1
            )
        )
        yield prom
    finally:
        prom.stop()
        for w in workers:
            w.stop()


def _grafana_vars(expr: str, instance: str = ".*") -> str:
    """What Grafana sends for the dashboard's variables: instance = All (allValue '.*') or one
    worker picked in the instance variable."""
    return (
        expr.replace("$__rate_interval", "10s")
        .replace("$__range", "1m")
        .replace("$instance", instance)
    )


def test_ops_dashboard_has_the_expected_queries() -> None:
    exprs = " ".join(e for _, e in QUERIES)
    for metric in (
        "warroom_events_consumed_total",
        "warroom_events_accepted_total",
        "warroom_events_rejected_total",
        "warroom_consumer_lag",
        "warroom_batch_processing_seconds_bucket",
        "warroom_end_to_end_latency_seconds_bucket",
        "warroom_sink_batch_rows_bucket",
        "warroom_sink_write_seconds_bucket",
        "changes(process_start_time_seconds",
    ):
        assert metric in exprs


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{t}:{e[:40]}" for t, e in QUERIES])
def test_ops_query_returns_series(prometheus: PrometheusServer, title: str, expr: str) -> None:
    result = prometheus.wait_for(lambda: prometheus.query(_grafana_vars(expr)), timeout=15)
    assert result, f"{title}: {expr}"


def test_ops_queries_see_every_worker(prometheus: PrometheusServer, real_instance: str) -> None:
    up = prometheus.value(f'sum(up{{job="{JOB}", instance=~".*"}})')
    assert up == 3
    expr = f'sum by (instance) (rate(warroom_events_consumed_total{{job="{JOB}"}}[10s]))'

    def busy_ones_moving() -> bool:
        rates = {r["metric"]["instance"]: float(r["value"][1]) for r in prometheus.query(expr)}
        # the real worker is idle: it consumed everything before the scrapes began
        return len(rates) == 3 and all(v > 0 for i, v in rates.items() if i != real_instance)

    # on a loaded machine a scrape can be late: allow the window to fill
    assert prometheus.wait_for(busy_ones_moving, timeout=20)


#: targets that have no series on a healthy worker: nothing failed to be sent
NOTHING_FAILED = ("warroom_notifications_failed_total",)


#: warroom_consumer_lag is set by streams/worker.py `_lag`, which only the /readyz probe calls:
def _real_worker_params() -> list[Any]:
    return [pytest.param(t, e, id=f"{t}:{e[:40]}") for t, e in QUERIES]


@pytest.mark.parametrize(("title", "expr"), _real_worker_params())
def test_ops_query_returns_series_of_the_real_worker(
    prometheus: PrometheusServer, real_instance: str, title: str, expr: str
) -> None:
    """The instance variable on the real worker: every panel query has its series."""
    query = _grafana_vars(expr, real_instance.replace(".", "\\\\."))
    if any(name in expr for name in NOTHING_FAILED):
        assert prometheus.query(query) == []
        return
    # every target was scraped (the fixture waited for that): no need to wait long
    result = prometheus.wait_for(lambda: prometheus.query(query), timeout=5)
    assert result, f"{title}: {query}"
    assert all(r["metric"].get("instance", real_instance) == real_instance for r in result)


def test_real_worker_counters_match_the_store(
    prometheus: PrometheusServer, real_instance: str, warehouse: Any
) -> None:
    """What Prometheus scraped from the worker is what the store holds: since its restart the
    worker accepted, rejected and skipped exactly the phase-2 events the store counts."""
    sel = f'{{job="{JOB}", instance="{real_instance}"}}'
    consumed = prometheus.value(f"sum(warroom_events_consumed_total{sel})")
    accepted = prometheus.value(f"sum(warroom_events_accepted_total{sel})")
    rejected = prometheus.value(f"sum(warroom_events_rejected_total{sel})")
    duplicate = prometheus.value(f"sum(warroom_events_duplicate_total{sel})")
    assert consumed == accepted + rejected + duplicate  # type: ignore[operator]
    # the restarted worker consumed what was produced after the restart, once
    assert consumed == len(warehouse.items) - warehouse.phase1_items

    def firing_pair() -> tuple[float | None, int]:
        firing = prometheus.value(f"sum(warroom_alerts_firing{sel})")
        _, rows = warehouse.query(
            "SELECT count() FROM (SELECT alert_id, argMax(state, (at, indexOf("
            "['pending', 'firing', 'escalated', 'acknowledged', 'resolved'], state))) AS s "
            "FROM alerts_history FINAL WHERE state IN "
            "('pending', 'firing', 'escalated', 'acknowledged', 'resolved') GROUP BY alert_id) "
            "WHERE s IN ('firing', 'escalated', 'acknowledged')"
        )
        return firing, int(rows[0][0])

    # the worker keeps evaluating while the wall clock moves (its partitions are live), so an
    # alert may change between Prometheus's last scrape and the store query: the two must
    # agree once a scrape catches up, not at an arbitrary instant
    pairs: list[tuple[float | None, int]] = []

    def agree() -> bool:
        pairs.append(firing_pair())
        return pairs[-1][0] == pairs[-1][1] > 0

    try:
        prometheus.wait_for(agree, timeout=30, interval=0.5)
    except PrometheusError:
        pytest.fail(f"firing gauge vs store never agreed (last readings: {pairs[-5:]})")


def test_promtool_accepts_the_production_config_and_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool
    config = subprocess.run(
        [promtool, "check", "config", str(ROOT / "deploy" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout + config.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool (Debian prometheus-alertmanager) not installed")
    out = subprocess.run(
        [amtool, "check-config", str(ROOT / "deploy" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
