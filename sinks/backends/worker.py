"""The embedded store of another worker, written and read through that worker's web server.

chdb locks its data folder to one process, so when `warroom up` runs several workers on one
machine the first owns the store and the others send it their rows: a batch goes as one Arrow
IPC stream to `POST /store/insert` (sinks/http_insert.py), which the owner inserts on its
writer thread; reads go to the owner's ClickHouse-HTTP query endpoint. Each call blocks (the
writer runs backends on its own thread), and a refused connection is a transient StoreError,
so the writer retries and backpressures exactly as with a ClickHouse server that is down.
"""

from __future__ import annotations

import http.client
import importlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from sinks.backends import StoreError, error_from_message
from sinks.backends.chdb import arrow_table
from sinks.http_auth import STORE_TOKEN_HEADER
from sinks.url import StoreURL

__all__ = ["WorkerStoreBackend"]

pa: Any = importlib.import_module("pyarrow")
_TIMEOUT = 60.0


class WorkerStoreBackend:
    """A Backend over another worker's store (see the module docstring)."""

    name = "chdb"  # the store is chdb; metrics label it the same as the owner's writes
    #: the owner recomputes the rollups of the minute rows it inserts for us (http_insert)
    rollups_by_owner = True

    def __init__(self, url: StoreURL) -> None:
        self.host = url.host
        self.port = url.port
        self.database = url.database
        # the owner's store token (WARROOM_STORE_TOKEN, see sinks.url): opens its insert route
        self._headers = {STORE_TOKEN_HEADER: url.password} if url.password else {}
        self._local = threading.local()
        self._types: dict[str, dict[str, str]] = {}

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=_TIMEOUT)
            self._local.conn = conn
        return conn

    def _post(self, path: str, params: Mapping[str, str], body: bytes) -> bytes:
        target = f"{path}?{urlencode(params)}"
        for attempt in (1, 2):  # a kept-alive connection the owner closed: reconnect once
            conn = self._conn()
            try:
                conn.request("POST", target, body=body, headers=self._headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise StoreError(
                        f"worker store at {self.host}:{self.port} unreachable: {exc}",
                        transient=True,
                    ) from exc
                continue
            if resp.status != 200:
                raise error_from_message(data.decode("utf-8", "replace")[:2000])
            return data
        raise AssertionError("unreachable")

    def _query(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> bytes:
        query = {
            "database": self.database,
            "default_format": fmt,
            "output_format_json_quote_64bit_integers": "0",
        }
        for name, value in (params or {}).items():
            query[f"param_{name}"] = value
        return self._post("/", query, sql.encode())

    # --- Backend ------------------------------------------------------------------------------

    def execute(self, sql: str) -> None:
        raise StoreError(
            "schema changes go to the worker that owns the store, not through another worker",
            transient=False,
        )

    def query_rows(self, sql: str) -> list[tuple[Any, ...]]:
        data = self._query(sql, "JSONCompactEachRow")
        return [tuple(orjson.loads(line)) for line in data.splitlines() if line]

    def query_bytes(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> bytes:
        return self._query(sql, fmt, params)

    def column_types(self, table: str) -> dict[str, str]:
        types = self._types.get(table)
        if types is None:
            types = {str(r[0]): str(r[1]) for r in self.query_rows(f"DESCRIBE TABLE {table}")}
            self._types[table] = types
        return types

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        if not columns:
            return 0
        batch = arrow_table(table, columns, self.column_types(table))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_table(batch)
        body = sink.getvalue().to_pybytes()
        self._post("/store/insert", {"table": table, "database": self.database}, body)
        return int(batch.num_rows)

    def ping(self) -> None:
        self.query_rows("SELECT 1")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
