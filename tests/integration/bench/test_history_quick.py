"""`bench/history.py --quick` in CI: fills 14 days of the whole country through the real
pipeline (broker, worker, simulator), then times every ClickHouse panel of every dashboard for
every range. The test asserts what the bench must deliver, not its speed (the machine is
shared): every panel of every generated dashboard timed for every range without an error, the
fill covering the 14 days asked for, and the one summary line the issue specifies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
RANGES = ("24h", "7d", "30d", "365d", "fiscal year")
SUMMARY = re.compile(
    r"^worst panel p95: 30d (\d+) ms, 365d (\d+) ms; worker RSS (\d+) MB$", re.MULTILINE
)


def clickhouse_panels() -> list[tuple[str, str]]:
    """(dashboard uid, panel title [refId]) of every ClickHouse target, read from the JSON."""
    out = []
    for path in sorted((ROOT / "dashboards" / "generated").glob("*.json")):
        model = json.loads(path.read_text(encoding="utf-8"))
        uid = path.stem.removeprefix("warroom-")
        for panel in model.get("panels", []):
            for p in [panel, *panel.get("panels", [])]:
                for target in p.get("targets", []):
                    if target.get("datasource", {}).get("type") == "grafana-clickhouse-datasource":
                        out.append((uid, f"{p['title']} [{target['refId']}]"))
    return out


def test_quick_history_bench_times_every_panel(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "history.py"), "--quick", "--repeat", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    text = out.stdout
    assert out.returncode == 0, (text[-3000:], out.stderr[-3000:])
    assert "error:" not in text, text
    summary = SUMMARY.search(text)
    assert summary, text[-2000:]
    assert int(summary.group(3)) > 0
    # the timing table: one line per panel, a p50/p95 cell for each range
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("dashboard"))
    for name in RANGES:
        assert name in header
    table = lines[lines.index(header) + 2 :]
    table = table[: table.index("")]
    panels = clickhouse_panels()
    assert len(table) == len(panels) > 40
    for (uid, title), line in zip(panels, table, strict=True):
        assert line.startswith(f"{uid:<11} {title[:46]}"), (uid, title, line)
        cells = re.findall(r"(\d+)/(\d+)", line[58:])
        assert len(cells) == len(RANGES), line
    # the fill covered the 14 days asked for
    days = re.search(r"per day of history \((\d+) days\)", text)
    assert days and 13 <= int(days.group(1)) <= 14, text[-1500:]
