"""The open grievance cases as a snapshot, rebuilt by the store's owner (migration 006 says why).

    open_cases.rebuild(backend, margin_s=600)    # on the owner's writer thread, every few minutes

A generation is every case open in ``grievance_latest FINAL`` at the time of the rebuild,
stamped with a watermark ``margin_s`` before the store's clock: an event ingested up to the
watermark is in it, provided no insert takes longer than the margin (the writer's inserts take
seconds). Readers take the newest generation and read the cases with an event ingested after its
watermark from ``grievance_latest`` by their keys (dashboards/queries.py, ``open_grievances``),
so the list is exact with any generation or none; a fresh one only makes it faster.
"""

from __future__ import annotations

import logging
from typing import Final

from sinks.backends import Backend
from streams.contract import OPEN_TYPES

__all__ = ["KEEP_GENERATIONS", "rebuild"]

log = logging.getLogger(__name__)

#: generations kept: a reader that picked one while the next was built still finds its rows
KEEP_GENERATIONS: Final = 3
_OPEN: Final = ", ".join(f"'{t}'" for t in sorted(OPEN_TYPES))
_NO_DUE: Final = "toDateTime64(0, 3, 'UTC')"


def rebuild(backend: Backend, *, margin_s: float) -> int:
    """Write a new generation of the open cases, mark it complete, drop the old ones.

    Returns the number of open cases in it; 0 without writing when the store's clock has not
    passed the newest generation (a clock set back).
    """
    db = f"`{backend.database}`"
    ((now_ms, newest_ms),) = backend.query_rows(
        "SELECT toUnixTimestamp64Milli(now64(3)), "
        f"toUnixTimestamp64Milli(max(generation)) FROM {db}.grievance_open_generations"
    )
    generation = int(now_ms) - int(margin_s * 1000)
    if generation <= int(newest_ms):
        log.info(
            "open cases not rebuilt: the newest generation is not older than the store's "
            "clock less the margin (a clock set back, or a larger margin since)",
            extra={"generation_ms": generation, "newest_ms": int(newest_ms)},
        )
        return 0
    stamp = f"fromUnixTimestamp64Milli({generation}, 'UTC')"
    backend.execute(
        f"INSERT INTO {db}.grievance_open "
        "(generation, region, province_code, district_code, grievance_id, last_at, last_type, "
        "category_code, priority_code, due, first_seen, pseudonym) "
        f"SELECT {stamp}, region, province_code, district_code, grievance_id, "
        "tupleElement(last, 1), tupleElement(last, 3), tupleElement(last, 4), "
        f"tupleElement(last, 5), if(tupleElement(due, 1) = {_NO_DUE}, NULL, "
        "tupleElement(due, 3)), first_seen, pseudonym "
        f"FROM {db}.grievance_latest FINAL WHERE tupleElement(last, 3) IN ({_OPEN})"
    )
    ((cases,),) = backend.query_rows(
        f"SELECT count() FROM {db}.grievance_open WHERE generation = {stamp}"
    )
    backend.execute(
        f"INSERT INTO {db}.grievance_open_generations (generation, cases) "
        f"VALUES ({stamp}, {int(cases)})"
    )
    _drop_old(backend, db)
    return int(cases)


def _drop_old(backend: Backend, db: str) -> None:
    """Drop the partitions of grievance_open older than the newest KEEP_GENERATIONS complete
    generations (with them, one a failed rebuild left unmarked). A newer unmarked partition is
    a rebuild under way elsewhere (several owners of one ClickHouse server) and stays."""
    keep = [
        int(ms)
        for (ms,) in backend.query_rows(
            f"SELECT toUnixTimestamp64Milli(generation) FROM {db}.grievance_open_generations "
            f"ORDER BY generation DESC LIMIT {KEEP_GENERATIONS}"
        )
    ]
    if not keep:
        return
    partitions = backend.query_rows(
        "SELECT DISTINCT partition FROM system.parts "
        f"WHERE database = '{backend.database}' AND table = 'grievance_open' AND active"
    )
    for (partition,) in partitions:
        if int(partition) < min(keep):
            backend.execute(f"ALTER TABLE {db}.grievance_open DROP PARTITION {int(partition)}")
