"""A real `warroom worker` on Tansu + chdb: its counters reconcile exactly with what was produced,
promtool accepts its /metrics, a real Prometheus scrapes it, /readyz follows the store, and its
logs carry dead-letter fields but no personal data.

Expected values come from how the events below were built, not from warroom's code.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.broker import EmbeddedBroker, ensure_topics
from streams.topics import Topics
from tests.services.prometheus import PrometheusServer
from tests.services.store_faults import chattr_unavailable, immutable
from tests.services.worker import WorkerProcess
from warroom.status import parse_exposition, summarize

pytestmark = pytest.mark.integration

ICT = timedelta(hours=7)
CITIZEN_ID_OK = "1103700012346"  # made up; its check digit is computed in `check_digit_ok`
CITIZEN_ID_BAD = "1103700012345"
PHONE = "081-234-5678"


def check_digit_ok(cid: str) -> bool:
    total = sum(int(d) * (13 - i) for i, d in enumerate(cid[:12]))
    return (11 - total % 11) % 10 == int(cid[12])


def rfc3339(t: datetime) -> str:
    return (t + ICT).replace(tzinfo=None).isoformat(timespec="milliseconds") + "+07:00"


@dataclass
class Plan:
    """What the test sends, and what each message must end as."""

    messages: list[tuple[str, str, bytes]] = field(default_factory=list)  # (stream, key, value)
    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, source)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, reason)
    duplicates: Counter[str] = field(default_factory=Counter)
    late: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, kind)
    rejected_ids: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> reason, dist

    def produced(self, stream: str) -> int:
        return sum(1 for s, _, _ in self.messages if s == stream)


def grievance(t: datetime, district: str, source: str, **extra: Any) -> dict[str, Any]:
    event = {
        "schema": "grievance.v1",
        "event_id": str(uuid.uuid4()),
        "occurred_at": rfc3339(t),
        "district_code": district,
        "source": source,
        "grievance_id": f"G-x{uuid.uuid4().hex[:10]}",
        "type": "received",
        "category": "flood",
        "channel": "hotline_1567",
        "priority": "normal",
        "due_at": rfc3339(t + timedelta(days=15)),
    }
    event.update(extra)
    return event


def project(t: datetime, district: str, source: str, **extra: Any) -> dict[str, Any]:
    event = {
        "schema": "project.v1",
        "event_id": str(uuid.uuid4()),
        "occurred_at": rfc3339(t),
        "district_code": district,
        "source": source,
        "project_id": f"P-x{uuid.uuid4().hex[:10]}",
        "program": "kok_nong_na",
        "fiscal_year": 2569,
        "status": "on_track",
        "progress_pct": 40.0,
        "planned_pct": 45.0,
        "budget_allocated_thb": 1_000_000.0,
        "budget_obligated_thb": 600_000.0,
        "budget_disbursed_thb": 300_000.0,
    }
    event.update(extra)
    return event


def build_plan(n_valid: int = 120) -> Plan:
    assert check_digit_ok(CITIZEN_ID_OK) and not check_digit_ok(CITIZEN_ID_BAD)
    plan = Plan()
    base = datetime.now(UTC) - timedelta(minutes=20)
    sent: list[dict[str, Any]] = []

    def send(stream: str, event: dict[str, Any]) -> None:
        plan.messages.append((stream, event["district_code"], orjson.dumps(event)))

    for i in range(n_valid):
        district = ("1001", "1002", "5001")[i % 3]
        source = ("simulator", "hotline")[i % 2]
        person = {"citizen_id": CITIZEN_ID_OK, "phone": PHONE} if i % 10 == 0 else None
        extra = {"complainant": person} if person else {}
        e = grievance(base + timedelta(seconds=i), district, source, **extra)
        send("grievance", e)
        sent.append(e)
        plan.accepted["grievance", source] += 1
    for i in range(30):
        send("project", project(base + timedelta(seconds=i), "5001", "field_app"))
        plan.accepted["project", "field_app"] += 1
    # duplicates: the same event again (same key, so the same partition, a later offset)
    for e in sent[5:12]:
        send("grievance", e)
        plan.duplicates["grievance"] += 1
    # late (30 min behind the partition's watermark, within the 1 h grace) and too late (3 h)
    for kind, behind in (("late", timedelta(minutes=30)), ("too_late", timedelta(hours=3))):
        for _ in range(2):
            send("grievance", grievance(base - behind, "1001", "simulator"))
            plan.accepted["grievance", "simulator"] += 1
            plan.late["grievance", kind] += 1
    # rejected, one reason at a time
    for _ in range(3):
        plan.messages.append(("grievance", "1001", b'{"schema": "grievance.v1", "event_id": '))
        plan.rejected["grievance", "malformed_json"] += 1
    for _ in range(4):
        e = grievance(base, "9999", "simulator")
        send("grievance", e)
        plan.rejected["grievance", "unknown_district"] += 1
        plan.rejected_ids[e["event_id"]] = ("unknown_district", "9999")
    for _ in range(2):
        e = grievance(base, "1002", "hotline", complainant={"citizen_id": CITIZEN_ID_BAD})
        send("grievance", e)
        plan.rejected["grievance", "invalid_citizen_id"] += 1
        plan.rejected_ids[e["event_id"]] = ("invalid_citizen_id", "1002")
    for _ in range(3):
        send("project", project(base, "5001", "field_app", budget_disbursed_thb=900_000.0))
        plan.rejected["project", "budget_inconsistent"] += 1
    return plan


async def produce(bootstrap: str, topics: Topics, messages: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for stream, key, value in messages:
            await producer.send_and_wait(topics.for_stream(stream), value, key=key.encode())
    finally:
        await producer.stop()


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")


@dataclass
class Running:
    worker: WorkerProcess
    topics: Topics
    bootstrap: str
    plan: Plan


@pytest.fixture(scope="module")
def running(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}-")
    asyncio.run(ensure_topics(broker.bootstrap, topics.all(), partitions=4))
    data = tmp_path_factory.mktemp("worker")
    worker = WorkerProcess(broker.bootstrap, topics.prefix, data, env={"WARROOM_PARTITIONS": "4"})
    plan = build_plan()
    try:
        worker.start()
        asyncio.run(produce(broker.bootstrap, topics, plan.messages))
        yield Running(worker, topics, broker.bootstrap, plan)
    finally:
        worker.stop()


def consumed(worker: WorkerProcess, topics: Topics, stream: str) -> float:
    return worker.counter("warroom_events_consumed_total", topic=topics.for_stream(stream))


def wait_consumed(r: Running, extra: Counter[str] | None = None) -> None:
    want = {s: r.plan.produced(s) + (extra or Counter())[s] for s in ("grievance", "project")}
    r.worker.wait_for(
        lambda: all(consumed(r.worker, r.topics, s) >= n for s, n in want.items()),
        timeout=120,
        what=f"consumed {want}",
    )


def test_counters_reconcile_exactly_with_what_was_produced(running: Running) -> None:
    w, plan = running.worker, running.plan
    wait_consumed(running)
    time.sleep(1.0)  # nothing more may arrive: a second look must give the same numbers
    snap = parse_exposition(w.metrics_text())

    for stream in ("grievance", "project"):
        produced = plan.produced(stream)
        assert (
            snap.total("warroom_events_consumed_total", topic=running.topics.for_stream(stream))
            == produced
        )
        accepted = snap.total("warroom_events_accepted_total", stream=stream)
        rejected = snap.total("warroom_events_rejected_total", stream=stream)
        duplicate = snap.total("warroom_events_duplicate_total", stream=stream)
        assert accepted + rejected + duplicate == produced, stream
        assert duplicate == plan.duplicates[stream]
    for (stream, source), n in plan.accepted.items():
        got = snap.total("warroom_events_accepted_total", stream=stream, source=source)
        assert got == n, (stream, source)
    for (stream, reason), n in plan.rejected.items():
        got = snap.total("warroom_events_rejected_total", stream=stream, reason=reason)
        assert got == n, (stream, reason)
    for (stream, kind), n in plan.late.items():
        assert snap.total("warroom_events_late_total", stream=stream, kind=kind) == n, kind

    # the summary `warroom status` prints reads the same counters
    s = {x.stream: x for x in summarize(snap).streams}
    assert s["grievance"].events == plan.produced("grievance")
    assert s["project"].rejected == plan.rejected["project", "budget_inconsistent"]

    # no district code or event id ever becomes a label
    text = w.metrics_text()
    for code in ("1001", "1002", "5001", "9999"):
        assert f'"{code}"' not in text
    for event_id in plan.rejected_ids:
        assert event_id not in text


def test_promtool_accepts_the_worker_exposition(running: Running) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=running.worker.metrics_text().encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result


def test_prometheus_scrapes_the_worker_and_rate_follows_the_producer(
    running: Running, prometheus: PrometheusServer
) -> None:
    w = running.worker
    job = f"worker-{uuid.uuid4().hex[:6]}"
    prometheus.add_targets(job, [w.url.removeprefix("http://")])
    prometheus.wait_for_target(job)
    topic = running.topics.grievance

    # a steady wave: 150 events/s for 6 s, timed by the test
    base = datetime.now(UTC)
    wave = [
        (
            "grievance",
            "1001",
            orjson.dumps(grievance(base + timedelta(milliseconds=i), "1001", "wave")),
        )
        for i in range(900)
    ]
    timeline: list[tuple[float, int]] = []

    async def paced() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            start = time.time()
            for i in range(0, len(wave), 15):
                target = start + i / 150
                await asyncio.sleep(max(0.0, target - time.time()))
                await asyncio.gather(
                    *(
                        producer.send_and_wait(topic, v, key=k.encode())
                        for _, k, v in wave[i : i + 15]
                    )
                )
                timeline.append((time.time(), i + 15))
        finally:
            await producer.stop()

    asyncio.run(paced())
    wait_consumed(running, Counter({"grievance": len(wave)}))
    mid = (timeline[0][0] + timeline[-1][0]) / 2

    def sent_at(t: float) -> int:
        return max((n for at, n in timeline if at <= t), default=0)

    expected = (sent_at(mid + 2) - sent_at(mid - 2)) / 4
    sel = f'warroom_events_consumed_total{{job="{job}",topic="{topic}"}}'
    time.sleep(2.5)  # let Prometheus scrape past mid + 2
    got = prometheus.value(f"rate({sel}[4s])", at=mid + 2)
    assert expected > 50
    assert got is not None and 0.5 * expected <= got <= 1.5 * expected, (got, expected)
    total = running.plan.produced("grievance") + len(wave)
    prometheus.wait_for(lambda: prometheus.value(sel) == total, timeout=15)
    running.plan.accepted["grievance", "wave"] += len(wave)
    running.plan.messages += wave


def test_readyz_follows_the_store(running: Running) -> None:
    w = running.worker
    why = chattr_unavailable()
    if why:
        pytest.skip(why)
    status, body = get(w.url + "/readyz")
    assert status == 200, body
    assert {c["name"] for c in body["checks"]} >= {"broker", "store", "partitions", "lag"}

    rows = w.query(
        "SELECT name, data_paths FROM system.tables WHERE database = 'warroom' "
        "AND name IN ('grievance_events', 'metric_buckets', 'quality_buckets')"
    )
    paths = [p for row in rows for p in row["data_paths"]]
    assert len(paths) == 3, rows
    more = [
        ("grievance", "1001", orjson.dumps(grievance(datetime.now(UTC), "1001", "simulator")))
        for _ in range(20)
    ]
    with immutable(paths):
        asyncio.run(produce(running.bootstrap, running.topics, more))

        def store_failing() -> bool:
            code, b = get(w.url + "/readyz")
            return code == 503 and "store" in b.get("failing", [])

        w.wait_for(store_failing, timeout=60, what="/readyz 503 with the store failing")
        with urllib.request.urlopen(w.url + "/healthz", timeout=5) as r:
            assert r.status == 200  # alive, just not ready
    w.wait_for(lambda: get(w.url + "/readyz")[0] == 200, timeout=90, what="/readyz 200 again")
    running.plan.accepted["grievance", "simulator"] += len(more)
    running.plan.messages += more
    wait_consumed(running)
    snap = parse_exposition(w.metrics_text())
    produced = running.plan.produced("grievance")
    outcomes = sum(
        snap.total(n, stream="grievance")
        for n in (
            "warroom_events_accepted_total",
            "warroom_events_rejected_total",
            "warroom_events_duplicate_total",
        )
    )
    assert outcomes == produced
    assert snap.total("warroom_sink_write_errors_total") >= 1


def worker_log(w: WorkerProcess) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in sorted(Path(w.data_dir).glob("worker-*.log"))
    )


def test_logs_have_no_personal_data(running: Running) -> None:
    text = worker_log(running.worker)
    assert PHONE not in text
    for line in text.splitlines():
        # the numbers in any notation: compare the digits of each line
        digits = "".join(ch for ch in line if ch.isdigit())
        for secret in (CITIZEN_ID_OK, CITIZEN_ID_BAD, "0812345678"):
            assert secret not in digits, (secret, line)
    # every line is one JSON record: a log shipper drops whatever does not parse (Faust's
    # terminal spinner once glued cursor codes to the front of a dead-letter line)
    records = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    assert records, "the worker logs JSON lines when not on a terminal"


def _logged_dead_letters(running: Running) -> list[dict[str, Any]]:
    records = []
    for line in worker_log(running.worker).splitlines():
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    ids = running.plan.rejected_ids
    return [r for r in records if isinstance(r, dict) and r.get("event_id") in ids]


def test_dead_letters_are_logged_with_event_id_district_and_reason(running: Running) -> None:
    # run alone, this test may look before the worker has read every event: wait for them
    wait_consumed(running)
    ids = running.plan.rejected_ids
    running.worker.wait_for(
        lambda: {r["event_id"] for r in _logged_dead_letters(running)} >= set(ids),
        timeout=30,
        what="every rejected event id in the worker log",
    )
    dead = _logged_dead_letters(running)
    assert {r["event_id"] for r in dead} == set(ids)
    for r in dead:
        reason, district = ids[r["event_id"]]
        assert r.get("reason") == reason
        assert r.get("district") == district
