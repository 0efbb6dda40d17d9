"""A year of the whole country through the real pipeline, then every panel query timed on it.

    python bench/history.py [--days 365] [--cases-per-day 1000] [--repeat 20] [--keep]
    python bench/history.py --quick              # 14 days, 3 runs per query (CI-sized)
    python bench/history.py --store DIR          # time the queries on a store filled before

Exit code 1 when a panel query fails (its error line is printed), 2 for a bad --store.

Fill: an embedded Tansu broker, a real `warroom worker` writing its chdb store, and
`warroom simulate --backfill-hours <days × 24>` (live mode's history, at the national volume
of --cases-per-day, ending now) — the same rows the pipeline writes, because it is the
pipeline. When the simulator says its backfill is done, the bench waits until the worker has
committed every record (warroom.drain), reads the worker's resident memory, stops it cleanly,
then rebuilds the open-case snapshot once (what the store's owner holds a few minutes after its
last insert; sinks/open_cases.py).

Queries: every ClickHouse target of every dashboard (dashboards/generated/*.json), macros
expanded by dashboards/macros.py for the ranges 24h, 7d, 30d, 365d and the current fiscal year
(from 1 October, Buddhist Era), every variable on All (query variables' options read from the
store, chained in order). Each query runs once to warm, then --repeat times (20: with 5, the
p95 is the slowest run); p50/p95 in ms,
rows and bytes read (chdb's counters). The baseline, measured in the same run, is a plain
`count()` over metric_buckets: the ratio column is p95 / baseline p50, so a noisy machine moves
both. The last line:

    worst panel p95: 30d <N> ms, 365d <M> ms; worker RSS <R> MB
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboards.clickhouse import CLICKHOUSE_TYPE
from dashboards.macros import ALL, MacroError, QueryContext, Variable, expand
from sinks.writer import RELEASE_MEMORY_EVERY_S

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "dashboards" / "generated"
BANGKOK = ZoneInfo("Asia/Bangkok")
DAY_MS = 86_400_000
SHORT = ("24h", "7d", "30d")
LONG = ("365d", "fiscal year")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """VmRSS, or RssAnon (the process's own memory; RssFile is mostly chdb's ~230 MB shared
    library, mapped once however many processes use it)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- fill ---------------------------------------------------------------------------------------


def _wait_for(what: str, check: Any, timeout: float, proc: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        if proc.poll() is not None:
            raise SystemExit(f"history: {what}: the process exited with {proc.returncode}")
        time.sleep(0.5)
    raise SystemExit(f"history: {what}: not within {timeout:.0f}s")


class _PeakSampler:
    """The highest VmRSS and RssAnon of a process, sampled every second in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.rss, self.anon = pid, 0.0, 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._loop, name="rss-peak", daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.rss = max(self.rss, rss_mb(self.pid))
                self.anon = max(self.anon, rss_mb(self.pid, "RssAnon"))
            except OSError:  # the process is gone
                return

    def stop(self) -> None:
        self._stop.set()


def fill(data: Path, days: float, cases_per_day: float, seed: int) -> dict[str, float]:
    """Run broker, worker and simulator until `days` of history are stored; return facts."""
    from streams.broker import EmbeddedBroker, ensure_topics
    from streams.topics import Topics
    from warroom.drain import unread_after_drain
    from warroom.settings import load

    settings = load({})
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(log_path=logs / "tansu.log")
    bootstrap = broker.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        topics = Topics(settings.topic_prefix)
        asyncio.run(ensure_topics(bootstrap, topics.all(), settings.partitions))
        env = {
            **os.environ,
            "WARROOM_KAFKA": bootstrap,
            "WARROOM_DATA_DIR": str(data),
            "WARROOM_STORE": f"chdb://{data / 'clickhouse'}",
            "WARROOM_WEB_PORT": "0",
            "WARROOM_LOG_FORMAT": "json",
            "WARROOM_ALERT_NOTIFY_MAX_AGE_SECONDS": "0",  # a year of history pages nobody
        }
        warroom = [sys.executable, "-m", "warroom.cli"]
        with (logs / "worker.log").open("wb") as out:
            worker = subprocess.Popen([*warroom, "worker"], env=env, stdout=out, stderr=out)
        procs.append(worker)
        _wait_for("worker start", (data / "worker.json").exists, 180, worker)
        peak = _PeakSampler(worker.pid)
        started = time.monotonic()
        sim_log = logs / "simulator.log"
        with sim_log.open("wb") as out:
            sim = subprocess.Popen(
                [
                    *warroom,
                    "simulate",
                    "--seed",
                    str(seed),
                    "--backfill-hours",
                    str(days * 24),
                    "--cases-per-day",
                    str(cases_per_day),
                ],
                env=env,
                stdout=out,
                stderr=out,
            )
        procs.append(sim)
        print(f"# filling {days:g} days at {cases_per_day:g} cases/day into {data}", flush=True)
        _wait_for(
            "simulator backfill",
            lambda: b"backfill done" in sim_log.read_bytes()[-20_000:],
            days * 60 + 600,
            sim,
        )
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
        sent = time.monotonic() - started
        inputs = [topics.grievance, topics.project]
        group = f"{settings.topic_prefix}{settings.group_id}"
        unread = unread_after_drain(bootstrap, group, inputs, timeout=days * 30 + 300)
        if unread:
            raise SystemExit(f"history: the worker did not read {unread} events in time")
        time.sleep(settings.commit_interval * 2 + settings.gauge_interval)  # last snapshot
        stored = time.monotonic() - started
        # settled: at least one of the writer's memory releases after the last write
        time.sleep(RELEASE_MEMORY_EVERY_S + 2)
        rss, anon = rss_mb(worker.pid), rss_mb(worker.pid, "RssAnon")
        peak.stop()
        worker.send_signal(signal.SIGTERM)
        if worker.wait(120) != 0:
            raise SystemExit(f"history: the worker stopped with {worker.returncode}")
        return {
            "send_s": sent,
            "store_s": stored,
            "worker_rss_mb": rss,
            "worker_anon_mb": anon,
            "worker_peak_rss_mb": peak.rss,
            "worker_peak_anon_mb": peak.anon,
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        broker.stop()


def snapshot_open_cases(path: Path) -> str:
    """Bring the store to the current schema and rebuild its open-case snapshot, as the store's
    owner does every WARROOM_OPEN_CASES_EVERY seconds (sinks/open_cases.py). The worker has
    stopped, so no insert is under way: margin 0, the snapshot a live owner holds one margin
    after its last insert."""
    from sinks import open_cases
    from sinks.backends.chdb import ChdbBackend
    from sinks.migrate import migrate

    backend = ChdbBackend(path, "warroom")
    try:
        applied = migrate(backend, reference=False).applied
        ((built,),) = backend.query_rows("SELECT count() FROM grievance_open_generations")
        started = time.perf_counter()
        cases = open_cases.rebuild(backend, margin_s=0)
        ms = (time.perf_counter() - started) * 1000
    finally:
        backend.close()
    migrated = f" (migrations {applied} applied first)" if applied else ""
    return (
        f"# open-case snapshot rebuilt{migrated}: {cases:,} open cases in {ms:.0f} ms "
        f"({built} built by the worker before)"
    )


# --- queries ------------------------------------------------------------------------------------


@dataclass
class Timing:
    dashboard: str
    panel: str
    range_name: str
    ms: list[float]
    rows_read: int
    bytes_read: int
    error: str = ""

    def pct(self, q: float) -> float:
        if not self.ms:
            return float("nan")
        ordered = sorted(self.ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Store:
    """The filled store, read-only, through chdb's own session (for its read counters)."""

    def __init__(self, path: Path) -> None:
        from chdb.session import Session

        self.session = Session(str(path))
        self.session.query("USE warroom")

    def run(self, sql: str) -> tuple[float, int, int, Any]:
        t0 = time.perf_counter()
        res = self.session.query(sql, "JSONCompact")
        ms = (time.perf_counter() - t0) * 1000
        return ms, int(res.storage_rows_read()), int(res.storage_bytes_read()), res

    def rows(self, sql: str) -> list[list[Any]]:
        res = self.session.query(sql, "JSONCompact")
        return list(json.loads(res.bytes() or b'{"data": []}')["data"])

    def close(self) -> None:
        self.session.close()


def ranges(now: datetime) -> dict[str, tuple[int, int]]:
    to_ms = int(now.timestamp() * 1000)
    local = now.astimezone(BANGKOK)
    fy_year = local.year if local.month >= 10 else local.year - 1
    fy_start = datetime(fy_year, 10, 1, tzinfo=BANGKOK)
    out = {name: (to_ms - days * DAY_MS, to_ms) for name, days in (("24h", 1), ("7d", 7))}
    out["30d"] = (to_ms - 30 * DAY_MS, to_ms)
    out["365d"] = (to_ms - 365 * DAY_MS, to_ms)
    out["fiscal year"] = (int(fy_start.timestamp() * 1000), to_ms)
    return out


#: Grafana's roundInterval (public/app/core/utils/kbn / @grafana/data rangeutil): the upper
#: bound (exclusive, ms) of the raw interval -> the interval Grafana sends
_ROUNDED = (
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)


def interval_ms(from_ms: int, to_ms: int) -> int:
    """Grafana's $__interval for a panel about 1,000 px wide: range / 1,000 rounded as Grafana
    rounds it (5 min, 30 min, 1 h, 6 h, 1 d ...), at least 1 min. The panels read the hourly
    and daily rollups only when the interval is whole hours / days, as Grafana's are."""
    raw = max(60_000, (to_ms - from_ms) // 1000)
    return next((rounded for below, rounded in _ROUNDED if raw < below), 31_536_000_000)


def variables(store: Store, model: dict[str, Any], span: tuple[int, int]) -> dict[str, Variable]:
    """Every variable on All (its options from the store, in the order Grafana resolves them),
    or on its current value when it has no All."""
    out: dict[str, Variable] = {}
    for var in model.get("templating", {}).get("list", []):
        name = var["name"]
        options: list[str] = [str(o["value"]) for o in var.get("options", [])]
        ds = var.get("datasource") or {}
        if var.get("type") == "query" and ds.get("type") == CLICKHOUSE_TYPE:
            ctx = QueryContext(span[0], span[1], interval_ms(*span), out)
            rows = store.rows(expand(var["query"]["rawSql"], ctx))
            options = [str(r[0]) for r in rows]
        if var.get("includeAll"):
            out[name] = Variable(ALL, options=options, all_value=var.get("allValue") or None)
        else:
            current = var.get("current", {}).get("value")
            out[name] = Variable(current if current is not None else (options or [""])[0])
    return out


def panel_targets(model: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in model.get("panels", []):
        for p in [panel, *panel.get("panels", [])]:
            for target in p.get("targets", []):
                if target.get("datasource", {}).get("type") == CLICKHOUSE_TYPE:
                    out.append((f"{p['title']} [{target['refId']}]", target["rawSql"]))
    return out


def time_panels(store: Store, now: datetime, repeat: int) -> list[Timing]:
    out: list[Timing] = []
    spans = ranges(now)
    for path in sorted(GENERATED.glob("*.json")):
        model = json.loads(path.read_text(encoding="utf-8"))
        uid = path.stem.removeprefix("warroom-")
        for name, span in spans.items():
            try:
                vars_ = variables(store, model, span)
            except Exception as exc:
                out.append(Timing(uid, "(variables)", name, [], 0, 0, str(exc)[:120]))
                continue
            ctx = QueryContext(span[0], span[1], interval_ms(*span), vars_)
            for title, raw in panel_targets(model):
                try:
                    sql = expand(raw, ctx)
                    store.run(sql)  # warm
                    runs = [store.run(sql) for _ in range(repeat)]
                except (MacroError, RuntimeError) as exc:
                    out.append(Timing(uid, title, name, [], 0, 0, str(exc)[:120]))
                    continue
                out.append(
                    Timing(
                        uid,
                        title,
                        name,
                        [r[0] for r in runs],
                        runs[-1][1],
                        runs[-1][2],
                    )
                )
    return out


def baseline(store: Store, repeat: int) -> float:
    store.run("SELECT count() FROM metric_buckets")
    return statistics.median(
        store.run("SELECT count() FROM metric_buckets")[0] for _ in range(max(3, repeat))
    )


def sizes(store: Store) -> dict[str, tuple[int, int]]:
    rows = store.rows(
        "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts "
        "WHERE active AND database = 'warroom' GROUP BY table ORDER BY table"
    )
    return {str(t): (int(r), int(b)) for t, r, b in rows}


# --- report -------------------------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def history_days(store: Store) -> float:
    """Days between the first and the last stored grievance event."""
    rows = store.rows(
        "SELECT dateDiff('second', min(occurred_at), max(occurred_at)) FROM grievance_events"
    )
    return float(rows[0][0]) / 86_400 if rows and rows[0][0] else 0.0


def report(
    timings: list[Timing], base_ms: float, store_sizes: dict[str, tuple[int, int]], days: float
) -> tuple[float, float]:
    names = list(dict.fromkeys(t.range_name for t in timings))
    by_panel: dict[tuple[str, str], dict[str, Timing]] = {}
    for t in timings:
        by_panel.setdefault((t.dashboard, t.panel), {})[t.range_name] = t
    head = f"{'dashboard':<11} {'panel':<46}" + "".join(f" {n:>17}" for n in names)
    print(head)
    print(f"{'':<58}" + "".join(f" {'p50/p95 ms':>17}" for _ in names))
    for (dash, panel), per in by_panel.items():
        cells = []
        for n in names:
            t = per.get(n)
            if t is None:
                cells.append(f" {'':>17}")
            elif t.error:
                cells.append(f" {'error':>17}")
            else:
                cells.append(f" {t.pct(0.5):>7.0f}/{t.pct(0.95):<9.0f}")
        print(f"{dash:<11} {panel[:46]:<46}" + "".join(cells))
    print()
    print(f"{'rows read (thousands) / MB read':<58}" + "".join(f" {n:>17}" for n in names))
    for (dash, panel), per in by_panel.items():
        cells = []
        for n in names:
            t = per.get(n)
            if t is None or t.error:
                cells.append(f" {'':>17}")
            else:
                cells.append(f" {t.rows_read / 1000:>8,.0f}/{t.bytes_read / 1e6:<8.1f}")
        print(f"{dash:<11} {panel[:46]:<46}" + "".join(cells))
    errors = [t for t in timings if t.error]
    for t in errors:
        print(f"error: {t.dashboard} / {t.panel} / {t.range_name}: {t.error}")
    print()
    print(
        f"{'range':<12} {'worst p95 ms':>12} {'× baseline':>11} {'max rows read':>14} "
        f"{'max bytes read':>15}  worst panel"
    )
    worst: dict[str, float] = {}
    for n in names:
        ok = [t for t in timings if t.range_name == n and not t.error]
        if not ok:
            continue
        w = max(ok, key=lambda t: t.pct(0.95))
        worst[n] = w.pct(0.95)
        print(
            f"{n:<12} {w.pct(0.95):>12.0f} {w.pct(0.95) / base_ms:>10.0f}× "
            f"{max(t.rows_read for t in ok):>14,} {_mb(max(t.bytes_read for t in ok)):>15}"
            f"  {w.dashboard} / {w.panel}"
        )
    print(f"baseline: count() over metric_buckets, p50 {base_ms:.1f} ms")
    total_rows = sum(r for r, _ in store_sizes.values())
    total_bytes = sum(b for _, b in store_sizes.values())
    events = sum(store_sizes.get(t, (0, 0))[0] for t in ("grievance_events", "project_events"))
    print()
    for table, (rows, size) in store_sizes.items():
        print(f"{table:<20} {rows:>12,} rows {_mb(size):>12}")
    print(
        f"store: {_mb(total_bytes)} on disk, {total_rows:,} rows; {events:,} events stored "
        f"({total_bytes / max(events, 1):,.0f} bytes per event); "
        f"{_mb(total_bytes / max(days, 1))} per day of history ({days:.0f} days)"
    )
    short = max((worst[n] for n in SHORT if n in worst), default=float("nan"))
    long = max((worst[n] for n in LONG if n in worst), default=float("nan"))
    return short, long


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--cases-per-day", type=float, default=1000.0)
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per query (p95 of them)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="14 days, 3 runs per query")
    ap.add_argument("--store", type=Path, help="a data dir filled before: only the queries")
    ap.add_argument("--keep", action="store_true", help="keep the data dir it filled")
    args = ap.parse_args()
    if args.quick:
        args.days, args.repeat = 14.0, 3
    rss = float("nan")
    if args.store is not None:
        data = args.store.resolve()
        if not (data / "clickhouse").is_dir():
            print(f"history: no store at {data / 'clickhouse'}", file=sys.stderr)
            return 2
    else:
        data = Path(tempfile.mkdtemp(prefix="history-"))
        facts = fill(data, args.days, args.cases_per_day, args.seed)
        rss = facts["worker_rss_mb"]
        print(
            f"# filled in {facts['store_s']:.0f} s (simulator {facts['send_s']:.0f} s); "
            f"worker RSS {rss:.0f} MB ({facts['worker_anon_mb']:.0f} MB anonymous) with the "
            f"history behind it, settled; peak while filling {facts['worker_peak_rss_mb']:.0f} MB "
            f"({facts['worker_peak_anon_mb']:.0f} MB anonymous)",
            flush=True,
        )
    print(snapshot_open_cases(data / "clickhouse"), flush=True)
    store = Store(data / "clickhouse")
    try:
        now = datetime.now(UTC)
        base = baseline(store, args.repeat)
        timings = time_panels(store, now, args.repeat)
        short, long = report(timings, base, sizes(store), history_days(store))
        failed = sum(1 for t in timings if t.error)
    finally:
        store.close()
        if args.store is None and not args.keep:
            shutil.rmtree(data, ignore_errors=True)
        elif args.store is None:
            print(f"# kept {data} (again: --store {data})")
    rss_text = "n/a (filled elsewhere)" if rss != rss else f"{rss:.0f} MB"
    print(f"worst panel p95: 30d {short:.0f} ms, 365d {long:.0f} ms; worker RSS {rss_text}")
    if failed:
        print(f"history: {failed} panel queries failed (the error lines above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
