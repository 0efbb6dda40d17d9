"""Producers against the real broker: replay, submit and simulate deliver what they say."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from producers.replay import replay
from producers.simulator import SimOptions, Simulator
from streams.topics import Topics
from tests.integration.producers.conftest import read_topics

pytestmark = pytest.mark.integration

WARROOM = [sys.executable, "-m", "warroom.cli"]


def _with_check_digit(first12: str) -> str:
    total = sum(int(d) * w for d, w in zip(first12, range(13, 1, -1), strict=True))
    return first12 + str((11 - total % 11) % 10)


CID = _with_check_digit("110170012345")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env["WARROOM_LOG_FORMAT"] = "json"
    return env


def _warroom(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WARROOM, *args], capture_output=True, text=True, timeout=timeout, env=_env()
    )


async def test_replay_jsonl_delivers_every_line_exactly_once(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    opts = SimOptions(seed=21, start_ms=1_780_000_000_000, warmup_days=0, bad_share=0.05)
    items = list(itertools.islice(Simulator(opts).items(), 3000))
    lines = [it.payload for it in items]
    lines += [b'{"broken', b"[1, 2]", b'{"schema": "x", "district_code": "1001"}']
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines[:1500]) + b"\n\n" + b"\n".join(lines[1500:]) + b"\n")

    def counted(stream: str) -> float:
        labels = {"producer": "replay", "stream": stream}
        return REGISTRY.get_sample_value("warroom_producer_events_sent_total", labels) or 0.0

    before = {s: counted(s) for s in ("grievance", "project")}
    summary = await replay(bootstrap, topics, path, fmt="auto")

    # oracle: the topic from the schema (anything unroutable to the grievance topic),
    # the key from district_code when it is a string
    expected: Counter[tuple[str, bytes | None, bytes]] = Counter()
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        schema = obj.get("schema") if isinstance(obj, dict) else None
        topic = topics.project if schema == "project.v1" else topics.grievance
        key = obj.get("district_code") if isinstance(obj, dict) else None
        expected[(topic, key.encode() if isinstance(key, str) else None, line)] += 1
    got = Counter(await read_topics(bootstrap, [topics.grievance, topics.project]))
    assert got == expected
    assert summary.sent == len(lines) and summary.errors == 0 and summary.blank == 1
    assert summary.unrouted["malformed_json"] >= 1 and summary.unrouted["not_an_object"] >= 1
    # the producer counters count acknowledged sends per stream
    for stream, topic in (("grievance", topics.grievance), ("project", topics.project)):
        sent = sum(n for (t, _, _), n in expected.items() if t == topic)
        assert counted(stream) - before[stream] == sent


async def test_replay_traffy_csv_at_real_time_speed(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    path = tmp_path / "traffy.csv"
    header = "ticket_id,type,organization,comment,photo,photo_after,coords,address,subdistrict,"
    header += "district,province,timestamp,state,star,count_reopen,last_activity"
    rows = [
        'T1,{ถนน},x,"โทร 0812345678",,,"100.5,13.7",addr,,บางรัก,กรุงเทพมหานคร,'
        "2022-06-01 08:00:00,finish,,0,2022-06-01 08:00:01",
        "T2,{น้ำท่วม},x,ok,,,,,,หาดใหญ่,สงขลา,2022-06-01 08:00:00.5,start,,0,",
        "T3,{ถนน},x,ok,,,,,,ไม่มี,สงขลา,2022-06-01 08:00:00,start,,0,",
    ]
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    started = time.monotonic()
    summary = await replay(bootstrap, topics, path, speed=1.0)
    took = time.monotonic() - started
    got = await read_topics(bootstrap, [topics.grievance])
    assert sorted((k, orjson.loads(v)["type"]) for _, k, v in got) == [
        (b"1004", "received"),
        (b"1004", "resolved"),
        (b"9011", "received"),
    ]
    assert took >= 0.9  # 1 s of event time between the first and the last event at speed 1
    assert summary.traffy is not None and dict(summary.traffy.unmapped) == {"unknown_district": 1}
    assert all(b"0812345678" not in v for _, _, v in got)


async def test_replay_pacing_never_waits_more_than_the_cap(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    path = tmp_path / "traffy.csv"
    header = "ticket_id,type,organization,comment,photo,photo_after,coords,address,subdistrict,"
    header += "district,province,timestamp,state,star,count_reopen,last_activity"
    rows = [
        # a year's gap in event time (B.E. dates): 3.65 days of waiting at --speed 100 uncut
        "P1,{ถนน},x,ok,,,,,,บางรัก,กรุงเทพมหานคร,2568-06-01 08:00:00,start,,0,",
        "P2,{ถนน},x,ok,,,,,,บางรัก,กรุงเทพมหานคร,2569-06-01 08:00:00,start,,0,",
        "P3,{ถนน},x,ok,,,,,,บางรัก,กรุงเทพมหานคร,2569-06-01 08:00:50,start,,0,",
    ]
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    started = time.monotonic()
    summary = await replay(bootstrap, topics, path, speed=100.0)
    took = time.monotonic() - started
    assert summary.sent == 3 and summary.errors == 0
    # one gap cut to MAX_GAP_S (3 s); the 50 s one is 0.5 s at speed 100
    assert summary.capped_gaps == 1
    assert summary.capped_s == pytest.approx(365 * 86_400 / 100 - 3.0, abs=0.01)
    assert 3.4 <= took <= 15, took
    assert summary.traffy is not None and summary.traffy.be_rows == 3
    got = await read_topics(bootstrap, [topics.grievance])
    assert sorted(orjson.loads(v)["occurred_at"][:10] for _, _, v in got) == [
        "2025-06-01",
        "2026-06-01",
        "2026-06-01",
    ]


def _replay_cli(bootstrap: str, topics: Topics, path: Path) -> str:
    res = _warroom(
        "replay", str(path), "--speed", "100", "--kafka", bootstrap,
        "--topic-prefix", topics.prefix,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_replay_summary_reports_odd_rows(bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    header = "ticket_id,type,organization,comment,photo,photo_after,coords,address,subdistrict,"
    header += "district,province,timestamp,state,star,count_reopen,last_activity"
    rows = [
        "Q1,{ถนน},x,ok,,,,,,บางรัก,กรุงเทพมหานคร,2569-06-01 08:00:00,finish,,0,2569-05-01 08:00:00",
        "Q1,{ถนน},x,ok,,,,,,บางรัก,กรุงเทพมหานคร,2569-06-01 08:00:00,finish,,0,2569-05-01 08:00:00",
        "Q2,{ถนน},x,ok,,,,,,บางรัก,กรุงเทพมหานคร,2569-02-30 08:00:00,start,,0,",
        "Q3,{ถนน},x,ok,,,,,,บางรัก,กรุงเทพมหานคร,2569-06-02 08:00:00,start,,0,",
    ]
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = _replay_cli(bootstrap, topics, path)
    assert "impossible_date: 1 rows with a date that exists neither in A.D. nor in B.E." in out
    assert "dates in Buddhist-Era years, read as B.E. (year - 543): 2 rows" in out
    assert "last_activity before timestamp" in out and ": 1 rows (first rows: 2)" in out
    assert "duplicate rows skipped (same row): 1 rows (first rows: 3)" in out
    assert "pacing: 1 gaps longer than 3 s at --speed were cut to 3 s" in out
    got = asyncio.run(read_topics(bootstrap, [topics.grievance]))
    assert len(got) == 3  # Q1 received + resolved, Q3 received


def _event(district: str, citizen_id: str) -> dict[str, object]:
    return {
        "schema": "grievance.v1",
        "event_id": "6f2d2c9e-8a4b-4d57-9d1e-2b7c6a5e4f30",
        "occurred_at": "2026-01-05T10:00:00+07:00",
        "district_code": district,
        "source": "officer-intake",
        "grievance_id": "G-TEST-1",
        "type": "received",
        "category": "land",
        "channel": "walk_in",
        "priority": "normal",
        "due_at": "2026-01-20T10:00:00+07:00",
        "complainant": {"citizen_id": citizen_id, "name": "มาลี ศรีสุข", "phone": "0898765432"},
    }


def test_submit_sends_a_good_event_and_explains_a_bad_one(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps(_event("1001", CID)))
    prefix = ["--kafka", bootstrap, "--topic-prefix", topics.prefix]
    ok = _warroom("submit", str(good), *prefix)
    assert ok.returncode == 0, ok.stderr
    m = re.search(r"topic (\S+) partition (\d+) offset (\d+)", ok.stdout)
    assert m and m.group(1) == topics.grievance
    for secret in (CID, "มาลี", "0898765432"):
        assert secret not in ok.stdout + ok.stderr
    got = asyncio.run(read_topics(bootstrap, [topics.grievance]))
    assert got == [(topics.grievance, b"1001", good.read_bytes())]

    bad_cid = CID[:12] + str((int(CID[12]) + 1) % 10)
    for event, english, thai in (
        (_event("1099", CID), "the district code is not a known district", "ไม่พบรหัสอำเภอ"),
        (_event("1001", bad_cid), "the Thai citizen ID is invalid", "เลขประจำตัวประชาชนไม่ถูกต้อง"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_bytes(orjson.dumps(event))
        res = _warroom("submit", str(bad), *prefix)
        assert res.returncode == 1
        assert english in res.stderr and thai in res.stderr
        for secret in (bad_cid, CID, "มาลี", "0898765432"):
            assert secret not in res.stdout + res.stderr
    dry = _warroom("submit", str(good), "--dry-run")
    assert dry.returncode == 0 and "valid" in dry.stdout
    # nothing more was sent
    assert len(asyncio.run(read_topics(bootstrap, [topics.grievance]))) == 1


def _acknowledged(stdout: str) -> int:
    m = re.search(r"done: ([\d,]+) acknowledged", stdout)
    assert m, stdout
    return int(m.group(1).replace(",", ""))


def test_simulate_for_five_seconds_delivers_events(bootstrap: str, topics: Topics) -> None:
    res = _warroom(
        "simulate", "--kafka", bootstrap, "--topic-prefix", topics.prefix,
        "--duration", "5", "--rate", "400", "--seed", "3",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    records = asyncio.run(read_topics(bootstrap, [topics.grievance, topics.project]))
    assert len(records) == _acknowledged(res.stdout)
    assert 400 * 5 * 0.6 < len(records) <= 400 * 5 + 400
    # keyed by the district the event names; the simulator's share of bad events includes
    # valid events sent under another district's key or none (reason wrong_key), on purpose
    keys = [k for _, k, _ in records]
    assert all(k is None or len(k) == 4 for k in keys)
    off = 0
    for _, k, v in records:
        try:
            district = orjson.loads(v).get("district_code")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(district, str) and k != district.encode():
            off += 1
    assert off <= 0.01 * len(records) + 3, f"{off} of {len(records)} keyed off their district"


def test_simulate_stops_cleanly_on_sigterm(bootstrap: str, topics: Topics) -> None:
    proc = subprocess.Popen(
        [*WARROOM, "simulate", "--kafka", bootstrap, "--topic-prefix", topics.prefix,
         "--rate", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    # stop it once it is sending (a fixed sleep raced the start-up on a loaded machine)
    watchdog = threading.Timer(180, proc.kill)
    watchdog.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            m = re.match(r"sending: ([\d,]+) acknowledged", line)
            if m and int(m.group(1).replace(",", "")) > 0:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    records = asyncio.run(read_topics(bootstrap, [topics.grievance, topics.project]))
    assert len(records) == _acknowledged(out) > 0
