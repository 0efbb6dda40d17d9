"""Measure the alert delay: triggering event at the broker -> notification at a receiver.

    .venv/bin/python -m tests.integration.alerts.measure_delay [--alerts 8] [--spacing 0.3]

Starts its own Tansu broker, a webhook receiver that stamps each arrival, and a real
`warroom worker` with the worker's default timing (flush 0.5 s, tick 10 s: evaluation is
triggered by new counts, at most once a second). Each round sends a surge of MIN_COUNT
grievances to one district, one event every `spacing` seconds; the rule fires on the
MIN_COUNT-th (`for: 0s`, no group window), so the delay is that record's broker timestamp to
the chief's webhook arrival. Prints p50/max and one delivered Thai message. Not a test: no
assertion on timings (they depend on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp import web

from streams.broker import EmbeddedBroker, ensure_topics
from streams.topics import Topics
from tests.integration.alerts.scenario import (
    CLOCKS,
    MIN_COUNT,
    MINUTE_MS,
    RULES_YAML,
    Directory,
    Timeline,
    received,
    t0_ms,
    wait_until,
    worker_env,
)
from tests.services.webhook_receiver import WebhookReceiver
from tests.services.worker import WorkerProcess

DISTRICTS = ["5001", "1001", "3001", "4001", "1002", "5002", "9005", "9006", "1003", "1004"]


class StampingReceiver(WebhookReceiver):
    """Records the wall time each accepted delivery arrived (ms), by path."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[str, float, dict[str, object]]] = []

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.time() * 1000
        before = len(self.deliveries())
        response = await super()._handle(request)
        after = self.deliveries()
        if len(after) > before:
            with self.lock:
                self.arrivals.append((request.path, arrived, after[-1].body))
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=8)
    parser.add_argument("--spacing", type=float, default=0.3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="alert-delay-"))
    broker = EmbeddedBroker(log_path=base / "tansu.log")
    bootstrap = broker.start()
    hook = StampingReceiver()
    hook.start()
    worker: WorkerProcess | None = None
    try:
        topics = Topics(prefix=f"d{uuid.uuid4().hex[:8]}-")
        asyncio.run(ensure_topics(bootstrap, topics.all(), partitions=4))
        rules = base / "rules.yaml"
        rules.write_text(RULES_YAML.replace("for: 2m\n    repeat", "for: 0s\n    repeat"))
        d = Directory(hook.url)
        districts = DISTRICTS[: args.alerts]
        for code in districts:
            d.chief(code, f"นายอำเภอ {code}")
        env = worker_env(d.write(base / "directory.yaml"), rules)
        for name in ("WARROOM_ALERT_TICK_SECONDS", "WARROOM_FLUSH_INTERVAL"):
            env.pop(name)  # the defaults: what `warroom up` runs with
        env.update(WARROOM_GROUP_ID="delay", WARROOM_REBALANCE_TIMEOUT="2")
        worker = WorkerProcess(bootstrap, topics.prefix, base / "worker", env=env).start()
        t0 = t0_ms()
        tl = Timeline(bootstrap, topics, CLOCKS)
        tl.background(districts, t0 - 4 * 60 * MINUTE_MS, t0)
        time.sleep(3)
        delays = []
        for i, code in enumerate(districts):
            start = t0 + i * MINUTE_MS
            stamps = []
            for n in range(MIN_COUNT):
                stamps += tl.send([received(code, start + n * 1000, n)])
                time.sleep(args.spacing)
            path = d.path(f"chief-{code}")

            def arrivals(path: str = path) -> list[tuple[str, float, dict[str, object]]]:
                return [a for a in hook.arrivals if a[0] == path]

            arrived = wait_until(arrivals, f"the alert of {code}", worker=worker)[0][1]
            delays.append(arrived - stamps[-1])
            print(f"{code}: {arrived - stamps[-1]:.0f} ms", flush=True)
        print(
            f"alerts: {len(delays)}  p50 {statistics.median(delays):.0f} ms  "
            f"max {max(delays):.0f} ms  min {min(delays):.0f} ms"
        )
        first = next(a for a in hook.arrivals if a[0] == d.path(f"chief-{districts[0]}"))
        print("\n--- delivered (webhook body 'text', the LINE text) ---")
        print(first[2]["text"])
        worker.stop()
    finally:
        if worker is not None:
            worker.kill()
        hook.stop()
        broker.stop()


if __name__ == "__main__":
    main()
