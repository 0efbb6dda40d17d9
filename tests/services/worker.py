"""A real `warroom worker` subprocess for tests: start, query its store, kill, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from sinks.retention import RULES

#: the store token every test worker gets, so a second one can write through the first
STORE_TOKEN = "test-store-token-0123456789abcdef"


class WorkerProcess:
    """One worker owning a chdb store under ``data_dir``; reads go through its HTTP endpoint."""

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "WARROOM_KAFKA": bootstrap,
            "WARROOM_TOPIC_PREFIX": topic_prefix,
            "WARROOM_DATA_DIR": str(data_dir),
            "WARROOM_STORE": f"chdb://{data_dir / 'clickhouse'}",
            "WARROOM_WEB_PORT": "0",
            # a worker writing through another's store (chdb+http://) needs the owner's token
            "WARROOM_STORE_TOKEN": STORE_TOKEN,
            "WARROOM_LOG_FORMAT": "json",
            "WARROOM_LOG_LEVEL": "info",
            "WARROOM_REBALANCE_TIMEOUT": "2",
            # the tests date their events days back on purpose: send what they raise
            # (tests/integration/alerts/test_alert_catchup.py checks the hold itself)
            "WARROOM_ALERT_NOTIFY_MAX_AGE_SECONDS": "0",
            # and at fixed dates (tests/integration/streams START_MS) that the wall clock
            # leaves behind: keep every row (tests/integration/sinks/test_sinks_retention.py
            # checks retention itself)
            **{rule.env: "0" for rule in RULES},
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"worker-{self.starts}.log"

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        return self.spawn().wait_started(timeout)

    def spawn(self) -> WorkerProcess:
        """Start the process without waiting (several workers can then start together)."""
        self.starts += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "worker.json").unlink(missing_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warroom.cli", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return self

    def wait_started(self, timeout: float = 90.0) -> WorkerProcess:
        """Until the worker's web server answers /healthz."""
        assert self.proc is not None
        port_file = self.data_dir / "worker.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}):\n{self.tail()}")
            if port_file.exists():
                try:
                    info = orjson.loads(port_file.read_bytes())
                    self.url = f"http://127.0.0.1:{info['port']}"
                    with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                        if r.status == 200:
                            return self
                except (OSError, ValueError, KeyError):
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"worker did not start:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM: a clean stop flushes, checkpoints and commits."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self) -> None:
        """SIGKILL: no flush, no checkpoint, no commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    # -- reads --------------------------------------------------------------------------------

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows as dicts, through the worker's ClickHouse-HTTP endpoint (JSON format)."""
        data = (sql + " FORMAT JSON").encode()
        req = urllib.request.Request(self.url + "/", data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = orjson.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"query failed: {exc.read().decode(errors='replace')}") from exc
        rows: list[dict[str, Any]] = body["data"]
        return rows

    def ready_check(self, name: str) -> bool:
        """Whether one /readyz check passes now."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=5) as r:
                body = orjson.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = orjson.loads(exc.read())
        return any(c["name"] == name and c["ok"] for c in body["checks"])

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            text: str = r.read().decode()
            return text

    def counter(self, name: str, **labels: str) -> float:
        """Sum of a counter's samples (optionally filtered by labels) from /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                if s.name != name:
                    continue
                if all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def wait_for(self, predicate: Any, timeout: float = 120.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker died while waiting for {what}:\n{self.tail()}")
            try:
                last = predicate()
                if last:
                    return
            except (OSError, RuntimeError) as exc:
                last = exc
            time.sleep(0.5)
        raise TimeoutError(
            f"timed out waiting for {what} (last: {last!r}); /readyz: {self.readiness()}\n"
            f"{self.tail()}"
        )

    def readiness(self) -> str:
        """The failing /readyz checks now, for a failure message (or why there is no answer)."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=5) as r:
                body = orjson.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = orjson.loads(exc.read())
        except OSError as exc:
            return f"no answer ({exc})"
        failing = [f"{c['name']}: {c['detail']}" for c in body["checks"] if not c["ok"]]
        return "; ".join(failing) or "ready"
