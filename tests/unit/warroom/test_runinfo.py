"""The up lock, run.json and the reason a child's log gives for its failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from warroom import runinfo
from warroom.up import log_reason


def _info(data: Path, pid: int) -> runinfo.RunInfo:
    return runinfo.RunInfo(
        pid=pid,
        kafka="127.0.0.1:40001",
        web="http://127.0.0.1:40002",
        store=f"chdb://{data / 'clickhouse'}",
        data_dir=str(data),
        started_at="2026-12-02T00:00:00+00:00",
        pids={"worker": 11, "broker": 12},
    )


def test_one_lock_per_data_dir_and_the_refusal_says_where_the_first_runs(tmp_path: Path) -> None:
    first = runinfo.UpLock(tmp_path)
    first.acquire()
    try:
        runinfo.write(tmp_path, _info(tmp_path, os.getpid()))
        with pytest.raises(runinfo.AlreadyRunning) as refused:
            runinfo.UpLock(tmp_path).acquire()  # another open file: flock conflicts
        assert str(refused.value) == (
            f"already running: pid {os.getpid()}, web http://127.0.0.1:40002, Kafka "
            f"127.0.0.1:40001 (data dir {tmp_path}); stop it first or pass another --data-dir"
        )
    finally:
        first.release()
    again = runinfo.UpLock(tmp_path)
    again.acquire()  # released: the next up may start
    again.release()


def test_refusal_while_the_first_is_still_starting(tmp_path: Path) -> None:
    first = runinfo.UpLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(runinfo.AlreadyRunning, match=r"web \(starting\), Kafka \(starting\)"):
            runinfo.UpLock(tmp_path).acquire()
    finally:
        first.release()


def test_run_record_round_trip_and_stale_pid(tmp_path: Path) -> None:
    runinfo.write(tmp_path, _info(tmp_path, os.getpid()))
    assert not list(tmp_path.glob(".run.json.*"))  # written atomically via a temporary file
    found = runinfo.discover(tmp_path)
    assert found.info == _info(tmp_path, os.getpid()) and found.note() is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runinfo.write(tmp_path, _info(tmp_path, dead.pid))
    stale = runinfo.discover(tmp_path)
    assert stale.info is None and stale.stale_pid == dead.pid
    assert f"pid {dead.pid}" in (stale.note() or "")
    (tmp_path / "run.json").write_text("{not json")
    assert runinfo.discover(tmp_path) == runinfo.Discovery(None)
    runinfo.remove(tmp_path)
    assert runinfo.read(tmp_path) is None


def test_log_reason_prefers_the_last_error(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    lines = [
        {"level": "info", "msg": "worker starting"},
        {"level": "error", "msg": "cannot open the store", "exc": "Traceback...\nOSError: disk"},
        {"level": "info", "msg": "[^Worker]: Stopping..."},
    ]
    log.write_bytes(b"\n".join(orjson.dumps(r) for r in lines) + b"\n")
    assert log_reason(log) == "cannot open the store: OSError: disk"
    # an uncaught exception after the JSON lines: its last line, without the module path
    with log.open("a") as fh:
        fh.write(
            'Traceback (most recent call last):\n  File "x.py", line 1\n'
            "sinks.backends.StoreError: ClickHouse at h:9000 unreachable\n"
        )
    assert log_reason(log) == "StoreError: ClickHouse at h:9000 unreachable"
    assert log_reason(tmp_path / "missing.log") == ""


def test_store_holder_names_the_process_holding_a_chdb_folder(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert runinfo.store_holder(store) is None  # nothing there
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time\nfrom chdb import session\ns = session.Session({str(store)!r})\n"
            "print('held', flush=True)\ntime.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert runinfo.store_holder(store) == holder.pid
    finally:
        holder.kill()
        holder.wait(10)
    assert runinfo.store_holder(store) is None  # its status file is no longer locked
