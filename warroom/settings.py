"""Every setting warroom reads from the environment, declared once with type, default and doc."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["Settings", "SettingsError", "env_table", "load"]


class SettingsError(ValueError):
    """A setting in the environment cannot be read; the message names it."""


def _setting(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Flags on the CLI override these; these override the defaults."""

    data_dir: Path = _setting(
        "WARROOM_DATA_DIR", Path("data"), "Folder for the embedded store, logs and outboxes."
    )
    kafka: str = _setting(
        "WARROOM_KAFKA",
        "",
        "Kafka bootstrap servers (HOST:PORT,...). Empty: `warroom up` starts the embedded "
        "Tansu broker.",
    )
    store: str = _setting(
        "WARROOM_STORE",
        "",
        "ClickHouse URL: chdb:///path (embedded) or clickhouse://user:pass@host:9000/db. "
        "Empty: chdb under WARROOM_DATA_DIR/clickhouse.",
    )
    mode: str = _setting(
        "WARROOM_MODE",
        "embedded",
        "embedded (one machine, dev defaults) or production (refuses unsafe defaults).",
    )
    topic_prefix: str = _setting(
        "WARROOM_TOPIC_PREFIX", "", "Prefix for every topic name (tests use it to isolate runs)."
    )
    partitions: int = _setting(
        "WARROOM_PARTITIONS", 4, "Partitions per topic when warroom creates the topics."
    )
    group_id: str = _setting("WARROOM_GROUP_ID", "warroom", "Kafka consumer group (Faust app id).")
    pseudonym_key: str = _setting(
        "WARROOM_PSEUDONYM_KEY",
        "",
        "Secret for the keyed pseudonym (HMAC-SHA256) of complainant data. Required in "
        "production mode; embedded mode uses a fixed development key and warns.",
    )
    web_host: str = _setting(
        "WARROOM_WEB_HOST", "127.0.0.1", "Bind address of the worker's web server."
    )
    web_port: int = _setting(
        "WARROOM_WEB_PORT",
        6066,
        "Port of the worker's web server (/metrics, /healthz, /readyz, query). 0 = any free port.",
    )
    web_password: str = _setting(
        "WARROOM_WEB_PASSWORD",
        "",
        "Password (secret) for the worker web server's query and acknowledge endpoints (HTTP "
        "Basic with any user, or X-ClickHouse-Key). Empty: they answer this machine only. "
        "Production refuses a WARROOM_WEB_HOST beyond loopback without it.",
    )
    store_token: str = _setting(
        "WARROOM_STORE_TOKEN",
        "",
        "Secret the workers writing through another worker's embedded store (chdb+http://) "
        "send it; that worker mounts POST /store/insert only when it is set. `warroom up` "
        "makes one per run.",
    )
    query_timeout: float = _setting(
        "WARROOM_QUERY_TIMEOUT_SECONDS",
        60.0,
        "Longest a query through the worker's query endpoint may run (a client may ask less).",
    )
    query_max_memory: int = _setting(
        "WARROOM_QUERY_MAX_MEMORY_BYTES",
        1_000_000_000,
        "Memory one query through the endpoint may use; two run at once at most.",
    )
    query_max_rows_to_read: int = _setting(
        "WARROOM_QUERY_MAX_ROWS_TO_READ",
        1_000_000_000,
        "Rows one query through the endpoint may read.",
    )
    query_max_result_rows: int = _setting(
        "WARROOM_QUERY_MAX_RESULT_ROWS",
        1_000_000,
        "Rows one query through the endpoint may return.",
    )
    metrics: str = _setting(
        "WARROOM_METRICS",
        "on",
        "on, or off to skip the worker's per-batch Prometheus recording (only to measure what "
        "it costs: bench/pipeline.py --compare-metrics).",
    )
    tracemalloc: int = _setting(
        "WARROOM_TRACEMALLOC",
        0,
        "Engineers only (slows the worker): N > 0 traces the worker's allocations and logs, "
        "every N seconds, the top allocation sites by file:line, their growth and the entries "
        "of each state structure (streams/memtrace.py). 0 = off.",
    )
    log_level: str = _setting("WARROOM_LOG_LEVEL", "info", "debug, info, warning or error.")
    log_format: str = _setting(
        "WARROOM_LOG_FORMAT", "auto", "auto (text on a terminal, JSON lines otherwise), text, json."
    )
    rebalance_timeout: float = _setting(
        "WARROOM_REBALANCE_TIMEOUT",
        3.0,
        "Consumer-group rebalance/session timeout in seconds. Tansu holds a group join until "
        "it expires, so keep it short on the embedded broker.",
    )
    grace_seconds: int = _setting(
        "WARROOM_GRACE_SECONDS",
        3600,
        "How far behind the stream's event-time watermark an event may arrive and still "
        "update its 1-minute bucket. Older events are counted as too late.",
    )
    late_seconds: int = _setting(
        "WARROOM_LATE_SECONDS",
        60,
        "An event this far behind the watermark is counted as late (it still updates its bucket).",
    )
    dedup_window: int = _setting(
        "WARROOM_DEDUP_WINDOW",
        100_000,
        "Duplicates (same event_id) are detected within this many preceding offsets of the "
        "same topic-partition. Memory is about 160 bytes per remembered event, up to 1.25 times "
        "the window per partition (about 20 MB each at 100 000).",
    )
    flush_interval: float = _setting(
        "WARROOM_FLUSH_INTERVAL", 0.5, "Seconds between ClickHouse writes (freshness)."
    )
    flush_rows: int = _setting(
        "WARROOM_FLUSH_ROWS", 200_000, "Rows buffered before a write is started regardless of time."
    )
    max_buffered_rows: int = _setting(
        "WARROOM_MAX_BUFFERED_ROWS",
        250_000,
        "Consumption pauses when this many rows wait for ClickHouse (backpressure). These rows "
        "and the minute buckets made meanwhile are most of the worker's peak memory, which it "
        "keeps as RSS afterwards (bench/history.py).",
    )
    max_buffered_bytes: int = _setting(
        "WARROOM_MAX_BUFFERED_BYTES",
        128 * 1024 * 1024,
        "Consumption also pauses when the rows waiting for ClickHouse take this many bytes "
        "(estimated: tuple and value sizes), whichever of the two limits comes first; gauge "
        "snapshots are skipped while paused. Resumes at half of both limits.",
    )
    commit_interval: float = _setting(
        "WARROOM_COMMIT_INTERVAL",
        2.0,
        "Seconds between state checkpoints (table changelog + Kafka offset commit).",
    )
    gauge_interval: float = _setting(
        "WARROOM_GAUGE_INTERVAL",
        5.0,
        "Seconds between snapshots of the per-district gauges (backlog, overdue, projects).",
    )
    gauge_history_minutes: int = _setting(
        "WARROOM_GAUGE_HISTORY_MINUTES",
        60,
        "Minutes between the gauge snapshots kept as history (metric_gauges), which ranges "
        "ending in the past read; the current values (metric_gauges_latest) follow every "
        "snapshot. 1 to 1440.",
    )
    open_cases_every: float = _setting(
        "WARROOM_OPEN_CASES_EVERY",
        300.0,
        "Seconds between rebuilds of the open-case snapshot (grievance_open) that the "
        "overdue-case list reads, by the store's owner; 0 = never (the list stays exact, "
        "and gets slower as cases accumulate).",
    )
    open_cases_margin: float = _setting(
        "WARROOM_OPEN_CASES_MARGIN",
        600.0,
        "Seconds an open-case snapshot's watermark stays behind the store's clock: every "
        "insert must finish within it (the cases touched after it are read from "
        "grievance_latest).",
    )
    stop_timeout: float = _setting(
        "WARROOM_STOP_TIMEOUT",
        20.0,
        "Seconds a worker may take to stop after SIGTERM or Ctrl-C (final flush and "
        "checkpoint); after that it exits with code 1 as a crash would, and the next start "
        "replays from the last commit. Keep it below your orchestrator's kill timeout.",
    )
    ready_max_lag: int = _setting(
        "WARROOM_READY_MAX_LAG",
        500_000,
        "/readyz reports unready while the consumer lags more messages than this.",
    )
    producer_retry_seconds: float = _setting(
        "WARROOM_PRODUCER_RETRY_SECONDS",
        30.0,
        "simulate / replay send failed events again for this long while Kafka acknowledges "
        "nothing, then stop with the counts of acknowledged and unacknowledged events (exit 3).",
    )
    max_future_skew: int = _setting(
        "WARROOM_MAX_FUTURE_SKEW",
        3600,
        "Events dated more than this many seconds in the future are rejected as impossible_time.",
    )
    sla_days: str = _setting(
        "WARROOM_SLA_DAYS",
        "",
        "Override grievance SLA days per category, e.g. 'land=30,debt=15'. No official SLA is "
        "published; see streams/sla.py for the defaults.",
    )
    stale_days: int = _setting(
        "WARROOM_STALE_DAYS", 14, "A project with no report for this many days is stale."
    )
    alert_rules: str = _setting(
        "WARROOM_ALERT_RULES", "", "Alert rules file (YAML). Empty: the shipped alerts/rules.yaml."
    )
    alert_directory: str = _setting(
        "WARROOM_ALERT_DIRECTORY",
        "",
        "Routing directory (YAML: district chiefs, governors, war room, ops). Empty: everything "
        "goes to the war room's log sink, plus the webhook/Alertmanager below when set.",
    )
    alert_tick_seconds: float = _setting(
        "WARROOM_ALERT_TICK_SECONDS", 10.0, "Seconds between evaluations of time-based rules."
    )
    alert_webhook_url: str = _setting(
        "WARROOM_ALERT_WEBHOOK_URL", "", "A webhook the default directory also sends alerts to."
    )
    alertmanager_url: str = _setting(
        "WARROOM_ALERTMANAGER_URL",
        "",
        "Alertmanager base URL the default directory also posts alerts to (API v2).",
    )
    line_channel_token: str = _setting(
        "WARROOM_LINE_CHANNEL_TOKEN", "", "LINE Messaging API channel access token (secret)."
    )
    line_api_url: str = _setting(
        "WARROOM_LINE_API_URL", "https://api.line.me", "LINE Messaging API base URL."
    )
    smtp_host: str = _setting(
        "WARROOM_SMTP_HOST", "", "SMTP server for e-mail alerts (empty: off)."
    )
    smtp_port: int = _setting("WARROOM_SMTP_PORT", 25, "SMTP port.")
    smtp_from: str = _setting("WARROOM_SMTP_FROM", "warroom@localhost", "Sender of alert e-mails.")
    smtp_user: str = _setting("WARROOM_SMTP_USER", "", "SMTP user (empty: no login).")
    smtp_password: str = _setting("WARROOM_SMTP_PASSWORD", "", "SMTP password (secret).")
    smtp_tls: str = _setting(
        "WARROOM_SMTP_TLS", "auto", "auto (STARTTLS when offered), starttls, ssl or none."
    )
    # --- chiefs act where the alert reaches them (issue 13): enrolment, one-tap ack ---------
    public_listen: str = _setting(
        "WARROOM_PUBLIC_LISTEN",
        "",
        "HOST:PORT of the chief-facing listener, apart from the worker's web server: the LINE "
        "webhook (POST /line/webhook) and e-mail acknowledge links (/ack/...). Only signed "
        "requests act there. Empty: off.",
    )
    public_url: str = _setting(
        "WARROOM_PUBLIC_URL",
        "",
        "The address people's browsers reach that listener at (https://...), for the "
        "acknowledge links in e-mails. Empty: e-mails carry no link.",
    )
    line_channel_secret: str = _setting(
        "WARROOM_LINE_CHANNEL_SECRET",
        "",
        "LINE channel secret (secret): verifies X-Line-Signature on the webhook. Empty: no "
        "webhook.",
    )
    line_bot_id: str = _setting(
        "WARROOM_LINE_BOT_ID",
        "",
        "Basic id of the LINE official account (like @abc1234), for the add-friend link that "
        "`warroom contacts invite` prints.",
    )
    ack_secret: str = _setting(
        "WARROOM_ACK_SECRET",
        "",
        "Key (secret) that signs acknowledge tokens in LINE buttons and e-mail links. Empty: "
        "alerts carry no buttons or links.",
    )
    ack_token_hours: float = _setting(
        "WARROOM_ACK_TOKEN_HOURS", 72.0, "How long an acknowledge button or link stays valid."
    )
    invite_hours: float = _setting(
        "WARROOM_INVITE_HOURS", 72.0, "How long an enrolment code stays valid."
    )
    contacts_db: str = _setting(
        "WARROOM_CONTACTS_DB",
        "",
        "The contacts store (SQLite: LINE bindings, invites, enrolment audit). Empty: next to "
        "WARROOM_ALERT_DIRECTORY (<file>.bindings.sqlite3), else WARROOM_DATA_DIR/alerts/.",
    )
    escalate_after_minutes: int = _setting(
        "WARROOM_ESCALATE_AFTER_MINUTES",
        30,
        "A critical alert not acknowledged for this long is escalated to the governor "
        "(rules may set their own).",
    )
    # -- event-time clocks beside live: history backfill and the bound on one record's jump --
    clock_max_jump_seconds: int = _setting(
        "WARROOM_CLOCK_MAX_JUMP_SECONDS",
        3600,
        "A current event (dated within this of when it was sent) more than this far ahead of "
        "its live partition's clock moves the clock only when the partition's next event "
        "confirms the jump; alone it is counted as quality outcome 'ahead' (docs/contract.md). "
        "0 = no bound; used as at most WARROOM_GRACE_SECONDS.",
    )
    backfill_hold_seconds: int = _setting(
        "WARROOM_BACKFILL_HOLD_SECONDS",
        86400,
        "Backfill (`warroom replay --backfill`) keeps minute buckets this far behind its own "
        "clock in memory; older ones are re-read from the store when an event needs them "
        "(memory against store reads, never exactness).",
    )
    alert_notify_max_age_seconds: float = _setting(
        "WARROOM_ALERT_NOTIFY_MAX_AGE_SECONDS",
        21600.0,
        "Notifications whose stream time is further behind the wall clock than this are recorded "
        "(alerts history, alerts topic) but not sent: the worker is catching up on the past. A "
        "still-firing alert goes out with its next repeat. 0 = send all.",
    )
    dashboard_url: str = _setting(
        "WARROOM_DASHBOARD_URL",
        "",
        "Base URL of the dashboards linked from alert messages (Grafana's, e.g. "
        "http://localhost:3000). Empty: the worker's own wall page (http://WARROOM_WEB_HOST:"
        "WARROOM_WEB_PORT/d/warroom-district/...), which serves the same paths.",
    )
    # --- retention (issue 14 item 3): days each table keeps its rows; docs/retention.md -----
    # 0 keeps forever. Checked by sinks.retention.problems, applied by `warroom migrate` and
    # the worker's start. "After the end of its month": a month's rows expire together.
    retain_grievance_events_days: int = _setting(
        "WARROOM_RETAIN_GRIEVANCE_EVENTS_DAYS",
        365,
        "Days grievance events (with the complainant's pseudonym: personal data, PDPA) are "
        "kept after the end of their month (event time). 0 = forever.",
    )
    retain_project_events_days: int = _setting(
        "WARROOM_RETAIN_PROJECT_EVENTS_DAYS",
        1096,
        "Days project reports are kept after the end of their month (event time): three "
        "fiscal years for the audit of project money. 0 = forever.",
    )
    retain_metric_buckets_days: int = _setting(
        "WARROOM_RETAIN_METRIC_BUCKETS_DAYS",
        40,
        "Days 1-minute metric buckets are kept (bucket time); at least 2, at most the hourly "
        "rollup's. 0 = forever.",
    )
    retain_metric_gauges_days: int = _setting(
        "WARROOM_RETAIN_METRIC_GAUGES_DAYS",
        40,
        "Days the gauge history (WARROOM_GAUGE_HISTORY_MINUTES snapshots) is kept (bucket "
        "time); at least 2. 0 = forever.",
    )
    retain_quality_buckets_days: int = _setting(
        "WARROOM_RETAIN_QUALITY_BUCKETS_DAYS",
        40,
        "Days 1-minute data-quality buckets are kept (bucket time); at least 2, at most the "
        "hourly rollup's. 0 = forever.",
    )
    retain_metric_buckets_hourly_days: int = _setting(
        "WARROOM_RETAIN_METRIC_BUCKETS_HOURLY_DAYS",
        400,
        "Days the hourly metric rollup is kept after the end of its month; at most the daily "
        "rollup's. 0 = forever.",
    )
    retain_metric_buckets_daily_days: int = _setting(
        "WARROOM_RETAIN_METRIC_BUCKETS_DAILY_DAYS",
        3653,
        "Days the daily metric rollup is kept after the end of its month; at least 397 (this "
        "month against the same month last year). 0 = forever.",
    )
    retain_quality_buckets_hourly_days: int = _setting(
        "WARROOM_RETAIN_QUALITY_BUCKETS_HOURLY_DAYS",
        400,
        "Days the hourly data-quality rollup is kept after the end of its month; at most the "
        "daily rollup's. 0 = forever.",
    )
    retain_quality_buckets_daily_days: int = _setting(
        "WARROOM_RETAIN_QUALITY_BUCKETS_DAILY_DAYS",
        3653,
        "Days the daily data-quality rollup is kept after the end of its month; at least 397. "
        "0 = forever.",
    )
    retain_dead_letters_days: int = _setting(
        "WARROOM_RETAIN_DEAD_LETTERS_DAYS",
        30,
        "Days dead letters are kept (their Kafka record time): they exist to be fixed. "
        "0 = forever.",
    )
    retain_alerts_history_days: int = _setting(
        "WARROOM_RETAIN_ALERTS_HISTORY_DAYS",
        1096,
        "Days the alert history (the audit trail of who was told what, when) is kept after the "
        "end of its month. 0 = forever.",
    )
    # --- ClickHouse server credentials, apart from WARROOM_STORE (issue 12) ------------------
    # read by sinks.url.parse_store_url: taken literally, so a password may hold / # ? % @ :
    store_user: str = _setting(
        "WARROOM_STORE_USER",
        "",
        "ClickHouse user for a clickhouse:// store, taken literally (instead of user:pass@ in "
        "WARROOM_STORE).",
    )
    store_password: str = _setting(
        "WARROOM_STORE_PASSWORD",
        "",
        "Password of WARROOM_STORE_USER (secret), taken literally: any character, no "
        "percent-encoding.",
    )

    @property
    def embedded(self) -> bool:
        return self.mode == "embedded"

    @property
    def store_url(self) -> str:
        return self.store or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (CLI flags); None values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _parse(raw: str, typ: Any, env: str) -> Any:
    try:
        if typ in (int, "int"):
            return int(raw)
        if typ in (float, "float"):
            return float(raw)
        if typ in (Path, "Path"):
            return Path(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(f"{env}={raw!r} is not a valid {typ}") from exc


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment (os.environ by default) and check them."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        name = f.metadata["env"]
        if name in env and env[name] != "":
            values[f.name] = _parse(env[name], f.type, name)
    settings = Settings(**values)
    check(settings)
    return settings


#: the smallest WARROOM_MAX_BUFFERED_ROWS: two gauge snapshots of the whole country
MIN_BUFFERED_ROWS: Final = 20_000


def check(settings: Settings) -> None:
    """Refuse settings that cannot work, with a message that names the variable."""
    if settings.mode not in ("embedded", "production"):
        raise SettingsError("WARROOM_MODE must be 'embedded' or 'production'")
    if settings.mode == "production":
        problems = production_problems(settings)
        if problems:  # every one at once, one line each: fixing them one run at a time is slow
            raise SettingsError("\n".join(problems))
    if min(settings.query_timeout, settings.query_max_memory) <= 0 or (
        min(settings.query_max_rows_to_read, settings.query_max_result_rows) <= 0
    ):
        raise SettingsError("WARROOM_QUERY_* limits must be above 0")
    if settings.partitions < 1:
        raise SettingsError("WARROOM_PARTITIONS must be at least 1")
    if settings.max_buffered_rows < MIN_BUFFERED_ROWS:
        # one gauge snapshot of the whole country is ~10,000 rows: a smaller limit is full
        # after every snapshot, and consumption would pause after each one
        raise SettingsError(
            f"WARROOM_MAX_BUFFERED_ROWS={settings.max_buffered_rows} is below "
            f"{MIN_BUFFERED_ROWS:,}: one gauge snapshot of 928 districts is ~10,000 rows; "
            f"set {MIN_BUFFERED_ROWS} or more"
        )
    if not 1 <= settings.gauge_history_minutes <= 1440:
        raise SettingsError("WARROOM_GAUGE_HISTORY_MINUTES must be between 1 and 1440")
    if settings.open_cases_every < 0:
        raise SettingsError("WARROOM_OPEN_CASES_EVERY must be 0 (never) or seconds")
    if settings.open_cases_margin < 0:
        raise SettingsError("WARROOM_OPEN_CASES_MARGIN must be 0 or more seconds")
    if settings.stop_timeout <= 0:
        raise SettingsError("WARROOM_STOP_TIMEOUT must be more than 0 seconds")
    if settings.tracemalloc < 0:
        raise SettingsError("WARROOM_TRACEMALLOC must be 0 (off) or seconds between logs")
    if settings.late_seconds > settings.grace_seconds:
        raise SettingsError("WARROOM_LATE_SECONDS cannot exceed WARROOM_GRACE_SECONDS")
    if settings.clock_max_jump_seconds < 0:
        raise SettingsError("WARROOM_CLOCK_MAX_JUMP_SECONDS must be 0 (no bound) or more")
    if settings.backfill_hold_seconds < 60:
        raise SettingsError("WARROOM_BACKFILL_HOLD_SECONDS must be at least 60")
    if settings.log_format not in ("auto", "text", "json"):
        raise SettingsError("WARROOM_LOG_FORMAT must be auto, text or json")
    if settings.log_level.lower() not in ("debug", "info", "warning", "warn", "error", "critical"):
        raise SettingsError("WARROOM_LOG_LEVEL must be debug, info, warning or error")
    if settings.metrics not in ("on", "off"):
        raise SettingsError("WARROOM_METRICS must be on or off")
    if settings.public_listen:
        host, sep, port = settings.public_listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise SettingsError("WARROOM_PUBLIC_LISTEN must be HOST:PORT, e.g. 0.0.0.0:8443")
        if not settings.line_channel_secret and not settings.ack_secret:
            raise SettingsError(
                "WARROOM_PUBLIC_LISTEN needs WARROOM_LINE_CHANNEL_SECRET (the LINE webhook) "
                "or WARROOM_ACK_SECRET (e-mail links): nothing unsigned is served there"
            )
    if settings.ack_token_hours <= 0 or settings.invite_hours <= 0:
        raise SettingsError("WARROOM_ACK_TOKEN_HOURS and WARROOM_INVITE_HOURS must be above 0")
    if settings.smtp_tls not in ("auto", "starttls", "ssl", "none"):
        raise SettingsError("WARROOM_SMTP_TLS must be auto, starttls, ssl or none")
    from sinks.retention import problems as retention_problems

    retention = retention_problems(settings)
    if retention:
        raise SettingsError("\n".join(retention))


# what .env.example and habit put in place of a secret
_PLACEHOLDERS = frozenset(
    {"change-me", "changeme", "password", "secret", "admin", "default", "clickhouse", "warroom"}
)
_MIN_SECRET = 16


def _weak(secret: str) -> str:
    """Why `secret` is unfit for production, or ''."""
    if not secret:
        return "is empty"
    if secret.lower() in _PLACEHOLDERS:
        return f"is the placeholder {secret!r}"
    if len(secret) < _MIN_SECRET:
        return f"is shorter than {_MIN_SECRET} characters"
    return ""


def production_problems(settings: Settings) -> list[str]:
    """One plain line per unsafe production setting, each saying what to do (issue 12, 11)."""
    from streams.pdpa import DEV_KEY

    generate = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
    problems: list[str] = []
    key = settings.pseudonym_key
    if key == DEV_KEY:
        problems.append(
            "WARROOM_PSEUDONYM_KEY is the development key: set a secret of your own "
            f"({generate}) and keep it"
        )
    elif _weak(key):
        problems.append(
            f"WARROOM_PSEUDONYM_KEY {_weak(key)}: complainant data is pseudonymised with it "
            f"(PDPA); set a secret of your own ({generate})"
        )
    problems += _store_problems(settings)
    if not _loopback(settings.web_host) and not settings.web_password:
        problems.append(
            f"WARROOM_WEB_HOST={settings.web_host} serves the query and acknowledge "
            "endpoints beyond this machine without authentication: set "
            "WARROOM_WEB_PASSWORD, or WARROOM_WEB_HOST=127.0.0.1"
        )
    if settings.web_password and _weak(settings.web_password):
        problems.append(f"WARROOM_WEB_PASSWORD {_weak(settings.web_password)}: {generate}")
    if settings.store_token and _weak(settings.store_token):
        problems.append(f"WARROOM_STORE_TOKEN {_weak(settings.store_token)}: {generate}")
    return problems


def _store_problems(settings: Settings) -> list[str]:
    from sinks.url import PASSWORD_ENV, USER_ENV, StoreURLError, parse_store_url

    if not settings.store:
        return []  # the embedded store: no account
    env = {USER_ENV: settings.store_user, PASSWORD_ENV: settings.store_password}
    try:
        url = parse_store_url(settings.store, {k: v for k, v in env.items() if v})
    except StoreURLError as exc:
        return [f"WARROOM_STORE: {exc}"]
    if url.kind != "native":
        return []
    problems = []
    if url.user == "default":
        problems.append(
            "WARROOM_STORE_USER is ClickHouse's default account: use the writer account "
            "(deploy/clickhouse/users.d/warroom.xml creates warroom_writer)"
        )
    weak = _weak(url.password)
    if weak:
        problems.append(
            f"the ClickHouse password of {url.user} (WARROOM_STORE_PASSWORD) {weak}: set a long "
            "random one in .env (CLICKHOUSE_WRITER_PASSWORD)"
        )
    return problems


def _loopback(host: str) -> bool:
    from sinks.http_auth import is_loopback

    return is_loopback(host)


def env_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting: the README's table is checked against it."""
    return [
        (f.metadata["env"], str(f.default), f.metadata["doc"]) for f in dataclasses.fields(Settings)
    ]
