"""A real Prometheus (Debian's /usr/bin/prometheus) for tests: temp storage, loopback, free port.

    prom = PrometheusServer(targets={"worker": ["127.0.0.1:6066"]}, scrape_interval="1s")
    prom.start()
    prom.add_targets("app", ["127.0.0.1:7000"])   # later targets, via file discovery
    prom.wait_for_target("app")
    prom.query('rate(warroom_events_accepted_total[5s])')
    prom.stop()

Rule files (`rule_files=[...]`) and Alertmanagers (`alertmanagers=["127.0.0.1:9093"]`) are
optional, for the alert rules' tests. Stops only the process it started.
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from streams.broker import free_port

__all__ = ["PROMETHEUS_BIN", "PrometheusError", "PrometheusServer", "available"]

PROMETHEUS_BIN = "/usr/bin/prometheus"


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


def available(binary: str = PROMETHEUS_BIN) -> bool:
    return Path(binary).exists() or shutil.which("prometheus") is not None


class PrometheusServer:
    """One Prometheus process. `targets` maps a job name to host:port targets scraped at
    `/metrics` (or `metrics_path`); `add_targets` adds or replaces a job's targets at run time
    through file-based discovery, without a restart."""

    def __init__(
        self,
        *,
        targets: Mapping[str, Sequence[str]] | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str | None = None,
        metrics_path: str = "/metrics",
        rule_files: Sequence[str | Path] = (),
        alertmanagers: Sequence[str] = (),
        port: int = 0,
        data_dir: str | Path | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.metrics_path = metrics_path
        self.rule_files = [str(Path(p).resolve()) for p in rule_files]
        self.alertmanagers = list(alertmanagers)
        self.binary = binary or (
            PROMETHEUS_BIN if Path(PROMETHEUS_BIN).exists() else shutil.which("prometheus") or ""
        )
        self.extra_args = list(extra_args)
        self._own_dir = data_dir is None
        self.dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="prom-"))
        self._sd_dir = self.dir / "targets"
        self._sd_dir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        for job, addrs in (targets or {}).items():
            self.add_targets(job, addrs)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "scrape_configs": [
                {
                    "job_name": "file_sd",
                    "metrics_path": self.metrics_path,
                    "file_sd_configs": [
                        {"files": [str(self._sd_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        if self.rule_files:
            cfg["rule_files"] = self.rule_files
        if self.alertmanagers:
            cfg["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]
            }
        return cfg

    def add_targets(self, job: str, targets: Sequence[str], **labels: str) -> None:
        """Scrape `targets` as job `job` (replacing that job's earlier targets)."""
        group = [{"targets": list(targets), "labels": {"job": job, **labels}}]
        tmp = self._sd_dir / f".{job}.tmp"
        tmp.write_text(json.dumps(group))
        tmp.replace(self._sd_dir / f"{job}.json")  # atomic: Prometheus never reads half a file

    def start(self, timeout: float = 30.0) -> str:
        if not self.binary:
            raise PrometheusError("prometheus is not installed (Debian package prometheus)")
        config = self.dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process lifetime
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'tsdb'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {self._proc.returncode}: {self._tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self.url
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(f"prometheus not ready within {timeout}s: {self._tail()}")

    def _tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP API --------------------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its `data`, raising on an error status."""
        qs = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{qs}" if qs else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query; the result list (vector: [{"metric": {...}, "value": [t, "v"]}])."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The single value of an instant query (None when the result is empty)."""
        result = self.query(expr, at)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{expr} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> Any:
        return self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step
        )["result"]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def reload(self) -> None:
        """Re-read the config and rule files (after editing them)."""
        req = urllib.request.Request(self.url + "/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def wait_for(
        self, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25
    ) -> Any:
        """Poll `check` until it returns something truthy; that value is returned."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        raise PrometheusError(f"condition not met within {timeout}s (last: {last!r})")

    def wait_for_target(self, job: str, timeout: float = 30.0) -> None:
        """Until every target of `job` has been scraped successfully at least once."""

        def healthy() -> bool:
            ts = [t for t in self.targets() if t["labels"].get("job") == job]
            return bool(ts) and all(t["health"] == "up" for t in ts)

        self.wait_for(healthy, timeout)
