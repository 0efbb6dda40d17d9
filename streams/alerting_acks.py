"""Acknowledgements find their worker: applied where the district is held, else sent on the
`acknowledgements` topic keyed (and partitioned) by district, which the holding worker reads.

The topic is partitioned like the event topics (the district code through Kafka's default
partitioner) and has as many partitions, so Faust's assignor gives its partition p to the
worker that holds partition p of the events: the worker that evaluates the district. An ack
read while its partition is still warming waits in memory and is applied once the district's
alerts are restored; offsets are committed only for applied acks, and applying is idempotent,
so a crash or a rebalance re-reads and re-applies instead of losing one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from faust.types import TP

from alerts.engine import AlertNotFound
from alerts.one_tap import AckOutcome, AckRequest, AckStatus
from streams.alerting_records import SCHEMA
from streams.alerting_state import source_partition
from streams.timeutil import from_ms, to_rfc3339
from streams.transport import register_batch_topic

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
        topic = service.app.topic(
            self.topic_name, key_serializer="raw", value_serializer="raw", acks=False
        )
        service.app.topics.add(topic)  # subscribe: the batch handler reads it
        register_batch_topic(service.app, self.topic_name, self._on_batch)
        self._pending: list[tuple[TP, int, AckRequest]] = []
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

    async def _on_batch(self, tp: TP, records: Sequence[Any]) -> None:
        held, warming = self.svc.held_partitions(), self.svc.warming_partitions()
        last = None
        for rec in records:
            try:
                req = decode_request(rec.value)
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable acknowledgement skipped", extra={"offset": rec.offset})
                last = rec.offset
                continue
            if tp.partition in held:
                outcome = await self.apply(req)
                if outcome.status is AckStatus.UNAVAILABLE:
                    break  # stopping: not committed, so the next holder applies it
                self.applied_from_topic += 1
                last = rec.offset
            elif tp.partition in warming:
                self._pending.append((tp, rec.offset, req))
            # else: revoked meanwhile; the new holder reads it from the committed offset
        if last is not None and not any(p[0] == tp for p in self._pending):
            await self._commit({tp: last + 1})

    async def apply_pending(self) -> None:
        """After a warm-up: the acks that waited for their districts."""
        held = self.svc.held_partitions()
        ready = [p for p in self._pending if p[0].partition in held]
        if not ready:
            return
        self._pending = [p for p in self._pending if p[0].partition not in held]
        offsets: dict[TP, int] = {}
        for tp, offset, req in ready:
            if (await self.apply(req)).status is AckStatus.UNAVAILABLE:
                break
            self.applied_from_topic += 1
            offsets[tp] = max(offsets.get(tp, 0), offset + 1)
        await self._commit(offsets)

    def forget(self, partitions: set[int]) -> None:
        """Revoked: the next holder re-reads these from the committed offsets."""
        self._pending = [p for p in self._pending if p[0].partition not in partitions]

    async def _commit(self, offsets: dict[TP, int]) -> None:
        consumer: Any = self.svc.app.consumer  # streams.transport.Consumer
        try:
            await consumer.commit_offsets(offsets)
        except Exception:  # the ack is applied; a re-read after a failed commit is harmless
            log.warning("committing acknowledgement offsets failed", exc_info=True)
