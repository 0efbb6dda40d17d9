"""Chiefs act where the alert reaches them, through the real pipeline: `warroom contacts invite`,
enrolment over the LINE webhook (the stand-in plays LINE and signs every delivery itself), a
surge pushed with buttons, the postback that acknowledges it, no escalation; unfollow falls back;
a forged delivery changes nothing; with two workers an ack reaching the wrong one is applied once
by the right one.

What must happen is worked out from the rule (scenario.py) and the events sent; the LINE ids
are made here and only ever reach the worker through the webhook.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.alerting_state import source_partition
from streams.broker import free_port
from streams.topics import Topics
from tests.integration.alerts.conftest import LINE_TOKEN
from tests.integration.alerts.scenario import (
    CLOCKS,
    ESCALATE_MS,
    FOR_MS,
    MINUTE_MS,
    RULES_YAML,
    WAIT_S,
    WINDOW_MS,
    Directory,
    Timeline,
    alert_records,
    history,
    line_id,
    states_of,
    status,
    surge,
    t0_ms,
    wait_until,
    wait_value,
    worker_env,
)
from tests.services.line_standin import LineStandIn, Push
from tests.services.webhook_receiver import Delivery, WebhookReceiver
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

A = "5001"
ACK_SECRET = "scenario-ack-secret"
SLOW = WAIT_S


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML)
    return path


@pytest.fixture
def workers(
    bootstrap: str, topics: Topics, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    made: list[WorkerProcess] = []

    def make(env: dict[str, str], name: str = "worker") -> WorkerProcess:
        w = WorkerProcess(
            bootstrap, topics.prefix, tmp_path / name, env={"WARROOM_GROUP_ID": "line", **env}
        )
        made.append(w)
        return w

    yield make
    for w in made:
        w.kill()


def _env(
    directory: Path, rules: Path, line: LineStandIn, *, public: bool = True
) -> tuple[dict[str, str], str]:
    env = worker_env(directory, rules, line_url=line.url, line_token=LINE_TOKEN)
    env["WARROOM_ACK_SECRET"] = ACK_SECRET
    url = ""
    if public:
        port = free_port()
        env["WARROOM_PUBLIC_LISTEN"] = f"127.0.0.1:{port}"
        env["WARROOM_LINE_CHANNEL_SECRET"] = line.secret
        url = f"http://127.0.0.1:{port}/line/webhook"
    return env, url


def _invite(directory: Path, district: str) -> str:
    """`warroom contacts invite` as the war room runs it; returns the printed code."""
    env = {
        **os.environ,
        "WARROOM_ALERT_DIRECTORY": str(directory),
        "WARROOM_LINE_BOT_ID": "@wr1567",
    }
    out = subprocess.run(
        [sys.executable, "-m", "warroom.cli", "contacts", "invite", "--district", district,
         "--role", "chief"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "https://line.me/R/ti/p/%40wr1567" in out
    found = re.search(r"^code:\s+([A-Z0-9]{8})$", out, re.M)
    assert found, out
    return found.group(1)


def _to(hook: WebhookReceiver, path: str) -> list[Delivery]:
    return [d for d in hook.deliveries() if d.path == path]


def _replies(line: LineStandIn, user: str) -> list[str]:
    return [t for r in line.replies() if r.to == user for t in r.texts]


def _pushes(line: LineStandIn, user: str) -> list[Push]:
    return [p for p in line.pushes() if p.to == user]


def _audit(directory: Path) -> list[tuple[str, str, str, str]]:
    db = sqlite3.connect(f"file:{directory}.bindings.sqlite3?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT event, outcome, line_user, code FROM enrolment_audit ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    return [tuple(r) for r in rows]


def test_enrol_push_with_buttons_postback_ack_no_escalation(
    bootstrap: str,
    topics: Topics,
    workers: Callable[..., WorkerProcess],
    rules_file: Path,
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
    line_standin: LineStandIn,
) -> None:
    d = Directory(webhook_receiver.url)
    d.chief(A, "นายอำเภอเมืองเชียงใหม่")  # no LINE id in the file: enrolment brings it
    d.governor("50", "ผู้ว่าราชการจังหวัดเชียงใหม่")
    directory = d.write(tmp_path / "directory.yaml")
    code = _invite(directory, A)
    env, hook_url = _env(directory, rules_file, line_standin)
    worker = workers(env).start()
    chief = line_id("U")

    # a forged delivery first: refused, counted, nothing bound
    forged = line_standin.text_event(chief, code)
    status_code, _ = line_standin.send_events(hook_url, [forged], secret="forged-secret")
    assert status_code == 401
    assert worker.counter("warroom_line_webhook_requests_total", outcome="bad_signature") == 1

    # the chief adds the account and sends the code
    assert line_standin.send_events(hook_url, [line_standin.event("follow", chief)])[0] == 200
    assert line_standin.send_events(hook_url, [line_standin.text_event(chief, code)])[0] == 200
    replies = wait_value(
        lambda: _replies(line_standin, chief), lambda r: len(r) == 2, "two replies", worker=worker
    )
    assert "กรุณาพิมพ์รหัสลงทะเบียน" in replies[0]
    assert "ลงทะเบียนเรียบร้อยแล้ว" in replies[1] and "อำเภอเมืองเชียงใหม่" in replies[1]

    # a surge: the FIRING reaches the enrolled chief on LINE with buttons
    t0 = t0_ms()
    tl = Timeline(bootstrap, topics, CLOCKS)
    tl.background([A], t0 - 4 * 60 * MINUTE_MS, t0)
    tl.send(surge(A, t0, 12))
    # pending at the surge's own time first: a tick sent with it would start the `for` later
    wait_until(lambda: status(worker)["alerts"], "pending", timeout=SLOW, worker=worker)
    tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS)
    [push] = wait_value(
        lambda: _pushes(line_standin, chief),
        lambda p: len(p) == 1,
        "FIRING on LINE",
        timeout=SLOW,
        worker=worker,
    )
    template = push.messages[-1]
    assert template["type"] == "template"
    assert [a["label"] for a in template["template"]["actions"]] == ["รับทราบ", "เปิดแดชบอร์ด"]
    assert "เมืองเชียงใหม่" in template["altText"]
    [button] = push.postbacks
    alert_id = status(worker)["alerts"][0]["alert_id"]

    # one tap: the postback comes back from LINE, the chief is answered in Thai
    tap = line_standin.event("postback", chief, postback={"data": button["data"]})
    assert line_standin.send_events(hook_url, [tap])[0] == 200
    confirmed = wait_value(
        lambda: _replies(line_standin, chief), lambda r: len(r) == 3, "ack reply", worker=worker
    )[2]
    assert confirmed.startswith("✅ บันทึกการรับทราบแล้ว") and "นายอำเภอเมืองเชียงใหม่" in confirmed
    # a redelivery of the same tap changes nothing and is not answered twice
    assert line_standin.send_events(hook_url, [line_standin.redelivered(tap)])[0] == 200

    # the chief blocks the account: the rest goes by the file's channels (the webhook here)
    assert line_standin.send_events(hook_url, [line_standin.event("unfollow", chief)])[0] == 200
    wait_until(
        lambda: worker.counter("warroom_line_webhook_events_total", type="unfollow") == 1,
        "unfollow processed",
        timeout=SLOW,
        worker=worker,
    )

    # past the escalation delay and then out of the window: no escalation, one RESOLVED
    tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS + ESCALATE_MS + MINUTE_MS)
    tl.tick_to(t0 + 3 * MINUTE_MS + WINDOW_MS + 2 * MINUTE_MS)
    chief_hook = d.path(f"chief-{A}")
    wait_until(
        lambda: [x.body["kind"] for x in _to(webhook_receiver, chief_hook)][-1:] == ["resolved"],
        "RESOLVED to the chief's webhook",
        timeout=SLOW,
        worker=worker,
    )
    assert [x.body["kind"] for x in _to(webhook_receiver, chief_hook)] == ["firing", "resolved"]
    assert _to(webhook_receiver, d.path("governor-50")) == []  # acknowledged: not escalated
    assert len(_pushes(line_standin, chief)) == 1  # unreachable on LINE after the unfollow
    assert len(_replies(line_standin, chief)) == 3
    assert line_standin.violations == []

    rows = wait_value(
        lambda: history(worker),
        lambda h: states_of(h, A)[-1:] == ["resolved"],
        "history",
        timeout=SLOW,
        worker=worker,
    )
    assert states_of(rows, A) == ["pending", "firing", "acknowledged", "resolved"]
    [acked] = [r for r in rows if r["state"] == "acknowledged"]
    assert acked["alert_id"] == alert_id and "นายอำเภอเมืองเชียงใหม่ (LINE)" in acked["message"]
    # contact changes go out with the tick loop after its evaluation (the webhook answers
    # first), so the last one may follow the history rows by a moment: wait for both of them
    records = wait_value(
        lambda: [body for _, body in alert_records(bootstrap, topics)],
        lambda rs: sum(1 for r in rs if r["event"] == "contact") >= 2,
        "both contact changes on the alerts topic",
        timeout=SLOW,
        worker=worker,
    )
    acks = [(r["alert_id"], r["via"], r["outcome"]) for r in records if r["event"] == "ack"]
    assert acks == [(alert_id, "line", "acknowledged")]
    contact = [(r["change"], r["area"]) for r in records if r["event"] == "contact"]
    assert contact == [("bound", A), ("unreachable", A)]
    assert _audit(directory) == [
        ("invite", "issued", "", code),
        ("follow", "no_binding", chief, ""),
        ("redeem", "bound", chief, code),
        ("unfollow", "unreachable", chief, ""),
    ]
    assert worker.stop() == 0, worker.tail()


def test_ack_at_the_worker_without_the_district_is_applied_once_by_its_holder(
    bootstrap: str,
    topics: Topics,
    workers: Callable[..., WorkerProcess],
    rules_file: Path,
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
    line_standin: LineStandIn,
) -> None:
    """Two workers; the LINE webhook is on `front` only. The tap for a district `back` holds
    goes over the acknowledgements topic and is applied by `back`, once."""
    x, y = "5001", "3001"  # partitions 0 and 2 of 4
    d = Directory(webhook_receiver.url)
    for code in (x, y):
        d.chief(code, f"นายอำเภอ {code}")
    d.governor("50", "ผู้ว่าราชการจังหวัดเชียงใหม่")
    d.governor("30", "ผู้ว่าราชการจังหวัดนครราชสีมา")
    directory = d.write(tmp_path / "directory.yaml")
    codes = {c: _invite(directory, c) for c in (x, y)}
    env, hook_url = _env(directory, rules_file, line_standin)
    front = workers(env, "front").start()
    chiefs = {c: line_id("U") for c in (x, y)}
    for c in (x, y):
        line_standin.send_events(hook_url, [line_standin.text_event(chiefs[c], codes[c])])
        wait_until(
            lambda c=c: _replies(line_standin, chiefs[c]), "enrolled", timeout=SLOW, worker=front
        )
    t0 = t0_ms()
    tl = Timeline(bootstrap, topics, CLOCKS)
    tl.background([x, y], t0 - 4 * 60 * MINUTE_MS, t0)
    tl.send(surge(x, t0, 12) + surge(y, t0, 12))
    wait_until(lambda: len(status(front)["alerts"]) == 2, "two pending", timeout=SLOW, worker=front)
    # a second worker without the public listener joins and takes half the partitions
    back_env, _ = _env(directory, rules_file, line_standin, public=False)
    back_env["WARROOM_STORE"] = "chdb+http://" + front.url.removeprefix("http://")
    back = workers(back_env, "back").start()
    split = wait_value(
        lambda: {"front": status(front), "back": status(back)},
        lambda st: (
            sorted(st["front"]["partitions"] + st["back"]["partitions"]) == [0, 1, 2, 3]
            and all(s["ready"] and s["partitions"] for s in st.values())
        ),
        "partitions split",
        timeout=SLOW,
        worker=front,
    )
    # the district `back` holds: a tap on it reaches `front` and must travel
    far = next(c for c in (x, y) if source_partition(c, 4) in split["back"]["partitions"])
    chief = chiefs[far]
    tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS)
    [push] = wait_value(
        lambda: _pushes(line_standin, chief), lambda p: len(p) == 1, "FIRING on LINE", SLOW, back
    )
    tap = line_standin.event("postback", chief, postback={"data": push.postbacks[0]["data"]})
    assert line_standin.send_events(hook_url, [tap])[0] == 200
    reply = wait_value(
        lambda: _replies(line_standin, chief), lambda r: len(r) == 2, "tap reply", worker=front
    )[1]
    assert line_standin.violations == []
    assert "ระบบกำลังบันทึก" in reply  # forwarded: `front` does not hold the district
    acked = wait_value(
        lambda: [a for a in status(back)["alerts"] if a["acknowledged_by"]],
        bool,
        "acknowledged at back",
        timeout=SLOW,
        worker=back,
    )
    assert acked[0]["district_code"] == far
    assert acked[0]["acknowledged_by"] == f"นายอำเภอ {far} (LINE)"
    # the CLI, pointed at `back`, acknowledges the other district's alert: `front` applies it
    near = y if far == x else x
    [near_alert] = [a["alert_id"] for a in status(front)["alerts"] if a["district_code"] == near]
    cli = subprocess.run(
        [sys.executable, "-m", "warroom.cli", "alerts", "ack", near_alert, "--url", back.url,
         "--by", "เจ้าหน้าที่ศูนย์ฯ", "--district", near],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert f"forwarded {near_alert}" in cli.stdout
    wait_until(
        lambda: [a for a in status(front)["alerts"] if a["acknowledged_by"] == "เจ้าหน้าที่ศูนย์ฯ"],
        "the CLI's ack applied at front",
        timeout=SLOW,
        worker=front,
    )
    tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS + ESCALATE_MS + MINUTE_MS)
    tl.tick_to(t0 + 3 * MINUTE_MS + WINDOW_MS + 2 * MINUTE_MS)
    wait_until(
        lambda: all(
            [m.body["kind"] for m in _to(webhook_receiver, d.path(f"chief-{c}"))][-1:]
            == ["resolved"]
            for c in (far, near)
        ),
        "RESOLVED",
        timeout=SLOW,
        worker=back,
    )
    rows = wait_value(  # the one store both write to
        lambda: history(front),
        lambda h: all(states_of(h, c)[-1:] == ["resolved"] for c in (far, near)),
        "history",
        timeout=SLOW,
        worker=front,
    )
    acked_rows = sorted(r["district_code"] for r in rows if r["state"] == "acknowledged")
    assert acked_rows == sorted([far, near])  # each once
    for c in (far, near):
        assert states_of(rows, c) == ["pending", "firing", "acknowledged", "resolved"]
        assert _to(webhook_receiver, d.path(f"governor-{c[:2]}")) == []
    records = [body for _, body in alert_records(bootstrap, topics)]
    acks = sorted(
        (r["district_code"], r["via"], r["outcome"]) for r in records if r["event"] == "ack"
    )
    assert acks == sorted([(far, "line", "acknowledged"), (near, "http", "acknowledged")])
    assert back.stop() == 0, back.tail()
    assert front.stop() == 0, front.tail()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()
