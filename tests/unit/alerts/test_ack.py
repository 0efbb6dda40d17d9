"""`warroom alerts ack` against a real HTTP server on loopback that mounts the server-side
handler over a real engine: the request shape, the answers, and the errors people see."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from alerts.ack import handle_ack
from alerts.cli import register
from alerts.engine import Engine
from alerts.model import NotificationKind
from alerts.rules import parse_rules
from streams.broker import free_port

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC
RULES = """
version: 1
rules:
  - id: urgent
    title_th: เรื่องเร่งด่วนยังไม่มอบหมาย
    title_en: Urgent unassigned
    kind: threshold
    metric: grievance_urgent_unassigned_max_age_seconds
    severity: critical
    for: 0s
    repeat: 1h
    escalate_after: 30m
    params: {op: above, threshold: 4h}
    summary_th: "ค้าง {value_hours:.1f} ชม."
    summary_en: "{value_hours:.1f} h"
"""


class _Worker:
    """What the worker's web server does with POST /alerts/{id}/ack (clock: T0 + 10 min)."""

    def __init__(self) -> None:
        self.engine = Engine(parse_rules(RULES))
        self.engine.observe(
            "1001", "grievance_urgent_unassigned_max_age_seconds", "", "", T0, 20000
        )
        fired = self.engine.tick(T0)
        self.alert_id = fired.notifications[0].alerts[0].alert_id
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()


@pytest.fixture
def worker() -> Iterator[tuple[_Worker, str]]:
    state = _Worker()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append((self.path, dict(self.headers), body))
                parts = self.path.split("/")
                if len(parts) != 4 or parts[1] != "alerts" or parts[3] != "ack":
                    status, answer = 404, {"error": "no such path"}
                else:
                    status, answer, _ = handle_ack(state.engine, parts[2], body, T0 + 600_000)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _cli(*args: str) -> Any:
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, ["alerts", "ack", *args])


def test_ack_request_shape_and_effect(worker: tuple[_Worker, str]) -> None:
    state, url = worker
    out = _cli(state.alert_id, "--url", url, "--by", "นายอำเภอเมือง", "--note", "รับทราบ กำลังส่งคน")
    assert out.exit_code == 0, out.output
    assert f"acknowledged {state.alert_id} (urgent, district 1001) by นายอำเภอเมือง" in out.output
    assert "2026-01-05T00:10:00.000+00:00" in out.output
    path, headers, body = state.requests[0]
    assert path == f"/alerts/{state.alert_id}/ack"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"by": "นายอำเภอเมือง", "note": "รับทราบ กำลังส่งคน"}
    # the engine no longer escalates or repeats this alert
    kinds = [
        n.kind
        for t in range(T0, T0 + 3 * 3_600_000, 60_000)
        for n in state.engine.tick(t).notifications
    ]
    assert NotificationKind.ESCALATION not in kinds and NotificationKind.REPEAT not in kinds
    again = _cli(state.alert_id, "--url", url, "--by", "someone")
    assert again.exit_code == 0 and "(already acknowledged)" in again.output
    assert "by นายอำเภอเมือง" in again.output  # the first acknowledgement stands


def test_unknown_and_malformed_ids(worker: tuple[_Worker, str]) -> None:
    state, url = worker
    unknown = state.alert_id.split("-")[0] + "-1"
    out = _cli(unknown, "--url", url, "--by", "x")
    assert out.exit_code == 1
    assert "HTTP 404" in out.output and f"no live alert {unknown}" in out.output
    out = _cli("not-an-id", "--url", url, "--by", "x")
    assert out.exit_code == 1 and "is not an alert id" in out.output
    assert len(state.requests) == 1  # the malformed id never left the machine


def test_server_side_validation(worker: tuple[_Worker, str]) -> None:
    state, _ = worker
    status, answer, result = handle_ack(state.engine, state.alert_id, b"[1]", T0)
    assert status == 400 and "JSON object" in answer["error"] and not result
    status, answer, _ = handle_ack(state.engine, state.alert_id, b'{"by": ""}', T0)
    assert status == 400 and '"by"' in answer["error"]
    status, answer, _ = handle_ack(state.engine, state.alert_id, b"{", T0)
    assert status == 400 and "not JSON" in answer["error"]
    status, answer, result = handle_ack(state.engine, state.alert_id, b'{"by": "ops"}', T0 + 1)
    assert status == 200 and answer["acknowledged_by"] == "ops"
    assert [t.state for t in result.transitions] == ["acknowledged"]


def test_worker_not_running() -> None:
    out = _cli("0123456789abcdef-1", "--url", f"http://127.0.0.1:{free_port()}", "--by", "x")
    assert out.exit_code == 2 and "cannot reach the worker" in out.output
