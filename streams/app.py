"""The Faust app: its settings, the source topics and the changelog-backed state tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from streams import recovery
from streams.topics import COMPRESSION, Topics
from warroom.settings import Settings

__all__ = ["StreamApp", "create_app"]


@dataclass
class StreamApp:
    """The app and the handles the worker needs."""

    app: faust.App
    topics: Topics
    source_topics: dict[str, Any]  # stream -> faust Topic
    state_tables: dict[str, Any]  # stream -> faust Table (raw bytes, changelog-backed)
    #: history beside live (streams/backfill.py): stream -> backfill topic / its own table
    backfill_topics: dict[str, Any]
    backfill_tables: dict[str, Any]


def create_app(settings: Settings, bootstrap: str, topics: Topics) -> StreamApp:
    timeout = settings.rebalance_timeout
    app = faust.App(
        f"{settings.topic_prefix}{settings.group_id}",
        # streams/transport.py: Faust's consumer with the batch fast path
        broker=f"warroom://{bootstrap}",
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        web_enabled=False,  # the worker serves its own endpoints (streams/web.py)
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=timeout,
        broker_rebalance_timeout=timeout,
        broker_heartbeat_interval=max(0.3, timeout / 6),
        broker_max_poll_records=20_000,
        broker_max_poll_interval=300.0,
        consumer_max_fetch_size=8 * 1024 * 1024,
        producer_linger=0.05,
        producer_max_batch_size=1 << 20,
        producer_compression_type=COMPRESSION,  # changelogs too: the embedded broker keeps them all
        producer_acks=-1,
        table_standby_replicas=1,
        stream_wait_empty=False,
        recovery_consistency_check=False,  # streams/recovery.py re-reads such a changelog
    )
    recovery.install(app)
    source_topics = {
        stream: app.topic(
            topics.for_stream(stream),
            key_serializer="raw",
            value_serializer="raw",
            acks=False,  # committed by the worker once rows are durable, not per message
        )
        for stream in ("grievance", "project")
    }
    backfill_topics = {
        stream: app.topic(
            topics.backfill_for(stream), key_serializer="raw", value_serializer="raw", acks=False
        )
        for stream in ("grievance", "project")
    }
    for topic in (*source_topics.values(), *backfill_topics.values()):
        app.topics.add(topic)  # subscribe: the batch consumer reads them, no agent needed
    state_tables = {
        stream: app.Table(
            f"{stream}-state",
            key_type=bytes,  # raw bytes both ways: the processor serialises with orjson
            value_type=bytes,
            partitions=settings.partitions,
            help=f"Per-district {stream} state and partition checkpoints (see processor.py).",
        )
        for stream in ("grievance", "project")
    }
    backfill_tables = {
        stream: app.Table(
            f"{stream}-backfill-state",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            help=f"{stream} backfill: checkpoints and case books of its own clock (backfill.py).",
        )
        for stream in ("grievance", "project")
    }
    return StreamApp(app, topics, source_topics, state_tables, backfill_topics, backfill_tables)
