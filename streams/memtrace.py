"""WARROOM_TRACEMALLOC: the worker's top allocation sites and state sizes, logged periodically."""

from __future__ import annotations

import gc
import logging
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["census", "install"]

_TOP = 30


def install(pipeline: Any, alerting: Any, every_s: float) -> None:
    """Start tracing now; every ``every_s`` log the top sites (and growth since the last log).

    A thread, not a signal: mode's worker owns SIGUSR1 (stack dump) and SIGUSR2 (debugger).
    The census reads the state from this thread under the GIL; it copies each container
    before iterating, so a concurrent change costs at most a slightly stale count."""
    tracemalloc.start(1)
    previous: list[tracemalloc.Snapshot] = []

    def dump() -> None:
        gc.collect()
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        traced, peak = tracemalloc.get_traced_memory()
        top = snap.statistics("lineno")[:_TOP]
        growth = snap.compare_to(previous[0], "lineno")[:_TOP] if previous else []
        previous[:] = [snap]
        log.info(
            "memory trace",
            extra={
                "traced_mb": round(traced / 1e6, 1),
                "peak_mb": round(peak / 1e6, 1),
                "top": [_site(s.traceback, s.size, s.count) for s in top],
                "growth": [_site(s.traceback, s.size_diff, s.count_diff) for s in growth],
                "census": census(pipeline, alerting),
            },
        )

    def loop() -> None:
        while True:
            time.sleep(every_s)
            try:
                dump()
            except Exception:  # a container changed size under the census: next time
                log.exception("memory trace failed")

    threading.Thread(target=loop, name="memtrace", daemon=True).start()
    log.warning(
        "tracemalloc on (WARROOM_TRACEMALLOC): top allocation sites logged every %.0f s", every_s
    )


def _site(tb: tracemalloc.Traceback, size: int, count: int) -> str:
    frame = tb[0]
    parts = Path(frame.filename).parts
    return f"{'/'.join(parts[-2:])}:{frame.lineno} {size / 1e6:+.1f} MB {count:+d}"


def census(pipeline: Any, alerting: Any) -> dict[str, int]:
    """How many entries each in-memory state structure holds (summed over partitions)."""
    out: dict[str, int] = {}

    def add(key: str, n: int) -> None:
        out[key] = out.get(key, 0) + n

    for kind, procs in (("live", pipeline.processors), ("backfill", pipeline.backfill)):
        for proc in list(procs.values()):
            p = f"{kind}.{proc.stream}"
            add(f"{p}.books", len(proc.books))
            for book in list(proc.books.values()):
                add(f"{p}.cases", len(getattr(book, "cases", ())))
                add(f"{p}.projects", len(getattr(book, "projects", ())))
            add(f"{p}.dedup", len(proc._dedup))
            add(f"{p}.buckets", len(proc.buckets))
            add(f"{p}.quality", len(proc.quality))
    for table in [*pipeline.sa.state_tables.values(), *pipeline.sa.backfill_tables.values()]:
        data = table.data
        add("changelog_tables.keys", len(data))
        add("changelog_tables.bytes", sum(len(v) for v in list(data.values())))
    add("writer.pending_rows", int(getattr(pipeline.writer, "_pending_rows", 0)))
    engine = getattr(alerting, "engine", None)
    districts = getattr(engine, "_districts", {})
    for d in list(districts.values()):
        add("alerts.districts", 1)
        add("alerts.bucket_minutes", sum(len(m) for m in d.data.keys.values()))
        for family in d.data.series.values():
            for series in family.values():
                add("alerts.series_minutes", len(series.minutes))
    return out
