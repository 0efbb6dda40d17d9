"""What `warroom alerts outbox` prints: the outbox's items, newest last, recipients named
`role:name` and errors without the address (the outbox itself keeps the addresses)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alerts.channels.base import redact
from alerts.outbox import DELIVERED, FAILED, PENDING, OutboxItem
from streams.timeutil import format_bangkok

__all__ = ["STATES", "format_listing"]

#: --state choices: what needs attention (pending and failed) by default
STATES = {
    "open": (PENDING, FAILED),
    PENDING: (PENDING,),
    FAILED: (FAILED,),
    DELIVERED: (DELIVERED,),
    "all": (PENDING, FAILED, DELIVERED),
}
_STATE_TH = {PENDING: "รอส่ง", FAILED: "ส่งไม่สำเร็จ", DELIVERED: "ส่งแล้ว"}


def _summary(counts: Mapping[tuple[str, str], int]) -> str:
    total = {s: 0 for s in (PENDING, FAILED, DELIVERED)}
    for (_, state), n in counts.items():
        total[state] = total.get(state, 0) + n
    return ", ".join(f"{_STATE_TH[s]} {s} {total[s]}" for s in (PENDING, FAILED, DELIVERED))


def format_listing(
    items: Sequence[OutboxItem], counts: Mapping[tuple[str, str], int], limit: int
) -> list[str]:
    """One header line with the totals, then one line per item (the newest `limit`; times in
    Asia/Bangkok, Buddhist era)."""
    lines = [f"outbox: {_summary(counts)}"]
    shown = list(items)[-limit:] if limit > 0 else list(items)
    if len(shown) < len(items):
        lines.append(f"(the newest {len(shown)} of {len(items)}; --limit 0 shows all)")
    for i in shown:
        r = i.recipient
        error = redact(i.last_error, r.address).replace("\n", " ")
        line = (
            f"{format_bangkok(i.queued_ms, '%d/%m/%Y %H:%M:%S')}  {_STATE_TH[i.state]} "
            f"({i.state})  {r.channel}  {r.label}  {i.notification.notification_id}  "
            f"{i.notification.kind}  attempts {i.attempts}"
        )
        if i.state == PENDING and i.attempts:
            line += f"  next try {format_bangkok(i.next_attempt_ms, '%H:%M:%S')}"
        if error:
            line += f"  {error[:300]}"
        lines.append(line)
    return lines
