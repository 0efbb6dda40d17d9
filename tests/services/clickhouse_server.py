"""A real ClickHouse server (Debian's clickhouse-server 18.16) for tests: temp path, loopback,
free ports, quiet logs. Exercises the clickhouse-driver (native protocol) backend only — 18.16
predates DateTime64, LowCardinality in MergeTree keys and more, so the warroom schema itself
cannot run on it.

    server = ClickHouseServer()
    server.start()            # waits until the native port answers
    server.url("db")          # clickhouse://default@127.0.0.1:PORT/db
    server.restart()          # same ports, same data
    server.stop()

Stops only the process it started.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from streams.broker import free_port

__all__ = ["CLICKHOUSE_BIN", "ClickHouseServer", "ClickHouseServerError", "available"]

CLICKHOUSE_BIN = "/usr/sbin/clickhouse-server"

_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/log/server.log</log>
        <errorlog>{dir}/log/error.log</errorlog>
        <size>10M</size>
        <count>1</count>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>20</max_concurrent_queries>
    <mlock_executable>false</mlock_executable>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
"""


class ClickHouseServerError(RuntimeError):
    """The server did not start or stop in time; the message carries its error log."""


def available(binary: str = CLICKHOUSE_BIN) -> bool:
    return Path(binary).exists() or shutil.which("clickhouse-server") is not None


class ClickHouseServer:
    """One clickhouse-server process with its own config, data folder and ports."""

    def __init__(self, *, base_dir: str | Path | None = None, binary: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.tcp_port = free_port(self.host)
        self.http_port = free_port(self.host)
        self.binary = binary or (
            CLICKHOUSE_BIN if Path(CLICKHOUSE_BIN).exists() else shutil.which("clickhouse-server")
        )
        self._own_dir = base_dir is None
        self.dir = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="clickhouse-"))
        self._proc: subprocess.Popen[bytes] | None = None
        for sub in ("log", "data", "tmp", "user_files", "format_schemas"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "config.xml").write_text(
            _CONFIG.format(dir=self.dir, tcp_port=self.tcp_port, http_port=self.http_port)
        )
        (self.dir / "users.xml").write_text(_USERS)

    def url(self, database: str = "default") -> str:
        return f"clickhouse://default@{self.host}:{self.tcp_port}/{database}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _error_log(self) -> str:
        path = self.dir / "log" / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        if not self.binary:
            raise ClickHouseServerError("clickhouse-server is not installed")
        self._proc = subprocess.Popen(
            [self.binary, f"--config-file={self.dir / 'config.xml'}"],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "log" / "stderr.log", "ab"),  # noqa: SIM115 (child owns it)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ClickHouseServerError(
                    f"clickhouse-server exited with {self._proc.returncode}: {self._error_log()}"
                )
            if self._answers():
                return
            time.sleep(0.1)
        self.stop()
        raise ClickHouseServerError(f"clickhouse-server did not answer: {self._error_log()}")

    def _answers(self) -> bool:
        from clickhouse_driver import Client

        try:
            with socket.create_connection((self.host, self.tcp_port), timeout=0.5):
                pass
            client = Client(host=self.host, port=self.tcp_port, connect_timeout=1)
            try:
                client.execute("SELECT 1")
            finally:
                client.disconnect()
        except Exception:
            return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        # the port must be free again before a restart binds it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.tcp_port), timeout=0.2):
                    time.sleep(0.1)
            except OSError:
                return

    def kill(self) -> None:
        """SIGKILL (a crash, not a shutdown)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
