"""`warroom` commands of the sinks package: migrate, query."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""
    app.command("migrate")(migrate_command)
    app.command("query")(query_command)


def migrate_command(
    store: Annotated[
        str | None,
        typer.Option(help="Store URL (chdb:///path or clickhouse://...); default WARROOM_STORE."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data folder whose store to migrate, as `up` and `query` take it."),
    ] = None,
) -> None:
    """Create the database and apply pending schema migrations; refresh reference geography."""
    from sinks.backends import StoreError, open_backend
    from sinks.migrate import migrate
    from sinks.retention import policy
    from sinks.url import StoreURLError, parse_store_url
    from warroom import runinfo
    from warroom.settings import load

    settings = load()
    # a flag beats the environment: --data-dir names that folder's store even when
    # WARROOM_STORE is set
    folder = settings.replace(data_dir=data_dir, store="") if data_dir else settings
    url = store or folder.store_url
    try:
        parsed = parse_store_url(url)
        holder = runinfo.store_holder(parsed.path) if parsed.path is not None else None
        if holder is not None:  # before chdb opens it: its engine prints its own error first
            who = f"pid {holder}" if holder > 0 else "another process"
            typer.echo(
                f"warroom migrate: the store {parsed.path} is in use by {who}; stop it first "
                "(a worker applies the migrations itself when it starts)",
                err=True,
            )
            raise typer.Exit(2)
        backend = open_backend(parsed)
    except (StoreURLError, StoreError) as exc:
        typer.echo(f"warroom migrate: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        result = migrate(backend, retention=policy(settings))
    except StoreError as exc:
        typer.echo(f"warroom migrate: {parsed.redacted()}: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        backend.close()
    applied = ", ".join(str(v) for v in result.applied) or "none (up to date)"
    typer.echo(
        f"{parsed.redacted()}: migrations applied: {applied}; reference: "
        f"{result.provinces} provinces, {result.districts} districts; retention changed: "
        f"{', '.join(result.retention) or 'none (as configured)'}"
    )


def query_command(
    sql: Annotated[str, typer.Argument(help="A read-only statement (SELECT, SHOW, ...).")],
    url: Annotated[
        str | None,
        typer.Option(
            help="Query endpoint of a running worker (default: WARROOM_WEB_HOST/PORT when set, "
            "else the worker of the `warroom up` running in the data dir, else "
            "http://127.0.0.1:6066)."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="ClickHouse output format.")] = (
        "PrettyCompact"
    ),
    store: Annotated[
        str | None,
        typer.Option(
            help="Answer from this store only (WARROOM_STORE): read directly when no process "
            "holds it, through the worker that holds it, else an error naming the holder."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data folder of a running `warroom up` (default: WARROOM_DATA_DIR)."),
    ] = None,
) -> None:
    """Run a read-only query through a running worker, or on the chdb store if none runs."""
    from sinks.query_client import QueryFailed, StoreUnreachable, ask
    from warroom import runinfo
    from warroom.settings import load

    settings = load().replace(data_dir=data_dir)  # its store is the default store
    found = runinfo.worker_url(url, settings, None)
    for note in found.notes:
        typer.echo(f"warroom query: {note}", err=True)
    endpoint = found.address
    up = runinfo.discover(settings.data_dir.resolve()).info
    named = store or os.environ.get("WARROOM_STORE") or ""
    target = named or (up.store if up is not None and endpoint == up.web else settings.store_url)
    try:
        answer = ask(
            sql,
            endpoint=endpoint,
            fmt=fmt,
            store=target,
            store_given=bool(named),
            password=settings.web_password,
        )
    except QueryFailed as exc:
        typer.echo(f"warroom query: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, StoreUnreachable) else 1) from None
    # on stderr, so that stdout stays the query's output
    typer.echo(f"warroom query: answered by {answer.via}", err=True)
    sys.stdout.buffer.write(answer.output)
    sys.stdout.buffer.flush()
