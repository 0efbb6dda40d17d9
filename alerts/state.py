"""Per-district data the engine keeps: recent minute buckets, hourly history, gauges, last event.

Memory is bounded: full bucket values are kept only for the last `retention` minutes (the
longest rule window plus a margin), hourly counts only for the series a surge rule reads and
only for as many hours as its baseline needs, gauges only for the metrics rules read.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.rules import BUCKET_METRICS, LAST_EVENT_GAUGE, Kind, Rule

__all__ = ["DistrictData", "HourRing", "Layout", "Selector", "Series"]

MINUTE_MS = 60_000
HOUR_MIN = 60


@dataclass(frozen=True)
class Selector:
    """Which bucket rows feed one series family: a metric, a `where` filter, a split."""

    metric: str
    per: str
    where: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, rule: Rule) -> Selector:
        return _selector_of(rule.metric, rule.per, tuple(sorted(rule.where.items())))

    @property
    def key(self) -> str:
        where = ";".join(f"{k}={','.join(v)}" for k, v in self.where)
        return f"{self.metric}|{self.per}|{where}"

    def dimension(self, dim1: str, dim2: str) -> str | None:
        """The series a row feeds, or None when the `where` filter excludes it."""
        for name, values in self.where:
            if (dim1 if name == "dim1" else dim2) not in values:
                return None
        return dim1 if self.per == "dim1" else dim2 if self.per == "dim2" else ""


@functools.cache
def _selector_of(metric: str, per: str, where: tuple[tuple[str, tuple[str, ...]], ...]) -> Selector:
    return Selector(metric, per, where)


class HourRing:
    """Hourly sums for the last `size` hours, as a ring of doubles (8 bytes an hour)."""

    __slots__ = ("head", "size", "values")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values = array("d", bytes(8 * size))
        self.head = -1  # newest hour written (hours since the epoch); -1 = empty

    def add(self, hour: int, delta: float) -> bool:
        """Add to an hour; False when the hour is older than the ring holds."""
        if hour > self.head:
            if self.head < 0 or hour - self.head >= self.size:
                for i in range(self.size):
                    self.values[i] = 0.0
            else:
                for h in range(self.head + 1, hour + 1):
                    self.values[h % self.size] = 0.0
            self.head = hour
        elif hour <= self.head - self.size:
            return False
        self.values[hour % self.size] += delta
        return True

    def get(self, hour: int) -> float:
        if hour > self.head or hour <= self.head - self.size:
            return 0.0
        return self.values[hour % self.size]

    def items(self) -> Iterator[tuple[int, float]]:
        lo = max(self.head - self.size + 1, 0)
        for h in range(lo, self.head + 1):
            v = self.values[h % self.size]
            if v:
                yield h, v


@dataclass
class Series:
    """One series of a selector in one district (e.g. grievance_received, all categories)."""

    minutes: dict[int, float] = field(default_factory=dict)  # minute index -> sum
    ring: HourRing | None = None
    # rule id -> (minute, coverage, baseline): the past weeks do not change within a minute
    baselines: dict[str, tuple[int, int, Any]] = field(default_factory=dict)

    def window_sum(self, first_minute: int, last_minute: int) -> float:
        if last_minute - first_minute + 1 < len(self.minutes):
            return sum(self.minutes.get(m, 0.0) for m in range(first_minute, last_minute + 1))
        return sum(v for m, v in self.minutes.items() if first_minute <= m <= last_minute)


class Layout:
    """What the rules need from the data, computed once per rule set."""

    def __init__(self, rules: Iterable[Rule], margin_minutes: int = 5) -> None:
        rules = tuple(rules)
        self.selectors: dict[Selector, int] = {}  # selector -> ring hours (0: no ring)
        self.bucket_metrics: set[str] = set()
        self.gauge_metrics: set[str] = set()
        self.silence = any(rule.kind is Kind.SILENT for rule in rules)
        windows = [HOUR_MIN]
        for rule in rules:
            if rule.kind in (Kind.SURGE, Kind.THRESHOLD) and rule.metric in BUCKET_METRICS:
                sel = Selector.of(rule)
                hours = 0
                if rule.kind is Kind.SURGE:
                    p = rule.params
                    window_h = -(-p["window_ms"] // 3_600_000)
                    hours = max(p["baseline_weeks"] * 168 + window_h + 1, p["fallback_hours"] + 2)
                self.selectors[sel] = max(self.selectors.get(sel, 0), hours)
                self.bucket_metrics.add(rule.metric)
                windows.append(rule.params["window_ms"] // MINUTE_MS)
            elif rule.kind is Kind.THRESHOLD:
                self.gauge_metrics.add(rule.metric)
            elif rule.kind is Kind.MEAN_GAP:
                self.gauge_metrics |= {
                    "project_planned_pct_sum",
                    "project_progress_pct_sum",
                    "project_active",
                }
            elif rule.kind is Kind.DISBURSEMENT:
                self.gauge_metrics |= {
                    "project_budget_disbursed_thb",
                    "project_budget_planned_disbursed_thb",
                }
        self.retention_minutes = max(windows) + margin_minutes
        self.by_metric: dict[str, list[Selector]] = {}
        for sel in self.selectors:
            self.by_metric.setdefault(sel.metric, []).append(sel)


class DistrictData:
    """Everything observed about one district that the rules read."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        # full value per (metric, dim1, dim2) and minute: a re-sent bucket replaces, never adds
        self.keys: dict[tuple[str, str, str], dict[int, float]] = {}
        self.series: dict[Selector, dict[str, Series]] = {}
        # metric -> (dim1, dim2) -> (snapshot bucket ms, value)
        self.gauges: dict[str, dict[tuple[str, str], tuple[int, float]]] = {}
        self.gauge_version = 0  # bumped when a gauge value changes
        self.last_event_ms: int | None = None
        self.ignored = 0  # bucket updates older than the retention (not reflected)
        self.needs_history = True  # hourly rings not yet warmed from stored history

    # -- observations -----------------------------------------------------------------------

    def observe_bucket(
        self, metric: str, dim1: str, dim2: str, minute: int, value: float, now_minute: int
    ) -> None:
        if value > 0:
            self._saw_event((minute + 1) * MINUTE_MS)
        if metric not in self.layout.bucket_metrics:
            return
        if minute <= now_minute - self.layout.retention_minutes:
            self.ignored += 1
            return
        delta = self._replace(metric, dim1, dim2, minute, value)
        if delta:
            self._apply(metric, dim1, dim2, minute, delta)

    def _replace(self, metric: str, dim1: str, dim2: str, minute: int, value: float) -> float:
        """Store a bucket's full value; the change from what was known is the delta to apply."""
        per_key = self.keys.setdefault((metric, dim1, dim2), {})
        delta = value - per_key.get(minute, 0.0)
        if value:
            per_key[minute] = value
        else:
            per_key.pop(minute, None)
        return delta

    def _apply(
        self, metric: str, dim1: str, dim2: str, minute: int, delta: float, ring: bool = True
    ) -> None:
        for sel in self.layout.by_metric.get(metric, ()):
            dim = sel.dimension(dim1, dim2)
            if dim is None:
                continue
            series = self._series(sel, dim)
            total = series.minutes.get(minute, 0.0) + delta
            if abs(total) < 1e-9:
                series.minutes.pop(minute, None)
            else:
                series.minutes[minute] = total
            if ring and series.ring is not None:
                series.ring.add(minute // HOUR_MIN, delta)

    def _series(self, sel: Selector, dim: str) -> Series:
        family = self.series.setdefault(sel, {})
        series = family.get(dim)
        if series is None:
            hours = self.layout.selectors[sel]
            series = family[dim] = Series(ring=HourRing(hours) if hours else None)
        return series

    def observe_gauge(
        self, metric: str, dim1: str, dim2: str, bucket_ms: int, value: float
    ) -> None:
        if metric == LAST_EVENT_GAUGE and value >= 0:
            self._saw_event(bucket_ms - int(value * 1000))
        if metric not in self.layout.gauge_metrics:
            return
        keys = self.gauges.setdefault(metric, {})
        old = keys.get((dim1, dim2))
        if old is None or bucket_ms >= old[0]:  # the latest snapshot wins (argMax by bucket)
            keys[(dim1, dim2)] = (bucket_ms, value)
            if old is None or old[1] != value:
                self.gauge_version += 1

    def warm_minute(self, metric: str, dim1: str, dim2: str, minute: int, value: float) -> None:
        """A stored bucket's full value at warm-up: like observe_bucket, but while the rings
        are being rebuilt they take the whole value (the restored minutes never reached them)."""
        if not self.needs_history:
            self.observe_bucket(metric, dim1, dim2, minute, value, minute)
            return
        if value > 0:
            self._saw_event((minute + 1) * MINUTE_MS)
        if metric not in self.layout.bucket_metrics:
            return
        delta = self._replace(metric, dim1, dim2, minute, value)
        if delta:
            self._apply(metric, dim1, dim2, minute, delta, ring=False)
        for sel in self.layout.by_metric.get(metric, ()):
            dim = sel.dimension(dim1, dim2)
            if dim is not None and value:
                ring = self._series(sel, dim).ring
                if ring is not None:
                    ring.add(minute // HOUR_MIN, value)

    def saw_event(self, at_ms: int) -> None:
        """The district had an event at `at_ms` (e.g. from stored history)."""
        self._saw_event(at_ms)

    def _saw_event(self, at_ms: int) -> None:
        if self.last_event_ms is None or at_ms > self.last_event_ms:
            self.last_event_ms = at_ms

    def add_history(self, sel: Selector, dim: str, hour: int, value: float) -> None:
        """Warm an hourly ring from stored history (see alerts/warmup.py)."""
        if self.layout.selectors.get(sel):
            ring = self._series(sel, dim).ring
            assert ring is not None
            ring.add(hour, value)

    def prune(self, now_minute: int) -> None:
        oldest = now_minute - self.layout.retention_minutes
        for key in list(self.keys):
            per_key = self.keys[key]
            for m in [m for m in per_key if m <= oldest]:
                del per_key[m]
            if not per_key:
                del self.keys[key]
        for family in self.series.values():
            for series in family.values():
                for m in [m for m in series.minutes if m <= oldest]:
                    del series.minutes[m]

    # -- reads ------------------------------------------------------------------------------

    def family(self, sel: Selector) -> Mapping[str, Series]:
        return self.series.get(sel, {})

    def gauge_sums(
        self, metric: str, rule: Rule, extra_dim2: str | None = None
    ) -> dict[str, float]:
        """Current gauge value per dimension of the rule (summed over the other dims)."""
        out: dict[str, float] = {}
        for (d1, d2), (_, value) in self.gauges.get(metric, {}).items():
            if not rule.matches(d1, d2):
                continue
            if extra_dim2 is not None and d2 != extra_dim2:
                continue
            dim = rule.dimension_of(d1, d2)
            out[dim] = out.get(dim, 0.0) + value
        return out

    @property
    def empty(self) -> bool:
        return not self.keys and not self.gauges and self.last_event_ms is None

    # -- serialisation ----------------------------------------------------------------------

    def dump(self, with_history: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keys": [
                [m, d1, d2, minute, v]
                for (m, d1, d2), per_key in sorted(self.keys.items())
                for minute, v in sorted(per_key.items())
            ],
            "gauges": [
                [m, d1, d2, b, v]
                for m, keys in sorted(self.gauges.items())
                for (d1, d2), (b, v) in sorted(keys.items())
            ],
            "last_event_ms": self.last_event_ms,
        }
        if with_history:
            out["history"] = {
                sel.key: {
                    dim: [[h, v] for h, v in s.ring.items()] for dim, s in fam.items() if s.ring
                }
                for sel, fam in self.series.items()
                if self.layout.selectors.get(sel)
            }
        return out

    def load(self, data: Mapping[str, Any]) -> None:
        history = data.get("history")
        # stored history already includes the retained minutes; without it the rings stay
        # empty until alerts/warmup.py rebuilds them (older hours + the retained minutes)
        for m, d1, d2, minute, v in data.get("keys", ()):
            self.keys.setdefault((m, d1, d2), {})[int(minute)] = float(v)
            if m in self.layout.bucket_metrics:
                self._apply(m, d1, d2, int(minute), float(v), ring=False)
        for m, d1, d2, b, v in data.get("gauges", ()):
            self.gauges.setdefault(m, {})[(d1, d2)] = (int(b), float(v))
        self.gauge_version += 1
        last = data.get("last_event_ms")
        self.last_event_ms = int(last) if last is not None else None
        if history is not None:
            self.needs_history = False
            by_key = {sel.key: sel for sel in self.layout.selectors}
            for sel_key, dims in history.items():
                sel = by_key.get(sel_key)
                if sel is None:  # the rules changed since the state was written
                    continue
                for dim, pairs in dims.items():
                    for hour, v in pairs:
                        self.add_history(sel, dim, int(hour), float(v))
