"""Prometheus counters of the producers (default registry; a later issue exposes them)."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["EVENTS_SENT", "SEND_ERRORS"]

EVENTS_SENT = Counter(
    "warroom_producer_events_sent_total",
    "Events acknowledged by Kafka (acks=all), by producer and stream.",
    ["producer", "stream"],
)
SEND_ERRORS = Counter(
    "warroom_producer_send_errors_total",
    "Events Kafka did not acknowledge, by producer.",
    ["producer"],
)
