"""Read-only query endpoint speaking ClickHouse's HTTP interface, over the worker's store.

In the embedded mode the worker owns the chdb folder (the engine locks it), so readers —
`warroom query`, tests, clickhouse-connect, Grafana's ClickHouse plugin in HTTP mode — go
through this endpoint on the worker's web server (loopback by default):

    service = QueryService(store_url)        # a session per query, at most 2 at once
    add_routes(app, service)                 # GET/POST /  and  /ping
    ...
    await service.close()

What it honours, as ClickHouse does: the query in `?query=`, in the body, or both (joined by
a newline); the FORMAT clause, else `default_format`, else TabSeparated; `database`;
`param_<name>` for `{name:Type}` placeholders; every other parameter is a setting for this
query only: output settings, and limits lower than the endpoint's (e.g. Grafana's
max_execution_time); any other setting is refused as readonly=1 would. HTTP response compression
with `enable_http_compression=1` and Accept-Encoding gzip, deflate, zstd or lz4. Errors come
back as ClickHouse writes them ("Code: N. DB::Exception: ... (NAME)") with the
X-ClickHouse-Exception-Code header and ClickHouse's HTTP status for that code.

What a query may be is decided on the engine's own parse tree (sinks/query_guard.py): reads
only, no INTO OUTFILE, no table function or function that reaches files, URLs or the host.
Each query runs on a session of its own under limits and readonly=1 (sinks/query_run.py), and
is killed when its client goes. Who may ask: sinks/http_auth.py (loopback, or a password).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from sinks.backends import StoreError
from sinks.backends.chdb import ChdbBackend
from sinks.http_auth import guard
from sinks.query_guard import QueryError, denied_functions
from sinks.query_run import QueryLimits, open_reader, run_readonly
from sinks.url import StoreURL, parse_store_url

__all__ = [
    "ClientGone",
    "QueryError",
    "QueryLimits",
    "QueryService",
    "add_routes",
    "make_app",
]

log = logging.getLogger(__name__)

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
_POLL_S = 0.2  # how often a running query looks whether its client is still there

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


def _strip_strings(sql: str) -> str:
    return _STRINGS.sub("''", sql)


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


class ClientGone(Exception):
    """The client closed its connection: its query was cancelled."""


class QueryService:
    """Readers' queries on the worker's embedded store, each on a session of its own.

    At most `connections` run at once (the others wait); each runs vetted, under `limits`
    and readonly=1 (sinks/query_run.py); one whose client leaves is killed through a control
    session, by the tag its session carries."""

    def __init__(
        self,
        url: str | StoreURL,
        *,
        connections: int = 2,
        limits: QueryLimits | None = None,
    ) -> None:
        parsed = parse_store_url(url) if isinstance(url, str) else url
        if parsed.kind != "chdb" or parsed.path is None:
            raise ValueError("the query endpoint serves an embedded (chdb://) store only")
        self.url = parsed
        self.limits = limits or QueryLimits()
        self.default_database = parsed.database
        self._slots = asyncio.Semaphore(connections)
        self._control: ChdbBackend | None = None
        self._control_lock = threading.Lock()
        self._starting = asyncio.Lock()
        self._denied: frozenset[str] = frozenset()
        self.running = 0  # queries on the engine now (tests watch it drain)
        self.cancelled = 0  # queries killed because their client left

    async def start(self) -> None:
        async with self._starting:  # the first requests may arrive together
            if self._control is not None:
                return
            assert self.url.path is not None
            control = await asyncio.to_thread(open_reader, self.url.path, self.default_database)
            try:
                self._denied = await asyncio.to_thread(
                    denied_functions,
                    lambda sql, _params: control.query_bytes(sql, "TabSeparatedRaw").decode(),
                )
            except BaseException:
                await asyncio.to_thread(control.close)
                raise
            self._control = control

    async def close(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            await asyncio.to_thread(control.close)

    async def run(
        self,
        sql: str,
        fmt: str,
        *,
        database: str | None = None,
        settings: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        gone: Callable[[], bool] = lambda: False,
    ) -> bytes:
        """Run one read; the raw result in `fmt` (unless the query names one). `gone` says
        whether the client left: then the query is killed and ClientGone raised."""
        await self.start()
        db = database or self.default_database
        tag = f"warroom-query-{uuid.uuid4().hex}"
        while True:  # wait for a slot, unless the client leaves meanwhile
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout=_POLL_S)
                break
            except TimeoutError:
                if gone():
                    raise ClientGone from None
        try:
            self.running += 1
            job = asyncio.ensure_future(
                asyncio.to_thread(self._run_fresh, sql, fmt, db, dict(settings or {}), params, tag)
            )
            try:
                while True:
                    done, _ = await asyncio.wait({job}, timeout=_POLL_S)
                    if done:
                        return job.result()
                    if gone():
                        raise ClientGone
            except BaseException:
                if not job.done():  # client left, or the server is stopping
                    self.cancelled += 1
                    await asyncio.to_thread(self._kill, tag)
                    with contextlib.suppress(BaseException):
                        await job
                raise
        finally:
            self.running -= 1
            self._slots.release()

    def _run_fresh(
        self,
        sql: str,
        fmt: str,
        database: str,
        settings: dict[str, str],
        params: Mapping[str, str] | None,
        tag: str,
    ) -> bytes:
        assert self.url.path is not None
        backend = open_reader(self.url.path, self.default_database)
        try:
            return run_readonly(
                backend,
                sql,
                fmt,
                database=database,
                settings=settings,
                params=params,
                limits=self.limits,
                tag=tag,
                denied=self._denied,
            )
        finally:
            backend.close()

    def _kill(self, tag: str) -> None:
        control = self._control
        if control is None:
            return
        with self._control_lock:
            try:
                control.execute(f"KILL QUERY WHERE Settings['log_comment'] = '{tag}'")
            except StoreError:
                log.warning("cancelling a query whose client left failed", exc_info=True)


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
                gone=lambda: _gone(request),
            )
        except ClientGone:
            log.info("query cancelled: its client left", extra={"query_id": query_id})
            return web.Response(status=499, text="client closed the connection\n")
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


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


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


def make_app(service: QueryService, password: str = "") -> web.Application:
    """A standalone aiohttp app with just the query endpoint (tests), guarded as the worker's
    web server is (sinks/http_auth.py)."""
    app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[guard(password)])
    add_routes(app, service)

    async def _close(_: web.Application) -> None:
        await service.close()

    app.on_cleanup.append(_close)
    return app
