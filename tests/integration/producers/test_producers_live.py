"""The live simulator against the real broker and worker: a backfill ending now, then events
dated now, and the "last 24 hours" of the store equal to an oracle of what was sent."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from producers.simulator import LivePlan, RunOptions, SimOptions, Simulator, Stats, run_simulator
from producers.simulator.generator import Item
from streams.topics import Topics
from tests.kafka_io import read_back
from tests.oracle import Rec, compute, to_ms
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
GRACE_S = 3600
LATE_S = 10


async def _run_until_live(
    bootstrap: str, topics: Topics, plan: LivePlan, base: SimOptions, live_s: float, limit_s: float
) -> Stats:
    """Run the simulator in live mode; stop ``live_s`` seconds after the backfill ended."""
    stop = asyncio.Event()
    stats_box: list[Stats] = []

    def progress(stats: Stats) -> None:
        stats_box[:] = [stats]

    options = RunOptions(sim=base, live=plan, handle_signals=False, progress_every=0.2)
    task = asyncio.create_task(
        run_simulator(bootstrap, topics, options, stop=stop, on_progress=progress)
    )
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and not task.done():
        if stats_box and stats_box[0].phase == "live":
            await asyncio.sleep(live_s)
            break
        await asyncio.sleep(0.2)
    stop.set()
    stats = await task
    assert stats.phase == "live", f"still in the backfill after {limit_s} s: {stats}"
    return stats


def _replayed(plan: LivePlan, base: SimOptions, stats: Stats) -> list[Item]:
    """The same items again from the generator (labelled: late, duplicate, bad)."""
    now_ms = stats.span_start_ms + int(plan.hours * HOUR_MS)
    opts = plan.sim_options(base, now_ms)
    assert opts.start_ms == stats.span_start_ms
    return list(itertools.islice(Simulator(opts).items(), stats.generated))


def test_backfill_ends_now_and_live_events_are_dated_now(bootstrap: str, topics: Topics) -> None:
    # a big country (so live events come every few ms even at night) and a short backfill
    # ~1 event a second at 3 a.m. Bangkok (the quietest hour), ~130 a second at 11 a.m.
    plan = LivePlan(backfill_hours=0.02, cases_per_day=1_000_000)
    base = SimOptions(seed=4, warmup_days=0.1)
    stats = asyncio.run(_run_until_live(bootstrap, topics, plan, base, live_s=8, limit_s=180))
    assert stats.errors == 0 and stats.sent == stats.generated
    items = _replayed(plan, base, stats)
    label = {it.payload: it for it in items}
    records = asyncio.run(read_back(bootstrap, topics, ["grievance", "project"]))
    assert len(records) == stats.sent
    backfill: list[tuple[int, int]] = []
    live: list[tuple[int, int]] = []
    for r in records:
        it = label[r.value]
        if it.reason is not None or it.is_duplicate or it.is_late:
            continue
        occurred = to_ms(orjson.loads(r.value)["occurred_at"])
        assert occurred == it.occurred_ms
        # nothing is ever sent before it happened (the Kafka timestamp is the send time)
        assert occurred <= r.timestamp + 5, (occurred, r.timestamp)
        (live if r.timestamp >= stats.live_since_ms else backfill).append((occurred, r.timestamp))
    assert backfill and live
    # the backfill covers its span and ends at the clock
    assert min(o for o, _ in backfill) >= stats.span_start_ms
    assert max(o for o, _ in backfill) <= stats.live_since_ms
    assert max(o for o, _ in backfill) >= stats.live_since_ms - 60_000
    # live: dated now, within seconds of when they were sent (the first ones may carry the
    # backfill's last 2 s and its final flush), most of them within the same second
    late = [(o, t) for o, t in live if t - o > 5_000]
    assert not late, late[:5]
    delays = sorted(t - o for o, t in live)
    assert delays[len(delays) // 2] <= 1_000, delays
    assert max(o for o, _ in live) > stats.live_since_ms + 2_000  # it went on being live


def test_last_24_hours_by_district_equal_the_oracle(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    worker = WorkerProcess(
        bootstrap,
        topics.prefix,
        tmp_path / "worker",
        env={
            "WARROOM_GRACE_SECONDS": str(GRACE_S),
            "WARROOM_LATE_SECONDS": str(LATE_S),
            "WARROOM_FLUSH_INTERVAL": "0.2",
            "WARROOM_COMMIT_INTERVAL": "1",
            "WARROOM_GROUP_ID": "live-24h",
        },
    )
    worker.start()
    try:
        # 25 h of history (so the 24-hour window has a boundary inside the data), then live
        plan = LivePlan(backfill_hours=25, cases_per_day=3_000)
        base = SimOptions(seed=8)
        stats = asyncio.run(_run_until_live(bootstrap, topics, plan, base, live_s=3, limit_s=300))
        items = _replayed(plan, base, stats)
        bad = {it.payload: it.reason.value for it in items if it.reason is not None}
        records: list[Rec] = asyncio.run(read_back(bootstrap, topics, ["grievance", "project"]))
        assert len(records) == stats.sent > 0
        worker.wait_for(
            lambda: worker.counter("warroom_events_consumed_total") >= len(records),
            timeout=300,
            what="the worker to consume every record",
        )
        exp = compute(records, bad, grace_s=GRACE_S, late_s=LATE_S)
        cutoff_min = (int(time.time()) - 86_400) // 60
        expected: dict[str, float] = defaultdict(float)
        for (district, metric, _d1, _d2, minute), v in exp.buckets.items():
            if metric == "grievance_received" and minute >= cutoff_min:
                expected[district] += v
        total_all = sum(
            v for (_, metric, *_), v in exp.buckets.items() if metric == "grievance_received"
        )
        assert total_all > sum(expected.values()) > 0  # the window cuts the data

        def received_total() -> float:
            rows = worker.query(
                "SELECT sum(value) AS n FROM metric_buckets FINAL "
                "WHERE metric = 'grievance_received'"
            )
            return float(rows[0]["n"]) if rows else 0.0

        worker.wait_for(lambda: received_total() == total_all, timeout=120, what="the flush")
        # the documented "last 24 hours" query (docs/schema.md), with now() fixed to the minute
        rows = worker.query(
            "SELECT district_code, sum(value) AS n FROM metric_buckets FINAL "
            "WHERE metric = 'grievance_received' "
            f"AND bucket >= toDateTime({cutoff_min * 60}, 'UTC') GROUP BY district_code"
        )
        got = {r["district_code"]: float(r["n"]) for r in rows if float(r["n"])}
        assert got == {d: n for d, n in expected.items() if n}
    finally:
        worker.stop()
