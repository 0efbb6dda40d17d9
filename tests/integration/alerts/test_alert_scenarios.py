"""Alert scenarios through the real pipeline: simulated events on a real broker, a real
`warroom worker` evaluating them, and real receivers (webhook, Alertmanager, SMTP, the LINE
stand-in) on loopback.

Every scenario works in stream time: events are dated two days back, so the worker's clock is
the event watermark and the test moves it by sending events. What each receiver must get is
worked out from the rule (tests/integration/alerts/scenario.py: for 2m, window 10m, at least 8
in the window, escalation after 3m, repeat 1h) and the events sent, not read from the worker.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest

from streams.alerting_state import source_partition
from streams.topics import Topics
from tests.integration.alerts.conftest import LINE_TOKEN
from tests.integration.alerts.scenario import (
    CLOCKS,
    ESCALATE_MS,
    FOR_MS,
    MIN_COUNT,
    MINUTE_MS,
    RULE_ID,
    RULES_YAML,
    WINDOW_MS,
    Directory,
    Timeline,
    alert_records,
    history,
    states_of,
    status,
    surge,
    t0_ms,
    wait_until,
    wait_value,
    worker_env,
)
from tests.services.alertmanager import AlertmanagerServer
from tests.services.line_standin import LineStandIn
from tests.services.smtp import SmtpServer
from tests.services.webhook_receiver import Delivery, WebhookReceiver
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

A, B, QUIET = "5001", "1001", "3001"  # เมืองเชียงใหม่, เขตพระนคร, เมืองนครราชสีมา


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
            bootstrap,
            topics.prefix,
            tmp_path / name,
            env={"WARROOM_GROUP_ID": "alerts", **env},
        )
        made.append(w)
        return w

    yield make
    for w in made:
        w.kill()


def _to(hook: WebhookReceiver, path: str) -> list[Delivery]:
    return [d for d in hook.deliveries() if d.path == path]


def _kinds(deliveries: list[Delivery]) -> list[str]:
    return [d.body["kind"] for d in deliveries]


def _resent(hook: WebhookReceiver, tag: str) -> list[tuple[str, str]]:
    """(path, notification id) pairs received more than once (the receiver's own duplicate
    flag spans paths, and the war room gets the same notification as the chief)."""
    seen: set[tuple[str, str]] = set()
    again = []
    for x in hook.deliveries():
        if tag in x.path:
            key = (x.path, x.body["notification_id"])
            if key in seen:
                again.append(key)
            seen.add(key)
    return again


def _metric(worker: WorkerProcess, name: str, **labels: str) -> float:
    return worker.counter(name, **labels)


def test_surge_reaches_its_chief_once_escalates_unless_acknowledged_and_resolves(
    bootstrap: str,
    topics: Topics,
    workers: Callable[..., WorkerProcess],
    rules_file: Path,
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
    alertmanager: AlertmanagerServer,
    line_standin: LineStandIn,
    smtp_server: SmtpServer,
) -> None:
    """Surges in A and B, none in QUIET. A's chief: one FIRING (LINE, e-mail, webhook), no
    repeat, one RESOLVED. B's alert is acknowledged with `warroom alerts ack`: only A
    escalates to its governor. History and the alerts topic hold every transition."""
    d = Directory(webhook_receiver.url, alertmanager_url=alertmanager.url)
    d.chief(A, "นายอำเภอเมืองเชียงใหม่", line=True, email=True)
    d.chief(B, "ผู้อำนวยการเขตพระนคร")
    d.chief(QUIET, "นายอำเภอเมืองนครราชสีมา")
    d.governor("50", "ผู้ว่าราชการจังหวัดเชียงใหม่", line=True)
    d.governor("10", "ผู้ว่าราชการกรุงเทพมหานคร")
    d.governor("30", "ผู้ว่าราชการจังหวัดนครราชสีมา")
    cert = smtp_server.cert_path if smtp_server.cert_path.exists() else None
    env = worker_env(
        d.write(tmp_path / "directory.yaml"),
        rules_file,
        line_url=line_standin.url,
        line_token=LINE_TOKEN,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_cert=cert,
    )
    worker = workers(env).start()
    t0 = t0_ms()
    tl = Timeline(bootstrap, topics, CLOCKS)
    # four quiet hours (the baseline's coverage), then the surges
    tl.background([A, B, QUIET], t0 - 4 * 60 * MINUTE_MS, t0)
    tl.send(surge(A, t0, 12) + surge(B, t0, 10) + surge(QUIET, t0, MIN_COUNT - 2))

    def pending() -> list[dict[str, Any]]:
        return [a for a in status(worker)["alerts"] if a["state"] == "pending"]

    wait_until(lambda: len(pending()) == 2, "A and B pending", worker=worker)
    assert {a["district_code"] for a in pending()} == {A, B}  # QUIET stays below MIN_COUNT

    # past the `for` duration: both fire, each chief gets its own message
    tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS)
    chief_a, chief_b = d.path(f"chief-{A}"), d.path(f"chief-{B}")
    wait_until(
        lambda: _to(webhook_receiver, chief_a) and _to(webhook_receiver, chief_b),
        "FIRING at both chiefs",
        worker=worker,
    )
    firing_b = _to(webhook_receiver, chief_b)[0].body
    assert firing_b["kind"] == "firing" and firing_b["district"]["code"] == B
    assert [a["rule_id"] for a in firing_b["alerts"]] == [RULE_ID]
    assert firing_b["alerts"][0]["value"] == 10.0
    b_alert = firing_b["alerts"][0]["alert_id"]

    # the chief of B acknowledges through the CLI, as the message tells them to
    ack = subprocess.run(
        [sys.executable, "-m", "warroom.cli", "alerts", "ack", b_alert, "--url", worker.url,
         "--by", "นายอำเภอทดสอบ", "--note", "รับทราบแล้ว"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ack.returncode == 0, ack.stderr
    assert f"acknowledged {b_alert}" in ack.stdout and f"district {B}" in ack.stdout

    # A's chief has the FIRING on every channel before the escalation is due (its story)
    wait_until(
        lambda: (
            [p for p in line_standin.pushes() if p.to == d.chiefs[A].line]
            and [m for m in smtp_server.messages() if d.chiefs[A].email in m.rcpt_tos]
        ),
        "FIRING on A's LINE and e-mail",
        worker=worker,
    )
    # still within the surge window, past the escalation delay: A escalates, B does not, and
    # nobody gets a repeat (1 h)
    tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS + ESCALATE_MS + MINUTE_MS)
    gov_a = d.path("governor-50")
    wait_until(lambda: _to(webhook_receiver, gov_a), "escalation to A's governor", worker=worker)
    esc = _to(webhook_receiver, gov_a)[0].body
    assert esc["kind"] == "escalation" and esc["district"]["code"] == A
    assert esc["recipient"]["role"] == "governor"
    assert _metric(worker, "warroom_alerts_firing", rule=RULE_ID, severity="critical") == 2
    # the war room's Alertmanager holds both, labelled for routing by district
    a_alert = esc["alerts"][0]["alert_id"]

    def in_alertmanager() -> dict[str, dict[str, Any]]:
        got = alertmanager.alerts(f'alertname="{RULE_ID}"', f'district_code=~"{A}|{B}"')
        return {x["annotations"]["alert_id"]: x for x in got}

    am = wait_value(
        in_alertmanager,
        lambda got: {a_alert, b_alert} <= got.keys(),
        "both alerts in Alertmanager",
        worker=worker,
    )
    assert am[a_alert]["labels"]["district_code"] == A
    assert am[a_alert]["labels"]["province_code"] == "50"
    assert am[a_alert]["labels"]["severity"] == "critical"
    assert am[b_alert]["labels"]["district_code"] == B
    assert am[a_alert]["status"]["state"] == "active"

    # the surge leaves the window: both resolve
    tl.tick_to(t0 + 3 * MINUTE_MS + WINDOW_MS + 2 * MINUTE_MS)
    wait_until(
        lambda: (
            _kinds(_to(webhook_receiver, chief_a))[-1:] == ["resolved"]
            and _kinds(_to(webhook_receiver, chief_b))[-1:] == ["resolved"]
        ),
        "RESOLVED at both chiefs",
        worker=worker,
    )
    war_room = d.path("war-room")
    wait_until(lambda: len(_to(webhook_receiver, war_room)) >= 5, "war room copies", worker=worker)

    # -- what each receiver got: exactly the oracle ---------------------------------------
    assert _kinds(_to(webhook_receiver, chief_a)) == ["firing", "resolved"]
    assert _kinds(_to(webhook_receiver, chief_b)) == ["firing", "resolved"]
    assert _to(webhook_receiver, d.path(f"chief-{QUIET}")) == []
    assert _kinds(_to(webhook_receiver, gov_a)) == ["escalation"]
    assert _to(webhook_receiver, d.path("governor-10")) == []  # acknowledged in time
    assert _to(webhook_receiver, d.path("governor-30")) == []
    assert sorted(_kinds(_to(webhook_receiver, war_room))) == sorted(
        ["firing", "firing", "escalation", "resolved", "resolved"]
    )
    assert _resent(webhook_receiver, d.tag) == []
    assert webhook_receiver.violations == []
    # resolved alerts end in Alertmanager (its API lists active ones only)
    wait_until(lambda: not in_alertmanager().keys() & {a_alert, b_alert}, "ended in Alertmanager")

    # LINE: A's chief got the FIRING and the RESOLVED in Thai, A's governor the escalation
    chief_line = d.chiefs[A].line
    pushes = wait_value(
        lambda: [p for p in line_standin.pushes() if p.to == chief_line],
        lambda got: len(got) >= 2,
        "two LINE pushes to A's chief",
    )
    assert len(pushes) == 2
    firing_text = pushes[0].texts[0]
    assert "เรื่องร้องเรียนเพิ่มขึ้นผิดปกติ" in firing_text and "เมืองเชียงใหม่" in firing_text
    assert "รับเรื่องร้องเรียน 12 เรื่อง" in firing_text
    assert "var-district=5001" in firing_text  # the district dashboard link
    gov_line = [p for p in line_standin.pushes() if p.to == d.governors["50"].line]
    assert len(gov_line) == 1 and "ยังไม่มีผู้รับทราบ" in gov_line[0].texts[0]
    # the story: the chief was told on LINE, e-mail and webhook before, and nobody acknowledged
    for channel in ("LINE", "อีเมล", "webhook"):
        assert f"นายอำเภอเมืองเชียงใหม่ ทาง {channel} เมื่อ" in gov_line[0].texts[0]
    assert "ยังไม่มีผู้กดรับทราบ" in gov_line[0].texts[0]
    assert line_standin.violations == []

    # e-mail: two messages to A's chief, Thai subject, over STARTTLS when the server offers it
    mails = wait_value(
        lambda: [m for m in smtp_server.messages() if d.chiefs[A].email in m.rcpt_tos],
        lambda got: len(got) >= 2,
        "two e-mails to A's chief",
    )
    assert len(mails) == 2
    subject = str(make_header(decode_header(mails[0].message["Subject"])))
    assert "เรื่องร้องเรียนเพิ่มขึ้นผิดปกติ" in subject and "เมืองเชียงใหม่" in subject
    assert all(m.tls for m in mails) == (cert is not None)

    # -- history and topic: every transition of both alerts ------------------------------
    rows = wait_value(
        lambda: history(worker),
        lambda h: states_of(h, A)[-1:] == states_of(h, B)[-1:] == ["resolved"],
        "history rows",
        worker=worker,
    )
    assert states_of(rows, A) == ["pending", "firing", "escalated", "resolved"]
    assert states_of(rows, B) == ["pending", "firing", "acknowledged", "resolved"]
    assert states_of(rows, QUIET) == []
    notified = {(r["district_code"], r["channel"]) for r in rows if r["state"] == "notified"}
    assert {(A, "line"), (A, "email"), (A, "webhook"), (A, "alertmanager"), (B, "webhook")} <= (
        notified
    )
    acked = [r for r in rows if r["state"] == "acknowledged"]
    assert "นายอำเภอทดสอบ" in acked[0]["message"]
    assert {r["province_code"] for r in rows if r["district_code"] == A} == {"50"}
    records = [body for _, body in alert_records(bootstrap, topics)]
    topic_states = {(r["district_code"], r["state"]) for r in records if r["event"] == "state"}
    for district, states in ((A, states_of(rows, A)), (B, states_of(rows, B))):
        assert {(district, s) for s in states} <= topic_states
    kinds = sorted((r["district_code"], r["kind"]) for r in records if r["event"] == "notification")
    assert kinds == sorted(
        [(A, "firing"), (A, "escalation"), (A, "resolved"), (B, "firing"), (B, "resolved")]
    )
    assert _metric(worker, "warroom_alerts_firing", rule=RULE_ID, severity="critical") == 0
    assert _metric(worker, "warroom_alerts_evaluated_total", rule=RULE_ID) > 0
    # LINE: A's chief twice, A's governor once; e-mail: A's chief twice
    assert _metric(worker, "warroom_notifications_sent_total", channel="line") == 3
    assert _metric(worker, "warroom_notifications_sent_total", channel="email") == 2
    assert _metric(worker, "warroom_notifications_failed_total") == 0
    assert worker.stop() == 0, worker.tail()


def _simple_directory(
    hook: WebhookReceiver, district: str, chief_hook: str = "", *, line: bool = False
) -> Directory:
    d = Directory(hook.url)
    d.chief(district, f"หัวหน้าส่วนราชการ {district}", line=line)
    if chief_hook:
        d.chiefs[district].webhook = f"{chief_hook}{d.path('chief-' + district)}"
    d.governor(district[:2], f"ผู้ว่าราชการจังหวัด {district[:2]}")
    return d


def test_sigkill_mid_alert_sends_nothing_twice(
    bootstrap: str,
    topics: Topics,
    workers: Callable[..., WorkerProcess],
    rules_file: Path,
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
    line_standin: LineStandIn,
) -> None:
    """Firing and notified, then SIGKILL; events keep coming while it is down. After the
    restart the alert is the same episode: no second FIRING (not even a re-send the receiver
    would drop), the escalation timer still runs, one RESOLVED at the end."""
    district = "4001"  # เมืองขอนแก่น
    d = _simple_directory(webhook_receiver, district, line=True)
    env = worker_env(
        d.write(tmp_path / "directory.yaml"), rules_file, line_url=line_standin.url,
        line_token=LINE_TOKEN,
    )  # fmt: skip
    worker = workers(env).start()
    t0 = t0_ms()
    tl = Timeline(bootstrap, topics, CLOCKS)
    tl.background([district], t0 - 4 * 60 * MINUTE_MS, t0)
    tl.send(surge(district, t0, 12))
    wait_until(lambda: status(worker)["alerts"], "pending", worker=worker)
    fired_clock = t0 + 3 * MINUTE_MS + FOR_MS
    tl.tick_to(fired_clock)
    chief = d.path(f"chief-{district}")
    wait_until(lambda: _to(webhook_receiver, chief), "FIRING at the chief", worker=worker)
    before = status(worker)["alerts"]
    assert [(a["state"], a["district_code"]) for a in before] == [("firing", district)]
    wait_until(
        lambda: any(r["state"] == "notified" for r in history(worker)),
        "the delivery recorded",
        worker=worker,
    )

    worker.kill()
    # still inside the surge window, before the escalation is due
    tl.tick_to(fired_clock + MINUTE_MS)
    worker.start()
    after = wait_value(
        lambda: status(worker),
        lambda s: s["ready"] and s["alerts"],
        "state restored",
        worker=worker,
    )
    assert [a["alert_id"] for a in after["alerts"]] == [a["alert_id"] for a in before]
    assert after["alerts"][0]["state"] == "firing"

    # the escalation timer survived the crash: due 3 min after firing
    tl.tick_to(fired_clock + ESCALATE_MS + MINUTE_MS)
    governor = d.path(f"governor-{district[:2]}")
    wait_until(lambda: _to(webhook_receiver, governor), "escalation", worker=worker)
    tl.tick_to(t0 + 3 * MINUTE_MS + WINDOW_MS + 2 * MINUTE_MS)
    wait_until(
        lambda: _kinds(_to(webhook_receiver, chief))[-1:] == ["resolved"], "RESOLVED",
        worker=worker,
    )  # fmt: skip
    pushes = wait_value(
        lambda: [p for p in line_standin.pushes() if p.to == d.chiefs[district].line],
        lambda got: len(got) >= 2,
        "LINE pushes",
    )
    assert _kinds(_to(webhook_receiver, chief)) == ["firing", "resolved"]
    assert _kinds(_to(webhook_receiver, governor)) == ["escalation"]
    assert _resent(webhook_receiver, d.tag) == []
    assert len(pushes) == 2
    rows = wait_value(
        lambda: history(worker),
        lambda h: states_of(h, district)[-1:] == ["resolved"],
        "the resolution recorded",
        worker=worker,
    )
    assert states_of(rows, district) == ["pending", "firing", "escalated", "resolved"]
    assert worker.stop() == 0, worker.tail()


def test_a_receiver_that_was_down_gets_every_message_in_order(
    bootstrap: str,
    topics: Topics,
    workers: Callable[..., WorkerProcess],
    rules_file: Path,
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
) -> None:
    """The chief's webhook refuses connections while the alert fires and resolves: both
    messages wait in the outbox (failures recorded), the war room is not held up, and once
    the receiver is back it gets FIRING then RESOLVED, once each."""
    district = "1002"  # เขตดุสิต
    down = WebhookReceiver()  # not started: connection refused
    d = _simple_directory(webhook_receiver, district, chief_hook=down.url)
    worker = workers(worker_env(d.write(tmp_path / "directory.yaml"), rules_file)).start()
    try:
        t0 = t0_ms()
        tl = Timeline(bootstrap, topics, CLOCKS)
        tl.background([district], t0 - 4 * 60 * MINUTE_MS, t0)
        tl.send(surge(district, t0, 12))
        wait_until(lambda: status(worker)["alerts"], "pending", worker=worker)
        tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS)
        failed = wait_value(
            lambda: [r for r in history(worker) if r["state"] == "notify_failed"],
            bool,
            "a failed delivery recorded",
            worker=worker,
        )
        assert {(r["channel"], r["recipient"].split(":")[0]) for r in failed} == {
            ("webhook", "chief")
        }
        assert "attempt 1" in failed[0]["message"]
        tl.tick_to(t0 + 3 * MINUTE_MS + WINDOW_MS + 2 * MINUTE_MS)
        war_room = d.path("war-room")
        wait_until(
            lambda: _kinds(_to(webhook_receiver, war_room)) == ["firing", "resolved"],
            "the war room gets both while the chief's receiver is down",
            worker=worker,
        )
        assert down.deliveries() == []
        assert worker.counter("warroom_notifications_failed_total", channel="webhook") >= 1
        queued = worker.counter("warroom_notifications_queued", channel="webhook")
        assert queued == 2  # FIRING and RESOLVED for the chief
        down.start()
        chief = d.path(f"chief-{district}")
        wait_until(lambda: len(_to(down, chief)) >= 2, "both after the receiver is back", 90)
        assert _kinds(_to(down, chief)) == ["firing", "resolved"]
        assert not any(x.duplicate for x in down.deliveries())
        assert down.violations == []
        rows = wait_value(
            lambda: history(worker),
            lambda h: sum(r["state"] == "notified" and "chief" in r["recipient"] for r in h) >= 2,
            "deliveries recorded",
            worker=worker,
        )
        notified = [r for r in rows if r["state"] == "notified" and "chief" in r["recipient"]]
        assert sorted(r["message"].split()[0] for r in notified) == ["firing", "resolved"]
        assert worker.counter("warroom_notifications_queued", channel="webhook") == 0
    finally:
        down.stop()
    assert worker.stop() == 0, worker.tail()


def test_a_refused_notification_fails_for_good_where_the_war_room_sees_it(
    bootstrap: str,
    topics: Topics,
    workers: Callable[..., WorkerProcess],
    rules_file: Path,
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
) -> None:
    """The chief's webhook refuses the FIRING message (400): it is failed after one try, seen
    in alerts_history, the worker's log, /metrics, /status/alerts and `warroom alerts outbox`,
    never with the chief's address; the RESOLVED that follows is not held behind it."""
    district = "1003"  # เขตหนองจอก
    refusing = WebhookReceiver()
    refusing.start()
    refusing.fail_next(400)
    d = _simple_directory(webhook_receiver, district, chief_hook=refusing.url)
    chief = d.path(f"chief-{district}")
    worker = workers(worker_env(d.write(tmp_path / "directory.yaml"), rules_file)).start()
    try:
        t0 = t0_ms()
        tl = Timeline(bootstrap, topics, CLOCKS)
        tl.background([district], t0 - 4 * 60 * MINUTE_MS, t0)
        tl.send(surge(district, t0, 12))
        wait_until(lambda: status(worker)["alerts"], "pending", worker=worker)
        tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS)
        failed = wait_value(
            lambda: [r for r in history(worker) if r["state"] == "notify_failed"],
            bool,
            "the refusal recorded",
            worker=worker,
        )
        (row,) = failed
        assert (row["channel"], row["recipient"]) == ("webhook", f"chief:{d.chiefs[district].name}")
        assert row["message"].startswith("firing ")
        assert "attempt 1 (failed for good: refused by the receiver" in row["message"]
        assert "HTTP 400" in row["message"] and chief not in row["message"]
        assert (
            worker.counter(
                "warroom_notifications_given_up_total", channel="webhook", reason="refused"
            )
            == 1
        )
        assert status(worker)["failed"] == {"webhook": 1}
        shown = subprocess.run(
            [sys.executable, "-m", "warroom.cli", "alerts", "outbox", "--state", "failed",
             "--data-dir", str(worker.data_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        (line,) = [x for x in shown.stdout.splitlines() if "(failed)" in x]
        assert f"chief:{d.chiefs[district].name}" in line and "HTTP 400" in line
        assert chief not in shown.stdout
        # the resolution is not held behind the refused firing: the chief gets it at once
        tl.tick_to(t0 + 3 * MINUTE_MS + WINDOW_MS + 2 * MINUTE_MS)
        wait_until(lambda: _kinds(_to(refusing, chief)) == ["resolved"], "RESOLVED", worker=worker)
        assert worker.counter("warroom_notifications_queued", channel="webhook") == 0
        log = worker.log_path.read_text(errors="replace")
        warned = [x for x in log.splitlines() if "failed for good" in x]
        assert len(warned) == 1 and "WARNING" in warned[0].upper() and chief not in log
    finally:
        refusing.stop()
    assert worker.stop() == 0, worker.tail()


def test_two_workers_split_the_districts_and_hand_over_live_alerts(
    bootstrap: str,
    topics: Topics,
    workers: Callable[..., WorkerProcess],
    rules_file: Path,
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
) -> None:
    """Scale-out mid-alert: two pending alerts on one worker; a second worker joins and takes
    half the partitions (and the pending alert of its district, through the changelog; its
    data re-read through the first worker's store). Each alert then lives on the worker of its
    district's partition only, and fires once. The second worker leaves: its live alert moves
    back, and each chief gets exactly one FIRING and one RESOLVED."""
    x_district, y_district = "5001", "3001"  # partitions 0 and 2 of 4
    d = Directory(webhook_receiver.url)
    for code in (x_district, y_district):
        d.chief(code, f"นายอำเภอ {code}")
    directory = d.write(tmp_path / "directory.yaml")
    owner = workers(worker_env(directory, rules_file), "owner").start()
    t0 = t0_ms()
    tl = Timeline(bootstrap, topics, CLOCKS)
    tl.background([x_district, y_district], t0 - 4 * 60 * MINUTE_MS, t0)
    tl.send(surge(x_district, t0, 12) + surge(y_district, t0, 12))
    tl.tick_to(t0 + 3 * MINUTE_MS)
    pending = wait_value(
        lambda: status(owner)["alerts"], lambda a: len(a) == 2, "two pending", worker=owner
    )
    ids = {a["district_code"]: a["alert_id"] for a in pending}

    store = "chdb+http://" + owner.url.removeprefix("http://")
    helper = workers({**worker_env(directory, rules_file), "WARROOM_STORE": store}, "helper")
    helper.start()

    def split() -> dict[str, dict[str, Any]]:
        return {w.data_dir.name: status(w) for w in (owner, helper)}

    # settled: every partition on exactly one worker, both ready
    now = wait_value(
        split,
        lambda st: (
            sorted(st["owner"]["partitions"] + st["helper"]["partitions"]) == [0, 1, 2, 3]
            and all(x["ready"] and x["partitions"] for x in st.values())
        ),
        "the partitions split between the workers",
        worker=owner,
    )
    for code in (x_district, y_district):
        holder = next(n for n, x in now.items() if source_partition(code, 4) in x["partitions"])
        other = "helper" if holder == "owner" else "owner"
        # the same episode (alert id), live only where the district's partition is
        assert ids[code] in {a["alert_id"] for a in now[holder]["alerts"]}, now
        assert code not in {a["district_code"] for a in now[other]["alerts"]}, now
    assert {n for n, x in now.items() if x["alerts"]} == {"owner", "helper"}

    tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS)
    chiefs = {c: d.path(f"chief-{c}") for c in (x_district, y_district)}
    wait_until(
        lambda: all(_to(webhook_receiver, p) for p in chiefs.values()), "FIRING", worker=owner
    )

    # the helper leaves: its partitions and its live alert move back to the owner
    assert helper.stop() == 0, helper.tail()
    back = wait_value(
        lambda: status(owner),
        lambda x: x["ready"] and sorted(x["partitions"]) == [0, 1, 2, 3],
        "the owner holds every partition",
        worker=owner,
    )
    assert {a["alert_id"] for a in back["alerts"]} == set(ids.values())
    assert {a["state"] for a in back["alerts"]} == {"firing"}
    tl.tick_to(t0 + 3 * MINUTE_MS + WINDOW_MS + 2 * MINUTE_MS)
    wait_until(
        lambda: all(_kinds(_to(webhook_receiver, p))[-1:] == ["resolved"] for p in chiefs.values()),
        "RESOLVED",
        worker=owner,
    )
    for path in chiefs.values():
        assert _kinds(_to(webhook_receiver, path)) == ["firing", "resolved"]
    assert _resent(webhook_receiver, d.tag) == []
    assert owner.stop() == 0, owner.tail()
