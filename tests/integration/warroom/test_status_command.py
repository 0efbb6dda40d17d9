"""`warroom status --url` against a served /metrics: totals, rates, districts, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streams.broker import free_port
from tests.integration.warroom.conftest import MetricsApp
from warroom.status import Poller

pytestmark = pytest.mark.integration

WARROOM = str(Path(sys.executable).with_name("warroom"))


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WARROOM, "status", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_json_summary_has_the_exact_totals(metrics_app: MetricsApp) -> None:
    t = metrics_app.tel
    t.stream("grievance", "grievance-events").record_batch(
        accepted_by_source={"simulator": 120, "hotline_1567": 30},
        rejected_by_reason_source={
            ("unknown_district", "simulator"): 4,
            ("invalid_citizen_id", "hotline_1567"): 2,
        },
        duplicates=3,
        late=5,
    )
    t.stream("project", "project-events").record_batch(accepted_by_source={"field_app": 9})
    t.set_lag({("grievance-events", 0): 11, ("grievance-events", 1): 6})
    t.sink("chdb").set_buffered(42)
    t.notifier.set_firing({("backlog_spike", "warning"): 2})
    metrics_app.districts = {
        "districts": [{"district_code": "1001", "name_th": "พระนคร", "events": 17}]
    }

    r = status("--url", metrics_app.url, "--interval", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    streams = {x["stream"]: x for x in s["streams"]}
    g = streams["grievance"]
    assert (g["accepted"], g["rejected"], g["duplicates"], g["late"]) == (150, 6, 3, 5)
    assert g["events"] == 150 + 6 + 3
    assert g["events_per_s"] == 0  # nothing happened between the two scrapes
    assert streams["project"]["accepted"] == 9
    assert s["lag"] == {"grievance-events": 17}
    (sink,) = s["sinks"]
    assert (sink["backend"], sink["writes"], sink["buffered_rows"]) == ("chdb", 0, 42)
    assert sink["p50_s"] is None  # no write yet
    assert s["alerts_firing"] == [["backlog_spike", "warning", 2]]
    assert s["top_districts"] == [{"district_code": "1001", "name_th": "พระนคร", "events": 17}]
    assert sorted(s["rejected"]) == [
        ["grievance", "invalid_citizen_id", 2],
        ["grievance", "unknown_district", 4],
    ]

    r = status("--url", metrics_app.url, "--interval", "0")
    assert r.returncode == 0, r.stderr
    assert "grievance" in r.stdout and "1001 พระนคร" in r.stdout
    assert "rates need two scrapes" in r.stdout


def test_rate_from_two_scrapes_follows_the_counters(metrics_app: MetricsApp) -> None:
    stream = metrics_app.tel.stream("grievance", "grievance-events")
    poller = Poller(metrics_app.url)
    stop = threading.Event()
    timeline: list[tuple[float, int]] = []

    def feed() -> None:
        total = 0
        while not stop.wait(0.02):
            stream.record_batch(accepted_by_source={"simulator": 10})
            total += 10
            timeline.append((time.monotonic(), total))

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        poller.poll()
        time.sleep(1.5)
        t1 = time.monotonic()
        summary = poller.poll()
    finally:
        stop.set()
        thread.join(5)

    def at(t: float) -> int:
        return max((n for x, n in timeline if x <= t), default=0)

    expected = (at(t1) - at(t0)) / (t1 - t0)
    (g,) = summary.streams
    assert expected > 100
    assert g.events_per_s == pytest.approx(expected, rel=0.25)


def test_unreachable_worker_is_a_clear_error() -> None:
    port = free_port()
    r = status("--url", f"http://127.0.0.1:{port}", "--interval", "0")
    assert r.returncode == 1
    assert f"cannot reach http://127.0.0.1:{port}/metrics" in r.stderr
