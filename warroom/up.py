"""`warroom up`: broker, worker and simulator on one machine, a live summary, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from streams.broker import BrokerError, EmbeddedBroker, ensure_topics
from streams.topics import Topics
from warroom import telemetry
from warroom.settings import Settings

__all__ = ["UpOptions", "run_up"]


@dataclass
class UpOptions:
    duration: float | None = None
    simulate: bool = True
    rate: float | None = None  # None: the simulator's live mode (backfill, then events dated now)
    seed: int = 1
    speedup: float | None = None  # with rate: the paced mode, for benchmarks
    workers: int = 1
    summary_every: float = 5.0
    extra_sim_args: list[str] = field(default_factory=list)


class UpError(RuntimeError):
    """A child could not start or died; the message says which and where its log is."""


class _Child:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float) -> int:
        """SIGTERM (the children stop cleanly on it), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def _warroom(*args: str) -> list[str]:
    return [sys.executable, "-m", "warroom.cli", *args]


def _wait_worker(data_dir: Path, child: _Child, timeout: float) -> str:
    """The worker writes its web address to worker.json once it listens; then /healthz."""
    port_file = data_dir / "worker.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise UpError(
                f"the worker exited at start (code {child.proc.returncode}); see {child.log_path}"
            )
        if port_file.exists():
            try:
                info = orjson.loads(port_file.read_bytes())
                url = f"http://{info['host']}:{info['port']}"
                with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return url
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(0.2)
    raise UpError(f"the worker did not answer within {timeout:.0f}s; see {child.log_path}")


def run_up(settings: Settings, options: UpOptions, out: IO[str] = sys.stdout) -> int:
    """Start everything, show the summary every few seconds, stop on Ctrl-C or duration."""
    from rich.console import Console

    from warroom.status import Poller, StatusError, render

    console = Console(file=out)
    data_dir = settings.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (data_dir / "worker.json").unlink(missing_ok=True)
    # the worker and the simulator share one /metrics (prometheus_client multiprocess mode)
    telemetry.prepare_multiprocess_dir(data_dir / "metrics")

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    broker: EmbeddedBroker | None = None
    children: list[_Child] = []
    code = 0
    try:
        if settings.kafka:
            bootstrap = settings.kafka
            console.print(f"Kafka: {bootstrap} (external)")
        else:
            broker = EmbeddedBroker(log_path=logs / "tansu.log")
            bootstrap = broker.start()
            console.print(f"Kafka: {bootstrap} (embedded Tansu, memory storage)")
        topics = Topics(settings.topic_prefix)
        asyncio.run(ensure_topics(bootstrap, topics.all(), settings.partitions))
        env = {
            **os.environ,
            "WARROOM_KAFKA": bootstrap,
            "WARROOM_DATA_DIR": str(data_dir),
            "WARROOM_STORE": settings.store_url,
            "WARROOM_PARTITIONS": str(settings.partitions),
            "WARROOM_WEB_PORT": str(settings.web_port),
            "WARROOM_LOG_FORMAT": "json",
        }
        worker = _Child("worker", _warroom("worker"), env, logs / "worker.log")
        children.append(worker)
        url = _wait_worker(data_dir, worker, timeout=90)
        for i in range(1, options.workers):
            # more workers share the partitions; chdb is one process's, so they write
            # through the first worker's store
            helper_dir = data_dir / f"worker-{i}"
            helper_env = {
                **env,
                "WARROOM_DATA_DIR": str(helper_dir),
                "WARROOM_STORE": "chdb+http://" + url.removeprefix("http://"),
                "WARROOM_WEB_PORT": "0",
            }
            helper = _Child(f"worker-{i}", _warroom("worker"), helper_env, logs / f"worker-{i}.log")
            children.append(helper)
            _wait_worker(helper_dir, helper, timeout=90)
        console.print(f"Worker: {url}  (/metrics /healthz /readyz; ClickHouse HTTP at {url}/)")
        console.print(f"Store:  {settings.store_url}")
        console.print(f'Query:  warroom query "SELECT ..." --url {url}')
        console.print(f"Logs:   {logs}")
        if options.simulate:
            sim_args = ["simulate", "--seed", str(options.seed)]
            if options.rate is not None:
                sim_args += ["--rate", str(options.rate)]
            if options.speedup is not None:
                sim_args += ["--speedup", str(options.speedup)]
            sim_args += options.extra_sim_args
            children.append(_Child("simulator", _warroom(*sim_args), env, logs / "simulator.log"))
        poller = Poller(url)
        started = time.monotonic()
        next_summary = started + min(options.summary_every, 3.0)
        while not stopping:
            if options.duration is not None and time.monotonic() - started >= options.duration:
                break
            for child in children:
                if not child.alive():
                    raise UpError(
                        f"the {child.name} exited unexpectedly (code {child.proc.returncode}); "
                        f"see {child.log_path}"
                    )
            if time.monotonic() >= next_summary:
                next_summary += options.summary_every
                try:
                    console.print(render(poller.poll()))
                except StatusError as exc:
                    console.print(f"[yellow]summary unavailable: {exc}[/]")
            time.sleep(0.2)
    except (UpError, BrokerError) as exc:
        console.print(f"[red]warroom up: {exc}[/]")
        code = 1
    finally:
        # producers first, so the worker can drain what was sent, then the worker, then Kafka
        for child in reversed(children):
            rc = child.stop(timeout=30)
            if rc not in (0, -signal.SIGTERM) and code == 0:
                console.print(
                    f"[red]the {child.name} stopped with code {rc}; see {child.log_path}[/]"
                )
                code = 1
            telemetry.mark_process_dead(child.proc.pid)
        if broker is not None:
            broker.stop()
    console.print("stopped" if code == 0 else "stopped with errors")
    return code
