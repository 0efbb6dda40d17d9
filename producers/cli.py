"""`warroom` commands of the producers package: simulate, replay, submit."""

from __future__ import annotations

import asyncio
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


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""
    app.command("simulate")(simulate)
