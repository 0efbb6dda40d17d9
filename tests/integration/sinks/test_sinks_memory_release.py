"""The worker's store returns the memory its engine freed (ChdbBackend.release_memory, called by
the writer every RELEASE_MEMORY_EVERY_S, idle or not).

Measured in a child process of its own, so that the test process's other chdb work and
Python's own memory do not blur the numbers: RssAnon after a query that allocates a lot, then
after the release."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from prometheus_client import CollectorRegistry
    from sinks.backends.chdb import ChdbBackend
    from sinks import writer as writer_module
    from warroom.telemetry import Telemetry

    def anon_mb():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        raise SystemExit("no RssAnon")

    backend = ChdbBackend(Path(sys.argv[1]), "memtest")
    backend.execute(
        "CREATE TABLE t (k UInt64, s String) ENGINE = MergeTree ORDER BY k AS "
        "SELECT number, toString(number) FROM numbers(5000000)"
    )
    backend.release_memory()
    base = anon_mb()
    backend.execute("SELECT s, count() FROM t GROUP BY s FORMAT Null")
    before = anon_mb()
    released = backend.release_memory()
    after = anon_mb()

    # the writer, idle (nothing to write), releases on its own within the interval
    writer_module.RELEASE_MEMORY_EVERY_S = 0.5
    async def idle_writer():
        w = writer_module.Writer(backend, telemetry=Telemetry(CollectorRegistry()))
        await w.start()
        backend.execute("SELECT s, count() FROM t GROUP BY s FORMAT Null")
        busy = anon_mb()
        await asyncio.sleep(1.5)
        idle = anon_mb()
        await w.close()
        return busy, idle
    busy, idle = asyncio.run(idle_writer())
    backend.close()
    print(json.dumps({"base": base, "before": before, "after": after, "released": released,
                      "busy": busy, "idle": idle}))
    """
)


def test_freed_engine_memory_goes_back_to_the_system(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["released"] is True
    # the GROUP BY over 5 M distinct strings needs a few hundred MB; it is freed when the
    # query ends, but the allocator keeps the pages until they are purged
    assert got["after"] <= got["base"] + 30, got
    assert got["before"] - got["after"] >= 100, got  # the query did allocate, and it came back
    assert got["idle"] <= got["base"] + 30, got
    assert got["busy"] - got["idle"] >= 100, got
