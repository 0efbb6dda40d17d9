"""Rules as data: the shipped file, durations, and the loader's errors (file + rule + field)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alerts.rules import (
    DEFAULT_RULES_PATH,
    Kind,
    RulesError,
    format_duration,
    load_rules,
    parse_duration,
    parse_rules,
)

GOOD_RULE = """
version: 1
rules:
  - id: overdue
    title_th: เรื่องค้างเกินกำหนด
    title_en: Overdue
    kind: threshold
    metric: grievance_overdue
    severity: warning
    for: 15m
    repeat: 2h
    params: {op: above, threshold: 20}
    summary_th: "ค้าง {value:.0f} เรื่อง"
    summary_en: "{value:.0f} overdue"
"""


def _with(**changes: object) -> str:
    """GOOD_RULE with some fields of its one rule replaced (None removes a field)."""
    doc = yaml.safe_load(GOOD_RULE)
    for key, value in changes.items():
        if value is None:
            doc["rules"][0].pop(key, None)
        else:
            doc["rules"][0][key] = value
    return yaml.safe_dump(doc, allow_unicode=True)


def _error(text: str, source: str = "test.yaml") -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(text, source=source)
    return str(info.value)


def test_shipped_rules_cover_the_issue() -> None:
    rules = load_rules()
    raw = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    assert [r.id for r in rules.rules] == [r["id"] for r in raw["rules"]]
    by_metric = {(r.kind, r.metric) for r in rules.enabled}
    # surge over received grievances, with a floor so 2 vs 0 cannot fire
    surges = [r for r in rules.enabled if r.kind is Kind.SURGE]
    assert surges and all(r.metric == "grievance_received" for r in surges)
    assert all(r.params["min_count"] >= 5 for r in surges)
    assert any(not r.per for r in surges) and any(r.per == "dim1" for r in surges)
    assert (Kind.THRESHOLD, "grievance_overdue") in by_metric
    assert (Kind.THRESHOLD, "grievance_urgent_unassigned_max_age_seconds") in by_metric
    assert (Kind.THRESHOLD, "project_behind_plan") in by_metric
    assert (Kind.THRESHOLD, "project_stale") in by_metric
    assert (Kind.DISBURSEMENT, "project_budget_disbursed_thb") in by_metric
    assert (Kind.SILENT, "last_event_age_seconds") in by_metric
    urgent = rules.get("grievance_urgent_unassigned")
    assert urgent.params["threshold"] == 4 * 3600  # "4h" for a metric in seconds
    assert urgent.escalate_after_ms == 30 * 60_000  # critical: the file's default
    assert rules.get("grievance_surge").escalate_after_ms == 0  # warnings never escalate
    silent = rules.get("silent_district")
    assert (silent.params["office_start_min"], silent.params["office_end_min"]) == (510, 990)
    for r in rules.rules:
        assert r.title_th and r.title_en and r.summary_th and r.summary_en


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0s", 0),
        ("30s", 30_000),
        ("15m", 900_000),
        ("2h", 7_200_000),
        ("1h30m", 5_400_000),
        ("1d", 86_400_000),
        ("2w", 1_209_600_000),
        ("1d2h3m4s", 86_400_000 + 7_200_000 + 180_000 + 4_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms
    assert parse_duration(format_duration(ms)) == ms


@pytest.mark.parametrize("bad", ["15", "15min", "", "h", "-5m", "1.5h", "2h15", "m15"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_format_duration_shortest() -> None:
    assert format_duration(5_400_000) == "1h30m"
    assert format_duration(86_400_000) == "1d"
    assert format_duration(0) == "0s"


def test_good_rule_and_defaults() -> None:
    text = GOOD_RULE.replace("version: 1", "version: 1\ndefaults: {repeat: 6h, for: 1m}")
    text = text.replace("    for: 15m\n    repeat: 2h\n", "")
    rule = parse_rules(text).rules[0]
    assert (rule.for_ms, rule.repeat_ms) == (60_000, 6 * 3_600_000)
    assert rule.params == {"op": "above", "threshold": 20.0}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"metric": "grievance_overdew"}, "metric", "unknown metric 'grievance_overdew'"),
        ({"for": "15 minutes"}, "for", "not a duration"),
        ({"repeat": "2hours"}, "repeat", "not a duration"),
        ({"repeat": "0s"}, "repeat", "longer than 0s"),
        ({"params": {"op": "above", "threshold": "20"}}, "params.threshold", "must be a number"),
        ({"params": {"op": "above", "threshold": True}}, "params.threshold", "must be a number"),
        ({"params": {"op": "above"}}, "params.threshold", "is required"),
        ({"params": {"op": "over", "threshold": 2}}, "params.op", "above or below"),
        ({"params": {"threshold": 2, "windw": "1h"}}, "params.windw", "unknown parameter"),
        ({"params": {"threshold": 2, "window": "1h"}}, "params.window", "gauge"),
        ({"kind": "spike"}, "kind", "'spike' is not one of"),
        ({"severity": "high"}, "severity", "'high' is not one of"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"where": {"dim1": ["lands"]}}, "where.dim1", "'lands' is not a grievance_overdue dim1"),
        ({"where": {"dim3": ["x"]}}, "where.dim3", "only dim1 and dim2"),
        ({"per": "category"}, "per", "none, dim1 or dim2"),
        ({"escalate_after": "10m"}, "escalate_after", "only critical rules escalate"),
        ({"summary_th": "ค้าง {valu} เรื่อง"}, "summary_th", "unknown placeholder {valu}"),
        ({"summary_en": "{value:.0q}"}, "summary_en", "bad format spec"),
        ({"title_th": ""}, "title_th", "non-empty string"),
        ({"kind": "surge"}, "metric", "bucket (count) metric"),
        ({"kind": "silent"}, "metric", "reads last_event_age_seconds"),
        ({"enabled": "yes"}, "enabled", "true or false"),
    ],
)
def test_errors_name_file_rule_and_field(
    changes: dict[str, object], field: str, words: str
) -> None:
    message = _error(_with(**changes), source="rules-under-test.yaml")
    assert message.startswith("rules-under-test.yaml: rule 'overdue': ")
    assert f": {field}: " in message
    assert words in message


def test_threshold_type_follows_the_metric_unit() -> None:
    seconds = {"metric": "grievance_urgent_unassigned_max_age_seconds"}
    message = _error(_with(**seconds, params={"op": "above", "threshold": 14400}))
    assert "params.threshold" in message and "give a duration like 4h" in message
    rule = parse_rules(_with(**seconds, params={"op": "above", "threshold": "4h"})).rules[0]
    assert rule.params["threshold"] == 14400.0
    message = _error(_with(params={"op": "above", "threshold": "4h"}))
    assert "must be a number" in message


def test_per_on_a_metric_without_that_dimension() -> None:
    message = _error(
        _with(
            metric="grievance_urgent_unassigned_max_age_seconds",
            per="dim1",
            params={"threshold": "1h"},
        )
    )
    assert "per: grievance_urgent_unassigned_max_age_seconds has no dim1" in message


def test_duplicate_ids() -> None:
    doc = yaml.safe_load(GOOD_RULE)
    doc["rules"].append(dict(doc["rules"][0]))
    message = _error(yaml.safe_dump(doc, allow_unicode=True))
    assert "rule 'overdue'" in message and "duplicate rule id 'overdue'" in message


def test_bad_ids_and_documents() -> None:
    assert "id: 'Bad-Id'" in _error(_with(id="Bad-Id"))
    assert "id: 'x" in _error(_with(id="x" * 40))  # too long for a Grafana uid
    assert "version: must be 1" in _error(GOOD_RULE.replace("version: 1", "version: 2"))
    assert "rules: must be a non-empty list" in _error("version: 1\nrules: []\n")
    assert "yaml:" in _error("version: 1\nrules: [\n")
    assert "unknown top-level key" in _error(GOOD_RULE + "extras: 1\n")
    assert "ops.lag: unknown ops setting" in _error(GOOD_RULE + "ops: {lag: 5}\n")
    assert "ops.dead_letter_ratio" in _error(GOOD_RULE + "ops: {dead_letter_ratio: 5}\n")


def test_surge_and_silent_parameters() -> None:
    surge = {"kind": "surge", "metric": "grievance_received"}
    ok = parse_rules(_with(**surge, params={"window": "1h", "min_weeks": 3})).rules[0]
    assert ok.params["window_ms"] == 3_600_000 and ok.params["min_weeks"] == 3
    assert "params.min_weeks" in _error(
        _with(**surge, params={"baseline_weeks": 2, "min_weeks": 3})
    )
    assert "params.window" in _error(_with(**surge, params={"window": "90s"}))
    assert "params.method" in _error(_with(**surge, params={"method": "median"}))
    assert "params.min_count" in _error(_with(**surge, params={"min_count": 2.5}))
    silent = {"kind": "silent", "metric": "last_event_age_seconds"}
    assert "params.office_start" in _error(
        _with(**silent, params={"office_hours": 4, "office_start": "8:30"})
    )
    assert "params.office_end: must be later" in _error(
        _with(**silent, params={"office_hours": 4, "office_start": "17:00"})
    )


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"nope\.yaml: cannot read"):
        load_rules(tmp_path / "nope.yaml")


def test_rules_check_command(tmp_path: Path) -> None:
    import typer

    from alerts.cli import register

    app = typer.Typer()
    register(app)
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_RULE, encoding="utf-8")
    result = CliRunner().invoke(app, ["alerts", "rules", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "overdue" in result.output and "ok: 1 rules (1 enabled)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(_with(metric="nothing"), encoding="utf-8")
    result = CliRunner().invoke(app, ["alerts", "rules", "check", str(bad)])
    assert result.exit_code == 1
    assert f"invalid: {bad}: rule 'overdue': metric: unknown metric 'nothing'" in result.output
