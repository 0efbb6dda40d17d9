"""A real Alertmanager (Debian's /usr/bin/prometheus-alertmanager) for tests: loopback, free port.

    am = AlertmanagerServer()
    am.start()
    am.alerts()                 # GET /api/v2/alerts (active alerts only, as Alertmanager serves)
    am.stop(); am.start()       # same port and storage: a restart, for "receiver down" tests
    am.close()                  # stop and remove the temp folder

Clustering is off (`--cluster.listen-address=`); the only receiver discards what it routes, since
the tests read Alertmanager's own API. Stops only the process it started.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from streams.broker import free_port

__all__ = ["ALERTMANAGER_BIN", "AlertmanagerError", "AlertmanagerServer", "available"]

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"


class AlertmanagerError(RuntimeError):
    """Alertmanager did not start or its API answered with an error."""


def available(binary: str = ALERTMANAGER_BIN) -> bool:
    return Path(binary).exists() or shutil.which("prometheus-alertmanager") is not None


class AlertmanagerServer:
    def __init__(self, *, port: int = 0, binary: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.binary = binary or (
            ALERTMANAGER_BIN
            if Path(ALERTMANAGER_BIN).exists()
            else shutil.which("prometheus-alertmanager") or ""
        )
        self.dir = Path(tempfile.mkdtemp(prefix="alertmanager-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "alertmanager.log"

    def config(self) -> dict[str, Any]:
        return {
            "route": {
                "receiver": "discard",
                "group_by": ["district_code", "alertname"],
                "group_wait": "1h",  # nothing is sent on; the tests read the API
            },
            "receivers": [{"name": "discard"}],
        }

    def start(self, timeout: float = 30.0) -> str:
        if not self.binary:
            raise AlertmanagerError("prometheus-alertmanager is not installed (Debian package)")
        config = self.dir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process lifetime
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AlertmanagerError(
                    f"alertmanager exited with {self._proc.returncode}: {self._tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self.url
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise AlertmanagerError(f"alertmanager not ready within {timeout}s: {self._tail()}")

    def _tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the process; its storage stays, so start() again is a restart."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- API v2 -----------------------------------------------------------------------------

    def alerts(self, *filters: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts, optionally with label matchers like 'district_code="5001"'."""
        qs = urllib.parse.urlencode([("filter", f) for f in filters])
        url = f"{self.url}/api/v2/alerts" + (f"?{qs}" if qs else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body: list[dict[str, Any]] = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise AlertmanagerError(f"GET {url}: {exc.code} {exc.read()[:300]!r}") from exc
        return body
