"""The exported rules against real tools: promtool checks and unit-tests the Prometheus ops rules
with synthetic series; the Grafana rules' SQL runs on chdb against the sinks schema with
synthetic data, and the engine warmed from that same store agrees with it.

chdb serves one data path per process, and other test folders open their own: the store here
lives in a subprocess that owns its own temporary path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.engine import Engine
from alerts.export import GRAFANA_DIR, GRAFANA_FILE, PROMETHEUS_FILE
from alerts.model import AlertState
from alerts.rules import load_rules
from alerts.warmup import apply_warmup, finish_warmup, warmup_queries

pytestmark = pytest.mark.integration

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
MIN = 60
HOUR = 3600
WEEK = 7 * 24 * HOUR
BKK = timezone(timedelta(hours=7))
PRODUCED = 'warroom_producer_events_sent_total{producer="sim",stream="grievance"}'
REJECTED = 'warroom_events_rejected_total{stream="grievance",reason="bad",source="x"}'


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool is not installed (Debian package prometheus; ./dev test installs it)")
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_promtool_check_rules() -> None:
    done = _promtool("check", "rules", str(PROMETHEUS_FILE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def _alert(name: str, labels: dict[str, str], **annotations: str) -> dict[str, Any]:
    return {"exp_labels": {"alertname": name, **labels}, "exp_annotations": annotations}


def test_promtool_unit_tests_fire_the_ops_alerts(tmp_path: Path) -> None:
    """Synthetic series, one sample a minute; every expected firing time and value is worked
    out from the series and the thresholds in rules.yaml (lag 10000 for 5m, ...)."""
    ops = {"team": "warroom-ops"}
    lag_topic = {"topic": "grievance-events", "severity": "warning", **ops}
    tests = [
        {
            # lag = 1000*m on partition 0 + 2000 on partition 1 > 10000 from m = 9; for 5m
            "interval": "1m",
            "input_series": [
                {
                    "series": 'warroom_consumer_lag{topic="grievance-events",partition="0"}',
                    "values": "0+1000x30",
                },
                {
                    "series": 'warroom_consumer_lag{topic="grievance-events",partition="1"}',
                    "values": "2000+0x30",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "13m", "alertname": "WarroomConsumerLagHigh", "exp_alerts": []},
                {
                    "eval_time": "14m",
                    "alertname": "WarroomConsumerLagHigh",
                    "exp_alerts": [
                        _alert(
                            "WarroomConsumerLagHigh",
                            lag_topic,
                            summary="Consumer lag high on grievance-events",
                            summary_th="ข้อความค้างในคิว grievance-events สูง",
                            description="16k messages not yet consumed (threshold 10000).",
                            description_th="มีข้อความรอประมวลผล 16k ข้อความ (เกณฑ์ 10000)",
                        )
                    ],
                },
            ],
        },
        {
            # consumed 10/s for 70 min, then 2/s; producers keep sending 5/s. At m = 74 the
            # 5-minute rate is (42480 - 41400) / 300 = 3.6 < 0.5 * 10: true from 74, for 10m
            "interval": "1m",
            "input_series": [
                {
                    "series": 'warroom_events_consumed_total{topic="grievance-events"}',
                    "values": "0+600x70 42120+120x40",
                },
                {
                    "series": PRODUCED,
                    "values": "0+300x110",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "83m", "alertname": "WarroomThroughputDrop", "exp_alerts": []},
                {
                    "eval_time": "84m",
                    "alertname": "WarroomThroughputDrop",
                    "exp_alerts": [
                        _alert(
                            "WarroomThroughputDrop",
                            {"severity": "warning", **ops},
                            summary="Event throughput dropped while producers still send",
                            summary_th="อัตราประมวลผลเหตุการณ์ลดลงมาก ขณะที่ยังมีข้อมูลส่งเข้ามา",
                            description="Consumed 2 events/s, less than 0.5 x the rate "
                            "one hour ago.",
                            description_th="ประมวลผล 2 เหตุการณ์/วินาที ต่ำกว่า 0.5 เท่าของหนึ่งชั่วโมงก่อน",
                        )
                    ],
                },
            ],
        },
        {
            # the same drop, but the producers stopped too (and no lag builds): not an incident
            "interval": "1m",
            "input_series": [
                {
                    "series": 'warroom_events_consumed_total{topic="grievance-events"}',
                    "values": "0+600x70 42120+120x40",
                },
                {
                    "series": PRODUCED,
                    "values": "0+300x70 21000+0x40",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "90m", "alertname": "WarroomThroughputDrop", "exp_alerts": []}
            ],
        },
        {
            # 6 rejected per 60 consumed = 10 % > 5 % from m = 1 (first rate); for 10m
            "interval": "1m",
            "input_series": [
                {
                    "series": REJECTED,
                    "values": "0+6x30",
                },
                {
                    "series": 'warroom_events_consumed_total{topic="grievance-events"}',
                    "values": "0+60x30",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "WarroomDeadLetterRateHigh", "exp_alerts": []},
                {
                    "eval_time": "11m",
                    "alertname": "WarroomDeadLetterRateHigh",
                    "exp_alerts": [
                        _alert(
                            "WarroomDeadLetterRateHigh",
                            {"severity": "warning", **ops},
                            summary="Many events rejected to the dead-letter topic",
                            summary_th="เหตุการณ์ถูกปฏิเสธ (dead letter) ในสัดส่วนสูง",
                            description="10% of consumed events were rejected (threshold 5%).",
                            description_th="ถูกปฏิเสธ 10% ของเหตุการณ์ทั้งหมด (เกณฑ์ 5%)",
                        )
                    ],
                },
            ],
        },
        {
            # errors start at m = 11 (0 until 10, then +1/min): increase > 0 from 11; for 2m;
            # at 13 the window [8, 13] holds 0, 0, 0, 1, 2, 3 -> 3
            "interval": "1m",
            "input_series": [
                {
                    "series": 'warroom_sink_write_errors_total{backend="chdb"}',
                    "values": "0+0x9 0+1x30",
                },
                {
                    "series": 'warroom_notifications_failed_total{channel="line"}',
                    "values": "0+0x9 0+1x30",
                },
                {
                    "series": 'warroom_notifications_given_up_total{channel="webhook",'
                    'reason="refused"}',
                    "values": "0+0x9 1+0x30",
                },
                {
                    "series": 'up{job="warroom-worker",instance="127.0.0.1:6066"}',
                    "values": "1 1 1 0 0 0 0 0",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "12m", "alertname": "WarroomSinkWriteErrors", "exp_alerts": []},
                {
                    "eval_time": "13m",
                    "alertname": "WarroomSinkWriteErrors",
                    "exp_alerts": [
                        _alert(
                            "WarroomSinkWriteErrors",
                            {"backend": "chdb", "severity": "critical", **ops},
                            summary="ClickHouse writes failing (chdb)",
                            summary_th="เขียนข้อมูลลง ClickHouse ไม่สำเร็จ (chdb)",
                            description="3 write errors in 5 minutes.",
                            description_th="เขียนไม่สำเร็จ 3 ครั้งใน 5 นาที",
                        )
                    ],
                },
                # down from m = 3, for 1m
                {"eval_time": "3m", "alertname": "WarroomWorkerDown", "exp_alerts": []},
                {
                    "eval_time": "4m",
                    "alertname": "WarroomWorkerDown",
                    "exp_alerts": [
                        _alert(
                            "WarroomWorkerDown",
                            {
                                "job": "warroom-worker",
                                "instance": "127.0.0.1:6066",
                                "severity": "critical",
                                **ops,
                            },
                            summary="Warroom target 127.0.0.1:6066 is down",
                            summary_th="ระบบ warroom ที่ 127.0.0.1:6066 หยุดทำงาน",
                            description="Prometheus cannot scrape warroom-worker at "
                            "127.0.0.1:6066.",
                            description_th="Prometheus เก็บค่าจาก warroom-worker ที่ "
                            "127.0.0.1:6066 ไม่ได้",
                        )
                    ],
                },
                # failures from m = 11, for 10m; at 21 the 10-minute increase is 11 - 1 = 10
                {"eval_time": "20m", "alertname": "WarroomNotificationsFailing", "exp_alerts": []},
                {
                    "eval_time": "21m",
                    "alertname": "WarroomNotificationsFailing",
                    "exp_alerts": [
                        _alert(
                            "WarroomNotificationsFailing",
                            {"channel": "line", "severity": "warning", **ops},
                            summary="Alert notifications failing on line",
                            summary_th="ส่งการแจ้งเตือนทาง line ไม่สำเร็จ",
                            description="10 failed deliveries in 10 minutes; they stay in the "
                            "outbox and are retried, except those refused for good "
                            "(WarroomNotificationsGivenUp).",
                            description_th="ส่งไม่สำเร็จ 10 ครั้งใน 10 นาที (ยังอยู่ใน outbox และจะส่งซ้ำ "
                            "ยกเว้นที่ผู้รับปฏิเสธถาวร)",
                        )
                    ],
                },
                # one notification refused for good at m = 10: fires at once, for an hour
                {"eval_time": "9m", "alertname": "WarroomNotificationsGivenUp", "exp_alerts": []},
                {
                    "eval_time": "12m",
                    "alertname": "WarroomNotificationsGivenUp",
                    "exp_alerts": [
                        _alert(
                            "WarroomNotificationsGivenUp",
                            {
                                "channel": "webhook",
                                "reason": "refused",
                                "severity": "warning",
                                **ops,
                            },
                            summary="Alert notifications failed for good on webhook",
                            summary_th="การแจ้งเตือนทาง webhook ส่งไม่ถึงผู้รับ (ยกเลิกการส่งแล้ว)",
                            description="Notifications of the last hour will not be retried "
                            "(refused): see `warroom alerts outbox --state failed` and fix the "
                            "recipient in the directory.",
                            description_th="มีการแจ้งเตือนใน 1 ชั่วโมงที่ผ่านมาที่จะไม่ส่งซ้ำ (refused): "
                            "ดูรายการด้วย warroom alerts outbox --state failed "
                            "แล้วแก้ไขผู้รับในสมุดรายชื่อ",
                        )
                    ],
                },
            ],
        },
    ]
    spec = {"rule_files": [str(PROMETHEUS_FILE)], "evaluation_interval": "1m", "tests": tests}
    test_file = tmp_path / "warroom-ops.test.yml"
    test_file.write_text(
        yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    done = _promtool("test", "rules", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


# --- the Grafana rules' SQL on chdb -----------------------------------------------------------

_CHDB_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from chdb import session
    from sinks.migrate import load_migrations

    job = json.load(sys.stdin)
    s = session.Session(job["path"])
    s.query("CREATE DATABASE IF NOT EXISTS " + job["db"])
    for migration in load_migrations():
        for statement in migration.statements(job["db"]):
            s.query(statement)
    for statement in job["setup"]:
        s.query(statement)
    out = {}
    for name, sql in job["queries"].items():
        res = s.query(sql, "JSONCompact")
        out[name] = json.loads(res.bytes() or b'{"data": []}')["data"]
    s.close()
    json.dump(out, sys.stdout)
    """
)


def _run_chdb(tmp_path: Path, setup: list[str], queries: dict[str, str]) -> dict[str, Any]:
    job = {"path": str(tmp_path / "chdb"), "db": "warroom", "setup": setup, "queries": queries}
    done = subprocess.run(
        [sys.executable, "-c", _CHDB_SCRIPT],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: Any = UTC) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=tz).timestamp())


NOW = _ts(2026, 2, 2, 4, 1)  # Monday 11:01 in Bangkok
MARCH = _ts(2026, 3, 20, 12, 0, tz=BKK)  # 12 days before the end of FY2569 Q2


def _bucket_rows() -> list[tuple[str, str, str, str, int, int, float]]:
    """(district, metric, dim1, dim2, bucket s, partition, value) for metric_buckets."""
    rows = []
    history = {"1001": [5, 6, 5, 4], "1002": [18, 20, 22, 19], "1003": [5, 6, 5, 4]}
    for code, counts in history.items():
        for week, n in enumerate(counts, start=1):
            at = NOW - week * WEEK
            rows.append((code, "grievance_received", "debt", "web", at - 30 * MIN, 0, float(n)))
            rows.append((code, "grievance_received", "land", "web", at - 3 * HOUR, 0, 50.0))
        current = 9.0 if code == "1003" else 20.0
        rows.append((code, "grievance_received", "debt", "line", NOW - 10 * MIN, 0, current))
    for week in range(1, 5):  # 1004: one flood grievance in that hour each week, 6 now
        rows.append(
            ("1004", "grievance_received", "flood", "web", NOW - week * WEEK - 20 * MIN, 0, 1.0)
        )
    rows.append(("1004", "grievance_received", "flood", "web", NOW - 15 * MIN, 1, 4.0))
    rows.append(("1004", "grievance_received", "flood", "line", NOW - 14 * MIN, 1, 2.0))
    # 5001 last reported Friday 30 Jan 14:59-15:00 Bangkok
    rows.append(("5001", "project_report", "other", "on_track", _ts(2026, 1, 30, 7, 59), 2, 1.0))
    # 5002 the same, but its last-event gauge knows of a later event (a status change has no
    # bucket); 5003 reported 10:31-10:32, its gauge says days ago (an older snapshot view)
    rows.append(("5002", "project_report", "other", "on_track", _ts(2026, 1, 30, 7, 59), 2, 1.0))
    rows.append(("5003", "grievance_received", "debt", "web", NOW - 30 * MIN, 3, 1.0))
    return rows


def _gauge_rows() -> list[tuple[str, str, str, str, int, int, float]]:
    now, old = NOW - 10 * MIN, NOW - 20 * MIN
    return [
        # 2001: 15 + 10 = 25 overdue now (an older snapshot said 40); 2002: 12
        ("2001", "grievance_overdue", "land", "normal", old, 0, 40.0),
        ("2001", "grievance_overdue", "land", "normal", now, 0, 15.0),
        ("2001", "grievance_overdue", "debt", "urgent", now, 0, 10.0),
        ("2002", "grievance_overdue", "land", "normal", now, 1, 12.0),
        ("2003", "grievance_overdue", "land", "normal", NOW - 8 * 24 * HOUR, 1, 99.0),  # too old
        ("3001", "grievance_urgent_unassigned_max_age_seconds", "", "", now, 0, 18000.0),
        ("3002", "grievance_urgent_unassigned_max_age_seconds", "", "", now, 0, 10800.0),
        ("4001", "project_behind_plan", "kok_nong_na", "", now, 0, 3.0),
        ("4001", "project_behind_plan", "otop_nawatwithi", "", now, 0, 1.0),
        ("4002", "project_planned_pct_sum", "kok_nong_na", "", now, 0, 300.0),
        ("4002", "project_progress_pct_sum", "kok_nong_na", "", now, 0, 200.0),
        ("4002", "project_active", "kok_nong_na", "", now, 0, 4.0),
        ("4002", "project_planned_pct_sum", "otop_nawatwithi", "", now, 0, 160.0),
        ("4002", "project_progress_pct_sum", "otop_nawatwithi", "", now, 0, 80.0),
        ("4002", "project_active", "otop_nawatwithi", "", now, 0, 2.0),
        ("4003", "project_stale", "other", "", now, 0, 1.0),
        # 5002: an event 2 h before the 10:51 snapshot, Monday 08:51 Bangkok: 2 h 10 min since
        ("5002", "last_event_age_seconds", "grievance", "", now, 2, 2.0 * HOUR),
        ("5003", "last_event_age_seconds", "grievance", "", now, 3, 3.0 * 24 * HOUR),
        ("4003", "project_stale", "kok_nong_na", "", now, 0, 0.0),
        # budget, read at MARCH: 4004 disbursed 50 % of plan in FY2569 (its FY2568 row and
        # its February snapshot do not count); 4005 plans less than the 100 000 THB minimum
        (
            "4004",
            "project_budget_planned_disbursed_thb",
            "kok_nong_na",
            "2569",
            MARCH - HOUR,
            0,
            1e6,
        ),
        ("4004", "project_budget_disbursed_thb", "kok_nong_na", "2569", MARCH - HOUR, 0, 5e5),
        (
            "4004",
            "project_budget_planned_disbursed_thb",
            "kok_nong_na",
            "2568",
            MARCH - HOUR,
            0,
            1e6,
        ),
        ("4004", "project_budget_disbursed_thb", "kok_nong_na", "2568", MARCH - HOUR, 0, 0.0),
        ("4004", "project_budget_disbursed_thb", "otop_nawatwithi", "2569", NOW, 0, 0.0),
        ("4004", "project_budget_planned_disbursed_thb", "otop_nawatwithi", "2569", NOW, 0, 9e5),
        (
            "4005",
            "project_budget_planned_disbursed_thb",
            "kok_nong_na",
            "2569",
            MARCH - HOUR,
            0,
            9e4,
        ),
        ("4005", "project_budget_disbursed_thb", "kok_nong_na", "2569", MARCH - HOUR, 0, 0.0),
    ]


def _insert(table: str, rows: list[tuple[str, str, str, str, int, int, float]]) -> str:
    values = ", ".join(
        f"('{d}', '{d[:2]}', '{m}', '{a}', '{b}', {t}, {p}, {v!r}, {t})"
        for d, m, a, b, t, p, v in rows
    )
    return (
        f"INSERT INTO warroom.{table} (district_code, province_code, metric, dim1, dim2, bucket,"
        f" kafka_partition, value, version) VALUES {values}"
    )


#: what must fire, by hand from the rows above: (rule, district, dimension)
EXPECTED_NOW = {
    # 1001: same-hour baseline 5,6,5,4 -> mean 5, stddev 0.71 -> 7.1; 20 >= 10 -> fires.
    # 1002: 18,20,22,19 -> 19.75 + 3 * 1.08 = 23.0; 20 -> no. 1003: 9 < min_count 10 -> no.
    ("grievance_surge", "1001", ""),
    # 1004 flood: baseline 1,1,1,1 (stddev 0), 6 >= 5 -> fires; its total 6 < 10 -> no
    ("grievance_surge_disaster", "1004", "flood"),
    ("grievance_overdue_backlog", "2001", ""),  # 25 > 20 (12 and a stale 99 do not)
    ("grievance_urgent_unassigned", "3001", ""),  # 5 h > 4 h (3 h does not)
    ("project_behind_plan", "4001", "kok_nong_na"),  # 3 > 2 (otop 1 does not)
    ("project_schedule_gap", "4002", "kok_nong_na"),  # (300-200)/4 = 25 > 20; otop has 2 < 3
    ("project_stale", "4003", "other"),
    # Fri 15:00-16:30 + Mon 08:30-11:01 = 4 h 1 min > 4 office hours
    ("silent_district", "5001", ""),
}
EXPECTED_MARCH = {("budget_disbursement_behind", "4004", "kok_nong_na")}  # 50 % < 80 %


def _expand(sql: str, at: int) -> str:
    # the ClickHouse plugin's expansion of $__toTime (pkg/macros/macros.go: toDateTime(unix))
    return sql.replace("$__toTime", f"toDateTime({at})")


def _firing(rule: dict[str, Any], rows: list[list[Any]]) -> set[tuple[str, str, str]]:
    """Grafana's reduce (last) + threshold on each returned row: string columns are labels."""
    c = next(d for d in rule["data"] if d["refId"] == "C")["model"]["conditions"][0]
    kind, threshold = c["evaluator"]["type"], c["evaluator"]["params"][0]
    out = set()
    for row in rows:
        value = float(row[-1])
        if (value > threshold) if kind == "gt" else (value < threshold):
            dim = row[1] if len(row) == 3 else ""
            out.add((rule["labels"]["rule_id"], row[0], dim))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build the store once; run every exported query and the engine's warm-up queries."""
    doc = yaml.safe_load((GRAFANA_DIR / GRAFANA_FILE).read_text(encoding="utf-8"))
    rules = doc["groups"][0]["rules"]
    queries: dict[str, str] = {}
    for rule in rules:
        sql = next(d for d in rule["data"] if d["refId"] == "A")["model"]["rawSql"]
        queries[f"now:{rule['uid']}"] = _expand(sql, NOW)
        queries[f"march:{rule['uid']}"] = _expand(sql, MARCH)
    engine = Engine(load_rules())
    warm = warmup_queries(engine, NOW * 1000)
    for i, q in enumerate(warm):
        queries[f"warm:{i}"] = q.sql
    setup = [
        _insert("metric_buckets", _bucket_rows()),
        _insert("metric_gauges_latest", _gauge_rows()),
    ]
    results = _run_chdb(tmp_path_factory.mktemp("chdb-alerts"), setup, queries)
    return {"rules": rules, "results": results, "warm": warm}


def test_every_exported_query_runs_and_fires_where_expected(store: dict[str, Any]) -> None:
    fired_now: set[tuple[str, str, str]] = set()
    fired_march: set[tuple[str, str, str]] = set()
    for rule in store["rules"]:
        fired_now |= _firing(rule, store["results"][f"now:{rule['uid']}"])
        fired_march |= _firing(rule, store["results"][f"march:{rule['uid']}"])
    assert fired_now == EXPECTED_NOW
    # in March the February snapshots are older than the 7-day gauge look-back, and the
    # grievance windows are empty; only the quarter-end budget rule speaks
    assert {f for f in fired_march if f[0] != "silent_district"} == EXPECTED_MARCH


def test_query_values(store: dict[str, Any]) -> None:
    res = store["results"]
    by_rule = {r["labels"]["rule_id"]: r["uid"] for r in store["rules"]}

    def rows(rule_id: str, when: str = "now") -> dict[tuple[str, ...], float]:
        return {tuple(r[:-1]): float(r[-1]) for r in res[f"{when}:{by_rule[rule_id]}"]}

    assert rows("grievance_surge") == {("1001",): 20.0}
    assert rows("grievance_overdue_backlog") == {("2001",): 25.0, ("2002",): 12.0}
    assert rows("project_schedule_gap") == {("4002", "kok_nong_na"): 25.0}
    silent = rows("silent_district")
    assert silent[("5001",)] == pytest.approx(4 + 1 / 60)
    assert silent[("5002",)] == pytest.approx(2 + 10 / 60)  # the gauge's event, not the bucket
    assert silent[("5003",)] == pytest.approx(29 / 60)  # the bucket's end, 10:32
    assert silent[("1001",)] == pytest.approx(9 / 60)  # last bucket 10:51-10:52 Bangkok
    assert rows("budget_disbursement_behind", "march") == {("4004", "kok_nong_na"): 50.0}
    assert rows("budget_disbursement_behind") == {}  # February: 58 days before quarter end


def test_engine_warmed_from_the_store_agrees(store: dict[str, Any]) -> None:
    """The in-stream engine, started fresh and warmed with its own queries from the same
    store, sees the same alerts (pending: the rules' `for` has not run yet)."""
    engine = Engine(load_rules())
    fresh = warmup_queries(engine, NOW * 1000)
    assert [q.sql for q in fresh] == [q.sql for q in store["warm"]]
    for i, q in enumerate(fresh):
        apply_warmup(engine, q, store["results"][f"warm:{i}"])
    finish_warmup(engine)
    assert engine.coverage_ms == (NOW - 4 * WEEK - 3 * HOUR) * 1000  # the oldest bucket
    result = engine.tick(NOW * 1000)
    live = {(a.rule_id, a.district_code, a.dimension) for a in engine.alerts()}
    assert live == EXPECTED_NOW
    firing = {(a.rule_id, a.district_code) for a in engine.alerts(AlertState.FIRING)}
    assert firing == {("silent_district", "5001")}  # the only rule with `for: 0s`
    assert [n.kind.value for n in result.notifications] in ([], ["firing"])


# --- the notification policy tree, routed by Alertmanager's own code (amtool) ---------------


def _am_route(node: dict[str, Any]) -> dict[str, Any]:
    """A Grafana provisioning policy node as an Alertmanager route (same routing semantics)."""
    route: dict[str, Any] = {"receiver": node["receiver"]}
    for key in ("group_by", "group_wait", "group_interval", "repeat_interval", "continue"):
        if key in node:
            route[key] = node[key]
    if "object_matchers" in node:
        route["matchers"] = [f'{k}{op}"{v}"' for k, op, v in node["object_matchers"]]
    if "routes" in node:
        route["routes"] = [_am_route(child) for child in node["routes"]]
    return route


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # a district alert: its chief, and the national war room (continue: true)
        (
            {"rule_id": "grievance_surge", "severity": "warning", "district_code": "1001"},
            "warroom-district-chiefs,warroom-war-room",
        ),
        # a critical one also goes to the governors
        (
            {
                "rule_id": "grievance_urgent_unassigned",
                "severity": "critical",
                "district_code": "5001",
            },
            "warroom-district-chiefs,warroom-governors,warroom-war-room",
        ),
        (
            {"rule_id": "silent_district", "severity": "warning", "district_code": "9601"},
            "warroom-district-chiefs,warroom-war-room",
        ),
    ],
)
def test_policies_route_on_district_and_severity(
    tmp_path: Path, labels: dict[str, str], receivers: str
) -> None:
    amtool = shutil.which("amtool") or "/usr/bin/amtool"
    if not Path(amtool).exists():
        pytest.fail("amtool is not installed (Debian package prometheus-alertmanager)")
    doc = yaml.safe_load((GRAFANA_DIR / GRAFANA_FILE).read_text(encoding="utf-8"))
    config = {
        "route": _am_route(doc["policies"][0]),
        "receivers": [{"name": cp["name"]} for cp in doc["contactPoints"]],
    }
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    check = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    args = [f"{k}={v}" for k, v in {"source": "warroom", **labels}.items()]
    routed = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={path}", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert routed.stdout.strip() == receivers, routed.stdout + routed.stderr
    # and something that is not a warroom district alert stays with the war room only
    other = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={path}", "alertname=Other"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert other.stdout.strip() == "warroom-war-room"
