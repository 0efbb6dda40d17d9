"""`warroom up`: broker, worker and simulator on one machine, a live summary, a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from aiokafka.errors import KafkaError

from streams.broker import BrokerError, EmbeddedBroker, ensure_topics
from streams.topics import Topics
from warroom import drain, probe, runinfo, telemetry
from warroom.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["UpOptions", "run_up"]

#: under `up`, notifications older than this are recorded, not sent (alerts/catchup.py)
UP_NOTIFY_MAX_AGE_S = 900
#: how long a stop waits for the worker to read what the embedded broker holds
DRAIN_TIMEOUT_S = 6.0
#: a worker that dies is restarted after 1, 2, 4 … s (at most this), up to MAX_RESTARTS times
#: within RESTART_WINDOW_S; more than that and `up` stops with the reason
RESTART_MAX_DELAY_S = 30.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 300.0

#: the worker logs this once its rows, changelog and offsets are settled at a clean stop
FINAL_CHECKPOINT = "final flush and checkpoint done"


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
    stop_timeout: float = 8.0  # per stage: the simulator, then the workers


class UpError(RuntimeError):
    """A child could not start or died; the message says which, why, and where its log is."""


class UsageError(UpError):
    """Something the person running `up` can fix (flags, data dir, ports, Kafka, store): exit 2."""


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM when `up` dies without stopping it (SIGKILL, a crash),
    so that a child in its own session is never left running alone (Linux only)."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class _Child:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.reported = False  # its failure was already shown
        #: monotonic times of its restarts, and when the next one is due (None: running)
        self.restarts: list[float] = []
        self.restart_at: float | None = None
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # its own session: a terminal's Ctrl-C (sent to the foreground process group) reaches
        # only `up`, which then stops the children in order
        return subprocess.Popen(
            self.args,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_term_with_parent,
        )

    def respawn(self) -> None:
        """Start it again (same command, environment and log)."""
        self.restart_at = None
        self.restarts.append(time.monotonic())
        self.proc = self._spawn()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL its whole group; safe in a signal handler (it never waits)."""
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        self._log.close()

    def reason(self) -> str:
        return log_reason(self.log_path)


_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)+(?=[A-Za-z_]\w*(?:Error|Exception|Exit)\b)")


def log_reason(path: Path, max_len: int = 300) -> str:
    """The last error a child left in its log: an error record's message (JSON lines) or the
    last plain line (a traceback's last line, a CLI error), shortened to one line."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64_000))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(tail):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                record = orjson.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("level") in ("error", "critical"):
                text = str(record.get("msg", ""))
                exc = str(record.get("exc") or "").strip().splitlines()
                if exc and exc[-1] not in text:
                    text = f"{text}: {exc[-1]}" if text else exc[-1]
                return _one_line(text, max_len)
            continue
        return _one_line(line, max_len)
    return ""


def _one_line(text: str, max_len: int) -> str:
    text = _QUALIFIED.sub("", " ".join(text.split()))
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def _warroom(*args: str) -> list[str]:
    return [sys.executable, "-m", "warroom.cli", *args]


def _failed(child: _Child, what: str) -> UpError:
    child.reported = True
    reason = child.reason() or "no error in its log"
    return UpError(
        f"the {child.name} {what} (code {child.proc.returncode}): {reason} [{child.log_path}]"
    )


def _wait_worker(
    data_dir: Path, child: _Child, timeout: float, stopping: Callable[[], bool]
) -> str:
    """The worker writes its web address to worker.json once it listens; then /healthz."""
    port_file = data_dir / "worker.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stopping():
            raise _Interrupted
        if not child.alive():
            raise _failed(child, "exited at start")
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
    raise UpError(f"the worker did not answer within {timeout:.0f}s [{child.log_path}]")


def _check_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the data dir {data_dir}: {exc.strerror}; pass a writable --data-dir"
        ) from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise UsageError(f"the data dir {data_dir} is not writable; pass a writable --data-dir")


def _check_port(host: str, port: int) -> None:
    if port == 0:
        return
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"the worker's web port {host}:{port} is taken ({exc.strerror}): pass "
                f"--web-port 0 (any free port) or another port"
            ) from None


def _check_store(url: str) -> None:
    """Refuse a store that cannot work before anything starts: a bad URL, a chdb folder
    another process holds, a ClickHouse server that does not answer."""
    from sinks.url import StoreURLError, parse_store_url

    try:
        parsed = parse_store_url(url)
    except StoreURLError as exc:
        raise UsageError(f"--store: {exc}") from None
    if parsed.kind == "chdb":
        assert parsed.path is not None
        holder = runinfo.store_holder(parsed.path)
        if holder is not None:
            raise UsageError(
                f"the store {parsed.path} is in use by another process (pid {holder}); stop it "
                f"or pass another --store / --data-dir"
            )
        return
    try:
        probe.check_store(url)
    except probe.Unreachable as exc:
        raise UsageError(str(exc)) from None


def _check_kafka(bootstrap: str) -> None:
    try:
        probe.check_kafka(bootstrap)
    except probe.Unreachable as exc:
        raise UsageError(
            f"{exc}; check --kafka / WARROOM_KAFKA, or leave both unset for the embedded broker"
        ) from None


def _stop_children(
    children: list[_Child],
    timeout: float,
    forced: Callable[[], bool],
    out: Callable[[str], None],
    drain: Callable[[], None] | None = None,
) -> tuple[int, bool]:
    """Stop in order — producers, then (after `drain`) the helper workers, then the
    store-owning worker — each stage after the previous one has exited. Returns (exit code,
    worker checkpointed)."""
    code = 0
    producers = [c for c in children if c.name == "simulator"]
    workers = [c for c in reversed(children) if c.name != "simulator"]
    drained = drain is None
    for child in [*producers, *workers]:
        producer = child in producers
        if child.restart_at is not None:  # died and waits for its restart: nothing to stop
            child.close()
            continue
        if not producer and drain is not None and not drained:
            drained = True
            if not forced() and all(w.alive() for w in workers):
                drain()
        child.terminate()
        # a producer that does not stop in time loses only what it never got acknowledged
        grace = 0.5 if forced() else min(timeout, 4.0) if producer else timeout
        rc = child.wait(grace)
        if rc is None:
            child.kill()
            rc = child.wait(5.0)
            if not forced():
                out(f"the {child.name} did not stop within {grace:.0f}s; killed it")
                code = code if producer else 1
        elif rc not in (0, -signal.SIGTERM) and not forced() and not child.reported:
            out(f"the {child.name} stopped with code {rc}: {child.reason()} [{child.log_path}]")
            code = 1
        child.close()
        telemetry.mark_process_dead(child.proc.pid)
    checkpointed = any(
        c.name == "worker" and FINAL_CHECKPOINT in _tail(c.log_path) for c in children
    )
    return code, checkpointed


def _supervise(children: list[_Child], console: Console) -> bool:
    """Restart a worker that died, with backoff; let a finished or crashed simulator go.
    Raises UpError when a worker keeps crashing. Returns whether a process was started."""
    now = time.monotonic()
    started = False
    for child in list(children):
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.respawn()
                console.print(
                    f"{child.name}: restarted (pid {child.proc.pid})",
                    style="yellow",
                    highlight=False,
                )
                started = True
            continue
        if child.alive():
            continue
        rc = child.proc.returncode
        telemetry.mark_process_dead(child.proc.pid)
        if child.name == "simulator":
            children.remove(child)
            child.close()
            what = "finished" if rc == 0 else f"stopped with code {rc}: {child.reason()}"
            console.print(
                f"the simulator {what} [{child.log_path}]; the worker keeps running "
                "(`warroom simulate` sends more)",
                style="yellow" if rc else None,
                markup=False,
                highlight=False,
            )
            continue
        recent = [t for t in child.restarts if now - t < RESTART_WINDOW_S]
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"code {rc}"
        if len(recent) >= MAX_RESTARTS:
            raise _failed(
                child,
                f"keeps crashing ({len(recent)} restarts in {RESTART_WINDOW_S / 60:.0f} min)",
            )
        delay = min(RESTART_MAX_DELAY_S, 2.0 ** len(recent))
        child.restart_at = now + delay
        console.print(
            f"the {child.name} exited unexpectedly ({how}): "
            f"{child.reason() or 'no error in its log'} [{child.log_path}]; "
            f"restarting it in {delay:.0f}s",
            style="yellow",
            markup=False,
            highlight=False,
        )
    return started


def _drain(
    settings: Settings, bootstrap: str, forced: Callable[[], bool], out: Callable[[str], None]
) -> None:
    """Let the worker read and commit what the simulator had acknowledged, bounded."""
    topics = Topics(settings.topic_prefix)
    inputs = [topics.grievance, topics.project]
    inputs += [topics.backfill_for(s) for s in ("grievance", "project")]
    group = f"{settings.topic_prefix}{settings.group_id}"
    unread = drain.unread_after_drain(bootstrap, group, inputs, DRAIN_TIMEOUT_S, forced)
    if unread > 0 and not forced():
        out(
            f"the worker had not read {unread:,} events after {DRAIN_TIMEOUT_S:.0f}s; "
            "stopping without them (the embedded broker keeps its log in memory only)"
        )


def _say(console: Console, text: str, **kwargs: Any) -> None:
    """Print a line on the way out. The reader of our output may have stopped with the same
    Ctrl-C (`warroom up | tee up.log`): rich then silences the console and raises SystemExit,
    and nothing the stop still has to do may be skipped for a line nobody can read."""
    try:
        console.print(text, **kwargs)
    except (OSError, SystemExit):
        console.quiet = True


def _pids(children: list[_Child], broker: EmbeddedBroker | None) -> dict[str, int]:
    pids = {c.name: c.proc.pid for c in children}
    # EmbeddedBroker keeps its process private (streams/broker.py is another room's file)
    broker_proc = getattr(broker, "_proc", None)
    if broker_proc is not None:
        pids["broker"] = int(broker_proc.pid)
    return pids


def _tail(path: Path, size: int = 200_000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def run_up(settings: Settings, options: UpOptions, out: IO[str] = sys.stdout) -> int:
    """Start everything, show the summary every few seconds, stop on Ctrl-C or duration.

    Exit status: 0 clean stop, 1 a child failed, 2 a usage error (nothing was started),
    130 a forced stop (second Ctrl-C)."""
    from rich.console import Console

    console = Console(file=out)

    def error(text: str) -> None:
        # plain, unwrapped, on stderr: one line a person can act on (when anyone still reads
        # it: a closed pipe must not stop the stop, see _say)
        with contextlib.suppress(OSError):
            print(f"warroom up: {text}", file=sys.stderr, flush=True)

    data_dir = settings.data_dir.resolve()
    lock = runinfo.UpLock(data_dir)
    try:
        _check_data_dir(data_dir)
        lock.acquire()  # before anything in the data dir is touched
    except runinfo.AlreadyRunning as exc:
        error(str(exc))
        return 2
    except UsageError as exc:
        error(str(exc))
        return 2
    except OSError as exc:
        error(f"cannot use the data dir {data_dir}: {exc.strerror}; pass a writable --data-dir")
        return 2
    try:
        return _run_locked(settings, options, data_dir, console, error)
    finally:
        runinfo.remove(data_dir)
        lock.release()


def _run_locked(
    settings: Settings,
    options: UpOptions,
    data_dir: Path,
    console: Console,
    error: Callable[[str], None],
) -> int:
    from warroom.status import Poller, StatusError, render

    stopping = False
    forced = False
    children: list[_Child] = []

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping, forced
        if stopping:  # the second Ctrl-C: stop waiting for anyone
            forced = True
            for child in children:
                child.kill()
        stopping = True

    # SIGHUP too: the children have their own sessions, a closed terminal would not reach them
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    try:
        _check_port(settings.web_host, settings.web_port)
        _check_store(settings.store_url)
        if settings.kafka:
            _check_kafka(settings.kafka)
    except UsageError as exc:
        error(str(exc))
        return 2
    if stopping:  # Ctrl-C while the checks ran: nothing was started
        return 0

    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (data_dir / "worker.json").unlink(missing_ok=True)
    # the worker and the simulator share one /metrics (prometheus_client multiprocess mode)
    telemetry.prepare_multiprocess_dir(data_dir / "metrics")

    broker: EmbeddedBroker | None = None
    bootstrap = ""
    code = 0
    try:
        if settings.kafka:
            bootstrap = settings.kafka
            console.print(f"Kafka: {bootstrap} (external)")
        else:
            broker = EmbeddedBroker(log_path=logs / "tansu.log")
            try:
                bootstrap = broker.start()
            except BrokerError as exc:
                reason = log_reason(logs / "tansu.log")
                raise UpError(
                    f"the broker could not start: {exc}"
                    + (f": {reason}" if reason else "")
                    + f" [{logs / 'tansu.log'}]"
                ) from None
            console.print(f"Kafka: {bootstrap} (embedded Tansu, memory storage)")
        if stopping:
            raise _Interrupted
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
            # the simulator starts with weeks of generated history: page nobody about it (a
            # setting in the environment still wins)
            "WARROOM_ALERT_NOTIFY_MAX_AGE_SECONDS": os.environ.get(
                "WARROOM_ALERT_NOTIFY_MAX_AGE_SECONDS", str(UP_NOTIFY_MAX_AGE_S)
            ),
        }
        if options.workers > 1 and not settings.store_token:
            # the other workers' credential for the first one's /store/insert, new each run
            env["WARROOM_STORE_TOKEN"] = secrets.token_urlsafe(32)
        worker = _Child("worker", _warroom("worker"), env, logs / "worker.log")
        children.append(worker)
        url = _wait_worker(data_dir, worker, 90, lambda: stopping)
        # a restarted store owner listens where the helpers and run.json expect it
        worker.env = {**env, "WARROOM_WEB_PORT": url.rsplit(":", 1)[1]}
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
            _wait_worker(helper_dir, helper, 90, lambda: stopping)
        console.print(f"War room: {url}/d/warroom-national/  (wall screen: add ?kiosk)")
        console.print(f"Worker: {url}  (/metrics /healthz /readyz; ClickHouse HTTP at {url}/)")
        console.print(f"Store:  {settings.store_url}")
        console.print(f'Query:  warroom query "SELECT ..." --data-dir {data_dir}')
        console.print(f"Logs:   {logs}")
        if options.simulate:
            sim_args = ["simulate", "--seed", str(options.seed)]
            if options.rate is not None:
                sim_args += ["--rate", str(options.rate)]
            if options.speedup is not None:
                sim_args += ["--speedup", str(options.speedup)]
            sim_args += options.extra_sim_args
            children.append(_Child("simulator", _warroom(*sim_args), env, logs / "simulator.log"))
        info = runinfo.RunInfo(
            pid=os.getpid(),
            kafka=bootstrap,
            web=url,
            store=settings.store_url,
            data_dir=str(data_dir),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            pids=_pids(children, broker),
        )
        runinfo.write(data_dir, info)
        poller = Poller(url)
        started = time.monotonic()
        next_summary = started + min(options.summary_every, 3.0)
        while not stopping:
            if options.duration is not None and time.monotonic() - started >= options.duration:
                break
            if _supervise(children, console):
                runinfo.write(data_dir, replace(info, pids=_pids(children, broker)))
            if time.monotonic() >= next_summary:
                next_summary += options.summary_every
                try:
                    console.print(render(poller.poll()))
                except StatusError as exc:
                    console.print(f"summary unavailable: {exc}", style="yellow", markup=False)
            time.sleep(0.2)
    except _Interrupted:
        pass
    except (UpError, BrokerError) as exc:
        error(str(exc))
        code = 1
    except (KafkaError, OSError) as exc:  # Kafka or the machine failed under us: say it plainly
        error(f"stopping after an error: {exc!r}")
        code = 1
    finally:
        stop_started = time.monotonic()
        if children:
            order = ["simulator"] if any(c.name == "simulator" for c in children) else []
            order.append("worker (final checkpoint)")
            if broker is not None:
                order.append("Kafka")
            _say(console, f"stopping: {', then '.join(order)} ...", highlight=False)
        stop_code, checkpointed = _stop_children(
            children,
            options.stop_timeout,
            lambda: forced,
            error,
            # the embedded broker's log is memory: what the worker has not read is lost
            (lambda: _drain(settings, bootstrap, lambda: forced, error))
            if broker is not None and bootstrap
            else None,
        )
        code = code or stop_code
        if broker is not None:
            broker.stop(timeout=0.5 if forced else 5.0)
    if forced:
        error(
            "forced stop (second Ctrl-C): killed what was still running; the worker's last "
            "checkpoint may be missing, its next start replays from the last commit"
        )
        return 130
    took = time.monotonic() - stop_started
    if checkpointed:
        _say(console, f"worker: {FINAL_CHECKPOINT} (stop took {took:.1f}s)", highlight=False)
    _say(console, "stopped" if code == 0 else "stopped with errors")
    return code
