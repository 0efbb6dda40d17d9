"""Alert scenarios through the real pipeline: contract events, a rules file and a routing
directory for the test, a worker with alerting, and readers for what came out.

Time is stream time: events are dated days in the past, so the worker's clock is the event
watermark and a scenario moves it by sending events (`Timeline.tick_to`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import yaml

from producers.kafka import EventSender
from streams.contract import GRIEVANCE_SCHEMA
from streams.timeutil import BANGKOK_OFFSET
from streams.topics import Topics
from tests.kafka_io import read_records
from tests.services.worker import WorkerProcess

T = TypeVar("T")

MINUTE_MS = 60_000
# how long a wait may take before it fails: only a failure waits this long, and a loaded CI
# machine (2 cores, every worker starting up at once) took over a minute to apply a surge
WAIT_S = 180.0
HOUR_MS = 60 * MINUTE_MS
_NS = uuid.UUID("1c3a63c2-7f55-4d8e-8a1e-3d4f4f0c9b21")

#: clock districts, one per partition of the test topics (murmur2 of the code mod 4: 0, 1, 2, 3)
CLOCKS = ("9002", "9004", "9001", "9003")

#: the rule every scenario runs (a critical surge with short stream-time durations)
RULE_ID = "test_surge"
FOR_MS = 2 * MINUTE_MS
WINDOW_MS = 10 * MINUTE_MS
ESCALATE_MS = 3 * MINUTE_MS
MIN_COUNT = 8
RULES_YAML = f"""
version: 1
defaults:
  for: 2m
  repeat: 1h
  keep_firing_for: 0s
evaluation:
  group_window: 0s
rules:
  - id: {RULE_ID}
    title_th: เรื่องร้องเรียนเพิ่มขึ้นผิดปกติ
    title_en: Grievance surge
    kind: surge
    metric: grievance_received
    severity: critical
    for: {FOR_MS // MINUTE_MS}m
    repeat: 1h
    escalate_after: {ESCALATE_MS // MINUTE_MS}m
    params:
      window: {WINDOW_MS // MINUTE_MS}m
      baseline_weeks: 1
      min_weeks: 1
      method: ratio
      ratio: 3
      min_count: {MIN_COUNT}
      fallback_hours: 3
      min_fallback_hours: 2
    summary_th: "รับเรื่องร้องเรียน {{value:.0f}} เรื่องใน {{window_hours:.2f}} ชั่วโมงที่ผ่านมา
      (ปกติราว {{baseline:.1f}} เรื่อง เกณฑ์ {{threshold:.1f}})"
    summary_en: "{{value:.0f}} grievances received in the last {{window_hours:.2f}} h
      (usually about {{baseline:.1f}}; threshold {{threshold:.1f}})"
"""


def t0_ms() -> int:
    """A minute about two days ago: the partitions' clock is then their watermark, not wall
    time. Random, so that two tests never produce the same alert ids (the receivers are
    shared by the session and flag a repeated notification id as a duplicate)."""
    back = 2 * 86_400_000 + secrets.randbelow(24 * 60) * MINUTE_MS
    return (int(time.time() * 1000) - back) // MINUTE_MS * MINUTE_MS


def _iso(ms: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ms / 1000, BANGKOK_OFFSET).isoformat(timespec="milliseconds")


def received(district: str, at_ms: int, n: int, category: str = "flood") -> dict[str, Any]:
    """A `received` grievance event as streams/contract.py defines it."""
    key = f"{district}-{at_ms}-{n}"
    return {
        "schema": GRIEVANCE_SCHEMA,
        "event_id": str(uuid.uuid5(_NS, key)),
        "occurred_at": _iso(at_ms),
        "district_code": district,
        "source": "scenario-test",
        "grievance_id": f"G-{district}-t{at_ms}-{n}",  # no bare 13-digit group (contract)
        "type": "received",
        "category": category,
        "channel": "hotline_1567",
        "priority": "normal",
        "due_at": _iso(at_ms + 15 * 86_400_000),
    }


def surge(district: str, start_ms: int, count: int, spread_ms: int = 3 * MINUTE_MS) -> list[Any]:
    """`count` received grievances in one district, evenly over `spread_ms`."""
    step = spread_ms // max(1, count - 1)
    return [received(district, start_ms + i * step, i) for i in range(count)]


async def _send(bootstrap: str, topics: Topics, events: Iterable[dict[str, Any]]) -> list[int]:
    """Send and wait for the acks; returns each record's broker timestamp (CreateTime, ms)."""
    sender = EventSender(bootstrap, topics, producer="scenario")
    await sender.start()
    stamps: list[int] = []
    try:
        futures = []
        for event in events:
            topic = sender.topic_for(event)
            value = orjson.dumps(event)
            futures.append(
                await sender._producer.send(topic, value, key=event["district_code"].encode())
            )
        for fut in futures:
            meta = await fut
            stamps.append(int(meta.timestamp))
    finally:
        await sender.stop()
    return stamps


def send(bootstrap: str, topics: Topics, events: Iterable[dict[str, Any]]) -> list[int]:
    return asyncio.run(_send(bootstrap, topics, list(events)))


@dataclass
class Timeline:
    """Moves the stream clock by sending one event to each `clock` district (one district per
    partition: a worker's clock is the latest watermark of the partitions it holds)."""

    bootstrap: str
    topics: Topics
    clock_districts: tuple[str, ...]
    sent: int = 0

    def send(self, events: Iterable[dict[str, Any]]) -> list[int]:
        return send(self.bootstrap, self.topics, events)

    def tick_to(self, at_ms: int) -> None:
        self.sent += 1
        self.send([received(c, at_ms, 10_000 + self.sent, "other") for c in self.clock_districts])

    def background(self, districts: Iterable[str], start_ms: int, end_ms: int) -> None:
        """A few quiet events every 30 minutes: coverage for the baseline, and a clock."""
        events = []
        for d in {*districts, *self.clock_districts}:
            for i, at in enumerate(range(start_ms, end_ms, 30 * MINUTE_MS)):
                events.append(received(d, at, 20_000 + i, "land"))
        self.send(events)


# -- the routing directory -------------------------------------------------------------------


def line_id(prefix: str = "U") -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Contacts:
    """Where one entry of the directory receives: a webhook path, optional LINE and e-mail."""

    name: str
    webhook: str
    line: str = ""
    email: str = ""

    def yaml(self) -> dict[str, Any]:
        contacts: dict[str, Any] = {"webhook": self.webhook}
        if self.line:
            contacts["line"] = self.line
        if self.email:
            contacts["email"] = self.email
        return {"name": self.name, "contacts": contacts}


@dataclass
class Directory:
    """A directory file for one test: every address unique to the test (receivers are shared)."""

    hook_base: str
    alertmanager_url: str = ""
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    chiefs: dict[str, Contacts] = field(default_factory=dict)
    governors: dict[str, Contacts] = field(default_factory=dict)

    @property
    def war_room_path(self) -> str:
        return f"/{self.tag}/war-room"

    def path(self, who: str) -> str:
        return f"/{self.tag}/{who}"

    def chief(self, district: str, name: str, *, line: bool = False, email: bool = False) -> None:
        self.chiefs[district] = Contacts(
            name,
            f"{self.hook_base}{self.path('chief-' + district)}",
            line_id("U") if line else "",
            f"chief-{district}-{self.tag}@amphoe.example.go.th" if email else "",
        )

    def governor(self, province: str, name: str, *, line: bool = False) -> None:
        self.governors[province] = Contacts(
            name,
            f"{self.hook_base}{self.path('governor-' + province)}",
            line_id("C") if line else "",
        )

    def write(self, path: Path) -> Path:
        war_room: dict[str, Any] = {"webhook": f"{self.hook_base}{self.war_room_path}"}
        if self.alertmanager_url:
            war_room["alertmanager"] = self.alertmanager_url
        doc = {
            "version": 1,
            "war_room": {"name": "ศูนย์ปฏิบัติการ (ทดสอบ)", "contacts": war_room},
            "provinces": {p: c.yaml() for p, c in self.governors.items()},
            "districts": {d: c.yaml() for d, c in self.chiefs.items()},
        }
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
        return path


# -- reading what came out -------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T | None],
    what: str,
    timeout: float = WAIT_S,
    worker: WorkerProcess | None = None,
) -> T:
    """Poll until `predicate` returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if worker is not None and worker.proc is not None and worker.proc.poll() is not None:
            raise RuntimeError(f"worker died while waiting for {what}:\n{worker.tail()}")
        try:
            value = predicate()
        except (OSError, RuntimeError) as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(0.2)
    tail = f"\n{worker.tail()}" if worker is not None else ""
    raise TimeoutError(f"timed out waiting for {what} (last: {last!r}){tail}")


def wait_value(
    fetch: Callable[[], T],
    ok: Callable[[T], bool],
    what: str,
    timeout: float = WAIT_S,
    worker: WorkerProcess | None = None,
) -> T:
    """Poll `fetch` until `ok(value)`; returns the value."""
    box: list[T] = []

    def probe() -> bool:
        box[:] = [fetch()]
        return ok(box[0])

    wait_until(probe, what, timeout, worker)
    return box[0]


def status(worker: WorkerProcess) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(worker.url + "/status/alerts", timeout=5) as r:
        body: dict[str, Any] = orjson.loads(r.read())
        return body


def history(worker: WorkerProcess) -> list[dict[str, Any]]:
    """alerts_history as stored, oldest first."""
    return worker.query(
        "SELECT toUnixTimestamp64Milli(at) AS at_ms, alert_id, rule_id, state, severity, "
        "district_code, province_code, region, dimension, value, threshold, title_th, "
        "message, channel, recipient FROM alerts_history FINAL ORDER BY at, state, channel"
    )


_LIFECYCLE = ("pending", "firing", "acknowledged", "escalated", "resolved")


def states_of(rows: list[dict[str, Any]], district: str) -> list[str]:
    """Engine states of one district's alerts in time order (delivery rows left out). An
    acknowledgement takes the stream clock, which can equal the firing time: ties follow
    the lifecycle."""
    mine = [r for r in rows if r["district_code"] == district and r["state"] in _LIFECYCLE]
    mine.sort(key=lambda r: (int(r["at_ms"]), _LIFECYCLE.index(r["state"])))
    return [r["state"] for r in mine]


async def _read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    out = []
    for r in await read_records(bootstrap, [topic]):
        assert r.value is not None
        out.append((r.key, orjson.loads(r.value)))
    return out


def alert_records(bootstrap: str, topics: Topics) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every record of the test's `alerts` topic: (key, JSON body)."""
    return asyncio.run(_read_topic(bootstrap, topics.alerts))


def worker_env(
    directory: Path,
    rules: Path,
    *,
    line_url: str = "",
    line_token: str = "",
    smtp_host: str = "",
    smtp_port: int = 0,
    smtp_cert: Path | None = None,
) -> dict[str, str]:
    """Alert settings for the worker subprocess (tests/services/worker.py passes them on)."""
    env = {
        "WARROOM_ALERT_RULES": str(rules),
        "WARROOM_ALERT_DIRECTORY": str(directory),
        "WARROOM_ALERT_TICK_SECONDS": "1",
        "WARROOM_ESCALATE_AFTER_MINUTES": "30",  # the rule sets its own: must win
        "WARROOM_DASHBOARD_URL": "http://grafana.test:3000",
        "WARROOM_FLUSH_INTERVAL": "0.2",
        "WARROOM_COMMIT_INTERVAL": "1",
        "WARROOM_GAUGE_INTERVAL": "1",
    }
    if line_url:
        env["WARROOM_LINE_API_URL"] = line_url
        env["WARROOM_LINE_CHANNEL_TOKEN"] = line_token
    if smtp_host:
        env["WARROOM_SMTP_HOST"] = smtp_host
        env["WARROOM_SMTP_PORT"] = str(smtp_port)
        env["WARROOM_SMTP_FROM"] = "warroom@moi.example.go.th"
        if smtp_cert is not None:
            # the test server's self-signed certificate is the only one the worker trusts
            env["WARROOM_SMTP_TLS"] = "starttls"
            env["SSL_CERT_FILE"] = str(smtp_cert)
        else:
            env["WARROOM_SMTP_TLS"] = "none"
    return env
