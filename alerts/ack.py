"""Acknowledging an alert over HTTP: the request shape, the client, and the server-side handler.

Request: ``POST {base}/alerts/{alert_id}/ack`` with ``Content-Type: application/json`` and the
body ``{"by": "<who>", "note": "<optional text>"}``; `alert_id` is what notifications show
(``<fingerprint>-<episode start ms in base 36>``, e.g. ``3355d0ac35808cab-mjuohs00``).

Responses (JSON):
- 200 ``{"alert_id", "rule_id", "district_code", "acknowledged_by", "acknowledged_at",
  "already_acknowledged"}`` — repeats and escalation of this alert stop;
- 202 ``{"alert_id", "district_code", "forwarded": true}`` — the body named a
  ``"district_code"`` this worker does not hold: the ack went to the acknowledgements topic
  and the worker holding the district applies it (result: `alerts_history`, `alerts` topic);
- 400 ``{"error": ...}`` — malformed id or body;
- 404 ``{"error": ...}`` — no live alert with this id (it resolved, or never existed).

The worker mounts `handle_ack` on its web server; `warroom alerts ack` calls `post_ack`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Final

from alerts.engine import AlertNotFound, Engine
from alerts.transitions import TickResult
from streams.timeutil import from_ms, to_rfc3339

__all__ = ["ALERT_ID", "AckError", "handle_ack", "post_ack"]

ALERT_ID: Final = re.compile(r"^[0-9a-f]{16}-[0-9a-z]{1,12}$")
MAX_BY: Final = 100
MAX_NOTE: Final = 500


class AckError(RuntimeError):
    """The acknowledgement did not happen; `status` is the HTTP status (0: none), `unreachable`
    says the worker did not answer at all."""

    def __init__(self, message: str, status: int = 0, unreachable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


@dataclass(frozen=True)
class _Body:
    by: str
    note: str


def _parse_body(body: bytes) -> _Body:
    try:
        raw = json.loads(body or b"{}")
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError('body must be a JSON object like {"by": "name"}')
    by, note = raw.get("by"), raw.get("note", "")
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_BY:
        raise ValueError(f'"by" must be a non-empty text of at most {MAX_BY} characters')
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise ValueError(f'"note" must be a text of at most {MAX_NOTE} characters')
    return _Body(by.strip(), note.strip())


def handle_ack(
    engine: Engine, alert_id: str, body: bytes, now_ms: int
) -> tuple[int, dict[str, Any], TickResult]:
    """Server side: (HTTP status, JSON response, engine result to publish/record)."""
    if not ALERT_ID.match(alert_id):
        return 400, {"error": f"{alert_id!r} is not an alert id (fingerprint-start)"}, TickResult()
    try:
        parsed = _parse_body(body)
    except ValueError as exc:
        return 400, {"error": str(exc)}, TickResult()
    try:
        result = engine.acknowledge(alert_id, parsed.by, now_ms)
    except AlertNotFound:
        return 404, {"error": f"no live alert {alert_id} (resolved or unknown)"}, TickResult()
    alert = engine.find(alert_id)
    assert alert is not None and alert.acknowledged_at_ms is not None
    return (
        200,
        {
            "alert_id": alert_id,
            "rule_id": alert.rule_id,
            "district_code": alert.district_code,
            "acknowledged_by": alert.acknowledged_by,
            "acknowledged_at": to_rfc3339(from_ms(alert.acknowledged_at_ms)),
            "already_acknowledged": not result.transitions,
            "note": parsed.note,
        },
        result,
    )


def post_ack(
    base_url: str,
    alert_id: str,
    by: str,
    note: str = "",
    timeout: float = 10.0,
    password: str = "",
    district_code: str = "",
) -> dict[str, Any]:
    """Client side: acknowledge `alert_id` at the worker; returns its JSON answer.
    `password`: the worker's WARROOM_WEB_PASSWORD, when it has one (sent as HTTP Basic). With
    `district_code`, a worker that does not hold the district forwards it (202, forwarded)."""
    if not ALERT_ID.match(alert_id):
        raise AckError(f"{alert_id!r} is not an alert id (like 3355d0ac35808cab-mjuohs00)")
    url = f"{base_url.rstrip('/')}/alerts/{urllib.parse.quote(alert_id, safe='')}/ack"
    fields = {"by": by, "note": note}
    if district_code:
        fields["district_code"] = district_code
    data = json.dumps(fields, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if password:
        basic = base64.b64encode(f"warroom:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):  # not our JSON: keep the text
            detail = str(json.loads(detail).get("error", detail))
        raise AckError(f"{url}: HTTP {exc.code}: {detail}", exc.code) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AckError(f"{url}: cannot reach the worker: {reason}", unreachable=True) from None
    except ValueError as exc:
        raise AckError(f"{url}: the answer is not JSON: {exc}") from None
