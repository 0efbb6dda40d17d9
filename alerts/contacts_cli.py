"""`warroom contacts …`: enrolment codes for LINE, the bindings, the enrolment audit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from alerts.contacts_store import ContactsStore
    from warroom.settings import Settings

contacts_app = typer.Typer(
    help="District chiefs and governors on LINE: enrolment codes, bindings, audit.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(contacts_app, name="contacts")


def _store(db: Path | None) -> tuple[ContactsStore, Settings]:
    from alerts.contacts_store import ContactsStore, contacts_path
    from warroom.settings import load

    settings = load()
    if db is not None:
        path = db
    elif settings.contacts_db:
        path = Path(settings.contacts_db)
    else:
        path = contacts_path(settings.data_dir, settings.alert_directory)
    try:
        return ContactsStore(path), settings
    except Exception as exc:  # sqlite3.Error, OSError: one line a person can act on
        typer.echo(f"warroom contacts: cannot open the contacts store {path}: {exc}", err=True)
        raise typer.Exit(1) from exc


_DB = typer.Option(None, "--db", help="Contacts store (default: WARROOM_CONTACTS_DB, see README).")


@contacts_app.command("invite")
def invite_command(
    district: str | None = typer.Option(None, "--district", help="District code (chief)."),
    province: str | None = typer.Option(None, "--province", help="Province code (governor)."),
    role: str = typer.Option("chief", "--role", help="chief or governor."),
    name: str = typer.Option("", "--name", help="Name shown in replies (default: the office)."),
    valid_hours: float | None = typer.Option(
        None, "--valid-hours", help="How long the code works (default WARROOM_INVITE_HOURS)."
    ),
    db: Path | None = _DB,
) -> None:
    """Issue a one-time enrolment code; the chief sends it to the LINE official account."""
    from alerts.enrolment import InviteError, add_friend_link, issue_invite
    from streams.timeutil import format_bangkok

    area = district if role == "chief" else province
    if area is None or (district is not None and province is not None):
        typer.echo(
            "warroom contacts invite: give --district CODE for --role chief, or --province CODE "
            "for --role governor",
            err=True,
        )
        raise typer.Exit(2)
    store, settings = _store(db)
    hours = valid_hours if valid_hours is not None else settings.invite_hours
    try:
        invite = issue_invite(
            store,
            role=role,
            area=area,
            now_ms=int(time.time() * 1000),
            ttl_ms=int(hours * 3_600_000),
            name=name,
        )
    except InviteError as exc:
        typer.echo(f"warroom contacts invite: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    typer.echo(f"code:     {invite.code}")
    typer.echo(f"for:      {invite.name} ({invite.role} {invite.area})")
    typer.echo(f"valid to: {format_bangkok(invite.expires_ms)} (เวลาประเทศไทย), once")
    if settings.line_bot_id:
        typer.echo(f"add:      {add_friend_link(settings.line_bot_id)}")
    else:
        typer.echo("add:      (set WARROOM_LINE_BOT_ID to print the add-friend link)")
    typer.echo("ขั้นตอน: เพิ่มเพื่อนบัญชี LINE ของศูนย์ปฏิบัติการ แล้วพิมพ์รหัสข้างต้นส่งในแชต")


@contacts_app.command("list")
def list_command(db: Path | None = _DB) -> None:
    """The LINE bindings: who is bound to which district or province, and whether reachable."""
    from streams.timeutil import format_bangkok

    store, _ = _store(db)
    try:
        bindings = store.bindings()
    finally:
        store.close()
    for b in bindings:
        typer.echo(
            f"{b.role:<9} {b.area:<5} {b.status:<12} {b.line_user}  {b.name}  "
            f"(bound {format_bangkok(b.bound_ms)} with {b.code})"
        )
    typer.echo(f"{len(bindings)} binding(s)")


@contacts_app.command("audit")
def audit_command(db: Path | None = _DB) -> None:
    """Every enrolment step: invites issued, codes used (or refused), follows and unfollows."""
    from streams.timeutil import format_bangkok

    store, _ = _store(db)
    try:
        rows = store.audit()
    finally:
        store.close()
    for r in rows:
        typer.echo(
            f"{format_bangkok(r.at_ms)}  {r.event:<8} {r.outcome:<13} {r.role:<9} {r.area:<5} "
            f"code={r.code or '-'} line={r.line_user or '-'}"
        )
    typer.echo(f"{len(rows)} row(s)")
