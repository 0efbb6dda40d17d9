"""`warroom up` as a user runs it: embedded broker, worker and simulator, a clean stop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_up_reaches_a_steady_flow_and_stops_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "120", "WARROOM_LOG_FORMAT": "json"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "warroom.cli",
            "up",
            "--duration",
            "25",
            "--data-dir",
            str(tmp_path / "data"),
            "--web-port",
            "0",
            "--rate",
            "2000",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert out.rstrip().endswith("stopped")
    # the live summary printed every few seconds: the last one shows the steady flow
    rates = [float(r.replace(",", "")) for r in re.findall(r"grievance\s+([\d,.]+)/s", out)]
    assert len(rates) >= 3, out[-3000:]
    assert rates[-1] >= 1000, f"grievance events/s in the last summaries: {rates}"
    accepted = re.findall(r"grievance\s+[\d,.]+/s\s+([\d,]+)\s+([\d,]+)", out)
    events, ok = (int(x.replace(",", "")) for x in accepted[-1])
    assert ok > 0.9 * events  # nearly all accepted; the simulator's bad share is small
    # every child stopped: nothing keeps the data folder's store locked
    for child in ("worker.log", "simulator.log", "tansu.log"):
        assert (tmp_path / "data" / "logs" / child).exists()
