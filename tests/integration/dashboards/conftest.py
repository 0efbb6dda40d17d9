"""Fixtures of the dashboard tests: a filled warroom store to run every panel's SQL against.

`warehouse.query(sql) -> (column_names, rows)` and `warehouse.time_range -> (from_ms, to_ms)`.

TEMPORARY: the store is filled by tests/integration/dashboards/temp_warehouse.py (schema from
the sinks migrations, rows generated there), not yet by the real pipeline. The lead's session
fixture that runs the real worker on simulated events replaces the body of `warehouse` below:
point `Warehouse` at the worker's ClickHouse-HTTP query endpoint and set the time range to the
simulated events' span.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_TEMP_SCRIPT = Path(__file__).with_name("temp_warehouse.py")
_ROOT = Path(__file__).resolve().parents[3]
_INT_TYPES = ("Int", "UInt")


class WarehouseError(RuntimeError):
    """The store refused a query; the message carries ClickHouse's error text."""


def _convert(value: Any, ch_type: str) -> Any:
    # JSONCompact quotes 64-bit integers; return them as Python numbers
    base = ch_type.removeprefix("Nullable(").removeprefix("LowCardinality(")
    if isinstance(value, str) and base.startswith(_INT_TYPES):
        return int(value)
    return value


@dataclass
class Warehouse:
    """Queries a ClickHouse-HTTP-compatible endpoint (the worker's, or the temporary one)."""

    url: str
    time_range: tuple[int, int]
    database: str = "warroom"

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        req = urllib.request.Request(
            f"{self.url}/?database={self.database}&default_format=JSONCompact",
            data=sql.encode(),
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise WarehouseError(exc.read().decode(errors="replace")) from exc
        names = [m["name"] for m in body["meta"]]
        types = [m["type"] for m in body["meta"]]
        rows = [
            tuple(_convert(v, t) for v, t in zip(row, types, strict=True)) for row in body["data"]
        ]
        return names, rows


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    # TEMPORARY body: swap for the real pipeline's output (see the module docstring)
    data_dir = tmp_path_factory.mktemp("dash-warehouse")
    anchor_s = int(time.time()) // 60 * 60
    log = open(data_dir / "warehouse.log", "wb")  # noqa: SIM115 - open for the process lifetime
    proc = subprocess.Popen(
        [sys.executable, str(_TEMP_SCRIPT), str(data_dir / "store"), str(anchor_s)],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        cwd=_ROOT,
    )
    try:
        port = None
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode().strip()
            if line.startswith("READY "):
                port = int(line.split()[1])
                break
        if port is None:
            log.flush()
            raise RuntimeError(
                "temporary warehouse did not start: "
                + (data_dir / "warehouse.log").read_text(errors="replace")[-3000:]
            )
        # the data spans the 30 days before the anchor
        yield Warehouse(
            f"http://127.0.0.1:{port}", ((anchor_s - 30 * 86400) * 1000, anchor_s * 1000)
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
