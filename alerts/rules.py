"""Alert rules as data: the catalog of readable metrics, the rule model, and a validating loader."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import yaml

from alerts.model import Severity
from streams.contract import (
    CATEGORIES,
    CHANNELS,
    OUTCOME_TYPES,
    PRIORITIES,
    PROGRAMS,
    PROJECT_STATUSES,
)
from streams.labels import CATEGORY_TH, PROGRAM_TH

__all__ = [
    "BUCKET_METRICS",
    "DEFAULT_RULES_PATH",
    "DIMENSION_TH",
    "GAUGE_METRICS",
    "Kind",
    "OpsThresholds",
    "Rule",
    "RuleSet",
    "RulesError",
    "format_duration",
    "load_rules",
    "parse_duration",
    "parse_rules",
]

DEFAULT_RULES_PATH: Final = Path(__file__).with_name("rules.yaml")

_SOURCES = ("grievance", "project")
_LE = ("3600", "14400", "86400", "259200", "604800", "1296000", "2592000", "+Inf")
_SLA = ("met", "missed", "unknown")
#: a fiscal year as text, e.g. '2569' (B.E.)
_FY = re.compile(r"^25\d\d$")

#: metric -> (dim1 values, dim2 values); None = free text; () = always ''
_DimSpec = tuple[tuple[str, ...] | None, tuple[str, ...] | None]
BUCKET_METRICS: Final[Mapping[str, _DimSpec]] = {
    "grievance_received": (CATEGORIES, CHANNELS),
    "grievance_event": (OUTCOME_TYPES, CATEGORIES),
    "grievance_resolved_seconds_sum": (CATEGORIES, ()),
    "grievance_resolved_seconds_count": (CATEGORIES, ()),
    "grievance_resolved_seconds_bucket": (CATEGORIES, _LE),
    "grievance_resolved_sla": (CATEGORIES, _SLA),
    "project_report": (PROGRAMS, PROJECT_STATUSES),
}
GAUGE_METRICS: Final[Mapping[str, _DimSpec]] = {
    "grievance_open": (CATEGORIES, PRIORITIES),
    "grievance_overdue": (CATEGORIES, PRIORITIES),
    "grievance_urgent_unassigned": (CATEGORIES, ()),
    "grievance_urgent_unassigned_max_age_seconds": ((), ()),
    "project_count": (PROGRAMS, PROJECT_STATUSES),
    "project_active": (PROGRAMS, ()),
    "project_progress_pct_sum": (PROGRAMS, ()),
    "project_planned_pct_sum": (PROGRAMS, ()),
    "project_behind_plan": (PROGRAMS, ()),
    "project_stale": (PROGRAMS, ()),
    "project_budget_allocated_thb": (PROGRAMS, None),
    "project_budget_obligated_thb": (PROGRAMS, None),
    "project_budget_disbursed_thb": (PROGRAMS, None),
    "project_budget_planned_disbursed_thb": (PROGRAMS, None),
    "last_event_age_seconds": (_SOURCES, ()),
}


#: Thai names of the dimension values alerts mention (categories, programs, streams)
DIMENSION_TH: Final[Mapping[str, str]] = {
    **CATEGORY_TH,
    **PROGRAM_TH,
    "grievance": "เรื่องร้องเรียน",
    "project": "โครงการ",
}


class RulesError(ValueError):
    """A rules file is invalid; the message names the file, the rule id and the field."""


class Kind(StrEnum):
    SURGE = "surge"  # windowed count well above the district's own same-hour-of-week baseline
    THRESHOLD = "threshold"  # a gauge (or a windowed bucket sum) above / below a fixed value
    MEAN_GAP = "mean_gap"  # mean schedule gap (planned - progress) over active projects
    DISBURSEMENT = "disbursement"  # disbursed vs planned-disbursed near fiscal-quarter ends
    SILENT = "silent"  # no event at all for N office hours


#: the per-district gauge of seconds since the last event of each stream (the case or project
#: book's, so it counts every applied event: status changes without a bucket, too-late ones);
#: silence reads it next to the minute buckets, live, at warm-up and in the exported rule
LAST_EVENT_GAUGE: Final = "last_event_age_seconds"

#: the metric each kind must read (None = any metric of the right table)
_KIND_METRIC: Final[Mapping[Kind, str | None]] = {
    Kind.SURGE: None,
    Kind.THRESHOLD: None,
    Kind.MEAN_GAP: "project_planned_pct_sum",
    Kind.DISBURSEMENT: "project_budget_disbursed_thb",
    Kind.SILENT: LAST_EVENT_GAUGE,
}
#: names a summary template may use, per kind (besides the common ones)
_COMMON_FIELDS = frozenset({"value", "threshold", "dimension", "dimension_th"})
_TEXT_FIELDS = frozenset({"dimension", "dimension_th", "last_event"})
_KIND_FIELDS: Final[Mapping[Kind, frozenset[str]]] = {
    Kind.SURGE: frozenset({"baseline", "weeks", "window_hours"}),
    Kind.THRESHOLD: frozenset({"value_hours", "threshold_hours"}),
    Kind.MEAN_GAP: frozenset({"active"}),
    Kind.DISBURSEMENT: frozenset({"disbursed_thb", "planned_thb", "days_left"}),
    Kind.SILENT: frozenset({"last_event"}),
}

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS_MS = (604_800_000, 86_400_000, 3_600_000, 60_000, 1_000)
#: short enough that the Grafana uid "warroom-<id>" fits Grafana's 40 characters
_ID = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_duration(text: str) -> int:
    """'15m', '2h', '1h30m', '7d', '2w', '0s' -> milliseconds. Raises ValueError otherwise."""
    if not isinstance(text, str) or not text or (m := _DURATION.match(text.strip())) is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h, 1h30m, 7d or 2w")
    return sum(int(n) * unit for n, unit in zip(m.groups(), _UNITS_MS, strict=True) if n)


def format_duration(ms: int) -> str:
    """Milliseconds -> the shortest Prometheus/Grafana duration text ('1h30m', '0s')."""
    if ms % 1000:
        raise ValueError(f"{ms} ms is not a whole number of seconds")
    out = []
    for suffix, unit in zip("wdhms", _UNITS_MS, strict=True):
        n, ms = divmod(ms, unit)
        if n:
            out.append(f"{n}{suffix}")
    return "".join(out) or "0s"


@dataclass(frozen=True)
class Rule:
    """One business rule. Durations are milliseconds; `params` are validated per kind."""

    id: str
    title_th: str
    title_en: str
    kind: Kind
    metric: str
    severity: Severity
    for_ms: int
    repeat_ms: int
    escalate_after_ms: int  # 0 = never (only critical rules escalate)
    keep_firing_for_ms: int
    per: str  # '' (one alert per district) | 'dim1' | 'dim2'
    where: Mapping[str, tuple[str, ...]]  # {'dim1': (...), 'dim2': (...)}: only these values
    params: Mapping[str, Any]
    summary_th: str
    summary_en: str
    enabled: bool = True

    @property
    def is_gauge(self) -> bool:
        return self.metric in GAUGE_METRICS

    def param(self, name: str) -> Any:
        return self.params[name]

    def matches(self, dim1: str, dim2: str) -> bool:
        """Whether a (dim1, dim2) key of the rule's metric passes its `where` filter."""
        w1 = self.where.get("dim1")
        w2 = self.where.get("dim2")
        return (w1 is None or dim1 in w1) and (w2 is None or dim2 in w2)

    def dimension_of(self, dim1: str, dim2: str) -> str:
        return dim1 if self.per == "dim1" else dim2 if self.per == "dim2" else ""


@dataclass(frozen=True)
class OpsThresholds:
    """Thresholds of the Prometheus ops rules (exported, not evaluated by the engine)."""

    consumer_lag_messages: float = 10_000
    consumer_lag_for_ms: int = 300_000
    throughput_drop_ratio: float = 0.5
    throughput_min_rate: float = 1.0
    throughput_for_ms: int = 600_000
    dead_letter_ratio: float = 0.05
    dead_letter_for_ms: int = 600_000
    sink_errors_for_ms: int = 120_000
    worker_down_for_ms: int = 60_000
    notify_failures_for_ms: int = 600_000
    job_regex: str = "warroom.*"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    group_window_ms: int = 0  # FIRING alerts of one district wait this long to share a message
    ops: OpsThresholds = field(default_factory=OpsThresholds)
    source: str = "<memory>"

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    def get(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


# --- loading ---------------------------------------------------------------------------------

_RULE_KEYS = frozenset(
    {
        "id",
        "title_th",
        "title_en",
        "kind",
        "metric",
        "severity",
        "for",
        "repeat",
        "escalate_after",
        "keep_firing_for",
        "per",
        "where",
        "params",
        "summary_th",
        "summary_en",
        "enabled",
    }
)
_DEFAULT_KEYS = frozenset({"for", "repeat", "escalate_after", "keep_firing_for"})


class _Ctx:
    """Where an error is: file, rule id, field."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rule = ""

    def error(self, fieldname: str, message: str) -> RulesError:
        where = f"{self.source}: rule {self.rule!r}" if self.rule else self.source
        return RulesError(f"{where}: {fieldname}: {message}")


def load_rules(path: Path | str | None = None) -> RuleSet:
    """Read and validate a rules file (default: the rules.yaml shipped in this package)."""
    p = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    return parse_rules(text, source=str(p))


def parse_rules(text: str, source: str = "<string>") -> RuleSet:
    ctx = _Ctx(source)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ctx.error("yaml", str(exc).replace("\n", " ")) from exc
    if not isinstance(doc, dict):
        raise ctx.error("document", "must be a mapping with 'version' and 'rules'")
    unknown = set(doc) - {"version", "defaults", "evaluation", "ops", "rules"}
    if unknown:
        raise ctx.error(", ".join(sorted(unknown)), "unknown top-level key")
    if doc.get("version") != 1:
        raise ctx.error("version", f"must be 1, got {doc.get('version')!r}")
    defaults = _mapping(ctx, doc.get("defaults") or {}, "defaults")
    if bad := set(defaults) - _DEFAULT_KEYS:
        raise ctx.error("defaults", f"unknown key(s) {sorted(bad)}")
    evaluation = _mapping(ctx, doc.get("evaluation") or {}, "evaluation")
    if bad := set(evaluation) - {"group_window"}:
        raise ctx.error("evaluation", f"unknown key(s) {sorted(bad)}")
    group_window = _duration(ctx, evaluation.get("group_window", "0s"), "evaluation.group_window")
    ops = _ops(ctx, doc.get("ops") or {})
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ctx.error("rules", "must be a non-empty list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        ctx.rule = f"#{i + 1}"
        rule = _rule(ctx, raw, defaults)
        if rule.id in seen:
            raise ctx.error("id", f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        rules.append(rule)
    return RuleSet(tuple(rules), group_window_ms=group_window, ops=ops, source=source)


def _mapping(ctx: _Ctx, value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.error(name, f"must be a mapping, got {type(value).__name__}")
    return value


def _str(ctx: _Ctx, raw: Mapping[str, Any], name: str, required: bool = True) -> str:
    value = raw.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(name, "must be a non-empty string")
    return value.strip()


def _duration(ctx: _Ctx, value: Any, name: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ctx.error(name, str(exc)) from None


def _number(
    ctx: _Ctx, value: Any, name: str, lo: float | None = None, hi: float | None = None
) -> float:
    # bool is an int in Python; a threshold of `true` is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.error(name, f"must be a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ctx.error(name, f"{value} is outside {bounds}")
    return float(value)


def _int(ctx: _Ctx, value: Any, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(name, f"must be a whole number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ctx.error(name, f"{value} is outside [{lo}, {hi if hi is not None else 'inf'}]")
    return value


def _ops(ctx: _Ctx, raw: Any) -> OpsThresholds:
    raw = _mapping(ctx, raw, "ops")
    fields = set(OpsThresholds.__dataclass_fields__)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"ops.{key}"
        if key == "job_regex":
            values[key] = _str(ctx, raw, key)
        elif key.endswith("_for") and f"{key}_ms" in fields:
            values[f"{key}_ms"] = _duration(ctx, value, name)
        elif key.endswith("_ratio") and key in fields:
            values[key] = _number(ctx, value, name, 0.0, 1.0)
        elif key in fields and not key.endswith("_ms"):
            values[key] = _number(ctx, value, name, 0.0)
        else:
            raise ctx.error(name, f"unknown ops setting; known: {sorted(fields)}")
    return OpsThresholds(**values)


def _rule(ctx: _Ctx, raw: Any, defaults: Mapping[str, Any]) -> Rule:
    raw = _mapping(ctx, raw, "rule")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise ctx.error("id", f"{rule_id!r} must match {_ID.pattern} (lowercase, digits, _)")
    ctx.rule = rule_id
    if bad := set(raw) - _RULE_KEYS:
        raise ctx.error(", ".join(sorted(bad)), "unknown field")
    try:
        kind = Kind(raw.get("kind"))
    except ValueError:
        raise ctx.error(
            "kind", f"{raw.get('kind')!r} is not one of {[k.value for k in Kind]}"
        ) from None
    try:
        severity = Severity(raw.get("severity"))
    except ValueError:
        raise ctx.error(
            "severity", f"{raw.get('severity')!r} is not one of {[s.value for s in Severity]}"
        ) from None
    metric = _metric(ctx, raw.get("metric"), kind)

    def dur(name: str, fallback: str) -> int:
        return _duration(ctx, raw.get(name, defaults.get(name, fallback)), name)

    for_ms = dur("for", "5m")
    repeat_ms = dur("repeat", "4h")
    if repeat_ms <= 0:
        raise ctx.error("repeat", "must be longer than 0s")
    escalate_ms = dur("escalate_after", "30m") if severity is Severity.CRITICAL else 0
    if "escalate_after" in raw and severity is not Severity.CRITICAL:
        raise ctx.error("escalate_after", "only critical rules escalate")
    keep_ms = dur("keep_firing_for", "0s")
    per = raw.get("per", "none")
    if per not in ("none", "dim1", "dim2"):
        raise ctx.error("per", f"{per!r} must be none, dim1 or dim2")
    per = "" if per == "none" else per
    spec = BUCKET_METRICS[metric] if metric in BUCKET_METRICS else GAUGE_METRICS[metric]
    if per and spec[0 if per == "dim1" else 1] == ():
        raise ctx.error("per", f"{metric} has no {per} (it is always '')")
    where = _where(ctx, raw.get("where") or {}, metric, spec)
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ctx.error("enabled", "must be true or false")
    params = _params(ctx, kind, metric, _mapping(ctx, raw.get("params") or {}, "params"))
    summary_th = _str(ctx, raw, "summary_th")
    summary_en = _str(ctx, raw, "summary_en")
    for name, template in (("summary_th", summary_th), ("summary_en", summary_en)):
        _check_template(ctx, name, template, _COMMON_FIELDS | _KIND_FIELDS[kind])
    return Rule(
        id=rule_id,
        title_th=_str(ctx, raw, "title_th"),
        title_en=_str(ctx, raw, "title_en"),
        kind=kind,
        metric=metric,
        severity=severity,
        for_ms=for_ms,
        repeat_ms=repeat_ms,
        escalate_after_ms=escalate_ms,
        keep_firing_for_ms=keep_ms,
        per=per,
        where=where,
        params=params,
        summary_th=summary_th,
        summary_en=summary_en,
        enabled=enabled,
    )


def _metric(ctx: _Ctx, metric: Any, kind: Kind) -> str:
    if not isinstance(metric, str):
        raise ctx.error("metric", "must be a metric name")
    if metric not in BUCKET_METRICS and metric not in GAUGE_METRICS:
        known = sorted(BUCKET_METRICS) + sorted(GAUGE_METRICS)
        raise ctx.error("metric", f"unknown metric {metric!r}; known: {', '.join(known)}")
    required = _KIND_METRIC[kind]
    if required is not None and metric != required:
        raise ctx.error("metric", f"a {kind} rule reads {required}, not {metric}")
    if kind is Kind.SURGE and metric not in BUCKET_METRICS:
        raise ctx.error("metric", f"a surge rule needs a bucket (count) metric, not {metric}")
    return metric


def _where(ctx: _Ctx, raw: Any, metric: str, spec: _DimSpec) -> Mapping[str, tuple[str, ...]]:
    raw = _mapping(ctx, raw, "where")
    out: dict[str, tuple[str, ...]] = {}
    for key, values in raw.items():
        if key not in ("dim1", "dim2"):
            raise ctx.error(f"where.{key}", "only dim1 and dim2 can be filtered")
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values:
            raise ctx.error(f"where.{key}", "must be a value or a non-empty list of values")
        allowed = spec[0 if key == "dim1" else 1]
        for v in values:
            if not isinstance(v, str):
                raise ctx.error(f"where.{key}", f"{v!r} must be text")
            if allowed is not None and v not in allowed:
                choices = ", ".join(allowed) or "'' only"
                raise ctx.error(f"where.{key}", f"{v!r} is not a {metric} {key}: {choices}")
        out[key] = tuple(values)
    return out


def _check_template(ctx: _Ctx, name: str, template: str, allowed: frozenset[str]) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ctx.error(name, f"bad template: {exc}") from None
    for _, fieldname, spec, _ in parsed:
        if fieldname is None:
            continue
        if fieldname not in allowed:
            raise ctx.error(name, f"unknown placeholder {{{fieldname}}}; use {sorted(allowed)}")
        sample: object = "" if fieldname in _TEXT_FIELDS else 1.5
        try:
            format(sample, spec or "")
        except ValueError as exc:
            raise ctx.error(name, f"bad format spec for {{{fieldname}}}: {exc}") from None


# --- per-kind parameters -------------------------------------------------------------------


def _params(ctx: _Ctx, kind: Kind, metric: str, raw: dict[str, Any]) -> Mapping[str, Any]:
    p = {f"params.{k}": v for k, v in raw.items()}

    def take(name: str, default: Any = None) -> Any:
        key = f"params.{name}"
        if key not in p:
            if default is None:
                raise ctx.error(key, "is required")
            return default
        return p.pop(key)

    out: dict[str, Any] = {}
    if kind is Kind.SURGE:
        out["window_ms"] = _duration(ctx, take("window", "1h"), "params.window")
        if out["window_ms"] % 60_000 or not 60_000 <= out["window_ms"] <= 86_400_000:
            raise ctx.error("params.window", "must be whole minutes between 1m and 1d")
        out["baseline_weeks"] = _int(ctx, take("baseline_weeks", 4), "params.baseline_weeks", 1, 12)
        out["min_weeks"] = _int(
            ctx, take("min_weeks", 2), "params.min_weeks", 1, out["baseline_weeks"]
        )
        out["method"] = take("method", "stddev")
        if out["method"] not in ("mean", "stddev", "ratio"):
            raise ctx.error("params.method", f"{out['method']!r} must be mean, stddev or ratio")
        out["k"] = _number(ctx, take("k", 3), "params.k", 0.0)
        out["ratio"] = _number(ctx, take("ratio", 3), "params.ratio", 1.0)
        out["min_count"] = _int(ctx, take("min_count", 10), "params.min_count", 1)
        out["fallback_hours"] = _int(
            ctx, take("fallback_hours", 0), "params.fallback_hours", 0, 24 * 14
        )
        out["min_fallback_hours"] = _int(
            ctx, take("min_fallback_hours", 3), "params.min_fallback_hours", 1, 24 * 14
        )
    elif kind is Kind.THRESHOLD:
        out["op"] = take("op", "above")
        if out["op"] not in ("above", "below"):
            raise ctx.error("params.op", f"{out['op']!r} must be above or below")
        threshold = take("threshold")
        if metric.endswith("_seconds"):
            if not isinstance(threshold, str):
                raise ctx.error(
                    "params.threshold", f"{metric} is in seconds: give a duration like 4h"
                )
            out["threshold"] = _duration(ctx, threshold, "params.threshold") / 1000
        else:
            out["threshold"] = _number(ctx, threshold, "params.threshold")
        if metric in BUCKET_METRICS:
            out["window_ms"] = _duration(ctx, take("window"), "params.window")
            if out["window_ms"] % 60_000 or not 60_000 <= out["window_ms"] <= 86_400_000:
                raise ctx.error("params.window", "must be whole minutes between 1m and 1d")
        elif "params.window" in p:
            raise ctx.error("params.window", f"{metric} is a gauge: it has no window")
    elif kind is Kind.MEAN_GAP:
        out["points"] = _number(ctx, take("points"), "params.points", 0.0, 100.0)
        out["min_projects"] = _int(ctx, take("min_projects", 1), "params.min_projects", 1)
    elif kind is Kind.DISBURSEMENT:
        out["min_ratio_pct"] = _number(ctx, take("min_ratio_pct"), "params.min_ratio_pct", 0, 100)
        out["weeks_before_quarter_end"] = _int(
            ctx, take("weeks_before_quarter_end", 3), "params.weeks_before_quarter_end", 1, 13
        )
        out["min_planned_thb"] = _number(
            ctx, take("min_planned_thb", 0.0), "params.min_planned_thb", 0.0
        )
    elif kind is Kind.SILENT:
        out["office_hours"] = _number(ctx, take("office_hours"), "params.office_hours", 0.5)
        for name, default in (("office_start", "08:30"), ("office_end", "16:30")):
            value = take(name, default)
            if not isinstance(value, str) or not (m := _CLOCK.match(value)):
                raise ctx.error(f"params.{name}", f"{value!r} must be HH:MM (Asia/Bangkok)")
            out[f"{name}_min"] = int(m.group(1)) * 60 + int(m.group(2))
        if out["office_end_min"] <= out["office_start_min"]:
            raise ctx.error("params.office_end", "must be later than office_start")
    if p:
        raise ctx.error(", ".join(sorted(p)), f"unknown parameter for a {kind} rule")
    return out
