"""`up`'s restart policy on real (short-lived) child processes: a dying worker comes back after
a growing delay, one that keeps dying stops `up` with the reason, a simulator is let go."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from warroom import up
from warroom.up import UpError, _Child, _supervise


def _child(tmp_path: Path, name: str, code: str) -> _Child:
    return _Child(name, [sys.executable, "-c", code], {}, tmp_path / f"{name}.log")


def _until(children: list[_Child], console: Console, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _supervise(children, console)
        time.sleep(0.01)


def test_a_worker_that_keeps_crashing_is_restarted_with_backoff_then_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(up, "RESTART_MAX_DELAY_S", 0.05)
    out = io.StringIO()
    console = Console(file=out, width=300)
    crash = "import sys; print('store is gone', file=sys.stderr); sys.exit(3)"
    worker = _child(tmp_path, "worker", crash)
    children = [worker]
    with pytest.raises(UpError) as err:
        _until(children, console, 20)
    assert "keeps crashing (5 restarts in 5 min)" in str(err.value)
    assert "store is gone" in str(err.value)
    text = out.getvalue()
    assert text.count("the worker exited unexpectedly (code 3): store is gone") == 5
    assert text.count("worker: restarted (pid") == 5
    assert len(worker.restarts) == up.MAX_RESTARTS
    worker.close()


def test_the_backoff_doubles(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=300)
    worker = _child(tmp_path, "worker", "raise SystemExit(1)")
    worker.proc.wait()
    worker.restarts = [time.monotonic()] * 3  # three restarts in the window already
    _supervise([worker], console)
    assert "restarting it in 8s" in out.getvalue()
    assert worker.restart_at is not None and worker.restart_at - time.monotonic() > 7
    worker.close()


def test_a_simulator_that_ends_is_let_go_and_the_rest_keeps_running(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=300)
    sim = _child(tmp_path, "simulator", "raise SystemExit(0)")
    worker = _child(tmp_path, "worker", "import time; time.sleep(30)")
    children = [worker, sim]
    try:
        sim.proc.wait()
        assert _supervise(children, console) is False
        assert children == [worker]
        assert "the simulator finished" in out.getvalue()
        assert worker.alive() and worker.restart_at is None
    finally:
        worker.kill()
        worker.proc.wait()
        worker.close()
