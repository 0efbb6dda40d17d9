"""`up` is a supervisor: a worker killed under it comes back (same address, new pid in
run.json) and the system answers again; the stop afterwards is clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

WARROOM = [sys.executable, "-m", "warroom.cli"]
EVENT = {
    "schema": "grievance.v1",
    "event_id": "0b6b2e0c-58c1-4b1e-9d55-3f7a2f2a9c11",
    "occurred_at": "2026-12-01T03:00:00Z",
    "district_code": "1001",
    "source": "hotline",
    "grievance_id": "G-supervisor-1",
    "type": "received",
    "category": "flood",
    "channel": "hotline_1567",
    "priority": "normal",
    "due_at": "2026-12-16T03:00:00Z",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, "COLUMNS": "200"}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _wait(what: str, check: object, timeout: float, out: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout:.0f}s:\n{out.read_text()[-3000:]}")


def _accepted(data: Path) -> int:
    res = subprocess.run(
        [
            *WARROOM,
            "query",
            "SELECT sum(count) FROM quality_buckets FINAL WHERE outcome = 'accepted'",
            "--format",
            "TSV",
            "--data-dir",
            str(data),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return int(res.stdout.strip() or 0)


def test_a_killed_worker_is_restarted_where_it_was_and_the_stop_stays_clean(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    out_path = tmp_path / "up.out"
    out = out_path.open("wb")
    proc = subprocess.Popen(
        [*WARROOM, "up", "--data-dir", str(data), "--web-port", "0", "--no-simulator"],
        env=_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait("run.json", (data / "run.json").exists, 180, out_path)
        run = orjson.loads((data / "run.json").read_bytes())
        old_pid = run["pids"]["worker"]
        os.kill(old_pid, signal.SIGKILL)
        _wait(
            "the restart line",
            lambda: "worker: restarted" in out_path.read_text(errors="replace"),
            60,
            out_path,
        )
        text = out_path.read_text(errors="replace")
        assert "the worker exited unexpectedly (killed by SIGKILL)" in text
        assert "restarting it in 1s" in text
        assert proc.poll() is None, "up kept running"

        def moved() -> bool:
            now = orjson.loads((data / "run.json").read_bytes())
            return bool(now["pids"]["worker"] != old_pid and now["web"] == run["web"])

        _wait("run.json with the new worker", moved, 30, out_path)
        _wait("the restarted worker's /healthz", lambda: _healthy(run["web"]), 120, out_path)
        # the restarted worker takes events again: submit one, find it stored
        event = tmp_path / "event.json"
        event.write_bytes(orjson.dumps(EVENT))
        sub = subprocess.run(
            [*WARROOM, "submit", str(event), "--data-dir", str(data)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sub.returncode == 0, sub.stderr
        _wait("the submitted event in the store", lambda: _accepted(data) >= 1, 60, out_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            out.close()
    text = out_path.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "stopped with errors" not in text and "Traceback" not in text
    assert not (data / "run.json").exists()
