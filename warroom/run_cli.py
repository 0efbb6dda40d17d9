"""`warroom up`, `warroom worker` and `warroom broker`: the runtime commands."""

from __future__ import annotations

from pathlib import Path

import typer

from warroom.settings import Settings, SettingsError, check, load

_LOG_LEVELS = ("debug", "info", "warning", "error")


def positive_seconds(value: float | None) -> float | None:
    """Typer callback: a duration must be more than zero (None: no limit)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} is not a positive number of seconds")
    return value


def log_level_choice(value: str | None) -> str | None:
    """Typer callback: one of the levels warroom's logging knows (None: WARROOM_LOG_LEVEL)."""
    if value is not None and value.lower() not in (*_LOG_LEVELS, "warn", "critical"):
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(_LOG_LEVELS)}")
    return value


def _settings(command: str, **overrides: object) -> Settings:
    from warroom.logs import setup_logging

    s = load().replace(**overrides)
    try:
        check(s)  # flags are checked like the variables they override
    except SettingsError as exc:
        for line in str(exc).splitlines():
            typer.echo(f"warroom {command}: {line}", err=True)
        raise typer.Exit(2) from None
    setup_logging(s.log_level, s.log_format)
    return s


def up(
    duration: float = typer.Option(
        None,
        "--duration",
        callback=positive_seconds,
        help="Stop after this many seconds (default: until Ctrl-C).",
    ),
    backfill_hours: float = typer.Option(
        None,
        "--backfill-hours",
        help="Hours of recent history the simulator sends first, as fast as Kafka takes them "
        "(default 673: 4 weeks + 1 h, the surge rules' baseline; 25 with --load above 1).",
    ),
    cases_per_day: float = typer.Option(
        None,
        "--cases-per-day",
        help="New grievance cases a day nationally once live (default 1,000; each has a "
        "handful of lifecycle steps, project reports come on top).",
    ),
    load: float = typer.Option(
        None, "--load", help="Multiplier on --cases-per-day for throughput demos (default 1)."
    ),
    rate: float = typer.Option(
        None,
        "--rate",
        help="Paced simulator (benchmarks) instead of backfill + live: events per second, "
        "simulated time running ahead of the clock.",
    ),
    seed: int = typer.Option(1, "--seed", help="Simulator seed (same seed, same events)."),
    speedup: float = typer.Option(
        None,
        "--speedup",
        help="Paced simulator: simulated seconds per wall-clock second (default with --rate: "
        "about 20 000 new cases a simulated day).",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Stream workers (one per core is the point: the first owns the embedded store, "
        "the others write through it).",
    ),
    no_simulator: bool = typer.Option(
        False, "--no-simulator", help="Do not start the simulator (feed events yourself)."
    ),
    kafka: str = typer.Option(
        None, "--kafka", help="Use this Kafka (HOST:PORT) instead of the embedded broker."
    ),
    data_dir: Path = typer.Option(None, "--data-dir", help="Data folder (WARROOM_DATA_DIR)."),
    store: str = typer.Option(None, "--store", help="Store URL (WARROOM_STORE)."),
    partitions: int = typer.Option(
        None, "--partitions", min=1, help="Partitions per topic (WARROOM_PARTITIONS)."
    ),
    web_port: int = typer.Option(
        None,
        "--web-port",
        min=0,
        max=65535,
        help="Worker web port (WARROOM_WEB_PORT; 0: any free port).",
    ),
    log_level: str = typer.Option(
        None, "--log-level", callback=log_level_choice, help="debug, info, warning, error."
    ),
) -> None:
    """Run broker + worker + simulator on this machine with a live summary.

    Ctrl-C (or SIGTERM) stops the simulator, then the worker (final flush and checkpoint),
    then the broker; a second Ctrl-C forces. One `up` per data folder.
    """
    from warroom.up import UpOptions, run_up

    live = {"--backfill-hours": backfill_hours, "--cases-per-day": cases_per_day, "--load": load}
    live_args = [a for flag, v in live.items() if v is not None for a in (flag, str(v))]
    if live_args and (rate is not None or speedup is not None):
        typer.echo(
            "warroom up: --backfill-hours, --cases-per-day and --load are for the live "
            "simulator; --rate and --speedup run it paced: use one or the other",
            err=True,
        )
        raise typer.Exit(2)
    for flag, v in (*live.items(), ("--rate", rate), ("--speedup", speedup)):
        if v is None:
            continue
        if flag == "--backfill-hours" and not 0 <= v <= 24 * 366:
            typer.echo("warroom up: --backfill-hours must be between 0 and 8784 (a year)", err=True)
            raise typer.Exit(2)
        if flag != "--backfill-hours" and v <= 0:
            typer.echo(f"warroom up: {flag} must be positive", err=True)
            raise typer.Exit(2)

    s = _settings(
        "up",
        kafka=kafka,
        data_dir=data_dir,
        store=store,
        partitions=partitions,
        web_port=web_port,
        log_level=log_level,
    )
    options = UpOptions(
        duration=duration,
        simulate=not no_simulator,
        rate=rate,
        seed=seed,
        speedup=speedup,
        workers=workers,
        extra_sim_args=live_args,
    )
    raise typer.Exit(run_up(s, options))


def worker(
    kafka: str = typer.Option(None, "--kafka", help="Kafka bootstrap servers (WARROOM_KAFKA)."),
    store: str = typer.Option(None, "--store", help="Store URL (WARROOM_STORE)."),
    web_port: int = typer.Option(
        None, "--web-port", min=0, max=65535, help="Web port (WARROOM_WEB_PORT)."
    ),
    log_level: str = typer.Option(
        None, "--log-level", callback=log_level_choice, help="debug, info, warning, error."
    ),
) -> None:
    """Run one stream worker (consumes, computes metrics, writes ClickHouse)."""
    from streams.worker import run_worker

    s = _settings("worker", kafka=kafka, store=store, web_port=web_port, log_level=log_level)
    if not s.kafka:
        typer.echo("warroom worker: set --kafka or WARROOM_KAFKA", err=True)
        raise typer.Exit(2)
    raise typer.Exit(run_worker(s, s.kafka))


def broker(
    port: int = typer.Option(
        0, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one)."
    ),
) -> None:
    """Run the embedded Tansu broker alone, with the warroom topics, until Ctrl-C."""
    import asyncio
    import signal
    import time

    from streams.broker import BrokerError, EmbeddedBroker, ensure_topics
    from streams.topics import Topics

    s = _settings("broker")
    b = EmbeddedBroker(port=port)
    try:
        bootstrap = b.start()
    except BrokerError as exc:
        typer.echo(f"warroom broker: {exc}", err=True)
        raise typer.Exit(2) from exc
    asyncio.run(ensure_topics(bootstrap, Topics(s.topic_prefix).all(), s.partitions))
    typer.echo(bootstrap)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop and b.alive():
            time.sleep(0.2)
    finally:
        b.stop()


def register(app: typer.Typer) -> None:
    """Add the runtime commands to the root CLI."""
    app.command()(up)
    app.command()(worker)
    app.command()(broker)
