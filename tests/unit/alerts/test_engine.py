"""The evaluation engine, fed synthetic observations; every expectation is worked out by hand
from the inputs in the test (times, counts, thresholds), never read back from the engine."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from alerts.engine import AlertNotFound, Engine
from alerts.model import AlertState, NotificationKind, Severity, fingerprint
from alerts.rules import RuleSet, load_rules, parse_rules
from alerts.transitions import HISTORY_COLUMNS, TickResult, history_rows

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
WEEK = 7 * DAY
BKK = timezone(timedelta(hours=7))


def _b36(ms: int) -> str:
    """The episode start as alert ids carry it: base 36, lower case (numpy's, not ours)."""
    return str(np.base_repr(ms, 36)).lower()


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: timezone = UTC) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=tz).timestamp() * 1000)


T0 = ms(2026, 1, 5)  # Monday 2026-01-05 00:00 UTC (07:00 in Bangkok)

OVERDUE = """
  - id: overdue
    title_th: เรื่องค้างเกินกำหนด
    title_en: Overdue backlog
    kind: threshold
    metric: grievance_overdue
    severity: warning
    for: 15m
    repeat: 2h
    params: {op: above, threshold: 20}
    summary_th: "ค้าง {value:.0f} เรื่อง (เกณฑ์ {threshold:.0f})"
    summary_en: "{value:.0f} overdue (threshold {threshold:.0f})"
"""
URGENT = """
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
STALE = """
  - id: stale
    title_th: โครงการไม่รายงาน
    title_en: Stale projects
    kind: threshold
    metric: project_stale
    severity: warning
    for: 0s
    repeat: 1d
    per: dim1
    params: {op: above, threshold: 0}
    summary_th: "{dimension_th} {value:.0f}"
    summary_en: "{dimension} {value:.0f}"
"""


def ruleset(*rules: str, group_window: str = "0s") -> RuleSet:
    text = f"version: 1\nevaluation: {{group_window: {group_window}}}\nrules:\n" + "".join(rules)
    return parse_rules(text, source="test")


def states(result: TickResult) -> list[tuple[str, str, str]]:
    return [(t.state, t.alert.rule_id, t.alert.district_code) for t in result.transitions]


def kinds(result: TickResult) -> list[tuple[NotificationKind, str, list[str]]]:
    return [(n.kind, n.district_code, [a.rule_id for a in n.alerts]) for n in result.notifications]


# --- lifecycle: for, repeat, resolve ----------------------------------------------------------


def test_pending_holds_for_the_for_duration_then_fires() -> None:
    e = Engine(ruleset(OVERDUE))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 15)
    e.observe("1001", "grievance_overdue", "debt", "urgent", T0, 10)  # 15 + 10 = 25 > 20
    r = e.tick(T0)
    assert states(r) == [("pending", "overdue", "1001")]
    assert r.notifications == []
    assert r.transitions[0].alert.value == 25 and r.transitions[0].alert.threshold == 20
    assert r.transitions[0].alert.summary_th == "ค้าง 25 เรื่อง (เกณฑ์ 20)"
    assert not e.tick(T0 + 14 * MIN + 59_999)  # 15 minutes not yet over
    r = e.tick(T0 + 15 * MIN)
    assert states(r) == [("firing", "overdue", "1001")]
    assert kinds(r) == [(NotificationKind.FIRING, "1001", ["overdue"])]
    alert = r.notifications[0].alerts[0]
    assert alert.state is AlertState.FIRING and alert.fired_at_ms == T0 + 15 * MIN
    assert alert.alert_id == f"{fingerprint('overdue', '1001', '')}-{_b36(T0)}"
    assert r.notifications[0].recipients == []  # routing is delivery's job


def test_pending_that_clears_before_for_never_notifies() -> None:
    e = Engine(ruleset(OVERDUE))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 25)
    assert states(e.tick(T0)) == [("pending", "overdue", "1001")]
    e.observe("1001", "grievance_overdue", "land", "normal", T0 + 5 * MIN, 0)  # explicit 0 row
    r = e.tick(T0 + 5 * MIN)
    assert states(r) == [("resolved", "overdue", "1001")]
    assert r.notifications == []
    assert not e.tick(T0 + 30 * MIN)


def test_threshold_is_strictly_above() -> None:
    e = Engine(ruleset(OVERDUE))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 20)  # equal: not above
    assert not e.tick(T0)
    assert not e.tick(T0 + HOUR)


def test_repeat_interval_and_resolve() -> None:
    e = Engine(ruleset(OVERDUE))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    e.tick(T0)
    fired = e.tick(T0 + 15 * MIN)
    first_id = fired.notifications[0].notification_id
    t_fire = T0 + 15 * MIN
    # no repeat before 2 h after the FIRING message, whatever the tick rate
    for t in range(t_fire + MIN, t_fire + 2 * HOUR, 7 * MIN):
        assert not e.tick(t).notifications
    r = e.tick(t_fire + 2 * HOUR)
    assert kinds(r) == [(NotificationKind.REPEAT, "1001", ["overdue"])]
    assert r.transitions == []  # a repeat is not a state change
    second_id = r.notifications[0].notification_id
    assert not e.tick(t_fire + 2 * HOUR + 119 * MIN).notifications  # counted from the repeat
    r = e.tick(t_fire + 4 * HOUR)
    assert kinds(r) == [(NotificationKind.REPEAT, "1001", ["overdue"])]
    assert len({first_id, second_id, r.notifications[0].notification_id}) == 3
    # it ends: RESOLVED for the same episode
    e.observe("1001", "grievance_overdue", "land", "normal", t_fire + 4 * HOUR + MIN, 12)
    r = e.tick(t_fire + 4 * HOUR + MIN)
    assert states(r) == [("resolved", "overdue", "1001")]
    assert kinds(r) == [(NotificationKind.RESOLVED, "1001", ["overdue"])]
    resolved = r.notifications[0].alerts[0]
    assert resolved.alert_id == f"{fingerprint('overdue', '1001', '')}-{_b36(T0)}"
    assert resolved.value == 12 and resolved.resolved_at_ms == t_fire + 4 * HOUR + MIN
    assert e.alerts() == []
    # a new episode gets a new alert id
    e.observe("1001", "grievance_overdue", "land", "normal", t_fire + 5 * HOUR, 40)
    r = e.tick(t_fire + 5 * HOUR)
    assert r.transitions[0].alert.alert_id.endswith(f"-{_b36(t_fire + 5 * HOUR)}")


def test_latest_gauge_snapshot_wins() -> None:
    e = Engine(ruleset(OVERDUE))
    e.observe("1001", "grievance_overdue", "land", "normal", T0 + 2 * MIN, 5)
    e.observe("1001", "grievance_overdue", "land", "normal", T0 + MIN, 50)  # older snapshot
    assert not e.tick(T0 + 2 * MIN)


def test_keep_firing_for_absorbs_flapping() -> None:
    rule = OVERDUE.replace("repeat: 2h", "repeat: 2h\n    keep_firing_for: 10m").replace(
        "for: 15m", "for: 0s"
    )
    e = Engine(ruleset(rule))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    assert kinds(e.tick(T0)) == [(NotificationKind.FIRING, "1001", ["overdue"])]
    e.observe("1001", "grievance_overdue", "land", "normal", T0 + MIN, 10)
    assert not e.tick(T0 + MIN)  # below, but not for 10 minutes yet
    e.observe("1001", "grievance_overdue", "land", "normal", T0 + 5 * MIN, 30)
    assert not e.tick(T0 + 5 * MIN)  # back above: the clear timer restarts
    e.observe("1001", "grievance_overdue", "land", "normal", T0 + 6 * MIN, 10)
    assert not e.tick(T0 + 6 * MIN)  # below again from here
    assert not e.tick(T0 + 15 * MIN)  # 9 min below
    r = e.tick(T0 + 16 * MIN)
    assert kinds(r) == [(NotificationKind.RESOLVED, "1001", ["overdue"])]


# --- grouping ---------------------------------------------------------------------------------


def test_alerts_of_one_district_share_a_message_other_districts_do_not() -> None:
    e = Engine(ruleset(OVERDUE.replace("for: 15m", "for: 0s"), STALE))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    e.observe("1001", "project_stale", "kok_nong_na", "", T0, 2)
    e.observe("1001", "project_stale", "otop_nawatwithi", "", T0, 1)
    e.observe("5001", "grievance_overdue", "land", "normal", T0, 21)
    r = e.tick(T0)
    assert sorted(kinds(r)) == [
        (NotificationKind.FIRING, "1001", ["overdue", "stale", "stale"]),
        (NotificationKind.FIRING, "5001", ["overdue"]),
    ]
    n1001 = next(n for n in r.notifications if n.district_code == "1001")
    dims = [(a.rule_id, a.dimension) for a in n1001.alerts]
    assert dims == [("overdue", ""), ("stale", "kok_nong_na"), ("stale", "otop_nawatwithi")]
    # the dimension is part of the fingerprint: two programs, two series
    assert len({a.fingerprint for a in n1001.alerts}) == 3
    assert n1001.alerts[1].summary_th == "โคก หนอง นา 2"


def test_group_window_collects_alerts_that_fire_close_together() -> None:
    e = Engine(ruleset(OVERDUE.replace("for: 15m", "for: 0s"), STALE, group_window="30s"))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    r = e.tick(T0)
    assert states(r) == [("pending", "overdue", "1001"), ("firing", "overdue", "1001")]
    assert r.notifications == []  # waits for the window
    e.observe("1001", "project_stale", "kok_nong_na", "", T0, 1)
    r = e.tick(T0 + 20_000)
    assert states(r) == [("pending", "stale", "1001"), ("firing", "stale", "1001")]
    assert r.notifications == []
    r = e.tick(T0 + 30_000)  # 30 s after the first: both go out together
    assert kinds(r) == [(NotificationKind.FIRING, "1001", ["overdue", "stale"])]
    e.observe("1001", "project_stale", "otop_nawatwithi", "", T0 + MIN, 1)
    e.tick(T0 + MIN)
    r = e.tick(T0 + MIN + 30_000)  # a later one gets its own message
    assert kinds(r) == [(NotificationKind.FIRING, "1001", ["stale"])]


def test_resolved_inside_the_group_window_sends_nothing() -> None:
    e = Engine(ruleset(OVERDUE.replace("for: 15m", "for: 0s"), group_window="1m"))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    e.tick(T0)
    e.observe("1001", "grievance_overdue", "land", "normal", T0 + 10_000, 0)
    r = e.tick(T0 + 10_000)
    assert states(r) == [("resolved", "overdue", "1001")]
    assert r.notifications == []
    assert not e.tick(T0 + 2 * MIN).notifications


# --- acknowledgement and escalation -----------------------------------------------------------


def _urgent_firing() -> tuple[Engine, str]:
    e = Engine(ruleset(URGENT))
    e.observe("1001", "grievance_urgent_unassigned_max_age_seconds", "", "", T0, 4 * 3600 + 1)
    r = e.tick(T0)
    assert kinds(r) == [(NotificationKind.FIRING, "1001", ["urgent"])]
    return e, r.notifications[0].alerts[0].alert_id


def test_escalation_once_after_the_delay() -> None:
    e, _ = _urgent_firing()
    assert not e.tick(T0 + 29 * MIN).notifications
    r = e.tick(T0 + 30 * MIN)
    assert kinds(r) == [(NotificationKind.ESCALATION, "1001", ["urgent"])]
    assert states(r) == [("escalated", "urgent", "1001")]
    assert r.notifications[0].alerts[0].escalated_at_ms == T0 + 30 * MIN
    # one escalation per episode; the hourly repeat continues
    r = e.tick(T0 + 60 * MIN)
    assert kinds(r) == [(NotificationKind.REPEAT, "1001", ["urgent"])]
    assert not e.tick(T0 + 90 * MIN).notifications


def test_acknowledge_stops_repeats_and_escalation() -> None:
    e, alert_id = _urgent_firing()
    r = e.acknowledge(alert_id, "นายอำเภอ", T0 + 10 * MIN)
    assert states(r) == [("acknowledged", "urgent", "1001")]
    assert r.transitions[0].alert.acknowledged_by == "นายอำเภอ"
    assert not e.acknowledge(alert_id, "someone else", T0 + 11 * MIN)  # idempotent
    for t in range(T0 + 11 * MIN, T0 + 5 * HOUR, 10 * MIN):
        assert not e.tick(t).notifications
    # it still resolves, and the resolution is still told
    e.observe("1001", "grievance_urgent_unassigned_max_age_seconds", "", "", T0 + 5 * HOUR, 0)
    r = e.tick(T0 + 5 * HOUR)
    assert kinds(r) == [(NotificationKind.RESOLVED, "1001", ["urgent"])]
    with pytest.raises(AlertNotFound):
        e.acknowledge(alert_id, "late", T0 + 6 * HOUR)


def test_warning_rules_never_escalate() -> None:
    e = Engine(ruleset(OVERDUE.replace("for: 15m", "for: 0s")))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    e.tick(T0)
    seen = [n.kind for t in range(T0, T0 + 5 * HOUR, 5 * MIN) for n in e.tick(t).notifications]
    assert NotificationKind.ESCALATION not in seen


# --- restart: serialised state ----------------------------------------------------------------


def _roundtrip(e: Engine, rules: RuleSet) -> Engine:
    blob = json.dumps(e.dump_state(), ensure_ascii=False)
    fresh = Engine(rules)
    fresh.load_state(json.loads(blob))
    return fresh


def test_restart_does_not_fire_again_and_keeps_the_timers() -> None:
    rules = ruleset(URGENT, OVERDUE.replace("for: 15m", "for: 0s"))
    e = Engine(rules)
    for code in ("1001", "1002", "5001"):
        e.observe(code, "grievance_overdue", "land", "normal", T0, 30)
    e.observe("1001", "grievance_urgent_unassigned_max_age_seconds", "", "", T0, 5 * 3600)
    first = e.tick(T0)
    assert sorted(kinds(first)) == [
        (NotificationKind.FIRING, "1001", ["urgent", "overdue"]),
        (NotificationKind.FIRING, "1002", ["overdue"]),
        (NotificationKind.FIRING, "5001", ["overdue"]),
    ]
    restored = _roundtrip(e, rules)
    # the worker re-feeds the last flush after the crash: same full values, nothing new
    for code in ("1001", "1002", "5001"):
        restored.observe(code, "grievance_overdue", "land", "normal", T0, 30)
    assert not restored.tick(T0 + MIN)  # no FIRING storm
    assert len(restored.alerts(AlertState.FIRING)) == 4
    r = restored.tick(T0 + 30 * MIN)
    assert kinds(r) == [(NotificationKind.ESCALATION, "1001", ["urgent"])]
    r = restored.tick(T0 + 60 * MIN)
    assert kinds(r) == [(NotificationKind.REPEAT, "1001", ["urgent"])]
    # a second restart after the escalation: it is not repeated
    again = _roundtrip(restored, rules)
    assert not again.tick(T0 + 61 * MIN).notifications
    r = again.tick(T0 + 2 * HOUR)
    assert sorted(kinds(r)) == [
        (NotificationKind.REPEAT, "1001", ["urgent", "overdue"]),
        (NotificationKind.REPEAT, "1002", ["overdue"]),
        (NotificationKind.REPEAT, "5001", ["overdue"]),
    ]


def test_replay_after_a_crash_before_the_checkpoint_repeats_the_same_ids() -> None:
    rules = ruleset(OVERDUE)
    e = Engine(rules)
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    e.tick(T0)
    checkpoint = json.dumps(e.dump_state())  # last state the worker stored
    sent = e.tick(T0 + 15 * MIN)  # notifications handed to delivery, then the crash
    replay = Engine(rules)
    replay.load_state(json.loads(checkpoint))
    replay.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    again = replay.tick(T0 + 15 * MIN + 4_000)  # the timer fires at another instant
    assert [n.notification_id for n in again.notifications] == [
        n.notification_id for n in sent.notifications
    ]
    assert again.notifications[0].kind is NotificationKind.FIRING


def test_identical_inputs_identical_ids_and_ids_differ_by_kind() -> None:
    def run() -> list[str]:
        e = Engine(ruleset(URGENT))
        e.observe("1001", "grievance_urgent_unassigned_max_age_seconds", "", "", T0, 20000)
        out = []
        for t in (T0, T0 + 30 * MIN, T0 + HOUR):
            out += [n.notification_id for n in e.tick(t).notifications]
        return out

    ids = run()
    assert ids == run()
    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_state_version_is_checked() -> None:
    e = Engine(ruleset(OVERDUE))
    with pytest.raises(ValueError, match="version"):
        e.load_district("1001", {"v": 99})


# --- surge -----------------------------------------------------------------------------------

SURGE = """
  - id: surge
    title_th: เรื่องร้องเรียนพุ่ง
    title_en: Surge
    kind: surge
    metric: grievance_received
    severity: warning
    for: 0s
    repeat: 2h
    params:
      window: 1h
      baseline_weeks: 4
      min_weeks: 2
      method: stddev
      k: 3
      min_count: 10
      fallback_hours: {fallback}
      min_fallback_hours: 6
    summary_th: "{{value:.0f}} เรื่อง ปกติ {{baseline:.2f}}"
    summary_en: "{{value:.0f}} vs {{baseline:.2f}}"
"""


def surge_rules(fallback: int = 0) -> RuleSet:
    return ruleset(SURGE.format(fallback=fallback))


def test_baseline_is_the_same_hour_of_week() -> None:
    """Four weeks of history, replayed hour by hour. District 1001's Monday 10:00-11:00 had
    5, 6, 5, 4 received; 1002's had 18, 20, 22, 19; every other hour had 50 in both, so a
    baseline taken from any other hour would be very different."""
    e = Engine(surge_rules())
    target_hour = 10  # Monday 10:00-10:59 UTC
    history = {"1001": [5, 6, 5, 4], "1002": [18, 20, 22, 19], "1003": [5, 6, 5, 4]}
    for week in range(4):
        for hour in range(7 * 24):
            start = T0 + week * WEEK + hour * HOUR
            for code, counts in history.items():
                n = counts[week] if hour == target_hour else 50
                # spread over two minutes and two channels, as the worker would write
                e.observe(code, "grievance_received", "debt", "hotline_1567", start, n - n // 2)
                e.observe(code, "grievance_received", "land", "walk_in", start + MIN, n // 2)
            r = e.tick(start + HOUR - 1)
            assert not r.transitions, (week, hour, states(r))
    now_hour = T0 + 4 * WEEK + target_hour * HOUR
    for code in ("1001", "1002"):
        e.observe(code, "grievance_received", "debt", "hotline_1567", now_hour + 5 * MIN, 20)
    e.observe("1003", "grievance_received", "debt", "hotline_1567", now_hour + 5 * MIN, 9)
    # 1001: mean 5, population stddev sqrt((0+1+0+1)/4) = 0.7071 -> 5 + 3 * 0.7071 = 7.12;
    # 20 >= 10 and 20 > 7.12 -> fires. 1002: mean 19.75, stddev sqrt(4.6875/4) = 1.0825
    # (deviations -1.75, .25, 2.25, -.75) -> 23.0; 20 is not above -> quiet.
    # 1003: same history as 1001; 9 > 7.12 but below min_count 10 -> quiet.
    r = e.tick(now_hour + 59 * MIN)  # window 10:00-10:59 exactly, as the history hours
    assert states(r) == [("pending", "surge", "1001"), ("firing", "surge", "1001")]
    alert = r.transitions[-1].alert
    assert alert.value == 20
    assert alert.threshold == 10  # the reported bar: max(7.12, min_count)
    assert alert.summary_th == "20 เรื่อง ปกติ 5.00"
    # 1003 reaches the floor: now 7.12 is what it must beat, and 10 does
    e.observe("1003", "grievance_received", "land", "walk_in", now_hour + 6 * MIN, 1)
    r = e.tick(now_hour + 59 * MIN + 1)
    assert states(r) == [("pending", "surge", "1003"), ("firing", "surge", "1003")]


def test_quiet_district_two_against_zero_does_not_fire() -> None:
    e = Engine(surge_rules())
    e.tick(T0)  # coverage starts here
    for week in range(3):  # three silent weeks: baseline 0, stddev 0
        e.tick(T0 + (week + 1) * WEEK)
    now = T0 + 3 * WEEK + 11 * HOUR - MIN
    e.observe("1001", "grievance_received", "land", "web", now - 30 * MIN, 2)
    assert not e.tick(now)  # 2 > 0 but below min_count 10
    e.observe("1001", "grievance_received", "land", "web", now - 20 * MIN, 10)
    r = e.tick(now + MIN)  # 12 >= 10 and 12 > 0
    assert states(r) == [("pending", "surge", "1001"), ("firing", "surge", "1001")]


def test_no_history_no_verdict_and_fallback_hours() -> None:
    """Without two covered weeks the surge rule cannot judge (an alert keeps its state);
    with fallback_hours it compares with the trailing hours instead."""
    e = Engine(surge_rules())
    e.tick(T0)
    e.observe("1001", "grievance_received", "land", "web", T0 + 30 * MIN, 100)
    assert not e.tick(T0 + HOUR)
    f = Engine(surge_rules(fallback=24))
    f.tick(T0)
    for hour in range(8):  # 8 covered hours with 2 each
        f.observe("1001", "grievance_received", "land", "web", T0 + hour * HOUR, 2)
        assert not f.tick(T0 + hour * HOUR + 30 * MIN)
    # now 08:00-08:59: the trailing hours 00..07 had 2 each: mean 2, stddev 0
    f.observe("1001", "grievance_received", "land", "web", T0 + 8 * HOUR + 10 * MIN, 9)
    assert not f.tick(T0 + 8 * HOUR + 59 * MIN)  # 9 < min_count 10
    f.observe("1001", "grievance_received", "land", "web", T0 + 8 * HOUR + 11 * MIN, 3)
    r = f.tick(T0 + 8 * HOUR + 59 * MIN)
    assert states(r)[-1] == ("firing", "surge", "1001")
    assert r.transitions[-1].alert.threshold == 10  # max(2 + 3*0, min_count)


def test_bucket_values_are_full_values_not_deltas() -> None:
    e = Engine(surge_rules(fallback=24))
    e.tick(T0)
    for hour in range(6):
        e.tick(T0 + hour * HOUR + 30 * MIN)
    now = T0 + 6 * HOUR + 59 * MIN
    # the same bucket re-sent three times (a replay), then corrected upwards by a late event
    for _ in range(3):
        e.observe("1001", "grievance_received", "land", "web", T0 + 6 * HOUR, 9)
    assert not e.tick(now)  # 9, not 27
    e.observe("1001", "grievance_received", "land", "web", T0 + 6 * HOUR, 11)
    r = e.tick(now + 1)
    assert r.transitions[-1].alert.value == 11


def test_per_category_surge_uses_only_listed_categories() -> None:
    rule = SURGE.format(fallback=24).replace(
        "    params:", "    per: dim1\n    where: {dim1: [flood]}\n    params:"
    )
    e = Engine(ruleset(rule))
    e.tick(T0)
    for hour in range(6):
        e.tick(T0 + hour * HOUR + 30 * MIN)
    t = T0 + 6 * HOUR
    e.observe("1001", "grievance_received", "flood", "line", t, 7)
    e.observe("1001", "grievance_received", "flood", "web", t + MIN, 5)
    e.observe("1001", "grievance_received", "debt", "web", t, 40)  # not a listed category
    r = e.tick(t + 59 * MIN)
    firing = [t.alert for t in r.transitions if t.state == "firing"]
    assert [(a.dimension, a.value) for a in firing] == [("flood", 12)]


def test_retention_bounds_memory() -> None:
    e = Engine(surge_rules())
    e.tick(T0)
    for minute in range(4 * 60):  # four hours of one event per minute per district
        for code in ("1001", "1002"):
            e.observe(code, "grievance_received", "land", "web", T0 + minute * MIN, 1)
        e.tick(T0 + minute * MIN)
    retention = e.layout.retention_minutes  # the 1-hour window + margin
    assert retention == 65
    for code in ("1001", "1002"):
        data = e.district_data(code)
        assert sum(len(v) for v in data.keys.values()) <= retention
        assert all(
            len(s.minutes) <= retention for fam in data.series.values() for s in fam.values()
        )


# --- projects, budget, silence ----------------------------------------------------------------

GAP = """
  - id: gap
    title_th: ล่าช้า
    title_en: Gap
    kind: mean_gap
    metric: project_planned_pct_sum
    severity: info
    for: 0s
    repeat: 1d
    per: dim1
    params: {points: 20, min_projects: 3}
    summary_th: "{value:.1f} จุด {active:.0f} โครงการ"
    summary_en: "{value:.1f}"
"""
BUDGET = """
  - id: budget
    title_th: เบิกจ่ายต่ำ
    title_en: Budget
    kind: disbursement
    metric: project_budget_disbursed_thb
    severity: warning
    for: 0s
    repeat: 1d
    per: dim1
    params: {min_ratio_pct: 80, weeks_before_quarter_end: 3, min_planned_thb: 100000}
    summary_th: "{value:.0f}% เหลือ {days_left} วัน"
    summary_en: "{value:.0f}%"
"""
SILENT = """
  - id: silent
    title_th: เงียบ
    title_en: Silent
    kind: silent
    metric: last_event_age_seconds
    severity: warning
    for: 0s
    repeat: 1d
    params: {office_hours: 4}
    summary_th: "{value:.2f} ชม. ล่าสุด {last_event}"
    summary_en: "{value:.2f}"
"""


def test_mean_schedule_gap_per_program() -> None:
    e = Engine(ruleset(GAP))
    # kok_nong_na: 4 active, planned 300, progress 200 -> gap 25 > 20 -> fires
    # otop: 2 active, gap 40 but fewer than 3 projects -> quiet
    rows = [
        ("project_planned_pct_sum", "kok_nong_na", 300),
        ("project_progress_pct_sum", "kok_nong_na", 200),
        ("project_active", "kok_nong_na", 4),
        ("project_planned_pct_sum", "otop_nawatwithi", 160),
        ("project_progress_pct_sum", "otop_nawatwithi", 80),
        ("project_active", "otop_nawatwithi", 2),
    ]
    for metric, program, value in rows:
        e.observe("3001", metric, program, "", T0, value)
    r = e.tick(T0)
    firing = [t.alert for t in r.transitions if t.state == "firing"]
    assert [(a.dimension, a.value) for a in firing] == [("kok_nong_na", 25)]
    assert firing[0].summary_th == "25.0 จุด 4 โครงการ"


def _budget(e: Engine, at: int, fy: str, planned: float, disbursed: float) -> None:
    e.observe("3001", "project_budget_planned_disbursed_thb", "kok_nong_na", fy, at, planned)
    e.observe("3001", "project_budget_disbursed_thb", "kok_nong_na", fy, at, disbursed)


def test_disbursement_only_near_the_fiscal_quarter_end() -> None:
    # FY2569 = Oct 2025 - Sep 2026; Q2 = Jan-Mar 2026 ends 31 March (Bangkok)
    feb = ms(2026, 2, 20, 12, tz=BKK)  # 40 days before 1 April: too early
    mar = ms(2026, 3, 20, 12, tz=BKK)  # 12 days before 1 April: within 3 weeks
    e = Engine(ruleset(BUDGET))
    _budget(e, feb, "2569", 1_000_000, 500_000)
    assert not e.tick(feb)
    _budget(e, mar, "2569", 1_000_000, 500_000)
    r = e.tick(mar)
    assert states(r) == [("pending", "budget", "3001"), ("firing", "budget", "3001")]
    assert r.transitions[-1].alert.value == 50 and r.transitions[-1].alert.threshold == 80
    assert r.transitions[-1].alert.summary_th == "50% เหลือ 12 วัน"
    # the next quarter starts: the window closes, the alert resolves
    apr = ms(2026, 4, 2, 12, tz=BKK)
    assert kinds(e.tick(apr)) == [(NotificationKind.RESOLVED, "3001", ["budget"])]


def test_disbursement_reads_the_current_fiscal_year_and_a_minimum_plan() -> None:
    dec = ms(2025, 12, 15, 12, tz=BKK)  # Q1 of FY2569 ends 31 Dec: 17 days left
    e = Engine(ruleset(BUDGET))
    _budget(e, dec, "2568", 1_000_000, 0)  # last fiscal year's books: ignored
    assert not e.tick(dec)
    e2 = Engine(ruleset(BUDGET))
    _budget(e2, dec, "2569", 90_000, 0)  # below min_planned_thb
    assert not e2.tick(dec)
    _budget(e2, dec + MIN, "2569", 200_000, 170_000)  # 85 % >= 80 %
    assert not e2.tick(dec + MIN)
    _budget(e2, dec + 2 * MIN, "2569", 200_000, 150_000)  # 75 %
    assert states(e2.tick(dec + 2 * MIN))[-1] == ("firing", "budget", "3001")


def test_silent_district_counts_office_hours_only() -> None:
    e = Engine(ruleset(SILENT))
    # last event Friday 2026-01-09 14:59-15:00 Bangkok (its bucket starts 14:59)
    fri = ms(2026, 1, 9, 14, 59, tz=BKK)
    e.observe("5001", "grievance_received", "land", "web", fri, 1)
    # office time after 15:00: Fri 15:00-16:30 = 1.5 h; Monday from 08:30: 2.5 h more at 11:00
    assert not e.tick(ms(2026, 1, 10, 12, tz=BKK))  # Saturday: still 1.5 h
    assert not e.tick(ms(2026, 1, 12, 11, 0, tz=BKK))  # Monday 11:00: exactly 4 h, not above
    r = e.tick(ms(2026, 1, 12, 11, 1, tz=BKK))
    assert states(r) == [("pending", "silent", "5001"), ("firing", "silent", "5001")]
    assert r.transitions[-1].alert.value == pytest.approx(4 + 1 / 60)
    assert r.transitions[-1].alert.summary_th.endswith("ล่าสุด 09/01/2569 15:00 น.")
    # data comes back: resolved
    e.observe("5001", "project_report", "other", "on_track", ms(2026, 1, 12, 11, 2, tz=BKK), 1)
    r = e.tick(ms(2026, 1, 12, 11, 5, tz=BKK))
    assert kinds(r) == [(NotificationKind.RESOLVED, "5001", ["silent"])]


def test_silent_from_the_last_event_age_gauge_and_unknown_districts() -> None:
    e = Engine(ruleset(SILENT))
    tue9 = ms(2026, 1, 13, 9, 0, tz=BKK)
    # the worker's snapshot at 09:00 says the last event was 1.5 office hours... 20 h ago
    e.observe("5001", "last_event_age_seconds", "grievance", "", tue9, 20 * 3600)
    # 20 h before Tue 09:00 is Mon 13:00: office time Mon 13:00-16:30 = 3.5 h, Tue 08:30-
    assert not e.tick(ms(2026, 1, 13, 8, 59, tz=BKK))  # 3.5 + 0.48 h
    r = e.tick(ms(2026, 1, 13, 9, 1, tz=BKK))  # 3.5 + 0.5167 = 4.0167 h
    assert states(r)[-1] == ("firing", "silent", "5001")
    assert "1001" not in e.districts()  # never seen: no verdict


def test_a_district_is_judged_by_its_own_partition_clock() -> None:
    """Catching up, partition A is at Monday 11:01 while B's districts are still at Friday:
    B's district must not look silent because of A's clock."""
    e = Engine(ruleset(SILENT))
    fri = ms(2026, 1, 9, 14, 59, tz=BKK)
    for code in ("5001", "9001"):
        e.observe(code, "grievance_received", "land", "web", fri, 1)
    monday = ms(2026, 1, 12, 11, 1, tz=BKK)
    own = {"5001": monday, "9001": fri + 2 * MIN}
    r = e.tick(monday, lambda code: own[code])
    assert states(r) == [("pending", "silent", "5001"), ("firing", "silent", "5001")]
    # 9001's partition catches up and its district stays quiet with it
    own["9001"] = monday
    r = e.tick(monday + MIN, lambda code: own[code])
    assert ("firing", "silent", "9001") in states(r)
    # a district's own time never goes back either
    own["9001"] = fri
    assert not e.tick(monday + 2 * MIN, lambda code: own[code])


def test_a_tick_on_new_data_evaluates_only_the_districts_that_got_data() -> None:
    e = Engine(ruleset(OVERDUE))
    for code in ("1001", "1002"):
        e.observe(code, "grievance_overdue", "land", "normal", T0, 30)
    assert {t.alert.district_code for t in e.tick(T0).transitions} == {"1001", "1002"}
    # only 1002 gets new data: only it moves on a new-data tick, even past its `for`
    e.observe("1002", "grievance_overdue", "land", "normal", T0 + 16 * MIN, 31)
    r = e.tick(T0 + 16 * MIN, only_new_data=True)
    assert states(r) == [("firing", "overdue", "1002")]
    # the full tick (the timer) brings 1001 along
    assert states(e.tick(T0 + 17 * MIN)) == [("firing", "overdue", "1001")]


# --- misc -----------------------------------------------------------------------------------


def test_the_clock_never_goes_back() -> None:
    e = Engine(ruleset(OVERDUE))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    e.tick(T0 + 10 * MIN)
    assert not e.tick(T0)  # an older tick is treated as "now" again
    assert e.now_ms == T0 + 10 * MIN
    r = e.tick(T0 + 25 * MIN)
    assert states(r) == [("firing", "overdue", "1001")]


def test_history_rows_match_the_alerts_history_table() -> None:
    ddl = (Path(__file__).parents[3] / "sinks" / "migrations" / "001_init.sql").read_text()
    body = ddl[ddl.index("alerts_history") :]
    body = body[body.index("(") + 1 : body.index("ENGINE")]
    columns = tuple(re.findall(r"^\s*([a-z_]+)\s", body, flags=re.MULTILINE))
    assert columns == HISTORY_COLUMNS
    e = Engine(ruleset(URGENT))
    e.observe("5001", "grievance_urgent_unassigned_max_age_seconds", "", "", T0, 18000)
    r = e.tick(T0)
    rows = history_rows(r.transitions)
    assert [row["state"] for row in rows] == ["pending", "firing"]
    row = rows[1]
    assert set(row) == set(HISTORY_COLUMNS)
    assert row["at"] == datetime(2026, 1, 5, tzinfo=UTC)
    assert (row["district_code"], row["province_code"], row["region"]) == ("5001", "50", "north")
    assert (row["rule_id"], row["severity"], row["value"], row["threshold"]) == (
        "urgent",
        "critical",
        18000.0,
        14400.0,
    )
    assert row["fingerprint"] == fingerprint("urgent", "5001", "")
    assert row["alert_id"] == f"{row['fingerprint']}-{_b36(T0)}"
    assert row["message"] == "ค้าง 5.0 ชม." and row["channel"] == row["recipient"] == ""
    ack = e.acknowledge(row["alert_id"], "ops", T0 + MIN)
    assert history_rows(ack.transitions)[0]["message"] == "ค้าง 5.0 ชม. — รับทราบโดย ops"


def test_shipped_rules_run_on_every_kind_of_input() -> None:
    rules = load_rules()
    e = Engine(rules)
    e.observe("1001", "grievance_received", "flood", "line", T0, 3)
    e.observe("1001", "grievance_overdue", "land", "urgent", T0, 25)
    e.observe("1001", "project_stale", "kok_nong_na", "", T0, 1)
    e.observe("1001", "last_event_age_seconds", "project", "", T0, 60)
    for t in range(T0, T0 + 2 * HOUR, 5 * MIN):
        e.tick(t)
    firing = {(a.rule_id, a.dimension) for a in e.alerts(AlertState.FIRING)}
    assert firing == {("grievance_overdue_backlog", ""), ("project_stale", "kok_nong_na")}
    assert e.firing_counts() == {
        ("grievance_overdue_backlog", "warning"): 1,
        ("project_stale", "warning"): 1,
    }
    assert all(a.severity is Severity.WARNING for a in e.alerts())
    assert e.evaluations["grievance_surge"] == 24


def test_dirty_districts_are_those_whose_state_changed() -> None:
    e = Engine(ruleset(OVERDUE.replace("for: 15m", "for: 0s")))
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    e.observe("1002", "grievance_overdue", "land", "normal", T0, 3)
    e.tick(T0)
    assert e.take_dirty() == {"1001", "1002"}  # both observed; 1001 also fired
    assert e.take_dirty() == set()
    e.tick(T0 + MIN)  # nothing new: a steady alert does not need rewriting
    assert e.take_dirty() == set()
    e.tick(T0 + 2 * HOUR)  # the repeat timer moved
    assert e.take_dirty() == {"1001"}


def test_restored_alerts_keep_their_texts_and_drop_removed_rules() -> None:
    both = ruleset(URGENT, OVERDUE.replace("for: 15m", "for: 0s"))
    e = Engine(both)
    e.observe("1001", "grievance_overdue", "land", "normal", T0, 30)
    e.observe("1001", "grievance_urgent_unassigned_max_age_seconds", "", "", T0, 15000)
    e.tick(T0)
    state = json.loads(json.dumps(e.dump_state()))
    restored = Engine(both)
    restored.load_state(state)
    before = {a.alert_id: a for a in e.alerts()}
    assert {a.alert_id: a for a in restored.alerts()} == before  # titles come from the rules
    only_urgent = Engine(ruleset(URGENT))
    only_urgent.load_state(state)
    assert [a.rule_id for a in only_urgent.alerts()] == ["urgent"]
