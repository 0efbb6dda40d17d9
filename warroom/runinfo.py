"""Where a running `warroom up` is: its lock and run.json in the data dir, read by the others."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from warroom.settings import Settings

__all__ = [
    "LOCK_NAME",
    "RUN_NAME",
    "AlreadyRunning",
    "Discovery",
    "Resolved",
    "RunInfo",
    "UpLock",
    "discover",
    "pid_alive",
    "read",
    "remove",
    "store_holder",
    "worker_url",
    "write",
]

LOCK_NAME = "up.lock"
RUN_NAME = "run.json"


@dataclass(frozen=True)
class RunInfo:
    """What `up` records once its children run (pids: child name -> pid)."""

    pid: int
    kafka: str
    web: str
    store: str
    data_dir: str
    started_at: str
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunInfo:
        return cls(
            pid=int(raw["pid"]),
            kafka=str(raw["kafka"]),
            web=str(raw["web"]),
            store=str(raw["store"]),
            data_dir=str(raw["data_dir"]),
            started_at=str(raw["started_at"]),
            pids={str(k): int(v) for k, v in dict(raw.get("pids", {})).items()},
        )


class AlreadyRunning(RuntimeError):
    """Another `up` holds this data dir; the message says where it runs."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is someone else's
        return True
    return True


def read(data_dir: Path) -> RunInfo | None:
    """The recorded run, or None when there is none (or it cannot be read)."""
    try:
        return RunInfo.from_dict(orjson.loads((data_dir / RUN_NAME).read_bytes()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(data_dir: Path, info: RunInfo) -> None:
    """Write run.json atomically: a reader sees the old record or the new one, never half."""
    path = data_dir / RUN_NAME
    tmp = path.with_name(f".{RUN_NAME}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(asdict(info), option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def remove(data_dir: Path) -> None:
    (data_dir / RUN_NAME).unlink(missing_ok=True)


@dataclass(frozen=True)
class Discovery:
    """The running `up` of a data dir, or why there is none usable (stale: a dead pid)."""

    info: RunInfo | None
    stale_pid: int | None = None

    def note(self) -> str | None:
        if self.stale_pid is None:
            return None
        return f"ignoring {RUN_NAME}: the `warroom up` that wrote it (pid {self.stale_pid}) is gone"


def discover(data_dir: Path) -> Discovery:
    info = read(data_dir)
    if info is None:
        return Discovery(None)
    if not pid_alive(info.pid):
        return Discovery(None, stale_pid=info.pid)
    return Discovery(info)


class UpLock:
    """An exclusive flock on data_dir/up.lock, held for the life of one `up`. The kernel drops
    it when the process dies, so a crashed `up` never blocks the next one."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning; writes nothing else in the data dir."""
        fh = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise AlreadyRunning(self._describe(holder)) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def _describe(self, holder: str) -> str:
        info = read(self.data_dir)
        pid = holder or (str(info.pid) if info else "?")
        if info is not None and str(info.pid) == pid:
            where = f"web {info.web}, Kafka {info.kafka}"
        else:
            where = "web (starting), Kafka (starting)"
        return (
            f"already running: pid {pid}, {where} (data dir {self.data_dir}); stop it first "
            f"or pass another --data-dir"
        )

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


def store_holder(path: Path) -> int | None:
    """The pid of the process that has the chdb store at `path` open, or None if none has.
    ClickHouse keeps an exclusive flock on <path>/status, which holds its pid."""
    status = path / "status"
    try:
        fh = status.open("rb")
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            for line in fh.read().decode("utf-8", "replace").splitlines():
                if line.startswith("PID:"):
                    with contextlib.suppress(ValueError):
                        return int(line.split(":", 1)[1])
            return -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def connect_note(command: str, what: str, address: str, source: str) -> str:
    """The one line a client prints (on stderr) about what it talks to and why that one."""
    return f"warroom {command}: {what} {address} ({source})"


def from_up(data_dir: Path, notes: list[str]) -> RunInfo | None:
    """The running `up` of `data_dir`, if any; a stale record adds a note saying it is ignored."""
    found = discover(data_dir)
    note = found.note()
    if note:
        notes.append(note)
    return found.info


def worker_url(url: str | None, settings: Settings, data_dir: Path | None) -> Resolved:
    """The worker web server a client talks to: --url, else WARROOM_WEB_HOST/PORT when set,
    else the worker of the `warroom up` running in the data dir, else the default port."""
    notes: list[str] = []
    if url:
        return Resolved(url, "--url", notes)
    folder = (data_dir or settings.data_dir).resolve()
    host = "127.0.0.1" if settings.web_host in ("", "0.0.0.0", "::") else settings.web_host
    default = f"http://{host}:{settings.web_port}"
    if any(os.environ.get(v) for v in ("WARROOM_WEB_HOST", "WARROOM_WEB_PORT")):
        return Resolved(default, "WARROOM_WEB_HOST/PORT", notes)
    up = from_up(folder, notes)
    if up is not None:
        return Resolved(up.web, f"the warroom up running in {folder}, pid {up.pid}", notes)
    return Resolved(default, f"the default; no warroom up runs in {folder}", notes)


@dataclass(frozen=True)
class Resolved:
    """An address, why that one (for the line a client prints), and notes (stale records)."""

    address: str
    source: str
    notes: list[str]
