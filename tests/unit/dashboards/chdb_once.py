"""Run SQL on a throwaway in-memory chdb in a child process (a chdb session is per process;
the test process may hold another on a data folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "run_chdb"]

_CHILD = r"""
import json, sys
from chdb import session
s = session.Session()
out = []
for sql in json.load(sys.stdin):
    try:
        r = s.query(sql, "JSONCompactEachRow")
        text = r.bytes().decode() if hasattr(r, "bytes") else str(r)
        out.append({"rows": [json.loads(line) for line in text.splitlines() if line.strip()]})
    except Exception as exc:  # the error text is what the test asserts on
        out.append({"error": str(exc)})
s.close()
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Outcome:
    """One statement's rows, or ClickHouse's error text."""

    rows: list[list[Any]] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_chdb(statements: list[str], timeout: float = 120.0) -> list[Outcome]:
    """Execute the statements in order in one fresh session; one Outcome each."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return [Outcome(r.get("rows"), r.get("error")) for r in results]
