"""Mistakes a person can make on the command line: one plain line on stderr, exit 2, no
traceback, and nothing started or connected before the flags are checked."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

WARROOM = [sys.executable, "-m", "warroom.cli"]
DEAD_KAFKA = "127.0.0.1:1"  # nothing listens on port 1


def _citizen_id(first12: str) -> str:
    total = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return first12 + str((11 - total % 11) % 10)


def _run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    base.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.run(
        [*WARROOM, *args],
        env={**base, "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _one_line(res: subprocess.CompletedProcess[str], code: int = 2) -> str:
    err = res.stderr.strip()
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    assert res.returncode == code, (res.returncode, res.stdout[-500:], err)
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def event(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    path.write_bytes(
        orjson.dumps(
            {
                "schema": "grievance.v1",
                "event_id": "0b6f1a5e-41d2-4c1a-9a57-3f1f0a8c2d11",
                "occurred_at": "2026-01-05T10:00:00+07:00",
                "district_code": "1001",
                "source": "officer-intake",
                "grievance_id": "G-ERR-1",
                "type": "received",
                "category": "land",
                "channel": "walk_in",
                "priority": "normal",
                "due_at": "2026-01-20T10:00:00+07:00",
                "complainant": {"citizen_id": _citizen_id("110170012345")},
            }
        )
    )
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--duration", "-5"], "Invalid value for '--duration': -5 is not a positive number"),
        (["--duration", "0"], "Invalid value for '--duration': 0 is not a positive number"),
        (["--web-port", "99999"], "Invalid value for '--web-port'"),
        (["--web-port", "-1"], "Invalid value for '--web-port'"),
        (["--partitions", "0"], "Invalid value for '--partitions'"),
        (["--workers", "0"], "Invalid value for '--workers'"),
        (["--log-level", "verbose"], "'verbose' is not one of debug, info, warning, error"),
    ],
)
def test_up_refuses_bad_flag_values_before_starting_anything(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    data = tmp_path / "data"
    err = _one_line(_run("up", "--data-dir", str(data), *args))
    assert err.startswith("warroom up: ") and expected in err
    assert "warroom up --help" in err
    assert not data.exists()  # nothing was created, locked or started


def test_up_refuses_an_unusable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    err = _one_line(_run("up", "--data-dir", str(blocker / "data")))
    assert err == (
        f"warroom up: cannot create the data dir {blocker / 'data'}: Not a directory; "
        f"pass a writable --data-dir"
    )


def test_up_refuses_a_taken_web_port(tmp_path: Path, busy_port: int) -> None:
    err = _one_line(_run("up", "--data-dir", str(tmp_path / "d"), "--web-port", str(busy_port)))
    assert f"the worker's web port 127.0.0.1:{busy_port} is taken" in err
    assert "--web-port 0" in err
    # refused before anything started: no broker log, no worker log
    assert not (tmp_path / "d" / "logs").exists()


def test_up_refuses_unreachable_kafka_and_store(tmp_path: Path) -> None:
    err = _one_line(_run("up", "--data-dir", str(tmp_path / "k"), "--kafka", DEAD_KAFKA))
    assert err.startswith(f"warroom up: cannot reach Kafka at {DEAD_KAFKA}")
    err = _one_line(
        _run("up", "--data-dir", str(tmp_path / "s"), "--store", "clickhouse://127.0.0.1:1/x")
    )
    assert err.startswith("warroom up: cannot reach the store clickhouse://default@127.0.0.1:1/x")
    err = _one_line(_run("up", "--data-dir", str(tmp_path / "u"), "--store", "chdb://rel/path"))
    assert err.startswith("warroom up: --store: chdb URL")


def test_producers_refuse_unreachable_kafka_in_one_line(tmp_path: Path, event: Path) -> None:
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_bytes(event.read_bytes() + b"\n")
    for args in (
        ["submit", str(event)],
        ["replay", str(jsonl)],
        ["simulate", "--duration", "1"],
    ):
        res = _run(*args, "--kafka", DEAD_KAFKA)
        assert "Traceback" not in res.stderr, res.stderr
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        # the line saying where it connects, then the one saying it cannot
        assert lines == [
            f"warroom {args[0]}: Kafka {DEAD_KAFKA} (--kafka)",
            f"warroom {args[0]}: cannot reach Kafka at {DEAD_KAFKA}: nothing answers there "
            "(--kafka); check the address or start `warroom up`",
        ], res.stderr


def test_flags_are_checked_before_kafka_is_asked(tmp_path: Path) -> None:
    # a bad duration is refused even though the Kafka address is dead: no connect was tried
    err = _one_line(_run("simulate", "--duration", "-1", "--kafka", DEAD_KAFKA))
    assert "Invalid value for '--duration'" in err


def test_query_refuses_an_unreachable_store(tmp_path: Path) -> None:
    err = _one_line(
        _run(
            "query",
            "SELECT 1",
            "--store",
            "clickhouse://127.0.0.1:1/x",
            "--data-dir",
            str(tmp_path),
        )
    )
    assert err.startswith("warroom query: cannot reach the store")


def test_a_worker_start_failure_shows_its_reason(tmp_path: Path) -> None:
    """The worker cannot start (its alert rules file is missing): `up` shows the reason the
    worker logged, not only where its log is."""
    data = tmp_path / "data"
    res = _run(
        "up",
        "--data-dir",
        str(data),
        "--web-port",
        "0",
        "--no-simulator",
        WARROOM_ALERT_RULES=str(tmp_path / "missing-rules.yaml"),
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("warroom up:")]
    assert len(lines) == 1, res.stderr
    assert re.match(
        r"warroom up: the worker exited at start \(code 2\): alerting cannot start", lines[0]
    )
    assert "missing-rules.yaml" in lines[0] and str(data / "logs" / "worker.log") in lines[0]


def test_help_shows_no_type_after_plain_flags() -> None:
    for command in (["up"], ["submit"], ["status"]):
        res = _run(*command, "--help")
        assert res.returncode == 0
        assert "<bool>" not in res.stdout
        assert "--help" in res.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"WARROOM_RETAIN_METRIC_BUCKETS_DAYS": "1"},
            "WARROOM_RETAIN_METRIC_BUCKETS_DAYS=1 is shorter than the 2 days the dashboards "
            "read at minute grain: set 2 or more (0 keeps forever)",
        ),
        (
            {"WARROOM_RETAIN_METRIC_BUCKETS_HOURLY_DAYS": "5000"},
            "WARROOM_RETAIN_METRIC_BUCKETS_HOURLY_DAYS=5000 outlives "
            "WARROOM_RETAIN_METRIC_BUCKETS_DAILY_DAYS=3653: metric_buckets_hourly must not keep "
            "rows longer than its rollup metric_buckets_daily; lower "
            "WARROOM_RETAIN_METRIC_BUCKETS_HOURLY_DAYS or raise "
            "WARROOM_RETAIN_METRIC_BUCKETS_DAILY_DAYS",
        ),
        (
            {"WARROOM_RETAIN_QUALITY_BUCKETS_DAYS": "0"},
            "WARROOM_RETAIN_QUALITY_BUCKETS_DAYS=0 (keep forever) outlives "
            "WARROOM_RETAIN_QUALITY_BUCKETS_HOURLY_DAYS=400: quality_buckets must not keep rows "
            "longer than its rollup quality_buckets_hourly; lower "
            "WARROOM_RETAIN_QUALITY_BUCKETS_DAYS or raise "
            "WARROOM_RETAIN_QUALITY_BUCKETS_HOURLY_DAYS",
        ),
        (
            {"WARROOM_RETAIN_DEAD_LETTERS_DAYS": "-1"},
            "WARROOM_RETAIN_DEAD_LETTERS_DAYS=-1: give a number of days, or 0 to keep forever",
        ),
        (
            {"WARROOM_RETAIN_DEAD_LETTERS_DAYS": "a month"},
            "WARROOM_RETAIN_DEAD_LETTERS_DAYS='a month' is not a valid int",
        ),
    ],
)
def test_a_retention_that_cannot_stand_is_refused_before_the_store_opens(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    store = tmp_path / "store"
    err = _one_line(_run("migrate", "--store", f"chdb://{store}", **env))
    assert err == f"warroom: {expected}"
    assert not store.exists()  # no store was created, no TTL touched


def test_a_buffer_limit_smaller_than_a_gauge_snapshot_is_refused(tmp_path: Path) -> None:
    """Below two gauge snapshots of the whole country the buffer is full after every snapshot
    and consumption would pause after each one (seen: a worker that never caught up)."""
    err = _one_line(
        _run("worker", WARROOM_DATA_DIR=str(tmp_path), WARROOM_MAX_BUFFERED_ROWS="4000")
    )
    assert err == (
        "warroom: WARROOM_MAX_BUFFERED_ROWS=4000 is below 20,000: one gauge snapshot of 928 "
        "districts is ~10,000 rows; set 20000 or more"
    )
