"""Producers while the broker goes away (issue 15 item 7): a bounded retry, then one plain
line with what was and was not acknowledged and an exit code that says so, never a traceback;
an outage shorter than the retry budget loses nothing the broker could still take."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.broker import EmbeddedBroker, ensure_topics, free_port
from streams.topics import Topics

pytestmark = pytest.mark.integration

WARROOM = [sys.executable, "-m", "warroom.cli"]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[list[EmbeddedBroker]]:
    brokers = [EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log")]
    brokers[0].start()
    yield brokers
    brokers[-1].stop()


def _simulate(bootstrap: str, prefix: str, retry_s: float) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env |= {"WARROOM_LOG_FORMAT": "json", "WARROOM_PRODUCER_RETRY_SECONDS": str(retry_s)}
    return subprocess.Popen(
        [*WARROOM, "simulate", "--kafka", bootstrap, "--topic-prefix", prefix,
         "--rate", "500", "--duration", "25", "--seed", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _wait_sending(proc: subprocess.Popen[str], lines: list[str]) -> None:
    """Until the simulator reports acknowledged events (its stderr is kept in ``lines``)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        m = re.match(r"sending: ([\d,]+) acknowledged", line)
        if m and int(m.group(1).replace(",", "")) > 0:
            return
    raise AssertionError("".join(lines[-20:]))


def _finish(proc: subprocess.Popen[str], lines: list[str], timeout: float) -> str:
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        _out, err = proc.communicate()
    finally:
        watchdog.cancel()
    return "".join(lines) + err


def test_simulate_stops_plainly_when_the_broker_is_gone(
    own_broker: list[EmbeddedBroker],
) -> None:
    broker = own_broker[0]
    topics = Topics(prefix="outage-")
    asyncio.run(ensure_topics(broker.bootstrap, topics.all(), partitions=4))
    proc = _simulate(broker.bootstrap, topics.prefix, retry_s=4)
    lines: list[str] = []
    try:
        _wait_sending(proc, lines)
        broker.stop()  # and it does not come back
        stopped = time.monotonic()
        err = _finish(proc, lines, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == 3, err[-2000:]
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(
        r"warroom simulate: stopped: Kafka at \S+ acknowledged nothing for 4 s "
        r"\(last error: \w+\); ([\d,]+) events acknowledged, ([\d,]+) not acknowledged "
        r"\(send them again: duplicates are counted once by event_id\)",
        last,
    )
    assert m, last
    acked, lost = (int(g.replace(",", "")) for g in m.groups())
    assert acked > 0 and lost > 0
    # bounded: the retry budget plus the client's own timeouts, not an open-ended wait
    assert time.monotonic() - stopped < 90


def test_simulate_rides_out_a_short_outage(own_broker: list[EmbeddedBroker]) -> None:
    broker = own_broker[0]
    topics = Topics(prefix="blip-")
    asyncio.run(ensure_topics(broker.bootstrap, topics.all(), partitions=4))
    proc = _simulate(broker.bootstrap, topics.prefix, retry_s=60)
    lines: list[str] = []
    try:
        _wait_sending(proc, lines)
        broker.stop()
        time.sleep(3)
        # the same address again (memory storage: an empty broker, topics made on first use)
        back = EmbeddedBroker(port=broker.port, log_path=broker.log_path)
        own_broker.append(back)
        back.start()
        err = _finish(proc, lines, timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == 0, err[-2000:]
    assert "not acknowledged" not in err, err[-2000:]
    # the simulator went on sending to the broker that came back
    assert asyncio.run(records_on(back.bootstrap, topics)) > 0


async def records_on(bootstrap: str, topics: Topics) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in (topics.grievance, topics.project) for p in range(4)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
