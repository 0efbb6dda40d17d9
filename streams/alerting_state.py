"""The alert engine's live alerts in a changelog-backed Faust table: one record per district.

Key ``b"<district>:<partition>"``: the partition is the district's source partition (its
grievance and project events share one partition number, murmur2 of the key), so the record
lives in the changelog partition that moves with the district's events, and a worker restores
exactly the districts of the partitions it is assigned. Only the alerts are stored (the data
the rules read is re-read from the store at assignment, alerts/warmup.py), so a record is a few
hundred bytes and is written only when the district's alerts changed.

Each write ends with one meta record per touched partition, sent alone after the others are
acknowledged: Tansu reports a partition's end as its last batch's *first* offset + 1 and Faust's
recovery reads only up to that end, so the last batch must hold a single record (the same rule
as the pipeline's checkpoints, streams/pipeline.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

import faust
import orjson
from aiokafka.partitioner import murmur2

__all__ = ["META", "AlertStateTable", "source_partition"]

log = logging.getLogger(__name__)

META: Final = "__engine__"


def source_partition(district_code: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a message keyed by the district code."""
    return (int(murmur2(district_code.encode())) & 0x7FFFFFFF) % partitions


class AlertStateTable:
    """Reads and writes the engine's per-district alert state (see the module docstring)."""

    def __init__(self, app: faust.App, partitions: int, name: str = "alert-state") -> None:
        self.app = app
        self.partitions = partitions
        self.table: Any = app.Table(
            name,
            key_type=bytes,  # raw bytes both ways, like the pipeline's tables
            value_type=bytes,
            partitions=partitions,
            help="Live alerts per district (streams/alerting_state.py).",
        )
        #: district -> the record last written or restored (to write only what changed)
        self.stored: dict[str, bytes] = {}
        #: district -> partition, when it differs from the default partitioner's (mis-keyed)
        self._partition: dict[str, int] = {}

    def partition_of(self, district_code: str) -> int:
        p = self._partition.get(district_code)
        return source_partition(district_code, self.partitions) if p is None else p

    def note_partition(self, district_code: str, partition: int) -> None:
        """A metric row of the district came from this partition (the one that holds it)."""
        if self._partition.get(district_code, -1) != partition:
            if source_partition(district_code, self.partitions) == partition:
                self._partition.pop(district_code, None)
            else:
                self._partition[district_code] = partition

    def load(self, partitions: set[int]) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
        """States of the districts of these partitions, and their merged meta (latest clock,
        earliest coverage; None when none was stored). The table holds standby partitions
        too: filtered by the key."""
        states: dict[str, dict[str, Any]] = {}
        metas: list[Mapping[str, Any]] = []
        for key, value in list(self.table.data.items()):
            name, _, part = bytes(key).rpartition(b":")
            try:
                partition = int(part)
            except ValueError:
                continue
            if partition not in partitions or value is None:
                continue
            try:
                record = orjson.loads(value)
            except orjson.JSONDecodeError:
                log.error("unreadable alert state record skipped", extra={"key": repr(key)})
                continue
            code = name.decode()
            if code == META:
                metas.append(record)
                continue
            states[code] = record
            self.stored[code] = bytes(value)
            self.note_partition(code, partition)
        return states, (merge_metas(metas) if metas else None)

    def forget(self, codes: Iterable[str]) -> None:
        for code in codes:
            self.stored.pop(code, None)
            self._partition.pop(code, None)

    async def write(
        self, states: Mapping[str, bytes], meta: bytes, partitions: Iterable[int] = ()
    ) -> None:
        """Write the changed district states, then the meta record of every partition touched
        (or named), each stage acknowledged before the next (see the module docstring)."""
        send = self.app.producer.send
        changelog = self.table.changelog_topic.get_topic_name()
        touched = set(partitions)
        sent = []
        for code, raw in states.items():
            p = self.partition_of(code)
            key = f"{code}:{p}".encode()
            self.table.data[key] = raw
            sent.append(await send(changelog, key, raw, p, None, None))
            touched.add(p)
        await asyncio.gather(*sent)
        last = []
        for p in sorted(touched):
            key = f"{META}:{p}".encode()
            self.table.data[key] = meta
            last.append(await send(changelog, key, meta, p, None, None))
        await asyncio.gather(*last)
        self.stored.update(states)


def merge_metas(metas: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One engine meta from several partitions': the latest clock, the earliest coverage."""
    now = 0
    coverage: int | None = None
    version = 1
    for m in metas:
        version = int(m.get("v", version))
        now = max(now, int(m.get("now_ms") or 0))
        cov = m.get("coverage_ms")
        if cov is not None and (coverage is None or int(cov) < coverage):
            coverage = int(cov)
    return {"v": version, "now_ms": now, "coverage_ms": coverage}
