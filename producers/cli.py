"""`warroom` commands of the producers package: simulate, replay, submit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from producers.simulator import Stats
    from warroom.settings import Settings

_KAFKA_HELP = "Kafka bootstrap servers HOST:PORT (default: WARROOM_KAFKA)."
_PREFIX_HELP = "Prefix for the topic names (default: WARROOM_TOPIC_PREFIX)."


def _settings() -> Settings:
    from warroom.logs import setup_logging
    from warroom.settings import load

    settings = load()
    setup_logging(settings.log_level, settings.log_format)
    return settings


def _bootstrap(kafka: str | None, settings: Settings) -> str:
    bootstrap = kafka or settings.kafka
    if not bootstrap:
        typer.echo(
            "warroom: no Kafka to send to: pass --kafka HOST:PORT or set WARROOM_KAFKA "
            "(`warroom up` starts an embedded broker and its own simulator)",
            err=True,
        )
        raise typer.Exit(2)
    return bootstrap


def _ensure_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    from streams.broker import ensure_topics
    from streams.topics import Topics

    asyncio.run(ensure_topics(bootstrap, Topics(prefix).all(), partitions))


def simulate(
    rate: Annotated[float, typer.Option(help="Events per wall-clock second.")] = 2000.0,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same events.")
    ] = 1,
    duration: Annotated[
        Optional[float], typer.Option(help="Seconds to run (default: until Ctrl-C).")  # noqa: UP045
    ] = None,
    speedup: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help="Mean simulated seconds per wall second (1440 = a day a minute). Default: what "
            "gives a national intake of 20,000 cases a day at --rate (about 1,900 at 2,000/s)."
        ),
    ] = None,
    start: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Simulated start, RFC 3339 (naive = Bangkok). Default: far enough back that the "
            "run ends about now (without --duration: 30 min of sending); once the simulation "
            "reaches real time it follows the clock."
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
) -> None:
    """Send a realistic national workload of grievance and project events (seeded)."""
    from producers.simulator import RunOptions, SimOptions, run_simulator
    from streams.timeutil import parse_ms
    from streams.topics import Topics

    settings = _settings()
    try:
        sim = SimOptions(
            seed=seed,
            start_ms=parse_ms(start) if start else 0,
            rate=rate,
            speedup=speedup,
            bad_share=bad_share,
            duplicate_share=duplicate_share,
            late_share=late_share,
        )
    except ValueError as exc:
        typer.echo(f"warroom simulate: {exc}", err=True)
        raise typer.Exit(2) from exc
    if dry_run:
        _dry_run(sim, duration or 10.0)
        return
    bootstrap = _bootstrap(kafka, settings)
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    _ensure_topics(bootstrap, prefix, settings.partitions)
    options = RunOptions(sim=sim, duration=duration)
    stats = asyncio.run(run_simulator(bootstrap, Topics(prefix), options, on_progress=_progress))
    _progress(stats, final=True)
    if stats.errors:
        typer.echo(f"warroom simulate: {stats.errors} sends failed", err=True)
        raise typer.Exit(1)


def _progress(stats: Stats, final: bool = False) -> None:
    from streams.timeutil import format_bangkok

    sim_time = format_bangkok(stats.last_ms) if stats.last_ms else "-"
    head = "done:" if final else "sending:"
    typer.echo(
        f"{head} {stats.sent:,} acknowledged ({stats.rate:,.0f}/s), {stats.errors} errors; "
        f"grievance {stats.by_stream['grievance']:,}, project {stats.by_stream['project']:,}, "
        f"bad {stats.bad:,}, duplicates {stats.duplicates:,}, late {stats.late:,}; "
        f"simulated time {sim_time}; generation {stats.generate_us_per_event:.1f} µs/event"
        + ("; following the real clock" if stats.caught_up else ""),
        err=not final,
    )


def _dry_run(sim: object, seconds: float) -> None:
    import itertools
    import time

    from producers.simulator import SimOptions, Simulator, resolve_start

    assert isinstance(sim, SimOptions)
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
    from streams.timeutil import format_bangkok

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
    backfill: Annotated[
        bool,
        typer.Option(
            "--backfill",
            help="History beside live: send to the backfill topics, where old events reach "
            "their minute buckets on clocks of their own (never too late, no live alerts).",
        ),
    ] = False,
) -> None:
    """Replay a file onto the topics, with a progress bar and a summary of what could not map."""
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
    bootstrap = _bootstrap(kafka, settings)
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
                )
            )
        except (ValueError, UnicodeDecodeError) as exc:
            typer.echo(f"warroom replay: {exc}", err=True)
            raise typer.Exit(2) from exc
        show(summary)
    _replay_summary(summary)
    if summary.errors:
        raise typer.Exit(1)


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
            typer.echo(f"    {reason}: {count:,} rows (first rows: {rows})")


def submit(
    file: Annotated[Path, typer.Argument(help="One event in the contract, as JSON.")],
    dry_run: Annotated[bool, typer.Option(help="Only validate; send nothing.")] = False,
    kafka: Annotated[Optional[str], typer.Option(help=_KAFKA_HELP)] = None,  # noqa: UP045
    topic_prefix: Annotated[Optional[str], typer.Option(help=_PREFIX_HELP)] = None,  # noqa: UP045
) -> None:
    """Validate one event and send it; a rejected event is explained and not sent (exit 1)."""
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
    bootstrap = _bootstrap(kafka, settings)
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    _ensure_topics(bootstrap, prefix, settings.partitions)
    payload = raw.strip()
    try:
        done = asyncio.run(send_one(bootstrap, Topics(prefix), payload, result))
    except Exception as exc:  # the broker's error, shown to the officer
        typer.echo(f"warroom submit: not delivered: {exc!r}", err=True)
        raise typer.Exit(3) from exc
    typer.echo(
        f"sent: {what} -> topic {done.topic} partition {done.partition} offset {done.offset}"
    )


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""
    app.command("simulate")(simulate)
    app.command("replay")(replay)
    app.command("submit")(submit)
