"""`warroom query`: ask a running worker's endpoint, else open an unlocked chdb store directly."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from sinks.backends import StoreError, StoreLockedError, open_backend
from sinks.http_query import QueryError, check_readonly
from sinks.url import StoreURLError, parse_store_url

__all__ = ["QueryFailed", "run_query"]


class QueryFailed(RuntimeError):
    """The query could not run; the message says why and what to do."""


def run_query(sql: str, *, endpoint: str, fmt: str, store: str, timeout: float = 60.0) -> bytes:
    """The query's output in `fmt`: from the worker at `endpoint`, or — when nothing listens
    there — from the chdb store `store` opened read-only in this process."""
    try:
        return _via_endpoint(sql, endpoint, fmt, timeout)
    except ConnectionRefusedError as refused:
        return _direct(sql, fmt, store, endpoint, refused)


def _via_endpoint(sql: str, endpoint: str, fmt: str, timeout: float) -> bytes:
    query = urllib.parse.urlencode({"default_format": fmt})
    request = urllib.request.Request(
        f"{endpoint.rstrip('/')}/?{query}",
        data=sql.encode(),
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()
        raise QueryFailed(detail or f"HTTP {exc.code} from {endpoint}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            raise exc.reason from exc
        raise QueryFailed(f"cannot reach {endpoint}: {exc.reason}") from exc


def _direct(sql: str, fmt: str, store: str, endpoint: str, cause: Exception) -> bytes:
    try:
        parsed = parse_store_url(store)
    except StoreURLError as exc:
        raise QueryFailed(str(exc)) from exc
    if parsed.kind != "chdb":
        raise QueryFailed(
            f"no worker answers at {endpoint}; for a ClickHouse server use its own clients "
            f"(clickhouse-client, HTTP port 8123)"
        ) from cause
    if parsed.path is None or not parsed.path.exists():
        raise QueryFailed(
            f"no worker answers at {endpoint} and there is no store at {parsed.path} yet "
            f"(start one with `warroom up`)"
        ) from cause
    try:
        check_readonly(sql)
    except QueryError as exc:
        raise QueryFailed(exc.text().strip()) from exc
    try:
        backend = open_backend(parsed, readonly=True, create_database=False)
    except StoreLockedError as exc:
        raise QueryFailed(
            f"no worker answers at {endpoint}, and the store {parsed.path} is locked by "
            f"another process: query through that process's endpoint (--url)"
        ) from exc
    except StoreError as exc:
        raise QueryFailed(f"{parsed.redacted()}: {exc}") from exc
    try:
        return backend.query_bytes(sql, fmt)
    except StoreError as exc:
        raise QueryFailed(str(exc)) from exc
    finally:
        backend.close()
