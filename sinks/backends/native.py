"""ClickHouse server through clickhouse-driver: native protocol, LZ4 compression, columnar inserts.

A lost connection is closed and reported as a transient StoreError; the next call reconnects
(clickhouse-driver connects lazily), so the writer's retry loop is also the reconnect loop.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from clickhouse_driver import Client, errors

from sinks.backends import StoreError, error_from_message, qualified_table, quote_identifier
from sinks.url import StoreURL

__all__ = ["NativeBackend"]

log = logging.getLogger(__name__)

_NETWORK = (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError, ConnectionError)


def _text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return "[" + ",".join(repr(v) if isinstance(v, str) else str(v) for v in value) + "]"
    return str(value)


class NativeBackend:
    """One clickhouse-driver connection to `url`'s server, working in `url.database`."""

    name = "native"

    def __init__(
        self,
        url: StoreURL,
        *,
        readonly: bool = False,
        create_database: bool = True,
        connect_timeout: float = 5.0,
        send_receive_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.database = url.database
        self.readonly = readonly
        self._types: dict[str, dict[str, str]] = {}
        settings: dict[str, Any] = {}
        if readonly:
            settings["readonly"] = 2
        common: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "user": url.user,
            "password": url.password,
            "secure": url.secure,
            "compression": "lz4",
            "connect_timeout": connect_timeout,
            "send_receive_timeout": send_receive_timeout,
            "client_name": "warroom",
        }
        if create_database and not readonly:
            boot = Client(database="default", **common)
            try:
                self._call(boot, f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}")
            finally:
                boot.disconnect()
        self._client = Client(database=self.database, settings=settings, **common)

    def _call(self, client: Client, sql: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return client.execute(sql, *args, **kwargs)
        except errors.ServerException as exc:
            raise error_from_message(str(exc.message), exc.code) from exc
        except _NETWORK as exc:
            client.disconnect()
            raise StoreError(
                f"ClickHouse at {self.url.host}:{self.url.port} unreachable: {exc}",
                name="NETWORK_ERROR",
            ) from exc
        except errors.Error as exc:
            client.disconnect()
            raise StoreError(f"clickhouse-driver: {exc}", name=type(exc).__name__) from exc

    def execute(self, sql: str) -> None:
        self._call(self._client, sql)

    def query_rows(self, sql: str) -> list[tuple[Any, ...]]:
        rows = self._call(self._client, sql)
        return [tuple(r) for r in rows]

    def query_bytes(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> bytes:
        """Text formats only (TabSeparated/TSV[WithNames], CSV[WithNames], JSONEachRow): the
        native protocol returns values, not formatted output."""
        if params:
            raise StoreError(
                "query parameters are not supported through the native backend",
                code=48,
                name="NOT_IMPLEMENTED",
                transient=False,
            )
        rows, meta = self._call(self._client, sql, with_column_types=True)
        names = [m[0] for m in meta]
        key = fmt.lower()
        out = io.StringIO()
        if key in ("tabseparated", "tsv", "tabseparatedwithnames", "tsvwithnames"):
            if key.endswith("withnames"):
                out.write("\t".join(names) + "\n")
            for row in rows:
                out.write("\t".join(_text(v) for v in row) + "\n")
        elif key in ("csv", "csvwithnames"):
            writer = csv.writer(out, lineterminator="\n")
            if key == "csvwithnames":
                writer.writerow(names)
            writer.writerows([[_text(v) for v in row] for row in rows])
        elif key == "jsoneachrow":
            return b"".join(
                orjson.dumps(dict(zip(names, row, strict=True)), default=str) + b"\n"
                for row in rows
            )
        else:
            raise StoreError(
                f"format {fmt} is not available through the native backend",
                code=73,
                name="UNKNOWN_FORMAT",
                transient=False,
            )
        return out.getvalue().encode()

    def column_types(self, table: str) -> dict[str, str]:
        qualified = qualified_table(self.database, table)
        types = self._types.get(qualified)
        if types is None:
            rows = self._call(self._client, f"DESCRIBE TABLE {qualified}")
            types = {r[0]: r[1] for r in rows}
            self._types[qualified] = types
        return types

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        if not columns:
            return 0
        types = self.column_types(table)
        names = list(columns)
        data: list[Sequence[Any]] = []
        for name in names:
            ch_type = types.get(name)
            if ch_type is None:
                raise StoreError(
                    f"table {table} has no column {name!r}",
                    name="NO_SUCH_COLUMN_IN_TABLE",
                    transient=False,
                )
            # raw ints pass through: the driver, like ClickHouse, reads them in the column's
            # unit (DateTime: seconds, DateTime64(3): milliseconds)
            data.append(columns[name])
        cols = ", ".join(quote_identifier(n) for n in names)
        self._call(
            self._client,
            f"INSERT INTO {qualified_table(self.database, table)} ({cols}) VALUES",
            data,
            columnar=True,
        )
        return len(data[0])

    def ping(self) -> None:
        self._call(self._client, "SELECT 1")

    def close(self) -> None:
        self._client.disconnect()
