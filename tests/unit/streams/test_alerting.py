"""The alert service's pure parts: district partitions, the escalation setting, history rows
and alerts-topic records."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from alerts.engine import Engine
from alerts.messages import MessageRenderer
from alerts.model import Notification, Recipient
from alerts.notifier import DeliveryOutcome
from alerts.rules import DEFAULT_RULES_PATH, RulesError
from alerts.transitions import Transition
from sinks.tables import COLUMNS
from streams.alerting import load_alert_rules
from streams.alerting_records import (
    delivery_rows,
    notification_record,
    state_record,
    transition_rows,
)
from streams.alerting_state import merge_metas, source_partition
from streams.geography import district_codes
from warroom.settings import Settings

MIN = 60_000


def test_a_districts_partition_is_the_one_its_events_are_produced_to() -> None:
    """The producer keys by district code with aiokafka's default partitioner."""
    partitioner = DefaultPartitioner()
    for n in (1, 3, 4, 12):
        parts = list(range(n))
        for code in sorted(district_codes()):
            assert source_partition(code, n) == partitioner(code.encode(), parts, parts)


RULES = """
version: 1
defaults: {for: 1m, repeat: 1h, escalate_after: 5m}
rules:
  - {id: own, title_th: ก, title_en: a, kind: threshold, metric: grievance_overdue,
     severity: critical, escalate_after: 7m, params: {op: above, threshold: 1},
     summary_th: "x {value}", summary_en: "x {value}"}
  - {id: default, title_th: ข, title_en: b, kind: threshold, metric: grievance_overdue,
     severity: critical, params: {op: above, threshold: 1},
     summary_th: "x {value}", summary_en: "x {value}"}
  - {id: warn, title_th: ค, title_en: c, kind: threshold, metric: grievance_overdue,
     severity: warning, params: {op: above, threshold: 1},
     summary_th: "x {value}", summary_en: "x {value}"}
"""


def test_the_escalation_setting_replaces_the_files_default_not_a_rules_own(
    rules_path: Path,
) -> None:
    path = rules_path
    rules = load_alert_rules(Settings(alert_rules=str(path), escalate_after_minutes=45))
    assert rules.get("own").escalate_after_ms == 7 * MIN
    assert rules.get("default").escalate_after_ms == 45 * MIN
    assert rules.get("warn").escalate_after_ms == 0
    never = load_alert_rules(Settings(alert_rules=str(path), escalate_after_minutes=0))
    assert never.get("default").escalate_after_ms == 0
    with pytest.raises(RulesError, match="WARROOM_ESCALATE_AFTER_MINUTES"):
        load_alert_rules(Settings(alert_rules=str(path), escalate_after_minutes=-1))


def test_the_shipped_critical_rule_follows_the_setting() -> None:
    rules = load_alert_rules(Settings(escalate_after_minutes=12))
    assert rules.source == str(DEFAULT_RULES_PATH)
    assert rules.get("grievance_urgent_unassigned").escalate_after_ms == 12 * MIN


def test_a_broken_rules_file_is_reported_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nrules: [ {id: x")
    with pytest.raises(RulesError, match=r"bad\.yaml"):
        load_alert_rules(Settings(alert_rules=str(path)))
    with pytest.raises(RulesError, match="cannot read"):
        load_alert_rules(Settings(alert_rules=str(tmp_path / "missing.yaml")))


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def _fired(rules_path: Path) -> tuple[list[Transition], list[Notification]]:
    """Three rules over one overdue gauge of 5 (> 1): pending at t0, firing 2 min later."""
    engine = Engine(load_alert_rules(Settings(alert_rules=str(rules_path))))
    t0 = 1_790_000_000_000
    engine.observe("5001", "grievance_overdue", "land", "normal", t0, 5.0)
    first = engine.tick(t0)
    second = engine.tick(t0 + 2 * MIN)
    return first.transitions + second.transitions, second.notifications


def test_transition_rows_are_alerts_history_rows_in_table_order(rules_path: Path) -> None:
    transitions, _ = _fired(rules_path)
    rows = transition_rows(transitions)
    columns = COLUMNS["alerts_history"]
    assert all(len(r) == len(columns) for r in rows)
    by_state = {r[columns.index("state")]: dict(zip(columns, r, strict=True)) for r in rows}
    assert sorted(by_state) == ["firing", "pending"]
    firing = by_state["firing"]
    assert firing["at"] == 1_790_000_000_000 + 2 * MIN  # epoch ms, the writer's DateTime64(3)
    assert (firing["district_code"], firing["province_code"], firing["region"]) == (
        "5001",
        "50",
        "north",
    )
    assert firing["value"] == 5.0 and firing["threshold"] == 1.0
    assert firing["channel"] == "" and firing["recipient"] == ""


def test_delivery_rows_name_the_recipient_and_the_attempt(rules_path: Path) -> None:
    _, notifications = _fired(rules_path)
    (n,) = notifications  # one grouped message for the district's three alerts
    r = Recipient("chief", "นายอำเภอเมืองเชียงใหม่", "line", "U" + "0" * 32)
    ok = delivery_rows(DeliveryOutcome(n, r, "notified", 1_800_000_000_000, 1))
    columns = COLUMNS["alerts_history"]
    assert len(ok) == 3
    row = dict(zip(columns, ok[0], strict=True))
    assert row["state"] == "notified" and row["channel"] == "line"
    assert row["recipient"] == "chief:นายอำเภอเมืองเชียงใหม่"  # never the LINE id
    assert row["message"] == f"firing {n.notification_id}"
    failed = delivery_rows(
        DeliveryOutcome(n, r, "notify_failed", 1, 3, error="HTTP 503", final=True, reason="expired")
    )
    message = dict(zip(columns, failed[0], strict=True))["message"]
    assert message.endswith(
        "attempt 3 (failed for good: still failing after the give-up time): HTTP 503"
    )
    refused = delivery_rows(
        DeliveryOutcome(n, r, "notify_failed", 1, 1, error="HTTP 400", final=True, reason="refused")
    )
    message = dict(zip(columns, refused[0], strict=True))["message"]
    assert message.endswith(
        "attempt 1 (failed for good: refused by the receiver, not retried): HTTP 400"
    )


def test_topic_records_carry_the_row_and_the_message(rules_path: Path) -> None:
    transitions, notifications = _fired(rules_path)
    row = transition_rows(transitions)[-1]
    body = orjson.loads(state_record(row, "n1", 2, "boom"))
    assert body["schema"] == "warroom.alert_event.v1" and body["event"] == "state"
    assert body["at_ms"] == row[0] and body["at"].endswith("Z")
    assert body["state"] == "firing" and body["district_code"] == "5001"
    assert (body["notification_id"], body["attempt"], body["error"]) == ("n1", 2, "boom")
    (n,) = notifications
    r = Recipient("chief", "นายอำเภอ", "email", "chief@example.go.th")
    note = orjson.loads(notification_record(n, [r], MessageRenderer("http://g")))
    assert note["event"] == "notification" and note["kind"] == "firing"
    assert note["recipients"] == [{"role": "chief", "name": "นายอำเภอ", "channel": "email"}]
    assert "chief@example.go.th" not in orjson.dumps(note).decode()
    assert "เมืองเชียงใหม่" in note["text"]
    assert len(note["alert_ids"]) == 3


def test_metas_merge_to_the_latest_clock_and_the_earliest_coverage() -> None:
    merged = merge_metas(
        [
            {"v": 1, "now_ms": 5, "coverage_ms": None},
            {"v": 1, "now_ms": 9, "coverage_ms": 4},
            {"v": 1, "now_ms": 7, "coverage_ms": 2},
        ]
    )
    assert merged == {"v": 1, "now_ms": 9, "coverage_ms": 2}
