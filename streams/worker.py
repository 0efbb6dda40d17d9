"""`warroom worker`: the Faust worker process with the pipeline, the store and the web server."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import signal
import threading
import time
from typing import Any

import faust

from alerts.directory import DirectoryError
from alerts.rules import RulesError
from dashboards.wall.server import add_routes as add_wall_routes
from sinks import open_cases, retention
from sinks.backends import Backend, StoreError, open_backend
from sinks.http_insert import add_insert_route
from sinks.http_query import QueryLimits, QueryService
from sinks.http_query import add_routes as add_query_routes
from sinks.migrate import migrate
from sinks.url import parse_store_url
from sinks.writer import Chore, Writer
from streams import memtrace
from streams.alerting import AlertService, load_alert_directory, load_alert_rules
from streams.app import create_app
from streams.broker import BrokerError, ensure_topics, wait_ready
from streams.pipeline import Pipeline
from streams.topics import Topics
from streams.web import WebServer
from warroom import health as health_mod
from warroom import telemetry
from warroom.settings import Settings

__all__ = ["run_worker"]

log = logging.getLogger(__name__)


class _Worker(faust.Worker):
    """Faust's worker without its logging setup: warroom.logs configured logging already
    (Faust would set the root logger to DEBUG even at "warn") — and without its terminal
    spinner, whose cursor codes on stdout glued themselves to the next JSON log line."""

    def __init__(self, *args: Any, stop_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None
        self.stop_timeout = stop_timeout

    def _setup_logging(self) -> None:
        return None

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        """A stop is bounded: one that hangs (seen under load when SIGTERM came while the
        partitions were being restored, and nobody was left to SIGKILL the worker because the
        `up` that started it had been killed) ends as a crash would, which the store's stamps
        and the committed offsets make safe."""
        if not self._signal_stop_time:
            timer = threading.Timer(self.stop_timeout, _stop_overdue, (signal, self.stop_timeout))
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(signal)


def _stop_overdue(signum: signal.Signals, timeout: float) -> None:
    log.error(
        "the worker did not stop within %.0fs of %s; exiting without its final flush and "
        "checkpoint (the next start replays from the last commit, nothing is counted twice)",
        timeout,
        signum.name,
    )
    logging.shutdown()
    os._exit(1)


def _wait_for_store(backend: Backend, url: str, timeout: float = 90.0) -> None:
    """A worker that writes through the store owner waits until the owner answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            backend.ping()
            return
        except StoreError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the store {url} did not answer within {timeout:.0f}s: {exc}"
                ) from exc
            time.sleep(0.5)


def query_limits(settings: Settings) -> QueryLimits:
    return QueryLimits(
        max_execution_time=settings.query_timeout,
        max_memory_usage=settings.query_max_memory,
        max_rows_to_read=settings.query_max_rows_to_read,
        max_result_rows=settings.query_max_result_rows,
    )


def _store_chores(settings: Settings) -> list[Chore]:
    """The upkeep only the store's owner runs (sinks/open_cases.py)."""
    if not settings.open_cases_every:
        return []
    margin = settings.open_cases_margin
    return [
        Chore(
            "open-case snapshot",
            settings.open_cases_every,
            functools.partial(open_cases.rebuild, margin_s=margin),
        )
    ]


def run_worker(settings: Settings, bootstrap: str) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    try:  # configuration errors first, before anything is opened or locked
        load_alert_rules(settings)
        load_alert_directory(settings)
    except (RulesError, DirectoryError) as exc:
        log.error("alerting cannot start: %s", exc)
        return 2
    topics = Topics(settings.topic_prefix)
    try:
        asyncio.run(wait_ready(bootstrap))
        asyncio.run(ensure_topics(bootstrap, topics.all(), settings.partitions))
    except BrokerError as exc:
        log.error("%s", exc)
        return 2
    store = parse_store_url(settings.store_url)
    owner = store.kind != "worker"  # a worker writing through another worker's store
    backend = open_backend(store)
    if owner:
        migrate(backend, retention=retention.policy(settings))
    else:
        _wait_for_store(backend, settings.store_url)
    tel = telemetry.get()
    writer = Writer(
        backend,
        flush_rows=settings.flush_rows,
        flush_interval=settings.flush_interval,
        max_buffered_rows=settings.max_buffered_rows,
        max_buffered_bytes=settings.max_buffered_bytes,
        telemetry=tel,
        chores=_store_chores(settings) if owner else (),
    )
    stream_app = create_app(settings, bootstrap, topics)
    pipeline = Pipeline(stream_app, settings, writer, tel)
    alerting = AlertService(stream_app, pipeline, writer, settings, tel, database=store.database)
    web = WebServer(
        settings.web_host,
        settings.web_port,
        port_file=settings.data_dir / "worker.json",
        password=settings.web_password,
        store_token=settings.store_token,
    )
    health = health_mod.Health(stall_after=30.0)
    pipeline.health = health

    async def broker_probe() -> tuple[bool, str]:
        try:
            await wait_ready(bootstrap, timeout=1.5)
        except Exception as exc:
            return False, str(exc)[:200]
        return True, bootstrap

    def partitions() -> float:
        return float(len(pipeline.app.consumer.assignment()))

    health.standard(
        broker=broker_probe,
        partitions=partitions,
        lag=lambda: pipeline.lag_total,
        max_lag=float(settings.ready_max_lag),
        store=writer.probe,
    )
    # a broker that lost its log, and a table recovery that cannot finish, say so here
    health.add_probe("log", pipeline.new_log_check)
    health.add_probe("recovery", pipeline.recovery_check)
    health.add_probe("progress", pipeline.progress_check)
    # a store away or a full buffer pauses consumption: unready (not dead) until it resumes
    health.add_probe("consumption", pipeline.consumption_check)
    health_mod.add_routes(web.web_app, health)
    if store.kind == "chdb":
        # only an embedded store needs the door: a ClickHouse server has its own HTTP
        # interface and accounts (Grafana reads it with a read-only one)
        queries = QueryService(store, limits=query_limits(settings))
        add_query_routes(web.web_app, queries)
        add_wall_routes(web.web_app, queries)
        web.on_close(queries.close)
        if settings.store_token:  # other workers write through this one
            add_insert_route(web.web_app, writer, settings.store_token)
    web.add_json("/status/top-districts", lambda: pipeline.top_districts(10))
    alerting.add_routes(web.web_app)
    web.add_json("/status/alerts", alerting.summary)
    services: list[Any] = [stream_app.app, pipeline, alerting, web]
    if settings.public_listen:
        # the chief-facing listener binds apart from the worker's own web server
        host, _, port = settings.public_listen.rpartition(":")
        public = WebServer(host.strip("[]"), int(port), public=True)
        alerting.add_public_routes(public.web_app)
        services.append(public)

    if settings.tracemalloc:
        memtrace.install(pipeline, alerting, settings.tracemalloc)
    worker = _Worker(
        *services,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
        loglevel=settings.log_level.upper(),
        stop_timeout=settings.stop_timeout,
    )
    log.info(
        "worker starting",
        extra={"bootstrap": bootstrap, "store": settings.store_url, "web": web.url},
    )
    # The hot path allocates millions of short-lived tuples and dicts, and the state (cases,
    # buckets) is millions of long-lived objects without reference cycles: the default
    # thresholds ran a young-generation collection every 700 allocations (measured: +18 %
    # throughput with these). Objects made during start-up are moved out of the collector's way.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        backend.close()
        logging.shutdown()
    # chdb's C++ globals can crash in their own exit-time shutdown ("ShutdownTablesThreadPool
    # is not initialized", then SIGSEGV) after everything is flushed: skip them
    os._exit(code)
