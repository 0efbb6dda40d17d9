"""History beside live (`warroom replay --backfill`) and the bound on one record's jump of a
live clock, against the independent oracle, on the real broker, worker and chdb store."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from producers.simulator.generator import Item, SimOptions, Simulator
from streams.reasons import Reason
from streams.topics import Topics
from tests.integration.streams import compare
from tests.integration.streams.conftest import GRACE_S, LATE_S, START_MS, oracle, simulate
from tests.kafka_io import produce_items, read_back, read_records, run
from tests.oracle import Expected, Rec, compute, to_ms
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

LANE = 32768  # kafka_partition of backfill rows: 32768 + the backfill topic's partition
YEAR_MS = 365 * 86_400_000
NEVER = 10**9  # seconds: a grace/lateness no event reaches (the backfill's "nothing too late")
LIVE_N = 6_000
LIVE_MORE = 2_000
BACKFILL_N = 8_000


def _old_items(n: int) -> list[Item]:
    """A year-old stretch of the same national workload, as an old export would hold it."""
    opts = SimOptions(
        seed=5,
        start_ms=START_MS - YEAR_MS,
        rate=2000,
        speedup=100_000,
        bad_share=0.02,
        duplicate_share=0.01,
        late_share=0.03,
    )
    items = []
    for it in Simulator(opts).items():
        # a file is routed by schema and keyed by district, so a wrong-topic or wrong-key event
        # cannot be reproduced by one; a payload with a line break or nothing in it is not one
        # line of JSON Lines
        if it.reason in (Reason.WRONG_TOPIC, Reason.WRONG_KEY):
            continue
        if b"\n" in it.payload or not it.payload.strip():
            continue
        items.append(it)
        if len(items) == n:
            return items
    raise AssertionError("the simulator ended early")


def _cli(*args: str, bootstrap: str, topics: Topics) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WARROOM_KAFKA": bootstrap, "WARROOM_TOPIC_PREFIX": topics.prefix}
    done = subprocess.run(
        [sys.executable, "-m", "warroom.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _buckets(w: WorkerProcess, where: str) -> dict[tuple[str, str, str, str, int], float]:
    rows = w.query(
        "SELECT district_code AS d, metric AS m, dim1 AS a, dim2 AS b, toUInt32(bucket) AS t, "
        f"sum(value) AS v FROM metric_buckets FINAL WHERE {where} GROUP BY d, m, a, b, t"
    )
    return {(r["d"], r["m"], r["a"], r["b"], int(r["t"]) // 60): float(r["v"]) for r in rows}


def _quality(w: WorkerProcess, where: str) -> dict[tuple[str, str, str, str, str, int], int]:
    rows = w.query(
        "SELECT district_code AS d, stream AS s, source AS src, outcome AS o, reason AS r, "
        f"toUInt32(bucket) AS t, sum(count) AS c FROM quality_buckets FINAL WHERE {where} "
        "GROUP BY d, s, src, o, r, t"
    )
    return {
        (r["d"], r["s"], r["src"], r["o"], r["r"], int(r["t"]) // 60): int(r["c"]) for r in rows
    }


def _count(w: WorkerProcess, sql: str) -> int:
    return int(w.query(sql)[0]["n"])


def _alerts(w: WorkerProcess) -> list[tuple[Any, ...]]:
    import urllib.request

    with urllib.request.urlopen(w.url + "/status/alerts", timeout=10) as r:
        body = orjson.loads(r.read())
    alerts = sorted(
        (a["alert_id"], a["rule_id"], a["district_code"], a["state"], a["value"])
        for a in body["alerts"]
    )
    return [body["clock_ms"], *alerts]


def _settled_alerts(w: WorkerProcess) -> list[Any]:
    """The live alerts once three evaluations (1 s ticks) in a row left them unchanged."""
    seen: list[list[Any]] = []

    def steady() -> bool:
        seen.append(_alerts(w))
        return len(seen) >= 7 and all(x == seen[-1] for x in seen[-7:])

    w.wait_for(steady, timeout=90, what="the live alerts to settle")
    return seen[-1]


def _live_view(w: WorkerProcess) -> dict[str, Any]:
    """Everything live: rows of the live partitions, too-late counters, gauges, alerts."""
    alerts = _settled_alerts(w)
    return {
        "buckets": _buckets(w, f"kafka_partition < {LANE}"),
        "quality": _quality(w, f"kafka_partition < {LANE}"),
        "gauges": compare.gauges(w),
        "too_late": w.counter("warroom_events_late_total", kind="too_late"),
        "late": w.counter("warroom_events_late_total", kind="late"),
        "alerts": alerts,
    }


def _backfill_expected(bootstrap: str, topics: Topics, items: list[Item]) -> Expected:
    """The oracle over the backfill topics as they sit in Kafka: its rules with a grace and a
    lateness no event reaches (backfilled events are never late or too late)."""
    names = {topics.backfill_for(s): s for s in ("grievance", "project")}
    recs = []
    for r in run(read_records(bootstrap, names)):
        assert r.value is not None
        recs.append(Rec(names[r.topic], r.partition, r.offset, r.timestamp, r.value))
    bad = {it.payload: it.reason.value for it in items if it.reason is not None}
    return compute(recs, bad, grace_s=NEVER, late_s=NEVER)


def _assert_backfill_matches(w: WorkerProcess, exp: Expected, topics: Topics) -> None:
    lane = f"kafka_partition >= {LANE}"
    problems = {
        "metric_buckets": compare.diff(exp.buckets, _buckets(w, lane)),
        "quality_buckets": compare.diff(dict(exp.quality), dict(_quality(w, lane))),
    }
    raw = _count(
        w,
        f"SELECT (SELECT count(DISTINCT event_id) FROM grievance_events WHERE {lane}) "
        f"+ (SELECT count(DISTINCT event_id) FROM project_events WHERE {lane}) AS n",
    )
    if raw != len(exp.accepted_ids):
        problems["raw events"] = [f"expected {len(exp.accepted_ids)}, got {raw}"]
    backfill_topics = ", ".join(f"'{topics.backfill_for(s)}'" for s in ("grievance", "project"))
    dead = _count(
        w, f"SELECT count() AS n FROM dead_letters FINAL WHERE topic IN ({backfill_topics})"
    )
    if dead != exp.rejected:
        problems["dead_letters"] = [f"expected {exp.rejected}, got {dead}"]
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in problems.items())


def _wait_backfill(w: WorkerProcess, topics: Topics, n: int, *, consumed: bool = True) -> None:
    """Every backfill record consumed (by this run of the worker), and its outcome stored."""
    names = [topics.backfill_for(s) for s in ("grievance", "project")]
    if consumed:
        w.wait_for(
            lambda: sum(w.counter("warroom_events_consumed_total", topic=t) for t in names) >= n,
            timeout=240,
            what=f"{n} backfill records consumed",
        )
    w.wait_for(
        lambda: (
            _count(
                w,
                "SELECT sum(count) AS n FROM quality_buckets FINAL WHERE kafka_partition >= "
                f"{LANE} AND outcome IN ('accepted', 'rejected', 'duplicate')",
            )
            >= n
        ),
        timeout=120,
        what="every backfill record's outcome stored",
    )
    time.sleep(1.0)  # the rest of that flush (raw rows, dead letters) lands too


def test_backfill_reaches_every_minute_once_beside_an_untouched_live_stream(
    bootstrap: str,
    topics: Topics,
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    live = simulate(LIVE_N + LIVE_MORE, seed=21)
    run(produce_items(bootstrap, topics, live[:LIVE_N]))
    # hold one minute: the backfill evicts all the time, so late and repeated old events
    # need their buckets read back from the store (the path a year-long file takes)
    worker = make_worker(WARROOM_ALERT_TICK_SECONDS="1", WARROOM_BACKFILL_HOLD_SECONDS="60").start()
    compare.wait_settled(worker, LIVE_N)
    before = _live_view(worker)

    old = _old_items(BACKFILL_N)
    assert sum(it.reason is not None for it in old) > 50
    assert sum(it.is_duplicate for it in old) > 20
    assert sum(it.is_late for it in old) > 50
    file = tmp_path / "last-year.jsonl"
    file.write_bytes(b"".join(it.payload + b"\n" for it in old))
    # without --backfill this history would be too late for the live clocks (the reason for it)
    last_live = max(
        to_ms(it.event["occurred_at"])
        for it in live[:LIVE_N]
        if it.event and it.reason is None and "occurred_at" in it.event
    )
    newest_old = max(it.occurred_ms for it in old)
    assert newest_old < last_live - GRACE_S * 1000

    # loaded as two catch-up batches, the newer half first: the older half then lands in
    # minutes the backfill clock has left behind (evicted buckets, read back from the store)
    half = BACKFILL_N // 2
    newer, older = tmp_path / "newer.jsonl", tmp_path / "older.jsonl"
    newer.write_bytes(b"".join(it.payload + b"\n" for it in old[half:]))
    older.write_bytes(b"".join(it.payload + b"\n" for it in old[:half]))
    out = _cli("replay", "--backfill", str(newer), bootstrap=bootstrap, topics=topics)
    assert f"{BACKFILL_N - half:,} events acknowledged" in out.stdout
    _wait_backfill(worker, topics, BACKFILL_N - half)
    time.sleep(4)  # eviction runs every tenth flush cycle
    _cli("replay", "--backfill", str(older), bootstrap=bootstrap, topics=topics)
    _wait_backfill(worker, topics, BACKFILL_N)
    exp = _backfill_expected(bootstrap, topics, old)
    assert exp.consumed == BACKFILL_N and exp.rejected > 0 and exp.duplicates > 0
    assert not any(k[3] in ("late", "too_late") for k in exp.quality)
    _assert_backfill_matches(worker, exp, topics)
    first_pass = _buckets(worker, f"kafka_partition >= {LANE}")
    assert "backfill buckets read back" in worker.log_path.read_text()
    compare.wait_settled(worker, LIVE_N + BACKFILL_N)  # a gauge snapshot after the backfill
    assert _live_view(worker) == before, "the backfill changed live rows, counters or alerts"

    # the same history again, as one file: every event a duplicate, the buckets as they were
    out = _cli("replay", "--backfill", str(file), bootstrap=bootstrap, topics=topics)
    assert f"{BACKFILL_N:,} events acknowledged" in out.stdout
    _wait_backfill(worker, topics, 2 * BACKFILL_N)
    exp2 = _backfill_expected(bootstrap, topics, old)
    assert exp2.duplicates == exp.duplicates + (BACKFILL_N - exp.rejected)
    _assert_backfill_matches(worker, exp2, topics)
    assert _buckets(worker, f"kafka_partition >= {LANE}") == first_pass

    # the live stream goes on as if nothing happened: live tables equal the live oracle
    run(produce_items(bootstrap, topics, live[LIVE_N:]))
    compare.wait_settled(worker, LIVE_N + LIVE_MORE + 2 * BACKFILL_N)
    live_exp = oracle(run(read_back(bootstrap, topics, ("grievance", "project"))), live)
    assert compare.diff(live_exp.buckets, _buckets(worker, f"kafka_partition < {LANE}")) == []
    assert (
        compare.diff(dict(live_exp.quality), dict(_quality(worker, f"kafka_partition < {LANE}")))
        == []
    )
    assert (
        compare.diff({k: v for k, v in live_exp.gauges.items() if v}, compare.gauges(worker)) == []
    )
    too_late = sum(n for k, n in live_exp.quality.items() if k[3] == "too_late")
    assert worker.counter("warroom_events_late_total", kind="too_late") == too_late
    print(
        f"backfill: {BACKFILL_N} records, {len(exp.accepted_ids)} events in "
        f"{len(exp.buckets)} metric buckets, "
        f"{exp.rejected} dead letters, {exp.duplicates} duplicates; second pass "
        f"{exp2.duplicates} duplicates; live too-late {too_late}, live alerts "
        f"{len(before['alerts']) - 1} before and after"
    )
    assert worker.stop() == 0, worker.tail()


async def _send_backfill(
    bootstrap: str, topics: Topics, items: list[Item], rate: float | None = None
) -> None:
    await produce_items(bootstrap, topics, items, rate=rate, topic_of=topics.backfill_for)


def test_killed_worker_mid_backfill_restarts_to_the_same_tables(
    bootstrap: str, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    """SIGKILL while history loads (no flush, no checkpoint, no commit), restart: every old
    event in its bucket once, with evicted buckets read back across the restart."""
    n = 12_000
    old = _old_items(n)
    run(_send_backfill(bootstrap, topics, old[: n // 2]))
    worker = make_worker(WARROOM_COMMIT_INTERVAL="0.5", WARROOM_BACKFILL_HOLD_SECONDS="60").start()
    _wait_backfill(worker, topics, n // 2)
    time.sleep(1.5)  # at least one checkpoint lands
    sender = threading.Thread(
        target=run, args=(_send_backfill(bootstrap, topics, old[n // 2 :], rate=800),)
    )
    sender.start()
    names = [topics.backfill_for(s) for s in ("grievance", "project")]

    def consumed() -> float:
        return sum(worker.counter("warroom_events_consumed_total", topic=t) for t in names)

    worker.wait_for(lambda: consumed() >= n // 2 + 1000, what="the second half flowing")
    at_kill = consumed()
    worker.kill()
    sender.join()
    assert at_kill < n, "the kill did not land mid-stream"
    worker.start()
    _wait_backfill(worker, topics, n, consumed=False)  # a restart counts from the commit
    exp = _backfill_expected(bootstrap, topics, old)
    assert exp.consumed == n
    _assert_backfill_matches(worker, exp, topics)
    for table in ("metric_gauges", "metric_gauges_latest"):  # backfill lanes keep no gauges
        n_gauges = f"SELECT count() AS n FROM {table} WHERE kafka_partition >= {LANE}"
        assert _count(worker, n_gauges) == 0
    print(f"backfill killed at {at_kill:.0f} of {n} records: tables equal the oracle after restart")
    assert worker.stop() == 0, worker.tail()


# -- one event far ahead of a lagging partition's clock ---------------------------------------

DISTRICT = "1004"


def _received(ms: int, n: int) -> bytes:
    return orjson.dumps(
        {
            "schema": "grievance.v1",
            "event_id": str(uuid.uuid4()),
            "occurred_at": datetime.fromtimestamp(ms / 1000, UTC).isoformat(),
            "district_code": DISTRICT,
            "source": "lagging-feed",
            "grievance_id": f"G-{n}",
            "type": "received",
            "category": ("debt", "land", "flood")[n % 3],
            "channel": "hotline_1567",
            "priority": "normal",
            "due_at": datetime.fromtimestamp((ms + 86_400_000) / 1000, UTC).isoformat(),
        }
    )


def bounded_oracle(
    recs: list[Rec], *, grace_s: int, late_s: int, jump_s: int
) -> tuple[dict[tuple[str, str, str, str, int], float], dict[tuple[str, str, int], int]]:
    """The written rule (docs/contract.md "One record cannot move a clock far"), in plain
    Python for received events: an event more than `jump` ahead of the clock and dated no
    earlier than `jump` before its Kafka timestamp moves the clock only when the event before
    it was such an event within `jump` of it; alone it is `ahead`. jump 0: no bound."""
    grace, late, jump = grace_s * 1000, late_s * 1000, jump_s * 1000
    buckets: dict[tuple[str, str, str, str, int], float] = defaultdict(float)
    quality: dict[tuple[str, str, int], int] = defaultdict(int)
    wm = 0
    pending = 0
    for r in sorted(recs, key=lambda r: r.offset):
        ev = orjson.loads(r.value)
        ms = to_ms(ev["occurred_at"])
        qminute = max(ms, wm - grace) // 60_000
        quality[(ev["source"], "accepted", qminute)] += 1
        in_window = True
        if ms > wm:
            confirmed = pending and abs(ms - pending) <= jump
            if jump and wm and ms - wm > jump and ms >= r.timestamp - jump and not confirmed:
                pending = ms
                quality[(ev["source"], "ahead", qminute)] += 1
            else:
                wm, pending = ms, 0
        else:
            pending = 0
            if wm - ms > late:
                if ms < wm - grace:
                    in_window = False
                    quality[(ev["source"], "too_late", qminute)] += 1
                else:
                    quality[(ev["source"], "late", qminute)] += 1
        if in_window:
            key = (DISTRICT, "grievance_received", ev["category"], ev["channel"], ms // 60_000)
            buckets[key] += 1
    return buckets, quality


def test_one_current_event_on_a_lagging_partition_sets_off_no_storm(
    bootstrap: str,
    topics: Topics,
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    """A partition weeks behind (a feed catching up, one event a simulated second, a few
    out of order), then `warroom submit` of an event dated now, then the feed goes on."""
    times = [START_MS + i * 1000 for i in range(3000)]
    for i in range(1700, 3000, 97):  # some late, none beyond the grace of the feed's own clock
        times[i] -= 20 * 60_000
    counter = itertools.count()
    first = [_received(t, next(counter)) for t in times[:1500]]
    rest = [_received(t, next(counter)) for t in times[1500:]]

    async def send(payloads: list[bytes]) -> None:
        from producers.kafka import EventSender

        sender = EventSender(bootstrap, topics)
        await sender.start()
        try:
            for p in payloads:
                await sender.send_raw(topics.grievance, p, DISTRICT)
        finally:
            await sender.stop()
        assert sender.errors == 0

    run(send(first))
    now_file = tmp_path / "today.json"
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    now_file.write_bytes(_received(now_ms - 60_000, 99_999))
    out = _cli("submit", str(now_file), bootstrap=bootstrap, topics=topics)
    assert "sent:" in out.stdout
    run(send(rest))
    worker = make_worker().start()
    compare.wait_settled(worker, 3001)

    recs = [r for r in run(read_back(bootstrap, topics, ("grievance",)))]
    assert len(recs) == 3001 and len({r.partition for r in recs}) == 1
    buckets, quality = bounded_oracle(recs, grace_s=GRACE_S, late_s=LATE_S, jump_s=GRACE_S)
    _, unbounded = bounded_oracle(recs, grace_s=GRACE_S, late_s=LATE_S, jump_s=0)
    old_too_late = sum(n for k, n in unbounded.items() if k[1] == "too_late")
    assert old_too_late == 1500  # the storm the bound prevents: every event after the stray

    got_q = {
        (r["s"], r["o"], int(r["t"]) // 60): int(r["c"])
        for r in worker.query(
            "SELECT source AS s, outcome AS o, toUInt32(bucket) AS t, sum(count) AS c "
            "FROM quality_buckets FINAL GROUP BY s, o, t"
        )
    }
    assert compare.diff(dict(quality), got_q) == []
    assert compare.diff(dict(buckets), _buckets(worker, "1")) == []
    totals: dict[str, int] = defaultdict(int)
    for (_, outcome, _), n in quality.items():
        totals[outcome] += n
    assert totals["too_late"] == 0 and totals["ahead"] == 1 and totals["accepted"] == 3001
    assert worker.counter("warroom_events_late_total", kind="too_late") == 0
    assert _count(worker, "SELECT count() AS n FROM grievance_events FINAL") == 3001
    print(
        f"lagging partition + 1 current event: outcomes {json.dumps(dict(totals))}; "
        f"without the bound {old_too_late} too late"
    )
    assert worker.stop() == 0, worker.tail()
