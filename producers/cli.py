"""`warroom` commands of the producers package: simulate, replay, submit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from warroom.run_cli import positive_seconds

if TYPE_CHECKING:
    from producers.simulator import Stats
    from warroom.settings import Settings

_KAFKA_HELP = (
    "Kafka bootstrap servers HOST:PORT (default: WARROOM_KAFKA, else the Kafka of the "
    "`warroom up` running in the data dir)."
)
_PREFIX_HELP = "Prefix for the topic names (default: WARROOM_TOPIC_PREFIX)."


def _settings() -> Settings:
    from warroom.logs import setup_logging
    from warroom.settings import load

    settings = load()
    setup_logging(settings.log_level, settings.log_format)
    return settings


_DATA_DIR_HELP = (
    "Data folder of a running `warroom up`, whose Kafka is used when neither --kafka nor "
    "WARROOM_KAFKA is set (default: WARROOM_DATA_DIR)."
)


def _bootstrap(command: str, kafka: str | None, settings: Settings, data_dir: Path | None) -> str:
    """--kafka, else WARROOM_KAFKA, else the Kafka of the `warroom up` running in the data
    dir; says on stderr which one and why, and checks that it answers before anything is sent."""
    from warroom import probe, runinfo

    notes: list[str] = []
    if kafka:
        bootstrap, source = kafka, "--kafka"
    elif settings.kafka:
        bootstrap, source = settings.kafka, "WARROOM_KAFKA"
    else:
        folder = (data_dir or settings.data_dir).resolve()
        up = runinfo.from_up(folder, notes)
        bootstrap = up.kafka if up else ""
        source = f"the warroom up running in {folder}, pid {up.pid}" if up else ""
    for note in notes:
        typer.echo(f"warroom {command}: {note}", err=True)
    if not bootstrap:
        typer.echo(
            f"warroom {command}: no Kafka to send to: pass --kafka HOST:PORT, set WARROOM_KAFKA, "
            "or start `warroom up` (or pass --data-dir of the one running)",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(runinfo.connect_note(command, "Kafka", bootstrap, source), err=True)
    try:
        probe.check_kafka(bootstrap)
    except probe.Unreachable as exc:
        typer.echo(
            f"warroom {command}: {exc} ({source}); check the address or start `warroom up`",
            err=True,
        )
        raise typer.Exit(2) from None
    return bootstrap


def _ensure_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    from streams.broker import ensure_topics
    from streams.topics import Topics

    asyncio.run(ensure_topics(bootstrap, Topics(prefix).all(), partitions))


def simulate(
    rate: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help="Paced mode (benchmarks): events per wall-clock second, simulated time running "
            "ahead of the clock until it catches up. Default: live mode (see --backfill-hours)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same events.")
    ] = 1,
    duration: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="Seconds to run (default: until Ctrl-C).", callback=positive_seconds),
    ] = None,
    backfill_hours: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help="Live mode: hours of recent history sent first, unpaced, ending now. Default: "
            "673 (4 weeks + 1 h, the surge rules' baseline); 25 with --load above 1."
        ),
    ] = None,
    cases_per_day: Annotated[
        float,
        typer.Option(
            help="Live mode: new grievance cases a day nationally (each with a handful of "
            "lifecycle steps; project reports come on top)."
        ),
    ] = 1000.0,
    load: Annotated[
        float,
        typer.Option(help="Live mode: multiplier on --cases-per-day for throughput demos."),
    ] = 1.0,
    speedup: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help="Paced mode: mean simulated seconds per wall second (1440 = a day a minute). "
            "Default with --rate: what gives a national intake of 20,000 cases a day."
        ),
    ] = None,
    start: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Paced mode: simulated start, RFC 3339 (naive = Bangkok). Default: far enough "
            "back that the run ends about now (without --duration: 30 min of sending)."
        ),
    ] = None,
    bad_share: Annotated[float, typer.Option(help="Share of bad events (every reason).")] = 0.01,
    duplicate_share: Annotated[float, typer.Option(help="Share of exact re-sends.")] = 0.005,
    late_share: Annotated[float, typer.Option(help="Share of late / out-of-order events.")] = 0.01,
    kafka: Annotated[Optional[str], typer.Option(help=_KAFKA_HELP)] = None,  # noqa: UP045
    topic_prefix: Annotated[Optional[str], typer.Option(help=_PREFIX_HELP)] = None,  # noqa: UP045
    dry_run: Annotated[
        bool, typer.Option(help="Only generate (no Kafka): print the cost per event.")
    ] = False,
    data_dir: Annotated[Optional[Path], typer.Option(help=_DATA_DIR_HELP)] = None,  # noqa: UP045
) -> None:
    """Send a realistic national workload of grievance and project events (seeded).

    Live mode (the default): a backfill of recent history as fast as Kafka takes it, then
    events dated now at a real national volume. Paced mode (--rate / --speedup / --start):
    a fixed wall rate, for benchmarks.

    Exit codes: 0 every event acknowledged; 1 some not acknowledged; 2 bad usage or Kafka
    unreachable at the start; 3 Kafka acknowledged nothing for WARROOM_PRODUCER_RETRY_SECONDS
    (stopped; the counts of acknowledged and unacknowledged events are printed)."""
    from producers.simulator import LivePlan, RunOptions, SimOptions, run_simulator
    from streams.timeutil import parse_ms
    from streams.topics import Topics

    settings = _settings()
    paced = rate is not None or speedup is not None or start is not None
    live_flags = backfill_hours is not None or cases_per_day != 1000.0 or load != 1.0
    if paced and live_flags:
        typer.echo(
            "warroom simulate: --backfill-hours, --cases-per-day and --load are for live mode; "
            "--rate, --speedup and --start run paced: use one or the other",
            err=True,
        )
        raise typer.Exit(2)
    try:
        if duration is not None and duration <= 0:
            raise ValueError("--duration must be positive")
        plan = (
            None
            if paced
            else LivePlan(backfill_hours=backfill_hours, cases_per_day=cases_per_day, load=load)
        )
        sim = SimOptions(
            seed=seed,
            start_ms=parse_ms(start) if start else 0,
            rate=2000.0 if rate is None else rate,
            speedup=speedup,
            bad_share=bad_share,
            duplicate_share=duplicate_share,
            late_share=late_share,
        )
    except ValueError as exc:
        typer.echo(f"warroom simulate: {exc}", err=True)
        raise typer.Exit(2) from exc
    if dry_run:
        _dry_run(sim, plan, duration or 10.0)
        return
    bootstrap = _bootstrap("simulate", kafka, settings, data_dir)
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    _ensure_topics(bootstrap, prefix, settings.partitions)
    if plan is not None:
        typer.echo(
            f"live mode: backfill of {plan.hours:g} h, then events dated now at "
            f"{plan.national_cases_per_day:,.0f} new cases a day nationally",
            err=True,
        )
    options = RunOptions(
        sim=sim, duration=duration, live=plan, retry_s=settings.producer_retry_seconds
    )
    stats = asyncio.run(run_simulator(bootstrap, Topics(prefix), options, on_progress=_progress))
    _progress(stats, final=True)
    _outcome("simulate", bootstrap, stats.sent, stats.errors, stats.broker_error)


#: exit codes of the producer commands (docs/cli.md): 0 every event acknowledged, 1 some
#: not acknowledged, 2 bad usage or Kafka unreachable at the start, 3 Kafka went away
EXIT_NOT_ACKNOWLEDGED = 1
EXIT_BROKER_LOST = 3


def _outcome(command: str, bootstrap: str, sent: int, errors: int, broker_error: str) -> None:
    """One plain line when not every event was acknowledged, and the exit code that says why."""
    if broker_error:
        typer.echo(
            f"warroom {command}: stopped: Kafka at {bootstrap} {broker_error}; "
            f"{sent:,} events acknowledged, {errors:,} not acknowledged (send them again: "
            "duplicates are counted once by event_id)",
            err=True,
        )
        raise typer.Exit(EXIT_BROKER_LOST)
    if errors:
        typer.echo(
            f"warroom {command}: {sent:,} events acknowledged, {errors:,} not acknowledged "
            "(Kafka refused them; see the log above)",
            err=True,
        )
        raise typer.Exit(EXIT_NOT_ACKNOWLEDGED)


def _progress(stats: Stats, final: bool = False) -> None:
    from streams.timeutil import format_bangkok

    sim_time = format_bangkok(stats.last_ms) if stats.last_ms else "-"
    head = "done:" if final else "sending:"
    if stats.phase == "backfill":
        phase = f"; backfill {stats.backfill_progress:.0%}"
    elif stats.phase == "live":
        rate = stats.backfill_events / stats.backfill_s if stats.backfill_s else 0.0
        phase = (
            f"; live (backfill: {stats.backfill_events:,} events in {stats.backfill_s:.1f} s, "
            f"{rate:,.0f}/s)"
        )
    else:
        phase = "; following the real clock" if stats.caught_up else ""
    typer.echo(
        f"{head} {stats.sent:,} acknowledged ({stats.rate:,.0f}/s), {stats.errors} errors; "
        f"grievance {stats.by_stream['grievance']:,}, project {stats.by_stream['project']:,}, "
        f"bad {stats.bad:,}, duplicates {stats.duplicates:,}, late {stats.late:,}; "
        f"simulated time {sim_time}; generation {stats.generate_us_per_event:.1f} µs/event" + phase,
        err=not final,
    )


def _dry_run(sim: object, plan: object, seconds: float) -> None:
    import itertools
    import time

    from producers.simulator import LivePlan, SimOptions, Simulator, resolve_start
    from streams.timeutil import format_bangkok

    assert isinstance(sim, SimOptions)
    now_ms = int(time.time() * 1000)
    if isinstance(plan, LivePlan):
        # the backfill: every event up to now
        t0 = time.perf_counter()
        items = Simulator(plan.sim_options(sim, now_ms)).items()
        first = next(items)
        ready = time.perf_counter() - t0
        t1 = time.perf_counter()
        n, last = 1, first
        for item in items:
            if item.occurred_ms > now_ms:
                break
            n, last = n + 1, item
        spent = time.perf_counter() - t1
        typer.echo(
            f"backfill of {plan.hours:g} h: {n:,} events in {spent:.2f} s "
            f"({spent / n * 1e6:.1f} µs/event, first event after {ready:.2f} s of warm-up); "
            f"simulated {format_bangkok(first.occurred_ms)} → {format_bangkok(last.occurred_ms)}"
        )
        return
    t0 = time.perf_counter()
    items = Simulator(resolve_start(sim, seconds)).items()
    first = next(items)
    ready = time.perf_counter() - t0
    n = int(sim.rate * seconds)
    t1 = time.perf_counter()
    last = first
    for item in itertools.islice(items, n):
        last = item
    spent = time.perf_counter() - t1
    typer.echo(
        f"generated {n:,} events in {spent:.2f} s: {spent / n * 1e6:.1f} µs/event "
        f"(first event after {ready:.2f} s of warm-up); simulated "
        f"{format_bangkok(first.occurred_ms)} → {format_bangkok(last.occurred_ms)}"
    )


def replay(
    file: Annotated[Path, typer.Argument(help="JSON Lines (event contract) or Traffy CSV.")],
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl, traffy or auto (by extension / header).")
    ] = "auto",
    speed: Annotated[
        str,
        typer.Option(help="max (as fast as possible) or N: real time x N (occurred_at gaps)."),
    ] = "max",
    kafka: Annotated[Optional[str], typer.Option(help=_KAFKA_HELP)] = None,  # noqa: UP045
    topic_prefix: Annotated[Optional[str], typer.Option(help=_PREFIX_HELP)] = None,  # noqa: UP045
    data_dir: Annotated[Optional[Path], typer.Option(help=_DATA_DIR_HELP)] = None,  # noqa: UP045
    backfill: Annotated[
        bool,
        typer.Option(
            "--backfill",
            help="History beside live: send to the backfill topics, where old events reach "
            "their minute buckets on clocks of their own (never too late, no live alerts).",
        ),
    ] = False,
) -> None:
    """Replay a file onto the topics, with a progress bar and a summary of what could not map.

    Exit codes as for simulate: 0 all acknowledged, 1 some not, 2 bad usage or no Kafka at the
    start, 3 Kafka went away for longer than WARROOM_PRODUCER_RETRY_SECONDS."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from producers.replay import ReplaySummary
    from producers.replay import replay as run_replay
    from streams.topics import Topics

    settings = _settings()
    if not file.is_file():
        typer.echo(f"warroom replay: no such file: {file}", err=True)
        raise typer.Exit(2)
    try:
        factor = None if speed == "max" else float(speed)
        if factor is not None and factor <= 0:
            raise ValueError
    except ValueError:
        typer.echo("warroom replay: --speed must be 'max' or a positive number", err=True)
        raise typer.Exit(2) from None
    bootstrap = _bootstrap("replay", kafka, settings, data_dir)
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    _ensure_topics(bootstrap, prefix, settings.partitions)
    total = None
    if fmt in ("auto", "jsonl") and file.suffix.lower() != ".csv":
        with file.open("rb") as fh:
            total = sum(1 for _ in fh)
    with Progress(
        TextColumn("[bold]replay[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("replay", total=total, rate="")

        def show(s: ReplaySummary) -> None:
            rate = s.sent / s.elapsed_s if s.elapsed_s else 0
            extra = s.traffy.events if s.traffy and total is None else total
            progress.update(task, completed=s.sent, total=extra, rate=f"{rate:,.0f} events/s")

        try:
            summary = asyncio.run(
                run_replay(
                    bootstrap,
                    Topics(prefix),
                    file,
                    fmt=fmt,
                    speed=factor,
                    on_progress=show,
                    backfill=backfill,
                    retry_s=settings.producer_retry_seconds,
                )
            )
        except (ValueError, UnicodeDecodeError) as exc:
            typer.echo(f"warroom replay: {exc}", err=True)
            raise typer.Exit(2) from exc
        show(summary)
    _replay_summary(summary)
    _outcome("replay", bootstrap, summary.sent, summary.errors, summary.broker_error)


def _replay_summary(s: object) -> None:
    from producers.replay import ReplaySummary

    assert isinstance(s, ReplaySummary)
    rate = s.sent / s.elapsed_s if s.elapsed_s else 0
    typer.echo(
        f"{s.format}: {s.sent:,} events acknowledged in {s.elapsed_s:.1f} s ({rate:,.0f}/s), "
        f"{s.errors} send errors; grievance {s.by_stream['grievance']:,}, "
        f"project {s.by_stream['project']:,}"
    )
    if s.blank:
        typer.echo(f"  {s.blank} blank lines skipped")
    for reason, count in sorted(s.unrouted.items()):
        lines = ", ".join(map(str, s.unrouted_lines[reason]))
        typer.echo(
            f"  {count} lines not routable ({reason}), sent to the grievance topic to be "
            f"dead-lettered; first lines: {lines}"
        )
    t = s.traffy
    if t is not None:
        typer.echo(
            f"  Traffy rows: {t.rows:,}, mapped {t.mapped_rows:,} into {t.events:,} events, "
            f"not mapped {sum(t.unmapped.values()):,}; without a known subdistrict "
            f"{t.no_subdistrict:,}"
        )
        for reason, count in t.unmapped.most_common():
            rows = ", ".join(map(str, t.examples[reason]))
            why = _TRAFFY_REASONS.get(reason, "")
            typer.echo(f"    {reason}: {count:,} rows{why} (first rows: {rows})")
        counted = (
            (t.be_rows, "be_year", "dates in Buddhist-Era years, read as B.E. (year - 543)"),
            (
                t.last_before_timestamp,
                "last_before_timestamp",
                "last_activity before timestamp (final step dated a second after receipt)",
            ),
            *(
                (n, kind, f"duplicate rows skipped ({kind})")
                for kind, n in sorted(t.duplicates.items())
            ),
        )
        for n, key, text in counted:
            if n:
                rows = ", ".join(map(str, t.notes.get(key, [])))
                typer.echo(f"    {text}: {n:,} rows (first rows: {rows})")
    if s.capped_gaps:
        typer.echo(
            f"  pacing: {s.capped_gaps:,} gaps longer than {s.max_gap_s:g} s at --speed were "
            f"cut to {s.max_gap_s:g} s ({s.capped_s:,.0f} s of waiting skipped)"
        )


_TRAFFY_REASONS = {
    "impossible_date": " with a date that exists neither in A.D. nor in B.E. (rejected, not "
    "read as A.D.)",
}


def submit(
    file: Annotated[Path, typer.Argument(help="One event in the contract, as JSON.")],
    dry_run: Annotated[bool, typer.Option(help="Only validate; send nothing.")] = False,
    kafka: Annotated[Optional[str], typer.Option(help=_KAFKA_HELP)] = None,  # noqa: UP045
    topic_prefix: Annotated[Optional[str], typer.Option(help=_PREFIX_HELP)] = None,  # noqa: UP045
    data_dir: Annotated[Optional[Path], typer.Option(help=_DATA_DIR_HELP)] = None,  # noqa: UP045
) -> None:
    """Validate one event and send it; a rejected event is explained and not sent (exit 1).

    Exit 2: bad usage or Kafka unreachable; exit 3: Kafka did not acknowledge the event (send
    the same file again: it is counted once)."""
    from producers.submit import check, send_one
    from streams.reasons import Rejection
    from streams.topics import Topics
    from streams.validation import Validator

    settings = _settings()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        typer.echo(f"warroom submit: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from exc
    result = check(raw.strip(), Validator(max_future_skew_s=settings.max_future_skew))
    if isinstance(result, Rejection):
        # explain() never carries the complainant's data (the validator does not echo it)
        typer.echo(f"ไม่รับเหตุการณ์นี้ / event rejected: {result.explain()}", err=True)
        raise typer.Exit(1)
    what = (
        f"{result['schema']} {result.get('type') or result.get('status')} "
        f"district {result['district_code']} event_id {result['event_id']}"
    )
    if dry_run:
        typer.echo(f"valid (not sent, --dry-run): {what}")
        return
    bootstrap = _bootstrap("submit", kafka, settings, data_dir)
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    _ensure_topics(bootstrap, prefix, settings.partitions)
    payload = raw.strip()
    try:
        done = asyncio.run(send_one(bootstrap, Topics(prefix), payload, result))
    except Exception as exc:  # the broker's error, shown to the officer in one line
        typer.echo(
            f"warroom submit: not delivered (Kafka at {bootstrap} did not acknowledge it: "
            f"{type(exc).__name__}); send the same file again, it is counted once",
            err=True,
        )
        raise typer.Exit(EXIT_BROKER_LOST) from None
    typer.echo(
        f"sent: {what} -> topic {done.topic} partition {done.partition} offset {done.offset}"
    )


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""
    app.command("simulate")(simulate)
    app.command("replay")(replay)
    app.command("submit")(submit)
