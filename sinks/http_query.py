"""Read-only query endpoint speaking ClickHouse's HTTP interface, over the worker's store.

In the embedded mode the worker owns the chdb folder (the engine locks it), so readers —
`warroom query`, tests, clickhouse-connect, Grafana's ClickHouse plugin in HTTP mode — go
through this endpoint on the worker's web server (loopback by default):

    service = QueryService(store_url)        # opens read-only connections
    add_routes(app, service)                 # GET/POST /  and  /ping
    ...
    await service.close()

What it honours, as ClickHouse does: the query in `?query=`, in the body, or both (joined by
a newline); the FORMAT clause, else `default_format`, else TabSeparated; `database`;
`param_<name>` for `{name:Type}` placeholders; every other unknown parameter is a setting
(applied for this query only, e.g. Grafana's max_execution_time); HTTP response compression
with `enable_http_compression=1` and Accept-Encoding gzip, deflate, zstd or lz4. Errors come
back as ClickHouse writes them ("Code: N. DB::Exception: ... (NAME)") with the
X-ClickHouse-Exception-Code header and ClickHouse's HTTP status for that code.

Read-only, twice over: only SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN statements are
accepted, and the connections themselves run with readonly=2 (the engine refuses writes and
DDL). Table functions that reach the file system, the network or other processes (file, url,
s3, remote, executable, python, ...) are refused, because the embedded engine has no
user_files sandbox. There is no authentication: keep it on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from sinks.backends import Backend, StoreError, open_backend
from sinks.url import StoreURL

__all__ = [
    "QueryError",
    "QueryService",
    "add_routes",
    "check_readonly",
    "make_app",
]

log = logging.getLogger(__name__)

VERSION_NOTE = "warroom read-only endpoint"

_ALLOWED = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
# table functions that would let a reader touch files, the network or run programs
_FORBIDDEN_FUNCTIONS = (
    "file",
    "fileCluster",
    "url",
    "urlCluster",
    "s3",
    "s3Cluster",
    "gcs",
    "oss",
    "cosn",
    "azureBlobStorage",
    "azureBlobStorageCluster",
    "hdfs",
    "hdfsCluster",
    "remote",
    "remoteSecure",
    "cluster",
    "clusterAllReplicas",
    "mysql",
    "postgresql",
    "sqlite",
    "mongodb",
    "redis",
    "odbc",
    "jdbc",
    "executable",
    "python",
    "iceberg",
    "icebergS3",
    "icebergAzure",
    "icebergHDFS",
    "icebergLocal",
    "deltaLake",
    "deltaLakeLocal",
    "hudi",
    "arrowFlight",
    "ytsaurus",
    "input",
    "dictionary",
)
_FORBIDDEN = re.compile(
    r"\b(" + "|".join(re.escape(f) for f in _FORBIDDEN_FUNCTIONS) + r")\s*\(", re.IGNORECASE
)
_LEADING = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.DOTALL)
_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)

# parameters of the HTTP interface itself (not settings); the ones we cannot honour are ignored
_TRANSPORT = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "stacktrace",
        "readonly",  # the endpoint is read-only whatever a client asks
        # HTTP-layer settings: this server decides them
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "add_http_cors_header",
        "http_response_buffer_size",
        "http_wait_end_of_query",
        "max_execution_time_leaf",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# HTTP status per ClickHouse error name, as the server's HTTP handler maps them
_STATUS: dict[str, int] = {
    **dict.fromkeys(("REQUIRED_PASSWORD",), 401),
    **dict.fromkeys(
        (
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
        ),
        403,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_UUID",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "THERE_IS_NO_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
}

_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8",
    "json": "application/json; charset=UTF-8",
    "xml": "application/xml; charset=UTF-8",
}


class QueryError(Exception):
    """A request refused before it reached the store, in ClickHouse's terms."""

    def __init__(self, code: int, name: str, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.status = status

    def text(self) -> str:
        return f"Code: {self.code}. DB::Exception: {self} ({self.name}) ({VERSION_NOTE})\n"


def _strip_strings(sql: str) -> str:
    return _STRINGS.sub("''", sql)


def check_readonly(sql: str) -> None:
    """Raise QueryError (Code 164, READONLY) unless `sql` is a read-only statement."""
    head = _LEADING.sub("", sql, count=1)
    word = re.match(r"[A-Za-z]+", head)
    keyword = word.group(0).upper() if word else ""
    if keyword not in _ALLOWED:
        raise QueryError(
            164,
            "READONLY",
            f"warroom query endpoint is readonly: only SELECT, WITH, SHOW, DESCRIBE, EXISTS "
            f"and EXPLAIN are allowed, not {keyword or 'an empty query'}",
        )
    forbidden = _FORBIDDEN.search(_strip_strings(sql))
    if forbidden:
        raise QueryError(
            497,
            "ACCESS_DENIED",
            f"table function {forbidden.group(1)}() is not available through the warroom "
            f"query endpoint (readonly: it reaches files, the network or programs)",
            status=403,
        )


def output_format(sql: str, default: str) -> str:
    """The format the result will have: the query's FORMAT clause, else `default`."""
    match = _FORMAT.search(_strip_strings(sql).rstrip())
    return match.group(1) if match else default


def _content_type(fmt: str) -> str:
    key = fmt.lower()
    for prefix, ctype in _CONTENT_TYPES.items():
        if key.startswith(prefix):
            return ctype
    if key.startswith("pretty") or key in ("vertical", "markdown", "values", "raw"):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


def _setting_value(value: str) -> str:
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _zstd() -> Any:
    """The zstd module (Python 3.14's compression.zstd or its backport), or None."""
    for name in ("compression.zstd", "backports.zstd"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(name)
    return None


def _zlib(data: bytes, wbits: int) -> bytes:
    comp = zlib.compressobj(3, zlib.DEFLATED, wbits)
    return comp.compress(data) + comp.flush()


def _codecs() -> tuple[dict[str, Callable[[bytes], bytes]], dict[str, Callable[[bytes], bytes]]]:
    """(encoders, decoders) by Content-Encoding token."""
    enc: dict[str, Callable[[bytes], bytes]] = {
        "gzip": lambda data: _zlib(data, 31),
        "deflate": lambda data: _zlib(data, 15),
    }
    dec: dict[str, Callable[[bytes], bytes]] = {
        "gzip": lambda data: zlib.decompress(data, 47),
        "deflate": lambda data: zlib.decompress(data, 47),
    }
    with contextlib.suppress(ImportError):
        lz4_frame = importlib.import_module("lz4.frame")
        enc["lz4"], dec["lz4"] = lz4_frame.compress, lz4_frame.decompress
    zstd = _zstd()
    if zstd is not None:
        enc["zstd"], dec["zstd"] = zstd.compress, zstd.decompress
    return enc, dec


_ENCODERS, _DECODERS = _codecs()


class QueryService:
    """A small pool of read-only store connections, one request per connection at a time."""

    def __init__(
        self,
        url: str | StoreURL,
        *,
        connections: int = 2,
        backend_factory: Callable[[], Backend] | None = None,
    ) -> None:
        self.url = url
        self._factory = backend_factory or (
            lambda: open_backend(url, readonly=True, create_database=False)
        )
        self._size = connections
        self._pool: asyncio.Queue[Backend] | None = None
        self._all: list[Backend] = []
        self.default_database = ""

    async def start(self) -> None:
        if self._pool is not None:
            return
        pool: asyncio.Queue[Backend] = asyncio.Queue()
        for _ in range(self._size):
            backend = await asyncio.to_thread(self._factory)
            self._all.append(backend)
            pool.put_nowait(backend)
        self.default_database = self._all[0].database
        self._pool = pool

    async def close(self) -> None:
        backends, self._all, self._pool = self._all, [], None
        for backend in backends:
            await asyncio.to_thread(backend.close)

    async def run(
        self,
        sql: str,
        fmt: str,
        *,
        database: str | None = None,
        settings: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> bytes:
        """Run one read-only statement; the raw result in `fmt` (unless the query names one)."""
        check_readonly(sql)
        await self.start()
        assert self._pool is not None
        backend = await self._pool.get()
        try:
            return await asyncio.to_thread(
                self._run_on, backend, sql, fmt, database, dict(settings or {}), params
            )
        finally:
            self._pool.put_nowait(backend)

    def _run_on(
        self,
        backend: Backend,
        sql: str,
        fmt: str,
        database: str | None,
        settings: dict[str, str],
        params: Mapping[str, str] | None,
    ) -> bytes:
        applied: list[str] = []
        db = database or self.default_database
        try:
            backend.execute(f"USE `{db.replace('`', '')}`")
            for name, value in settings.items():
                if not _SETTING_NAME.match(name):
                    raise StoreError(
                        f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)",
                        code=115,
                        name="UNKNOWN_SETTING",
                        transient=False,
                    )
                backend.execute(f"SET {name} = {_setting_value(value)}")
                applied.append(name)
            return backend.query_bytes(sql, fmt, params or None)
        finally:
            # the connection serves other requests next: leave it as it was
            for name in applied:
                with contextlib.suppress(StoreError):
                    backend.execute(f"SET {name} = DEFAULT")
            if db != self.default_database:
                with contextlib.suppress(StoreError):
                    backend.execute(f"USE `{self.default_database}`")


def _error_response(code: int, name: str, text: str, status: int | None = None) -> web.Response:
    body = text if text.endswith("\n") else text + "\n"
    if not body.startswith("Code:"):
        body = f"Code: {code}. DB::Exception: {body}"
    return web.Response(
        status=status or _STATUS.get(name, 500),
        text=body,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-ClickHouse-Exception-Code": str(code)},
    )


def _pick_encoding(accept: str) -> str | None:
    for part in accept.split(","):
        token = part.split(";", 1)[0].strip().lower()
        if token in _ENCODERS:
            return token
    return None


def add_routes(app: web.Application, service: QueryService, prefix: str = "") -> None:
    """Mount the endpoint: `{prefix}/` (queries, GET and POST) and `{prefix}/ping`."""

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="Ok.\n", content_type="text/plain", charset="utf-8")

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        query_params = request.query
        query_id = query_params.get("query_id") or str(uuid.uuid4())
        try:
            query_text, form = await _read_query(request)
        except QueryError as exc:
            return _error_response(exc.code, exc.name, exc.text(), exc.status)
        if not query_text.strip():
            if request.method == "GET":
                return await ping(request)
            return _error_response(62, "SYNTAX_ERROR", "Empty query. (SYNTAX_ERROR)", status=400)
        if query_params.get("compress") == "1" or query_params.get("decompress") == "1":
            return _error_response(
                48,
                "NOT_IMPLEMENTED",
                "ClickHouse block compression (compress/decompress=1) is not supported here; "
                "use HTTP compression (enable_http_compression=1). (NOT_IMPLEMENTED)",
            )
        merged: dict[str, str] = {**form, **dict(query_params)}
        params = {k[len("param_") :]: v for k, v in merged.items() if k.startswith("param_")}
        settings = {
            k: v for k, v in merged.items() if k not in _TRANSPORT and not k.startswith("param_")
        }
        default_format = merged.get("default_format") or "TabSeparated"
        fmt = output_format(query_text, default_format)
        try:
            body = await service.run(
                query_text,
                default_format,
                database=merged.get("database") or None,
                settings=settings,
                params=params,
            )
        except QueryError as exc:
            log.info("query refused", extra={"code": exc.code, "query_id": query_id})
            return _error_response(exc.code, exc.name, exc.text(), exc.status)
        except StoreError as exc:
            return _error_response(exc.code or 1000, exc.name, str(exc))
        headers = {
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Server-Display-Name": "warroom",
            "X-ClickHouse-Summary": orjson.dumps(
                {"elapsed_ns": str(int((time.perf_counter() - started) * 1e9))}
            ).decode(),
        }
        if merged.get("enable_http_compression") in ("1", "true"):
            encoding = _pick_encoding(request.headers.get("Accept-Encoding", ""))
            if encoding is not None:
                body = await asyncio.to_thread(_ENCODERS[encoding], body)
                headers["Content-Encoding"] = encoding
        response = web.Response(body=body, headers=headers)
        response.content_type = _content_type(fmt).split(";", 1)[0]
        if "charset" in _content_type(fmt):
            response.charset = "utf-8"
        return response

    base = prefix.rstrip("/")
    app.router.add_route("GET", f"{base}/ping", ping)
    app.router.add_route("GET", f"{base}/", handle)
    app.router.add_route("POST", f"{base}/", handle)


async def _read_query(request: web.Request) -> tuple[str, dict[str, str]]:
    """The query text (URL part, then body) and any form fields (multipart requests)."""
    url_part = request.query.get("query", "")
    form: dict[str, str] = {}
    body = ""
    if request.method == "POST":
        ctype = request.content_type
        # only multipart is a form: like ClickHouse, a url-encoded body (curl -d) is the query
        if ctype.startswith("multipart/form-data"):
            data = await request.post()
            for key, value in data.items():
                if isinstance(value, str):
                    form[key] = value
                else:
                    raise QueryError(
                        48,
                        "NOT_IMPLEMENTED",
                        "external data tables are not supported by the warroom endpoint",
                        status=501,
                    )
            body = form.pop("query", "")
        else:
            raw = await request.read()
            encoding = request.headers.get("Content-Encoding", "").strip().lower()
            if encoding and encoding != "identity":
                decoder = _DECODERS.get(encoding)
                if decoder is None:
                    raise QueryError(
                        48, "NOT_IMPLEMENTED", f"unsupported Content-Encoding {encoding}", 501
                    )
                try:
                    raw = decoder(raw)
                except Exception as exc:
                    raise QueryError(
                        117, "INCORRECT_DATA", f"cannot decode {encoding} body: {exc}", 400
                    ) from exc
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise QueryError(117, "INCORRECT_DATA", "query is not UTF-8", 400) from exc
    text = "\n".join(part for part in (url_part, body) if part)
    return text, form


def make_app(service: QueryService) -> web.Application:
    """A standalone aiohttp app with just the query endpoint (tests, `warroom query`)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    add_routes(app, service)

    async def _close(_: web.Application) -> None:
        await service.close()

    app.on_cleanup.append(_close)
    return app
