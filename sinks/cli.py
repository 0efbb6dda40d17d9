"""`warroom` commands of the sinks package: migrate, query."""

from __future__ import annotations

import sys
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
) -> None:
    """Create the database and apply pending schema migrations; refresh reference geography."""
    from sinks.backends import StoreError, open_backend
    from sinks.migrate import migrate
    from sinks.url import StoreURLError, parse_store_url
    from warroom.settings import load

    url = store or load().store_url
    try:
        parsed = parse_store_url(url)
        backend = open_backend(parsed)
    except (StoreURLError, StoreError) as exc:
        typer.echo(f"warroom migrate: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        result = migrate(backend)
    except StoreError as exc:
        typer.echo(f"warroom migrate: {parsed.redacted()}: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        backend.close()
    applied = ", ".join(str(v) for v in result.applied) or "none (up to date)"
    typer.echo(
        f"{parsed.redacted()}: migrations applied: {applied}; reference: "
        f"{result.provinces} provinces, {result.districts} districts"
    )


def query_command(
    sql: Annotated[str, typer.Argument(help="A read-only statement (SELECT, SHOW, ...).")],
    url: Annotated[
        str | None,
        typer.Option(help="Query endpoint of a running worker (default http://WEB_HOST:PORT)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="ClickHouse output format.")] = (
        "PrettyCompact"
    ),
    store: Annotated[
        str | None,
        typer.Option(help="Store to open directly when no worker answers (chdb only)."),
    ] = None,
) -> None:
    """Run a read-only query through a running worker, or on the chdb store if none runs."""
    from sinks.query_client import QueryFailed, run_query
    from warroom.settings import load

    settings = load()
    endpoint = url or f"http://{settings.web_host}:{settings.web_port}"
    try:
        output = run_query(sql, endpoint=endpoint, fmt=fmt, store=store or settings.store_url)
    except QueryFailed as exc:
        typer.echo(f"warroom query: {exc}", err=True)
        raise typer.Exit(1) from exc
    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()
