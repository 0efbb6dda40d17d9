"""Table recovery that survives a changelog ending below what was already read from it.

Faust remembers, per changelog partition it keeps active across rebalances, the last offset it
read; at the next recovery it raises ConsistencyError when that offset is above the partition's
end, and the worker stops. It happened in a repeated-handover run on the embedded broker (an
alert-state changelog read to offset 264 reported its end at 110, 14 s later, in one process):
either the broker lost the log, or it under-reports the end (Tansu answers with its last batch's
first offset + 1, see streams/alerting_state.py). In both cases this recovery says so, drops
what the table holds of that partition and reads the partition again from its start, as a
worker that never held it would; the pipeline's checkpoint rules (pipeline.py) then apply to
what was read. Nothing is skipped because of the remembered offset.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.tables.recovery import Recovery
from faust.types import TP

__all__ = ["ChangelogRecovery", "install"]

log = logging.getLogger(__name__)


class ChangelogRecovery(Recovery):
    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if destination is not self.active_offsets:
            # standbys: their keys are dropped when not active, and an active partition is
            # read from its start anyway (the memory store persists no offset)
            return
        ends = self.active_highwaters
        behind = [
            tp
            for tp in tps
            if destination.get(tp) is not None
            and ends.get(tp) is not None
            and destination[tp] > ends[tp]
        ]
        if not behind:
            return
        earliest = await consumer.earliest_offsets(*behind)
        for tp in behind:
            log.warning(
                "changelog end reported below what this worker already read from it (a log "
                "the broker lost, or an end it under-reports): reading the partition again "
                "from its start",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "read_to": destination[tp],
                    "end": ends[tp],
                },
            )
            self._forget(tp)
            start = earliest.get(tp)
            destination[tp] = (start if start is not None else 0) - 1

    def _forget(self, tp: TP) -> None:
        """Drop the table's keys read from this changelog partition (memory store)."""
        table: Any = self.tp_to_table.get(tp)
        if table is None:
            return
        store: Any = table.data
        owned = getattr(store, "_key_partition", None)
        if owned is None:
            return
        for key in [k for k, p in owned.items() if p == tp.partition]:
            store.data.pop(key, None)
            owned.pop(key, None)


# Faust's own recovery lines keep their logger (and its level, warroom/logs.py): mode names a
# subclass's logger after its module when the class is made, so it is set back afterwards
ChangelogRecovery.logger = Recovery.logger


def install(app: Any) -> None:
    """Use ChangelogRecovery for the app's tables (create the app with
    recovery_consistency_check=False: this check replaces Faust's)."""
    app.tables._recovery = ChangelogRecovery(app, app.tables, beacon=app.tables.beacon)
