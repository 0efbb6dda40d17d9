"""Alertmanager API v2: `POST <base>/api/v2/alerts` with one postable alert per warroom alert.

Alertmanager identifies an alert by its label set, so labels hold only stable identity
(alertname = rule id, severity, district/province/region codes, dimension, fingerprint) and
re-posting the same alert updates it instead of adding one. Everything that changes (Thai and
English texts, the numbers, the dashboard link) goes in annotations.

A firing alert is posted with endsAt = now + `firing_ttl`: warroom re-posts only at the rule's
repeat interval, and without an endsAt Alertmanager would resolve it after its own
resolve_timeout (5 min). A resolved alert is posted with endsAt = its resolution time.
"""

from __future__ import annotations

import time
from typing import Any

from alerts.channels.base import Channel, RetryPolicy
from alerts.channels.http import HttpClient
from alerts.messages import MessageRenderer, place_of
from alerts.model import AlertState, Notification, NotificationKind, Recipient
from streams.timeutil import from_ms, to_rfc3339

__all__ = ["AlertmanagerChannel", "postable_alerts"]


def _ts(ms: int) -> str:
    return to_rfc3339(from_ms(ms)).replace("+00:00", "Z")


def postable_alerts(
    notification: Notification,
    renderer: MessageRenderer,
    now_ms: int,
    firing_ttl_ms: int,
) -> list[dict[str, Any]]:
    """The request body: a list of PostableAlert objects (labels, annotations, startsAt,
    endsAt, generatorURL) as in Alertmanager's api/v2/openapi.yaml."""
    place = place_of(notification.district_code)
    link = renderer.link(notification)
    out: list[dict[str, Any]] = []
    for alert in notification.alerts:
        labels = {
            "alertname": alert.rule_id,
            "severity": str(alert.severity),
            "district_code": alert.district_code,
            "province_code": alert.province_code,
            "region": place.region,
            "fingerprint": alert.fingerprint,
            "source": "warroom",
        }
        if alert.dimension:  # an empty label value means "no label" to Alertmanager
            labels["dimension"] = alert.dimension
        resolved = (
            alert.state is AlertState.RESOLVED or notification.kind is NotificationKind.RESOLVED
        )
        starts = alert.fired_at_ms if alert.fired_at_ms is not None else alert.pending_since_ms
        ends = (alert.resolved_at_ms or now_ms) if resolved else max(now_ms, starts) + firing_ttl_ms
        annotations = {
            "summary": f"{alert.title_th} — {place.label_th}",
            "description": alert.summary_th,
            "summary_en": f"{alert.title_en} — {place.district_en}, {place.province_en}",
            "description_en": alert.summary_en,
            "district_name": place.district_th,
            "province_name": place.province_th,
            "value": repr(alert.value),
            "threshold": repr(alert.threshold),
            "alert_id": alert.alert_id,
            "dashboard_url": link,
        }
        if notification.kind is NotificationKind.ESCALATION or alert.escalated_at_ms is not None:
            annotations["escalated"] = "true"
        if alert.acknowledged_at_ms is not None:
            annotations["acknowledged_by"] = alert.acknowledged_by or "-"
        out.append(
            {
                "labels": labels,
                "annotations": annotations,
                "startsAt": _ts(starts),
                "endsAt": _ts(ends),
                "generatorURL": link,
            }
        )
    return out


class AlertmanagerChannel(Channel):
    """The recipient address is the Alertmanager base URL (e.g. http://127.0.0.1:9093)."""

    name = "alertmanager"

    def __init__(
        self,
        renderer: MessageRenderer,
        retry: RetryPolicy | None = None,
        firing_ttl: float = 24 * 3600.0,
    ) -> None:
        super().__init__(renderer, retry)
        self.firing_ttl_ms = int(firing_ttl * 1000)
        self._http = HttpClient(self.retry.timeout)

    async def send_once(self, notification: Notification, recipient: Recipient) -> None:
        body = postable_alerts(
            notification, self.renderer, int(time.time() * 1000), self.firing_ttl_ms
        )
        url = recipient.address.rstrip("/") + "/api/v2/alerts"
        await self._http.post_json(url, body, {"User-Agent": "warroom-notifier"})

    async def close(self) -> None:
        await self._http.close()
