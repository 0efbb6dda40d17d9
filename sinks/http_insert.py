"""`POST /store/insert`: how the other workers on this machine write into the store this worker
owns (see sinks/backends/worker.py). Mounted only with a store token (WARROOM_STORE_TOKEN), which
every request must carry; Arrow IPC in, inserted on the writer thread."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import orjson
from aiohttp import web

from sinks import rollups
from sinks.backends import StoreError
from sinks.http_auth import STORE_TOKEN_HEADER, store_token_ok
from sinks.tables import INSERT_COLUMNS
from sinks.writer import Writer

__all__ = ["add_insert_route"]

log = logging.getLogger(__name__)
pa: Any = importlib.import_module("pyarrow")


def _error(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def add_insert_route(app: web.Application, writer: Writer, token: str) -> None:
    """Mount the route; `token` is the secret the other workers send (never empty)."""
    if not token:
        raise ValueError("the insert route needs a store token")

    async def insert(request: web.Request) -> web.Response:
        if not store_token_ok(request, token):
            log.warning("insert refused: no or wrong store token", extra={"peer": request.remote})
            return _error(
                403,
                f"Code: 516. DB::Exception: inserts need the store token ({STORE_TOKEN_HEADER}). "
                "(AUTHENTICATION_FAILED)",
            )
        table = request.query.get("table", "")
        if table not in INSERT_COLUMNS:
            return _error(400, f"Code: 60. DB::Exception: unknown table {table!r}")
        database = request.query.get("database", "")
        if database and database != getattr(writer.backend, "database", database):
            return _error(400, f"Code: 81. DB::Exception: this store holds no {database!r}")
        try:
            batch = pa.ipc.open_stream(await request.read()).read_all()
        except pa.ArrowInvalid as exc:
            return _error(400, f"Code: 27. DB::Exception: not an Arrow IPC stream: {exc}")
        unknown = set(batch.column_names) - set(INSERT_COLUMNS[table])
        if unknown:
            return _error(400, f"Code: 16. DB::Exception: no column {sorted(unknown)[0]!r}")

        def write(backend: Any) -> int:
            rows = int(backend.insert_arrow(table, batch))
            if table in rollups.SOURCES:  # before the sender hears "written" (and commits)
                buckets = batch.column("bucket").cast(pa.int64()).to_pylist()
                rollups.recompute(backend, table, rollups.touched_hours(buckets))
            return rows

        try:
            rows = await writer.run(write)
        except StoreError as exc:
            log.warning(
                "insert for another worker failed", extra={"table": table, "error": str(exc)}
            )
            return _error(500, str(exc))
        return web.Response(body=orjson.dumps({"rows": rows}), content_type="application/json")

    app.router.add_post("/store/insert", insert)
