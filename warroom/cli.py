"""The `warroom` command: it wires the packages together and presents results."""

from __future__ import annotations

import typer

from warroom.settings import SettingsError
from warroom.settings import load as load_settings

app = typer.Typer(
    name="warroom",
    help="Real-time Data Monitoring for the MOI war room (grievances and projects per district).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from alerts.cli import register as register_alerts
    from dashboards.cli import register as register_dashboards
    from producers.cli import register as register_producers
    from sinks.cli import register as register_sinks
    from warroom.run_cli import register as register_run
    from warroom.status_cli import register as register_status

    for register in (
        register_run,
        register_status,
        register_producers,
        register_sinks,
        register_dashboards,
        register_alerts,
    ):
        register(app)


_register()


def main() -> None:
    try:
        load_settings()
    except SettingsError as exc:
        typer.echo(f"warroom: {exc}", err=True)
        raise SystemExit(2) from exc
    app()


if __name__ == "__main__":
    main()
