"""`warroom up` as a terminal runs it: Ctrl-C to the foreground process group stops everything
in order (simulator, worker with its final checkpoint, broker) and loses no acknowledged event;
a second `up` on the same data dir is refused without touching the first; the other commands
find the running one."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

WARROOM = [sys.executable, "-m", "warroom.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, "COLUMNS": "120", **extra}


def _alive(pid: int) -> bool:
    """Running, not just present: an orphan that exited stays a zombie until PID 1 reaps it,
    and a container's PID 1 may never do that."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _wait_for(what: str, check: object, timeout: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _simulator_acknowledged(log: Path) -> int | None:
    """The simulator's final count of acknowledged sends (its 'simulator stopped' record)."""
    if not log.exists():
        return None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = orjson.loads(line)
            if record.get("msg") == "simulator stopped":
                return int(record["sent"])
    return None


def _sending(log: Path) -> bool:
    return (
        log.exists()
        and re.search(r"sending: [1-9][\d,]* acknowledged", log.read_text()) is not None
    )


def _ready(worker_json: Path) -> bool:
    """Whether the worker answers /readyz with 200 (it has recovered and caught up)."""
    try:
        where = orjson.loads(worker_json.read_bytes())
        url = f"http://{where['host']}:{where['port']}/readyz"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except (OSError, ValueError, KeyError):
        return False


class _Terminal:
    """`warroom up` on a pseudo-terminal: a session leader with the pty as its controlling
    terminal, as a shell starts it; the output is drained so the child never blocks."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: pty.fork made it a session leader on the pty
            os.execve(args[0], args, env)
        self.output = bytearray()
        self.code: int | None = None
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.5)
                if ready:
                    chunk = os.read(self.fd, 65536)
                    if not chunk:
                        return
                    self.output += chunk
            except OSError:
                return

    def ctrl_c(self) -> None:
        """What the terminal does on Ctrl-C: SIGINT to its foreground process group."""
        os.killpg(os.tcgetpgrp(self.fd), signal.SIGINT)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
                self._reader.join(5)
            elif time.monotonic() >= deadline:
                break
            else:
                time.sleep(0.05)
        return self.code

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def kill(self) -> None:
        if self.wait(0) is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait(10)
        os.close(self.fd)


def test_ctrl_c_in_a_terminal_stops_in_order_and_loses_no_acknowledged_event(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    term = _Terminal(
        [*WARROOM, "up", "--data-dir", str(data), "--web-port", "0", "--rate", "300"],
        _env(WARROOM_LOG_FORMAT="json"),
    )
    try:
        sim_log = data / "logs" / "simulator.log"
        _wait_for("the simulator's first acknowledged events", lambda: _sending(sim_log), 180)
        # Ctrl-C in steady state: a worker still starting (slow on a loaded machine) has read
        # nothing yet, and up's bounded drain then stops without what the memory log held
        _wait_for("the worker to be ready", lambda: _ready(data / "worker.json"), 180)
        run = orjson.loads((data / "run.json").read_bytes())
        assert run["pid"] == term.pid
        time.sleep(2)
        term.ctrl_c()
        t0 = time.monotonic()
        code = term.wait(60)
        took = time.monotonic() - t0
        out = term.text()
        (tmp_path / "terminal.txt").write_text(out)  # for a person reading a failure
        assert code == 0, out[-3000:]
        assert took < 10, f"stopping took {took:.1f}s"
    finally:
        term.kill()
    # only `up` got the Ctrl-C; it stopped every child, the broker included
    for name, pid in run["pids"].items():
        assert not _alive(pid), f"{name} (pid {pid}) still runs"
    assert "stopped with errors" not in out and "code -9" not in out
    assert "had not read" not in out
    assert re.search(r"worker: final flush and checkpoint done \(stop took \d+\.\ds\)", out)
    worker_log = (data / "logs" / "worker.log").read_text()
    assert "final flush and checkpoint done" in worker_log
    assert "Unable connect to node" not in worker_log  # the broker outlived the worker
    assert not (data / "run.json").exists()
    acknowledged = _simulator_acknowledged(sim_log)
    assert acknowledged, sim_log.read_text()[-2000:]
    # every record the simulator had acknowledged is counted once in the store: accepted,
    # rejected (dead-lettered) or a counted duplicate; read directly now that up has exited
    res = subprocess.run(
        [
            *WARROOM,
            "query",
            "SELECT sum(count) FROM quality_buckets FINAL "
            "WHERE outcome IN ('accepted', 'rejected', 'duplicate')",
            "--format",
            "TSV",
            "--data-dir",
            str(data),
        ],
        env=_env(WARROOM_WEB_PORT=str(_free_port())),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "opened directly" in res.stderr
    assert int(res.stdout) == acknowledged


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_second_ctrl_c_forces_the_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    term = _Terminal(
        [*WARROOM, "up", "--data-dir", str(data), "--web-port", "0", "--no-simulator"],
        _env(WARROOM_LOG_FORMAT="json"),
    )
    try:
        _wait_for("run.json", lambda: (data / "run.json").exists(), 180)
        run = orjson.loads((data / "run.json").read_bytes())
        term.ctrl_c()
        time.sleep(0.3)  # the worker is settling its final checkpoint: do not wait for it
        term.ctrl_c()
        t0 = time.monotonic()
        code = term.wait(30)
        took = time.monotonic() - t0
    finally:
        term.kill()
    assert code == 130, term.text()[-2000:]
    assert took < 5, f"a forced stop took {took:.1f}s"
    assert "forced stop (second Ctrl-C)" in term.text()
    for name, pid in run["pids"].items():
        assert not _alive(pid), f"{name} (pid {pid}) still runs"
    assert not (data / "run.json").exists()


def _up_in_background(data: Path, stdout: int, stderr: int) -> subprocess.Popen[bytes]:
    """`warroom up` without a terminal or a simulator, in a session of its own."""
    return subprocess.Popen(
        [*WARROOM, "up", "--data-dir", str(data), "--web-port", "0", "--no-simulator"],
        env=_env(WARROOM_LOG_FORMAT="json"),
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def test_children_do_not_outlive_a_killed_up(tmp_path: Path) -> None:
    """`up` killed outright (no chance to stop anyone): its worker still stops, since the
    children's own sessions would otherwise keep them running unowned."""
    data = tmp_path / "data"
    proc = _up_in_background(data, subprocess.DEVNULL, subprocess.DEVNULL)
    broker = None
    try:
        _wait_for("run.json", lambda: (data / "run.json").exists(), 180)
        pids = orjson.loads((data / "run.json").read_bytes())["pids"]
        broker = pids.pop("broker", None)
        proc.kill()
        proc.wait(10)
        for name, pid in pids.items():
            # a worker stops within WARROOM_STOP_TIMEOUT (20s) even when its stop hangs
            try:
                _wait_for(f"the {name} (pid {pid}) to exit", lambda pid=pid: not _alive(pid), 60)
            except AssertionError as exc:
                log = (data / "logs" / f"{name}.log").read_text(errors="replace")
                raise AssertionError(f"{exc}; its log ends:\n{log[-3000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
        if broker is not None and _alive(broker):  # EmbeddedBroker does not follow its parent
            os.kill(broker, signal.SIGKILL)


def test_ctrl_c_still_stops_everything_when_the_reader_of_the_output_dies_with_it(
    tmp_path: Path,
) -> None:
    """`warroom up | tee up.log`, then Ctrl-C: the terminal's SIGINT stops tee too, so every line
    `up` prints on its way out meets a closed pipe. It still stops the worker and the broker
    (it used to stop at its first line, "stopping: …", and left the broker running)."""
    data = tmp_path / "data"
    proc = _up_in_background(data, subprocess.PIPE, subprocess.STDOUT)
    pids: dict[str, int] = {}
    try:
        _wait_for("run.json", lambda: (data / "run.json").exists(), 180)
        pids = orjson.loads((data / "run.json").read_bytes())["pids"]
        assert "broker" in pids and "worker" in pids, pids
        assert proc.stdout is not None
        proc.stdout.close()  # the reader dies ...
        os.kill(proc.pid, signal.SIGINT)  # ... with the same Ctrl-C
        code = proc.wait(60)
        for name, pid in pids.items():
            _wait_for(f"the {name} (pid {pid}) to exit", lambda pid=pid: not _alive(pid), 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not (data / "run.json").exists()
    assert code in (0, 1), code
