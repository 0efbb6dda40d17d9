"""One interface over both stores: embedded chdb and a ClickHouse server via clickhouse-driver.

Every call blocks; the writer runs them on one dedicated thread so the event loop never waits
(chdb and clickhouse-driver both release the GIL while the engine or the socket works).

Values handed to `insert` are columnar (`{column: [values...]}`). Time columns take ints in the
column's own unit, as ClickHouse itself reads integers: `DateTime` = epoch **seconds**,
`DateTime64(3)` = epoch **milliseconds** (aware datetimes work too). Both backends pass them on
exactly (chdb: Arrow timestamp[s|ms, UTC]; clickhouse-driver: raw ticks). None is NULL for
Nullable columns, lists for Array columns, str for UUID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from sinks.url import StoreURL, parse_store_url

__all__ = [
    "Backend",
    "StoreError",
    "StoreLockedError",
    "open_backend",
    "qualified_table",
    "quote_identifier",
    "split_type",
]


class StoreError(RuntimeError):
    """A store call failed. `code`/`name` are ClickHouse's (e.g. 60, UNKNOWN_TABLE) when known;
    `transient` says whether retrying the same call can succeed (connection lost, disk full,
    read-only file system, too many parts...)."""

    def __init__(
        self, message: str, *, code: int | None = None, name: str = "", transient: bool = True
    ) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.transient = transient


class StoreLockedError(StoreError):
    """The chdb data folder is held by another process (a running worker)."""


# errors that retrying cannot fix: the statement or the data is wrong, not the store
_PERMANENT = frozenset(
    {
        "SYNTAX_ERROR",
        "UNKNOWN_TABLE",
        "UNKNOWN_DATABASE",
        "UNKNOWN_IDENTIFIER",
        "UNKNOWN_FUNCTION",
        "UNKNOWN_TYPE",
        "UNKNOWN_SETTING",
        "UNKNOWN_FORMAT",
        "TYPE_MISMATCH",
        "ILLEGAL_COLUMN",
        "NO_SUCH_COLUMN_IN_TABLE",
        "THERE_IS_NO_COLUMN",
        "NUMBER_OF_COLUMNS_DOESNT_MATCH",
        "CANNOT_PARSE_TEXT",
        "CANNOT_PARSE_UUID",
        "CANNOT_CONVERT_TYPE",
        "READONLY",
        "ACCESS_DENIED",
        "BAD_ARGUMENTS",
        "ILLEGAL_TYPE_OF_ARGUMENT",
    }
)
# names of the codes above, for servers whose messages do not carry the name (18.x)
_CODE_NAMES = {
    6: "CANNOT_PARSE_TEXT",
    8: "THERE_IS_NO_COLUMN",
    16: "NO_SUCH_COLUMN_IN_TABLE",
    36: "BAD_ARGUMENTS",
    43: "ILLEGAL_TYPE_OF_ARGUMENT",
    44: "ILLEGAL_COLUMN",
    46: "UNKNOWN_FUNCTION",
    47: "UNKNOWN_IDENTIFIER",
    50: "UNKNOWN_TYPE",
    53: "TYPE_MISMATCH",
    60: "UNKNOWN_TABLE",
    62: "SYNTAX_ERROR",
    70: "CANNOT_CONVERT_TYPE",
    73: "UNKNOWN_FORMAT",
    81: "UNKNOWN_DATABASE",
    115: "UNKNOWN_SETTING",
    164: "READONLY",
    497: "ACCESS_DENIED",
}
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\.?\s*$")


def error_from_message(message: str, code: int | None = None) -> StoreError:
    """A StoreError classified from the ClickHouse exception text ("Code: 60. ... (NAME)")."""
    message = message.split(". Stack trace:", 1)[0].strip()
    code_match = _CODE.search(message)
    name_match = _NAME.search(message)
    if code is None and code_match:
        code = int(code_match.group(1))
    name = name_match.group(1) if name_match else _CODE_NAMES.get(code or -1, "")
    return StoreError(message, code=code, name=name, transient=name not in _PERMANENT)


@runtime_checkable
class Backend(Protocol):
    """What the writer, the migration runner and the query endpoint need from a store."""

    #: "chdb" or "native" (the `backend` label of the sink metrics)
    name: str
    #: database that unqualified table names resolve to
    database: str

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL, INSERT ... SELECT)."""

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        """Insert columnar data into `table` (of `database` unless qualified); returns rows."""

    def query_rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a SELECT and return its rows as tuples of Python values."""

    def query_bytes(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> bytes:
        """Run a SELECT and return the raw output in ClickHouse format `fmt` (e.g. Native).
        `params` fill `{name:Type}` placeholders (values as text, as the HTTP interface
        passes them)."""

    def ping(self) -> None:
        """Raise StoreError unless the store answers."""

    def close(self) -> None:
        """Release the connection (idempotent)."""


def quote_identifier(identifier: str) -> str:
    """A ClickHouse identifier in backquotes (database, table and column names)."""
    return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"


def qualified_table(database: str, table: str) -> str:
    """`db`.`table`, or `table` as given when it already names its database."""
    if "." in table:
        return table
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def split_type(ch_type: str) -> tuple[str, bool, str | None]:
    """("base", nullable, array element type or None) of a ClickHouse type string.

    LowCardinality and Nullable wrappers are stripped: they change storage, not the values.
    """
    t = ch_type.strip()
    nullable = False
    while True:
        if t.startswith("LowCardinality(") and t.endswith(")"):
            t = t[len("LowCardinality(") : -1].strip()
        elif t.startswith("Nullable(") and t.endswith(")"):
            t = t[len("Nullable(") : -1].strip()
            nullable = True
        else:
            break
    if t.startswith("Array(") and t.endswith(")"):
        return "Array", nullable, t[len("Array(") : -1].strip()
    base = t.split("(", 1)[0]
    return base, nullable, None


def open_backend(
    url: str | StoreURL, *, readonly: bool = False, create_database: bool = True
) -> Backend:
    """Connect to the store named by `url` (see sinks.url).

    readonly: the connection refuses writes and DDL (used by the query endpoint and
    `warroom query`). create_database: create the URL's database when it is missing.
    """
    parsed = parse_store_url(url) if isinstance(url, str) else url
    if parsed.kind == "chdb":
        from sinks.backends.chdb import ChdbBackend

        assert parsed.path is not None
        return ChdbBackend(
            parsed.path, parsed.database, readonly=readonly, create_database=create_database
        )
    if parsed.kind == "worker":
        from sinks.backends.worker import WorkerStoreBackend

        return WorkerStoreBackend(parsed)
    from sinks.backends.native import NativeBackend

    return NativeBackend(parsed, readonly=readonly, create_database=create_database)
