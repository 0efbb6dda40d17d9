"""Embedded store: chdb (the ClickHouse engine in-process) on a local data folder.

chdb serves one data path per process and locks the folder against other processes. Several
connections (sessions) on that one path may coexist, each with its own current database and
settings: the writer holds one, the query endpoint its own read-only ones.

Inserts go through Arrow: the columns become a `pyarrow.Table` that the engine reads with
`INSERT ... SELECT * FROM Python(table)` — chdb scans it without a text round trip and casts
to the table's types (measured in bench/sinks.py).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import importlib
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chdb import session as chdb_session

from sinks.backends import (
    StoreError,
    StoreLockedError,
    error_from_message,
    qualified_table,
    quote_identifier,
    split_type,
)

__all__ = ["ChdbBackend", "arrow_type"]

log = logging.getLogger(__name__)

# pyarrow (a chdb dependency) ships no type information, and chdb's own functions are
# unannotated: both are used through Any so that mypy --strict stays meaningful elsewhere
pa: Any = importlib.import_module("pyarrow")
_Session: Any = chdb_session.Session

_paths_lock = threading.Lock()
_open_path: Path | None = None
_open_count = 0

_SIMPLE: dict[str, Any] = {
    "String": pa.string(),
    "FixedString": pa.string(),
    "UUID": pa.string(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "Bool": pa.bool_(),
    # ints are in the column's own unit, as ClickHouse reads them: DateTime = epoch seconds
    "DateTime": pa.timestamp("s", tz="UTC"),
}
_DT64_UNIT = {0: "s", 3: "ms", 6: "us", 9: "ns"}
_CHUNK = 16_384
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def arrow_type(ch_type: str) -> Any:
    """The Arrow type a column of ClickHouse type `ch_type` is built with (None: inferred)."""
    base, _, element = split_type(ch_type)
    if element is not None:
        inner = arrow_type(element)
        return pa.list_(inner) if inner is not None else None
    if base == "DateTime64":
        # DateTime64(P) = ticks of 10^-P s since the epoch (P = 3: milliseconds)
        precision = _precision(ch_type)
        unit = _DT64_UNIT.get(precision)
        return pa.timestamp(unit, tz="UTC") if unit else None
    return _SIMPLE.get(base)


def arrow_table(table: str, columns: Mapping[str, Sequence[Any]], types: Mapping[str, str]) -> Any:
    """Python column lists -> a pyarrow Table typed for `table`'s ClickHouse columns."""
    arrays = []
    names = list(columns)
    for name in names:
        ch_type = types.get(name)
        if ch_type is None:
            raise StoreError(
                f"table {table} has no column {name!r}",
                name="NO_SUCH_COLUMN_IN_TABLE",
                transient=False,
            )
        try:
            values, typ = columns[name], arrow_type(ch_type)
            # in chunks: each conversion holds the GIL, long ones stall the event loop
            arrays.append(
                pa.chunked_array(
                    [
                        pa.array(values[i : i + _CHUNK], type=typ)
                        for i in range(0, len(values), _CHUNK)
                    ],
                    type=typ,
                )
                if len(values) > _CHUNK
                else pa.array(values, type=typ)
            )
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise StoreError(
                f"column {table}.{name} ({ch_type}) got a value it cannot hold: {exc}",
                name="BAD_DATA",
                transient=False,
            ) from exc
    return pa.Table.from_arrays(arrays, names=names)


def _precision(ch_type: str) -> int:
    inner = ch_type[ch_type.index("DateTime64(") + len("DateTime64(") :]
    return int(inner.split(",", 1)[0].split(")", 1)[0].strip())


def _claim(path: Path) -> None:
    global _open_path, _open_count
    with _paths_lock:
        if _open_path is not None and _open_path != path:
            raise StoreError(
                f"chdb serves one data path per process: {_open_path} is open here, "
                f"so {path} cannot be opened too",
                transient=False,
            )
        _open_path = path
        _open_count += 1


def _release() -> None:
    global _open_path, _open_count
    with _paths_lock:
        _open_count -= 1
        if _open_count <= 0:
            _open_path, _open_count = None, 0


def _locked_elsewhere(path: Path) -> bool:
    """True when another process holds the engine's lock on `path` (its `status` file)."""
    status = path / "status"
    if not status.exists():
        return False
    try:
        with open(status, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


#: False once the engine refused SYSTEM JEMALLOC PURGE (a build without jemalloc): asked once
_purge_supported = True


def _purge_unsupported(error: str) -> None:
    global _purge_supported
    _purge_supported = False
    log.warning(
        "chdb cannot return freed memory (SYSTEM JEMALLOC PURGE refused); the worker's memory "
        "will stay at its peak",
        extra={"error": error[:300]},
    )


class ChdbBackend:
    """One chdb connection on `path`, working in `database`."""

    name = "chdb"

    def __init__(
        self,
        path: Path,
        database: str,
        *,
        readonly: bool = False,
        create_database: bool = True,
    ) -> None:
        self.path = path.resolve()
        self.database = database
        self.readonly = readonly
        self._types: dict[str, dict[str, str]] = {}
        _claim(self.path)
        self._claimed = True
        self._session: Any = None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                self._session = _Session(str(self.path))
            except Exception as exc:
                text = str(exc)
                if "Cannot lock file" in text or _locked_elsewhere(self.path):
                    raise StoreLockedError(
                        f"the chdb store {self.path} is in use by another process (a running "
                        f"worker?); read it through that worker's query endpoint",
                        transient=False,
                    ) from exc
                raise error_from_message(text) from exc
            if create_database and not readonly:
                self.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
            self.execute(f"USE {quote_identifier(database)}")
            if readonly:
                # 2, not 1: readers (Grafana) must still change settings such as
                # max_execution_time; 2 refuses every write and DDL and any change of itself
                self.execute("SET readonly = 2")
        except BaseException:
            self.close()
            raise

    # --- raw access ---------------------------------------------------------------------------

    def _query(
        self, sql: str, fmt: str = "TabSeparated", params: Mapping[str, str] | None = None
    ) -> Any:
        if self._session is None:
            raise StoreError("chdb connection is closed", transient=False)
        try:
            return self._session.query(sql, fmt, params=dict(params) if params else None)
        except Exception as exc:
            raise error_from_message(str(exc)) from exc

    def execute(self, sql: str) -> None:
        self._query(sql)

    def query_bytes(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> bytes:
        result = self._query(sql, fmt, params)
        data = result.bytes()
        return bytes(data)

    def query_rows(self, sql: str) -> list[tuple[Any, ...]]:
        table = self._query(sql, "ArrowTable")
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        # Arrow carries DateTime as uint32 seconds: ask the engine which columns are DateTime,
        # so that both backends return datetimes
        if any(pa.types.is_uint32(f.type) for f in table.schema):
            types = [row[1] for row in self._describe(f"({sql})")]
            for i, ch_type in enumerate(types[: len(columns)]):
                base, _, element = split_type(ch_type)
                if element is None and base == "DateTime":
                    columns[i] = [
                        None if v is None else _EPOCH + dt.timedelta(seconds=v) for v in columns[i]
                    ]
        return list(zip(*columns, strict=True)) if columns else []

    def _describe(self, target: str) -> list[tuple[str, str]]:
        table = self._query(f"DESCRIBE {target}", "ArrowTable")
        names = table.column(0).to_pylist()
        types = table.column(1).to_pylist()
        return list(zip(names, types, strict=True))

    # --- writes -------------------------------------------------------------------------------

    def column_types(self, table: str) -> dict[str, str]:
        """{column: ClickHouse type} of `table`, read once from the engine and cached."""
        qualified = qualified_table(self.database, table)
        types = self._types.get(qualified)
        if types is None:
            types = dict(self._describe(f"TABLE {qualified}"))
            self._types[qualified] = types
        return types

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        if not columns:
            return 0
        return self.insert_arrow(table, arrow_table(table, columns, self.column_types(table)))

    def insert_arrow(self, table: str, batch: Any) -> int:
        """Insert a pyarrow Table whose column names are columns of `table`."""
        warroom_batch = batch  # noqa: F841 (the Python() table function reads it by name)
        cols = ", ".join(quote_identifier(n) for n in batch.column_names)
        target = qualified_table(self.database, table)
        self._query(f"INSERT INTO {target} ({cols}) SELECT * FROM Python(warroom_batch)")
        return int(batch.num_rows)

    # --- lifecycle ----------------------------------------------------------------------------

    def ping(self) -> None:
        self._query("SELECT 1")

    def release_memory(self) -> bool:
        """Hand the engine's freed memory back to the system; False if it cannot.

        chdb's allocator (jemalloc, one per process: the writer's session and the query
        endpoint's readers share it) keeps the pages that queries and inserts freed, and
        without a server's background thread it returns them only while it keeps allocating:
        after a year of history a worker held ~660 MB of such pages above ~90 MB in use.
        `SYSTEM JEMALLOC PURGE` returns them (~10 ms with pages to return, < 1 ms without)."""
        if self._session is None or not _purge_supported:
            return False
        try:
            self._session.query("SYSTEM JEMALLOC PURGE", "TabSeparated")
        except Exception as exc:
            _purge_unsupported(str(exc))
            return False
        return True

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # closing must not mask the reason we are closing
                log.debug("closing chdb session failed", exc_info=True)
        if self._claimed:
            self._claimed = False
            _release()
