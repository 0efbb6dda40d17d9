"""Acknowledgements find their worker: applied where the district is held, else sent on the
`acknowledgements` topic keyed (and partitioned) by district, which the holding worker reads.

The topic is partitioned like the event topics (the district code through Kafka's default
partitioner) and has as many partitions, so its partition p holds the acks of the districts
of event partition p. Each worker reads the acknowledgement partitions of the event partitions
it holds once their alerts are warm (`run`); offsets are committed only for applied acks, and
applying is idempotent, so a crash or a rebalance re-reads and re-applies instead of losing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from alerts.engine import AlertNotFound
from alerts.one_tap import AckOutcome, AckRequest, AckStatus
from streams.alerting_records import SCHEMA
from streams.alerting_state import source_partition
from streams.timeutil import from_ms, to_rfc3339

if TYPE_CHECKING:
    from streams.alerting import AlertService

__all__ = ["AckRouter", "decode_request", "encode_request"]

log = logging.getLogger(__name__)


def encode_request(req: AckRequest) -> bytes:
    return orjson.dumps(
        {
            "alert_id": req.alert_id,
            "district_code": req.district_code,
            "by": req.by,
            "via": req.via,
            "at_ms": req.at_ms,
            "note": req.note,
        }
    )


def decode_request(raw: bytes) -> AckRequest:
    d = orjson.loads(raw)
    return AckRequest(
        str(d["alert_id"]),
        str(d["district_code"]),
        str(d["by"]),
        str(d.get("via", "")),
        int(d.get("at_ms", 0)),
        str(d.get("note", "")),
    )


class AckRouter:
    """Owned by the AlertService; `acknowledge` is the Acknowledger the channels call."""

    def __init__(
        self,
        service: AlertService,
        on_outcome: Callable[[AckRequest, AckOutcome], Awaitable[None]] | None = None,
    ) -> None:
        self.svc = service
        self.topic_name = service.sa.topics.acknowledgements
        self.on_outcome = on_outcome
        self.forwarded = 0
        self.applied_from_topic = 0

    def partition_of(self, district_code: str) -> int:
        return source_partition(district_code, self.svc.states.partitions)

    async def acknowledge(self, req: AckRequest) -> AckOutcome:
        """Apply here when this worker holds the district, else forward to its holder."""
        if self.partition_of(req.district_code) in self.svc.held_partitions():
            return await self.apply(req)
        await self.forward(req)
        return AckOutcome(AckStatus.FORWARDED)

    async def forward(self, req: AckRequest) -> None:
        partition = self.partition_of(req.district_code)
        fut = await self.svc.app.producer.send(
            self.topic_name, req.district_code.encode(), encode_request(req), partition, None, None
        )
        await fut
        self.forwarded += 1
        log.info(
            "acknowledgement forwarded to the worker holding the district",
            extra={"alert_id": req.alert_id, "district": req.district_code, "via": req.via},
        )

    async def apply(self, req: AckRequest) -> AckOutcome:
        svc = self.svc
        if not svc.accepting_acks():
            return AckOutcome(AckStatus.UNAVAILABLE)
        async with svc.lock:
            now = max(svc.engine.now_ms, svc.pipeline.stream_clock_ms())
            try:
                result = svc.engine.acknowledge(req.alert_id, req.by, now)
            except AlertNotFound:
                outcome = AckOutcome(AckStatus.NOT_FOUND)
            else:
                alert = svc.engine.find(req.alert_id)
                assert alert is not None and alert.acknowledged_at_ms is not None
                status = AckStatus.ACKNOWLEDGED if result.transitions else AckStatus.ALREADY
                outcome = AckOutcome(
                    status, alert.acknowledged_by, alert.acknowledged_at_ms, alert.title_th
                )
                if result:
                    await svc.publish_result(result)
        await self._record(req, outcome)
        log.info(
            "acknowledgement applied",
            extra={"alert_id": req.alert_id, "outcome": str(outcome.status), "via": req.via},
        )
        if self.on_outcome is not None:
            await self.on_outcome(req, outcome)
        return outcome

    async def _record(self, req: AckRequest, outcome: AckOutcome) -> None:
        """One `ack` record on the alerts topic per acknowledgement tried, whatever came of it
        (the `acknowledged` transition itself is in alerts_history and the topic already)."""
        body = {
            "schema": SCHEMA,
            "event": "ack",
            "at": to_rfc3339(from_ms(req.at_ms)).replace("+00:00", "Z"),
            "at_ms": req.at_ms,
            "alert_id": req.alert_id,
            "district_code": req.district_code,
            "by": req.by,
            "via": req.via,
            "outcome": str(outcome.status),
            "acknowledged_by": outcome.acknowledged_by,
        }
        fut = await self.svc.app.producer.send(
            self.svc.topic, req.district_code.encode(), orjson.dumps(body), None, None, None
        )
        await fut

    # -- the topic -------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the acknowledgements of the partitions this worker holds, apply, commit.

        Its own consumer, assigned by hand to the held partitions and committing under its own
        group id: subscribing the Faust app to one more topic changed the timing of its
        rebalances enough that the alert warm-up missed rows (measured: 2 of 3 scenario runs)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap(),
            group_id=f"{self.svc.app.conf.id}-acknowledgements",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        assigned: frozenset[int] = frozenset()
        try:
            while True:
                held = frozenset(self.svc.held_partitions())
                if held != assigned:
                    consumer.assign([TopicPartition(self.topic_name, p) for p in sorted(held)])
                    assigned = held
                if not held:
                    await asyncio.sleep(0.5)
                    continue
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    await self._apply_records(consumer, tp, records)
        finally:
            await consumer.stop()

    async def _apply_records(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: Sequence[Any]
    ) -> None:
        last = None
        for rec in records:
            if tp.partition not in self.svc.held_partitions():
                break  # revoked meanwhile: the next holder reads on from the committed offset
            try:
                req = decode_request(rec.value)
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable acknowledgement skipped", extra={"offset": rec.offset})
                last = rec.offset
                continue
            if (await self.apply(req)).status is AckStatus.UNAVAILABLE:
                break  # stopping: left uncommitted for the next holder
            self.applied_from_topic += 1
            last = rec.offset
        if last is not None:
            try:
                await consumer.commit({tp: last + 1})
            except Exception:  # applied already; a re-read after a failed commit is harmless
                log.warning("committing acknowledgement offsets failed", exc_info=True)
        if last is None or last != records[-1].offset:
            # not all applied: read them again from the committed position
            with contextlib.suppress(Exception):
                committed = await consumer.committed(tp)
                consumer.seek(tp, committed if committed is not None else 0)

    def _bootstrap(self) -> str:
        return ",".join(f"{u.host}:{u.port}" for u in self.svc.app.conf.broker)
