"""Time to a fully rendered national wall dashboard, and the per-panel query times behind it,
against the same queries run straight on the store (its ClickHouse HTTP endpoint), in one run.

    warroom up --backfill-hours 168        # in another terminal: 7 days of simulated data
    python bench/wall.py [--url http://127.0.0.1:6066] [--range now-7d] [--repeat 5]

For each ClickHouse panel of warroom-national: the median time of the wall's panel endpoint
(selection check, macro expansion, query, frame) and of the same expanded SQL posted straight
to the store, alternating, then the ratio. Then headless Chromium (Debian's, through Selenium)
opens the page with a fresh profile and the time until every panel has drawn its first answer
is printed against the sum of the straight store times (the page asks for panels in parallel,
at most two at a time on the store).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboards.macros import QueryContext, expand
from dashboards.wall.catalog import catalog
from dashboards.wall.selection import interval_for, parse_range

UID = "warroom-national"


def _timed(req: urllib.request.Request | str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()
    return time.perf_counter() - started


def _discover() -> str:
    from warroom.runinfo import discover
    from warroom.settings import load

    info = discover(load().data_dir).info
    if info is None:
        raise SystemExit("no running `warroom up` found: start one or pass --url")
    return info.web


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="worker web address (default: the running `warroom up`)")
    ap.add_argument("--range", default="now-7d", help="time range start (default now-7d)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    url = (args.url or _discover()).rstrip("/")
    dash = catalog()[UID]
    rng = parse_range(args.range, "now")
    ctx = QueryContext(rng.from_ms, rng.to_ms, interval_for(rng), {})
    frm, to = str(rng.from_ms), str(rng.to_ms)
    print(f"{UID} over {args.range}..now, {args.repeat} runs each (median)")
    print(f"{'panel':<52} {'wall ms':>9} {'store ms':>9} {'ratio':>6}")
    wall_total = store_total = 0.0
    for panel in dash.panels.values():
        if panel.source != "clickhouse":
            continue
        sqls = [expand(s, ctx) for s in panel.sql]
        wall_url = f"{url}/wall/api/d/{UID}/panel/{panel.id}?from={frm}&to={to}"
        walls, stores = [], []
        for _ in range(args.repeat):
            walls.append(_timed(wall_url))
            stores.append(
                sum(
                    _timed(
                        urllib.request.Request(
                            f"{url}/?default_format=JSONCompact", data=s.encode(), method="POST"
                        )
                    )
                    for s in sqls
                )
            )
        w, s = statistics.median(walls), statistics.median(stores)
        wall_total += w
        store_total += s
        print(f"{panel.title[:52]:<52} {w * 1000:>9.1f} {s * 1000:>9.1f} {w / s:>6.2f}")
    print(
        f"{'all panels, one after another':<52} {wall_total * 1000:>9.1f} "
        f"{store_total * 1000:>9.1f} {wall_total / store_total:>6.2f}"
    )
    render = _render(f"{url}/d/{UID}/?from={args.range}&to=now&kiosk")
    print(
        f"fully rendered page (fresh browser profile): {render * 1000:.0f} ms = "
        f"{render / store_total:.2f} x the straight store queries' sum"
    )


def _render(page: str) -> float:
    from tests.services.browser import chromium, wait_until

    with tempfile.TemporaryDirectory(prefix="wall-bench-") as profile, chromium(Path(profile)) as d:
        started = time.perf_counter()
        d.get(page)
        wait_until(
            lambda: d.execute_script("return document.body.dataset.refreshes") == "1",
            timeout=300,
            what="the page's first full render",
        )
        return time.perf_counter() - started


if __name__ == "__main__":
    main()
