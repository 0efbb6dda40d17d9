"""Hourly and daily rollups against the oracle: after a crash and a replay, after migrating a
store the old code filled, and read by the panels at hourly and daily grain."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from dashboards import grievances, quality
from dashboards.grains import DAILY_FROM, HOURLY_FROM, SERIES_DAILY_FROM, SERIES_HOURLY_FROM
from dashboards.macros import ALL, QueryContext, Variable, expand
from streams.labels import CATEGORY_TH
from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import oracle, simulate
from tests.kafka_io import produce_items, read_back, run
from tests.oracle import Expected
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

N = 20_000
HOUR = compare.HOUR
DAY = compare.DAY


def forget_rollups(w: WorkerProcess) -> None:
    """Make the stopped worker's store what the code before migration 003 left: no rollup
    tables, no record of 003 (in a separate process: chdb holds one store per process)."""
    script = f"""
from sinks.backends import open_backend
from sinks.url import parse_store_url
b = open_backend(parse_store_url({w.env["WARROOM_STORE"]!r}))
for t in ("metric_buckets_hourly", "metric_buckets_daily", "quality_buckets_hourly",
          "quality_buckets_daily"):
    b.execute(f"DROP TABLE IF EXISTS {{b.database}}.{{t}}")
b.execute(f"ALTER TABLE {{b.database}}.schema_migrations DELETE WHERE version = 3 "
          "SETTINGS mutations_sync = 2")
b.close()
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def received_by(
    exp: Expected, frm: int, to: int, interval: int | None, categories: set[str] | None = None
) -> dict[tuple[Any, ...], float]:
    """Received per (interval start,) category in [frm, to] seconds, as the panels count."""
    out: dict[tuple[Any, ...], float] = defaultdict(float)
    for (_d, metric, dim1, _dim2, minute), value in exp.buckets.items():
        t = minute * 60
        if metric != "grievance_received" or not frm <= t <= to:
            continue
        if categories is not None and dim1 not in categories:
            continue
        key = (CATEGORY_TH[dim1],) if interval is None else (t - t % interval, CATEGORY_TH[dim1])
        out[key] += value
    return dict(out)


def panel(
    w: WorkerProcess, sql: str, frm: int, to: int, interval_s: int, **variables: Variable
) -> list[dict[str, Any]]:
    ctx = QueryContext(frm * 1000 + 456, to * 1000 + 789, interval_s * 1000, variables)
    return w.query(expand(sql, ctx))


def series_width(frm: int, to: int, interval: int) -> int:
    """The point width the series panels promise: the interval, made whole hours from 28 days
    and whole days from 90 days of range."""
    for at_least, period in ((90 * DAY, DAY), (28 * DAY, HOUR)):
        if to - frm >= at_least:
            return -(-interval // period) * period
    return interval


def assert_panels_match(w: WorkerProcess, exp: Expected) -> None:
    minutes = [k[4] for k in exp.buckets]
    first, last = min(minutes) * 60, max(minutes) * 60
    everything = {"region": Variable(ALL), "category": Variable(ALL)}
    # ranges that start and end inside an hour: partial hours come from the minute rows
    year = (first - 90 * DAY + 1234, last - 2 * HOUR - 17)  # series and totals: days, hours
    month = (first - 20 * DAY + 1234, last - 2 * HOUR - 17)  # series: hours; totals: days
    mid = (first + 2 * DAY + 1234, first + 5 * DAY + 777)  # series: minutes; totals: hours
    series = grievances.CATEGORY_OVER_TIME_SQL.text
    assert year[1] - year[0] >= SERIES_DAILY_FROM
    assert SERIES_HOURLY_FROM <= month[1] - month[0] < SERIES_DAILY_FROM
    assert HOURLY_FROM <= mid[1] - mid[0] < DAILY_FROM
    for frm, to in (year, month, mid):
        rows = panel(w, grievances.BY_CATEGORY_SQL.text, frm, to, 60, **everything)
        assert {(r["category"],): r["received"] for r in rows} == received_by(exp, frm, to, None)
        picked = {"debt", "flood"}
        rows = panel(
            w,
            grievances.BY_CATEGORY_SQL.text,
            frm,
            to,
            60,
            region=Variable(ALL),
            category=Variable(sorted(picked)),
        )
        got = {(r["category"],): r["received"] for r in rows}
        assert got == received_by(exp, frm, to, None, picked)
        for interval in (DAY, 6 * HOUR, HOUR, 1800):
            sql = f"SELECT toUnixTimestamp(time) AS time, category, received FROM ({series})"
            rows = panel(w, sql, frm, to, interval, **everything)
            got = {(int(r["time"]), r["category"]): r["received"] for r in rows}
            width = series_width(frm, to, interval)
            assert got == received_by(exp, frm, to, width), (frm, to, interval)
        # quality totals over the range
        rows = panel(w, quality.TOTALS_SQL.text, frm, to, 60, stream=Variable(ALL))
        counts: dict[str, int] = defaultdict(int)
        for (_d, _s, _src, outcome, _r, minute), n in exp.quality.items():
            if frm <= minute * 60 <= to:
                counts[outcome] += n
        for outcome in ("accepted", "rejected", "duplicate", "late", "too_late"):
            assert int(rows[0][outcome]) == counts[outcome], outcome


def test_rollups_of_minute_rows_written_after_the_last_checkpoint_are_recomputed_on_replay(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    """A kill between a minute-row write and the next checkpoint: the rows are stored (their
    version stamps cover their records) but their hours' rollups were never recomputed. The
    replay skips those records as applied, so nothing touches those hours again: the restore
    must."""
    n = 6_000
    items = simulate(n, seed=29)
    run(produce_items(bootstrap, topics, items[: n // 2]))
    worker = make_worker(WARROOM_COMMIT_INTERVAL="0.5").start()
    worker.wait_for(lambda: compare.outcomes_total(worker) >= n // 2, what="the first half stored")
    assert worker.stop() == 0, worker.tail()  # a clean stop: checkpointed, rollups recomputed
    # no checkpoint (and no rollup recompute) while the second half is written
    worker.env["WARROOM_COMMIT_INTERVAL"] = "3600"
    worker.start()
    run(produce_items(bootstrap, topics, items[n // 2 :]))
    worker.wait_for(lambda: compare.outcomes_total(worker) >= n, what="the second half stored")
    worker.kill()
    exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
    worker.env["WARROOM_COMMIT_INTERVAL"] = "0.5"
    worker.start()  # replays the second half: every record at or below a stored stamp
    compare.wait_settled(worker, n - n // 2)
    time.sleep(1.5)  # a checkpoint after the replay
    compare.assert_matches(worker, exp)
    compare.assert_rollups_match(worker, exp)
    assert worker.stop() == 0, worker.tail()


def test_rollups_equal_the_oracle_after_a_crash_a_replay_and_a_migration(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    items = simulate(N, seed=23)
    assert sum(it.is_duplicate for it in items) > 50 and sum(it.is_late for it in items) > 100
    run(produce_items(bootstrap, topics, items[: N // 2]))
    worker = make_worker(WARROOM_COMMIT_INTERVAL="0.5").start()
    worker.wait_for(
        lambda: worker.counter("warroom_events_consumed_total") >= N // 2,
        what="the first half consumed",
    )
    time.sleep(1.5)  # at least one checkpoint lands
    second = produce_items(bootstrap, topics, items[N // 2 :], rate=3000)
    sender = threading.Thread(target=run, args=(second,))
    sender.start()
    worker.wait_for(
        lambda: worker.counter("warroom_events_consumed_total") >= N // 2 + 2000,
        what="the second half flowing",
    )
    worker.kill()  # SIGKILL mid-stream: written minute rows and rollups, offsets not committed
    sender.join()
    exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), items)
    assert any(k[3] == "late" for k in exp.quality) and exp.duplicates > 0
    worker.start()  # replays from the last commit: the same minute rows, recomputed rollups
    worker.wait_for(lambda: compare.outcomes_total(worker) >= N, what="every record counted")
    compare.wait_settled(worker, 1)
    compare.assert_matches(worker, exp)
    compare.assert_rollups_match(worker, exp)
    assert_panels_match(worker, exp)

    # a store the old code filled: migration 003 back-fills the rollups from its minute data
    assert worker.stop() == 0, worker.tail()
    forget_rollups(worker)
    worker.start()
    compare.assert_rollups_match(worker, exp)
    assert worker.stop() == 0, worker.tail()
