"""The alert engine: a pure state machine fed with metric observations and a stream clock.

Usage (the worker, after each flush and from a timer)::

    engine = Engine(load_rules())
    engine.observe("1001", "grievance_received", "flood", "hotline_1567", bucket_ms, 7.0)
    result = engine.tick(stream_now_ms)       # TickResult: transitions + notifications
    engine.acknowledge(alert_id, "somchai", now_ms)

Observations carry the bucket's FULL value as written to metric_buckets / metric_gauges (not a
delta), so re-feeding a flush after a crash changes nothing. Time only moves on `tick`, with
the worker's stream clock (event-time watermark; wall time when live), so replays evaluate as
the data happened. No I/O, no wall clock: everything is a function of the inputs.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from alerts.conditions import Measurement, evaluate
from alerts.model import (
    Alert,
    AlertState,
    Notification,
    NotificationKind,
    Severity,
    fingerprint,
)
from alerts.rules import DIMENSION_TH, GAUGE_METRICS, Kind, Rule, RuleSet
from alerts.state import MINUTE_MS, DistrictData, Layout
from alerts.transitions import TickResult, Transition

__all__ = ["STATE_VERSION", "AlertNotFound", "Engine"]

log = logging.getLogger(__name__)

STATE_VERSION: Final = 1
_META_KEY: Final = "__engine__"


class AlertNotFound(KeyError):
    """No live alert has this id (it may have resolved)."""


@dataclass
class _Tracked:
    """An alert series plus the bookkeeping the model's Alert does not carry."""

    alert: Alert
    repeats: int = 0  # REPEAT notifications sent in this episode
    firing_due_ms: int | None = None  # FIRING waiting for the group window
    clear_since_ms: int | None = None  # condition false since (keep_firing_for)

    def dump(self) -> dict[str, Any]:
        a = asdict(self.alert)
        a["severity"] = self.alert.severity.value
        a["state"] = self.alert.state.value
        del a["title_th"], a["title_en"]  # the rule has them: keep table values small
        return {
            "alert": a,
            "repeats": self.repeats,
            "firing_due_ms": self.firing_due_ms,
            "clear_since_ms": self.clear_since_ms,
        }

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> _Tracked:
        a = {"title_th": "", "title_en": "", **data["alert"]}
        a["severity"] = Severity(a["severity"])
        a["state"] = AlertState(a["state"])
        return cls(
            Alert(**a),
            repeats=int(data.get("repeats", 0)),
            firing_due_ms=data.get("firing_due_ms"),
            clear_since_ms=data.get("clear_since_ms"),
        )


class _District:
    __slots__ = ("alerts", "data")

    def __init__(self, layout: Layout) -> None:
        self.data = DistrictData(layout)
        self.alerts: dict[str, _Tracked] = {}  # fingerprint -> series


def notification_id(kind: NotificationKind, district_code: str, parts: Iterable[str]) -> str:
    """Deterministic: the same alerts, episode and kind give the same id after a replay."""
    raw = "|".join([kind.value, district_code, *sorted(parts)])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class Engine:
    """Evaluates the enabled rules of a RuleSet for every district it has seen."""

    def __init__(self, rules: RuleSet, *, state_with_history: bool = False) -> None:
        self.ruleset = rules
        self.rules: tuple[Rule, ...] = rules.enabled
        self._by_id = {r.id: r for r in self.rules}
        self.layout = Layout(self.rules)
        self.state_with_history = state_with_history
        self.now_ms = 0
        self.coverage_ms: int | None = None  # data before this instant is unknown
        self._first_bucket_ms: int | None = None
        self._districts: dict[str, _District] = {}
        self._dirty: set[str] = set()
        self._pruned_minute = -1
        self._district_now: dict[str, int] = {}  # per-district evaluation time (see tick)
        self._observed: set[str] = set()  # districts with data since their last evaluation
        self.evaluations: Counter[str] = Counter()  # rule id -> evaluations (for metrics)
        self._gauge_rules = {
            r.id for r in self.rules if r.kind in (Kind.THRESHOLD, Kind.MEAN_GAP) and r.is_gauge
        }
        self._gauges_seen: dict[str, int] = {}  # district -> gauge_version last evaluated

    # -- input ------------------------------------------------------------------------------

    def observe(
        self,
        district_code: str,
        metric: str,
        dim1: str,
        dim2: str,
        bucket_ms: int,
        value: float,
    ) -> None:
        """One metric_buckets / metric_gauges row: the key's full value at `bucket_ms`."""
        d = self._district(district_code)
        if metric in GAUGE_METRICS:
            d.data.observe_gauge(metric, dim1, dim2, bucket_ms, float(value))
        else:
            minute = bucket_ms // MINUTE_MS
            if self._first_bucket_ms is None or bucket_ms < self._first_bucket_ms:
                self._first_bucket_ms = minute * MINUTE_MS
            d.data.observe_bucket(
                metric, dim1, dim2, minute, float(value), self.now_ms // MINUTE_MS
            )
        self._dirty.add(district_code)
        self._observed.add(district_code)

    def saw_events(self, district_code: str, last_bucket_ms: int) -> None:
        """Only that the district had events up to the minute bucket starting at
        `last_bucket_ms` (for silence; cheaper than observing rows no rule reads)."""
        d = self._district(district_code)
        d.data.saw_event(last_bucket_ms + MINUTE_MS)
        self._dirty.add(district_code)
        self._observed.add(district_code)

    def observe_many(self, rows: Iterable[tuple[str, str, str, str, int, float]]) -> None:
        for row in rows:
            self.observe(*row)

    def _district(self, code: str) -> _District:
        d = self._districts.get(code)
        if d is None:
            d = self._districts[code] = _District(self.layout)
        return d

    # -- evaluation -------------------------------------------------------------------------

    def tick(
        self,
        now_ms: int,
        district_clock: Callable[[str], int] | None = None,
        *,
        only_new_data: bool = False,
    ) -> TickResult:
        """Evaluate every rule in every known district at stream time `now_ms`.

        `district_clock(code)` may give a district an earlier time of its own: the clock of the
        partition its events arrive on. A partition still catching up must not have its
        districts judged (silent, overdue) by another partition's later clock. A district's
        time never goes back. `only_new_data`: evaluate only the districts observed since their
        last evaluation (cheap, for right after a flush); a full tick (the timer) covers the
        time-based conditions and the repeat and escalation timers of every district.
        """
        now_ms = max(now_ms, self.now_ms)  # the stream clock never goes back
        self.now_ms = now_ms
        if self.coverage_ms is None:
            first = self._first_bucket_ms
            self.coverage_ms = now_ms if first is None else min(first, now_ms)
        now_minute = now_ms // MINUTE_MS
        prune = now_minute != self._pruned_minute
        self._pruned_minute = now_minute
        result = TickResult()
        if only_new_data:
            todo = [(c, self._districts[c]) for c in self._observed if c in self._districts]
        else:
            todo = list(self._districts.items())
        self._observed.clear()
        for code, d in todo:
            at = now_ms
            if district_clock is not None:
                own = district_clock(code)
                if own > 0:
                    at = max(min(own, now_ms), self._district_now.get(code, 0))
                self._district_now[code] = at
            if prune:
                d.data.prune(at // MINUTE_MS)
            if self._evaluate_district(code, d, at, result):
                self._dirty.add(code)
        return result

    def _evaluate_district(self, code: str, d: _District, now: int, out: TickResult) -> bool:
        assert self.coverage_ms is not None
        changed = False
        live: dict[str, set[str]] = {}
        for t in d.alerts.values():
            live.setdefault(t.alert.rule_id, set()).add(t.alert.dimension)
        gauges_seen = self._gauges_seen.get(code)
        for rule in self.rules:
            dims = live.get(rule.id, ())
            # a gauge rule's verdict only moves with its data (or a pending alert's clock)
            if rule.id in self._gauge_rules and not dims and gauges_seen == d.data.gauge_version:
                continue
            self.evaluations[rule.id] += 1
            results = evaluate(rule, d.data, now, self.coverage_ms, dims)
            for dim, m in sorted(results.items()):
                if m is not None and (m.firing or dim in dims):
                    changed |= self._step(code, d, rule, dim, m, now, out)
        self._gauges_seen[code] = d.data.gauge_version
        changed |= self._timers(code, d, now, out)
        return changed

    def _step(
        self,
        code: str,
        d: _District,
        rule: Rule,
        dim: str,
        m: Measurement,
        now: int,
        out: TickResult,
    ) -> bool:
        fp = fingerprint(rule.id, code, dim)
        t = d.alerts.get(fp)
        if t is None and not m.firing:
            return False
        changed = t is None  # True when the stored state must be rewritten
        if t is None:
            t = d.alerts[fp] = _Tracked(self._new_alert(rule, code, dim, now))
            self._describe(t.alert, rule, m)
            out.transitions.append(Transition(now, "pending", replace(t.alert)))
        a = t.alert
        self._describe(a, rule, m)
        if m.firing:
            changed |= t.clear_since_ms is not None
            t.clear_since_ms = None
            if a.state is AlertState.PENDING and now - a.pending_since_ms >= rule.for_ms:
                a.state = AlertState.FIRING
                a.fired_at_ms = now
                t.firing_due_ms = now
                out.transitions.append(Transition(now, "firing", replace(a)))
                changed = True
            return changed
        if a.state is AlertState.FIRING and rule.keep_firing_for_ms:
            if t.clear_since_ms is None:
                t.clear_since_ms = now
                changed = True
            if now - t.clear_since_ms < rule.keep_firing_for_ms:
                return changed
        was_firing = a.state is AlertState.FIRING
        a.state = AlertState.RESOLVED
        a.resolved_at_ms = now
        del d.alerts[fp]
        out.transitions.append(Transition(now, "resolved", replace(a)))
        if was_firing and t.firing_due_ms is None:  # its FIRING went out: tell it ended
            self._notify(out, NotificationKind.RESOLVED, code, [(a, 0)], now)
        return True

    def _timers(self, code: str, d: _District, now: int, out: TickResult) -> bool:
        """Group-window FIRING, REPEAT and ESCALATION for the live alerts of one district."""
        window = self.ruleset.group_window_ms
        due = [t for t in d.alerts.values() if t.firing_due_ms is not None]
        firing: list[tuple[Alert, int]] = []
        if due and any(now - t.firing_due_ms >= window for t in due if t.firing_due_ms is not None):
            for t in due:
                t.firing_due_ms = None
                t.alert.last_notified_at_ms = now
                firing.append((t.alert, 0))
        repeats: list[tuple[Alert, int]] = []
        escalations: list[tuple[Alert, int]] = []
        for t in d.alerts.values():
            a = t.alert
            if a.state is not AlertState.FIRING or t.firing_due_ms is not None:
                continue
            if a.acknowledged_at_ms is not None or a.last_notified_at_ms is None:
                continue
            rule = self._by_id[a.rule_id]
            if now - a.last_notified_at_ms >= rule.repeat_ms:
                t.repeats += 1
                a.last_notified_at_ms = now
                repeats.append((a, t.repeats))
            if (
                rule.escalate_after_ms
                and a.escalated_at_ms is None
                and a.fired_at_ms is not None
                and now - a.fired_at_ms >= rule.escalate_after_ms
            ):
                a.escalated_at_ms = now
                out.transitions.append(Transition(now, "escalated", replace(a)))
                escalations.append((a, 0))
        for kind, group in (
            (NotificationKind.FIRING, firing),
            (NotificationKind.REPEAT, repeats),
            (NotificationKind.ESCALATION, escalations),
        ):
            if group:
                self._notify(out, kind, code, group, now)
        return bool(firing or repeats or escalations)

    def _notify(
        self,
        out: TickResult,
        kind: NotificationKind,
        code: str,
        group: list[tuple[Alert, int]],
        now: int,
    ) -> None:
        order = {r.id: i for i, r in enumerate(self.rules)}
        group = sorted(group, key=lambda p: (order.get(p[0].rule_id, 0), p[0].dimension))
        nid = notification_id(kind, code, (f"{a.alert_id}#{n}" for a, n in group))
        alerts = [replace(a) for a, _ in group]
        out.notifications.append(Notification(nid, kind, code, alerts, now))

    def _new_alert(self, rule: Rule, code: str, dim: str, now: int) -> Alert:
        return Alert(
            rule_id=rule.id,
            district_code=code,
            dimension=dim,
            severity=rule.severity,
            state=AlertState.PENDING,
            value=0.0,
            threshold=0.0,
            title_th=rule.title_th,
            title_en=rule.title_en,
            summary_th="",
            summary_en="",
            pending_since_ms=now,
        )

    @staticmethod
    def _describe(a: Alert, rule: Rule, m: Measurement) -> None:
        a.value = m.value
        a.threshold = m.threshold
        fields = {
            **m.fields,
            "value": m.value,
            "threshold": m.threshold,
            "dimension": a.dimension,
            "dimension_th": DIMENSION_TH.get(a.dimension, a.dimension),
        }
        try:
            a.summary_th = rule.summary_th.format(**fields)
            a.summary_en = rule.summary_en.format(**fields)
        except (KeyError, ValueError, TypeError):  # validated at load; never lose the alert
            log.exception("summary of rule %s cannot be rendered", rule.id)
            a.summary_th = a.summary_en = (
                f"{rule.title_en}: {m.value:g} (threshold {m.threshold:g})"
            )

    # -- acknowledgement --------------------------------------------------------------------

    def acknowledge(self, alert_id: str, by: str, now_ms: int) -> TickResult:
        """Stop repeats and escalation of a live alert. Idempotent; AlertNotFound if unknown."""
        for code, d in self._districts.items():
            for t in d.alerts.values():
                a = t.alert
                if a.alert_id != alert_id:
                    continue
                if a.acknowledged_at_ms is not None:
                    return TickResult()
                a.acknowledged_at_ms = max(now_ms, a.pending_since_ms)
                a.acknowledged_by = by
                self._dirty.add(code)
                return TickResult([Transition(a.acknowledged_at_ms, "acknowledged", replace(a))])
        raise AlertNotFound(alert_id)

    # -- queries ----------------------------------------------------------------------------

    def find(self, alert_id: str) -> Alert | None:
        for d in self._districts.values():
            for t in d.alerts.values():
                if t.alert.alert_id == alert_id:
                    return replace(t.alert)
        return None

    def alerts(self, state: AlertState | None = None) -> list[Alert]:
        """Copies of the live alerts (pending and firing), optionally of one state."""
        return [
            replace(t.alert)
            for d in self._districts.values()
            for t in d.alerts.values()
            if state is None or t.alert.state is state
        ]

    def firing_counts(self) -> dict[tuple[str, str], int]:
        """(rule id, severity) -> firing alerts: the warroom_alerts_firing gauge."""
        counts: Counter[tuple[str, str]] = Counter()
        for a in self.alerts(AlertState.FIRING):
            counts[(a.rule_id, a.severity.value)] += 1
        return dict(counts)

    def districts(self) -> list[str]:
        return sorted(self._districts)

    def district_data(self, code: str) -> DistrictData:
        return self._district(code).data

    # -- state ------------------------------------------------------------------------------

    def take_dirty(self) -> set[str]:
        """Districts whose state changed since the last call (write these to the table)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def dump_district(self, code: str, *, with_data: bool = True) -> dict[str, Any]:
        """A JSON-able snapshot of one district (alerts + the data its rules read).

        `with_data=False` keeps only the alerts: what a worker that re-reads the data from
        the store at start (alerts/warmup.py) must store, small and cheap enough to write
        whenever an alert changes."""
        d = self._district(code)
        return {
            "v": STATE_VERSION,
            "data": d.data.dump(self.state_with_history) if with_data else {},
            "alerts": [t.dump() for _, t in sorted(d.alerts.items())],
        }

    def forget_district(self, code: str) -> None:
        """Drop a district (its partition moved to another worker; store its state first)."""
        self._districts.pop(code, None)
        self._gauges_seen.pop(code, None)
        self._dirty.discard(code)

    def load_district(self, code: str, state: Mapping[str, Any]) -> None:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"district {code}: state version {state.get('v')!r} is not 1")
        d = self._districts[code] = _District(self.layout)
        d.data.load(state.get("data") or {})
        for raw in state.get("alerts", ()):
            t = _Tracked.load(raw)
            rule = self._by_id.get(t.alert.rule_id)
            if rule is None:  # the rule was removed or disabled
                log.warning("dropping restored alert of unknown rule %s", t.alert.rule_id)
                continue
            t.alert.title_th, t.alert.title_en = rule.title_th, rule.title_en
            d.alerts[t.alert.fingerprint] = t

    def dump_meta(self) -> dict[str, Any]:
        return {"v": STATE_VERSION, "now_ms": self.now_ms, "coverage_ms": self.coverage_ms}

    def load_meta(self, meta: Mapping[str, Any]) -> None:
        if meta.get("v") != STATE_VERSION:
            raise ValueError(f"engine meta version {meta.get('v')!r} is not 1")
        self.now_ms = max(self.now_ms, int(meta.get("now_ms") or 0))
        cov = meta.get("coverage_ms")
        self.coverage_ms = int(cov) if cov is not None else None

    def dump_state(self) -> dict[str, dict[str, Any]]:
        """Everything: {district_code: state, "__engine__": meta}."""
        out = {code: self.dump_district(code) for code in self._districts}
        out[_META_KEY] = self.dump_meta()
        return out

    def load_state(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        for key, value in state.items():
            if key == _META_KEY:
                self.load_meta(value)
            else:
                self.load_district(key, value)

    META_KEY = _META_KEY
