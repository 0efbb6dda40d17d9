"""Resident memory of `warroom up`'s broker and worker over a run, sampled from /proc.

    python bench/memory.py [--minutes 10] [--every 30] [--rate 2500] [--speedup S]
                           [--budget-mb 1024] [-- extra `warroom up` flags]
    python bench/memory.py --probe     # which ways of freeing records the broker honours

Starts `warroom up --rate R` on a fresh --data-dir /tmp/broker-mem-*, finds the Tansu broker
and the worker among the children of the `up` process, reads VmRSS from /proc/<pid>/status
every --every seconds, prints one line per sample, then stops `up` with SIGTERM (its clean
stop) and prints whether the last half of the run is flat and broker + worker stays under the
budget. "Flat": the last-half samples grow by less than 10 % of the budget from their first
to their last third (mean of each), so a slowly climbing line is not called flat.

--probe starts a fresh embedded broker and measures, each on its own topic: retention.ms and
retention.bytes set at creation (does the log start move, does memory fall?), cleanup.policy
=compact (are overwritten keys removed?), DeleteRecords, DeleteTopics, and gzip batches
(broker memory per MB of simulated events, against uncompressed ones in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VENV_WARROOM = Path(sys.executable).with_name("warroom")


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    """VmRSS (what `top` shows as RES) or another /proc/<pid>/status field, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def events_sent(sim_log: Path) -> int | None:
    """The simulator's acknowledged count, from its last progress line."""
    try:
        tail = sim_log.read_bytes()[-4000:].decode(errors="replace")
    except OSError:
        return None
    found = re.findall(r"([\d,]+) acknowledged", tail)
    return int(found[-1].replace(",", "")) if found else None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def children(pid: int) -> list[int]:
    """Direct children, from /proc/<pid>/task/*/children (no psutil here)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def find_pids(up_pid: int) -> tuple[int | None, int | None]:
    """(broker, worker) among the `up` process's children."""
    broker = worker = None
    for child in children(up_pid):
        args = cmdline(child)
        if not args:
            continue
        if "tansu" in Path(args[0]).name and "broker" in args:
            broker = child
        elif "warroom.cli" in args and "worker" in args:
            worker = child
    return broker, worker


def flat(values: list[float], budget: float) -> bool:
    if len(values) < 3:
        return False
    third = max(1, len(values) // 3)
    first = sum(values[:third]) / third
    last = sum(values[-third:]) / third
    return last - first < 0.10 * budget


async def _probe(bootstrap: str, broker_pid: int) -> list[tuple[str, str]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete

    from producers.simulator.generator import SimOptions, Simulator

    def mb() -> float:
        return rss_mb(broker_pid) or 0.0

    start = int(time.time() * 1000) - 86_400_000
    sim = Simulator(SimOptions(seed=1, start_ms=start, rate=2500, speedup=500))
    events = [(it.key, it.payload) for it in itertools.islice(sim.items(), 50_000)]
    raw_mb = sum(len(v) for _, v in events) / 1e6
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    ms = {"retention.ms": "1000", "cleanup.policy": "delete"}
    configs = {
        "p-plain": {},
        "p-gzip": {},
        "p-retention-ms": ms,
        "p-retention-bytes": {"retention.bytes": "100000", "cleanup.policy": "delete"},
        "p-compact": {"cleanup.policy": "compact"},
        "p-delete-records": {},
        "p-delete-topic": {},
    }
    await admin.create_topics([NewTopic(t, 1, 1, topic_configs=c) for t, c in configs.items()])
    grown: dict[str, float] = {}
    for topic in configs:
        codec = "gzip" if topic == "p-gzip" else None
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=50,
            max_batch_size=1 << 20,
            compression_type=codec,
        )
        await producer.start()
        before = mb()
        for i, (key, value) in enumerate(events):
            # compaction gets 10 keys only: all but 10 records are overwritten
            k = f"k{i % 10}".encode() if topic == "p-compact" else (key or "").encode()
            await producer.send(topic, value, key=k)
        await producer.flush()
        await producer.stop()
        grown[topic] = mb() - before
    await asyncio.sleep(20)  # Kafka checks retention every few minutes; Tansu: never
    rows: list[tuple[str, str]] = []

    async def log_start(topic: str) -> int:
        tp = TopicPartition(topic, 0)
        return int((await consumer.beginning_offsets([tp]))[tp])

    rows.append(
        (
            f"gzip batches ({raw_mb:.0f} MB of simulated events)",
            f"broker +{grown['p-gzip']:.1f} MB against +{grown['p-plain']:.1f} MB uncompressed",
        )
    )
    for topic, what in (
        ("p-retention-ms", "retention.ms=1000"),
        ("p-retention-bytes", "retention.bytes=100000"),
    ):
        rows.append((f"{what} (20 s later)", f"log start offset {await log_start(topic)}"))
    tp = TopicPartition("p-compact", 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    kept = 0
    while True:
        got = await consumer.getmany(tp, timeout_ms=2000, max_records=50_000)
        if not got:
            break
        kept += sum(len(v) for v in got.values())
    rows.append(("cleanup.policy=compact, 10 keys", f"{kept} of {len(events)} records still read"))
    try:
        await asyncio.wait_for(
            admin.delete_records(
                {TopicPartition("p-delete-records", 0): RecordsToDelete(25_000)}, timeout_ms=5000
            ),
            10,
        )
        outcome = f"answered; log start offset {await log_start('p-delete-records')}"
    except Exception as exc:  # the probe reports whatever the broker does
        outcome = f"failed: {exc!r} (see the broker log)"
    rows.append(("DeleteRecords below offset 25000", outcome))
    before = mb()
    await admin.delete_topics(["p-delete-topic"])
    await asyncio.sleep(2)
    rows.append(("DeleteTopics", f"broker {before:.0f} -> {mb():.0f} MB"))
    await consumer.stop()
    await admin.close()
    return rows


def probe() -> int:
    from streams.broker import EmbeddedBroker

    log_dir = Path(tempfile.mkdtemp(prefix="broker-mem-probe-", dir="/tmp"))
    broker = EmbeddedBroker(log_path=log_dir / "tansu.log")
    bootstrap = broker.start()
    try:
        assert broker.pid is not None
        rows = asyncio.run(_probe(bootstrap, broker.pid))
        alive = broker.alive()
    finally:
        broker.stop()
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(f"broker still running at the end: {'yes' if alive else 'no'}; its log: {log_dir}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument(
        "--rate", type=float, default=2500.0, help="simulator events/s; 0: up's default live mode"
    )
    ap.add_argument("--speedup", type=float, default=None)
    ap.add_argument("--budget-mb", type=float, default=1024.0)
    ap.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    ap.add_argument("--probe", action="store_true", help="measure the broker's ways of freeing")
    ap.add_argument("extra", nargs="*", help="more `warroom up` flags (after --)")
    a = ap.parse_args()
    if a.probe:
        return probe()

    data_dir = Path(tempfile.mkdtemp(prefix="broker-mem-", dir="/tmp"))
    args = [str(VENV_WARROOM), "up", "--data-dir", str(data_dir), "--web-port", "0"]
    if a.rate > 0:  # --rate 0: up's default live mode (history backfill, then real volume)
        args += ["--rate", str(a.rate)]
    if a.speedup is not None:
        args += ["--speedup", str(a.speedup)]
    args += a.extra
    print(f"# {' '.join(args)}", flush=True)
    log = open(data_dir / "up.out", "wb")  # noqa: SIM115 - closed below
    # own session: SIGTERM to `up` alone is its clean stop; nothing else shares the signal
    up = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    samples: list[tuple[float, float, float]] = []
    started = time.monotonic()
    try:
        broker = worker = None
        while worker is None or broker is None:
            if up.poll() is not None:
                print(f"warroom up exited early (code {up.returncode}); see {data_dir}/up.out")
                return 1
            if time.monotonic() - started > 120:
                print("broker/worker not found among the children of `up` within 120 s")
                return 1
            broker, worker = find_pids(up.pid)
            time.sleep(0.5)
        print(f"# broker pid {broker}, worker pid {worker}; sampling every {a.every:.0f}s")
        print(
            f"{'t (s)':>7} {'broker MB':>10} {'worker MB':>10} {'sum MB':>8} "
            f"{'(worker anon)':>13} {'events sent':>12}",
            flush=True,
        )
        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        next_at = t0 + a.every
        while time.monotonic() < end:
            if up.poll() is not None:
                print(f"warroom up exited (code {up.returncode}); see {data_dir}/up.out")
                break
            time.sleep(max(0.0, min(next_at, end) - time.monotonic()))
            if time.monotonic() < next_at - 0.01:
                continue
            next_at += a.every
            b, w = rss_mb(broker), rss_mb(worker)
            if b is None or w is None:
                print("broker or worker is gone; stopping")
                break
            t = time.monotonic() - t0
            samples.append((t, b, w))
            anon = rss_mb(worker, "RssAnon") or 0.0
            sent = events_sent(data_dir / "logs" / "simulator.log")
            shown = f"{sent:,}" if sent is not None else "?"
            print(f"{t:7.0f} {b:10.0f} {w:10.0f} {b + w:8.0f} {anon:13.0f} {shown:>12}", flush=True)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
        log.close()
        if not a.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    if not samples:
        return 1
    half = [b + w for t, b, w in samples if t >= samples[-1][0] / 2]
    is_flat = flat(half, a.budget_mb)
    under = max(half) < a.budget_mb
    print(
        f"last half ({len(half)} samples): {min(half):.0f}-{max(half):.0f} MB broker+worker; "
        f"flat: {'yes' if is_flat else 'no'}; under {a.budget_mb:.0f} MB: "
        f"{'yes' if under else 'no'}; up exit code {up.returncode}"
    )
    return 0 if is_flat and under else 1


if __name__ == "__main__":
    sys.exit(main())
