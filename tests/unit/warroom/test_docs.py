"""The reference docs generated from the code are current (regenerate: python -m warroom.docs)."""

from __future__ import annotations

from warroom.docs import ROOT, cli_markdown, readme_with_settings
from warroom.settings import env_table


def test_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == cli_markdown(), (
        "docs/cli.md is stale: run `python -m warroom.docs`"
    )


def test_readme_lists_every_setting_as_the_code_declares_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == readme_with_settings(readme), (
        "README settings are stale: python -m warroom.docs"
    )
    for name, _, _ in env_table():
        assert f"`{name}`" in readme
