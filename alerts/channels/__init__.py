"""Delivery channels: webhook, Alertmanager, LINE, e-mail and the log sink."""

from alerts.channels.base import Channel, DeliveryError, RetryPolicy

__all__ = ["Channel", "DeliveryError", "RetryPolicy"]
