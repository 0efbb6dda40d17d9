"""Topic names and the configs warroom creates them with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["COMPRESSION", "TOPIC_CONFIGS", "Topics"]

_DAY_MS: Final = 86_400_000

#: Every warroom producer compresses its batches. The embedded broker (Tansu, memory storage)
#: keeps every batch as sent and frees nothing but deleted topics: retention.ms, retention.bytes,
#: compaction and DeleteRecords all do nothing there (bench/memory.py --probe measures it), so
#: compression is what bounds its growth per event. gzip, because aiokafka's lz4/zstd/snappy
#: codecs need cramjam, which is not installed; on simulated events it stores 5.7 times less.
COMPRESSION: Final = "gzip"

#: Tansu reports only configs set at creation, so every topic gets explicit ones.
TOPIC_CONFIGS: Final[dict[str, dict[str, str]]] = {
    "grievance-events": {"retention.ms": str(14 * _DAY_MS), "cleanup.policy": "delete"},
    "project-events": {"retention.ms": str(14 * _DAY_MS), "cleanup.policy": "delete"},
    "dead-letter": {"retention.ms": str(30 * _DAY_MS), "cleanup.policy": "delete"},
    "alerts": {"retention.ms": str(30 * _DAY_MS), "cleanup.policy": "delete"},
    # acknowledgements on their way to the worker holding the district (same partitioning
    # as the event topics, so Faust assigns partition p of both to one worker)
    "acknowledgements": {"retention.ms": str(7 * _DAY_MS), "cleanup.policy": "delete"},
    # history loaded beside live (`warroom replay --backfill`): own topics, own clocks
    "grievance-backfill": {"retention.ms": str(7 * _DAY_MS), "cleanup.policy": "delete"},
    "project-backfill": {"retention.ms": str(7 * _DAY_MS), "cleanup.policy": "delete"},
}


@dataclass(frozen=True)
class Topics:
    """The topic names for one deployment; a prefix isolates test runs on a shared broker."""

    prefix: str = ""

    @property
    def grievance(self) -> str:
        return f"{self.prefix}grievance-events"

    @property
    def project(self) -> str:
        return f"{self.prefix}project-events"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}dead-letter"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def acknowledgements(self) -> str:
        return f"{self.prefix}acknowledgements"

    def for_stream(self, stream: str) -> str:
        return self.grievance if stream == "grievance" else self.project

    def backfill_for(self, stream: str) -> str:
        """The backfill topic of a stream: old events processed on clocks of their own."""
        return f"{self.prefix}{stream}-backfill"

    def all(self) -> dict[str, dict[str, str]]:
        """topic name -> creation configs."""
        return {f"{self.prefix}{base}": dict(cfg) for base, cfg in TOPIC_CONFIGS.items()}
