"""Screenshots of the wall page with Debian's headless Chromium: each dashboard at wall size
(1920x1080, kiosk) and the district view at phone size (390x844)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dashboards.wall.catalog import catalog

__all__ = ["CHROMIUM", "ScreenshotError", "Shot", "plan", "take"]

CHROMIUM = "/usr/bin/chromium"
WALL = (1920, 1080)
PHONE = (390, 844)
# Chromium runs the page's scripts for this long in virtual time (fetches pause that clock),
# long enough for every panel's first answer
_BUDGET_MS = 20_000


class ScreenshotError(RuntimeError):
    """Chromium is missing or failed; the message says what to do."""


@dataclass(frozen=True)
class Shot:
    name: str
    path: str  # path and query on the worker's web server
    size: tuple[int, int]


def plan(district: str) -> list[Shot]:
    shots = [Shot(f"wall-{uid}", f"/d/{uid}/?kiosk", WALL) for uid in catalog()]
    shots.append(Shot("phone-district", f"/d/warroom-district/?var-district={district}", PHONE))
    return shots


def take(base_url: str, out_dir: Path, shots: list[Shot], timeout: float = 120.0) -> list[Path]:
    """One PNG per shot under out_dir; each in a fresh profile (no cache, no state)."""
    chromium = shutil.which("chromium") or CHROMIUM
    if not Path(chromium).exists():
        raise ScreenshotError("chromium is not installed: apt-get install chromium")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for shot in shots:
        target = out_dir / f"{shot.name}.png"
        with tempfile.TemporaryDirectory(prefix="warroom-shot-") as profile:
            cmd = [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={shot.size[0]},{shot.size[1]}",
                f"--virtual-time-budget={_BUDGET_MS}",
                f"--screenshot={target}",
                base_url.rstrip("/") + shot.path,
            ]
            try:
                subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as exc:
                raise ScreenshotError(
                    f"chromium took over {timeout:.0f} s for {shot.name}"
                ) from exc
        if not target.exists():
            raise ScreenshotError(f"chromium wrote no screenshot for {shot.path}")
        written.append(target)
    return written
