"""A running `warroom up` (no simulator): a second `up` on its data dir is refused and changes
nothing of it; submit, status, query and alerts ack find it through run.json and say so;
`query --store` answers from the named store only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.integration

WARROOM = [sys.executable, "-m", "warroom.cli"]
EVENT_ID = "5a0c9d1e-7b3f-4e2a-8c6d-1f2e3a4b5c6d"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, "COLUMNS": "200", **extra}


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WARROOM, *args], env=_env(**env), capture_output=True, text=True, timeout=120
    )


@dataclass
class Up:
    data: Path
    proc: subprocess.Popen[bytes]
    run: dict[str, Any]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data = tmp_path_factory.mktemp("up") / "data"
    out = (data.parent / "up.out").open("wb")
    proc = subprocess.Popen(
        [*WARROOM, "up", "--data-dir", str(data), "--web-port", "0", "--no-simulator"],
        env=_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not (data / "run.json").exists():
            assert proc.poll() is None, (data.parent / "up.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "up did not write run.json"
            time.sleep(0.3)
        yield Up(data, proc, orjson.loads((data / "run.json").read_bytes()))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            out.close()
    assert code == 0, (data.parent / "up.out").read_text()[-3000:]
    assert not (data / "run.json").exists()


def _snapshot(data: Path) -> dict[str, Any]:
    logs = {p.name: p.read_bytes() for p in (data / "logs").iterdir()}
    return {
        "worker.json": (data / "worker.json").read_bytes(),
        "run.json": (data / "run.json").read_bytes(),
        "metrics": {p.name for p in (data / "metrics").iterdir()},
        "logs": logs,
    }


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
        return bool(resp.status == 200)


def test_a_second_up_is_refused_and_changes_nothing(up: Up) -> None:
    before = _snapshot(up.data)
    assert before["metrics"], "the first up's metrics folder is empty already"
    res = _run("up", "--data-dir", str(up.data), "--web-port", "0")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        f"warroom up: already running: pid {up.proc.pid}, web {up.run['web']}, "
        f"Kafka {up.run['kafka']} (data dir {up.data}); stop it first or pass another --data-dir"
    )
    after = _snapshot(up.data)
    assert after["worker.json"] == before["worker.json"]
    assert after["run.json"] == before["run.json"]
    assert before["metrics"] <= after["metrics"]  # nothing emptied (the first may add files)
    for name, content in before["logs"].items():  # nothing truncated or overwritten
        assert after["logs"][name].startswith(content), name
    assert up.proc.poll() is None and _healthy(up.run["web"])


def _event(path: Path) -> Path:
    first12 = "110170012345"
    check = (11 - sum(int(d) * (13 - i) for i, d in enumerate(first12)) % 11) % 10
    today = datetime.now(timezone(timedelta(hours=7))).replace(microsecond=0)
    path.write_bytes(
        orjson.dumps(
            {
                "schema": "grievance.v1",
                "event_id": EVENT_ID,
                # relative to today: a fixed date would fall to the default retention one day
                "occurred_at": (today - timedelta(days=1)).isoformat(),
                "district_code": "1001",
                "source": "officer-intake",
                "grievance_id": "G-RUN-1",
                "type": "received",
                "category": "land",
                "channel": "walk_in",
                "priority": "normal",
                "due_at": (today + timedelta(days=14)).isoformat(),
                "complainant": {"citizen_id": first12 + str(check)},
            }
        )
    )
    return path


def test_clients_find_the_running_up_and_say_so(up: Up, tmp_path: Path) -> None:
    where = f"(the warroom up running in {up.data}, pid {up.proc.pid})"
    sent = _run("submit", str(_event(tmp_path / "e.json")), "--data-dir", str(up.data))
    assert sent.returncode == 0, sent.stderr
    assert f"warroom submit: Kafka {up.run['kafka']} {where}" in sent.stderr
    # the event reached this up's worker and store: query finds both through run.json
    sql = f"SELECT count() FROM grievance_events WHERE event_id = '{EVENT_ID}'"
    deadline = time.monotonic() + 60
    while True:
        got = _run("query", sql, "--format", "TSV", "--data-dir", str(up.data))
        assert got.returncode == 0, got.stderr
        if got.stdout.strip() == "1" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert got.stdout == "1\n"
    assert f"warroom query: answered by the worker at {up.run['web']}" in got.stderr
    status = _run("status", "--data-dir", str(up.data), "--interval", "0", "--json")
    assert status.returncode == 0, status.stderr
    assert f"warroom status: worker {up.run['web']} {where}" in status.stderr
    assert orjson.loads(status.stdout)  # stdout is the JSON alone
    # an unknown alert id: the worker answers 404 (exit 1), so ack reached it (unreachable: 2)
    ack = _run("alerts", "ack", "0123456789abcdef-1", "--data-dir", str(up.data), "--by", "t")
    assert ack.returncode == 1, ack.stderr
    assert f"warroom alerts ack: worker {up.run['web']} {where}" in ack.stderr
    assert "no live alert" in ack.stderr


def test_query_store_answers_from_that_store_only(up: Up, tmp_path: Path) -> None:
    other = tmp_path / "other"
    # another store with a table the running worker's store does not have
    subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                from chdb import session
                s = session.Session({str(other)!r})
                s.query("CREATE DATABASE IF NOT EXISTS warroom")
                s.query("CREATE TABLE warroom.t (x UInt32) ENGINE = MergeTree ORDER BY x")
                s.query("INSERT INTO warroom.t SELECT number FROM numbers(105)")
                s.close()
                """
            ),
        ],
        check=True,
        timeout=120,
    )
    sql = "SELECT count() FROM warroom.t"
    res = _run(
        "query", sql, "--store", f"chdb://{other}", "--format", "TSV", "--data-dir", str(up.data)
    )
    assert (res.returncode, res.stdout) == (0, "105\n"), res.stderr
    assert f"answered by the store {other}, opened directly" in res.stderr
    # the running worker's own store, named: through that worker, which holds it
    mine = f"chdb://{up.data / 'clickhouse'}"
    res = _run(
        "query", "SELECT count() FROM ref_provinces", "--store", mine, "--format", "TSV",
        "--data-dir", str(up.data),
    )  # fmt: skip
    assert (res.returncode, res.stdout) == (0, "77\n"), res.stderr
    assert f"the worker at {up.run['web']}, which holds {up.data / 'clickhouse'}" in res.stderr
    # the other store held by some other process: busy, never the worker's answer
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from chdb import session
                s = session.Session({str(other)!r})
                print("held", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        res = _run("query", sql, "--store", f"chdb://{other}", "--data-dir", str(up.data))
        assert res.returncode == 1 and res.stdout == ""
        assert "Traceback" not in res.stderr
        assert (
            f"the store {other} is busy: it is locked by another process (pid {holder.pid}), "
            f"and the worker at {up.run['web']} serves another store" in res.stderr
        )
    finally:
        holder.kill()
        holder.wait(10)


def test_a_stale_run_record_is_ignored_and_said(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run.json").write_bytes(
        orjson.dumps(
            {
                "pid": dead.pid,
                "kafka": "127.0.0.1:9",
                "web": "http://127.0.0.1:9",
                "store": f"chdb://{tmp_path / 'clickhouse'}",
                "data_dir": str(tmp_path),
                "started_at": "2026-12-01T00:00:00+00:00",
            }
        )
    )
    res = _run("submit", str(_event(tmp_path / "e.json")), "--data-dir", str(tmp_path))
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == (
        f"warroom submit: ignoring run.json: the `warroom up` that wrote it (pid {dead.pid}) "
        "is gone"
    )
    assert "no Kafka to send to" in res.stderr
