"""`warroom dashboards ...`: build the dashboard JSON, check it is current, push it to Grafana."""

from __future__ import annotations

import typer

dashboards_app = typer.Typer(
    help="Grafana dashboards as code: build the JSON, check it, push it to a Grafana.",
    no_args_is_help=True,
)


@dashboards_app.command("build")
def build_command(
    check: bool = typer.Option(
        False, "--check", help="Only check that the committed JSON is current (exit 1 if not)."
    ),
) -> None:
    """Regenerate dashboards/generated/<uid>.json from the code."""
    from dashboards import build

    if check:
        stale = build.stale()
        if stale:
            typer.echo(f"stale: {', '.join(stale)} (run `warroom dashboards build`)", err=True)
            raise typer.Exit(1)
        typer.echo("dashboards are current")
        return
    for path in build.write_all():
        typer.echo(f"wrote {path}")


@dashboards_app.command("push")
def push_command(
    url: str = typer.Option(
        None, "--url", help="Grafana base URL (default: WARROOM_DASHBOARD_URL)."
    ),
    token: str = typer.Option(..., "--token", help="Grafana service account token."),
) -> None:
    """Create or update the warroom folders and dashboards on a running Grafana (idempotent)."""
    from dashboards.push import PushError, push
    from warroom.settings import load

    target = url or load().dashboard_url
    try:
        results = push(target, token)
    except PushError as exc:
        typer.echo(f"warroom: {exc}", err=True)
        raise typer.Exit(1) from exc
    for r in results:
        typer.echo(f"{r.kind:<9} {r.uid:<26} {r.action:<9} {r.title}")
    changed = sum(r.action != "unchanged" for r in results)
    typer.echo(f"{changed} changed, {len(results) - changed} unchanged on {target}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""
    app.add_typer(dashboards_app, name="dashboards")
