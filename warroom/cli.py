"""The `warroom` command: it wires the packages together and presents results."""

from __future__ import annotations

from typing import Any

import typer
from typer._click import exceptions as click_exc  # typer >= 0.29 vendors click here
from typer.core import TyperOption

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
    from alerts.contacts_cli import register as register_contacts
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
        register_contacts,
    ):
        register(app)


_register()

_type_column = TyperOption.display_type_rich


def _flag_type_column(self: TyperOption, ctx: Any) -> str | None:
    """Typer 0.29 shows `<bool>` after plain flags (--dry-run, --help), which take no value."""
    return None if self.is_flag else _type_column(self, ctx)


TyperOption.display_type_rich = _flag_type_column  # type: ignore[method-assign]


def main() -> None:
    try:
        load_settings()
    except SettingsError as exc:
        for line in str(exc).splitlines():
            typer.echo(f"warroom: {line}", err=True)
        raise SystemExit(2) from exc
    try:
        code = app(standalone_mode=False, prog_name="warroom")
    except click_exc.NoArgsIsHelpError as exc:
        exc.show()  # the help text, as `warroom` alone has always shown it
        raise SystemExit(exc.exit_code) from None
    except click_exc.UsageError as exc:
        # one plain line instead of click's boxed usage block: what is wrong, where to look
        command = exc.ctx.command_path if exc.ctx is not None else "warroom"
        typer.echo(f"{command}: {exc.format_message()} (see {command} --help)", err=True)
        raise SystemExit(2) from None
    except click_exc.ClickException as exc:
        typer.echo(f"warroom: {exc.format_message()}", err=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
