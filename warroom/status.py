"""The live summary of a running worker, read from its /metrics (one source of truth: counters).

`parse_exposition` (text -> Snapshot), `summarize` (snapshots -> Summary) and `render`
(Summary -> rich renderable) are pure; `Poller` fetches and keeps the previous scrape so rates
come from two scrapes. `warroom status` and `warroom up` both use them.
"""

from __future__ import annotations

import io
import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = [
    "Poller",
    "SimulatorSummary",
    "Snapshot",
    "StatusError",
    "Summary",
    "bucket_quantile",
    "fetch_snapshot",
    "fetch_top_districts",
    "parse_exposition",
    "render",
    "render_text",
    "summarize",
]

Labels = tuple[tuple[str, str], ...]


class StatusError(RuntimeError):
    """The worker could not be reached or did not answer with metrics."""


@dataclass(frozen=True)
class Snapshot:
    """One scrape: sample name -> {sorted label pairs: value}, and when it was taken (epoch s)."""

    at: float
    samples: Mapping[str, Mapping[Labels, float]]

    def series(self, name: str) -> Mapping[Labels, float]:
        return self.samples.get(name, {})

    def total(self, name: str, **match: str) -> float:
        return sum(v for k, v in self.series(name).items() if _matches(k, match))


def _matches(labels: Labels, match: Mapping[str, str]) -> bool:
    if not match:
        return True
    d = dict(labels)
    return all(d.get(k) == v for k, v in match.items())


def parse_exposition(text: str, at: float | None = None) -> Snapshot:
    """Parse Prometheus text format (what /metrics serves) into a Snapshot."""
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name][tuple(sorted(s.labels.items()))] = float(s.value)
    return Snapshot(time.time() if at is None else at, dict(samples))


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Quantile from cumulative (upper bound, count) buckets, as PromQL's histogram_quantile
    does: linear interpolation inside the bucket; the highest finite bound when the rank falls
    in +Inf. None when there are no observations."""
    bs = sorted(buckets)
    if len(bs) < 2 or not math.isinf(bs[-1][0]):
        return None
    # counts must not decrease with le (a scrape in the middle of an update can break that)
    fixed: list[tuple[float, float]] = []
    top = 0.0
    for le, count in bs:
        top = max(top, count)
        fixed.append((le, top))
    observations = fixed[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    b = next(i for i, (_, c) in enumerate(fixed) if c >= rank or i == len(fixed) - 1)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, end, count = 0.0, fixed[b][0], fixed[b][1]
    if b > 0:
        start = fixed[b - 1][0]
        count -= fixed[b - 1][1]
        rank -= fixed[b - 1][1]
    if count <= 0:
        return end
    return start + (end - start) * (rank / count)


def _delta(cur: float, prev: float | None) -> float:
    """Increase of a counter series between scrapes; a drop means the process restarted."""
    if prev is None or cur < prev:
        return cur
    return cur - prev


def _increase(
    current: Snapshot, previous: Snapshot | None, name: str, **match: str
) -> float | None:
    if previous is None:
        return None
    prev = previous.series(name)
    return sum(
        _delta(v, prev.get(k)) for k, v in current.series(name).items() if _matches(k, match)
    )


def _histogram(
    current: Snapshot, previous: Snapshot | None, name: str, **match: str
) -> tuple[list[tuple[float, float]], bool]:
    """Cumulative buckets of a histogram summed over matching series: over the interval since
    `previous` when it saw observations (recent=True), else since the process started."""
    now: dict[float, float] = defaultdict(float)
    recent: dict[float, float] = defaultdict(float)
    prev = previous.series(name + "_bucket") if previous else {}
    for k, v in current.series(name + "_bucket").items():
        if not _matches(k, match):
            continue
        le = float(dict(k)["le"])
        now[le] += v
        recent[le] += _delta(v, prev.get(k))
    if previous is not None and recent and max(recent.values()) > 0:
        return sorted(recent.items()), True
    return sorted(now.items()), False


@dataclass(frozen=True)
class StreamSummary:
    stream: str
    events: float  # accepted + rejected + duplicates since the process started
    accepted: float
    rejected: float
    duplicates: float
    late: float
    too_late: float
    events_per_s: float | None  # None without a previous scrape


@dataclass(frozen=True)
class SinkSummary:
    backend: str
    writes: float
    errors: float
    retries: float
    buffered_rows: float
    p50_s: float | None
    p99_s: float | None
    recent: bool  # quantiles over the last interval (else since start)


@dataclass(frozen=True)
class ChannelSummary:
    channel: str
    sent: float
    failed: float
    queued: float


@dataclass(frozen=True)
class SimulatorSummary:
    phase: str  # backfill, live or paced
    backfill_progress: float  # 0-1
    backfill_events: float
    backfill_s: float
    event_time_s: float | None  # occurred_at of the newest event sent (Unix s)


@dataclass(frozen=True)
class Summary:
    at: float
    interval_s: float | None
    version: str
    uptime_s: float | None
    streams: list[StreamSummary]
    rejected: list[tuple[str, str, float]]  # (stream, reason, count), largest first
    lag: dict[str, float]  # topic -> messages
    sinks: list[SinkSummary]
    latency_p50_s: float | None
    latency_p99_s: float | None
    backpressure_s: float
    alerts_firing: list[tuple[str, str, float]]  # (rule, severity, n) with n > 0
    channels: list[ChannelSummary]
    producers: list[tuple[str, str, float, float | None]]  # (producer, stream, sent, per s)
    top_districts: list[dict[str, Any]] | None = None
    live_alerts: list[dict[str, Any]] | None = None  # GET /status/alerts, most urgent first
    #: the highest finite latency bucket: a quantile there means "at least this old" (the
    #: simulator of `warroom up` replays hours of simulated time behind the clock)
    latency_top_s: float | None = None
    batch_p99_s: float | None = None  # one poll's processing time (warroom_batch_processing)
    notes: list[str] = field(default_factory=list)
    simulator: SimulatorSummary | None = None  # None when no simulator reports to this worker

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _label_values(snapshot: Snapshot, name: str, label: str) -> list[str]:
    return sorted({dict(k).get(label, "") for k in snapshot.series(name)})


def summarize(
    current: Snapshot,
    previous: Snapshot | None = None,
    top_districts: list[dict[str, Any]] | None = None,
) -> Summary:
    """The numbers an operator needs, from one scrape (totals) or two (rates, recent p50/p99)."""
    cur, prev = current, previous
    dt = cur.at - prev.at if prev is not None else None
    if dt is not None and dt <= 0:
        prev, dt = None, None
    outcomes = (
        "warroom_events_accepted_total",
        "warroom_events_rejected_total",
        "warroom_events_duplicate_total",
    )
    names = sorted({s for n in outcomes for s in _label_values(cur, n, "stream")})
    streams = []
    for s in names:
        counts = [cur.total(n, stream=s) for n in outcomes]
        rate = None
        if prev is not None and dt:
            rate = sum(_increase(cur, prev, n, stream=s) or 0.0 for n in outcomes) / dt
        streams.append(
            StreamSummary(
                stream=s,
                events=sum(counts),
                accepted=counts[0],
                rejected=counts[1],
                duplicates=counts[2],
                late=cur.total("warroom_events_late_total", stream=s, kind="late"),
                too_late=cur.total("warroom_events_late_total", stream=s, kind="too_late"),
                events_per_s=rate,
            )
        )
    rejected: dict[tuple[str, str], float] = defaultdict(float)
    for k, v in cur.series("warroom_events_rejected_total").items():
        d = dict(k)
        rejected[(d.get("stream", ""), d.get("reason", ""))] += v
    lag: dict[str, float] = defaultdict(float)
    for k, v in cur.series("warroom_consumer_lag").items():
        lag[dict(k).get("topic", "")] += v
    sinks = []
    backends = {
        b
        for n in (
            "warroom_sink_write_seconds_count",
            "warroom_sink_buffered_rows",
            "warroom_sink_write_errors_total",
        )
        for b in _label_values(cur, n, "backend")
    }
    for b in sorted(backends):
        buckets, recent = _histogram(cur, prev, "warroom_sink_write_seconds", backend=b)
        sinks.append(
            SinkSummary(
                backend=b,
                writes=cur.total("warroom_sink_write_seconds_count", backend=b),
                errors=cur.total("warroom_sink_write_errors_total", backend=b),
                retries=cur.total("warroom_sink_retries_total", backend=b),
                buffered_rows=cur.total("warroom_sink_buffered_rows", backend=b),
                p50_s=bucket_quantile(0.5, buckets),
                p99_s=bucket_quantile(0.99, buckets),
                recent=recent,
            )
        )
    latency, _ = _histogram(cur, prev, "warroom_end_to_end_latency_seconds")
    finite = [le for le, _ in latency if not math.isinf(le)]
    batch, _ = _histogram(cur, prev, "warroom_batch_processing_seconds")
    firing = []
    for k, v in cur.series("warroom_alerts_firing").items():
        if v > 0:
            d = dict(k)
            firing.append((d.get("rule", ""), d.get("severity", ""), v))
    channels = [
        ChannelSummary(
            channel=c,
            sent=cur.total("warroom_notifications_sent_total", channel=c),
            failed=cur.total("warroom_notifications_failed_total", channel=c),
            queued=cur.total("warroom_notifications_queued", channel=c),
        )
        for c in sorted(
            {
                c
                for n in (
                    "warroom_notifications_sent_total",
                    "warroom_notifications_failed_total",
                    "warroom_notifications_queued",
                )
                for c in _label_values(cur, n, "channel")
            }
        )
    ]
    producers = []
    for k, v in sorted(cur.series("warroom_producer_events_sent_total").items()):
        d = dict(k)
        per_s = None
        if prev is not None and dt:
            per_s = _delta(v, prev.series("warroom_producer_events_sent_total").get(k)) / dt
        producers.append((d.get("producer", ""), d.get("stream", ""), v, per_s))
    versions = _label_values(cur, "warroom_build_info", "version")
    start = cur.total("process_start_time_seconds")
    simulator = None
    on = [dict(k).get("phase", "") for k, v in cur.series("warroom_simulator_phase").items() if v]
    if on:
        event_time = cur.total("warroom_simulator_event_time_seconds")
        simulator = SimulatorSummary(
            phase=on[0],
            backfill_progress=cur.total("warroom_simulator_backfill_progress_ratio"),
            backfill_events=cur.total("warroom_simulator_backfill_events"),
            backfill_s=cur.total("warroom_simulator_backfill_seconds"),
            event_time_s=event_time or None,
        )
    notes = []
    if not cur.samples:
        notes.append("no metrics in the answer")
    return Summary(
        at=cur.at,
        interval_s=dt,
        version=",".join(v for v in versions if v) or "?",
        uptime_s=cur.at - start if start else None,
        streams=streams,
        rejected=sorted(
            ((s, r, v) for (s, r), v in rejected.items() if v > 0), key=lambda x: (-x[2], x[:2])
        ),
        lag=dict(sorted(lag.items())),
        sinks=sinks,
        latency_p50_s=bucket_quantile(0.5, latency),
        latency_p99_s=bucket_quantile(0.99, latency),
        backpressure_s=cur.total("warroom_backpressure_seconds_total"),
        latency_top_s=max(finite) if finite else None,
        batch_p99_s=bucket_quantile(0.99, batch),
        alerts_firing=sorted(firing, key=lambda x: (-x[2], x[0], x[1])),
        channels=channels,
        producers=producers,
        top_districts=top_districts,
        notes=notes,
        simulator=simulator,
    )


# --- rendering -----------------------------------------------------------------------------


def _n(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 100 else f"{v:,.1f}"


def _rate(v: float | None) -> str:
    return "–" if v is None else f"{v:,.1f}/s"


def _secs(v: float | None) -> str:
    if v is None:
        return "–"
    if v < 1:
        return f"{v * 1000:.1f} ms"
    if v < 120:
        return f"{v:.2f} s"
    return f"{v / 60:.1f} min"


def _age(v: float | None, top: float | None) -> str:
    """A latency quantile; one that fell past the last finite bucket is only a lower bound."""
    if v is not None and top is not None and v >= top:
        return "> " + _secs(top)
    return _secs(v)


def _uptime(v: float | None) -> str:
    if v is None:
        return "?"
    m, s = divmod(int(v), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _table(title: str, *columns: str, left: int = 1) -> Table:
    """Text in the first `left` columns (left-aligned), numbers after them."""
    t = Table(title=title, title_justify="left", box=None, pad_edge=False, expand=False)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i < left else "right", no_wrap=True)
    return t


def render(summary: Summary) -> RenderableType:
    """A compact live view: streams, rejections, lag, sink, alerts, notifications, districts."""
    s = summary
    window = f"rates over {s.interval_s:.1f}s" if s.interval_s else "rates need two scrapes"
    parts: list[RenderableType] = [
        Text(
            f"warroom {s.version} · up {_uptime(s.uptime_s)} · {window} · "
            f"end-to-end p50 {_age(s.latency_p50_s, s.latency_top_s)} "
            f"p99 {_age(s.latency_p99_s, s.latency_top_s)} · "
            f"batch p99 {_secs(s.batch_p99_s)} · backpressure {_secs(s.backpressure_s)}"
        )
    ]
    if s.simulator is not None:
        parts.append(Text(_simulator_line(s.simulator, s.at, sum(s.lag.values()))))
    t = _table("streams", "stream", "events/s", "events", "accepted", "rejected", "dup", "late",
               "too late")  # fmt: skip
    for st in s.streams:
        t.add_row(st.stream, _rate(st.events_per_s), _n(st.events), _n(st.accepted),
                  _n(st.rejected), _n(st.duplicates), _n(st.late), _n(st.too_late))  # fmt: skip
    if not s.streams:
        t.add_row("(no events yet)")
    parts.append(t)
    if s.rejected:
        t = _table("rejected by reason", "stream", "reason", "events", left=2)
        for stream, reason, v in s.rejected[:8]:
            t.add_row(stream, reason, _n(v))
        parts.append(t)
    t = _table("store and lag", "backend", "writes", "p50", "p99", "errors", "retries", "buffered")
    for k in s.sinks:
        mark = "" if k.recent else " *"
        t.add_row(k.backend, _n(k.writes), _secs(k.p50_s) + mark, _secs(k.p99_s) + mark,
                  _n(k.errors), _n(k.retries), _n(k.buffered_rows))  # fmt: skip
    for topic, v in s.lag.items():
        t.add_row(f"lag {topic}", "", "", "", "", "", _n(v))
    if s.sinks or s.lag:
        parts.append(t)
    if s.alerts_firing or s.channels:
        t = _table("alerts and notifications", "rule / channel", "firing", "sent", "failed",
                   "queued")  # fmt: skip
        for rule, severity, v in s.alerts_firing:
            t.add_row(f"{rule} ({severity})", _n(v), "", "", "")
        for c in s.channels:
            t.add_row(c.channel, "", _n(c.sent), _n(c.failed), _n(c.queued))
        parts.append(t)
    if s.producers:
        t = _table("producers", "producer", "stream", "sent", "sent/s", left=2)
        for p, stream, v, per_s in s.producers:
            t.add_row(p, stream, _n(v), _rate(per_s))
        parts.append(t)
    if s.live_alerts:
        parts.append(_live_alerts(s.live_alerts))
    if s.top_districts:
        parts.append(_districts(s.top_districts))
    for note in s.notes:
        parts.append(Text(note, style="yellow"))
    return Group(*parts)


def _simulator_line(sim: SimulatorSummary, at: float, lag: float) -> str:
    """One line: which phase the simulator is in, and how far it is."""
    from streams.timeutil import format_bangkok

    rate = sim.backfill_events / sim.backfill_s if sim.backfill_s > 0 else 0.0
    done = f"{_n(sim.backfill_events)} events in {_secs(sim.backfill_s)} ({rate:,.0f}/s)"
    newest = ""
    if sim.event_time_s is not None:
        behind = at - sim.event_time_s
        newest = f"newest event {format_bangkok(int(sim.event_time_s * 1000), '%d/%m/%Y %H:%M:%S')}"
        if behind >= 2 * 86_400:
            newest += f", {behind / 86_400:.1f} days behind the clock"
        elif behind >= 120:
            newest += f", {_secs(behind)} behind the clock"
    if sim.phase == "backfill":
        line = f"simulator: backfill {sim.backfill_progress:.0%} · {done} · {newest}"
    elif sim.phase == "live":
        line = f"simulator: live, events dated now · {newest} · backfill done: {done}"
        if lag >= 1000:
            line += f" · the worker is still catching up (lag {_n(lag)})"
    else:
        line = f"simulator: paced (--rate/--speedup) · {newest}"
    return line.rstrip(" ·")


def _live_alerts(alerts: list[dict[str, Any]], limit: int = 8) -> Table:
    """The head of the live alerts: the id to acknowledge, how bad, what and where. The id comes
    first so that a narrow terminal crops the Thai title and place, never the id."""
    t = _table(f"live alerts ({len(alerts)})", "id", "state", "value", "alert", "district",
               left=5)  # fmt: skip
    for a in alerts[:limit]:
        place = f"{a.get('district_th', '')} ({a.get('province_th', '')})".strip()
        state = f"{a.get('state', '')}/{a.get('severity', '')}"
        if a.get("acknowledged_by"):
            state += " ack"
        value = a.get("value")
        threshold = a.get("threshold")
        shown = ""
        if isinstance(value, int | float) and isinstance(threshold, int | float):
            if a.get("kind") == "silent":  # the engine counts silence in office hours
                shown = f"{value:.1f} / {threshold:g} office h"
            elif str(a.get("metric", "")).endswith("_seconds"):  # ages: hours read better
                shown = f"{value / 3600:.1f} h / {threshold / 3600:g} h"
            else:
                shown = f"{value:g} / {threshold:g}"
        t.add_row(str(a.get("alert_id", "")), state, shown, str(a.get("title_th", "")), place)
    for column in t.columns[:3]:
        column.min_width = max((len(str(c)) for c in column.cells), default=0)
    return t


def _districts(rows: list[dict[str, Any]]) -> Table:
    keys = [
        k
        for k in rows[0]
        if k not in ("district_code", "name", "name_th", "name_en", "province_th")
        and isinstance(rows[0][k], int | float)
    ][:4]
    t = _table("top districts", "district", *keys)
    for row in rows[:10]:
        name = row.get("name_th") or row.get("name") or row.get("name_en") or ""
        label = f"{row.get('district_code', '')} {name}".strip()
        if row.get("province_th"):
            label += f" ({row['province_th']})"
        t.add_row(label, *(_n(row.get(k)) for k in keys))
    return t


def render_text(summary: Summary, width: int = 100) -> str:
    """The same view as plain text (no colours), e.g. for logs or a non-terminal."""
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(render(summary))
    return buf.getvalue()


# --- fetching ------------------------------------------------------------------------------


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusError(f"cannot reach {url}: {reason}") from exc


def fetch_snapshot(base_url: str, timeout: float = 3.0) -> Snapshot:
    """Scrape `<base_url>/metrics` of a worker."""
    url = base_url.rstrip("/") + "/metrics"
    status, body = _get(url, timeout)
    if status != 200:
        raise StatusError(f"{url} answered HTTP {status}")
    try:
        return parse_exposition(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatusError(f"{url} did not answer with Prometheus metrics: {exc}") from exc


def fetch_live_alerts(base_url: str, timeout: float = 3.0) -> list[dict[str, Any]] | None:
    """`<base_url>/status/alerts` (the worker's live alerts), None when it does not serve it."""
    try:
        status, body = _get(base_url.rstrip("/") + "/status/alerts", timeout)
        data = orjson.loads(body) if status == 200 else None
    except (StatusError, orjson.JSONDecodeError):
        return None
    alerts = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(alerts, list):
        return None
    return [a for a in alerts if isinstance(a, dict)]


def fetch_top_districts(base_url: str, timeout: float = 3.0) -> list[dict[str, Any]] | None:
    """`<base_url>/status/top-districts` when the worker serves it (a JSON list of objects with
    district_code, name_th, province_th and numbers, or {"districts": [...]}); None when it
    does not (404) or the answer is not such a list."""
    try:
        status, body = _get(base_url.rstrip("/") + "/status/top-districts", timeout)
        data = orjson.loads(body) if status == 200 else None
    except (StatusError, orjson.JSONDecodeError):
        return None
    if isinstance(data, dict):
        data = data.get("districts")
    if not isinstance(data, list):
        return None
    return [row for row in data if isinstance(row, dict)]


class Poller:
    """Scrapes a worker and summarises against the previous scrape (for `warroom up`'s live view
    every few seconds, and `warroom status`)."""

    def __init__(self, base_url: str, *, timeout: float = 3.0, districts: bool = True) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.districts = districts
        self.previous: Snapshot | None = None
        #: end-to-end p50/p99 of the latest interval that saw events
        self._latency: tuple[float | None, float | None] | None = None

    def poll(self) -> Summary:
        current = fetch_snapshot(self.base_url, self.timeout)
        top = fetch_top_districts(self.base_url, self.timeout) if self.districts else None
        if top is None and self.previous is not None:
            self.districts = False  # not served (twice): stop asking every few seconds
        summary = replace(
            summarize(current, self.previous, top),
            live_alerts=fetch_live_alerts(self.base_url, self.timeout),
        )
        # at a real national volume (a few events a minute) many intervals see no event: keep
        # the latest interval's latency rather than falling back to since-start quantiles,
        # which a backfill's weeks-old events would dominate for good
        name = "warroom_end_to_end_latency_seconds_count"
        if self.previous is not None and _increase(current, self.previous, name):
            self._latency = (summary.latency_p50_s, summary.latency_p99_s)
        elif self._latency is not None:
            p50, p99 = self._latency
            summary = replace(summary, latency_p50_s=p50, latency_p99_s=p99)
        self.previous = current
        return summary
