"""A Faust transport whose consumer hands whole fetched batches to batch agents.

Faust drains every message through ``Service.wait_first`` (two tasks and an asyncio.wait per
message) and then through the conductor, a channel queue and a Stream: measured here, that
per-message path holds a textbook agent near 1-4 % of a plain aiokafka consumer. This
consumer keeps Faust's fetcher thread, group membership, partition assignment, table
recovery and flow control, but for topics registered as batch topics it passes the fetched
records of each partition straight to an async handler; other topics take Faust's usual
path. Flow control stays correct: nothing is handed over while the flow is stopped (during
a rebalance) or for a partition paused meanwhile, and such records are sought back to (the
consumer's position is already past them); a batch fetched in an older consumer generation
is dropped (the partitions are re-seeked to the committed offsets after the rebalance); a
handler that must wait (backpressure) pauses its partitions instead of blocking the fetcher.

The batch topics are not acked through Faust: their handler commits offsets itself, once
the rows the records produced are durable (``commit_offsets``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from aiokafka.consumer import fetcher as aiokafka_fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

__all__ = ["BatchHandler", "Consumer", "ConsumerThread", "Transport", "register_batch_topic"]

log = logging.getLogger(__name__)

BatchHandler = Callable[[TP, Sequence[Any]], Awaitable[None]]

#: how long the Kafka consumer may take to close (leave its group) when the worker stops
CLOSE_TIMEOUT_S: Final = 5.0


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a bounded close. aiokafka's close waits for its group
    coordination task to finish its round; a stop within a second or so of the start (seen
    under load: SIGTERM while the first join was under way) found that task waiting for a
    metadata update that never came, and the worker hung until WARROOM_STOP_TIMEOUT ended it
    with exit 1. Past the bound the close is cancelled: the group drops this member at its
    session timeout instead of at once. Nothing of the stream depends on it: the final flush,
    checkpoint and commit come before the consumer stops."""

    async def on_thread_stop(self) -> None:
        try:
            await asyncio.wait_for(super().on_thread_stop(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "the Kafka consumer did not close within %.0fs (stopped while joining its "
                "group?); stopping without leaving the group: the broker drops this member at "
                "its session timeout",
                CLOSE_TIMEOUT_S,
            )


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with a batch fast path (see the module docstring)."""

    batch_handlers: dict[str, BatchHandler]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_handlers = dict(getattr(self.app, "warroom_batch_handlers", {}))

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by Faust
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        to_message = self._to_message
        handlers = self.batch_handlers
        read_offset = self._read_offset
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                records, active = await self._wait_next_records(1.0)
                if not records or self.should_stop:
                    await asyncio.sleep(0)
                    continue
                generation = self.app.consumer_generation_id
                for tp, recs in records.items():
                    if not recs:
                        continue
                    if self.app.consumer_generation_id != generation:
                        break  # rebalanced: Faust seeks every partition after the rebalance
                    if not self.flow_active or (active is not None and tp not in active):
                        # paused (recovery, backpressure) or the flow stopped after the fetch:
                        # the consumer's position is already past these records, so they are
                        # fetched again only if it goes back to them (a skip without the seek
                        # lost a restarted worker's whole backlog, silently)
                        await self.seek_back(tp, recs[0].offset)
                        continue
                    handler = handlers.get(tp.topic)
                    if handler is not None:
                        # aiokafka keys records by its own TopicPartition; Faust's bookkeeping
                        # (pause/resume) accepts only its TP
                        await handler(TP(tp.topic, tp.partition), recs)
                    else:
                        for rec in recs:
                            await self.wait_first(
                                callback(to_message(tp, rec)), self.suspend_flow.wait()
                            )
                    read_offset[tp] = recs[-1].offset
                await asyncio.sleep(0)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            # as Faust's own drain: a cancel while the app stops is the normal way out (left
            # to Faust's fetcher, it would try to restart itself mid-shutdown and crash)
            if self.transport.app.should_stop:
                return
            raise

    async def seek_back(self, tp: Any, offset: int) -> None:
        """Fetch a partition again from `offset`, if it is still assigned here."""
        part = TP(tp.topic, tp.partition)
        if part in self.assignment():
            await self.seek(part, offset)

    async def commit_offsets(self, offsets: Mapping[TP, int]) -> bool:
        """Commit next-offsets for batch topics (only partitions still assigned)."""
        return bool(await self._commit_offsets(offsets))


class Transport(faust_aiokafka.Transport):
    """Registered as the ``warroom://`` broker scheme (entry point faust.transports)."""

    Consumer = Consumer


def register_batch_topic(app: Any, topic: str, handler: BatchHandler) -> None:
    """Route a topic's records to ``handler`` in batches. Call before the worker starts."""
    handlers: dict[str, BatchHandler] = getattr(app, "warroom_batch_handlers", {})
    handlers[topic] = handler
    app.warroom_batch_handlers = handlers
    _RAW_TOPICS.add(topic)


# aiokafka wraps every fetched record in a ConsumerRecord (eleven fields, built in Python:
# about a microsecond each). Batch topics only read offset, timestamp, key and value, which
# the C record aiokafka parsed already has, so their records are handed over unwrapped.
_RAW_TOPICS: set[str] = set()
_wrap_record = aiokafka_fetcher.PartitionRecords._consumer_record


def _consumer_record(self: Any, tp: Any, record: Any) -> Any:
    if tp.topic in _RAW_TOPICS:
        return record
    return _wrap_record(self, tp, record)


aiokafka_fetcher.PartitionRecords._consumer_record = _consumer_record
