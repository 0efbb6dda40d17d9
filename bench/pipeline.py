"""Throughput and freshness of warroom's pipeline against a plain-consumer ceiling, in one run.

    python bench/pipeline.py [--events 500000] [--partitions 4] [--fresh-rate 5000]
                             [--fresh-seconds 30] [--skip-freshness] [--workers 2]
    python bench/pipeline.py --compare-metrics [--rounds 2]   # instrumentation overhead

On its own Tansu broker, with its own chdb store:
  1. produces N simulated events (the realistic mix, bad and duplicate ones included);
  2. ceiling: a plain aiokafka consumer decodes every event with orjson and counts it per
     (district, minute) in a dict — the fastest anything in Python can read these topics;
  3. pipeline: `warroom worker` from its first consumed event until every row those events
     produce is queryable in ClickHouse (quality counts reach N through the query endpoint);
  4. freshness: events with occurred_at = now at a steady rate; each 100 ms slice of events
     carries its own source label, and its event-to-queryable time is when the store first
     shows the whole slice. Prints p50/p99 over the slices.
Timings on a shared machine are noisy: read the ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from producers.kafka import EventSender
from producers.simulator.generator import SimOptions, Simulator
from streams.broker import EmbeddedBroker, ensure_topics, free_port
from streams.topics import Topics
from tests.services.worker import WorkerProcess


def simulated(n: int, seed: int) -> list[tuple[str, str | None, bytes]]:
    start = int(time.time() * 1000) - 30 * 86_400_000
    opts = SimOptions(seed=seed, start_ms=start, rate=5000, speedup=5000)
    return [(it.stream, it.key, it.payload) for it in itertools.islice(Simulator(opts).items(), n)]


async def produce(
    bootstrap: str, topics: Topics, items: list[tuple[str, str | None, bytes]]
) -> None:
    sender = EventSender(bootstrap, topics, producer="bench")
    await sender.start()
    try:
        for stream, key, payload in items:
            await sender.send_raw(topics.for_stream(stream), payload, key)
    finally:
        await sender.stop()
    if sender.errors:
        raise SystemExit(f"{sender.errors} sends failed")


async def ceiling(bootstrap: str, topics: Topics, n: int) -> float:
    """Events/s of decode + count with a plain consumer (group-less, from the beginning)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=32 << 20,
    )
    await consumer.start()
    try:
        await consumer.topics()
        tps = [
            TopicPartition(t, p)
            for t in (topics.grievance, topics.project)
            for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        counts: dict[tuple[str, str], int] = {}
        got = 0
        started = 0.0
        loads = orjson.loads
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20000)
            if not started and batch:
                started = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    got += 1
                    try:
                        e = loads(r.value)
                        k = (e["district_code"], e["occurred_at"][:16])
                    except Exception:
                        k = ("", "")
                    counts[k] = counts.get(k, 0) + 1
        return n / (time.perf_counter() - started)
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


def counted(w: WorkerProcess, where: str = "") -> int:
    rows = w.query(
        "SELECT sum(count) AS n FROM quality_buckets FINAL "
        f"WHERE outcome IN ('accepted', 'rejected', 'duplicate') {where}"
    )
    return int(rows[0]["n"] or 0)


def pipeline_rate(workers: list[WorkerProcess], n: int) -> tuple[float, float]:
    """(events/s from the first event consumed by any worker to all queryable, seconds).

    The workers start together; if the group still rebalances mid-run, the pause counts."""
    owner = workers[0]

    def consumed() -> float:
        return sum(w.counter("warroom_events_consumed_total") for w in workers)

    while consumed() <= 0:
        time.sleep(0.02)
    started = time.perf_counter()
    # the consumed counters are cheap to read; the store is asked only once everything is in
    while consumed() < n:
        time.sleep(0.05)
    while counted(owner) < n:
        time.sleep(0.05)
    took = time.perf_counter() - started
    return n / took, took


def freshness(
    bootstrap: str, topics: Topics, w: WorkerProcess, rate: int, seconds: float
) -> list[float]:
    """Event-to-queryable seconds of each 100 ms slice of live events."""
    districts = ["1001", "1033", "5001", "5701", "3001", "8301", "9001", "4001"]
    sent_at: dict[str, tuple[float, int]] = {}
    per_slice = max(1, rate // 10)
    run_id = uuid.uuid4().hex[:6]

    async def send() -> None:
        sender = EventSender(bootstrap, topics, producer="bench-fresh")
        await sender.start()
        try:
            t0 = time.perf_counter()
            for k in range(int(seconds * 10)):
                target = t0 + k / 10
                await asyncio.sleep(max(0.0, target - time.perf_counter()))
                source = f"f{run_id}-{k}"
                now = datetime.now(UTC).isoformat(timespec="milliseconds")
                for i in range(per_slice):
                    d = districts[i % len(districts)]
                    await sender.send(
                        {
                            "schema": "grievance.v1",
                            "event_id": str(uuid.uuid4()),
                            "occurred_at": now,
                            "district_code": d,
                            "source": source,
                            "grievance_id": f"F-{run_id}-{k}-{i}",
                            "type": "in_progress",
                            "category": "other",
                            "channel": "web",
                            "priority": "normal",
                        }
                    )
                await sender.flush()  # the slice is on the broker: it counts from here
                sent_at[source] = (time.perf_counter(), per_slice)
        finally:
            await sender.stop()

    thread = threading.Thread(target=asyncio.run, args=(send(),))
    thread.start()
    latencies: dict[str, float] = {}
    deadline = time.perf_counter() + seconds + 60
    while time.perf_counter() < deadline:
        rows = w.query(
            "SELECT source AS s, sum(count) AS n FROM quality_buckets FINAL "
            f"WHERE outcome = 'accepted' AND startsWith(source, 'f{run_id}-') GROUP BY s"
        )
        now = time.perf_counter()
        for r in rows:
            s = r["s"]
            if s in latencies or s not in sent_at:
                continue
            t, size = sent_at[s]
            if int(r["n"]) >= size:
                latencies[s] = now - t
        if not thread.is_alive() and len(latencies) >= len(sent_at):
            break
        time.sleep(0.05)
    thread.join()
    return sorted(latencies.values())


def measure(
    bootstrap: str,
    topics: Topics,
    work: Path,
    args: argparse.Namespace,
    tag: str,
    extra_env: dict[str, str] | None = None,
) -> tuple[float, float, list[WorkerProcess]]:
    """Start `args.workers` workers in a fresh consumer group (their own stores) and measure
    them over the N events: (events/s, seconds, the workers, still running)."""
    env = {
        "WARROOM_PARTITIONS": str(args.partitions),
        "WARROOM_LOG_LEVEL": "warning",
        "WARROOM_GROUP_ID": f"bench-{tag}",
        **(extra_env or {}),
    }
    # the store owner listens on a known port so the others can start at the same moment
    # and join the group together (a late joiner would force a rebalance mid-run)
    port = free_port()
    owner = WorkerProcess(
        bootstrap, topics.prefix, work / tag / "worker", env={**env, "WARROOM_WEB_PORT": str(port)}
    )
    store = f"chdb+http://127.0.0.1:{port}"
    workers = [owner] + [
        WorkerProcess(
            bootstrap,
            topics.prefix,
            work / tag / f"worker-{i}",
            env={**env, "WARROOM_STORE": store},
        )
        for i in range(1, args.workers)
    ]
    try:
        for w in workers:
            w.spawn()
        for w in workers:
            w.wait_started()
        rate, took = pipeline_rate(workers, args.events)
    except BaseException:
        stop_all(workers)
        raise
    return rate, took, workers


def stop_all(workers: list[WorkerProcess]) -> None:
    for w in reversed(workers):  # the store owner last: the others write through it
        w.stop()


def compare_metrics(
    bootstrap: str, topics: Topics, work: Path, args: argparse.Namespace, ceil: float
) -> None:
    """Instrumentation overhead: the same events through fresh groups with the per-batch
    Prometheus recording on and off (WARROOM_METRICS), alternating so drift hits both."""
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(args.rounds):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            rate, took, workers = measure(
                bootstrap, topics, work, args, f"{mode}{r}", {"WARROOM_METRICS": mode}
            )
            stop_all(workers)
            rates[mode].append(rate)
            print(f"metrics {mode:>3}, round {r + 1}: {rate:>10,.0f} events/s ({took:.1f}s)")
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    print(f"median with metrics {on:,.0f} events/s ({on / ceil:.1%} of the ceiling), "
          f"without {off:,.0f} ({off / ceil:.1%})")  # fmt: skip
    print(f"ratio with / without instrumentation: {on / off:.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fresh-rate", type=int, default=5000)
    ap.add_argument("--fresh-seconds", type=float, default=30.0)
    ap.add_argument("--skip-freshness", action="store_true")
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="workers in the group; the first owns the embedded store, the others write "
        "through it (one per core is the point: Python runs one thread at a time)",
    )
    ap.add_argument(
        "--compare-metrics",
        action="store_true",
        help="instead of (b) and (c): the pipeline with and without its Prometheus recording",
    )
    ap.add_argument("--rounds", type=int, default=2, help="rounds of --compare-metrics")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="warroom-bench-"))
    broker = EmbeddedBroker(log_path=work / "tansu.log")
    try:
        bootstrap = broker.start()
        topics = Topics(prefix="bench-")
        asyncio.run(ensure_topics(bootstrap, topics.all(), args.partitions))
        t = time.perf_counter()
        items = simulated(args.events, args.seed)
        print(f"generated {len(items):,} simulated events in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        asyncio.run(produce(bootstrap, topics, items))
        print(f"produced in {time.perf_counter() - t:.1f}s")
        del items

        ceil = asyncio.run(ceiling(bootstrap, topics, args.events))
        print(f"ceiling  (aiokafka + orjson, decode and count): {ceil:>10,.0f} events/s")
        if args.compare_metrics:
            compare_metrics(bootstrap, topics, work, args, ceil)
        else:
            main_run(bootstrap, topics, work, args, ceil)
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    sys.stdout.flush()
    os._exit(0)  # chdb's exit-time destructors can crash after everything is done


def main_run(
    bootstrap: str, topics: Topics, work: Path, args: argparse.Namespace, ceil: float
) -> None:
    """(b) and (c): the pipeline's rate against the ceiling, then freshness at a steady rate."""
    rate, took, workers = measure(bootstrap, topics, work, args, "main")
    try:
        print(
            f"pipeline, {args.workers} worker(s) (first consumed -> every row queryable): "
            f"{rate:>10,.0f} events/s ({args.events:,} in {took:.1f}s)"
        )
        print(f"ratio pipeline / ceiling: {rate / ceil:.1%}")
        if args.skip_freshness:
            return
        lat = freshness(bootstrap, topics, workers[0], args.fresh_rate, args.fresh_seconds)
        if not lat:
            print("freshness: no slice became queryable")
            return
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"freshness at {args.fresh_rate:,} events/s for {args.fresh_seconds:.0f}s: "
            f"event -> queryable p50 {p50:.2f}s, p99 {p99:.2f}s, max {lat[-1]:.2f}s "
            f"({len(lat)} slices of 100 ms)"
        )
    finally:
        stop_all(workers)


if __name__ == "__main__":
    main()
