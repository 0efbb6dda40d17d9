"""docs/retention.md states the defaults the code has, and the defaults stand their own checks."""

from __future__ import annotations

import re
from pathlib import Path

from sinks.retention import RULES, policy, problems
from warroom.settings import Settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "retention.md"


def _doc_rows() -> dict[str, tuple[int, str, bool]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        table = re.fullmatch(r"`([a-z_]+)`", cells[0]) if len(cells) == 4 else None
        if table:
            days = int(re.match(r"(\d+) days", cells[1]).group(1))  # type: ignore[union-attr]
            column = re.match(r"`([a-z_]+)`", cells[2]).group(1)  # type: ignore[union-attr]
            rows[table.group(1)] = (days, column, "after the end of their month" in cells[1])
    return rows


def test_the_doc_states_every_default_as_the_code_has_it() -> None:
    defaults = policy(Settings())
    assert _doc_rows() == {
        rule.table: (defaults[rule.table], rule.column, rule.whole_months) for rule in RULES
    }


def test_the_defaults_stand_their_own_checks() -> None:
    assert problems(Settings()) == []
