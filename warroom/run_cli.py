"""`warroom up`, `warroom worker` and `warroom broker`: the runtime commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the runtime commands to the root CLI."""
