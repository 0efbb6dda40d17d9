"""`warroom status`: the live summary of a running worker."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the status command to the root CLI."""
