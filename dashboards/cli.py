"""`warroom dashboards ...`: build the dashboard JSON, check it, push it, screenshot the wall."""

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
    if not target:
        typer.echo(
            "warroom: no Grafana to push to: pass --url or set WARROOM_DASHBOARD_URL", err=True
        )
        raise typer.Exit(2)
    try:
        results = push(target, token)
    except PushError as exc:
        typer.echo(f"warroom: {exc}", err=True)
        raise typer.Exit(1) from exc
    for r in results:
        typer.echo(f"{r.kind:<9} {r.uid:<26} {r.action:<9} {r.title}")
    changed = sum(r.action != "unchanged" for r in results)
    typer.echo(f"{changed} changed, {len(results) - changed} unchanged on {target}")


@dashboards_app.command("screenshots")
def screenshots_command(
    url: str = typer.Option(
        None, "--url", help="The worker's web address (default: the running `warroom up`)."
    ),
    out: str = typer.Option("docs/wall", "--out", help="Folder for the PNG files."),
    district: str = typer.Option("1001", "--district", help="District of the phone view."),
    data_dir: str = typer.Option(None, "--data-dir", help="Data folder of the running `up`."),
) -> None:
    """Screenshot the wall page: every dashboard at 1920x1080 (kiosk), the district on a phone."""
    from pathlib import Path

    from dashboards.wall.screenshots import ScreenshotError, plan, take
    from warroom.runinfo import discover
    from warroom.settings import load

    if url is None:
        found = discover(Path(data_dir) if data_dir else load().data_dir).info
        if found is None:
            typer.echo("warroom: no running `warroom up` found: start one or pass --url", err=True)
            raise typer.Exit(2)
        url = found.web
    try:
        paths = take(url, Path(out), plan(district))
    except ScreenshotError as exc:
        typer.echo(f"warroom: {exc}", err=True)
        raise typer.Exit(1) from exc
    for path in paths:
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""
    app.add_typer(dashboards_app, name="dashboards")
