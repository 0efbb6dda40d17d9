"""The alert service of the worker: evaluates the rules on the stored metric rows, notifies.

Data in: every metric_buckets / metric_gauges_latest row the pipeline stored (a listener called
after the flush that wrote it), for the districts of this worker's partitions only. Time: the
pipeline's stream clock, on a timer and soon after new counts arrive. Out, per evaluation:
notifications into the durable outbox (then delivered in the background) and onto the
`alerts` topic, every transition into `alerts_history` and onto the topic, then the changed
districts' alerts into the `alert-state` table (streams/alerting_state.py). Publishing comes
before storing: notification ids are deterministic, so a re-publish after a crash is dropped
by the outbox instead of being sent twice.

Partitions: at assignment, the districts of the new partitions are restored from the table
and their data re-read from the store (alerts/warmup.py, through the writer: the store may be
another worker's); rows of those partitions that arrive meanwhile wait. At revocation their
changed alerts are stored and the districts dropped, so each district is evaluated by the one
worker that holds its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import orjson
import yaml
from aiohttp import web
from mode import Service

from alerts.ack import ALERT_ID, handle_ack
from alerts.ack_links import AckLinks, link_for
from alerts.ack_tokens import TokenSigner
from alerts.bound_directory import identify, with_bindings
from alerts.catchup import split_stale
from alerts.channels.email import SmtpConfig
from alerts.contacts_store import Binding, ContactsStore, contacts_path
from alerts.directory import Directory, DirectoryError, default_directory, load_directory
from alerts.engine import Engine
from alerts.line_buttons import LineButtons
from alerts.line_webhook import LineReplier, LineWebhook, WebhookCounters
from alerts.messages import MessageRenderer, place_of
from alerts.model import AlertState, Notification, NotificationKind, Recipient, Severity
from alerts.notifier import DeliveryOutcome, Notifier, build_channels, outbox_path
from alerts.one_tap import AckRequest
from alerts.outbox import Outbox
from alerts.rules import DEFAULT_RULES_PATH, LAST_EVENT_GAUGE, RulesError, RuleSet, parse_rules
from alerts.transitions import TickResult
from alerts.warmup import WarmupQuery, apply_warmup, finish_warmup, warmup_queries
from sinks.writer import Writer, WriterClosedError
from streams import geography
from streams.alerting_acks import AckRouter
from streams.alerting_records import (
    HISTORY_COLUMNS,
    delivery_rows,
    notification_record,
    state_record,
    transition_rows,
)
from streams.alerting_state import AlertStateTable, merge_metas, source_partition
from streams.app import StreamApp
from streams.pipeline import Pipeline
from warroom.settings import Settings
from warroom.telemetry import Telemetry

__all__ = ["AlertService", "dashboard_base", "load_alert_directory", "load_alert_rules"]

log = logging.getLogger(__name__)

#: soonest re-evaluation after new counts arrive (the timer covers time-based conditions)
_MIN_GAP_S: Final = 1.0
#: the meta record (engine clock) of every held partition is rewritten at least this often
_META_EVERY_S: Final = 30.0
#: delivered outbox rows are kept this long (the source topics' retention: a replay within it
#: re-derives the same notification ids, which the outbox must still recognise), pruned hourly
_OUTBOX_KEEP_MS: Final = 14 * 86_400_000
_PRUNE_EVERY_S: Final = 3600.0
_ROW = tuple[Any, ...]
_SEVERITY_RANK: Final = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
_DISTRICT: Final = HISTORY_COLUMNS.index("district_code")


def load_alert_rules(settings: Settings) -> RuleSet:
    """The rules file (default: the shipped one) with WARROOM_ESCALATE_AFTER_MINUTES as its
    default escalation delay; a rule's own `escalate_after` still wins."""
    path = Path(settings.alert_rules) if settings.alert_rules else DEFAULT_RULES_PATH
    minutes = settings.escalate_after_minutes
    if minutes < 0:
        raise RulesError("WARROOM_ESCALATE_AFTER_MINUTES must be 0 (never) or more minutes")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None  # parse_rules reports it with its position
    if isinstance(doc, dict) and isinstance(doc.get("defaults") or {}, dict):
        doc["defaults"] = {**(doc.get("defaults") or {}), "escalate_after": f"{minutes}m"}
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    return parse_rules(text, source=str(path))


def load_alert_directory(settings: Settings) -> Directory:
    if settings.alert_directory:
        return load_directory(settings.alert_directory)
    return default_directory(
        webhook_url=settings.alert_webhook_url, alertmanager_url=settings.alertmanager_url
    )


def dashboard_base(settings: Settings) -> str:
    """Where alert links point: the configured Grafana, else this worker's own wall page,
    which serves the same /d/<uid>/?var-district= paths (dashboards/wall)."""
    return settings.dashboard_url or f"http://{settings.web_host}:{settings.web_port}"


class AlertService(Service):
    """Runs the alert engine inside the worker (see the module docstring)."""

    def __init__(
        self,
        stream_app: StreamApp,
        pipeline: Pipeline,
        writer: Writer,
        settings: Settings,
        telemetry: Telemetry,
        *,
        database: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sa = stream_app
        self.app = stream_app.app
        self.pipeline = pipeline
        self.writer = writer
        self.settings = settings
        self.tel = telemetry
        self.database = database
        try:
            rules = load_alert_rules(settings)
            directory = load_alert_directory(settings)
        except (RulesError, DirectoryError) as exc:
            raise SystemExit(f"warroom worker: alerting cannot start: {exc}") from exc
        self.engine = Engine(rules)
        links = dashboard_base(settings)
        self.renderer = MessageRenderer(links)
        smtp = (
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_from,
                username=settings.smtp_user,
                password=settings.smtp_password,
                tls=settings.smtp_tls,
            )
            if settings.smtp_host
            else None
        )
        # issue 13: LINE bindings beside the directory file, signed one-tap acknowledgements
        self.base_directory = directory
        contacts_file = (
            Path(settings.contacts_db)
            if settings.contacts_db
            else contacts_path(settings.data_dir, settings.alert_directory)
        )
        try:
            self.contacts = ContactsStore(contacts_file)
        except (sqlite3.Error, OSError) as exc:
            raise SystemExit(
                f"warroom worker: cannot open the contacts store {contacts_file}: {exc} "
                "(set WARROOM_CONTACTS_DB to a writable file)"
            ) from exc
        self._bindings: list[Binding] = self.contacts.bindings()
        self._bindings_version: Any = self.contacts.version()
        self.signer = TokenSigner(settings.ack_secret) if settings.ack_secret else None
        ttl_s = int(settings.ack_token_hours * 3600)
        signer = self.signer
        channels = build_channels(
            links,
            line_token=settings.line_channel_token,
            line_api_url=settings.line_api_url,
            smtp=smtp,
            line_buttons=(lambda r: LineButtons(r, signer, ttl_s)) if signer else None,
            ack_links=self._email_links if signer and settings.public_url else None,
        )
        self.outbox = Outbox(outbox_path(settings.data_dir))
        self.notifier = Notifier(
            with_bindings(directory, self._bindings),
            channels,
            self.outbox,
            on_delivery=self._on_delivery,
            metrics=telemetry.notifier,
        )
        self.states = AlertStateTable(self.app, settings.partitions)
        self.topic = stream_app.topics.alerts
        self._lock = asyncio.Lock()
        self._held: set[int] = set()  # partitions whose districts are loaded and warm
        self._warming: set[int] = set()
        self._waiting: list[_ROW] = []  # rows of warming partitions
        self._resync = asyncio.Event()
        self._wake = asyncio.Event()
        self._ready = False
        self._stopping = False  # the app is shutting down: no new evaluations
        self._generation = 0  # bumped by every revocation and assignment
        self._read_gauges = frozenset(self.engine.layout.gauge_metrics | {LAST_EVENT_GAUGE})
        # bucket metrics a rule reads; other bucket rows only tell that events happened
        self._read_buckets = frozenset(self.engine.layout.bucket_metrics)
        self._evaluated: Counter[str] = Counter()
        self._last_meta = 0.0
        self._held_back = 0  # notifications held back since the last log line
        self._held_logged = 0.0
        self._notifier_task: asyncio.Task[None] | None = None
        self.dropped_rows = 0  # rows of partitions this worker does not hold (for tests)
        self.acks = AckRouter(self)
        self.webhook: LineWebhook | None = None
        self._public_tasks: list[asyncio.Task[None]] = []
        self._contact_records: list[tuple[bytes, bytes]] = []  # for the alerts topic
        pipeline.add_metric_listener(self._on_rows)
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_before_shutdown.connect(self._on_app_shutdown)  # type: ignore[arg-type]
        log.info(
            "alerting configured",
            extra={
                "rules": rules.source,
                "enabled_rules": len(self.engine.rules),
                "directory": directory.source,
                "channels": sorted(channels),
            },
        )

    def add_routes(self, app: web.Application) -> None:
        """POST /alerts/{alert_id}/ack (alerts/ack.py) on the worker's web server."""
        app.router.add_post("/alerts/{alert_id}/ack", self._handle_ack)

    def add_public_routes(self, app: web.Application) -> None:
        """The chief-facing listener (WARROOM_PUBLIC_LISTEN): the LINE webhook when a channel
        secret is set, the e-mail acknowledge links when a token secret is set."""
        s = self.settings
        if s.line_channel_secret:
            counters = WebhookCounters(self.tel.line_webhook)
            self.webhook = LineWebhook(
                secret=s.line_channel_secret,
                store=self.contacts,
                replier=LineReplier(s.line_channel_token, s.line_api_url),
                signer=self.signer,
                acknowledge=self.acks.acknowledge,
                identify=self.identify,
                on_contacts_changed=self._contacts_changed,
                counters=counters,
            )
            self.webhook.add_routes(app)
        if self.signer is not None:
            AckLinks(self.signer, self.acks.acknowledge, self.identify).add_routes(app)

    # -- contacts and one-tap acknowledgement (issue 13) --------------------------------------

    def _email_links(self, n: Notification, r: Recipient) -> list[tuple[str, str]]:
        assert self.signer is not None
        ttl_s = int(self.settings.ack_token_hours * 3600)
        return link_for(self.signer, self.settings.public_url, n, r, ttl_s, now_s=time.time())

    def identify(self, contact: str) -> str:
        return identify(self.notifier.directory, self._bindings, contact)

    def refresh_directory(self) -> bool:
        """Re-read the bindings when the store changed (here or in another process)."""
        version = self.contacts.version()
        if version == self._bindings_version:
            return False
        self._bindings_version = version
        self._bindings = self.contacts.bindings()
        self.notifier.directory = with_bindings(self.base_directory, self._bindings)
        return True

    def _contacts_changed(self, change: str, bindings: list[Binding]) -> None:
        self.refresh_directory()
        for b in bindings:
            entry = (
                self.notifier.directory.chief(b.area)
                if b.role == "chief"
                else self.notifier.directory.governor(b.area)
            )
            left = sorted({c.channel for c in entry.contacts}) if entry is not None else []
            extra = {"change": change, "role": b.role, "area": b.area, "channels_left": left}
            if change == "unreachable":
                # the war room reads this in its log sink and on the alerts topic
                log.warning("a LINE contact blocked the official account", extra=extra)
            else:
                log.info("LINE contact binding changed", extra=extra)
            record = orjson.dumps({"schema": "warroom.alert_event.v1", "event": "contact",
                                   "at_ms": b.changed_ms, "name": b.name, **extra})  # fmt: skip
            # published by the tick loop: the webhook may answer before the producer runs
            self._contact_records.append((b.area.encode(), record))

    async def _publish_contact_records(self) -> None:
        records, self._contact_records = self._contact_records, []
        try:
            sent = [
                await self.app.producer.send(self.topic, key, value, None, None, None)
                for key, value in records
            ]
            await asyncio.gather(*sent)
        except Exception:
            log.warning("contact changes not published to the alerts topic", exc_info=True)

    def held_partitions(self) -> set[int]:
        return self._held

    def warming_partitions(self) -> set[int]:
        return self._warming

    def accepting_acks(self) -> bool:
        return self._ready and not self._stopping

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    async def publish_result(self, result: TickResult) -> None:
        """Publish and store an engine result (caller holds the lock)."""
        await self._publish(result)
        await self._store(self.engine.take_dirty())

    @Service.task
    async def _contacts_loop(self) -> None:
        while not self.should_stop:
            await self.sleep(5.0)
            if self.should_stop or self._stopping:
                return  # the store closes at stop
            try:
                await asyncio.to_thread(self.refresh_directory)
            except Exception:
                log.exception("re-reading the contact bindings failed")

    # -- rows in ------------------------------------------------------------------------------

    def _on_rows(self, table: str, rows: list[_ROW]) -> None:
        """Called by the pipeline after the flush that stored these rows (on the loop).

        Runs for every stored metric row, so it is lean: rows of metrics a rule reads go to
        the engine; of the other bucket rows only each district's latest minute matters (it
        had events then: silence), noted once per district per flush."""
        held, warming = self._held, self._warming
        observe = self.engine.observe
        gauges = table == "metric_gauges_latest"
        read = self._read_gauges if gauges else self._read_buckets
        latest: dict[str, int] = {}
        partitions: dict[str, int] = {}
        assigned: set[int] | None = None  # looked up once, only for rows not held
        for row in rows:
            district, metric, dim1, dim2, bucket_s, partition, value, _version = row
            if partition in held:
                partitions[district] = partition
                if metric in read:
                    observe(district, metric, dim1, dim2, bucket_s * 1000, value)
                elif not gauges and value > 0 and bucket_s > latest.get(district, -1):
                    latest[district] = bucket_s
            elif partition in warming:
                self._waiting.append(row)
            elif partition in (assigned := self._assigned_now(assigned)):
                # assigned, but the rebalance-complete signal has not come yet: the warm-up
                # that follows replays these (dropped, they were lost to alerting whenever
                # the store read of the warm-up ran before their flush)
                self._waiting.append(row)
            else:
                self.dropped_rows += 1
        note = self.states.note_partition
        for district, partition in partitions.items():
            note(district, partition)
        for district, bucket_s in latest.items():
            self.engine.saw_events(district, bucket_s * 1000)
        if partitions and not gauges:
            self._wake.set()

    # -- partitions ---------------------------------------------------------------------------

    def _assigned_now(self, known: set[int] | None) -> set[int]:
        if known is not None:
            return known
        try:
            return self._assigned()
        except Exception:  # the consumer is not running (start-up, shutdown)
            return set()

    def _assigned(self) -> set[int]:
        sources = self.pipeline.stream_of_topic
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in sources}

    async def _on_rebalance_complete(self, sender: Any, **kwargs: Any) -> None:
        # the warm-up reads the store: done by a task, so Faust resumes consuming meanwhile
        # (rows of the new partitions wait in self._waiting)
        self._generation += 1
        self._warming |= self._assigned() - self._held
        self._resync.set()

    async def _on_revoked(self, sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        """Store the changed alerts of the districts moving away, then drop them."""
        sources = self.pipeline.stream_of_topic
        parts = {tp.partition for tp in revoked if tp.topic in sources}
        if not parts:
            return
        self._generation += 1
        self._warming -= parts
        self._waiting = [r for r in self._waiting if r[5] not in parts]
        async with self._lock:
            await self._release(parts & self._held)

    async def _release(self, parts: set[int]) -> None:
        if not parts:
            return
        codes = [c for c in self.engine.districts() if self.states.partition_of(c) in parts]
        try:
            await self._store(codes)
        finally:
            for code in codes:
                self.engine.forget_district(code)
            self.states.forget(codes)
            self._held -= parts
            self._update_firing()
        log.info("alert districts released", extra={"partitions": sorted(parts)})

    async def _processors_restored(self, partitions: set[int], generation: int) -> None:
        """Until the pipeline holds a processor for every source partition given (or the
        assignment changes, or 60 s pass: then the clock is the best known so far)."""
        deadline = time.monotonic() + 60.0
        while generation == self._generation and time.monotonic() < deadline:
            sources = self.pipeline.stream_of_topic
            tps = [
                tp
                for tp in self.app.consumer.assignment()
                if tp.topic in sources and tp.partition in partitions
            ]
            if all(tp in self.pipeline.processors for tp in tps):
                return
            await asyncio.sleep(0.05)

    @Service.task
    async def _sync_loop(self) -> None:
        while not self.should_stop:
            try:
                await asyncio.wait_for(self._resync.wait(), timeout=1.0)
            except TimeoutError:
                continue
            self._resync.clear()
            try:
                await self._sync()
            except Exception:
                log.exception("restoring alert state failed; retrying")
                await self.sleep(2.0)
                self._resync.set()

    async def _sync(self) -> None:
        """Load and warm the districts of newly assigned partitions."""
        assigned = self._assigned()
        if gone := self._held - assigned:
            async with self._lock:
                await self._release(gone)
        new = assigned - self._held
        if not new:
            self._ready = True
            return
        generation = self._generation
        self._warming |= new
        started = time.monotonic()
        # the pipeline restores its processors (watermarks) at the same signal: the warm-up
        # must read up to their stream clock, not to the wall clock
        await self._processors_restored(new, generation)
        states, meta = self.states.load(new)
        clock = max(
            self.pipeline.stream_clock_ms(),
            self.engine.now_ms,
            meta["now_ms"] if meta is not None else 0,
        ) or int(time.time() * 1000)
        results: list[tuple[WarmupQuery, list[_ROW]]] = []
        for q in warmup_queries(self.engine, clock, database=self.database):
            results.append((q, await self.writer.query_rows(q.sql)))
        async with self._lock:
            if generation != self._generation:
                return  # rebalanced meanwhile: the loop runs again with the new assignment
            if meta is not None:
                self.engine.load_meta(merge_metas([self.engine.dump_meta(), meta]))
            for code, state in states.items():
                self.engine.load_district(code, state)
            n = self.states.partitions
            for q, rows in results:
                if q.kind != "coverage":
                    rows = [r for r in rows if source_partition(str(r[0]), n) in new]
                apply_warmup(self.engine, q, rows)
            waiting, self._waiting = self._waiting, []
            self._held |= new
            self._warming -= new
            # gauge and bucket rows alike: the engine tells them apart by the metric
            self._on_rows("metric_buckets", [r for r in waiting if r[5] in new])
            finish_warmup(self.engine)
            self._ready = True
            self._update_firing()
        log.info(
            "alert state restored",
            extra={
                "partitions": sorted(new),
                "districts_with_alerts": len(states),
                "live_alerts": len(self.engine.alerts()),
                "seconds": round(time.monotonic() - started, 2),
            },
        )

    # -- evaluation ---------------------------------------------------------------------------

    @Service.task
    async def _tick_loop(self) -> None:
        """New counts wake a cheap evaluation of the districts they belong to; every
        `alert_tick_seconds` a full one covers time-based conditions, repeats, escalations."""
        interval = self.settings.alert_tick_seconds
        gap = min(_MIN_GAP_S, interval)
        last_full = 0.0
        while not self.should_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            if self.should_stop:
                return
            full = time.monotonic() - last_full >= interval
            try:
                await self.evaluate(only_new_data=not full)
            except Exception:
                log.exception("alert evaluation failed; retrying at the next tick")
            if self._contact_records and self._ready:
                await self._publish_contact_records()
            if full:
                last_full = time.monotonic()
            await self.sleep(gap)

    async def evaluate(self, *, only_new_data: bool = False) -> TickResult:
        """One evaluation at the stream clock: publish, record, store."""
        if not self._ready or not self._held or self._stopping:
            return TickResult()
        clock = self.pipeline.stream_clock_ms()
        if clock <= 0 and self.engine.now_ms <= 0:
            return TickResult()  # no event yet: no time to evaluate at
        async with self._lock:
            if self._stopping:
                return TickResult()
            clocks = self.pipeline.district_clocks()
            result = self.engine.tick(
                clock, lambda code: clocks.get(code, 0), only_new_data=only_new_data
            )
            self._count_evaluations()
            self._update_firing()
            await self._publish(result)
            meta_due = time.monotonic() - self._last_meta >= _META_EVERY_S
            await self._store(self.engine.take_dirty(), with_meta=meta_due)
        return result

    async def _publish(self, result: TickResult) -> None:
        """Notifications into the outbox and onto the topic; transitions into the history."""
        send = self.app.producer.send
        sent = []
        # one outbox transaction (one fsync) for the tick's notifications; on the loop, so the
        # evaluation stays one step that nothing else interleaves with
        fresh, held = split_stale(
            result.notifications,
            time.time() * 1000,
            self.settings.alert_notify_max_age_seconds * 1000,
        )
        for n in fresh:
            if n.kind is NotificationKind.ESCALATION:  # the governor is told the story so far
                n.notified = self.outbox.delivered_about(n.alerts)
        routed = self.notifier.submit_many(fresh) if fresh else []
        for n, recipients in zip(fresh, routed, strict=True):
            record = notification_record(n, recipients, self.renderer)
            sent.append(await send(self.topic, n.district_code.encode(), record, None, None, None))
        for n in held:
            record = notification_record(n, [], self.renderer, held_back=True)
            sent.append(await send(self.topic, n.district_code.encode(), record, None, None, None))
        if held:
            self._note_held(held)
        rows = transition_rows(result.transitions)
        if rows:
            self.writer.add_many("alerts_history", rows)
            for row in rows:
                key = row[_DISTRICT].encode()
                sent.append(await send(self.topic, key, state_record(row), None, None, None))
        await asyncio.gather(*sent)

    def _note_held(self, held: list[Notification]) -> None:
        self.tel.notifier.held_back(len(held))
        self._held_back += len(held)
        now = time.monotonic()
        if now - self._held_logged >= 60:  # one line a minute while catching up, not one a tick
            self._held_logged = now
            log.info(
                "notifications recorded but not sent: the stream is catching up on the past",
                extra={
                    "held_back": self._held_back,
                    "newest_stream_time_ms": max(n.created_at_ms for n in held),
                    "max_age_s": self.settings.alert_notify_max_age_seconds,
                },
            )
            self._held_back = 0

    async def _store(self, codes: Any, *, with_meta: bool = False) -> None:
        """Write the districts whose alerts changed since they were last stored."""
        changed: dict[str, bytes] = {}
        for code in codes:
            state = self.engine.dump_district(code, with_data=False)
            raw = orjson.dumps(state)
            before = self.states.stored.get(code)
            if raw == before or (before is None and not state["alerts"]):
                continue
            changed[code] = raw
        if not changed and not with_meta:
            return
        meta = orjson.dumps(self.engine.dump_meta())
        await self.states.write(changed, meta, self._held if with_meta else ())
        if with_meta:
            self._last_meta = time.monotonic()

    def _count_evaluations(self) -> None:
        for rule, n in self.engine.evaluations.items():
            delta = n - self._evaluated[rule]
            if delta:
                self.tel.notifier.evaluated(rule, delta)
                self._evaluated[rule] = n

    def _update_firing(self) -> None:
        self.tel.notifier.set_firing(self.engine.firing_counts())

    # -- acknowledgement ----------------------------------------------------------------------

    async def _handle_ack(self, request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        body = await request.read()
        forward = _forward_target(alert_id, body, self.states.partitions, self._held)
        if forward is not None:
            # another worker holds the district: it applies the ack from the topic
            await self.acks.forward(forward)
            return web.json_response(
                {"alert_id": alert_id, "district_code": forward.district_code, "forwarded": True},
                status=202,
            )
        if not self._ready or self._stopping:
            return web.json_response(
                {"error": "the alert engine is starting or stopping; try again"}, status=503
            )
        async with self._lock:
            now = max(self.engine.now_ms, self.pipeline.stream_clock_ms())
            status, answer, result = handle_ack(self.engine, alert_id, body, now)
            if result:
                await self._publish(result)
                await self._store(self.engine.take_dirty())
        if status == 404 and len(self._assigned()) < self.states.partitions:
            answer["error"] += " on this worker (another worker may hold its district)"
        if status == 200:
            log.info(
                "alert acknowledged",
                extra={"alert_id": alert_id, "by": answer.get("acknowledged_by", "")},
            )
        return web.json_response(answer, status=status)

    # -- delivery outcomes --------------------------------------------------------------------

    async def _on_delivery(self, outcome: DeliveryOutcome) -> None:
        rows = delivery_rows(outcome)
        try:
            self.writer.add_many("alerts_history", rows)
        except WriterClosedError:
            log.warning(
                "delivery outcome not recorded: the store writer is closed",
                extra={"notification_id": outcome.notification.notification_id},
            )
        nid = outcome.notification.notification_id
        try:
            for row in rows:
                record = state_record(row, nid, outcome.attempt, outcome.error)
                key = row[_DISTRICT].encode()
                await self.app.producer.send(self.topic, key, record, None, None, None)
        except Exception:  # the producer stops before this service at shutdown
            log.warning("delivery outcome not published to the alerts topic", exc_info=True)

    @Service.task
    async def _prune_loop(self) -> None:
        while not self.should_stop:
            await self.sleep(_PRUNE_EVERY_S)
            if self.should_stop:
                return
            try:
                cut = int(time.time() * 1000) - _OUTBOX_KEEP_MS
                pruned = await asyncio.to_thread(self.outbox.prune, cut)
                if pruned:
                    log.info("outbox pruned", extra={"delivered_rows": pruned})
            except Exception:
                log.exception("pruning the outbox failed")

    # -- lifecycle ----------------------------------------------------------------------------

    async def on_start(self) -> None:
        self._notifier_task = asyncio.create_task(self.notifier.run())
        self._public_tasks.append(asyncio.create_task(self.acks.run()))
        if self.webhook is not None:
            self._public_tasks.append(asyncio.create_task(self.webhook.process()))

    async def _on_app_shutdown(self, sender: Any, **kwargs: Any) -> None:
        """The producer is still up: store what changed since the last evaluation."""
        self._stopping = True
        try:
            async with self._lock:
                await self._store(self.engine.take_dirty(), with_meta=bool(self._held))
        except Exception:
            log.exception("storing the alert state at shutdown failed")

    async def on_stop(self) -> None:
        if self.webhook is not None:
            await self.webhook.close()
        for task in self._public_tasks:
            task.cancel()
        await asyncio.gather(*self._public_tasks, return_exceptions=True)
        self.contacts.close()
        await self.notifier.close()
        if self._notifier_task is not None:
            await asyncio.gather(self._notifier_task, return_exceptions=True)
        self.outbox.close()

    # -- views --------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Live alerts and the outbox, for GET /status/alerts: firing before pending, critical
        first, newest first (the terminal summary shows the head of the list)."""
        alerts = self.engine.alerts()
        alerts.sort(
            key=lambda a: (
                a.state is not AlertState.FIRING,
                -_SEVERITY_RANK[a.severity],
                -(a.fired_at_ms or a.pending_since_ms),
            )
        )
        metric_of = {r.id: r.metric for r in self.engine.rules}
        kind_of = {r.id: str(r.kind) for r in self.engine.rules}
        live = []
        for a in alerts:
            place = place_of(a.district_code)
            live.append(
                {
                    "alert_id": a.alert_id,
                    "rule_id": a.rule_id,
                    "metric": metric_of.get(a.rule_id, ""),
                    "kind": kind_of.get(a.rule_id, ""),
                    "title_th": a.title_th,
                    "district_code": a.district_code,
                    "district_th": place.district_th,
                    "province_th": place.province_th,
                    "dimension": a.dimension,
                    "state": str(a.state),
                    "severity": str(a.severity),
                    "value": a.value,
                    "threshold": a.threshold,
                    "summary_th": a.summary_th,
                    "since_ms": a.fired_at_ms or a.pending_since_ms,
                    "acknowledged_by": a.acknowledged_by,
                    "escalated": a.escalated_at_ms is not None,
                }
            )
        return {
            "ready": self._ready,
            "partitions": sorted(self._held),
            "clock_ms": self.engine.now_ms,
            "firing": [
                {"rule": rule, "severity": sev, "count": n}
                for (rule, sev), n in sorted(self.engine.firing_counts().items())
            ],
            "alerts": live,
            "queued": self.notifier.queued(),
            "failed": self.notifier.failed(),  # failed for good: `warroom alerts outbox`
        }


def _forward_target(
    alert_id: str, body: bytes, partitions: int, held: set[int]
) -> AckRequest | None:
    """An HTTP ack naming a district (`"district_code"` in the body) this worker does not
    hold: the request to put on the acknowledgements topic. None: handle it here."""
    try:
        raw = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or not ALERT_ID.match(alert_id):
        return None
    district, by = raw.get("district_code"), raw.get("by")
    if not isinstance(district, str) or geography.district(district) is None:
        return None
    if not isinstance(by, str) or not by.strip() or source_partition(district, partitions) in held:
        return None
    note = raw.get("note", "")
    return AckRequest(
        alert_id, district, by.strip()[:100], "http", int(time.time() * 1000),
        note[:500] if isinstance(note, str) else "",
    )  # fmt: skip
