"""A worker catching up on the past records the alerts it finds but does not page anyone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.topics import Topics
from tests.integration.alerts.scenario import (
    CLOCKS,
    FOR_MS,
    MINUTE_MS,
    RULE_ID,
    RULES_YAML,
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
from tests.services.webhook_receiver import WebhookReceiver
from tests.services.worker import WorkerProcess

pytestmark = pytest.mark.integration

A = "5001"


def history_rules(worker: WorkerProcess) -> set[str]:
    return {str(r["rule_id"]) for r in history(worker)}


def test_alerts_about_the_past_are_recorded_not_sent(
    bootstrap: str, topics: Topics, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    d = Directory(webhook_receiver.url)
    d.chief(A, "นายอำเภอเมืองเชียงใหม่")
    env = worker_env(d.write(tmp_path / "directory.yaml"), rules)
    # the surge below is two days old: far past an hour's allowance
    env |= {"WARROOM_ALERT_NOTIFY_MAX_AGE_SECONDS": "3600", "WARROOM_GROUP_ID": "catchup"}
    worker = WorkerProcess(bootstrap, topics.prefix, tmp_path / "worker", env=env).start()
    try:
        t0 = t0_ms()
        tl = Timeline(bootstrap, topics, CLOCKS)
        tl.background([A], t0 - 4 * 60 * MINUTE_MS, t0)
        tl.send(surge(A, t0, 12))
        wait_until(
            lambda: any(a["state"] == "pending" for a in status(worker)["alerts"]),
            "A pending",
            worker=worker,
        )
        tl.tick_to(t0 + 3 * MINUTE_MS + FOR_MS)
        wait_until(
            lambda: "firing" in states_of(history(worker), A), "A firing in history", worker=worker
        )
        # the alert itself is as it would be live: firing, in the history
        wait_value(
            lambda: worker.counter("warroom_notifications_held_back_total"),
            lambda held: held >= 1,
            "the FIRING notification held back",
            worker=worker,
        )
        time.sleep(3)  # the delivery loop runs every second: it would have sent by now
        assert not [x for x in webhook_receiver.deliveries() if x.path == d.path(f"chief-{A}")]
        # the alerts topic still records the notification, with nobody to send it to
        notes = [
            body
            for _, body in alert_records(bootstrap, topics)
            if body.get("event") == "notification" and body.get("district_code") == A
        ]
        assert notes
        assert all(n["held_back"] and not n["recipients"] for n in notes)
        assert RULE_ID in history_rules(worker)
    finally:
        worker.kill()
