"""Planted identities in events that fail, through a real worker on Tansu + chdb: none of them
is in any table (read through queries: parts are compressed), any file of the data dir, the
worker's log, its /metrics, or any topic but the two it was sent to. And a valid event under
another key than its district is rejected and counted, so the district's state is not split.

Expected values come from how the events below were built, not from warroom's code.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from streams.topics import Topics
from tests.kafka_io import read_records
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

NAME_TH = "สมหญิง ทดสอบนามสกุล"
NAME_EN = "Somying Thotsopnamsakun"
PHONE_DIGITS = "0863217549"  # Thai mobile: 0 + 9 digits
PHONE_FORMS = ("086-321-7549", "+66 86 321 7549", PHONE_DIGITS)
ICT = timedelta(hours=7)
DISTRICT = "1001"


def _check_digit(first12: str) -> str:
    total = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return str((11 - total % 11) % 10)


CID = "310270481235"[:12] + _check_digit("310270481235"[:12])
CID_DASHED = f"{CID[0]}-{CID[1:5]}-{CID[5:10]}-{CID[10:12]}-{CID[12]}"


def rfc3339(t: datetime) -> str:
    return (t + ICT).replace(tzinfo=None).isoformat(timespec="milliseconds") + "+07:00"


def grievance(t: datetime, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema": "grievance.v1",
        "event_id": str(uuid.uuid4()),
        "occurred_at": rfc3339(t),
        "district_code": DISTRICT,
        "source": "privacy-test",
        "grievance_id": f"G-x{uuid.uuid4().hex[:10]}",
        "type": "received",
        "category": "debt",
        "channel": "walk_in",
        "priority": "normal",
        "due_at": rfc3339(t + timedelta(days=15)),
        "complainant": {"citizen_id": CID_DASHED, "name": NAME_TH, "phone": PHONE_FORMS[0]},
    }
    event.update(extra)
    return event


def planted(t: datetime) -> list[tuple[str, str, bytes]]:
    """(stream, name of the shape, payload): every one must be rejected, each carries the
    planted identity somewhere."""
    person = {"citizen_id": CID, "name": NAME_TH, "phone": PHONE_FORMS[1]}
    full = orjson.dumps(grievance(t))
    shapes: list[tuple[str, str, bytes]] = [
        ("grievance", "truncated JSON", full[: full.index(b'"phone"')]),
        ("grievance", "over the size limit", orjson.dumps(grievance(t, agency="ก" * 30_000))),
        (
            "grievance",
            "invalid UTF-8",
            orjson.dumps(grievance(t)).replace(b'"walk_in"', b'"walk\xff"'),
        ),
        (
            "grievance",
            "NaN in another field",
            orjson.dumps(grievance(t)).replace(b'"normal"', b"NaN"),
        ),
        ("grievance", "name as source", orjson.dumps(grievance(t, source=NAME_TH))),
        ("grievance", "romanised name as source", orjson.dumps(grievance(t, source=NAME_EN))),
        ("grievance", "phone as source", orjson.dumps(grievance(t, source=PHONE_FORMS[0]))),
        ("grievance", "citizen ID as event_id", orjson.dumps(grievance(t, event_id=CID))),
        ("grievance", "name as event_id", orjson.dumps(grievance(t, event_id=NAME_TH))),
        ("grievance", "name as a JSON key", orjson.dumps(grievance(t, **{NAME_TH: PHONE_DIGITS}))),
        (
            "grievance",
            "misspelt complainant",
            orjson.dumps({**grievance(t, complainant=None), "complainent": person}),
        ),
        (
            "grievance",
            "misspelt field in complainant",
            orjson.dumps(grievance(t, complainant={"nmae": NAME_TH, "citizen_id": CID})),
        ),
        ("grievance", "complainant as text", orjson.dumps(grievance(t, complainant=NAME_TH))),
        ("grievance", "name as category", orjson.dumps(grievance(t, category=NAME_TH))),
        (
            "grievance",
            "phone in grievance_id",
            orjson.dumps(grievance(t, grievance_id=f"G-{PHONE_DIGITS}")),
        ),
        (
            "grievance",
            "citizen ID in agency",
            orjson.dumps(grievance(t, agency=f"ref {CID_DASHED}")),
        ),
        ("grievance", "name in unknown schema", orjson.dumps(grievance(t, schema=NAME_EN))),
        ("grievance", "name as occurred_at", orjson.dumps(grievance(t, occurred_at=NAME_TH))),
        ("grievance", "a list of identities", orjson.dumps([NAME_TH, CID, PHONE_FORMS[2]])),
        (
            "grievance",
            "invalid check digit",
            orjson.dumps(
                grievance(
                    t,
                    complainant={
                        "citizen_id": CID[:12] + str((int(CID[12]) + 1) % 10),
                        "name": NAME_TH,
                    },
                )
            ),
        ),
        ("project", "grievance on the project topic", orjson.dumps(grievance(t))),
    ]
    return shapes


def secrets() -> list[str]:
    """The identity in the forms it could be stored in: text, \\u-escaped, hex, base64."""
    surname = NAME_TH.split()[1]
    return [
        NAME_TH,
        NAME_TH.split()[0],
        surname,
        NAME_EN.split()[1].lower(),
        "".join(f"\\u{ord(ch):04x}" for ch in surname),
        surname.encode().hex(),
        base64.b64encode(surname.encode()).decode(),
    ]


def leaks(text: str) -> list[str]:
    """The planted identities in ``text``: names in any form; numbers by their digits."""
    low = text.lower()
    found = [s for s in secrets() if s.lower() in low]
    digits = "".join(ch for ch in text if ch.isdigit())
    found += [n for n in (CID, PHONE_DIGITS[1:]) if n in digits]
    return found


def cell_leaks(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for row in rows:
        for k, v in row.items():
            for hit in leaks(orjson.dumps(v).decode() if not isinstance(v, str) else v):
                out.append((k, hit))
    return out


async def produce(
    bootstrap: str, messages: list[tuple[str, bytes | None, bytes, int | None]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2**20)
    await producer.start()
    try:
        for topic, key, value, partition in messages:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def partition_of(key: str, n: int = 4) -> int:
    return DefaultPartitioner()(key.encode(), list(range(n)), list(range(n)))


def test_no_planted_identity_survives_anywhere_and_a_wrong_key_is_rejected(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    t = datetime.now(UTC) - timedelta(hours=2)
    home = partition_of(DISTRICT)
    # a district code that goes to another partition: a producer keying by the wrong field
    other = next(d for d in ("1002", "1003", "1004", "1005", "1006") if partition_of(d) != home)
    messages: list[tuple[str, bytes | None, bytes, int | None]] = []
    shapes = planted(t)
    for stream, _name, payload in shapes:
        messages.append((topics.for_stream(stream), DISTRICT.encode(), payload, None))
    good = 40
    for i in range(good):
        e = grievance(t + timedelta(seconds=i), complainant=None)
        messages.append((topics.grievance, DISTRICT.encode(), orjson.dumps(e), None))
    # valid events of the district under no key and another district's key, on the partition
    # such a key goes to: each would be the district's state on a second partition
    wrong = [(None, (home + 1) % 4), (other.encode(), partition_of(other))] * 3
    for i, (key, partition) in enumerate(wrong):
        e = grievance(t + timedelta(seconds=good + i), complainant=None)
        messages.append((topics.grievance, key, orjson.dumps(e), partition))
    worker = WorkerProcess(
        bootstrap,
        topics.prefix,
        tmp_path / "data",
        env={
            "WARROOM_PARTITIONS": "4",
            "WARROOM_FLUSH_INTERVAL": "0.2",
            "WARROOM_GAUGE_INTERVAL": "1",
        },
    )
    try:
        worker.start()
        asyncio.run(produce(bootstrap, messages))
        n_bad = len(shapes) + len(wrong)
        # every message ends as a dead letter or a stored event (whichever is right)
        count = (
            "SELECT (SELECT count() FROM dead_letters FINAL) "
            "+ (SELECT count() FROM grievance_events FINAL) AS n"
        )
        worker.wait_for(
            lambda: int(worker.query(count)[0]["n"]) >= len(messages),
            timeout=120,
            what=f"{len(messages)} dead letters and events",
        )
        gauges = f"SELECT count() AS n FROM metric_gauges WHERE district_code = '{DISTRICT}'"
        worker.wait_for(
            lambda: int(worker.query(gauges)[0]["n"]) > 0, timeout=60, what="gauge rows"
        )
        # every table, through queries
        tables = [
            (r["database"], r["name"])
            for r in worker.query(
                "SELECT database, name FROM system.tables "
                "WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')"
            )
        ]
        assert ("warroom", "dead_letters") in tables
        found = {}
        for db, name in tables:
            hits = cell_leaks(worker.query(f"SELECT * FROM `{db}`.`{name}`"))
            if hits:
                found[name] = hits
        assert found == {}
        # what engineers get instead: where, why, size, digest, structure
        dead = worker.query(
            "SELECT reason, field, payload, payload_bytes, digest, kafka_offset "
            "FROM dead_letters FINAL"
        )
        assert len(dead) == n_bad
        assert all(len(r["digest"]) == 32 for r in dead)
        bad_sizes = [len(p) for _, _, p in shapes] + [len(m[2]) for m in messages[-len(wrong) :]]
        assert sorted(int(r["payload_bytes"]) for r in dead) == sorted(bad_sizes)
        reasons = Counter(r["reason"] for r in dead)
        assert reasons["wrong_key"] == len(wrong)
        assert reasons["personal_data_in_field"] >= 4
        metrics = worker.metrics_text()
        assert leaks(metrics) == []
        # the district's state is on its own partition only
        tables = ("grievance_events", "metric_buckets", "metric_gauges", "metric_gauges_latest")
        for table in tables:
            parts = worker.query(
                f"SELECT DISTINCT kafka_partition AS p FROM {table} "
                f"WHERE district_code = '{DISTRICT}'"
            )
            assert [int(r["p"]) for r in parts] == [home], table
        wrong_counted = worker.counter("warroom_events_rejected_total", reason="wrong_key")
        assert wrong_counted == len(wrong)
        quality = worker.query(
            "SELECT sum(count) AS n FROM quality_buckets FINAL "
            "WHERE outcome = 'rejected' AND reason = 'wrong_key'"
        )
        assert int(quality[0]["n"]) == len(wrong)
    finally:
        assert worker.stop() == 0, worker.tail()
    # every file of the data dir (chdb parts, logs, worker.json, ...): as bytes
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name.startswith("worker-") for p in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        assert leaks(text) == [], path
    # every topic of this test but the two the events were sent to (they keep the originals)
    # (the worker's changelogs carry the prefix too: its app id is prefix + group id)
    mine = [n for n in asyncio.run(_topic_names(bootstrap)) if n.startswith(topics.prefix)]
    assert topics.dead_letter in mine
    for name in mine:
        if name in (topics.grievance, topics.project):
            continue
        for r in asyncio.run(read_records(bootstrap, [name])):
            for part in (r.key or b"", r.value or b""):
                assert leaks(part.decode("utf-8", "replace")) == [], name
    dl = [orjson.loads(r.value) for r in asyncio.run(read_records(bootstrap, [topics.dead_letter]))]
    assert len(dl) == n_bad
    assert Counter(d["reason"] for d in dl) == reasons


async def _topic_names(bootstrap: str) -> list[str]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return sorted(await consumer.topics())
    finally:
        await consumer.stop()
