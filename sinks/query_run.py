"""One reader's query on its own chdb session: vetted, under limits, readonly=1, then closed.

A fresh session per query: nothing a query sets or leaves behind reaches the next one (chdb
4.4 refused the next query of a readonly session after a TOO_MANY_ROWS, and once returned a
refused result to it). The client's settings are applied first (limits only downwards), then
the limits and a tag, then readonly=1 freezes them all: a SETTINGS clause cannot raise them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sinks.backends import quote_identifier
from sinks.backends.chdb import ChdbBackend
from sinks.query_guard import QueryError, denied_functions, vet

__all__ = ["QueryLimits", "open_reader", "read_store", "run_readonly", "session_settings"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# settings a client may choose: output shape only (Grafana, clickhouse-connect, JSON clients)
_FREE_PREFIXES = ("output_format_", "format_")
_FREE = frozenset(
    {
        "date_time_output_format",
        "session_timezone",
        "join_use_nulls",
        "extremes",
        "enable_analyzer",
        "allow_experimental_analyzer",
        "prefer_column_name_to_alias",
        "max_block_size",
    }
)


@dataclass(frozen=True)
class QueryLimits:
    """Per-query ceilings; a client may ask for less, never for more (0 = ours)."""

    max_execution_time: float = 60.0
    max_memory_usage: int = 1_000_000_000
    max_rows_to_read: int = 1_000_000_000
    max_result_rows: int = 1_000_000
    max_result_bytes: int = 256_000_000

    def as_settings(self) -> dict[str, float | int]:
        return {
            "max_execution_time": self.max_execution_time,
            "max_memory_usage": self.max_memory_usage,
            "max_rows_to_read": self.max_rows_to_read,
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_bytes,
        }


def _number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise QueryError(
            27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", f"setting {name}={value!r} is not a number"
        ) from None


def _quoted(value: str) -> str:
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def session_settings(requested: Mapping[str, str], limits: QueryLimits) -> list[tuple[str, str]]:
    """(name, SQL value) to SET before readonly=1; QueryError for a setting a reader may not
    change (as a readonly=1 ClickHouse user is told)."""
    ceilings = limits.as_settings()
    out: list[tuple[str, str]] = []
    for name, value in requested.items():
        if not _NAME.match(name):
            raise QueryError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'", status=404)
        if name in ceilings:
            asked = _number(name, value)
            ceiling = ceilings[name]
            chosen = ceiling if asked <= 0 or asked > ceiling else asked
            ceilings[name] = int(chosen) if isinstance(ceiling, int) else chosen
        elif name in _FREE or name.startswith(_FREE_PREFIXES):
            out.append((name, _quoted(value)))
        else:
            raise QueryError(
                164,
                "READONLY",
                f"Cannot modify '{name}' setting in readonly mode: the warroom query endpoint "
                f"lets a reader choose output settings and lower limits only",
            )
    out += [(name, str(value)) for name, value in ceilings.items()]
    out += [
        ("timeout_overflow_mode", "'throw'"),
        ("read_overflow_mode", "'throw'"),
        ("result_overflow_mode", "'throw'"),
    ]
    return out


def open_reader(path: Path, database: str) -> ChdbBackend:
    """A new session on the store at `path`; run_readonly makes it readonly=1 before any
    reader SQL."""
    return ChdbBackend(path, database, readonly=False, create_database=False)


def run_readonly(
    backend: ChdbBackend,
    sql: str,
    fmt: str,
    *,
    database: str,
    settings: Mapping[str, str],
    params: Mapping[str, str] | None,
    limits: QueryLimits,
    tag: str,
    denied: frozenset[str],
) -> bytes:
    """Vet and run `sql` on `backend` (a session of its own, closed by the caller).

    `tag` goes into log_comment: the service kills the query by it when its client leaves."""
    chosen = session_settings(settings, limits)
    backend.execute(f"USE {quote_identifier(database)}")

    def text(query: str, qparams: Mapping[str, str] | None) -> str:
        return backend.query_bytes(query, "TabSeparatedRaw", qparams).decode("utf-8", "replace")

    # vetting first, under no client setting (a tiny max_result_rows would refuse the AST);
    # it only formats and parses: the reader's statement does not run yet
    vetted = vet(text, sql, params, database, denied)
    for name, value in chosen:
        backend.execute(f"SET {name} = {value}")
    backend.execute(f"SET log_comment = {_quoted(tag)}")
    backend.execute("SET readonly = 1")
    return backend.query_bytes(vetted.statement, fmt, params or None)


def read_store(path: Path, database: str, sql: str, fmt: str) -> bytes:
    """`sql` on the store at `path` opened here (no worker holds it), as the endpoint runs it."""
    backend = open_reader(path, database)
    try:
        denied = denied_functions(
            lambda query, _params: backend.query_bytes(query, "TabSeparatedRaw").decode()
        )
        return run_readonly(
            backend,
            sql,
            fmt,
            database=database,
            settings={},
            params=None,
            limits=QueryLimits(),
            tag=f"warroom-query-{uuid.uuid4().hex}",
            denied=denied,
        )
    finally:
        backend.close()
