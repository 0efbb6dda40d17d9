"""`warroom` commands of the alerts package."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

alerts_app = typer.Typer(
    help="Alert rules, their export to Grafana / Prometheus, and acknowledgement.",
    no_args_is_help=True,
)
rules_app = typer.Typer(help="Check alert rule files.", no_args_is_help=True)
alerts_app.add_typer(rules_app, name="rules")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""
    app.add_typer(alerts_app, name="alerts")


@alerts_app.command("export")
def export_command(
    grafana: Path | None = typer.Option(
        None, "--grafana", help="Folder for Grafana alerting provisioning (warroom-rules.yaml)."
    ),
    prometheus: Path | None = typer.Option(
        None, "--prometheus", help="File for the Prometheus ops rules."
    ),
    rules: Path | None = typer.Option(
        None, "--rules", help="Rules file (default: the alerts/rules.yaml shipped with warroom)."
    ),
) -> None:
    """Write the Grafana and Prometheus files (both to their repo paths when no flag is given)."""
    from alerts.export import GRAFANA_DIR, PROMETHEUS_FILE, ExportError, export
    from alerts.rules import RulesError, load_rules

    if grafana is None and prometheus is None:
        grafana, prometheus = GRAFANA_DIR, PROMETHEUS_FILE
    try:
        written = export(load_rules(rules), grafana_dir=grafana, prometheus_file=prometheus)
    except (RulesError, ExportError) as exc:
        typer.echo(f"warroom alerts export: {exc}", err=True)
        raise typer.Exit(1) from exc
    for path in written:
        typer.echo(f"wrote {path}")


@rules_app.command("check")
def check_command(
    file: Path = typer.Argument(..., help="The rules file to validate."),
) -> None:
    """Validate a rules file; list its rules or print the first error (file, rule, field)."""
    from alerts.rules import RulesError, format_duration, load_rules

    try:
        ruleset = load_rules(file)
    except RulesError as exc:
        typer.echo(f"invalid: {exc}", err=True)
        raise typer.Exit(1) from exc
    for r in ruleset.rules:
        state = "" if r.enabled else "  (disabled)"
        timing = f"for {format_duration(r.for_ms):<5} repeat {format_duration(r.repeat_ms):<5}"
        typer.echo(
            f"{r.id:<30} {r.kind.value:<12} {r.severity.value:<8} {timing}"
            f" {r.metric}  {r.title_th}{state}"
        )
    typer.echo(f"ok: {len(ruleset.rules)} rules ({len(ruleset.enabled)} enabled) in {file}")


@alerts_app.command("ack")
def ack_command(
    alert_id: str = typer.Argument(..., help="Alert id as shown in the notification."),
    url: str | None = typer.Option(
        None,
        "--url",
        help="The worker's web server (default: WARROOM_WEB_HOST/PORT when set, else the worker "
        "of the `warroom up` running in the data dir, else http://127.0.0.1:6066).",
    ),
    by: str | None = typer.Option(None, "--by", help="Who acknowledges (default: login name)."),
    note: str = typer.Option("", "--note", help="Optional note kept with the acknowledgement."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the worker."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Data folder of a running `warroom up` (WARROOM_DATA_DIR)."
    ),
    district: str = typer.Option(
        "",
        "--district",
        help="The alert's district code: any worker then forwards the ack to the one holding it.",
    ),
) -> None:
    """Acknowledge an alert: its repeats and its escalation to the governor stop.

    Exit status: 0 done, 1 refused (unknown or malformed id), 2 the worker did not answer.
    """
    from alerts.ack import AckError, post_ack
    from warroom import runinfo
    from warroom.settings import load

    settings = load()
    found = runinfo.worker_url(url, settings, data_dir)
    for line in found.notes:
        typer.echo(f"warroom alerts ack: {line}", err=True)
    typer.echo(runinfo.connect_note("alerts ack", "worker", found.address, found.source), err=True)
    who = by or getpass.getuser()
    try:
        answer = post_ack(
            found.address,
            alert_id,
            who,
            note,
            timeout=timeout,
            password=settings.web_password,
            district_code=district,
        )
    except AckError as exc:
        typer.echo(f"warroom alerts ack: {exc}", err=True)
        raise typer.Exit(2 if exc.unreachable else 1) from exc
    if answer.get("forwarded"):
        typer.echo(
            f"forwarded {alert_id} to the worker holding district {answer.get('district_code')} "
            "(its result: warroom query on alerts_history)"
        )
        return
    already = " (already acknowledged)" if answer.get("already_acknowledged") else ""
    typer.echo(
        f"acknowledged {answer.get('alert_id', alert_id)} ({answer.get('rule_id', '?')}, "
        f"district {answer.get('district_code', '?')}) by {answer.get('acknowledged_by', who)} "
        f"at {answer.get('acknowledged_at', '?')}{already}"
    )


@alerts_app.command("outbox")
def outbox_command(
    state: str = typer.Option(
        "open",
        "--state",
        help="Which items: open (pending and failed), pending, failed, delivered or all.",
    ),
    limit: int = typer.Option(50, "--limit", help="Show the newest N items (0: all)."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="The worker's data folder (default: WARROOM_DATA_DIR)."
    ),
) -> None:
    """List the notification outbox: what waits to be sent, what failed for good and why.

    Recipients are shown as role:name, never by address. Exit status: 0 listed, 1 no outbox
    there or it cannot be read.
    """
    import sqlite3

    from alerts.notifier import outbox_path
    from alerts.outbox import Outbox
    from alerts.outbox_listing import STATES, format_listing
    from warroom.settings import load

    if state not in STATES:
        typer.echo(
            f"warroom alerts outbox: --state must be one of {', '.join(STATES)}, not {state!r}",
            err=True,
        )
        raise typer.Exit(1)
    path = outbox_path(data_dir if data_dir is not None else load().data_dir)
    if not path.exists():
        typer.echo(
            f"warroom alerts outbox: no outbox at {path} (no worker has run with this data "
            "folder; pass --data-dir or set WARROOM_DATA_DIR)",
            err=True,
        )
        raise typer.Exit(1)
    try:
        outbox = Outbox(path)
        try:
            items = [i for s in STATES[state] for i in outbox.items(s)]
            counts = outbox.counts()
        finally:
            outbox.close()
    except (sqlite3.Error, OSError) as exc:
        typer.echo(f"warroom alerts outbox: cannot read {path}: {exc}", err=True)
        raise typer.Exit(1) from exc
    items.sort(key=lambda i: i.seq)
    for line in format_listing(items, counts, limit):
        typer.echo(line)
