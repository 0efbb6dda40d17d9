"""`warroom query`: ask a running worker's endpoint, else open an unlocked chdb store directly —
and never answer from a store other than the one asked for."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sinks.backends import StoreError, StoreLockedError, open_backend
from sinks.query_guard import QueryError
from sinks.query_run import read_store
from sinks.url import StoreURL, StoreURLError, parse_store_url
from warroom.runinfo import store_holder

__all__ = ["Answer", "QueryFailed", "StoreUnreachable", "ask", "run_query"]

#: the data path of the chdb store behind a worker's endpoint
_SERVED_PATH = "SELECT path FROM system.disks WHERE name = 'default'"


class QueryFailed(RuntimeError):
    """The query could not run; the message says why and what to do."""


class StoreUnreachable(QueryFailed):
    """The named ClickHouse server does not answer (a usage error: wrong address, down)."""


@dataclass(frozen=True)
class Answer:
    output: bytes
    via: str  # what answered, for the one line the CLI prints on stderr


def run_query(
    sql: str, *, endpoint: str, fmt: str, store: str, timeout: float = 60.0, password: str = ""
) -> bytes:
    """The query's output in `fmt` (see `ask`; the store was not named by the person)."""
    return ask(
        sql, endpoint=endpoint, fmt=fmt, store=store, timeout=timeout, password=password
    ).output


def ask(
    sql: str,
    *,
    endpoint: str,
    fmt: str,
    store: str,
    store_given: bool = False,
    timeout: float = 60.0,
    password: str = "",
) -> Answer:
    """The query's output in `fmt`, and what answered.

    Without `store_given`: from the worker at `endpoint`, or — when nothing listens there —
    from the chdb store `store` opened read-only here. With `store_given` (the person named the
    store): from that store only — directly when no process holds it, through `endpoint` only
    when that endpoint serves exactly this store, else an error naming the holder.
    `password`: the worker's WARROOM_WEB_PASSWORD, when it has one."""
    if store_given:
        return _from_named_store(sql, endpoint, fmt, store, timeout, password)
    try:
        return Answer(
            _via_endpoint(sql, endpoint, fmt, timeout, password), f"the worker at {endpoint}"
        )
    except ConnectionRefusedError as refused:
        return _direct(sql, fmt, _parse(store), endpoint, refused)


def _parse(store: str) -> StoreURL:
    try:
        return parse_store_url(store)
    except StoreURLError as exc:
        raise QueryFailed(str(exc)) from exc


def _from_named_store(
    sql: str, endpoint: str, fmt: str, store: str, timeout: float, password: str
) -> Answer:
    parsed = _parse(store)
    if parsed.kind == "worker":
        url = f"http://{parsed.host}:{parsed.port}"
        return Answer(_reach(sql, url, fmt, timeout, password), f"the worker at {url} (its store)")
    if parsed.kind != "chdb":  # a ClickHouse server: ask it directly, read-only
        from warroom.probe import Unreachable, check_store

        try:
            check_store(store)
        except Unreachable as exc:
            raise StoreUnreachable(str(exc)) from None
        return Answer(_open_and_query(sql, fmt, parsed), f"{parsed.redacted()} directly")
    assert parsed.path is not None
    holder = store_holder(parsed.path)
    if holder is None:
        return _direct(sql, fmt, parsed, endpoint, None)
    served = _served_path(endpoint, timeout, password)
    if served is not None and _same(served, parsed.path):
        return Answer(
            _via_endpoint(sql, endpoint, fmt, timeout, password),
            f"the worker at {endpoint}, which holds {parsed.path}",
        )
    elsewhere = (
        f"the worker at {endpoint} serves another store ({served})"
        if served is not None
        else f"no worker answers at {endpoint}"
    )
    raise QueryFailed(
        f"the store {parsed.path} is busy: it is locked by another process (pid {holder}), "
        f"and {elsewhere}; "
        f"query through the web endpoint of process {holder} (--url), or stop it"
    )


def _same(a: str, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


def _served_path(endpoint: str, timeout: float, password: str) -> str | None:
    try:
        out = _via_endpoint(_SERVED_PATH, endpoint, "TabSeparatedRaw", min(timeout, 10.0), password)
    except (ConnectionRefusedError, QueryFailed):
        return None
    return out.decode("utf-8", "replace").strip() or None


def _reach(sql: str, endpoint: str, fmt: str, timeout: float, password: str) -> bytes:
    try:
        return _via_endpoint(sql, endpoint, fmt, timeout, password)
    except ConnectionRefusedError as exc:
        raise QueryFailed(f"no worker answers at {endpoint}") from exc


def _via_endpoint(sql: str, endpoint: str, fmt: str, timeout: float, password: str = "") -> bytes:
    query = urllib.parse.urlencode({"default_format": fmt})
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if password:
        headers["X-ClickHouse-Key"] = password
    request = urllib.request.Request(
        f"{endpoint.rstrip('/')}/?{query}", data=sql.encode(), method="POST", headers=headers
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


def _direct(sql: str, fmt: str, parsed: StoreURL, endpoint: str, cause: Exception | None) -> Answer:
    nobody = f"no worker answers at {endpoint}" if cause is not None else "nobody holds it"
    if parsed.kind != "chdb":
        raise QueryFailed(
            f"{nobody}; for a ClickHouse server pass it as --store (read directly) or use "
            f"its own clients (clickhouse-client, HTTP port 8123)"
        ) from cause
    if parsed.path is None or not parsed.path.exists():
        raise QueryFailed(
            f"{nobody} and there is no store at {parsed.path} yet (start one with `warroom up`)"
        ) from cause
    try:
        output = _open_and_query(sql, fmt, parsed)
    except StoreLockedError as exc:
        raise QueryFailed(
            f"{nobody}, and the store {parsed.path} is locked by another process: query "
            f"through that process's endpoint (--url)"
        ) from exc
    return Answer(output, f"the store {parsed.path}, opened directly (no worker holds it)")


def _open_and_query(sql: str, fmt: str, parsed: StoreURL) -> bytes:
    try:
        if parsed.kind == "chdb":  # vetted and limited as the worker's endpoint does
            assert parsed.path is not None
            return read_store(parsed.path, parsed.database, sql, fmt)
        backend = open_backend(parsed, readonly=True, create_database=False)
    except QueryError as exc:
        raise QueryFailed(exc.text().strip()) from exc
    except StoreLockedError:
        raise
    except StoreError as exc:
        if parsed.kind == "chdb":
            raise QueryFailed(str(exc)) from exc
        raise QueryFailed(f"cannot open {parsed.redacted()}: {exc}") from exc
    try:  # a ClickHouse server: its own grants decide (give it a read-only account)
        return backend.query_bytes(sql, fmt)
    except StoreError as exc:
        raise QueryFailed(str(exc)) from exc
    finally:
        backend.close()
