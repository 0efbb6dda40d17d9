"""`warroom status`: the live summary of a running worker."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def _worker_url(url: str, data_dir: Path | None) -> str:
    from warroom import runinfo
    from warroom.settings import load

    found = runinfo.worker_url(url or None, load(), data_dir)
    for note in found.notes:
        typer.echo(f"warroom status: {note}", err=True)
    typer.echo(runinfo.connect_note("status", "worker", found.address, found.source), err=True)
    return found.address


def status(
    url: str = typer.Option(
        "",
        "--url",
        help="Worker web server, e.g. http://127.0.0.1:6066 (default: WARROOM_WEB_HOST/PORT "
        "when set, else the worker of the `warroom up` running in the data dir).",
    ),
    interval: float = typer.Option(
        2.0, "--interval", min=0.0, help="Seconds between the two scrapes rates come from."
    ),
    watch: bool = typer.Option(False, "--watch", help="Keep refreshing until Ctrl-C."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Data folder of a running `warroom up` (WARROOM_DATA_DIR)."
    ),
) -> None:
    """Throughput, rejections, lag, store writes, alerts and notifications of a running worker."""
    import orjson
    from rich.console import Console
    from rich.live import Live

    from warroom.status import Poller, StatusError, Summary, render

    base = _worker_url(url, data_dir)
    poller = Poller(base)
    console = Console()

    def show(summary: Summary) -> None:
        if as_json:
            typer.echo(orjson.dumps(summary.as_dict()).decode())
        else:
            console.print(render(summary))

    try:
        summary = poller.poll()
        if interval > 0:
            time.sleep(interval)
            summary = poller.poll()
        if not watch or as_json:
            show(summary)
        if watch and as_json:  # one JSON line per refresh
            while True:
                time.sleep(max(interval, 1.0))
                show(poller.poll())
        elif watch:
            with Live(render(summary), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(max(interval, 1.0))
                    live.update(render(poller.poll()), refresh=True)
    except StatusError as exc:
        typer.echo(f"warroom status: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add the status command to the root CLI."""
    app.command("status")(status)
