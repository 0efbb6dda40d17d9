"""Multiprocess mode: two worker processes write, one /metrics serves their sum."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import values

from tests.integration.warroom.conftest import ThreadedApp
from warroom import telemetry
from warroom.status import parse_exposition

pytestmark = pytest.mark.integration

# A stand-in for one worker process: it records what its spec says, prints "ready", and keeps
# running (its live gauges count) until a line arrives on stdin.
CHILD = """
import json, sys
from warroom import telemetry
spec = json.loads(sys.argv[1])
tel = telemetry.get()
s = tel.stream("grievance", "grievance-events")
for batch in spec["batches"]:
    s.record_batch(
        accepted_by_source=batch["accepted"],
        rejected_by_reason_source={tuple(k.split("|")): v for k, v in batch["rejected"].items()},
        duplicates=batch["duplicates"],
        seconds=batch["seconds"],
    )
for lags in spec["lags"]:
    tel.set_lag({("grievance-events", int(p)): v for p, v in lags.items()})
tel.sink("chdb").set_buffered(spec["buffered"])
print("ready", flush=True)
sys.stdin.readline()
"""


class Child:
    def __init__(self, folder: Path, spec: dict[str, object]) -> None:
        env = {**os.environ, telemetry.MULTIPROC_ENV: str(folder)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(spec)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def exit(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("bye\n")
            self.proc.stdin.flush()
            self.proc.wait(10)


@pytest.fixture
def mp_dir(tmp_path: Path) -> Path:
    d = tmp_path / "metrics"
    d.mkdir()
    return d


@pytest.fixture
def served(mp_dir: Path) -> Iterator[str]:
    app = web.Application()
    app.router.add_get("/metrics", telemetry.metrics_handler(multiproc_dir=mp_dir))
    server = ThreadedApp(app)
    server.start()
    yield server.url
    server.stop()


def scrape(url: str) -> tuple[bytes, dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        raw = resp.read()
    snap = parse_exposition(raw.decode())
    return raw, {k: dict(v) for k, v in snap.samples.items()}


def batch(accepted: dict[str, int], rejected: dict[str, int], dup: int, sec: float) -> object:
    return {"accepted": accepted, "rejected": rejected, "duplicates": dup, "seconds": sec}


def test_two_processes_one_sum(mp_dir: Path, served: str) -> None:
    a = Child(
        mp_dir,
        {
            "batches": [
                batch({"sim": 30, "hotline": 5}, {"unknown_district|sim": 2}, 1, 0.001),
                batch({"sim": 20}, {}, 0, 0.001),
                batch({"sim": 10}, {"malformed_json|hotline": 4}, 2, 0.001),
            ],
            # partition 0 was A's, then revoked in a rebalance; A keeps partition 1
            "lags": [{"0": 10, "1": 3}, {"1": 3}],
            "buffered": 100,
        },
    )
    b = Child(
        mp_dir,
        {
            "batches": [
                batch({"sim": 7}, {"unknown_district|sim": 1}, 0, 0.2),
                batch({"traffy": 4}, {}, 3, 0.2),
            ],
            "lags": [{"0": 4}],
            "buffered": 50,
        },
    )
    try:
        raw, m = scrape(served)
        acc = m["warroom_events_accepted_total"]
        assert acc[(("source", "sim"), ("stream", "grievance"))] == 30 + 20 + 10 + 7
        assert acc[(("source", "hotline"), ("stream", "grievance"))] == 5
        assert acc[(("source", "traffy"), ("stream", "grievance"))] == 4
        rej = m["warroom_events_rejected_total"]
        key = (("reason", "unknown_district"), ("source", "sim"), ("stream", "grievance"))
        assert rej[key] == 2 + 1
        assert sum(m["warroom_events_duplicate_total"].values()) == 1 + 2 + 3
        produced = (30 + 5 + 2 + 1) + (20) + (10 + 4 + 2) + (7 + 1) + (4 + 3)
        assert m["warroom_events_consumed_total"][(("topic", "grievance-events"),)] == produced
        hist = m["warroom_batch_processing_seconds_bucket"]
        assert hist[(("le", "0.001"),)] == 3
        assert hist[(("le", "0.25"),)] == 5
        assert m["warroom_batch_processing_seconds_count"][()] == 5
        lag = m["warroom_consumer_lag"]
        assert lag[(("partition", "0"), ("topic", "grievance-events"))] == 4  # B owns it now
        assert lag[(("partition", "1"), ("topic", "grievance-events"))] == 3
        assert m["warroom_sink_buffered_rows"][(("backend", "chdb"),)] == 150
        assert list(m["warroom_build_info"].values()) == [1.0]
        assert "process_start_time_seconds" in m

        promtool = shutil.which("promtool")
        if promtool:
            check = subprocess.run(
                [promtool, "check", "metrics"], input=raw, capture_output=True, check=False
            )
            assert check.returncode == 0 and not (check.stdout + check.stderr).strip()

        # A exits; the supervisor marks it dead: its live gauges go, its counts stay
        a.exit()
        telemetry.mark_process_dead(a.proc.pid, mp_dir)
        _, m = scrape(served)
        assert m["warroom_sink_buffered_rows"][(("backend", "chdb"),)] == 50
        assert (("partition", "1"), ("topic", "grievance-events")) not in m.get(
            "warroom_consumer_lag", {}
        )
        assert m["warroom_events_consumed_total"][(("topic", "grievance-events"),)] == produced
    finally:
        a.exit()
        b.exit()


def test_prepare_clears_only_old_metric_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # restored after the test
    # setenv records the variable's state, so it is undone after the test
    monkeypatch.setenv(telemetry.MULTIPROC_ENV, "placeholder")
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old")
    (folder / "notes.txt").write_text("not ours")
    telemetry.prepare_multiprocess_dir(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert os.environ[telemetry.MULTIPROC_ENV] == str(folder)
    assert telemetry.multiprocess_dir() == str(folder)
    assert getattr(values.ValueClass, "_multiprocess", False)
