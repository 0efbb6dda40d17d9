"""Export the rules: Grafana alert-rule provisioning (ClickHouse) and Prometheus ops rules.

Generated files (committed; a test regenerates and compares):
- dashboards/provisioning/alerting/warroom-rules.yaml — Grafana file provisioning, apiVersion 1:
  one rule group with every enabled business rule (ClickHouse query A -> reduce B -> threshold
  C), contact points (settings from Grafana's environment, no secrets in the file), a message
  template in Thai, and the notification policy tree (routes on district_code and severity).
- alerts/prometheus/warroom-ops.rules.yml — Prometheus rules for the pipeline itself.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import yaml

from alerts.export_sql import rule_sql
from alerts.rules import Kind, Rule, RuleSet, format_duration

__all__ = [
    "CLICKHOUSE_UID",
    "DASHBOARD_UIDS",
    "GRAFANA_FILE",
    "PROMETHEUS_FILE",
    "PROMETHEUS_UID",
    "ExportError",
    "export",
    "grafana_provisioning",
    "prometheus_rules",
    "render_grafana",
    "render_prometheus",
]

log = logging.getLogger(__name__)

REPO: Final = Path(__file__).resolve().parents[1]
GRAFANA_FILE: Final = "warroom-rules.yaml"
GRAFANA_DIR: Final = REPO / "dashboards" / "provisioning" / "alerting"
PROMETHEUS_FILE: Final = REPO / "alerts" / "prometheus" / "warroom-ops.rules.yml"
GENERATED_DASHBOARDS: Final = REPO / "dashboards" / "generated"

CLICKHOUSE_UID: Final = "warroom-clickhouse"
CLICKHOUSE_TYPE: Final = "grafana-clickhouse-datasource"
PROMETHEUS_UID: Final = "warroom-prometheus"
DASHBOARD_UIDS: Final = (
    "warroom-national",
    "warroom-district",
    "warroom-grievances",
    "warroom-projects",
    "warroom-quality",
    "warroom-ops",
)
FOLDER: Final = "Warroom"
GROUP: Final = "warroom-districts"
EVAL_INTERVAL: Final = "1m"
ORG_ID: Final = 1
#: Grafana-side environment variables the contact points read (set in Grafana's environment)
ENV_CHIEFS_URL: Final = "WARROOM_GRAFANA_DISTRICT_WEBHOOK_URL"
ENV_GOVERNORS_URL: Final = "WARROOM_GRAFANA_GOVERNOR_WEBHOOK_URL"
ENV_WAR_ROOM_EMAIL: Final = "WARROOM_GRAFANA_WAR_ROOM_EMAIL"

#: the panel an alert links to: metric -> (dashboard uid, panel title in the generated JSON)
_PANELS: Final[dict[str, tuple[str, str]]] = {
    "grievance_received": ("warroom-district", "รับเรื่อง vs ยุติเรื่อง"),
    "grievance_overdue": ("warroom-district", "เกินกำหนด (SLA)"),
    "grievance_urgent_unassigned_max_age_seconds": ("warroom-district", "เร่งด่วนยังไม่มอบหมาย"),
    "project_behind_plan": ("warroom-district", "โครงการที่ล่าช้ากว่าแผน"),
    "project_planned_pct_sum": ("warroom-district", "โครงการที่ล่าช้ากว่าแผน"),
    "project_stale": ("warroom-district", "โครงการล่าช้า/หยุดชะงัก"),
    "project_budget_disbursed_thb": ("warroom-district", "เบิกจ่ายงบประมาณ (ปีงบฯ ปัจจุบัน)"),
    "last_event_age_seconds": ("warroom-quality", "อำเภอที่ไม่ส่งข้อมูล"),
}
_DEFAULT_DASHBOARD: Final = "warroom-district"


class ExportError(RuntimeError):
    """The rules cannot be exported (e.g. a rule's SQL cannot be built)."""


# --- Grafana -------------------------------------------------------------------------------


def _panel_id(dashboard_uid: str, title: str, dashboards_dir: Path) -> int:
    """The id of the panel titled `title`; the first non-row panel if that title is gone."""
    path = dashboards_dir / f"{dashboard_uid}.json"
    try:
        panels = json.loads(path.read_text(encoding="utf-8")).get("panels", [])
    except (OSError, ValueError):
        log.warning("dashboard %s not found at %s: linking panel 1", dashboard_uid, path)
        return 1
    for panel in panels:
        if panel.get("title") == title:
            return int(str(panel["id"]))
    for panel in panels:
        if panel.get("type") != "row":
            log.warning("panel %r not in %s: linking panel %s", title, dashboard_uid, panel["id"])
            return int(str(panel["id"]))
    return 1


def _lookback_s(rule: Rule) -> int:
    p = rule.params
    if rule.kind is Kind.SURGE:
        return int(p["baseline_weeks"] * 7 * 86400 + p["window_ms"] // 1000)
    if "window_ms" in p:
        return int(p["window_ms"] // 1000)
    return 86400


def _threshold(rule: Rule) -> tuple[str, float]:
    """Grafana's threshold evaluator for the query's `value` column."""
    p = rule.params
    if rule.kind is Kind.SURGE:
        return "gt", 0.0  # the SQL returns only districts above their own baseline
    if rule.kind is Kind.THRESHOLD:
        return ("gt" if p["op"] == "above" else "lt"), float(p["threshold"])
    if rule.kind is Kind.MEAN_GAP:
        return "gt", float(p["points"])
    if rule.kind is Kind.DISBURSEMENT:
        return "lt", float(p["min_ratio_pct"])
    return "gt", float(p["office_hours"])


def _grafana_rule(rule: Rule, database: str, dashboards_dir: Path) -> dict[str, Any]:
    dashboard, title = _PANELS.get(rule.metric, (_DEFAULT_DASHBOARD, ""))
    panel = _panel_id(dashboard, title, dashboards_dir)
    evaluator, threshold = _threshold(rule)
    expr = {"type": "__expr__", "uid": "__expr__"}
    dim_th = " ({{ $labels.dimension }})" if rule.per else ""
    return {
        "uid": f"warroom-{rule.id.replace('_', '-')}",
        "title": f"{rule.title_th} ({rule.title_en})",
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "queryType": "",
                "relativeTimeRange": {"from": _lookback_s(rule), "to": 0},
                "datasourceUid": CLICKHOUSE_UID,
                "model": {
                    "datasource": {"type": CLICKHOUSE_TYPE, "uid": CLICKHOUSE_UID},
                    "editorType": "sql",
                    "format": 1,  # table: string columns become labels, `value` is the number
                    "queryType": "table",
                    "rawSql": rule_sql(rule, database),
                    "refId": "A",
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                },
            },
            {
                "refId": "B",
                "queryType": "",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "datasource": expr,
                    "expression": "A",
                    "reducer": "last",
                    "settings": {"mode": "dropNN"},
                    "refId": "B",
                    "type": "reduce",
                },
            },
            {
                "refId": "C",
                "queryType": "",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "datasource": expr,
                    "expression": "B",
                    "conditions": [
                        {
                            "evaluator": {"params": [threshold], "type": evaluator},
                            "operator": {"type": "and"},
                            "query": {"params": ["C"]},
                            "reducer": {"params": [], "type": "last"},
                            "type": "query",
                        }
                    ],
                    "refId": "C",
                    "type": "threshold",
                },
            },
        ],
        "dashboardUid": dashboard,
        "panelId": panel,
        "noDataState": "OK",  # no row = no district breaches the rule
        "execErrState": "Error",
        "for": format_duration(rule.for_ms),
        "annotations": {
            "__dashboardUid__": dashboard,
            "__panelId__": str(panel),
            "summary": f"{rule.title_th}{dim_th}: อำเภอ/เขต {{{{ $labels.district_code }}}}"
            f" ค่า {{{{ humanize $values.B.Value }}}}",
            "description": f"{rule.title_en}{dim_th}: district {{{{ $labels.district_code }}}},"
            f" value {{{{ humanize $values.B.Value }}}} (rule {rule.id})",
            "district_dashboard": "/d/warroom-district?var-district={{ $labels.district_code }}",
            "rule_id": rule.id,
        },
        "labels": {
            "severity": rule.severity.value,
            "rule_id": rule.id,
            "source": "warroom",
        },
        "isPaused": False,
    }


_TEMPLATE = """\
{{ define "warroom.th.title" }}[warroom] {{ if eq .Status "firing" }}แจ้งเตือน{{ else }}\
คลี่คลายแล้ว{{ end }} อำเภอ/เขต {{ .CommonLabels.district_code }} ({{ len .Alerts }} รายการ)\
{{ end }}
{{ define "warroom.th.message" }}{{ range .Alerts }}\
{{ if eq .Status "firing" }}🚨{{ else }}✅{{ end }} {{ .Annotations.summary }}
ความรุนแรง: {{ .Labels.severity }} · กฎ: {{ .Labels.rule_id }}
เริ่ม: {{ .StartsAt.Format "2006-01-02 15:04 MST" }}
แดชบอร์ดอำเภอ: {{ .Annotations.district_dashboard }}
{{ end }}{{ end }}
"""


def _contact_points() -> list[dict[str, Any]]:
    title = '{{ template "warroom.th.title" . }}'
    message = '{{ template "warroom.th.message" . }}'
    return [
        {
            "orgId": ORG_ID,
            "name": "warroom-district-chiefs",
            "receivers": [
                {
                    "uid": "warroom-district-chiefs",
                    "type": "webhook",
                    "settings": {
                        # a receiver that knows the directory (warroom's notifier, or any HTTP
                        # service) resolves the chief from the district_code label
                        "url": f"${ENV_CHIEFS_URL}",
                        "httpMethod": "POST",
                        "title": title,
                        "message": message,
                    },
                    "disableResolveMessage": False,
                }
            ],
        },
        {
            "orgId": ORG_ID,
            "name": "warroom-governors",
            "receivers": [
                {
                    "uid": "warroom-governors",
                    "type": "webhook",
                    "settings": {
                        "url": f"${ENV_GOVERNORS_URL}",
                        "httpMethod": "POST",
                        "title": title,
                        "message": message,
                    },
                    "disableResolveMessage": False,
                }
            ],
        },
        {
            "orgId": ORG_ID,
            "name": "warroom-war-room",
            "receivers": [
                {
                    "uid": "warroom-war-room",
                    "type": "email",
                    "settings": {
                        "addresses": f"${ENV_WAR_ROOM_EMAIL}",
                        "singleEmail": True,
                        "subject": title,
                        "message": message,
                    },
                    "disableResolveMessage": False,
                }
            ],
        },
    ]


def _policies(rules: RuleSet) -> list[dict[str, Any]]:
    group_wait = format_duration(max(rules.group_window_ms // 1000 * 1000, 1000))
    # one child route per repeat interval: a district's alerts with the same interval share a
    # message, and no rule repeats sooner than its own interval (a route per rule would split
    # every district's message per rule)
    by_repeat: dict[int, list[str]] = {}
    for rule in rules.enabled:
        by_repeat.setdefault(rule.repeat_ms, []).append(rule.id)
    per_repeat = [
        {
            "receiver": "warroom-district-chiefs",
            "object_matchers": [["rule_id", "=~", "|".join(ids)]],
            "repeat_interval": format_duration(repeat_ms),
        }
        for repeat_ms, ids in sorted(by_repeat.items())
    ]
    return [
        {
            "orgId": ORG_ID,
            # alerts without a district (none today) and everything the routes do not stop
            "receiver": "warroom-war-room",
            "group_by": ["grafana_folder", "alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    # every district alert to the district's chief, one message per district
                    "receiver": "warroom-district-chiefs",
                    "object_matchers": [
                        ["source", "=", "warroom"],
                        ["district_code", "=~", "[0-9]{4}"],
                    ],
                    "group_by": ["district_code"],
                    "group_wait": group_wait,
                    "group_interval": "5m",
                    "repeat_interval": "4h",
                    "continue": True,
                    "routes": per_repeat,
                },
                {
                    # critical alerts also go to the governor at once: Grafana OSS alerting has
                    # no "unacknowledged for N minutes" escalation (the warroom engine has)
                    "receiver": "warroom-governors",
                    "object_matchers": [
                        ["source", "=", "warroom"],
                        ["severity", "=", "critical"],
                        ["district_code", "=~", "[0-9]{4}"],
                    ],
                    "group_by": ["district_code"],
                    "group_wait": group_wait,
                    "group_interval": "5m",
                    "repeat_interval": "2h",
                    "continue": True,
                },
                {
                    # and the national war room sees every district alert, grouped per rule
                    "receiver": "warroom-war-room",
                    "object_matchers": [["source", "=", "warroom"]],
                    "group_by": ["rule_id", "severity"],
                    "group_wait": "1m",
                    "group_interval": "10m",
                    "repeat_interval": "12h",
                },
            ],
        }
    ]


def grafana_provisioning(
    rules: RuleSet, database: str = "warroom", dashboards_dir: Path = GENERATED_DASHBOARDS
) -> dict[str, Any]:
    """The whole alerting provisioning document (rule group, contact points, policies)."""
    try:
        grafana_rules = [_grafana_rule(r, database, dashboards_dir) for r in rules.enabled]
    except (KeyError, ValueError) as exc:
        raise ExportError(f"cannot export the rules of {rules.source}: {exc}") from exc
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": ORG_ID,
                "name": GROUP,
                "folder": FOLDER,
                "interval": EVAL_INTERVAL,
                "rules": grafana_rules,
            }
        ],
        "templates": [{"orgId": ORG_ID, "name": "warroom.th", "template": _TEMPLATE}],
        "contactPoints": _contact_points(),
        "policies": _policies(rules),
    }


# --- Prometheus ----------------------------------------------------------------------------


def prometheus_rules(rules: RuleSet) -> dict[str, Any]:
    """Ops rules over the worker's and producers' /metrics (names from the metrics issue)."""
    o = rules.ops
    job = o.job_regex.replace("\\", "\\\\").replace('"', '\\"')
    consumed = "sum(rate(warroom_events_consumed_total[5m]))"
    consumed_1h = "sum(rate(warroom_events_consumed_total[5m] offset 1h))"
    return {
        "groups": [
            {
                "name": "warroom-ops",
                "rules": [
                    {
                        "alert": "WarroomConsumerLagHigh",
                        "expr": "sum by (topic) (warroom_consumer_lag)"
                        f" > {o.consumer_lag_messages:g}",
                        "for": format_duration(o.consumer_lag_for_ms),
                        "labels": {"severity": "warning", "team": "warroom-ops"},
                        "annotations": {
                            "summary": "Consumer lag high on {{ $labels.topic }}",
                            "summary_th": "ข้อความค้างในคิว {{ $labels.topic }} สูง",
                            "description": "{{ $value | humanize }} messages not yet consumed "
                            f"(threshold {o.consumer_lag_messages:g}).",
                            "description_th": "มีข้อความรอประมวลผล {{ $value | humanize }} ข้อความ "
                            f"(เกณฑ์ {o.consumer_lag_messages:g})",
                        },
                    },
                    {
                        "alert": "WarroomThroughputDrop",
                        "expr": (
                            f"{consumed} < {o.throughput_drop_ratio:g} * {consumed_1h}\n"
                            f"and {consumed_1h} >= {o.throughput_min_rate:g}\n"
                            "and (sum(rate(warroom_producer_events_sent_total[5m])) > 0"
                            " or sum(deriv(warroom_consumer_lag[10m])) > 0)"
                        ),
                        "for": format_duration(o.throughput_for_ms),
                        "labels": {"severity": "warning", "team": "warroom-ops"},
                        "annotations": {
                            "summary": "Event throughput dropped while producers still send",
                            "summary_th": "อัตราประมวลผลเหตุการณ์ลดลงมาก ขณะที่ยังมีข้อมูลส่งเข้ามา",
                            "description": "Consumed {{ $value | humanize }} events/s, less than "
                            f"{o.throughput_drop_ratio:g} x the rate one hour ago.",
                            "description_th": "ประมวลผล {{ $value | humanize }} เหตุการณ์/วินาที "
                            f"ต่ำกว่า {o.throughput_drop_ratio:g} เท่าของหนึ่งชั่วโมงก่อน",
                        },
                    },
                    {
                        "alert": "WarroomDeadLetterRateHigh",
                        "expr": (
                            "sum(rate(warroom_events_rejected_total[5m]))\n"
                            f"/ {consumed} > {o.dead_letter_ratio:g}"
                        ),
                        "for": format_duration(o.dead_letter_for_ms),
                        "labels": {"severity": "warning", "team": "warroom-ops"},
                        "annotations": {
                            "summary": "Many events rejected to the dead-letter topic",
                            "summary_th": "เหตุการณ์ถูกปฏิเสธ (dead letter) ในสัดส่วนสูง",
                            "description": "{{ $value | humanizePercentage }} of consumed events "
                            f"were rejected (threshold {o.dead_letter_ratio:.0%}).",
                            "description_th": "ถูกปฏิเสธ {{ $value | humanizePercentage }} "
                            f"ของเหตุการณ์ทั้งหมด (เกณฑ์ {o.dead_letter_ratio:.0%})",
                        },
                    },
                    {
                        "alert": "WarroomSinkWriteErrors",
                        "expr": "sum by (backend) "
                        "(increase(warroom_sink_write_errors_total[5m])) > 0",
                        "for": format_duration(o.sink_errors_for_ms),
                        "labels": {"severity": "critical", "team": "warroom-ops"},
                        "annotations": {
                            "summary": "ClickHouse writes failing ({{ $labels.backend }})",
                            "summary_th": "เขียนข้อมูลลง ClickHouse ไม่สำเร็จ ({{ $labels.backend }})",
                            "description": "{{ $value | humanize }} write errors in 5 minutes.",
                            "description_th": "เขียนไม่สำเร็จ {{ $value | humanize }} ครั้งใน 5 นาที",
                        },
                    },
                    {
                        "alert": "WarroomWorkerDown",
                        "expr": f'up{{job=~"{job}"}} == 0',
                        "for": format_duration(o.worker_down_for_ms),
                        "labels": {"severity": "critical", "team": "warroom-ops"},
                        "annotations": {
                            "summary": "Warroom target {{ $labels.instance }} is down",
                            "summary_th": "ระบบ warroom ที่ {{ $labels.instance }} หยุดทำงาน",
                            "description": "Prometheus cannot scrape {{ $labels.job }} at "
                            "{{ $labels.instance }}.",
                            "description_th": "Prometheus เก็บค่าจาก {{ $labels.job }} ที่ "
                            "{{ $labels.instance }} ไม่ได้",
                        },
                    },
                    {
                        "alert": "WarroomNotificationsFailing",
                        "expr": (
                            "sum by (channel) "
                            "(increase(warroom_notifications_failed_total[10m])) > 0"
                        ),
                        "for": format_duration(o.notify_failures_for_ms),
                        "labels": {"severity": "warning", "team": "warroom-ops"},
                        "annotations": {
                            "summary": "Alert notifications failing on {{ $labels.channel }}",
                            "summary_th": "ส่งการแจ้งเตือนทาง {{ $labels.channel }} ไม่สำเร็จ",
                            "description": "{{ $value | humanize }} failed deliveries in 10 "
                            "minutes; they stay in the outbox and are retried, except those "
                            "refused for good (WarroomNotificationsGivenUp).",
                            "description_th": "ส่งไม่สำเร็จ {{ $value | humanize }} ครั้งใน 10 นาที "
                            "(ยังอยู่ใน outbox และจะส่งซ้ำ ยกเว้นที่ผู้รับปฏิเสธถาวร)",
                        },
                    },
                    {
                        "alert": "WarroomNotificationsGivenUp",
                        "expr": (
                            "sum by (channel, reason) "
                            "(increase(warroom_notifications_given_up_total[1h])) > 0"
                        ),
                        "for": "0s",  # each one is final: say so at once
                        "labels": {"severity": "warning", "team": "warroom-ops"},
                        "annotations": {
                            "summary": "Alert notifications failed for good on "
                            "{{ $labels.channel }}",
                            "summary_th": "การแจ้งเตือนทาง {{ $labels.channel }} ส่งไม่ถึงผู้รับ "
                            "(ยกเลิกการส่งแล้ว)",
                            "description": "Notifications of the last hour will not be retried "
                            "({{ $labels.reason }}): see `warroom alerts outbox --state failed` "
                            "and fix the recipient in the directory.",
                            "description_th": "มีการแจ้งเตือนใน 1 ชั่วโมงที่ผ่านมาที่จะไม่ส่งซ้ำ "
                            "({{ $labels.reason }}): ดูรายการด้วย warroom alerts outbox --state "
                            "failed แล้วแก้ไขผู้รับในสมุดรายชื่อ",
                        },
                    },
                ],
            }
        ]
    }


# --- files ---------------------------------------------------------------------------------

_HEADER = (
    "# Generated by `warroom alerts export` from {source}. Do not edit: change the rules\n"
    "# and regenerate (a test fails when this file is stale).\n"
)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &id001 anchors: every rule stands on its own for readers


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def _dump(doc: dict[str, Any], source: str) -> str:
    body = yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return _HEADER.format(source=source) + body


def _source_name(rules: RuleSet) -> str:
    try:
        return str(Path(rules.source).resolve().relative_to(REPO))
    except ValueError:
        return Path(rules.source).name


def render_grafana(rules: RuleSet, dashboards_dir: Path = GENERATED_DASHBOARDS) -> str:
    return _dump(grafana_provisioning(rules, dashboards_dir=dashboards_dir), _source_name(rules))


def render_prometheus(rules: RuleSet) -> str:
    return _dump(prometheus_rules(rules), _source_name(rules))


def export(
    rules: RuleSet,
    grafana_dir: Path | None = GRAFANA_DIR,
    prometheus_file: Path | None = PROMETHEUS_FILE,
) -> list[Path]:
    """Write the files; returns the paths written."""
    written: list[Path] = []
    if grafana_dir is not None:
        path = grafana_dir / GRAFANA_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_grafana(rules), encoding="utf-8")
        written.append(path)
    if prometheus_file is not None:
        prometheus_file.parent.mkdir(parents=True, exist_ok=True)
        prometheus_file.write_text(render_prometheus(rules), encoding="utf-8")
        written.append(prometheus_file)
    return written
